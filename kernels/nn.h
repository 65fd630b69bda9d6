// Neural-network kernels: softmax, normalisation, convolution, pooling. CPU: kernels/cpu/nn.cpp,
// kernels/cpu/conv.cpp, kernels/cpu/pool.cpp. Layout NCHW. float32/float64.
#pragma once
#include "tensor/tensor.h"

// The parameter types live in namespace cortex (not kernels) on purpose: argument-dependent lookup
// would otherwise find kernels::conv2d next to the differentiable cortex::conv2d and make every
// unqualified call in user code ambiguous.
namespace cortex {
struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
};
struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg pool only
};
}  // namespace cortex

namespace cortex::kernels {
using cortex::Conv2dParams;
using cortex::Pool2dParams;

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// Normalises over the last `normalized_ndim` dims; weight/bias (the normalized shape) may be undefined.
// mean and rstd have x's shape with the normalised dims removed; autograd uses them.
struct LayerNorm { Tensor y, mean, rstd; };
LayerNorm layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                     double eps = 1e-5);
// Inference batch norm over dim 1 (N, C, ...): (x - mean) / sqrt(var + eps) * weight + bias.
// weight/bias may be undefined.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps = 1e-5);

// x (N, C, H, W), w (O, C/groups, KH, KW), bias (O) or undefined -> (N, O, OH, OW), im2col + GEMM.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p);
// The adjoints: d(conv2d)/dx applied to gy (a transposed convolution) and d(conv2d)/dw applied to gy.
Tensor conv2d_input_grad(const Tensor& gy, const Tensor& w, const Shape& x_shape, const Conv2dParams& p);
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Shape& w_shape, const Conv2dParams& p);
// Output size of one spatial dim; throws when the window does not fit.
int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode = false);

// indices: int64, flat index h * W + w of the max within each (n, c) plane, as PyTorch returns.
struct MaxPool { Tensor y, indices; };
MaxPool max_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dParams& p);
// PyTorch's adaptive bins: start = floor(i * H / OH), end = ceil((i + 1) * H / OH).
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor adaptive_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape);

}  // namespace cortex::kernels
