// Softmax and normalisation on CUDA and the emulated CUDA device (kernels/cuda/common.cuh says how
// one source serves both): softmax, log_softmax, layer_norm and inference batch_norm, with the CPU
// kernels' arithmetic (kernels/cpu/nn.cpp). float32 and float64, as the entries accept.
//
// softmax/log_softmax and layer_norm fold rows like the reductions (kernels/cuda/reduce.cu): the
// normalised dims are a row reached by index math (any strides, no copy), folded by one warp
// (rows up to 1024) or one block of 256 threads, with the fixed trees of reduce_common.cuh, so
// results are bit-identical in every schedule order. softmax over a dim that is not the inner one
// in memory, or over short rows, runs one thread per row instead (neighbouring threads read
// neighbouring rows), in the CPU's sequential order. The forms are the stable ones: softmax subtracts the row max; layer_norm
// takes the mean, then the mean of squared deviations (two passes, float64 accumulators).
#include <cmath>

#include "kernels/nn.h"
#include "tensor/strided.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/reduce_common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

using red::kFull;
using red::kRowBlock;
using red::kWarp;
using red::kWarpsPerBlock;

__device__ __forceinline__ float exp_of(float v) { return expf(v); }
__device__ __forceinline__ double exp_of(double v) { return exp(v); }
__device__ __forceinline__ float log_of(float v) { return logf(v); }
__device__ __forceinline__ double log_of(double v) { return log(v); }

// Below this shift exp's true value is subnormal; the CPU writes 0 there (its vectorised exp
// clamps), so masked (-inf) entries are exactly zero. The same cut here.
template <class T>
__device__ __forceinline__ T exp_floor() {
  return sizeof(T) == 4 ? T(-87.3) : T(-708.0);
}

template <class T>
struct MaxFold {
  __device__ __forceinline__ T init() const { return -static_cast<T>(INFINITY); }
  __device__ __forceinline__ T comb(T a, T b) const { return (b > a || b != b) ? b : a; }  // NaN propagates
};
template <class A>
struct SumFold {
  __device__ __forceinline__ A init() const { return A(0); }
  __device__ __forceinline__ A comb(A a, A b) const { return a + b; }
};

// A row folded by one warp: every lane gets the fold of all lanes' values (lane 0's tree result).
struct WarpGroup {
  __device__ __forceinline__ unsigned rank() const { return threadIdx.x % kWarp; }
  static constexpr unsigned size = kWarp;
  template <class Op, class A>
  __device__ __forceinline__ A fold(const Op& op, A v) const {
    return __shfl_sync(kFull, red::warp_fold(op, v), 0);
  }
};
// A row folded by the whole block of kRowBlock threads.
template <class A>
struct BlockGroup {
  A* sm;  // kRowWarps + 1 values of shared memory
  __device__ __forceinline__ unsigned rank() const { return threadIdx.x; }
  static constexpr unsigned size = kRowBlock;
  template <class Op>
  __device__ __forceinline__ A fold(const Op& op, A v) const {
    return red::block_fold(op, v, sm);
  }
};

// ---------------------------------------------------------------- softmax

// One row of softmax: x[bx + d xs] -> y[by + d ys], d in [0, D), folded by group g. A row whose
// max is not finite (all -inf, a +inf or a NaN) is NaN throughout, as the CPU (and PyTorch).
template <class T, bool kLog, class G>
__device__ __forceinline__ void softmax_row(const G& g, const T* __restrict__ x, T* __restrict__ y, int64_t bx,
                                            int64_t xs, int64_t by, int64_t ys, int64_t D) {
  const MaxFold<T> mf;
  T m = mf.init();
  for (int64_t d = g.rank(); d < D; d += G::size) m = mf.comb(m, x[bx + d * xs]);
  m = g.fold(mf, m);
  if (!(m - m == T(0))) {
    for (int64_t d = g.rank(); d < D; d += G::size) y[by + d * ys] = static_cast<T>(NAN);
    return;
  }
  const T lo = exp_floor<T>();
  T s = 0;
  for (int64_t d = g.rank(); d < D; d += G::size) {
    const T z = x[bx + d * xs] - m;
    s += z < lo ? T(0) : exp_of(z);
  }
  s = g.fold(SumFold<T>{}, s);
  const T ls = kLog ? log_of(s) : T(0), inv = kLog ? T(0) : T(1) / s;
  for (int64_t d = g.rank(); d < D; d += G::size) {
    const T z = x[bx + d * xs] - m;
    if constexpr (kLog)
      y[by + d * ys] = z - ls;
    else
      y[by + d * ys] = (z < lo ? T(0) : exp_of(z)) * inv;
  }
}

// kix: row index -> (x offset, y offset) of the row's first element.
template <class T, bool kLog>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    softmax_warp_rows(const T* __restrict__ x, T* __restrict__ y, Indexer kix, int64_t rows, int64_t D, int64_t xs,
                      int64_t ys) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (r >= rows) return;  // the whole warp leaves together
  softmax_row<T, kLog>(WarpGroup{}, x, y, red::offset(kix, 0, r), xs, red::offset(kix, 1, r), ys, D);
}

template <class T, bool kLog>
__global__ void __launch_bounds__(kRowBlock)
    softmax_block_rows(const T* __restrict__ x, T* __restrict__ y, Indexer kix, int64_t /*rows: one a block*/,
                       int64_t D, int64_t xs, int64_t ys) {
  __shared__ T sm[red::kRowWarps + 1];
  const int64_t r = blockIdx.x;
  softmax_row<T, kLog>(BlockGroup<T>{sm}, x, y, red::offset(kix, 0, r), xs, red::offset(kix, 1, r), ys, D);
}

// One thread per row, for a softmax dim that is not the inner one in memory.
struct SoloGroup {
  __device__ __forceinline__ unsigned rank() const { return 0; }
  static constexpr unsigned size = 1;
  template <class Op, class A>
  __device__ __forceinline__ A fold(const Op&, A v) const {
    return v;
  }
};

template <class T, bool kLog>
__global__ void __launch_bounds__(kBlock)
    softmax_cols(const T* __restrict__ x, T* __restrict__ y, Indexer kix, int64_t rows, int64_t D, int64_t xs,
                 int64_t ys) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  softmax_row<T, kLog>(SoloGroup{}, x, y, red::offset(kix, 0, r), xs, red::offset(kix, 1, r), ys, D);
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  if (x.numel() == 0) return y;
  const Shape yst = contiguous_strides(x.shape());
  Shape ksh;
  std::array<Shape, 2> kst;
  int64_t D = 1, xs = 0, ys = 0;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d == dim) {
      D = x.shape()[d];
      xs = x.strides()[d];
      ys = yst[d];
    } else {
      ksh.push_back(x.shape()[d]);
      kst[0].push_back(x.strides()[d]);
      kst[1].push_back(yst[d]);
    }
  }
  const Indexer kix = make_indexer<2>(ksh, kst);
  const int64_t rows = x.numel() / D;
  // One thread per row when the softmax dim is not the inner one in memory, or for short rows.
  const bool cols = rows > 1 && D > 1 &&
                    (abs64(kix.strides[0][kix.ndim - 1]) < abs64(xs) || (D <= red::kShortRow && rows >= kWarp));
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* yp = static_cast<T*>(y.raw_data());
    auto run = [&](auto klog) {
      constexpr bool kLog = decltype(klog)::value;
      if (cols) {
        CORTEX_LAUNCH((softmax_cols<T, kLog>), blocks_for(rows), kBlock, 0, stream(), xp, yp, kix, rows, D, xs, ys);
      } else if (D <= red::kWarpRowMax) {
        CORTEX_LAUNCH((softmax_warp_rows<T, kLog>), blocks_for(rows, kWarpsPerBlock), kWarp * kWarpsPerBlock, 0,
                      stream(), xp, yp, kix, rows, D, xs, ys);
      } else {
        CORTEX_CHECK(rows <= 2147483647, "softmax: ", rows, " rows need more blocks than a grid holds");
        CORTEX_LAUNCH((softmax_block_rows<T, kLog>), static_cast<unsigned>(rows), kRowBlock, 0, stream(), xp, yp, kix,
                      rows, D, xs, ys);
      }
    };
    if (log) run(std::true_type{});
    else run(std::false_type{});
  });
  return y;
}

// ---------------------------------------------------------------- layer_norm

// One row: mean and biased variance in float64 (two passes), then y = ((x - m) - dm) * q (* w)
// (+ b) in T with m + dm the mean split into T and its rounding residual, as the CPU.
template <class T, class G>
__device__ __forceinline__ void layer_norm_row(const G& g, const T* __restrict__ x, const T* __restrict__ w,
                                               const T* __restrict__ b, T* __restrict__ y, T* __restrict__ mean,
                                               T* __restrict__ rstd, const Indexer& rix, int64_t r, int64_t bx,
                                               int64_t D, double eps) {
  const SumFold<double> sf;
  double s = 0;
  for (int64_t i = g.rank(); i < D; i += G::size) s += static_cast<double>(x[bx + red::offset(rix, 0, i)]);
  s = g.fold(sf, s);
  const double mu = s / static_cast<double>(D);
  double v = 0;
  for (int64_t i = g.rank(); i < D; i += G::size) {
    const double c = static_cast<double>(x[bx + red::offset(rix, 0, i)]) - mu;
    v += c * c;
  }
  v = g.fold(sf, v);
  const double rs = 1.0 / sqrt(v / static_cast<double>(D) + eps);
  if (g.rank() == 0) {
    mean[r] = static_cast<T>(mu);
    rstd[r] = static_cast<T>(rs);
  }
  const T m = static_cast<T>(mu), dm = static_cast<T>(mu - static_cast<double>(m)), q = static_cast<T>(rs);
  T* yr = y + r * D;
  for (int64_t i = g.rank(); i < D; i += G::size) {
    T z = ((x[bx + red::offset(rix, 0, i)] - m) - dm) * q;
    if (w) z *= w[red::offset(rix, 1, i)];
    if (b) z += b[red::offset(rix, 2, i)];
    yr[i] = z;
  }
}

// kix: row index -> x offset; rix: index in the row -> offsets in x, w, b.
template <class T>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    layer_norm_warp_rows(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                         T* __restrict__ y, T* __restrict__ mean, T* __restrict__ rstd, Indexer kix, Indexer rix,
                         int64_t rows, int64_t D, double eps) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (r >= rows) return;  // the whole warp leaves together
  layer_norm_row<T>(WarpGroup{}, x, w, b, y, mean, rstd, rix, r, red::offset(kix, 0, r), D, eps);
}

template <class T>
__global__ void __launch_bounds__(kRowBlock)
    layer_norm_block_rows(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                          T* __restrict__ y, T* __restrict__ mean, T* __restrict__ rstd, Indexer kix, Indexer rix,
                          int64_t /*rows: one a block*/, int64_t D, double eps) {
  __shared__ double sm[red::kRowWarps + 1];
  const int64_t r = blockIdx.x;
  layer_norm_row<T>(BlockGroup<double>{sm}, x, w, b, y, mean, rstd, rix, r, red::offset(kix, 0, r), D, eps);
}

// ---------------------------------------------------------------- batch_norm

// alpha = w / sqrt(var + eps), beta = b - mean alpha, in float64, stored in T (as the CPU). The
// per-channel inputs may be strided (their strides in elements); w and b may be absent.
template <class T>
__global__ void __launch_bounds__(kBlock)
    batch_norm_params(const T* __restrict__ rm, int64_t rm_s, const T* __restrict__ rv, int64_t rv_s,
                      const T* __restrict__ w, int64_t w_s, const T* __restrict__ b, int64_t b_s, int64_t C,
                      double eps, T* __restrict__ alpha, T* __restrict__ beta) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const double wc = w ? static_cast<double>(w[c * w_s]) : 1.0, bc = b ? static_cast<double>(b[c * b_s]) : 0.0;
  const double a = wc / sqrt(static_cast<double>(rv[c * rv_s]) + eps);
  alpha[c] = static_cast<T>(a);
  beta[c] = static_cast<T>(bc - static_cast<double>(rm[c * rm_s]) * a);
}

// y[i] = x[i] alpha[c] + beta[c], c the channel of element i of (N, C, L); y contiguous.
template <class T>
__global__ void __launch_bounds__(kBlock)
    batch_norm_apply(const T* __restrict__ x, Indexer ix, const T* __restrict__ alpha, const T* __restrict__ beta,
                     int64_t C, int64_t L, int64_t n, T* __restrict__ y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t c = (i / L) % C;
  y[i] = x[red::offset(ix, 0, i)] * alpha[c] + beta[c];
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

LayerNorm layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                     double eps) {
  const int64_t nb = x.dim() - normalized_ndim;
  const Shape batch(x.shape().begin(), x.shape().begin() + nb);
  const Shape norm(x.shape().begin() + nb, x.shape().end());
  const int64_t rows = shape_numel(batch), D = shape_numel(norm);
  LayerNorm out{empty(x.shape(), x.dtype(), x.device()), empty(batch, x.dtype(), x.device()),
                empty(batch, x.dtype(), x.device())};
  if (rows == 0) return out;
  const Shape bst(x.strides().begin(), x.strides().begin() + nb);
  const Shape nst(x.strides().begin() + nb, x.strides().end());
  const Shape zero(norm.size(), 0);
  const Indexer kix = make_indexer<1>(batch, {bst});
  const Indexer rix = make_indexer<3>(
      norm, {nst, weight.defined() ? weight.strides() : zero, bias.defined() ? bias.strides() : zero});
  dispatch_float(x.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    const T* wp = weight.defined() ? static_cast<const T*>(weight.raw_data()) : nullptr;
    const T* bp = bias.defined() ? static_cast<const T*>(bias.raw_data()) : nullptr;
    T* yp = static_cast<T*>(out.y.raw_data());
    T* mp = static_cast<T*>(out.mean.raw_data());
    T* rp = static_cast<T*>(out.rstd.raw_data());
    if (D <= red::kWarpRowMax) {
      CORTEX_LAUNCH(layer_norm_warp_rows<T>, blocks_for(rows, kWarpsPerBlock), kWarp * kWarpsPerBlock, 0, stream(),
                    xp, wp, bp, yp, mp, rp, kix, rix, rows, D, eps);
    } else {
      CORTEX_CHECK(rows <= 2147483647, "layer_norm: ", rows, " rows need more blocks than a grid holds");
      CORTEX_LAUNCH(layer_norm_block_rows<T>, static_cast<unsigned>(rows), kRowBlock, 0, stream(), xp, wp, bp, yp, mp,
                    rp, kix, rix, rows, D, eps);
    }
  });
  return out;
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps) {
  Tensor y = empty(x.shape(), x.dtype(), x.device());
  const int64_t n = x.numel();
  if (n == 0) return y;
  const int64_t N = x.size(0), C = x.size(1), L = n / (N * C);
  dispatch_float(x.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    auto ptr = [](const Tensor& t) { return t.defined() ? static_cast<const T*>(t.raw_data()) : nullptr; };
    auto stride = [](const Tensor& t) { return t.defined() ? t.strides()[0] : int64_t(0); };
    Tensor ab = empty({2 * C}, x.dtype(), x.device());
    T* alpha = static_cast<T*>(ab.raw_data());
    CORTEX_LAUNCH(batch_norm_params<T>, blocks_for(C), kBlock, 0, stream(), ptr(running_mean), stride(running_mean),
                  ptr(running_var), stride(running_var), ptr(weight), stride(weight), ptr(bias), stride(bias), C, eps,
                  alpha, alpha + C);
    const Indexer ix = make_indexer<1>(x.shape(), {&x});
    CORTEX_LAUNCH(batch_norm_apply<T>, blocks_for(n), kBlock, 0, stream(), static_cast<const T*>(x.raw_data()), ix,
                  static_cast<const T*>(alpha), static_cast<const T*>(alpha + C), C, L, n, static_cast<T*>(y.raw_data()));
  });
  return y;
}

}  // namespace cortex::kernels::CORTEX_BACKEND
