// CPU grid_sample (bilinear or nearest), bilinear resize and padding, with their adjoints, following
// torch.nn.functional. Forward passes write each output once; backward passes either own one
// gradient plane per thread (scatter within it) or gather, so no two threads add into one cell.
#include "kernels/cpu/sample.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace cortex::kernels::cpu {
namespace {


// ---------------------------------------------------------------- grid_sample

// One sample point of the grid: the top-left tap (x0, y0) (nearest: the one tap), the fractions
// (fx, fy) towards the next tap (nearest: 0), and d(source coordinate)/d(grid coordinate) per axis
// (0 along a border-clamped axis).
template <class T>
struct Loc {
  int64_t x0, y0;
  T fx, fy, mx, my;
  bool nan;
};

// Unnormalises one grid coordinate into pixel space (PyTorch's grid_sampler_compute_source_index)
// and splits it into floor and fraction. A point two pixels or more outside reads only padding,
// so it becomes i0 = -2 with every tap out of range (this also keeps the int64 conversion defined
// for huge or infinite coordinates). A NaN coordinate marks the point NaN. Nearest rounds half to
// even (std::nearbyint in the default rounding mode, as torch) and keeps f = 0.
template <class T>
void axis(T g, int64_t size, bool align, GridPadding padding, bool nearest, int64_t& i0, T& f, T& mult,
          bool& nan) {
  T src;
  if (align) {
    src = (g + 1) / 2 * static_cast<T>(size - 1);
    mult = static_cast<T>(size - 1) / 2;
  } else {
    src = ((g + 1) * static_cast<T>(size) - 1) / 2;
    mult = static_cast<T>(size) / 2;
  }
  if (std::isnan(src)) {
    nan = true, i0 = 0, f = 0, mult = 0;
    return;
  }
  if (padding == GridPadding::Border) {
    // PyTorch's clip_coordinates_set_grad: the clamp's derivative is 0 at and beyond both edges.
    if (src <= 0) src = 0, mult = 0;
    else if (src >= static_cast<T>(size - 1)) src = static_cast<T>(size - 1), mult = 0;
  }
  if (!(src > T(-2) && src < static_cast<T>(size + 1))) {
    i0 = -2, f = 0;
    return;
  }
  if (nearest) {
    i0 = static_cast<int64_t>(std::nearbyint(src)), f = 0;
    return;
  }
  const T fl = std::floor(src);
  i0 = static_cast<int64_t>(fl);
  f = src - fl;
}

// grid is (N, L, 2) contiguous with L = Ho * Wo; returns the N * L sample points.
template <class T>
std::vector<Loc<T>> locations(const T* grid, int64_t NL, int64_t H, int64_t W, bool align, GridPadding padding,
                              bool nearest) {
  std::vector<Loc<T>> locs(NL);
  parallel::for_each(NL, double(NL), [&](int64_t i) {
    Loc<T>& q = locs[i];
    q.nan = false;
    axis<T>(grid[2 * i], W, align, padding, nearest, q.x0, q.fx, q.mx, q.nan);
    axis<T>(grid[2 * i + 1], H, align, padding, nearest, q.y0, q.fy, q.my, q.nan);
  });
  return locs;
}

inline bool inside(int64_t i, int64_t n) { return i >= 0 && i < n; }

// The four taps of a point: plane offsets (-1 when out of range, i.e. zero padding) in the order
// nw, ne, sw, se.
struct Taps { int64_t o[4]; };
template <class T>
Taps taps(const Loc<T>& q, int64_t H, int64_t W) {
  const bool x0 = inside(q.x0, W), x1 = inside(q.x0 + 1, W), y0 = inside(q.y0, H), y1 = inside(q.y0 + 1, H);
  return {{y0 && x0 ? q.y0 * W + q.x0 : -1, y0 && x1 ? q.y0 * W + q.x0 + 1 : -1,
           y1 && x0 ? (q.y0 + 1) * W + q.x0 : -1, y1 && x1 ? (q.y0 + 1) * W + q.x0 + 1 : -1}};
}

template <class T>
void weights(const Loc<T>& q, T w[4]) {
  w[0] = (1 - q.fx) * (1 - q.fy), w[1] = q.fx * (1 - q.fy), w[2] = (1 - q.fx) * q.fy, w[3] = q.fx * q.fy;
}
// A point's taps and bilinear weights, computed once for all its channels (recomputing them per
// (n, c) plane was most of grid_sample's time on a 256-channel readout map).
template <class T>
struct Point {
  Taps tp;
  T w[4];
};
template <class T>
std::vector<Point<T>> points(const std::vector<Loc<T>>& locs, int64_t H, int64_t W) {
  std::vector<Point<T>> p(locs.size());
  parallel::for_each(static_cast<int64_t>(locs.size()), double(locs.size()), [&](int64_t i) {
    p[size_t(i)].tp = taps(locs[size_t(i)], H, W);
    weights(locs[size_t(i)], p[size_t(i)].w);
  });
  return p;
}

// ---------------------------------------------------------------- resize

// One output index of a bilinear resize: source taps i0, i1 and their weights (F.interpolate's
// area_pixel_compute_source_index and compute_indices_weights_linear).
struct Lerp {
  int64_t i0, i1;
  double l0, l1;
};
std::vector<Lerp> lerps(int64_t out, int64_t in, bool align) {
  std::vector<Lerp> v(out);
  for (int64_t o = 0; o < out; ++o) {
    double src;
    if (align) src = out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) * o : 0.0;
    else src = std::max((o + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5, 0.0);
    const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
    // Past the last pixel both taps are that pixel (PyTorch's zero offset); weight it 1 so the
    // edge value is copied exactly.
    if (i0 == in - 1) {
      v[o] = {i0, i0, 1.0, 0.0};
      continue;
    }
    const double l1 = std::clamp(src - static_cast<double>(i0), 0.0, 1.0);
    v[o] = {i0, i0 + 1, 1.0 - l1, l1};
  }
  return v;
}

// ---------------------------------------------------------------- pad

// Source index of output index o along a dim of size n with left pad l; -1 reads the constant.
std::vector<int64_t> pad_map(int64_t n, int64_t l, int64_t r, PadMode mode) {
  std::vector<int64_t> m(n + l + r);
  for (int64_t o = 0; o < n + l + r; ++o) {
    const int64_t i = o - l;
    if (i >= 0 && i < n) m[o] = i;
    else if (mode == PadMode::Constant) m[o] = -1;
    else if (mode == PadMode::Reflect) m[o] = i < 0 ? -i : 2 * (n - 1) - i;
    else m[o] = std::clamp<int64_t>(i, 0, n - 1);
  }
  return m;
}

// Per-dim source maps for x_shape padded by `pads` (pairs from the last dim backwards).
std::vector<std::vector<int64_t>> pad_maps(const Shape& x_shape, const Shape& pads, PadMode mode) {
  const int64_t nd = static_cast<int64_t>(x_shape.size());
  std::vector<std::vector<int64_t>> maps(nd);
  for (int64_t d = 0; d < nd; ++d) {
    const int64_t k = nd - 1 - d;  // pair index of dim d
    const int64_t l = 2 * k < static_cast<int64_t>(pads.size()) ? pads[2 * k] : 0;
    const int64_t r = 2 * k < static_cast<int64_t>(pads.size()) ? pads[2 * k + 1] : 0;
    maps[d] = pad_map(x_shape[d], l, r, mode);
  }
  return maps;
}

}  // namespace

Tensor grid_sample(const Tensor& x, const Tensor& grid, bool align_corners, GridPadding padding, GridMode mode) {
  const Tensor xc = x.contiguous(), gc = grid.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), L = grid.size(1) * grid.size(2);
  Tensor y = empty({N, C, grid.size(1), grid.size(2)}, x.dtype());
  if (y.numel() == 0) return y;
  const bool nearest = mode == GridMode::Nearest;
  dispatch_float(x.dtype(), "grid_sample", [&](auto t) {
    using T = decltype(t);
    const auto locs = locations<T>(gc.data<T>(), N * L, H, W, align_corners, padding, nearest);
    const auto pts = points(locs, H, W);
    const T* xp = xc.data<T>();
    T* yp = y.data<T>();
    parallel::for_each(N * C, double(N) * double(C) * double(L), [&](int64_t pl) {
      const int64_t n = pl / C;
      const T* xpl = xp + pl * H * W;
      T* ypl = yp + pl * L;
      for (int64_t l = 0; l < L; ++l) {
        if (locs[n * L + l].nan) {
          ypl[l] = std::numeric_limits<T>::quiet_NaN();
          continue;
        }
        const Point<T>& pt = pts[n * L + l];
        if (nearest) {  // one tap: no 0 * x terms, so an inf or NaN neighbour stays out
          ypl[l] = pt.tp.o[0] >= 0 ? xpl[pt.tp.o[0]] : T(0);
          continue;
        }
        T v = 0;
        for (int k = 0; k < 4; ++k)
          if (pt.tp.o[k] >= 0) v += pt.w[k] * xpl[pt.tp.o[k]];
        ypl[l] = v;
      }
    });
  });
  return y;
}

GridSampleGrads grid_sample_backward(const Tensor& gy, const Tensor& x, const Tensor& grid, bool align_corners,
                                     GridPadding padding, GridMode mode, bool grid_grad) {
  const Tensor xc = x.contiguous(), gc = grid.contiguous(), gyc = gy.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), L = grid.size(1) * grid.size(2);
  GridSampleGrads r{zeros(x.shape(), x.dtype()), grid_grad ? zeros(grid.shape(), grid.dtype()) : Tensor()};
  if (N * L == 0) return r;
  const bool nearest = mode == GridMode::Nearest;
  dispatch_float(x.dtype(), "grid_sample_backward", [&](auto t) {
    using T = decltype(t);
    const auto locs = locations<T>(gc.data<T>(), N * L, H, W, align_corners, padding, nearest);
    const auto pts = points(locs, H, W);
    const T* xp = xc.data<T>();
    const T* gp = gyc.data<T>();
    T* gxp = r.input.data<T>();
    T* ggp = grid_grad ? r.grid.data<T>() : nullptr;
    // d/dx: scatter g * weight into the taps, one (n, c) plane per thread.
    parallel::for_each(N * C, double(N) * double(C) * double(L), [&](int64_t pl) {
      const int64_t n = pl / C;
      T* gxpl = gxp + pl * H * W;
      const T* gpl = gp + pl * L;
      for (int64_t l = 0; l < L; ++l) {
        if (locs[n * L + l].nan) continue;
        const Point<T>& pt = pts[n * L + l];
        if (nearest) {
          if (pt.tp.o[0] >= 0) gxpl[pt.tp.o[0]] += gpl[l];
          continue;
        }
        for (int k = 0; k < 4; ++k)
          if (pt.tp.o[k] >= 0) gxpl[pt.tp.o[k]] += pt.w[k] * gpl[l];
      }
    });
    if (!grid_grad) return;
    // d/dgrid: the bilinear weights' derivatives along x and y times the unnormalisation scale,
    // summed over channels (in float64). Nearest is piecewise constant in the grid: 0 (the zeros
    // r.grid starts with), NaN at a NaN point.
    parallel::for_each(N * L, double(N) * double(C) * double(L), [&](int64_t i) {
      const Loc<T>& q = locs[i];
      const int64_t n = i / L, l = i % L;
      if (q.nan) {
        ggp[2 * i] = ggp[2 * i + 1] = std::numeric_limits<T>::quiet_NaN();
        return;
      }
      if (nearest) return;
      const Taps tp = taps(q, H, W);
      double dx = 0, dy = 0;
      for (int64_t c = 0; c < C; ++c) {
        const T* xpl = xp + (n * C + c) * H * W;
        double v[4];
        for (int k = 0; k < 4; ++k) v[k] = tp.o[k] >= 0 ? static_cast<double>(xpl[tp.o[k]]) : 0.0;
        const double g = gp[(n * C + c) * L + l], fx = q.fx, fy = q.fy;
        // Explicit fma: the CUDA kernel writes the same calls, so no compiler's choice of where to
        // contract a * b + c can make the two differ (kernels/cuda/sample.cu is bit-identical).
        dx = std::fma(g, std::fma(v[3] - v[2], fy, (v[1] - v[0]) * (1 - fy)), dx);
        dy = std::fma(g, std::fma(v[3] - v[1], fx, (v[2] - v[0]) * (1 - fx)), dy);
      }
      ggp[2 * i] = static_cast<T>(dx * q.mx);
      ggp[2 * i + 1] = static_cast<T>(dy * q.my);
    });
  });
  return r;
}

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  const Tensor xc = x.contiguous();
  const int64_t P = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  Tensor y = empty({x.size(0), x.size(1), out_h, out_w}, x.dtype());
  if (y.numel() == 0) return y;
  const auto lh = lerps(out_h, H, align_corners), lw = lerps(out_w, W, align_corners);
  dispatch_float(x.dtype(), "resize_bilinear", [&](auto t) {
    using T = decltype(t);
    std::vector<T> w0(out_w), w1(out_w);
    for (int64_t o = 0; o < out_w; ++o) w0[o] = static_cast<T>(lw[o].l0), w1[o] = static_cast<T>(lw[o].l1);
    const T* xp = xc.data<T>();
    T* yp = y.data<T>();
    parallel::for_each(P * out_h, double(P) * double(out_h) * double(out_w), [&](int64_t row) {
      const int64_t pl = row / out_h, oh = row % out_h;
      const Lerp& a = lh[oh];
      const T h0 = static_cast<T>(a.l0), h1 = static_cast<T>(a.l1);
      const T* r0 = xp + (pl * H + a.i0) * W;
      const T* r1 = xp + (pl * H + a.i1) * W;
      T* o = yp + row * out_w;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const int64_t j0 = lw[ow].i0, j1 = lw[ow].i1;
        o[ow] = h0 * (w0[ow] * r0[j0] + w1[ow] * r0[j1]) + h1 * (w0[ow] * r1[j0] + w1[ow] * r1[j1]);
      }
    });
  });
  return y;
}

Tensor resize_bilinear_backward(const Tensor& gy, const Shape& x_shape, bool align_corners) {
  const Tensor gc = gy.contiguous();
  const int64_t P = x_shape[0] * x_shape[1], H = x_shape[2], W = x_shape[3];
  const int64_t out_h = gy.size(2), out_w = gy.size(3);
  Tensor gx = zeros(x_shape, gy.dtype());
  if (gy.numel() == 0) return gx;
  const auto lh = lerps(out_h, H, align_corners), lw = lerps(out_w, W, align_corners);
  dispatch_float(gy.dtype(), "resize_bilinear_backward", [&](auto t) {
    using T = decltype(t);
    std::vector<T> w0(out_w), w1(out_w);
    for (int64_t o = 0; o < out_w; ++o) w0[o] = static_cast<T>(lw[o].l0), w1[o] = static_cast<T>(lw[o].l1);
    const T* gp = gc.data<T>();
    T* xp = gx.data<T>();
    parallel::for_each(P, double(P) * double(out_h) * double(out_w), [&](int64_t pl) {
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const Lerp& a = lh[oh];
        const T h0 = static_cast<T>(a.l0), h1 = static_cast<T>(a.l1);
        T* r0 = xp + (pl * H + a.i0) * W;
        T* r1 = xp + (pl * H + a.i1) * W;
        const T* g = gp + (pl * out_h + oh) * out_w;
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const int64_t j0 = lw[ow].i0, j1 = lw[ow].i1;
          const T g0 = h0 * g[ow], g1 = h1 * g[ow];
          r0[j0] += g0 * w0[ow];
          r0[j1] += g0 * w1[ow];
          r1[j0] += g1 * w0[ow];
          r1[j1] += g1 * w1[ow];
        }
      }
    });
  });
  return gx;
}

Tensor pad(const Tensor& x, const Shape& pads, PadMode mode, double value) {
  const auto maps = pad_maps(x.shape(), pads, mode);
  const int64_t nd = x.dim();
  Shape os(nd);
  for (int64_t d = 0; d < nd; ++d) os[d] = static_cast<int64_t>(maps[d].size());
  Tensor y = empty(os, x.dtype());
  if (nd == 0) return y.copy_(x);
  if (y.numel() == 0) return y;
  const int64_t inner = os.back(), rows = y.numel() / inner;
  const Shape& st = x.strides();
  const std::vector<int64_t>& last = maps.back();
  dispatch(x.dtype(), [&](auto t) {
    using T = decltype(t);
    const T fill = scalar(value, x.dtype()).template data<T>()[0];  // the project's conversion rules
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    parallel::for_each(rows, double(y.numel()), [&](int64_t r) {
      T* o = yp + r * inner;
      // The source row of output row r, or none when an outer index reads the constant.
      int64_t base = 0, rem = r;
      bool constant = false;
      for (int64_t d = nd - 2; d >= 0; --d) {
        const int64_t m = maps[d][rem % os[d]];
        rem /= os[d];
        if (m < 0) constant = true;
        else base += m * st[d];
      }
      if (constant) {
        std::fill(o, o + inner, fill);
        return;
      }
      const T* xr = xp + base;
      const int64_t s = st[nd - 1];
      for (int64_t j = 0; j < inner; ++j) o[j] = last[j] < 0 ? fill : xr[last[j] * s];
    });
  });
  return y;
}

Tensor pad_backward(const Tensor& gy, const Shape& x_shape, const Shape& pads, PadMode mode) {
  const auto maps = pad_maps(x_shape, pads, mode);
  const int64_t nd = static_cast<int64_t>(x_shape.size());
  Tensor gx = zeros(x_shape, gy.dtype());
  if (nd == 0) return gx.copy_(gy);
  if (gx.numel() == 0 || gy.numel() == 0) return gx;
  const Tensor gc = gy.contiguous();
  // Inverse maps as CSR: the output indices that read input index i along dim d are
  // idx[d][start[d][i] .. start[d][i + 1]). Gathering through them lets each thread own gx rows.
  std::vector<std::vector<int64_t>> start(nd), idx(nd);
  for (int64_t d = 0; d < nd; ++d) {
    const auto& m = maps[d];
    start[d].assign(x_shape[d] + 1, 0);
    for (int64_t s : m)
      if (s >= 0) ++start[d][s + 1];
    for (int64_t i = 0; i < x_shape[d]; ++i) start[d][i + 1] += start[d][i];
    idx[d].resize(start[d][x_shape[d]]);
    std::vector<int64_t> fillp(start[d].begin(), start[d].end() - 1);
    for (int64_t o = 0; o < static_cast<int64_t>(m.size()); ++o)
      if (m[o] >= 0) idx[d][fillp[m[o]]++] = o;
  }
  const Shape gst = contiguous_strides(gy.shape());
  const int64_t inner = x_shape.back(), rows = gx.numel() / inner;
  dispatch_float(gy.dtype(), "pad_backward", [&](auto t) {
    using T = decltype(t);
    const T* gp = gc.data<T>();
    T* xp = gx.data<T>();
    const auto& s_last = start[nd - 1];
    const auto& i_last = idx[nd - 1];
    parallel::for_each(rows, double(gy.numel()), [&](int64_t r) {
      T* o = xp + r * inner;
      // The outer index of gx row r, then an odometer over the gy rows that read it.
      std::vector<int64_t> in_idx(nd - 1), pos(nd - 1, 0);
      bool empty_set = false;
      for (int64_t d = nd - 2, rem = r; d >= 0; --d) {
        in_idx[d] = rem % x_shape[d];
        rem /= x_shape[d];
        if (start[d][in_idx[d] + 1] == start[d][in_idx[d]]) empty_set = true;
      }
      if (empty_set) return;
      while (true) {
        int64_t base = 0;
        for (int64_t d = 0; d < nd - 1; ++d) base += idx[d][start[d][in_idx[d]] + pos[d]] * gst[d];
        const T* g = gp + base;
        for (int64_t i = 0; i < inner; ++i) {
          T s = 0;
          for (int64_t k = s_last[i]; k < s_last[i + 1]; ++k) s += g[i_last[k]];
          o[i] += s;
        }
        int64_t d = nd - 2;
        for (; d >= 0; --d) {
          if (++pos[d] < start[d][in_idx[d] + 1] - start[d][in_idx[d]]) break;
          pos[d] = 0;
        }
        if (d < 0) break;
      }
    });
  });
  return gx;
}

}  // namespace cortex::kernels::cpu
