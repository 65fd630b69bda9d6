// The differentiable ops: what models and analyses call. Each is defined once, in
// autograd/ops_<family>.cpp, with its forward (one kernel call), its VJP and its JVP side by side.
// Tensor methods that make views or copies (reshape, permute, slice, expand, t, contiguous,
// to(...)) are differentiable too (autograd/engine.cpp installs the hooks).
#pragma once
#include <vector>

#include "autograd/autograd.h"
#include "kernels/conv.h"
#include "kernels/index.h"
#include "kernels/linalg.h"
#include "kernels/nn.h"
#include "kernels/pool.h"
#include "kernels/sample.h"
#include "tensor/random.h"

namespace cortex {

// ---------------------------------------------------------------- elementwise (ops_elementwise.cpp)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);   // a > 0 where b is not an integer
Tensor maximum(const Tensor& a, const Tensor& b);  // ties split the gradient evenly
Tensor minimum(const Tensor& a, const Tensor& b);
// Scalar forms (the scalar takes the tensor's dtype).
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor rsub(double a, const Tensor& b);  // a - b
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor rdiv(double a, const Tensor& b);  // a / b
Tensor pow(const Tensor& a, double p);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor square(const Tensor& x);
Tensor abs(const Tensor& x);    // derivative sign(x) (0 at 0)
Tensor sign(const Tensor& x);   // derivative 0
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor erf(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);   // derivative 0 at 0, as PyTorch
enum class GeluApprox { None, Tanh };
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::None);
Tensor quick_gelu(const Tensor& x);
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor softplus(const Tensor& x, double beta = 1.0);
Tensor clamp(const Tensor& x, double lo, double hi);  // gradient passes where lo <= x <= hi
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Not differentiable (Bool / index results):
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// ---------------------------------------------------------------- reductions (ops_reduce.cpp)
Tensor sum(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor amax(const Tensor& x, const Shape& dims = {}, bool keepdim = false);  // ties share the gradient
Tensor amin(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor var(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor std_dev(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor norm(const Tensor& x, double p = 2.0, const Shape& dims = {}, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // not differentiable
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);

// ---------------------------------------------------------------- linear algebra (ops_linalg.cpp)
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());  // x w^T + b
// The k largest eigenpairs of a symmetric a (n, n), 0 <= k <= n: values (k) descending, vectors
// (n, k) in the columns, signs as kernels::eigh_topk fixes them. Differentiable in both modes
// (first order) on the symmetric matrices: a tangent counts through (t + t^T) / 2 and the gradient
// is symmetric. Where eigenvalues coincide to rounding the derivative may not exist: inside the top
// k the rotation within the eigenspace is held fixed (exact for losses of the subspace, V V^T), the
// VJP refuses a loss that depends on that rotation, and both modes refuse lambda_k = lambda_k+1
// when the loss (or tangent) moves the subspace there. Second derivatives are refused.
// docs/autodiff.md, section 4.12.
kernels::Eigh eigh_topk(const Tensor& a, int64_t k);

// ---------------------------------------------------------------- neural-network ops (ops_nn.cpp)
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Normalises over the trailing dims of `normalized_shape`; weight/bias optional.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Inference batch norm with running statistics (differentiable w.r.t. x, weight, bias).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps = 1e-5);
// Training batch norm: normalises with the batch statistics over (N, H, W) (biased variance) and,
// when momentum > 0 and running stats are given, updates them in place (unbiased variance).
Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                        Tensor running_var, double momentum = 0.1, double eps = 1e-5);
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor(),
              const kernels::Conv2dParams& p = {});
Tensor max_pool2d(const Tensor& x, const kernels::Pool2dParams& p);
Tensor avg_pool2d(const Tensor& x, const kernels::Pool2dParams& p);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor grid_sample(const Tensor& x, const Tensor& grid, bool align_corners = false,
                   kernels::GridPadding padding = kernels::GridPadding::Zeros,
                   kernels::GridMode mode = kernels::GridMode::Bilinear);
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners = false);
Tensor pad(const Tensor& x, const Shape& pads, kernels::PadMode mode = kernels::PadMode::Constant,
           double value = 0.0);
// Multi-head scaled dot-product attention: q (B, H, Lq, D), k/v (B, H, Lk, D) -> (B, H, Lq, D).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale = -1.0);
// Inverted dropout with a counter-based mask: identity when !training or p == 0.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

// ---------------------------------------------------------------- indexing and joining (ops_index.cpp)
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
kernels::TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);  // values differentiable
kernels::TopK sort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor cumsum(const Tensor& x, int64_t dim);
Tensor flip(const Tensor& x, int64_t dim);
Tensor tril(const Tensor& x, int64_t k = 0);
Tensor triu(const Tensor& x, int64_t k = 0);

// ---------------------------------------------------------------- 2-D real DFT (ops_fft.cpp)
// numpy.fft's rfft2 / irfft2 over the last two dims: on the CPU an O(HW log HW) FFT (kernels/fft.h,
// docs/fft.md), elsewhere products with precomputed cos/sin matrices (O(H^2 W + H W^2) per image);
// deterministic at any thread count. Differentiable to any order in both modes. docs/autodiff.md,
// section 4.13.
enum class FftNorm {
  Backward,  // rfft2 unscaled, irfft2 by 1/(HW) (numpy's default)
  Ortho,     // both by 1/sqrt(HW): then rfft2 and irfft2 are each other's adjoints up to the weights c
  Forward,   // rfft2 by 1/(HW), irfft2 unscaled
};
struct Spectrum2 {
  Tensor re, im;  // (..., H, W/2 + 1)
};
// x real (..., H, W), float32 or float64, H, W >= 1 -> the half spectrum X[k, l], l <= W/2.
Spectrum2 rfft2(const Tensor& x, FftNorm norm = FftNorm::Backward);
// The real (..., H, w) whose half spectrum is (re, im) (..., H, w/2 + 1), as numpy.fft.irfft2(re +
// 1j im, s=(H, w)): the imaginary parts of the DC column and (w even) the Nyquist column after the
// pass over H are ignored, as numpy does. irfft2(rfft2(x), W) == x.
Tensor irfft2(const Tensor& re, const Tensor& im, int64_t w, FftNorm norm = FftNorm::Backward);
// |f| on the half-spectrum grid (H, W/2 + 1): sqrt(fftfreq(H)[k]^2 + rfftfreq(W)[l]^2), cycles/pixel.
Tensor fft_frequencies(int64_t h, int64_t w, DType dtype = DType::Float32, Device device = Device::cpu());
// 1 / max(|f|, 1 / max(H, W)) on the same grid: the spectrum scale of Lucid's (and BOLDreams')
// frequency-space image parameterisation (the floor keeps the DC term finite).
Tensor fft_scale(int64_t h, int64_t w, DType dtype = DType::Float32, Device device = Device::cpu());

}  // namespace cortex
