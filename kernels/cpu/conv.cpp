// CPU conv2d and its adjoints: im2col + Eigen GEMM, NCHW. On AVX-512 builds the float forward
// runs on the packed GEMM of conv_gemm.h instead (conv2d_packed), its im2col written straight
// into that GEMM's packed strips: Eigen 3.4's 48x4 float kernel left AlexNet at 0.83x PyTorch.
//
// For one image and one group, im2col lays the receptive fields out as col (Kg, P) with rows
// (c, kh, kw) and columns (oh, ow), Kg = C/groups * KH * KW, P = OH * OW. Then
//   conv2d:              y_g (Og, P)   = w_g (Og, Kg) col
//   conv2d_input_grad:   dcol (Kg, P)  = w_g^T gy_g, and col2im adds dcol back onto gx
//   conv2d_weight_grad:  dw_g (Og, Kg) = sum over images of gy_g col^T
// so the adjoints are exact transposes of the forward map.
//
// Parallelism: the work is cut into independent units, each with its own im2col buffer and a
// single-threaded GEMM, run as an OpenMP loop; only when there are fewer units than threads do
// the units run one after another, each GEMM's tiles spread over the threads (gemm_tiles.h).
// The units:
//   - conv2d: (piece, group), a piece being one image, a band of output rows of one image (when
//     there are too few images to share among the threads, or the buffer would be too big), or
//     several small images side by side (P < kMinCols: a wider GEMM runs much faster);
//   - input grad: (whole images, group, channel block): col2im of one image overlaps between
//     output rows, so units split the input channels (disjoint gx rows) instead of output rows;
//   - weight grad: (group, channel block, batch segment): each unit owns a block of dw columns and
//     sums over its images in order; batch segments (summed at the end) only when the channels
//     cannot be split evenly.
// Determinism: the units, the GEMMs' shapes and tiles and the order in which partial sums are
// added depend on the geometry only (planned for kPlanThreads threads, whatever the real count),
// so the result is bit-identical for any thread count (docs/conv.md). The packed float forward
// may cut its work by the real thread count: each of its outputs is computed the same way in any
// cut (conv_gemm.h).
#include "kernels/cpu/conv.h"

#include <omp.h>

#include <algorithm>
#include <memory>
#include <numeric>
#include <type_traits>
#include <vector>

#include "kernels/cpu/conv_gemm.h"
#include "kernels/cpu/conv_winograd.h"
#include "kernels/cpu/gemm_tiles.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/scratch.h"
#include "kernels/shape.h"
#ifdef CORTEX_CONV_GEMM
#include <immintrin.h>  // the packed path's im2col
#endif

namespace cortex::kernels::cpu {
namespace {


constexpr int64_t kMinCols = 256;        // below this many GEMM columns, batch several images
// The thread count the work split is planned for, whatever the real one: a function of the
// geometry only, so that the sums' order is too. 4 units per image split evenly over 1, 2 or 4.
constexpr int64_t kPlanThreads = 4;
constexpr int64_t kPassBudget = 600000;  // floats of one depth pass of a packed unit's im2col (2.4 MB)
constexpr int64_t kDirectCols = 4096;  // conv2d_packed reads w in place up to this many output columns
constexpr int64_t kColBudget = 1 << 22;  // elements of one im2col buffer before rows are banded

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Geom {
  int64_t N, C, H, W, O, KH, KW, OH, OW, G, Cg, Og, KK, Kg, P, HW;
  int64_t sh, sw, ph, pw, dh, dw;
  bool identity;  // 1x1 kernel, stride 1, no padding: an image is its own im2col
};

Geom geom(const Shape& xs, const Shape& ws, const Conv2dParams& p) {
  Geom g{};
  g.N = xs[0], g.C = xs[1], g.H = xs[2], g.W = xs[3];
  g.O = ws[0], g.KH = ws[2], g.KW = ws[3];
  g.sh = p.stride_h, g.sw = p.stride_w, g.ph = p.pad_h, g.pw = p.pad_w, g.dh = p.dilation_h, g.dw = p.dilation_w;
  g.G = p.groups;
  const Shape ys = conv2d_out_shape("conv2d", xs, ws, p);
  g.OH = ys[2], g.OW = ys[3];
  g.Cg = g.C / g.G, g.Og = g.O / g.G, g.KK = g.KH * g.KW, g.Kg = g.Cg * g.KK;
  g.P = g.OH * g.OW, g.HW = g.H * g.W;
  g.identity = g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
  return g;
}

// Output columns ow whose input column iw = ow * s + off lies in [0, W): [lo, hi).
struct Span {
  int64_t lo, hi;
};
Span valid_cols(int64_t off, int64_t s, int64_t W, int64_t OW) {
  const int64_t lo = off >= 0 ? 0 : ceil_div(-off, s);
  const int64_t hi = W - off <= 0 ? 0 : std::min(OW, ceil_div(W - off, s));
  return {std::min(lo, hi), hi};
}

// Row (c, kh, kw) of the im2col of x (C, H, W) for output rows [oh0, oh1): (oh1 - oh0) * OW
// values at dst, column (oh - oh0) * OW + ow, zero where the window reads padding. No per-pixel
// test: the valid column span is computed once per row.
template <class T>
void im2col_row(const Geom& g, const T* x, int64_t c, int64_t kh, int64_t kw, int64_t oh0, int64_t oh1, T* dst) {
  const int64_t off = kw * g.dw - g.pw;  // iw = ow * sw + off
  const Span s = valid_cols(off, g.sw, g.W, g.OW);
  for (int64_t oh = oh0; oh < oh1; ++oh, dst += g.OW) {
    const int64_t ih = oh * g.sh - g.ph + kh * g.dh;
    if (ih < 0 || ih >= g.H) {
      std::fill(dst, dst + g.OW, T(0));
      continue;
    }
    const T* src = x + (c * g.H + ih) * g.W + off;  // src[ow * sw] for ow in [s.lo, s.hi)
    std::fill(dst, dst + s.lo, T(0));
    if (g.sw == 1) {
      std::copy(src + s.lo, src + s.hi, dst + s.lo);
    } else {
      for (int64_t ow = s.lo; ow < s.hi; ++ow) dst[ow] = src[ow * g.sw];
    }
    std::fill(dst + s.hi, dst + g.OW, T(0));
  }
}

// col rows (c, kh, kw) for channels [0, nc) of x (nc, H, W) and output rows [oh0, oh1); row r
// starts at col + r * ld.
template <class T>
void im2col(const Geom& g, const T* x, int64_t nc, int64_t oh0, int64_t oh1, T* col, int64_t ld) {
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) im2col_row(g, x, c, kh, kw, oh0, oh1, col + ((c * g.KH + kh) * g.KW + kw) * ld);
}

// The transpose of im2col: adds col (same layout, all output rows) onto x (nc, H, W).
template <class T>
void col2im(const Geom& g, const T* col, int64_t ld, int64_t nc, T* x) {
  for (int64_t c = 0; c < nc; ++c)
    for (int64_t kh = 0; kh < g.KH; ++kh)
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const T* row = col + ((c * g.KH + kh) * g.KW + kw) * ld;
        const int64_t off = kw * g.dw - g.pw;
        const Span s = valid_cols(off, g.sw, g.W, g.OW);
        for (int64_t oh = 0; oh < g.OH; ++oh) {
          const int64_t ih = oh * g.sh - g.ph + kh * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          const T* src = row + oh * g.OW;
          T* dst = x + (c * g.H + ih) * g.W + off;  // dst[ow * sw] for ow in [s.lo, s.hi)
          if (g.sw == 1) {
            for (int64_t ow = s.lo; ow < s.hi; ++ow) dst[ow] += src[ow];
          } else {
            for (int64_t ow = s.lo; ow < s.hi; ++ow) dst[ow * g.sw] += src[ow];
          }
        }
      }
}

// Images [n0, n1) and their output rows [oh0, oh1) (all rows when there are several images).
struct Piece {
  int64_t n0, n1, oh0, oh1;
  bool single() const { return n1 - n0 == 1; }
};

// The batch cut into pieces: several images per piece when the images are small (about `images`
// each; 0: enough for kMinCols columns), else each image in `bands` bands of output rows.
std::vector<Piece> make_pieces(const Geom& g, int64_t bands, int64_t images = 0) {
  std::vector<Piece> out;
  if (g.P < kMinCols && g.N > 1) {
    if (images <= 0) images = ceil_div(kMinCols, std::max<int64_t>(g.P, 1));
    const int64_t nchunks = ceil_div(g.N, std::min(g.N, images));
    const int64_t per = ceil_div(g.N, nchunks);  // balanced chunk size
    for (int64_t n0 = 0; n0 < g.N; n0 += per) out.push_back({n0, std::min(g.N, n0 + per), 0, g.OH});
    return out;
  }
  bands = std::clamp<int64_t>(bands, 1, g.OH);
  const int64_t rows = ceil_div(g.OH, bands);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t oh0 = 0; oh0 < g.OH; oh0 += rows) out.push_back({n, n + 1, oh0, std::min(g.OH, oh0 + rows)});
  return out;
}

// How many parts to cut `have` independent jobs into so that `threads` threads get equal shares
// (1 when they already do).
int64_t split_for_threads(int64_t have, int64_t threads) {
  if (threads <= 1 || have % threads == 0) return 1;
  if (have < threads) return ceil_div(threads, have);
  return have < 4 * threads ? ceil_div(4 * threads, have) : 1;
}

template <class T>
struct Work {
  Scratch<T> col, buf, pa;  // pa: the packed input grad's A panels
  Scratch<T> lines;          // AVX2 builds: conv2d_packed's im2col lines (im2col_line)
};

// Each thread's scratch, kept from call to call: fresh buffers of megabytes would be faulted in
// page by page on every layer (about 1.5% of AlexNet's forward). It holds the largest buffers a
// thread has needed: about kColBudget elements of im2col at most, and one output block.
template <class T>
Work<T>& thread_work() {
  static thread_local Work<T> work;
  return work;
}

// Runs f(u, work) for u in [0, units): spread over the threads when there are at least as many
// units as threads (each GEMM single-threaded), else in order with each GEMM's tiles threaded.
template <class T, class F>
void run_units(int64_t units, F&& f) {
  if (units >= omp_get_max_threads() && units > 1) {
#pragma omp parallel
    {
      Work<T>& work = thread_work<T>();
#pragma omp for schedule(static)
      for (int64_t u = 0; u < units; ++u) f(u, work);
    }
  } else {
    Work<T>& work = thread_work<T>();
    for (int64_t u = 0; u < units; ++u) f(u, work);
  }
}

// gy rows of group gi for the images of a piece as one (Og, cols) matrix: a view for one image,
// else gathered image after image into buf.
template <class T>
gemm::Mat<T> gy_block(const Geom& g, const T* gy, const Piece& pc, int64_t gi, Scratch<T>& buf) {
  const int64_t cols = (pc.n1 - pc.n0) * (pc.oh1 - pc.oh0) * g.OW;
  if (pc.single()) return {gy + (pc.n0 * g.O + gi * g.Og) * g.P + pc.oh0 * g.OW, g.Og, cols, g.P, 1};
  T* b = buf.get(g.Og * cols);
  for (int64_t j = 0; j < pc.n1 - pc.n0; ++j)
    for (int64_t o = 0; o < g.Og; ++o) {
      const T* src = gy + ((pc.n0 + j) * g.O + gi * g.Og + o) * g.P;
      std::copy(src, src + g.P, b + o * cols + j * g.P);
    }
  return {b, g.Og, cols, cols, 1};
}

// im2col of channels [c0, c1) of group gi for the images of a piece: (rows, cols) with rows =
// (c1 - c0) * KK. A view of x itself for a 1x1 stride-1 unpadded kernel on one image.
template <class T>
gemm::Mat<T> col_block(const Geom& g, const T* x, const Piece& pc, int64_t gi, int64_t c0, int64_t c1,
                       Scratch<T>& col) {
  const int64_t rows = (c1 - c0) * g.KK, nimg = pc.n1 - pc.n0, cols = nimg * (pc.oh1 - pc.oh0) * g.OW;
  const int64_t chan0 = gi * g.Cg + c0;
  if (g.identity && pc.single()) return {x + (pc.n0 * g.C + chan0) * g.HW + pc.oh0 * g.OW, rows, cols, g.HW, 1};
  T* b = col.get(rows * cols);
  for (int64_t j = 0; j < nimg; ++j)
    im2col(g, x + ((pc.n0 + j) * g.C + chan0) * g.HW, c1 - c0, pc.oh0, pc.oh1, b + j * g.P, cols);
  return {b, rows, cols, cols, 1};
}

#ifdef CORTEX_CONV_GEMM
#ifndef CORTEX_GEMM_AVX512
// AVX2: outputs [ow, ow + 8) of one im2col row, src[ow' sw] being output ow' (valid for ow' in
// [s.lo, s.hi) when `inside`, else the zero padding). At stride 2 or 4 (the AVX-512 loop's
// strided16, in 8 lanes) the input floats they read come in 2 or 4 loads, compacted by shuffles.
// Plain loads when every float they read lies inside the row, else masked ones, whose lanes of
// invalid outputs read as zero. ResNet-50's stem (7x7, stride 2), one thread, batch 1: 4.4-4.8
// -> 3.7-3.9 ms with the stores of store_lanes8; AlexNet's conv1 (stride 4) about 3% faster.
// Inlined: called once per vector, and its loop invariants (the stride, the lane constants) then
// leave the loop.
[[gnu::always_inline]] inline __m256 im2col8(const Geom& g, const float* src, int64_t off, Span s, int64_t ow, bool inside) {
  auto bits8 = [](int64_t from, int64_t to) {  // bits [from, to) of a byte, both clamped to [0, 8]
    from = std::clamp<int64_t>(from, 0, 8), to = std::clamp<int64_t>(to, 0, 8);
    return ((1u << to) - 1u) & ~((1u << from) - 1u);
  };
  auto mask_of = [](unsigned bits) {  // lane i set where bit i is
    const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), lane), lane);
  };
  // src[ow sw + i] for i < 8 sw inside the row: iw = ow sw + off + i in [0, W)
  const bool whole = inside && ow >= s.lo && (ow + 8) * g.sw + off <= g.W;
  const unsigned valid = inside ? bits8(s.lo - ow, s.hi - ow) : 0u;
  const float* p = src + ow * g.sw;
  auto load = [&](const float* q, unsigned bits) { return whole ? _mm256_loadu_ps(q) : _mm256_maskload_ps(q, mask_of(bits)); };
  if (g.sw == 1) return load(p, valid);
  if (g.sw == 2) {  // outputs 4j + i read lane 2i of load j
    auto spread = [](unsigned b) { return (b & 1u) | (b & 2u) << 1 | (b & 4u) << 2 | (b & 8u) << 3; };
    const __m256 a0 = load(p, spread(valid & 0xFu)), a1 = load(p + 8, spread(valid >> 4));
    // [s0 s2 s8 s10 | s4 s6 s12 s14], then its 64-bit quarters in order 0 2 1 3
    const __m256 t = _mm256_shuffle_ps(a0, a1, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  __m256 a[4];  // stride 4: outputs 2j and 2j + 1 read lanes 0 and 4 of load j
  for (int j = 0; j < 4; ++j) a[j] = load(p + 8 * j, (valid >> (2 * j) & 1u) | (valid >> (2 * j + 1) & 1u) << 4);
  const __m256 t0 = _mm256_shuffle_ps(a[0], a[1], 0);  // [s0 s0 s8 s8 | s4 s4 s12 s12]
  const __m256 t1 = _mm256_shuffle_ps(a[2], a[3], 0);  // [s16 s16 s24 s24 | s20 s20 s28 s28]
  const __m256 t = _mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));  // [s0 s8 s16 s24 | s4 s12 s20 s28]
  return _mm256_permutevar8x32_ps(t, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

#endif

// Row (c, kh, kw) of the im2col of one image x (C, H, W), output rows [oh0, oh1), written into
// packed column strips (conv_gemm.h): its column i = (oh - oh0) * OW + ow is column p0 + i of the
// GEMM, at dst + pass_index(p0 + i, stride) (dst: this row's place in the pass, row r at
// r kSub). At stride 1, sixteen output columns at
// a time: a masked load reads only the lanes inside the input (the rest are the zero padding),
// and one or two masked stores put them in their strips. Strides 2 and 4 likewise, their
// sixteen outputs compacted from 2 or 4 masked loads by permutes; other strides go element by
// element (a gather is slower on AMD's cores). AVX2 builds do strides 1, 2 and 4 eight at a
// time (below). Writing the strips directly, rather than an im2col row that
// is then cut into strips, avoids reloading the row while its overlapping stores are still in
// flight (a store-forwarding stall per vector at 13-wide maps). Packing strip by strip instead
// (each strip's rows contiguous, used at once) measured slower: every row then reads another
// channel plane of x.
void pack_im2col_row(const Geom& g, const float* x, int64_t c, int64_t kh, int64_t kw, int64_t oh0, int64_t oh1,
                     int64_t p0, float* dst, int64_t stride) {
  const int64_t off = kw * g.dw - g.pw;  // iw = ow * sw + off
  const Span s = valid_cols(off, g.sw, g.W, g.OW);
#ifdef CORTEX_GEMM_AVX512
  constexpr int64_t NR = conv_gemm::kNR;
  auto lanes = [](int64_t from, int64_t to) {  // mask of lanes [from, to), both clamped to [0, 16]
    from = std::clamp<int64_t>(from, 0, 16), to = std::clamp<int64_t>(to, 0, 16);
    return static_cast<__mmask16>(((1u << to) - 1u) & ~((1u << from) - 1u));
  };
  // Sixteen outputs ow0.. at stride 2 or 4: the input floats they read, in 2 or 4 masked loads
  // (only the lanes of valid outputs: the rest read as the zero padding), compacted by permutes.
  // AlexNet's conv1 (stride 4) spent more time in an element-by-element im2col than in its GEMM.
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i fourth = _mm512_set_epi32(28, 24, 20, 16, 12, 8, 4, 0, 28, 24, 20, 16, 12, 8, 4, 0);
  // Bit i of a byte (a nibble) moved to bit 2i (4i): which input lanes a stride-2 (-4) load needs.
  static constexpr auto kSpread = [] {
    struct {
      uint16_t by2[256], by4[16];
    } t{};
    for (unsigned b = 0; b < 256; ++b)
      for (unsigned i = 0; i < 8; ++i) {
        if ((b >> i) & 1u) t.by2[b] |= static_cast<uint16_t>(1u << (2 * i));
        if (b < 16 && i < 4 && ((b >> i) & 1u)) t.by4[b] |= static_cast<uint16_t>(1u << (4 * i));
      }
    return t;
  }();
  auto strided16 = [&](const float* src, int64_t ow0, __mmask16 valid) -> __m512 {
    const float* p = src + ow0 * g.sw;
    if (g.sw == 2) {
      const __m512 a0 = _mm512_maskz_loadu_ps(kSpread.by2[valid & 0xFFu], p);
      const __m512 a1 = _mm512_maskz_loadu_ps(kSpread.by2[valid >> 8], p + 16);
      return _mm512_permutex2var_ps(a0, even, a1);
    }
    __m512 a[4];
    for (int j = 0; j < 4; ++j)
      a[j] = _mm512_maskz_loadu_ps(kSpread.by4[(valid >> (4 * j)) & 0xFu], p + 16 * j);
    return _mm512_mask_blend_ps(0xFF00, _mm512_permutex2var_ps(a[0], fourth, a[1]), _mm512_permutex2var_ps(a[2], fourth, a[3]));
  };
#endif
  for (int64_t oh = oh0; oh < oh1; ++oh, p0 += g.OW) {
    const int64_t ih = oh * g.sh - g.ph + kh * g.dh;
    const bool inside = ih >= 0 && ih < g.H;
    const float* src = x + (c * g.H + (inside ? ih : 0)) * g.W + off;  // src[ow * sw] for ow in [s.lo, s.hi)
    if (g.sw != 1 && g.sw != 2 && g.sw != 4) {
      const int64_t lo = inside ? s.lo : g.OW, hi = inside ? s.hi : g.OW;
      for (int64_t ow = 0; ow < g.OW;) {  // runs that stay inside one sub-strip
        const int64_t p = p0 + ow, n = std::min(g.OW - ow, conv_gemm::kSub - p % conv_gemm::kSub);
        float* d = dst + conv_gemm::pass_index(p, stride) - ow;  // d[ow] for ow in this run
        for (const int64_t end = ow + n; ow < end; ++ow) d[ow] = ow >= lo && ow < hi ? src[ow * g.sw] : 0.0f;
      }
      continue;
    }
#ifdef CORTEX_GEMM_AVX512
    static_assert(conv_gemm::kSub == NR, "one sub-strip per strip on AVX-512");
    int64_t q = p0 % NR;  // column p0's place in its strip, followed without divisions
    float* d = dst + p0 / NR * stride + q;
    for (int64_t ow = 0; ow < g.OW; ow += 16) {
      const __mmask16 valid = inside ? lanes(s.lo - ow, s.hi - ow) : 0;
      const __m512 v = g.sw == 1 ? _mm512_maskz_loadu_ps(valid, src + ow) : strided16(src, ow, valid);
      const int64_t n = std::min<int64_t>(16, g.OW - ow), first = std::min(n, NR - q);
      _mm512_mask_storeu_ps(d, lanes(0, first), v);
      // Lanes past the strip's end start the next strip: shifting the base back by `first`
      // puts lane `first` at that strip's column 0.
      if (n > first) _mm512_mask_storeu_ps(d + stride - NR, lanes(first, n), v);
      q += n, d += n;
      if (q >= NR) q -= NR, d += stride - NR;
    }
#else
    // AVX2: eight outputs at a time, as above with 24-column sub-strips (kc x kSub each,
    // one after another: the next one kc kSub floats on). A whole vector inside its sub-strip is
    // one plain store; a row's end and a sub-strip's edge store lane by lane (store_lanes8: a
    // vmaskmovps store costs ten plain ones on Zen 3). The element-by-element loop was a tenth of
    // ResNet-50's batch-1 forward on the EPYC.
    constexpr int64_t SR = conv_gemm::kSub;
    const int64_t sub = stride / conv_gemm::kNR * SR;  // from one sub-strip to the next
    int64_t q = p0 % SR;  // column p0's place in its sub-strip
    float* d = dst + conv_gemm::pass_index(p0, stride);
    for (int64_t ow = 0; ow < g.OW; ow += 8) {
      const __m256 v = im2col8(g, src, off, s, ow, inside);
      const int64_t n = std::min<int64_t>(8, g.OW - ow), first = std::min(n, SR - q);
      conv_gemm::store_lanes8(d, v, 0, first);
      // Lanes past the sub-strip's end start the next one (see the AVX-512 loop).
      if (n > first) conv_gemm::store_lanes8(d + sub - SR, v, first, n);
      q += n, d += n;
      if (q >= SR) q -= SR, d += sub - SR;
    }
#endif
  }
}

#ifndef CORTEX_GEMM_AVX512
// AVX2 builds write the rows of narrow maps (OW < kLineMaxOW) in two steps. im2col_line writes
// row (c, kh, kw) of one image's im2col, output rows [oh0, oh1), as a contiguous line:
// line[(oh - oh0) OW + ow]. Eight outputs at a time at strides 1, 2 and 4, each vector one plain
// store whose lanes past a row's end spill into the next row's place (written after it) or, after
// the last row, into 8 floats of padding the caller leaves; other strides element by element.
// line_to_strips then copies a line of `cols` columns into its row of the pass's 24-column
// sub-strips, three plain vectors per sub-strip. Straight into the sub-strips, nearly every
// 13-wide output row crossed a sub-strip's edge or ended inside a vector and took partial
// stores; on 56-wide maps the extra copy costs more than the few partial stores it saves.
// AlexNet's conv2-4 at batch 1, one thread: 4-6% faster (docs/conv.md).
constexpr int64_t kLineMaxOW = 32;
void im2col_line(const Geom& g, const float* x, int64_t c, int64_t kh, int64_t kw, int64_t oh0, int64_t oh1,
                 float* line) {
  const int64_t off = kw * g.dw - g.pw;  // iw = ow * sw + off
  const Span s = valid_cols(off, g.sw, g.W, g.OW);
  for (int64_t oh = oh0; oh < oh1; ++oh, line += g.OW) {
    const int64_t ih = oh * g.sh - g.ph + kh * g.dh;
    const bool inside = ih >= 0 && ih < g.H;
    const float* src = x + (c * g.H + (inside ? ih : 0)) * g.W + off;  // src[ow * sw] for ow in [s.lo, s.hi)
    if (g.sw != 1 && g.sw != 2 && g.sw != 4) {
      const int64_t lo = inside ? s.lo : g.OW, hi = inside ? s.hi : g.OW;
      for (int64_t ow = 0; ow < g.OW; ++ow) line[ow] = ow >= lo && ow < hi ? src[ow * g.sw] : 0.0f;
      continue;
    }
    for (int64_t ow = 0; ow < g.OW; ow += 8) _mm256_storeu_ps(line + ow, im2col8(g, src, off, s, ow, inside));
  }
}

// Columns [0, cols) of a line into row r of a pass's packed strips, dst = the pass + r kSub.
void line_to_strips(const float* line, int64_t cols, float* dst, int64_t stride) {
  constexpr int64_t SR = conv_gemm::kSub;
  static_assert(SR == 24, "three 8-float vectors per sub-strip row");
  const int64_t sub = stride / conv_gemm::kNR * SR;  // from one sub-strip to the next
  int64_t i = 0;
  for (; i + SR <= cols; i += SR, dst += sub) {
    _mm256_storeu_ps(dst, _mm256_loadu_ps(line + i));
    _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(line + i + 8));
    _mm256_storeu_ps(dst + 16, _mm256_loadu_ps(line + i + 16));
  }
  for (int64_t j = 0; i + j < cols; ++j) dst[j] = line[i + j];
}
#endif

// float conv2d on the packed GEMM of conv_gemm.h, with the same units as conv2d_impl: the weights
// are packed once per call; each unit runs the depth passes, writing each pass's im2col rows
// straight into packed column strips.
// `msplit` > 1 also cuts each (piece, group) into that many blocks of output channels (whole
// panels), each unit packing the piece's im2col for itself: at batch 1 on small maps this shares
// the threads out without the narrow strips of output-row bands (a 14x14 map in two bands of 98
// columns runs 2 x 2.4 strips' worth of FMAs where the whole map runs 4.4).
void conv2d_packed(const Geom& g, const float* x, const float* w, const float* bias, float* y,
                   const std::vector<Piece>& pieces, int64_t msplit = 1) {
  namespace cg = conv_gemm;
  // When few columns reuse the weights (batch 1, small maps), the GEMM reads them in place: packing
  // them was up to a fifth of the layer (AlexNet's conv3-5 at batch 1, 2 threads: 0.81-1.27 ms ->
  // 0.69-1.14 ms; docs/conv.md). With many columns the packed panels are faster (ResNet's stem at batch 1,
  // 12544 columns: 5% slower in place). Either way the same sums, so the same bits.
  const bool direct = g.N * g.P <= kDirectCols;
  const int64_t asz = direct ? 0 : cg::packed_a_size(g.Og, g.Kg);
  // Kept from call to call, like the units' scratch: a fresh zeroed vector of megabytes cost a
  // memset and its page faults on every layer (about 2% of a dream step).
  static thread_local Scratch<float> packed_w;
  float* pa = packed_w.get(asz * g.G);
  // Packing is a copy, so the threads share it: at batch 1 it is a third of the GEMM's time
  // (ResNet-50), and done by the calling thread alone it held the other one idle. Chunks of 8
  // panels (64 rows) of each group.
  const int64_t panels = (g.Og + cg::kMR - 1) / cg::kMR, panels_per_chunk = 8;
  const int64_t chunks_per_group = (panels + panels_per_chunk - 1) / panels_per_chunk;
  if (!direct)
    parallel::for_chunks(g.G * chunks_per_group, 1, double(g.G) * double(g.Og) * double(g.Kg), [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        const int64_t gi = c / chunks_per_group, m0 = (c % chunks_per_group) * panels_per_chunk * cg::kMR;
        const int64_t rows = std::min(panels_per_chunk * cg::kMR, g.Og - m0);
        cg::pack_a(w + (gi * g.Og + m0) * g.Kg, g.Kg, rows, g.Kg, pa + gi * asz + m0 * g.Kg);
      }
    });
  const int64_t np = static_cast<int64_t>(pieces.size());
  const int64_t block = ceil_div(panels, msplit) * cg::kMR;  // output channels per unit
  run_units<float>(np * g.G * msplit, [&](int64_t u, Work<float>& work) {
    const Piece& pc = pieces[u / (g.G * msplit)];
    const int64_t gi = (u / msplit) % g.G, m0 = (u % msplit) * block, m1 = std::min(g.Og, m0 + block);
    if (m0 >= m1) return;
    const int64_t nimg = pc.n1 - pc.n0, per = (pc.oh1 - pc.oh0) * g.OW, cols = nimg * per;
    const int64_t strips = cg::b_strips(cols);
    float* pb = work.col.get(cg::packed_b_size(std::min(g.Kg, cg::kKC), cols));
    const float* a = direct ? nullptr : pa + gi * asz + m0 * g.Kg;  // packed panel m0 / kMR
    const float* bg = bias ? bias + gi * g.Og + m0 : nullptr;
    // Straight into y[n, group rows, band columns] (row stride P) for one image; several images
    // side by side go to a buffer, then each image into y.
    const int64_t ldo = pc.single() ? g.P : cols;
    float* out = (pc.single() ? y + (pc.n0 * g.O + gi * g.Og) * g.P + pc.oh0 * g.OW : work.buf.get(g.Og * cols)) + m0 * ldo;
    if (g.Kg == 0) cg::gemm_pass(m1 - m0, cols, 0, 0, 0, a, pb, bg, out, ldo);
    for (int64_t k0 = 0; k0 < g.Kg; k0 += cg::kKC) {
      const int64_t kc = std::min(cg::kKC, g.Kg - k0), stride = cg::b_strip_offset(1, kc);
      // The last strip's columns past `cols` must be zero; the rows below overwrite the rest.
      if (cols % cg::kNR) std::fill_n(pb + (strips - 1) * stride, stride, 0.0f);
#ifndef CORTEX_GEMM_AVX512
      if (g.OW < kLineMaxOW) {
        // Each row's line is copied into the strips `lag` rows after it is written, so that its
        // overlapping stores have left the store buffer by then: about a thousand floats later.
        const int64_t lag = std::clamp<int64_t>(1024 / cols, 1, 7), ring = lag + 1, lw = cols + 8;
        float* lines = work.lines.get(ring * lw);
        for (int64_t k = k0; k < k0 + kc + lag; ++k) {
          if (k < k0 + kc) {
            const int64_t c = k / g.KK, kh = (k % g.KK) / g.KW, kw = k % g.KW;
            float* line = lines + (k - k0) % ring * lw;
            for (int64_t j = 0; j < nimg; ++j)
              im2col_line(g, x + ((pc.n0 + j) * g.C + gi * g.Cg) * g.HW, c, kh, kw, pc.oh0, pc.oh1, line + j * per);
          }
          if (const int64_t r = k - lag - k0; r >= 0) line_to_strips(lines + r % ring * lw, cols, pb + r * cg::kSub, stride);
        }
      } else
#endif
        for (int64_t k = k0; k < k0 + kc; ++k) {
          const int64_t c = k / g.KK, kh = (k % g.KK) / g.KW, kw = k % g.KW;
          for (int64_t j = 0; j < nimg; ++j)
            pack_im2col_row(g, x + ((pc.n0 + j) * g.C + gi * g.Cg) * g.HW, c, kh, kw, pc.oh0, pc.oh1, j * per,
                            pb + (k - k0) * cg::kSub, stride);
        }
      if (direct)
        cg::gemm_pass_direct(m1 - m0, cols, k0, kc, w + (gi * g.Og + m0) * g.Kg, g.Kg, pb, bg, out, ldo);
      else
        cg::gemm_pass(m1 - m0, cols, g.Kg, k0, kc, a, pb, bg, out, ldo);
    }
    if (pc.single()) return;
    for (int64_t j = 0; j < nimg; ++j)
      for (int64_t o = m0; o < m1; ++o)
        std::copy(out + (o - m0) * cols + j * g.P, out + (o - m0) * cols + (j + 1) * g.P,
                  y + ((pc.n0 + j) * g.O + gi * g.Og + o) * g.P);
  });
}

// Images per piece for the packed GEMM when the images are small: among the counts from the
// default (kMinCols columns) to 4 times it, the one whose columns waste least on the last strip's
// padding (AlexNet's 13x13 maps: 2 images leave a 2-column strip, 5 a 29-column one), within the
// im2col budget and keeping a unit per thread.
int64_t packed_images(const Geom& g, int64_t threads) {
  if (g.P >= kMinCols || g.N <= 1 || g.P == 0) return 0;
  const int64_t lo = ceil_div(kMinCols, g.P);
  int64_t best = lo;
  double best_cost = conv_gemm::strip_cost(lo * g.P) / static_cast<double>(lo * g.P);
  for (int64_t n = lo + 1; n <= std::min(g.N, 4 * lo); ++n) {
    if (n * g.P * g.Kg > kColBudget || ceil_div(g.N, n) * g.G < threads) break;
    const double cost = conv_gemm::strip_cost(n * g.P) / static_cast<double>(n * g.P);
    if (cost < best_cost * (1 - 1e-9)) best = n, best_cost = cost;
  }
  return best;
}
#endif

template <class T>
void conv2d_impl(const Geom& g, const T* x, const T* w, const T* bias, T* y) {
  [[maybe_unused]] const int64_t threads = omp_get_max_threads();  // (used by the packed path only)
  const int64_t budget_bands = ceil_div(g.Kg * g.P, kColBudget);
#ifdef CORTEX_CONV_GEMM
  // The packed GEMM runs one unit per thread (a single image is cut into one band per thread).
  // Packing B costs about what
  // a few dozen output channels of FMAs on it save, so convs with fewer output channels per group
  // stay with Eigen too (measured, one thread: 0.36x packed at 1 channel, 0.7-0.9x at 4-24,
  // 1.17x at 32). A 1x1 stride-1 conv is a plain GEMM on x in place, with no im2col at all: it
  // takes the path below, whose float GEMM is the packed kernel too (gemm_tiles.h, with x's rows
  // copied into its strips), cut by packed_gemm among the threads. The choice depends on the
  // geometry only; the packed path's cut may follow the real thread count, as its outputs do not
  // depend on the cut. Except when the whole batch has fewer than two strips of columns
  // (ResNet-50's 7x7 stage at batch 1, 49 columns): gemm_pays leaves that GEMM to Eigen, while
  // this path reads the weights in place (the 1x1 "im2col" is a copy of x's rows). On the EPYC,
  // one thread, 2048 -> 512 and 512 -> 2048 at 7x7: 1.85-1.91 -> 1.69-1.73 ms and 1.86-1.88 ->
  // 1.62-1.66 ms; at batch 8 (392 columns) this path was 15% slower than Eigen image by image.
  if constexpr (std::is_same_v<T, float>) {
    // 3x3 stride-1 convs: Winograd F(2x2, 3x3), 16 multiplies per 2x2 outputs instead of 36
    // (conv_winograd.h; docs/conv.md).
    if (g.G == 1 && g.KH == 3 && g.KW == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1) {
      const winograd::Geometry wg{g.N, g.C, g.H, g.W, g.O, g.OH, g.OW, g.ph, g.pw};
      if (winograd::pays(wg)) {
        winograd::conv3x3(wg, x, w, bias, y);
        return;
      }
    }
    if ((!g.identity || g.N * g.P < 2 * conv_gemm::kNR) && g.Og >= 32) {
      // Too few images for the threads, on a small map: blocks of output channels, not bands.
      if (g.N * g.G < threads && g.P < 512 && g.Og >= 2 * threads * conv_gemm::kMR) {
        conv2d_packed(g, x, w, bias, y, make_pieces(g, budget_bands), threads);
        return;
      }
      int64_t bands = std::max(budget_bands, split_for_threads(g.N * g.G, threads));
      // A unit writes one depth pass of its im2col (its columns by at most kKC rows) before the
      // GEMM reads it; past a core's L2 the GEMM reads it back from L3. So images are cut into
      // more row bands until a pass fits in kPassBudget, a multiple of the threads unless the
      // images already share out evenly. One thread, batch 1: ResNet-50's stem (7.4 MB a pass)
      // 1.9 -> 1.7 ms, AlexNet's conv1 (4.4 MB) 1.25 -> 1.16 ms; two threads: the stem 0.97 ->
      // 0.89 ms, conv1 unchanged.
      const int64_t pass_bands = ceil_div(g.P * std::min(g.Kg, conv_gemm::kKC), kPassBudget);
      if (pass_bands > bands) bands = (g.N * g.G) % threads == 0 ? pass_bands : ceil_div(pass_bands, threads) * threads;
      conv2d_packed(g, x, w, bias, y, make_pieces(g, bands, packed_images(g, threads)));
      return;
    }
  }
#endif
  // A 1x1 stride-1 conv of one image is a GEMM on x in place: no im2col to share out, its GEMM's
  // tiles are (bands would only make them narrower). Other convs cut images into bands so that
  // the im2col is shared out too.
  const int64_t bands = g.identity ? budget_bands : std::max(budget_bands, split_for_threads(g.N * g.G, kPlanThreads));
  const std::vector<Piece> pieces = make_pieces(g, bands);
  const int64_t np = static_cast<int64_t>(pieces.size());
  run_units<T>(np * g.G, [&](int64_t u, Work<T>& work) {
    const Piece& pc = pieces[u / g.G];
    const int64_t gi = u % g.G;
    const gemm::Mat<T> col = col_block(g, x, pc, gi, 0, g.Cg, work.col);
    const gemm::Mat<T> wg{w + gi * g.Og * g.Kg, g.Og, g.Kg, g.Kg, 1};  // w_g (Og, Kg)
    const int64_t cols = col.cols;
    if (pc.single()) {
      // Straight into y[n, group rows, band columns]: (Og, cols) with row stride P.
      T* yg = y + (pc.n0 * g.O + gi * g.Og) * g.P + pc.oh0 * g.OW;
      gemm::gemm(wg, col, yg, g.P, false, bias ? bias + gi * g.Og : nullptr);
      return;
    }
    // Several images side by side: GEMM into a buffer, then each image's block into y.
    T* out = work.buf.get(g.Og * cols);
    gemm::gemm(wg, col, out, cols, false);
    for (int64_t j = 0; j < pc.n1 - pc.n0; ++j)
      for (int64_t o = 0; o < g.Og; ++o) {
        const T* src = out + o * cols + j * g.P;
        T* dst = y + ((pc.n0 + j) * g.O + gi * g.Og + o) * g.P;
        const T b = bias ? bias[gi * g.Og + o] : T(0);
        for (int64_t i = 0; i < g.P; ++i) dst[i] = src[i] + b;
      }
  });
}

#ifdef CORTEX_CONV_GEMM
constexpr int64_t kDcolBudget = 1 << 17;  // elements of one dcol block: 512 KB, kept in L2 for col2im

// float input grad on the packed GEMM of conv_gemm.h: dcol (rows, cols) = w_g^T gy_g, then col2im.
// Units (piece, group, channel block) as in input_grad_impl, but cut by the real thread count:
// each dcol element is the sum over o in order in depth passes of kKC, whatever block or strip it
// falls in, and each gx element is added to by one unit only (its channel), in the same order
// (kh, kw, oh) in any cut. Per unit, gy_g of the piece is packed once into B strips, every depth
// pass after the other (pass k0 at k0 * strips * kNR); then channel sub-blocks of about
// kDcolBudget dcol elements each pack their rows of w_g^T, run the passes and col2im at once,
// while dcol is still in cache.
void input_grad_packed(const Geom& g, const float* gy, const float* w, float* gx, int64_t threads) {
  namespace cg = conv_gemm;
  const std::vector<Piece> pieces = make_pieces(g, 1);  // whole images: col2im overlaps rows
  const int64_t np = static_cast<int64_t>(pieces.size());
  const int64_t nblk = std::min(std::max<int64_t>(g.Cg, 1), split_for_threads(np * g.G, threads));
  const int64_t per = ceil_div(g.Cg, nblk);
  const int64_t units = np * g.G * nblk;
  auto unit = [&](int64_t u, Work<float>& work) {
    const Piece& pc = pieces[u / (g.G * nblk)];
    const int64_t gi = (u / nblk) % g.G, c0 = std::min(g.Cg, (u % nblk) * per), c1 = std::min(g.Cg, c0 + per);
    if (c0 == c1) return;
    const int64_t nimg = pc.n1 - pc.n0, cols = nimg * g.P, strips = cg::b_strips(cols), K = g.Og;
    // B: gy_g (Og, cols), columns (image, oh, ow); the last strip's columns past cols zero.
    float* pb = work.buf.get(cg::packed_b_size(K, cols));
    for (int64_t k0 = 0; k0 < K; k0 += cg::kKC) {
      const int64_t kc = std::min(cg::kKC, K - k0), stride = cg::b_strip_offset(1, kc);
      float* pass = pb + k0 * strips * cg::kNR;
      if (cols % cg::kNR) std::fill_n(pass + (strips - 1) * stride, stride, 0.0f);
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t j = 0; j < nimg; ++j) {
          const float* src = gy + ((pc.n0 + j) * g.O + gi * g.Og + k0 + k) * g.P;
          for (int64_t i = 0; i < g.P;) {  // runs that stay inside one sub-strip
            const int64_t p = j * g.P + i, n = std::min(g.P - i, cg::kSub - p % cg::kSub);
            std::copy(src + i, src + i + n, pass + cg::pass_index(p, stride) + k * cg::kSub);
            i += n;
          }
        }
    }
    const int64_t cpb = std::clamp<int64_t>(kDcolBudget / std::max<int64_t>(g.KK * cols, 1), 1, c1 - c0);
    for (int64_t b0 = c0; b0 < c1; b0 += cpb) {
      const int64_t b1 = std::min(c1, b0 + cpb), rows = (b1 - b0) * g.KK;
      // A: rows [b0 KK, b1 KK) of w_g^T, i.e. columns of w_g (Og, Kg): column k of A is row k of
      // w_g, so each panel row of the packed A (kMR values) is a contiguous run of w.
      float* pa = work.pa.get(cg::packed_a_size(rows, K));
      const float* wb = w + gi * g.Og * g.Kg + b0 * g.KK;
      // One masked 8-lane load and store per k (std::copy of 8 floats is a memmove call each:
      // 6.5% of a dream step).
      for (int64_t m0 = 0; m0 < rows; m0 += cg::kMR) {
#ifdef CORTEX_GEMM_AVX512
        const __mmask8 lanes = static_cast<__mmask8>((1u << std::min(cg::kMR, rows - m0)) - 1u);
#else
        const __m256i lanes = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min(cg::kMR, rows - m0))),
                                                 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#endif
        float* panel = pa + m0 * K;
        for (int64_t k = 0; k < K; ++k)
#ifdef CORTEX_GEMM_AVX512
          _mm256_storeu_ps(panel + k * cg::kMR, _mm256_maskz_loadu_ps(lanes, wb + k * g.Kg + m0));
#else
          _mm256_storeu_ps(panel + k * cg::kMR, _mm256_maskload_ps(wb + k * g.Kg + m0, lanes));
#endif
      }
      float* gx0 = gx + (pc.n0 * g.C + gi * g.Cg + b0) * g.HW;
      const bool direct = g.identity && pc.single();  // col2im is the identity: write gx itself
      float* dcol = direct ? gx0 : work.col.get(rows * cols);
      const int64_t ld = direct ? g.HW : cols;
      for (int64_t k0 = 0; k0 < K; k0 += cg::kKC)
        cg::gemm_pass(rows, cols, K, k0, std::min(cg::kKC, K - k0), pa, pb + k0 * strips * cg::kNR, nullptr, dcol, ld);
      if (direct) continue;
      for (int64_t j = 0; j < nimg; ++j) col2im(g, dcol + j * g.P, cols, b1 - b0, gx0 + j * g.C * g.HW);
    }
  };
  // Threaded even with fewer units than threads (AlexNet's conv1 has 3 channels): no unit is cut.
  if (units > 1 && threads > 1) {
#pragma omp parallel
    {
      Work<float>& work = thread_work<float>();
#pragma omp for schedule(static)
      for (int64_t u = 0; u < units; ++u) unit(u, work);
    }
  } else {
    for (int64_t u = 0; u < units; ++u) unit(u, thread_work<float>());
  }
}
#endif

template <class T>
void input_grad_impl(const Geom& g, const T* gy, const T* w, T* gx) {
#ifdef CORTEX_CONV_GEMM
  // Chosen by the geometry only, like the forward: a 1x1 stride-1 conv reads gy in place for
  // Eigen, so it stays there unless it has many channels (the forward's rule, measured there).
  if constexpr (std::is_same_v<T, float>) {
    if (g.Og >= 16 && (g.identity ? g.Cg >= 512 : g.Kg >= 32)) {
      input_grad_packed(g, gy, w, gx, omp_get_max_threads());
      return;
    }
  }
#endif
  const std::vector<Piece> pieces = make_pieces(g, 1);  // whole images: col2im overlaps rows
  const int64_t np = static_cast<int64_t>(pieces.size());
  const int64_t nblk = std::min(std::max<int64_t>(g.Cg, 1), split_for_threads(np * g.G, kPlanThreads));
  const int64_t per = ceil_div(g.Cg, nblk);
  run_units<T>(np * g.G * nblk, [&](int64_t u, Work<T>& work) {
    const Piece& pc = pieces[u / (g.G * nblk)];
    const int64_t gi = (u / nblk) % g.G, c0 = std::min(g.Cg, (u % nblk) * per), c1 = std::min(g.Cg, c0 + per);
    if (c0 == c1) return;
    const int64_t rows = (c1 - c0) * g.KK;
    const gemm::Mat<T> gyb = gy_block(g, gy, pc, gi, work.buf);
    // Rows [c0 KK, c1 KK) of w_g^T: columns of w_g (Og, Kg), read transposed in place.
    const gemm::Mat<T> wbt = gemm::Mat<T>{w + gi * g.Og * g.Kg + c0 * g.KK, g.Og, rows, g.Kg, 1}.t();
    T* gx0 = gx + (pc.n0 * g.C + gi * g.Cg + c0) * g.HW;
    if (g.identity && pc.single()) {  // col2im is the identity: write gx directly
      gemm::gemm(wbt, gyb, gx0, g.HW, false);
      return;
    }
    const int64_t cols = gyb.cols;
    T* dcol = work.col.get(rows * cols);
    gemm::gemm(wbt, gyb, dcol, cols, false);
    for (int64_t j = 0; j < pc.n1 - pc.n0; ++j) col2im(g, dcol + j * g.P, cols, c1 - c0, gx0 + j * g.C * g.HW);
  });
}

template <class T>
void weight_grad_impl(const Geom& g, const T* x, const T* gy, T* gw) {
  const std::vector<Piece> pieces = make_pieces(g, ceil_div(g.Kg * g.P, kColBudget));
  const int64_t np = static_cast<int64_t>(pieces.size());
  // Channel blocks when the channels split evenly enough, else segments of the batch.
  const int64_t want = split_for_threads(g.G, kPlanThreads);
  int64_t nblk = 1, nseg = 1;
  if (want > 1) {
    if (g.Cg % want == 0 || g.Cg >= 4 * want)
      nblk = want;
    else
      nseg = std::min(np, want);
  }
  const int64_t per = ceil_div(g.Cg, nblk);
  // Segment s > 0 sums into its own copy of gw; the copies are added in order at the end.
  std::vector<T> partial(static_cast<size_t>((nseg - 1) * g.O * g.Kg), T(0));
  run_units<T>(g.G * nblk * nseg, [&](int64_t u, Work<T>& work) {
    const int64_t s = u % nseg, gi = u / (nseg * nblk), c0 = std::min(g.Cg, ((u / nseg) % nblk) * per);
    const int64_t c1 = std::min(g.Cg, c0 + per);
    if (c0 == c1) return;
    T* base = s == 0 ? gw : partial.data() + (s - 1) * g.O * g.Kg;
    // Columns [c0 KK, c1 KK) of gw_g (Og, Kg), summed over the segment's pieces in order.
    T* dst = base + gi * g.Og * g.Kg + c0 * g.KK;
    for (int64_t i = s * np / nseg; i < (s + 1) * np / nseg; ++i) {
      const gemm::Mat<T> gyb = gy_block(g, gy, pieces[i], gi, work.buf);
      const gemm::Mat<T> col = col_block(g, x, pieces[i], gi, c0, c1, work.col);
      gemm::gemm(gyb, col.t(), dst, g.Kg, true);
    }
  });
  const int64_t total = g.O * g.Kg;
  for (int64_t s = 1; s < nseg; ++s) {
    const T* src = partial.data() + (s - 1) * total;
    for (int64_t i = 0; i < total; ++i) gw[i] += src[i];
  }
}

}  // namespace

Tensor conv2d(const Tensor& x0, const Tensor& w0, const Tensor& b0, const Conv2dParams& p) {
  const Geom g = geom(x0.shape(), w0.shape(), p);
  Tensor y = empty({g.N, g.O, g.OH, g.OW}, x0.dtype());
  if (y.numel() == 0) return y;
  const Tensor x = x0.contiguous(), w = w0.contiguous(), b = b0.defined() ? b0.contiguous() : b0;
  dispatch_float(x.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    conv2d_impl<T>(g, x.data<T>(), w.data<T>(), b.defined() ? b.data<T>() : nullptr, y.data<T>());
  });
  return y;
}

Tensor conv2d_input_grad(const Tensor& gy0, const Tensor& w0, const Shape& x_shape, const Conv2dParams& p) {
  const Geom g = geom(x_shape, w0.shape(), p);
  Tensor gx = zeros(x_shape, gy0.dtype());  // col2im accumulates
  if (gx.numel() == 0 || gy0.numel() == 0) return gx;
  const Tensor gy = gy0.contiguous(), w = w0.contiguous();
  dispatch_float(gy.dtype(), "conv2d_input_grad", [&](auto tag) {
    using T = decltype(tag);
    input_grad_impl<T>(g, gy.data<T>(), w.data<T>(), gx.data<T>());
  });
  return gx;
}

Tensor conv2d_weight_grad(const Tensor& x0, const Tensor& gy0, const Shape& w_shape, const Conv2dParams& p) {
  const Geom g = geom(x0.shape(), w_shape, p);
  Tensor gw = zeros(w_shape, x0.dtype());  // the GEMMs accumulate over the batch
  if (gw.numel() == 0 || gy0.numel() == 0) return gw;
  const Tensor x = x0.contiguous(), gy = gy0.contiguous();
  dispatch_float(x.dtype(), "conv2d_weight_grad", [&](auto tag) {
    using T = decltype(tag);
    weight_grad_impl<T>(g, x.data<T>(), gy.data<T>(), gw.data<T>());
  });
  return gw;
}

}  // namespace cortex::kernels::cpu
