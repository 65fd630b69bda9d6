// Resampling on CUDA and the emulated CUDA device (kernels/cuda/common.cuh says how one source
// serves both): grid_sample (bilinear or nearest, zeros or border padding) and its adjoint,
// bilinear resize and its adjoint, pad (constant, reflect, replicate) and its adjoint. Semantics
// and arithmetic are kernels/cpu/sample.cpp's; float32 and float64 (pad: every dtype).
//
// Forwards run one thread per output element with the CPU's expressions in the CPU's order, so
// they are bit-identical to it and to themselves in every schedule order. Inputs are read through
// their strides, no copy.
//
// grid_sample_backward: the input gradient scatters each output's weighted cotangent into its
// (up to four) taps with atomicAdd, one thread per output element, as PyTorch does. NOT
// DETERMINISTIC: the order of those additions follows the schedule, so two runs can differ in the
// last bits, and it equals the CPU only up to rounding (tests state the tolerance). In
// deterministic mode (CORTEX_DETERMINISTIC=1 or kernels::set_deterministic(true),
// docs/determinism.md) one thread per (n, c) plane walks the output points in order and adds into
// its own plane, as the CPU does: no atomics, the same bits every run, far fewer threads (N * C).
// The grid gradient is one thread per sample point, which sums over channels in float64 in the
// CPU's order: bit-identical.
//
// resize_bilinear_backward and pad_backward are gathers with no atomics: the host inverts the
// (small, per-axis) source maps into CSR lists, and one thread per input cell adds the very terms
// the CPU's scatter adds to that cell, in the CPU's order, from zero. Bit-identical to the CPU in
// every schedule order.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/determinism.h"
#include "kernels/sample.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

// Strides of a 4-d operand, in elements.
struct Strides4 { int64_t a, b, c, d; };
Strides4 strides4(const Tensor& t) {
  const Shape& s = t.strides();
  return {s[0], s[1], s[2], s[3]};
}

__device__ __forceinline__ float floor_(float v) { return floorf(v); }
__device__ __forceinline__ double floor_(double v) { return floor(v); }
// Round half to even in the default rounding mode, as std::nearbyint on the CPU and torch.
__device__ __forceinline__ float rint_(float v) { return nearbyintf(v); }
__device__ __forceinline__ double rint_(double v) { return nearbyint(v); }

// ---------------------------------------------------------------- grid_sample

// Sizes: batch N, channels C, input (H, W), output (Ho, Wo).
struct GridGeom { int64_t N, C, H, W, Ho, Wo; };
struct GridCfg { bool align, border, nearest; };

// One sample point, as kernels/cpu/sample.cpp's Loc and axis(): the top-left tap (the one tap for
// nearest), the fractions towards the next tap, d(source)/d(grid) per axis, NaN flag.
template <class T>
struct Loc {
  int64_t x0, y0;
  T fx, fy, mx, my;
  bool nan;
};

template <class T>
__device__ __forceinline__ void axis(T g, int64_t size, GridCfg cfg, int64_t& i0, T& f, T& mult, bool& nan) {
  T src;
  if (cfg.align) {
    src = (g + 1) / 2 * static_cast<T>(size - 1);
    mult = static_cast<T>(size - 1) / 2;
  } else {
    src = ((g + 1) * static_cast<T>(size) - 1) / 2;
    mult = static_cast<T>(size) / 2;
  }
  if (src != src) {
    nan = true, i0 = 0, f = 0, mult = 0;
    return;
  }
  if (cfg.border) {
    if (src <= 0) src = 0, mult = 0;
    else if (src >= static_cast<T>(size - 1)) src = static_cast<T>(size - 1), mult = 0;
  }
  // Two pixels or more outside reads only padding (and keeps the int64 conversion defined).
  if (!(src > T(-2) && src < static_cast<T>(size + 1))) {
    i0 = -2, f = 0;
    return;
  }
  if (cfg.nearest) {
    i0 = static_cast<int64_t>(rint_(src)), f = 0;
    return;
  }
  const T fl = floor_(src);
  i0 = static_cast<int64_t>(fl);
  f = src - fl;
}

template <class T>
__device__ __forceinline__ Loc<T> locate(const T* grid, Strides4 gs, int64_t n, int64_t oh, int64_t ow,
                                         const GridGeom& g, GridCfg cfg) {
  const T* p = grid + n * gs.a + oh * gs.b + ow * gs.c;
  Loc<T> q;
  q.nan = false;
  axis<T>(p[0], g.W, cfg, q.x0, q.fx, q.mx, q.nan);
  axis<T>(p[gs.d], g.H, cfg, q.y0, q.fy, q.my, q.nan);
  return q;
}

__device__ __forceinline__ bool inside(int64_t i, int64_t n) { return i >= 0 && i < n; }

// The four taps (nw, ne, sw, se) as (row, col); ok[k] false when out of range (zero padding).
struct Taps {
  int64_t r[4], c[4];
  bool ok[4];
};
template <class T>
__device__ __forceinline__ Taps taps(const Loc<T>& q, int64_t H, int64_t W) {
  Taps t;
  const bool x0 = inside(q.x0, W), x1 = inside(q.x0 + 1, W), y0 = inside(q.y0, H), y1 = inside(q.y0 + 1, H);
  t.r[0] = q.y0, t.c[0] = q.x0, t.ok[0] = y0 && x0;
  t.r[1] = q.y0, t.c[1] = q.x0 + 1, t.ok[1] = y0 && x1;
  t.r[2] = q.y0 + 1, t.c[2] = q.x0, t.ok[2] = y1 && x0;
  t.r[3] = q.y0 + 1, t.c[3] = q.x0 + 1, t.ok[3] = y1 && x1;
  return t;
}

template <class T>
__device__ __forceinline__ void weights(const Loc<T>& q, T w[4]) {
  w[0] = (1 - q.fx) * (1 - q.fy), w[1] = q.fx * (1 - q.fy), w[2] = (1 - q.fx) * q.fy, w[3] = q.fx * q.fy;
}

// y (N, C, Ho, Wo) contiguous; one thread per output element.
template <class T>
__global__ void grid_sample_kernel(const T* __restrict__ x, Strides4 xs, const T* __restrict__ grid, Strides4 gs,
                                   GridGeom g, GridCfg cfg, int64_t n, T* __restrict__ y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t ow = i % g.Wo, oh = (i / g.Wo) % g.Ho, c = (i / (g.Wo * g.Ho)) % g.C, b = i / (g.Wo * g.Ho * g.C);
  const Loc<T> q = locate(grid, gs, b, oh, ow, g, cfg);
  if (q.nan) {
    y[i] = static_cast<T>(NAN);
    return;
  }
  const T* xp = x + b * xs.a + c * xs.b;
  const Taps tp = taps(q, g.H, g.W);
  if (cfg.nearest) {  // one tap: no 0 * x terms, so an inf or NaN neighbour stays out
    y[i] = tp.ok[0] ? xp[tp.r[0] * xs.c + tp.c[0] * xs.d] : T(0);
    return;
  }
  T w[4];
  weights(q, w);
  T v = 0;
  for (int k = 0; k < 4; ++k)
    if (tp.ok[k]) v += w[k] * xp[tp.r[k] * xs.c + tp.c[k] * xs.d];
  y[i] = v;
}

// gx (N, C, H, W) contiguous, zeroed: each output's cotangent times its tap weights, by atomicAdd.
template <class T>
__global__ void grid_sample_input_grad_kernel(const T* __restrict__ gy, Strides4 ys, const T* __restrict__ grid,
                                              Strides4 gs, GridGeom g, GridCfg cfg, int64_t n, T* __restrict__ gx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t ow = i % g.Wo, oh = (i / g.Wo) % g.Ho, c = (i / (g.Wo * g.Ho)) % g.C, b = i / (g.Wo * g.Ho * g.C);
  const Loc<T> q = locate(grid, gs, b, oh, ow, g, cfg);
  if (q.nan) return;
  const T gv = gy[b * ys.a + c * ys.b + oh * ys.c + ow * ys.d];
  T* gp = gx + (b * g.C + c) * g.H * g.W;
  const Taps tp = taps(q, g.H, g.W);
  if (cfg.nearest) {
    if (tp.ok[0]) atomicAdd(gp + tp.r[0] * g.W + tp.c[0], gv);
    return;
  }
  T w[4];
  weights(q, w);
  for (int k = 0; k < 4; ++k)
    if (tp.ok[k]) atomicAdd(gp + tp.r[k] * g.W + tp.c[k], w[k] * gv);
}

// The same gradient in deterministic mode: one thread per (n, c) plane of gx, output points in
// row-major order, taps in order 0..3, plain additions into the thread's own plane.
template <class T>
__global__ void grid_sample_input_grad_plane_kernel(const T* __restrict__ gy, Strides4 ys, const T* __restrict__ grid,
                                                    Strides4 gs, GridGeom g, GridCfg cfg, int64_t planes,
                                                    T* __restrict__ gx) {
  const int64_t pl = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (pl >= planes) return;
  const int64_t c = pl % g.C, b = pl / g.C;
  T* gp = gx + pl * g.H * g.W;
  for (int64_t oh = 0; oh < g.Ho; ++oh)
    for (int64_t ow = 0; ow < g.Wo; ++ow) {
      const Loc<T> q = locate(grid, gs, b, oh, ow, g, cfg);
      if (q.nan) continue;
      const T gv = gy[b * ys.a + c * ys.b + oh * ys.c + ow * ys.d];
      const Taps tp = taps(q, g.H, g.W);
      if (cfg.nearest) {
        if (tp.ok[0]) gp[tp.r[0] * g.W + tp.c[0]] += gv;
        continue;
      }
      T w[4];
      weights(q, w);
      for (int k = 0; k < 4; ++k)
        if (tp.ok[k]) gp[tp.r[k] * g.W + tp.c[k]] += w[k] * gv;
    }
}

// ggrid (N, Ho, Wo, 2) contiguous; one thread per sample point, channels summed in float64 in the
// CPU's order. Nearest: 0 (NaN at a NaN point).
template <class T>
__global__ void grid_sample_grid_grad_kernel(const T* __restrict__ gy, Strides4 ys, const T* __restrict__ x,
                                             Strides4 xs, const T* __restrict__ grid, Strides4 gs, GridGeom g,
                                             GridCfg cfg, int64_t n, T* __restrict__ gg) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t ow = i % g.Wo, oh = (i / g.Wo) % g.Ho, b = i / (g.Wo * g.Ho);
  const Loc<T> q = locate(grid, gs, b, oh, ow, g, cfg);
  if (q.nan) {
    gg[2 * i] = gg[2 * i + 1] = static_cast<T>(NAN);
    return;
  }
  if (cfg.nearest) {
    gg[2 * i] = gg[2 * i + 1] = T(0);
    return;
  }
  const Taps tp = taps(q, g.H, g.W);
  double dx = 0, dy = 0;
  for (int64_t c = 0; c < g.C; ++c) {
    const T* xp = x + b * xs.a + c * xs.b;
    double v[4];
    for (int k = 0; k < 4; ++k) v[k] = tp.ok[k] ? static_cast<double>(xp[tp.r[k] * xs.c + tp.c[k] * xs.d]) : 0.0;
    const double gv = gy[b * ys.a + c * ys.b + oh * ys.c + ow * ys.d], fx = q.fx, fy = q.fy;
    // The CPU's explicit fma calls: no compiler contraction choice can make the two differ.
    dx = fma(gv, fma(v[3] - v[2], fy, (v[1] - v[0]) * (1 - fy)), dx);
    dy = fma(gv, fma(v[3] - v[1], fx, (v[2] - v[0]) * (1 - fx)), dy);
  }
  gg[2 * i] = static_cast<T>(dx * q.mx);
  gg[2 * i + 1] = static_cast<T>(dy * q.my);
}

GridGeom grid_geom(const Tensor& x, const Tensor& grid) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), grid.size(1), grid.size(2)};
}
GridCfg grid_cfg(bool align, GridPadding padding, GridMode mode) {
  return {align, padding == GridPadding::Border, mode == GridMode::Nearest};
}

// ---------------------------------------------------------------- resize

// kernels/cpu/sample.cpp's lerps(): source taps and weights of each output index (computed in
// float64 on the host, weights rounded to T as the CPU does).
struct Lerp {
  int64_t i0, i1;
  double l0, l1;
};
std::vector<Lerp> lerps(int64_t out, int64_t in, bool align) {
  std::vector<Lerp> v(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    double src;
    if (align) src = out > 1 ? static_cast<double>(in - 1) / static_cast<double>(out - 1) * o : 0.0;
    else src = std::max((o + 0.5) * static_cast<double>(in) / static_cast<double>(out) - 0.5, 0.0);
    const int64_t i0 = std::min(static_cast<int64_t>(src), in - 1);
    if (i0 == in - 1) {
      v[o] = {i0, i0, 1.0, 0.0};
      continue;
    }
    const double l1 = std::clamp(src - static_cast<double>(i0), 0.0, 1.0);
    v[o] = {i0, i0 + 1, 1.0 - l1, l1};
  }
  return v;
}

// Device tables of a resize: taps [ih0 | ih1 | iw0 | iw1] (int64) and weights [h0 | h1 | w0 | w1] (T).
struct ResizeTables {
  Tensor idx, wts;
};
template <class T>
ResizeTables resize_tables(const std::vector<Lerp>& lh, const std::vector<Lerp>& lw, Device dev) {
  std::vector<int64_t> idx;
  std::vector<T> wts;
  for (const auto* v : {&lh, &lw}) {
    for (const Lerp& l : *v) idx.push_back(l.i0);
    for (const Lerp& l : *v) idx.push_back(l.i1);
  }
  for (const auto* v : {&lh, &lw}) {
    for (const Lerp& l : *v) wts.push_back(static_cast<T>(l.l0));
    for (const Lerp& l : *v) wts.push_back(static_cast<T>(l.l1));
  }
  const int64_t ni = static_cast<int64_t>(idx.size());
  return {from_vector(idx, {ni}, DType::Int64, dev), from_vector(wts, {ni}, dtype_of<T>(), dev)};
}

// Sizes: planes N * C (C to split them), input (H, W), output (OH, OW).
struct ResizeGeom { int64_t C, H, W, OH, OW; };

template <class T>
__global__ void resize_kernel(const T* __restrict__ x, Strides4 xs, ResizeGeom g, const int64_t* __restrict__ idx,
                              const T* __restrict__ wt, int64_t n, T* __restrict__ y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t ow = i % g.OW, oh = (i / g.OW) % g.OH, pl = i / (g.OW * g.OH);
  const T* xp = x + (pl / g.C) * xs.a + (pl % g.C) * xs.b;
  const T h0 = wt[oh], h1 = wt[g.OH + oh], w0 = wt[2 * g.OH + ow], w1 = wt[2 * g.OH + g.OW + ow];
  const T* r0 = xp + idx[oh] * xs.c;
  const T* r1 = xp + idx[g.OH + oh] * xs.c;
  const int64_t j0 = idx[2 * g.OH + ow] * xs.d, j1 = idx[2 * g.OH + g.OW + ow] * xs.d;
  y[i] = h0 * (w0 * r0[j0] + w1 * r0[j1]) + h1 * (w0 * r1[j0] + w1 * r1[j1]);
}

// Inverse of a lerp table along one axis, as CSR: for input index i, the outputs o that read it, in
// ascending o, each as o * 4 + mask (bit 0: i is o's first tap, bit 1: its second).
void invert_lerps(const std::vector<Lerp>& v, int64_t in, std::vector<int64_t>& start, std::vector<int64_t>& ent) {
  start.assign(static_cast<size_t>(in + 1), 0);
  for (const Lerp& l : v) {
    ++start[l.i0 + 1];
    if (l.i1 != l.i0) ++start[l.i1 + 1];
  }
  for (int64_t i = 0; i < in; ++i) start[i + 1] += start[i];
  ent.assign(static_cast<size_t>(start[in]), 0);
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int64_t o = 0; o < static_cast<int64_t>(v.size()); ++o) {
    const Lerp& l = v[o];
    if (l.i1 == l.i0) {
      ent[fill[l.i0]++] = o * 4 + 3;
    } else {
      ent[fill[l.i0]++] = o * 4 + 1;
      ent[fill[l.i1]++] = o * 4 + 2;
    }
  }
}

// Offsets into the packed CSR tensor [rstart (H+1) | cstart (W+1) | rent | cent].
struct Csr { int64_t rstart, cstart, rent, cent; };

// gx[pl, ih, iw] = the CPU's scatter terms for this cell, in its (oh, ow, row tap, col tap) order,
// from zero: (h_a * g) * w_b for each tap pair (a, b) that lands here.
template <class T>
__global__ void resize_backward_kernel(const T* __restrict__ gy, Strides4 ys, ResizeGeom g,
                                       const int64_t* __restrict__ tab, Csr cs, const T* __restrict__ wt, int64_t n,
                                       T* __restrict__ gx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t iw = i % g.W, ih = (i / g.W) % g.H, pl = i / (g.W * g.H);
  const T* gp = gy + (pl / g.C) * ys.a + (pl % g.C) * ys.b;
  T s = 0;
  for (int64_t r = tab[cs.rstart + ih]; r < tab[cs.rstart + ih + 1]; ++r) {
    const int64_t er = tab[cs.rent + r], oh = er >> 2, mh = er & 3;
    const T h0 = wt[oh], h1 = wt[g.OH + oh];
    for (int64_t k = tab[cs.cstart + iw]; k < tab[cs.cstart + iw + 1]; ++k) {
      const int64_t ec = tab[cs.cent + k], ow = ec >> 2, mw = ec & 3;
      const T w0 = wt[2 * g.OH + ow], w1 = wt[2 * g.OH + g.OW + ow];
      const T gv = gp[oh * ys.c + ow * ys.d];
      const T g0 = h0 * gv, g1 = h1 * gv;
      if (mh & 1) {
        if (mw & 1) s += g0 * w0;
        if (mw & 2) s += g0 * w1;
      }
      if (mh & 2) {
        if (mw & 1) s += g1 * w0;
        if (mw & 2) s += g1 * w1;
      }
    }
  }
  gx[i] = s;
}

// ---------------------------------------------------------------- pad

// Per dim of a pad: input size n, left pad l (negative crops), output size out, and the operand's
// stride. Dims of a 0-d tensor are one dim of size 1.
struct PadDims {
  int nd;
  int64_t n[kMaxDims], l[kMaxDims], out[kMaxDims], stride[kMaxDims];
};

PadDims pad_dims(const char* op, const Shape& x_shape, const Shape& pads, const Shape& strides) {
  const int64_t nd = static_cast<int64_t>(x_shape.size());
  CORTEX_CHECK(nd <= kMaxDims, op, ": the CUDA kernel takes at most ", kMaxDims, " dims, found ", nd);
  PadDims p{};
  p.nd = nd == 0 ? 1 : static_cast<int>(nd);
  if (nd == 0) {
    p.n[0] = p.out[0] = 1, p.l[0] = 0, p.stride[0] = 0;
    return p;
  }
  for (int64_t d = 0; d < nd; ++d) {
    const int64_t k = nd - 1 - d;  // pair index of dim d
    const bool has = 2 * k < static_cast<int64_t>(pads.size());
    p.n[d] = x_shape[d];
    p.l[d] = has ? pads[2 * k] : 0;
    p.out[d] = x_shape[d] + p.l[d] + (has ? pads[2 * k + 1] : 0);
    p.stride[d] = strides[d];
  }
  return p;
}

// kernels/cpu/sample.cpp's pad_map(): the source of output index o, -1 for the constant.
__host__ __device__ __forceinline__ int64_t pad_src(int64_t o, int64_t n, int64_t l, int mode) {
  const int64_t i = o - l;
  if (i >= 0 && i < n) return i;
  if (mode == 0) return -1;                          // Constant
  if (mode == 1) return i < 0 ? -i : 2 * (n - 1) - i;  // Reflect
  return i < 0 ? 0 : n - 1;                          // Replicate
}

// Moves element bits (U is an unsigned integer of the dtype's size): one thread per output element.
template <class U>
__global__ void pad_kernel(const U* __restrict__ x, PadDims p, int mode, U fill, int64_t n, U* __restrict__ y) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  int64_t rem = i, off = 0;
  for (int d = p.nd - 1; d >= 0; --d) {
    const int64_t s = pad_src(rem % p.out[d], p.n[d], p.l[d], mode);
    rem /= p.out[d];
    if (s < 0) {
      y[i] = fill;
      return;
    }
    off += s * p.stride[d];
  }
  y[i] = x[off];
}

// Inverse pad maps per dim, packed: [start_d (n_d + 1) for each d | idx_d for each d]; offsets here.
struct PadInv {
  int64_t start[kMaxDims], idx[kMaxDims];
};

// gx[i] = sum over the combinations of the outer dims' sources (odometer, last outer dim fastest)
// of the last-dim sum in ascending order: the CPU's terms in the CPU's order, from zero.
template <class T>
__global__ void pad_backward_kernel(const T* __restrict__ gy, PadDims p, const int64_t* __restrict__ tab, PadInv iv,
                                    int64_t n, T* __restrict__ gx) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  int64_t in_idx[kMaxDims], pos[kMaxDims], len[kMaxDims];
  int64_t rem = i;
  bool empty_set = false;
  for (int d = p.nd - 1; d >= 0; --d) {
    in_idx[d] = rem % p.n[d];
    rem /= p.n[d];
    pos[d] = 0;
    len[d] = tab[iv.start[d] + in_idx[d] + 1] - tab[iv.start[d] + in_idx[d]];
    if (d < p.nd - 1 && len[d] == 0) empty_set = true;
  }
  T acc = 0;
  if (!empty_set) {
    const int last = p.nd - 1;
    const int64_t* li = tab + iv.idx[last] + tab[iv.start[last] + in_idx[last]];
    while (true) {
      int64_t base = 0;
      for (int d = 0; d < last; ++d)
        base += tab[iv.idx[d] + tab[iv.start[d] + in_idx[d]] + pos[d]] * p.stride[d];
      T s = 0;
      for (int64_t k = 0; k < len[last]; ++k) s += gy[base + li[k] * p.stride[last]];
      acc += s;
      int d = last - 1;
      for (; d >= 0; --d) {
        if (++pos[d] < len[d]) break;
        pos[d] = 0;
      }
      if (d < 0) break;
    }
  }
  gx[i] = acc;
}

}  // namespace

Tensor grid_sample(const Tensor& x, const Tensor& grid, bool align_corners, GridPadding padding, GridMode mode) {
  const GridGeom g = grid_geom(x, grid);
  Tensor y = empty({g.N, g.C, g.Ho, g.Wo}, x.dtype(), x.device());
  const int64_t n = y.numel();
  if (n == 0) return y;
  const GridCfg cfg = grid_cfg(align_corners, padding, mode);
  dispatch_float(x.dtype(), "grid_sample", [&](auto tag) {
    using T = decltype(tag);
    CORTEX_LAUNCH(grid_sample_kernel<T>, blocks_for(n), kBlock, 0, stream(), static_cast<const T*>(x.raw_data()),
                  strides4(x), static_cast<const T*>(grid.raw_data()), strides4(grid), g, cfg, n,
                  static_cast<T*>(y.raw_data()));
  });
  return y;
}

GridSampleGrads grid_sample_backward(const Tensor& gy, const Tensor& x, const Tensor& grid, bool align_corners,
                                     GridPadding padding, GridMode mode, bool grid_grad) {
  const GridGeom g = grid_geom(x, grid);
  GridSampleGrads r{zeros(x.shape(), x.dtype(), x.device()),
                    grid_grad ? empty(grid.shape(), grid.dtype(), grid.device()) : Tensor()};
  const int64_t np = g.N * g.Ho * g.Wo, ny = np * g.C;
  if (np == 0) return r;
  const GridCfg cfg = grid_cfg(align_corners, padding, mode);
  dispatch_float(x.dtype(), "grid_sample_backward", [&](auto tag) {
    using T = decltype(tag);
    const T* gyp = static_cast<const T*>(gy.raw_data());
    const T* gp = static_cast<const T*>(grid.raw_data());
    if (ny > 0 && deterministic())
      CORTEX_LAUNCH(grid_sample_input_grad_plane_kernel<T>, blocks_for(g.N * g.C), kBlock, 0, stream(), gyp,
                    strides4(gy), gp, strides4(grid), g, cfg, g.N * g.C, static_cast<T*>(r.input.raw_data()));
    else if (ny > 0)
      CORTEX_LAUNCH(grid_sample_input_grad_kernel<T>, blocks_for(ny), kBlock, 0, stream(), gyp, strides4(gy), gp,
                    strides4(grid), g, cfg, ny, static_cast<T*>(r.input.raw_data()));
    if (grid_grad) {
      CORTEX_LAUNCH(grid_sample_grid_grad_kernel<T>, blocks_for(np), kBlock, 0, stream(), gyp, strides4(gy),
                    static_cast<const T*>(x.raw_data()), strides4(x), gp, strides4(grid), g, cfg, np,
                    static_cast<T*>(r.grid.raw_data()));
    }
  });
  return r;
}

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  Tensor y = empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  const int64_t n = y.numel();
  if (n == 0) return y;
  const ResizeGeom g{x.size(1), x.size(2), x.size(3), out_h, out_w};
  const auto lh = lerps(out_h, g.H, align_corners), lw = lerps(out_w, g.W, align_corners);
  dispatch_float(x.dtype(), "resize_bilinear", [&](auto tag) {
    using T = decltype(tag);
    const ResizeTables t = resize_tables<T>(lh, lw, x.device());
    CORTEX_LAUNCH(resize_kernel<T>, blocks_for(n), kBlock, 0, stream(), static_cast<const T*>(x.raw_data()),
                  strides4(x), g, static_cast<const int64_t*>(t.idx.raw_data()),
                  static_cast<const T*>(t.wts.raw_data()), n, static_cast<T*>(y.raw_data()));
  });
  return y;
}

Tensor resize_bilinear_backward(const Tensor& gy, const Shape& x_shape, bool align_corners) {
  Tensor gx = empty(x_shape, gy.dtype(), gy.device());
  const int64_t n = gx.numel();
  if (n == 0) return gx;
  if (gy.numel() == 0) return zeros(x_shape, gy.dtype(), gy.device());
  const ResizeGeom g{x_shape[1], x_shape[2], x_shape[3], gy.size(2), gy.size(3)};
  const auto lh = lerps(g.OH, g.H, align_corners), lw = lerps(g.OW, g.W, align_corners);
  std::vector<int64_t> rs, re, cs, ce;
  invert_lerps(lh, g.H, rs, re);
  invert_lerps(lw, g.W, cs, ce);
  std::vector<int64_t> tab;
  const Csr off{0, static_cast<int64_t>(rs.size()), static_cast<int64_t>(rs.size() + cs.size()),
                static_cast<int64_t>(rs.size() + cs.size() + re.size())};
  for (const auto* v : {&rs, &cs, &re, &ce}) tab.insert(tab.end(), v->begin(), v->end());
  const Tensor tt = from_vector(tab, {static_cast<int64_t>(tab.size())}, DType::Int64, gy.device());
  dispatch_float(gy.dtype(), "resize_bilinear_backward", [&](auto tag) {
    using T = decltype(tag);
    const ResizeTables t = resize_tables<T>(lh, lw, gy.device());
    CORTEX_LAUNCH(resize_backward_kernel<T>, blocks_for(n), kBlock, 0, stream(),
                  static_cast<const T*>(gy.raw_data()), strides4(gy), g, static_cast<const int64_t*>(tt.raw_data()),
                  off, static_cast<const T*>(t.wts.raw_data()), n, static_cast<T*>(gx.raw_data()));
  });
  return gx;
}

Tensor pad(const Tensor& x, const Shape& pads, PadMode mode, double value) {
  const PadDims p = pad_dims("pad", x.shape(), pads, x.strides());
  Shape os(x.shape().size());
  for (size_t d = 0; d < os.size(); ++d) os[d] = p.out[d];
  Tensor y = empty(os, x.dtype(), x.device());
  const int64_t n = y.numel();
  if (n == 0) return y;
  // The fill converted by the project's rules (as the CPU), moved as bits.
  const Tensor fill = scalar(value, x.dtype());
  const size_t es = dtype_size(x.dtype());
  const int m = mode == PadMode::Constant ? 0 : mode == PadMode::Reflect ? 1 : 2;
  auto run = [&](auto tag) {
    using U = decltype(tag);
    U f;
    std::memcpy(&f, fill.raw_data(), sizeof(U));
    CORTEX_LAUNCH(pad_kernel<U>, blocks_for(n), kBlock, 0, stream(), static_cast<const U*>(x.raw_data()), p, m, f,
                  n, static_cast<U*>(y.raw_data()));
  };
  switch (es) {
    case 1: run(uint8_t{}); break;
    case 2: run(uint16_t{}); break;
    case 4: run(uint32_t{}); break;
    case 8: run(uint64_t{}); break;
    default: throw Error(detail::cat("pad: unsupported element size ", es, " on the CUDA device"));
  }
  return y;
}

Tensor pad_backward(const Tensor& gy, const Shape& x_shape, const Shape& pads, PadMode mode) {
  const PadDims p = pad_dims("pad_backward", x_shape, pads, x_shape.empty() ? Shape{} : gy.strides());
  Tensor gx = empty(x_shape, gy.dtype(), gy.device());
  const int64_t n = gx.numel();
  if (n == 0) return gx;
  if (gy.numel() == 0) return zeros(x_shape, gy.dtype(), gy.device());
  // Per dim, the output indices reading input index i, ascending, as CSR (kernels/cpu/sample.cpp's).
  const int m = mode == PadMode::Constant ? 0 : mode == PadMode::Reflect ? 1 : 2;
  std::vector<std::vector<int64_t>> start(p.nd), idx(p.nd);
  for (int d = 0; d < p.nd; ++d) {
    std::vector<int64_t> map(static_cast<size_t>(p.out[d]));
    for (int64_t o = 0; o < p.out[d]; ++o) map[o] = pad_src(o, p.n[d], p.l[d], m);
    start[d].assign(static_cast<size_t>(p.n[d] + 1), 0);
    for (int64_t s : map)
      if (s >= 0) ++start[d][s + 1];
    for (int64_t i = 0; i < p.n[d]; ++i) start[d][i + 1] += start[d][i];
    idx[d].resize(static_cast<size_t>(start[d][p.n[d]]));
    std::vector<int64_t> fillp(start[d].begin(), start[d].end() - 1);
    for (int64_t o = 0; o < p.out[d]; ++o)
      if (map[o] >= 0) idx[d][fillp[map[o]]++] = o;
  }
  std::vector<int64_t> tab;
  PadInv iv{};
  for (int d = 0; d < p.nd; ++d) {
    iv.start[d] = static_cast<int64_t>(tab.size());
    tab.insert(tab.end(), start[d].begin(), start[d].end());
  }
  for (int d = 0; d < p.nd; ++d) {
    iv.idx[d] = static_cast<int64_t>(tab.size());
    tab.insert(tab.end(), idx[d].begin(), idx[d].end());
  }
  const Tensor tt = from_vector(tab, {static_cast<int64_t>(tab.size())}, DType::Int64, gy.device());
  dispatch_float(gy.dtype(), "pad_backward", [&](auto tag) {
    using T = decltype(tag);
    CORTEX_LAUNCH(pad_backward_kernel<T>, blocks_for(n), kBlock, 0, stream(), static_cast<const T*>(gy.raw_data()),
                  p, static_cast<const int64_t*>(tt.raw_data()), iv, n, static_cast<T*>(gx.raw_data()));
  });
  return gx;
}

}  // namespace cortex::kernels::CORTEX_BACKEND
