// Pooling on CUDA and the emulated CUDA device (kernels/cuda/common.cuh says how one source serves
// both): max_pool2d, avg_pool2d, adaptive_avg_pool2d and the two average adjoints, with the CPU
// kernels' window rules and arithmetic (kernels/cpu/pool.cpp). float32 and float64, as the CPU.
//
// Forwards run one thread per output element and walk its window in the CPU's order (rows, then
// columns), so values, max indices, ties (the first) and NaNs (the last) match the CPU bit for bit.
// Backwards are gathers, one thread per input element: it sums, in the CPU's (oh, ow) order, the
// scaled gradients of the outputs whose windows cover it. The CPU adds exactly these terms to the
// same zero in the same order, so the results are bit-identical to it, and with no atomics they are
// the same in every schedule order. Inputs are read through their (N, C, H, W) strides, no copy.
#include <cmath>

#include "kernels/pool.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

// Strides of a batched (N, C, H, W) operand, in elements.
struct Strides4 { int64_t n, c, h, w; };

// Spatial sizes: input (H, W), output (OH, OW), channels C (planes are N * C).
struct Geom { int64_t C, H, W, OH, OW; };

// Window rule of one dim, as kernels/cpu/pool.cpp's windows() (fixed) or adaptive_windows().
struct Axis { int64_t k, stride, pad; };

// The window of output o along one dim: [lo, hi) clipped to the input, and its size clipped to
// input + padding (count_include_pad's divisor). A ceil-mode window stops at the padding's end.
struct Win { int64_t lo, hi, padded; };
// int64 min/max of our own: the emulator's device min/max overloads make int64_t calls ambiguous.
__device__ __forceinline__ int64_t lo64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t hi64(int64_t a, int64_t b) { return a > b ? a : b; }
__device__ __forceinline__ Win fixed_win(int64_t o, int64_t in, Axis a) {
  const int64_t s = o * a.stride - a.pad;
  const int64_t e = lo64(s + a.k, in + a.pad);
  return {hi64(s, 0), lo64(e, in), e - s};
}
__device__ __forceinline__ Win adaptive_win(int64_t o, int64_t in, int64_t out) {
  const int64_t s = (o * in) / out, e = ((o + 1) * in + out - 1) / out;
  return {s, e, e - s};
}

// Outputs [first, last] along one dim whose fixed windows cover input cell i (i in [0, in)):
// o * stride - pad <= i < o * stride - pad + k. The padding-end clip never removes a cell inside
// the input, so this is exactly "i in [lo, hi)".
__device__ __forceinline__ void fixed_cover(int64_t i, int64_t out, Axis a, int64_t& first, int64_t& last) {
  const int64_t t = i + a.pad;  // o * stride <= t < o * stride + k
  first = t - a.k + 1 <= 0 ? 0 : (t - a.k + 1 + a.stride - 1) / a.stride;
  last = lo64(t / a.stride, out - 1);
}
// Adaptive bins covering i start at or after floor(i * out / in) - 1 and end by
// ceil((i + 1) * out / in); the caller tests each candidate against its bin exactly.
__device__ __forceinline__ void adaptive_cover(int64_t i, int64_t in, int64_t out, int64_t& first, int64_t& last) {
  first = hi64((i * out) / in - 1, 0);
  last = lo64(((i + 1) * out + in - 1) / in, out - 1);
}

template <class T>
__global__ void max_pool_kernel(const T* __restrict__ x, Strides4 xs, Geom g, Axis ah, Axis aw, int64_t n,
                                T* __restrict__ y, int64_t* __restrict__ idx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t ow = i % g.OW, oh = (i / g.OW) % g.OH, pl = i / (g.OW * g.OH);
  const T* xp = x + (pl / g.C) * xs.n + (pl % g.C) * xs.c;
  const Win h = fixed_win(oh, g.H, ah), w = fixed_win(ow, g.W, aw);
  // As the CPU (and PyTorch): -inf at the first in-bounds cell; a NaN always wins (the last one).
  T m = -static_cast<T>(INFINITY);
  int64_t best = h.lo * g.W + w.lo;
  for (int64_t ih = h.lo; ih < h.hi; ++ih)
    for (int64_t iw = w.lo; iw < w.hi; ++iw) {
      const T v = xp[ih * xs.h + iw * xs.w];
      if (v > m || v != v) m = v, best = ih * g.W + iw;
    }
  y[i] = m;
  idx[i] = best;
}

// y = the window sum, in the CPU's order, over the divisor the CPU uses.
template <class T, bool kAdaptive>
__global__ void window_mean_kernel(const T* __restrict__ x, Strides4 xs, Geom g, Axis ah, Axis aw,
                                   bool include_pad, int64_t n, T* __restrict__ y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t ow = i % g.OW, oh = (i / g.OW) % g.OH, pl = i / (g.OW * g.OH);
  const T* xp = x + (pl / g.C) * xs.n + (pl % g.C) * xs.c;
  const Win h = kAdaptive ? adaptive_win(oh, g.H, g.OH) : fixed_win(oh, g.H, ah);
  const Win w = kAdaptive ? adaptive_win(ow, g.W, g.OW) : fixed_win(ow, g.W, aw);
  T s = 0;
  for (int64_t ih = h.lo; ih < h.hi; ++ih)
    for (int64_t iw = w.lo; iw < w.hi; ++iw) s += xp[ih * xs.h + iw * xs.w];
  const int64_t div = include_pad ? h.padded * w.padded : (h.hi - h.lo) * (w.hi - w.lo);
  y[i] = s / static_cast<T>(div);
}

// gx[cell] = sum over covering outputs (oh ascending, then ow) of gy / divisor, from zero: the
// CPU's scatter order for that cell. Cells no window covers get 0.
template <class T, bool kAdaptive>
__global__ void window_mean_backward_kernel(const T* __restrict__ gy, Strides4 gs, Geom g, Axis ah, Axis aw,
                                            bool include_pad, int64_t n, T* __restrict__ gx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t iw = i % g.W, ih = (i / g.W) % g.H, pl = i / (g.W * g.H);
  const T* gp = gy + (pl / g.C) * gs.n + (pl % g.C) * gs.c;
  int64_t oh0, oh1, ow0, ow1;
  if (kAdaptive) {
    adaptive_cover(ih, g.H, g.OH, oh0, oh1);
    adaptive_cover(iw, g.W, g.OW, ow0, ow1);
  } else {
    fixed_cover(ih, g.OH, ah, oh0, oh1);
    fixed_cover(iw, g.OW, aw, ow0, ow1);
  }
  T s = 0;
  for (int64_t oh = oh0; oh <= oh1; ++oh) {
    const Win h = kAdaptive ? adaptive_win(oh, g.H, g.OH) : fixed_win(oh, g.H, ah);
    if (ih < h.lo || ih >= h.hi) continue;
    for (int64_t ow = ow0; ow <= ow1; ++ow) {
      const Win w = kAdaptive ? adaptive_win(ow, g.W, g.OW) : fixed_win(ow, g.W, aw);
      if (iw < w.lo || iw >= w.hi) continue;
      const int64_t div = include_pad ? h.padded * w.padded : (h.hi - h.lo) * (w.hi - w.lo);
      s += gp[oh * gs.h + ow * gs.w] / static_cast<T>(div);
    }
  }
  gx[i] = s;
}

Strides4 strides4(const Tensor& t) {
  const Shape& s = t.strides();
  return {s[0], s[1], s[2], s[3]};
}

Tensor window_mean(const Tensor& x, int64_t out_h, int64_t out_w, Axis ah, Axis aw, bool include_pad,
                   bool adaptive, const char* op) {
  Tensor y = empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  const int64_t n = y.numel();
  if (n == 0) return y;
  const Geom g{x.size(1), x.size(2), x.size(3), out_h, out_w};
  dispatch_float(x.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = static_cast<const T*>(x.raw_data());
    T* yp = static_cast<T*>(y.raw_data());
    if (adaptive)
      CORTEX_LAUNCH((window_mean_kernel<T, true>), blocks_for(n), kBlock, 0, stream(), xp, strides4(x), g, ah, aw,
                    include_pad, n, yp);
    else
      CORTEX_LAUNCH((window_mean_kernel<T, false>), blocks_for(n), kBlock, 0, stream(), xp, strides4(x), g, ah, aw,
                    include_pad, n, yp);
  });
  return y;
}

Tensor window_mean_backward(const Tensor& gy, const Shape& x_shape, Axis ah, Axis aw, bool include_pad,
                            bool adaptive, const char* op) {
  Tensor gx = empty(x_shape, gy.dtype(), gy.device());
  const int64_t n = gx.numel();
  if (n == 0) return gx;
  const Geom g{x_shape[1], x_shape[2], x_shape[3], gy.size(2), gy.size(3)};
  dispatch_float(gy.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* gp = static_cast<const T*>(gy.raw_data());
    T* xp = static_cast<T*>(gx.raw_data());
    if (adaptive)
      CORTEX_LAUNCH((window_mean_backward_kernel<T, true>), blocks_for(n), kBlock, 0, stream(), gp, strides4(gy), g,
                    ah, aw, include_pad, n, xp);
    else
      CORTEX_LAUNCH((window_mean_backward_kernel<T, false>), blocks_for(n), kBlock, 0, stream(), gp, strides4(gy), g,
                    ah, aw, include_pad, n, xp);
  });
  return gx;
}

}  // namespace

MaxPool max_pool2d(const Tensor& x, const Pool2dParams& p, int64_t out_h, int64_t out_w) {
  const Shape os{x.size(0), x.size(1), out_h, out_w};
  MaxPool r{empty(os, x.dtype(), x.device()), empty(os, DType::Int64, x.device())};
  const int64_t n = r.y.numel();
  if (n == 0) return r;
  const Geom g{x.size(1), x.size(2), x.size(3), out_h, out_w};
  const Axis ah{p.kernel_h, p.stride_h, p.pad_h}, aw{p.kernel_w, p.stride_w, p.pad_w};
  dispatch_float(x.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    CORTEX_LAUNCH(max_pool_kernel<T>, blocks_for(n), kBlock, 0, stream(), static_cast<const T*>(x.raw_data()),
                  strides4(x), g, ah, aw, n, static_cast<T*>(r.y.raw_data()),
                  static_cast<int64_t*>(r.indices.raw_data()));
  });
  return r;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p, int64_t out_h, int64_t out_w) {
  return window_mean(x, out_h, out_w, {p.kernel_h, p.stride_h, p.pad_h}, {p.kernel_w, p.stride_w, p.pad_w},
                     p.count_include_pad, false, "avg_pool2d");
}

Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dParams& p) {
  return window_mean_backward(gy, x_shape, {p.kernel_h, p.stride_h, p.pad_h}, {p.kernel_w, p.stride_w, p.pad_w},
                              p.count_include_pad, false, "avg_pool2d_backward");
}

// Adaptive bins never reach into padding, so either divisor rule gives the bin size (as the CPU).
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  return window_mean(x, out_h, out_w, {}, {}, true, true, "adaptive_avg_pool2d");
}

Tensor adaptive_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape) {
  return window_mean_backward(gy, x_shape, {}, {}, true, true, "adaptive_avg_pool2d_backward");
}

}  // namespace cortex::kernels::CORTEX_BACKEND
