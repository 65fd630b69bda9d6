// CPU max/avg/adaptive-avg pooling over (N, C, H, W) with PyTorch's window rules. Every (n, c)
// plane is independent: forwards split (plane, output row) pairs over threads, backwards split
// planes, so each thread owns the gradient plane it accumulates into.
#include "kernels/cpu/pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace cortex::kernels::cpu {
namespace {


// The window of output index o along one dim, clipped to the input: [lo, hi), plus the size of
// the window clipped to input + padding (avg pool's count_include_pad divisor).
struct Win { int64_t lo, hi, padded; };
std::vector<Win> windows(int64_t out, int64_t in, int64_t k, int64_t stride, int64_t pad) {
  std::vector<Win> w(out);
  for (int64_t o = 0; o < out; ++o) {
    const int64_t s = o * stride - pad;
    const int64_t e = std::min(s + k, in + pad);  // a ceil-mode window stops at the padding's end
    w[o] = {std::max<int64_t>(s, 0), std::min(e, in), e - s};
  }
  return w;
}

// PyTorch's adaptive bins along one dim: [floor(o * in / out), ceil((o + 1) * in / out)).
std::vector<Win> adaptive_windows(int64_t out, int64_t in) {
  std::vector<Win> w(out);
  for (int64_t o = 0; o < out; ++o) {
    const int64_t s = (o * in) / out, e = ((o + 1) * in + out - 1) / out;
    w[o] = {s, e, e - s};
  }
  return w;
}

struct Dims { int64_t P, H, W, OH, OW; };  // P = N * C planes

// y[p, oh, ow] = the sum of x over window (wh[oh], ww[ow]) of plane p, divided by the window's size
// including padding (include_pad) or clipped to the input. Average and adaptive-average pooling.
Tensor window_mean(const Tensor& x, int64_t out_h, int64_t out_w, const std::vector<Win>& wh,
                   const std::vector<Win>& ww, bool include_pad, const char* op) {
  const Tensor xc = x.contiguous();
  const Dims d{x.size(0) * x.size(1), x.size(2), x.size(3), out_h, out_w};
  Tensor y = empty({x.size(0), x.size(1), out_h, out_w}, x.dtype());
  if (y.numel() == 0) return y;
  dispatch_float(x.dtype(), op, [&](auto t) {
    using T = decltype(t);
    const T* xp = xc.data<T>();
    T* yp = y.data<T>();
    parallel::for_each(d.P * d.OH, double(d.P) * double((d.H * d.W + d.OH * d.OW)), [&](int64_t row) {
      const int64_t pl = row / d.OH, oh = row % d.OH;
      const T* xpl = xp + pl * d.H * d.W;
      const Win h = wh[oh];
      for (int64_t ow = 0; ow < d.OW; ++ow) {
        const Win w = ww[ow];
        T s = 0;
        for (int64_t ih = h.lo; ih < h.hi; ++ih)
          for (int64_t iw = w.lo; iw < w.hi; ++iw) s += xpl[ih * d.W + iw];
        const int64_t div = include_pad ? h.padded * w.padded : (h.hi - h.lo) * (w.hi - w.lo);
        yp[row * d.OW + ow] = s / static_cast<T>(div);
      }
    });
  });
  return y;
}

// The adjoint of window_mean: each output's gradient, divided as in the forward, spread over its
// window. Threads split planes, so each owns the gradient plane it accumulates into.
Tensor window_mean_backward(const Tensor& gy, const Shape& x_shape, const std::vector<Win>& wh,
                            const std::vector<Win>& ww, bool include_pad, const char* op) {
  const Tensor gc = gy.contiguous();
  const Dims d{x_shape[0] * x_shape[1], x_shape[2], x_shape[3], gy.size(2), gy.size(3)};
  Tensor gx = zeros(x_shape, gy.dtype());
  if (gy.numel() == 0) return gx;
  dispatch_float(gy.dtype(), op, [&](auto t) {
    using T = decltype(t);
    const T* gp = gc.data<T>();
    T* xp = gx.data<T>();
    parallel::for_each(d.P, double(d.P) * double((d.H * d.W + d.OH * d.OW)), [&](int64_t pl) {
      T* gpl = xp + pl * d.H * d.W;
      for (int64_t oh = 0; oh < d.OH; ++oh) {
        const Win h = wh[oh];
        for (int64_t ow = 0; ow < d.OW; ++ow) {
          const Win w = ww[ow];
          const int64_t div = include_pad ? h.padded * w.padded : (h.hi - h.lo) * (w.hi - w.lo);
          const T g = gp[(pl * d.OH + oh) * d.OW + ow] / static_cast<T>(div);
          for (int64_t ih = h.lo; ih < h.hi; ++ih)
            for (int64_t iw = w.lo; iw < w.hi; ++iw) gpl[ih * d.W + iw] += g;
        }
      }
    });
  });
  return gx;
}

// Max pooling of output columns [a, b) of one output row whose windows lie wholly inside the
// input along W (iw = ow * S - pad + kw in [0, W) for every kw), taps outer and columns inner so
// the compiler vectorises the columns; S is a compile-time stride where the caller knows it, which
// turns the strided loads into shuffles instead of gathers. Every output still sees its taps in
// the scalar loop's order (rows, then columns) with the same test, so values, indices, ties (the
// first) and NaNs (the last) match it exactly. Rows ih in [h.lo, h.hi) of plane xpl (H, W).
template <int S, class T>
void max_row_interior(const T* __restrict xpl, int64_t W, Win h, int64_t KW, int64_t stride, int64_t pad, int64_t a,
                      int64_t b, T* __restrict y, int64_t* __restrict idx) {
  const int64_t s = S > 0 ? S : stride;
  for (int64_t ow = a; ow < b; ++ow) {
    y[ow] = -std::numeric_limits<T>::infinity();
    idx[ow] = h.lo * W + ow * s - pad;  // the first cell, kept if every value is -inf
  }
  for (int64_t ih = h.lo; ih < h.hi; ++ih)
    for (int64_t kw = 0; kw < KW; ++kw) {
      const int64_t base = ih * W + kw - pad;  // input cell of column ow: base + ow * s
      const T* src = xpl + base;
      for (int64_t ow = a; ow < b; ++ow) {
        const T v = src[ow * s];
        const bool take = v > y[ow] || v != v;  // v != v: isnan, written so it vectorises
        y[ow] = take ? v : y[ow];
        idx[ow] = take ? base + ow * s : idx[ow];
      }
    }
}

}  // namespace

MaxPool max_pool2d(const Tensor& x, const Pool2dParams& p, int64_t out_h, int64_t out_w) {
  const Tensor xc = x.contiguous();
  const Dims d{x.size(0) * x.size(1), x.size(2), x.size(3), out_h, out_w};
  const Shape os{x.size(0), x.size(1), out_h, out_w};
  MaxPool r{empty(os, x.dtype()), empty(os, DType::Int64)};
  if (r.y.numel() == 0) return r;
  const auto wh = windows(d.OH, d.H, p.kernel_h, p.stride_h, p.pad_h);
  const auto ww = windows(d.OW, d.W, p.kernel_w, p.stride_w, p.pad_w);
  dispatch_float(x.dtype(), "max_pool2d", [&](auto t) {
    using T = decltype(t);
    const T* xp = xc.data<T>();
    T* yp = r.y.data<T>();
    int64_t* ip = r.indices.data<int64_t>();
    // Output columns [a, b) have whole windows along W: the vectorised loop; the rest scalar.
    int64_t a = 0, b = d.OW;
    while (a < b && (ww[a].lo != a * p.stride_w - p.pad_w || ww[a].hi - ww[a].lo != p.kernel_w)) ++a;
    while (b > a && (ww[b - 1].lo != (b - 1) * p.stride_w - p.pad_w || ww[b - 1].hi - ww[b - 1].lo != p.kernel_w)) --b;
    if (b - a < 8) a = b = 0;  // too few for a vector: all scalar (AlexNet's 13 -> 6 pool ran 40% slower)
    parallel::for_each(d.P * d.OH, double(d.P) * double(d.OH) * double(d.OW) * double(p.kernel_h) * double(p.kernel_w), [&](int64_t row) {
      const int64_t pl = row / d.OH, oh = row % d.OH;
      const T* xpl = xp + pl * d.H * d.W;
      const Win h = wh[oh];
      T* yr = yp + row * d.OW;
      int64_t* ir = ip + row * d.OW;
      if (p.stride_w == 1)
        max_row_interior<1>(xpl, d.W, h, p.kernel_w, 1, p.pad_w, a, b, yr, ir);
      else if (p.stride_w == 2)
        max_row_interior<2>(xpl, d.W, h, p.kernel_w, 2, p.pad_w, a, b, yr, ir);
      else
        max_row_interior<0>(xpl, d.W, h, p.kernel_w, p.stride_w, p.pad_w, a, b, yr, ir);
      // The clipped windows at either end, one at a time.
      auto edge = [&](int64_t ow) {
        const Win w = ww[ow];
        // As PyTorch: start at the first in-bounds cell with -inf; a NaN always wins (the last one).
        int64_t best = h.lo * d.W + w.lo;
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t ih = h.lo; ih < h.hi; ++ih)
          for (int64_t iw = w.lo; iw < w.hi; ++iw) {
            const T v = xpl[ih * d.W + iw];
            if (v > m || std::isnan(v)) m = v, best = ih * d.W + iw;
          }
        yr[ow] = m;
        ir[ow] = best;
      };
      for (int64_t ow = 0; ow < a; ++ow) edge(ow);
      for (int64_t ow = b; ow < d.OW; ++ow) edge(ow);
    });
  });
  return r;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p, int64_t out_h, int64_t out_w) {
  return window_mean(x, out_h, out_w, windows(out_h, x.size(2), p.kernel_h, p.stride_h, p.pad_h),
                     windows(out_w, x.size(3), p.kernel_w, p.stride_w, p.pad_w), p.count_include_pad, "avg_pool2d");
}

Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dParams& p) {
  return window_mean_backward(gy, x_shape, windows(gy.size(2), x_shape[2], p.kernel_h, p.stride_h, p.pad_h),
                              windows(gy.size(3), x_shape[3], p.kernel_w, p.stride_w, p.pad_w), p.count_include_pad,
                              "avg_pool2d_backward");
}

// Adaptive bins are windows that never reach into padding, so either divisor rule gives the bin size.
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  return window_mean(x, out_h, out_w, adaptive_windows(out_h, x.size(2)), adaptive_windows(out_w, x.size(3)), true,
                     "adaptive_avg_pool2d");
}

Tensor adaptive_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape) {
  return window_mean_backward(gy, x_shape, adaptive_windows(gy.size(2), x_shape[2]),
                              adaptive_windows(gy.size(3), x_shape[3]), true, "adaptive_avg_pool2d_backward");
}

}  // namespace cortex::kernels::cpu
