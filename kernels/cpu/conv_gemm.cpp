// The packed conv GEMM (see conv_gemm.h). One strip of one depth pass: the kKC x kNR block of B
// stays in cache while every row panel of A streams past it; C is written at the end of each
// pass (initialised with the bias on the first, read back and added to on later ones).
#include "kernels/cpu/conv_gemm.h"

#ifdef CORTEX_CONV_GEMM
// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own placeholders (bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <vector>

namespace cortex::kernels::cpu::conv_gemm {
namespace {

constexpr int kV = 16;  // floats per column vector of a tile (kNR = 3 of them): one AVX-512 register, two AVX2 ones

#ifdef CORTEX_GEMM_AVX512

constexpr int kGroups = 1;  // column groups of a tile run one after the other (AVX2: 2)

// 8 vectors of 16 floats transposed in registers: col[j] = element j of every row, in row order.
inline void transpose8x16(const __m512 row[8], __m256 col[16]) {
  __m512 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {  // per 128-bit lane L: rows i, i+1 of columns 4L, 4L+1 (lo), 4L+2, 4L+3 (hi)
    t[i] = _mm512_unpacklo_ps(row[i], row[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(row[i], row[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {  // u[h + c], lane L: rows h..h+3 of column 4L + c
    u[h] = _mm512_shuffle_ps(t[h], t[h + 2], 0x44);
    u[h + 1] = _mm512_shuffle_ps(t[h], t[h + 2], 0xEE);
    u[h + 2] = _mm512_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm512_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {  // lanes (0, 1) then (2, 3) of u[c] and u[4 + c], interleaved by 0xD8
    const __m512 lo = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), hi = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 l = _mm512_shuffle_f32x4(lo, lo, 0xD8), h = _mm512_shuffle_f32x4(hi, hi, 0xD8);
    // (the upper halves through the AVX512F-only 64-bit extract: no AVX512DQ needed)
    col[c] = _mm512_castps512_ps256(l);
    col[4 + c] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(l), 1));
    col[8 + c] = _mm512_castps512_ps256(h);
    col[12 + c] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(h), 1));
  }
}

// C tile (rows <= kMR, cols <= NV * kV) of one pass: acc = (first ? bias : C) + A_panel B_strip
// over kc steps. a: (kc, kMR), b: (kc, kNR). Rows and columns past the tile are computed on the
// packed zeros and masked off when loading and storing. NV vectors of columns: 3 for a full
// strip, fewer for a narrow last strip so its padding costs less.
// Direct: A is read in place instead, row r of the panel at a + r lda (rows past `rows` re-read
// the last row: computed, never stored), so that a conv's weights need no packing per call. The
// same FMAs in the same order either way.
// TransC (with Direct): the tile is stored transposed, row r of the tile as column r of C (at
// c + r, row j of the tile's columns at c + j ldc): gemm_weight_rows computes C^T = W X^T this way
// with its weight rows read in place, so a linear layer's weight needs no packing.
template <int NV, bool Direct = false, bool TransC = false>
void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool first, const float* bias,
           int64_t rows, int64_t cols, const float* col_bias = nullptr, int64_t lda = 0, int /*group: one here*/ = 0) {
  static_assert(Direct || !TransC, "a transposed tile reads A in place");
  const float* arow[kMR];
  if constexpr (Direct)
    for (int r = 0; r < kMR; ++r) arow[r] = a + std::min<int64_t>(r, rows - 1) * lda;
  __m512 acc[kMR][NV];
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) {
    const int64_t left = std::clamp<int64_t>(cols - v * kV, 0, kV);
    mask[v] = static_cast<__mmask16>((1u << left) - 1u);
  }
  // The transposed tile's element (r, j) is C[j ldc + r]: gathered, 16 columns at a time.
  [[maybe_unused]] const __m512i col_index =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int>(ldc)));
  for (int r = 0; r < kMR; ++r)
    for (int v = 0; v < NV; ++v) {
      if (r >= rows)
        acc[r][v] = _mm512_setzero_ps();
      else if (first)
        acc[r][v] = bias       ? _mm512_set1_ps(bias[r])
                    : col_bias ? _mm512_maskz_loadu_ps(mask[v], col_bias + v * kV)
                               : _mm512_setzero_ps();
      else if constexpr (TransC)
        acc[r][v] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask[v], col_index, c + v * kV * ldc + r, 4);
      else
        acc[r][v] = _mm512_maskz_loadu_ps(mask[v], c + r * ldc + v * kV);
    }
#pragma GCC unroll 4  // fewer loop branches between the FMAs: about 5% on AlexNet's shapes
  for (int64_t k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(b + k * kNR + v * kV);
#pragma GCC unroll 8
    for (int r = 0; r < kMR; ++r) {
      const __m512 ar = _mm512_set1_ps(Direct ? arow[r][k] : a[k * kMR + r]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
  if constexpr (TransC) {
    const __m256i row_mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rows)),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int v = 0; v < NV; ++v) {
      __m256 col[kV];
      const __m512 tile[kMR] = {acc[0][v], acc[1][v], acc[2][v], acc[3][v], acc[4][v], acc[5][v], acc[6][v], acc[7][v]};
      transpose8x16(tile, col);
      const int64_t n = std::clamp<int64_t>(cols - v * kV, 0, kV);
      for (int64_t j = 0; j < n; ++j) _mm256_maskstore_ps(c + (v * kV + j) * ldc, row_mask, col[j]);
    }
  } else {
    for (int r = 0; r < rows; ++r)
      for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(c + r * ldc + v * kV, mask[v], acc[r][v]);
  }
}
#else
// AVX2 (8-float vectors, 16 registers): the kMR x (NV kV) tile of micro below is computed in
// sub-tiles of 4 rows by W <= 3 vectors of 8 columns, each over the whole depth pass: 4 W
// accumulators, W vectors of B and one broadcast fit the 16 registers when W = 3 (12 FMAs per 7
// loads). Every output is still (first ? bias : C) plus its products in k order, one FMA each, so
// it has the same bits as on AVX-512 (and in micro_tall). Rows past `rows` of a sub-tile are
// computed on A's zero padding (or the re-read last row when Direct) and never stored; a sub-tile
// wholly past `rows` is skipped.

// b[v]: column 8 v of the sub-tile at k = 0; its column vector at depth k is b[v] + k kSub (the
// vectors of one sub-tile may lie in two sub-strips: 32 columns go as 16 + 16).
template <int W, bool Direct>
void sub_tile(int64_t kc, const float* a, const float* const* arow, const float* const* b, float* c, int64_t ldc,
              bool first, const float* bias, const float* col_bias, int64_t rows, int64_t cols) {
  __m256i mask[W];
  for (int v = 0; v < W; ++v) mask[v] = lane_mask8(cols - 8 * v);
  const float* bp[W];
  for (int v = 0; v < W; ++v) bp[v] = b[v];
  __m256 acc[4][W];
  for (int r = 0; r < 4; ++r)
    for (int v = 0; v < W; ++v) {
      if (r >= rows)
        acc[r][v] = _mm256_setzero_ps();
      else if (first)
        acc[r][v] = bias       ? _mm256_set1_ps(bias[r])
                    : col_bias ? _mm256_maskload_ps(col_bias + 8 * v, mask[v])
                               : _mm256_setzero_ps();
      else
        acc[r][v] = _mm256_maskload_ps(c + r * ldc + 8 * v, mask[v]);
    }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bv[W];
    for (int v = 0; v < W; ++v) bv[v] = _mm256_loadu_ps(bp[v] + k * kSub);
    for (int r = 0; r < 4; ++r) {
      const __m256 ar = _mm256_set1_ps(Direct ? arow[r][k] : a[k * kMR + r]);
      for (int v = 0; v < W; ++v) acc[r][v] = _mm256_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < rows && r < 4; ++r)
    for (int v = 0; v < W; ++v) store_lanes8(c + r * ldc + 8 * v, acc[r][v], 0, cols - 8 * v);
}

template <bool Direct>
void sub_tile_n(int w, int64_t kc, const float* a, const float* const* arow, const float* const* b, float* c,
                int64_t ldc, bool first, const float* bias, const float* col_bias, int64_t rows, int64_t cols) {
  if (w == 3)
    sub_tile<3, Direct>(kc, a, arow, b, c, ldc, first, bias, col_bias, rows, cols);
  else if (w == 2)
    sub_tile<2, Direct>(kc, a, arow, b, c, ldc, first, bias, col_bias, rows, cols);
  else
    sub_tile<1, Direct>(kc, a, arow, b, c, ldc, first, bias, col_bias, rows, cols);
}

// The column groups of a tile `cols` wide: one of up to 3 vectors, or two of about half each (32
// columns: 2 + 2 vectors, not 3 + 1, which would leave 4 FMA chains). Group g is vectors
// [first, first + count).
struct ColGroup {
  int first, count;
};
inline ColGroup col_group(int64_t cols, int g) {
  const int w8 = static_cast<int>((cols + 7) / 8), wa = w8 > 3 ? (w8 + 1) / 2 : w8;
  return g == 0 ? ColGroup{0, wa} : ColGroup{wa, w8 - wa};
}
constexpr int kGroups = 2;

// Column group `group` of the tile of one pass (see the AVX-512 micro for the arguments; no
// transposed store here: gemm_weight_rows packs both operands on AVX2), in sub-tiles of 4 rows.
// Callers run group 0 for every panel of a strip, then group 1: one sub-strip of B serves all
// panels while it is in L1/L2, instead of the whole 72 KB strip for each panel.
template <int NV, bool Direct = false, bool TransC = false>
void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool first, const float* bias,
           int64_t rows, int64_t cols, const float* col_bias = nullptr, int64_t lda = 0, int group = 0) {
  static_assert(!TransC, "AVX2 builds store no transposed tile");
  static_assert(NV >= 1 && NV <= 3);
  const ColGroup cg = col_group(cols, group);
  if (cg.count == 0) return;
  const float* arow[kMR] = {};
  if constexpr (Direct)
    for (int r = 0; r < kMR; ++r) arow[r] = a + std::min<int64_t>(r, rows - 1) * lda;
  const float* bcol[3] = {};
  for (int v = 0; v < cg.count; ++v) bcol[v] = b + strip_index(0, 8 * (cg.first + v), kc);
  const int64_t j0 = 8 * cg.first, n = std::min<int64_t>(cols - j0, 8 * cg.count);
  for (int64_t r0 = 0; r0 < rows; r0 += 4) {
    const int64_t rr = std::min<int64_t>(4, rows - r0);
    sub_tile_n<Direct>(cg.count, kc, a + r0 /* packed: rows r0.. of the panel, still k * kMR apart */, arow + r0,
                       bcol, c + r0 * ldc + j0, ldc, first, bias ? bias + r0 : nullptr,
                       col_bias ? col_bias + j0 : nullptr, rr, n);
  }
}

#endif  // CORTEX_GEMM_AVX512

// A strip with at most 4 columns (the last of a 49- or 196-column map): micro<1> would run 8 full
// 16-wide FMAs per depth step for 8 x n useful products. Here the rows are the lanes instead: P
// panels of 8 rows at a time, one 8-wide FMA per panel and column, n broadcasts of B. Same sums,
// in the same order (acc = (first ? bias : C) + products in k order), so a column gives the same
// bits in this kernel as in micro. a: panel p at a + p pstride, (kc, kMR) each; rows: the rows of
// these P panels that exist (<= P kMR).
template <int T, int P>
void micro_tall(int64_t kc, const float* a, int64_t pstride, const float* b, float* c, int64_t ldc, bool first,
                const float* bias, const float* col_bias, int64_t rows) {
  alignas(32) float init[P][T][kMR];
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < T; ++j)
      for (int r = 0; r < kMR; ++r) {
        const int64_t row = p * kMR + r;
        init[p][j][r] = row >= rows ? 0.0f
                        : !first    ? c[row * ldc + j]
                        : bias      ? bias[row]
                        : col_bias  ? col_bias[j]
                                    : 0.0f;
      }
  __m256 acc[P][T];
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < T; ++j) acc[p][j] = _mm256_load_ps(init[p][j]);
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    __m256 bj[T];
    for (int j = 0; j < T; ++j) bj[j] = _mm256_set1_ps(b[k * kSub + j]);
    for (int p = 0; p < P; ++p) {
      const __m256 av = _mm256_loadu_ps(a + p * pstride + k * kMR);
      for (int j = 0; j < T; ++j) acc[p][j] = _mm256_fmadd_ps(av, bj[j], acc[p][j]);
    }
  }
  for (int p = 0; p < P; ++p)
    for (int j = 0; j < T; ++j) _mm256_store_ps(init[p][j], acc[p][j]);
  for (int p = 0; p < P; ++p)
    for (int r = 0; r < kMR && p * kMR + r < rows; ++r)
      for (int j = 0; j < T; ++j) c[(p * kMR + r) * ldc + j] = init[p][j][r];
}

// micro<NV, Direct> with NV the fewest vectors that cover n columns (n <= kNR).
template <bool Direct, bool TransC = false>
void micro_n(int64_t n, int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool first,
             const float* bias, int64_t rows, const float* col_bias, int64_t lda, int group = 0) {
  if (n > 2 * kV)
    micro<3, Direct, TransC>(kc, a, b, c, ldc, first, bias, rows, n, col_bias, lda, group);
  else if (n > kV)
    micro<2, Direct, TransC>(kc, a, b, c, ldc, first, bias, rows, n, col_bias, lda, group);
  else
    micro<1, Direct, TransC>(kc, a, b, c, ldc, first, bias, rows, n, col_bias, lda, group);
}

template <int T>
void tall_panels(int64_t panels, int64_t kc, const float* a, int64_t pstride, const float* b, float* c, int64_t ldc,
                 bool first, const float* bias, const float* col_bias, int64_t M) {
  for (int64_t p0 = 0; p0 < panels; p0 += 4) {
    const int64_t m0 = p0 * kMR, rows = M - m0;
    const float* ap = a + p0 * pstride;
    float* cp = c + m0 * ldc;
    const float* bp = bias ? bias + m0 : nullptr;
    switch (std::min<int64_t>(4, panels - p0)) {
      case 4: micro_tall<T, 4>(kc, ap, pstride, b, cp, ldc, first, bp, col_bias, rows); break;
      case 3: micro_tall<T, 3>(kc, ap, pstride, b, cp, ldc, first, bp, col_bias, rows); break;
      case 2: micro_tall<T, 2>(kc, ap, pstride, b, cp, ldc, first, bp, col_bias, rows); break;
      default: micro_tall<T, 1>(kc, ap, pstride, b, cp, ldc, first, bp, col_bias, rows); break;
    }
  }
}

// Every panel of A against one strip of n <= kNR columns of one depth pass: the narrow-tail
// kernel for n <= kTall, else micro<NV> panel by panel (and column group by group). Panel p at
// a + p pstride, (kc, kMR) each.
constexpr int64_t kTall = 4;
void run_strip(int64_t M, int64_t n, int64_t kc, const float* a, int64_t pstride, const float* b, float* c,
               int64_t ldc, bool first, const float* bias, const float* col_bias) {
  const int64_t panels = (M + kMR - 1) / kMR;
  switch (n) {
    case 1: return tall_panels<1>(panels, kc, a, pstride, b, c, ldc, first, bias, col_bias, M);
    case 2: return tall_panels<2>(panels, kc, a, pstride, b, c, ldc, first, bias, col_bias, M);
    case 3: return tall_panels<3>(panels, kc, a, pstride, b, c, ldc, first, bias, col_bias, M);
    case 4: return tall_panels<4>(panels, kc, a, pstride, b, c, ldc, first, bias, col_bias, M);
    default: break;
  }
  for (int g = 0; g < kGroups; ++g)
    for (int64_t p = 0; p < panels; ++p)
      micro_n<false>(n, kc, a + p * pstride, b, c + p * kMR * ldc, ldc, first, bias ? bias + p * kMR : nullptr,
                     std::min(kMR, M - p * kMR), col_bias, 0, g);
}

// run_strip with A read in place (rows at a + i lda, from the pass's first column): micro<NV>
// panel by panel, a narrow last strip included (its rows-in-lanes kernel needs A packed).
void run_strip_direct(int64_t M, int64_t n, int64_t kc, const float* a, int64_t lda, const float* b, float* c,
                      int64_t ldc, bool first, const float* bias) {
  for (int g = 0; g < kGroups; ++g)
    for (int64_t m0 = 0; m0 < M; m0 += kMR)
      micro_n<true>(n, kc, a + m0 * lda, b, c + m0 * ldc, ldc, first, bias ? bias + m0 : nullptr,
                    std::min(kMR, M - m0), nullptr, lda, g);
}

#ifdef CORTEX_GEMM_AVX512
// 16 vectors of 16 floats transposed in registers: col[j] = element j of every row, in row order.
inline void transpose16(const __m512 row[16], __m512 col[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(row[i], row[i + 1]);  // per 128-bit lane L: r0[4L], r1[4L], r0[4L+1], r1[4L+1]
    t[i + 1] = _mm512_unpackhi_ps(row[i], row[i + 1]);
  }
  for (int q = 0; q < 16; q += 4) {  // u[q + c], lane L: rows q..q+3 of column 4L + c
    const __m512d t0 = _mm512_castps_pd(t[q]), t1 = _mm512_castps_pd(t[q + 1]);
    const __m512d t2 = _mm512_castps_pd(t[q + 2]), t3 = _mm512_castps_pd(t[q + 3]);
    u[q] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {  // 0x88 takes 128-bit lanes 0, 2 of each operand, 0xDD lanes 1, 3
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88), v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
    col[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    col[8 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    col[4 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    col[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

// 16 rows of 16 floats (row i at src + i ld) transposed in registers.
inline void transpose16(const float* src, int64_t ld, __m512 col[16]) {
  __m512 row[16];
  for (int i = 0; i < 16; ++i) row[i] = _mm512_loadu_ps(src + i * ld);
  transpose16(row, col);
}

// Columns [k0, k0 + kc) of A's rows [0, M) as panels of (kc, kMR), panel p at out + p kc kMR,
// rows past M zero.
void pack_a_pass(const float* a, int64_t ars, int64_t acs, int64_t M, int64_t k0, int64_t kc, float* out) {
  int64_t m0 = 0;
  if (acs == 1) {  // row-major: 16 rows x 16 columns at a time, transposed, split over two panels
    for (; m0 + 2 * kMR <= M; m0 += 2 * kMR) {
      float* p0 = out + m0 * kc;
      float* p1 = p0 + kMR * kc;
      const float* src = a + m0 * ars + k0;
      int64_t k = 0;
      for (; k + 16 <= kc; k += 16) {
        __m512 col[16];
        transpose16(src + k, ars, col);
        for (int j = 0; j < 16; ++j) {
          _mm256_storeu_ps(p0 + (k + j) * kMR, _mm512_castps512_ps256(col[j]));
          // (the upper half through the AVX512F-only 64-bit extract: no AVX512DQ needed)
          _mm256_storeu_ps(p1 + (k + j) * kMR, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(col[j]), 1)));
        }
      }
      for (; k < kc; ++k)
        for (int64_t r = 0; r < kMR; ++r) p0[k * kMR + r] = src[r * ars + k], p1[k * kMR + r] = src[(r + kMR) * ars + k];
    }
  }
  for (; m0 < M; m0 += kMR) {
    float* panel = out + m0 * kc;
    const int64_t rows = std::min(kMR, M - m0);
    const float* src = a + m0 * ars + k0 * acs;
    if (ars == 1 && rows == kMR) {  // column-major: each k is 8 contiguous floats
      for (int64_t k = 0; k < kc; ++k) _mm256_storeu_ps(panel + k * kMR, _mm256_loadu_ps(src + k * acs));
      continue;
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t r = 0; r < kMR; ++r) panel[k * kMR + r] = r < rows ? src[r * ars + k * acs] : 0.0f;
  }
}

// Rows [k0, k0 + kc) of B's columns [n0, n0 + n), n <= kNR, as one (kc, kNR) strip, columns past n
// zero.
void pack_b_block(const float* b, int64_t brs, int64_t bcs, int64_t k0, int64_t kc, int64_t n0, int64_t n, float* out) {
  const float* src = b + k0 * brs + n0 * bcs;
  if (bcs == 1) {  // row-major: each k is n contiguous floats
    __mmask16 mask[3];
    for (int v = 0; v < 3; ++v) mask[v] = static_cast<__mmask16>((1u << std::clamp<int64_t>(n - v * kV, 0, kV)) - 1u);
    for (int64_t k = 0; k < kc; ++k)
      for (int v = 0; v < 3; ++v) _mm512_storeu_ps(out + k * kNR + v * kV, _mm512_maskz_loadu_ps(mask[v], src + k * brs + v * kV));
    return;
  }
  int64_t j0 = 0;
  if (brs == 1)  // column-major (a transposed weight): 16 columns x 16 rows at a time, transposed
    for (; j0 + 16 <= n; j0 += 16) {
      int64_t k = 0;
      for (; k + 16 <= kc; k += 16) {
        __m512 col[16];
        transpose16(src + j0 * bcs + k, bcs, col);
        for (int j = 0; j < 16; ++j) _mm512_storeu_ps(out + (k + j) * kNR + j0, col[j]);
      }
      for (; k < kc; ++k)
        for (int64_t j = j0; j < j0 + 16; ++j) out[k * kNR + j] = src[j * bcs + k];
    }
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t j = j0; j < kNR; ++j) out[k * kNR + j] = j < n ? src[k * brs + j * bcs] : 0.0f;
}

// The last few columns of a gemm_weight_rows strip (T <= kLaneCols of them: C^T's columns are
// rows of X, e.g. the 5 left over from ViT's 197 tokens) against 16 weight rows, with the weight
// rows in the lanes: 16 x 16 blocks of w are transposed in registers, then each column is one
// broadcast and one FMA per k. micro<1> would spend 16 FMAs per k on these 16 x T outputs, T + 4
// shuffles here. The same sums in the same order as micro (acc = (first ? bias : C) + products in
// k order; a * b == b * a), so an output has the same bits whichever kernel computes it.
// w: weight row r at w + r ldw (rows past `rows` re-read the last: computed, never stored);
// b: the strip's first such column, (kc, kNR); c: C at that row of X and the first weight row.
// bias: per weight row (C's columns), col_bias: per row of X; bias wins, as in micro.
constexpr int64_t kLaneCols = 8;
template <int T>
void micro_lanes(int64_t kc, const float* w, int64_t ldw, int64_t rows, const float* b, float* c, int64_t ldc,
                 bool first, const float* bias, const float* col_bias) {
  const float* wrow[16];
  for (int r = 0; r < 16; ++r) wrow[r] = w + std::min<int64_t>(r, rows - 1) * ldw;
  const __mmask16 out_mask = static_cast<__mmask16>((1u << rows) - 1u);
  __m512 acc[T];
  for (int t = 0; t < T; ++t)
    acc[t] = !first    ? _mm512_maskz_loadu_ps(out_mask, c + t * ldc)
             : bias     ? _mm512_maskz_loadu_ps(out_mask, bias)
             : col_bias ? _mm512_set1_ps(col_bias[t])
                        : _mm512_setzero_ps();
  for (int64_t k0 = 0; k0 < kc; k0 += kV) {
    const int64_t n = std::min<int64_t>(kV, kc - k0);
    const __mmask16 k_mask = static_cast<__mmask16>((1u << n) - 1u);
    __m512 row[16], wt[16];
    for (int r = 0; r < 16; ++r) row[r] = _mm512_maskz_loadu_ps(k_mask, wrow[r] + k0);
    transpose16(row, wt);
    const float* bk = b + k0 * kNR;
    if (n == kV) {
#pragma GCC unroll 16
      for (int j = 0; j < kV; ++j)
        for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(wt[j], _mm512_set1_ps(bk[j * kNR + t]), acc[t]);
    } else {
      for (int j = 0; j < n; ++j)
        for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(wt[j], _mm512_set1_ps(bk[j * kNR + t]), acc[t]);
    }
  }
  for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(c + t * ldc, out_mask, acc[t]);
}

void lanes_n(int64_t n, int64_t kc, const float* w, int64_t ldw, int64_t rows, const float* b, float* c, int64_t ldc,
             bool first, const float* bias, const float* col_bias) {
  switch (n) {
    case 1: return micro_lanes<1>(kc, w, ldw, rows, b, c, ldc, first, bias, col_bias);
    case 2: return micro_lanes<2>(kc, w, ldw, rows, b, c, ldc, first, bias, col_bias);
    case 3: return micro_lanes<3>(kc, w, ldw, rows, b, c, ldc, first, bias, col_bias);
    case 4: return micro_lanes<4>(kc, w, ldw, rows, b, c, ldc, first, bias, col_bias);
    case 5: return micro_lanes<5>(kc, w, ldw, rows, b, c, ldc, first, bias, col_bias);
    case 6: return micro_lanes<6>(kc, w, ldw, rows, b, c, ldc, first, bias, col_bias);
    case 7: return micro_lanes<7>(kc, w, ldw, rows, b, c, ldc, first, bias, col_bias);
    default: return micro_lanes<8>(kc, w, ldw, rows, b, c, ldc, first, bias, col_bias);
  }
}
#else
// 8 rows of 8 floats (row i at src + i ld) transposed: element j of every row, in row order, at
// dst + j ldd.
inline void transpose8(const float* src, int64_t ld, float* dst, int64_t ldd) {
  __m256 r[8], t[8], u[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  for (int i = 0; i < 8; i += 2) {  // per 128-bit half: rows i, i+1 of columns (0, 1) lo and (2, 3) hi
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {  // u[h + c], half L: rows h..h+3 of column 4L + c
    u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);
    u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);
    u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
    _mm256_storeu_ps(dst + (4 + c) * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
  }
}

// Columns [k0, k0 + kc) of A's rows [0, M) as panels of (kc, kMR), panel p at out + p kc kMR,
// rows past M zero.
void pack_a_pass(const float* a, int64_t ars, int64_t acs, int64_t M, int64_t k0, int64_t kc, float* out) {
  for (int64_t m0 = 0; m0 < M; m0 += kMR) {
    float* panel = out + m0 * kc;
    const int64_t rows = std::min(kMR, M - m0);
    const float* src = a + m0 * ars + k0 * acs;
    int64_t k = 0;
    if (rows == kMR && acs == 1)  // row-major: 8 x 8 blocks transposed
      for (; k + 8 <= kc; k += 8) transpose8(src + k, ars, panel + k * kMR, kMR);
    if (rows == kMR && ars == 1)  // column-major: each k is 8 contiguous floats
      for (; k < kc; ++k) _mm256_storeu_ps(panel + k * kMR, _mm256_loadu_ps(src + k * acs));
    for (; k < kc; ++k)
      for (int64_t r = 0; r < kMR; ++r) panel[k * kMR + r] = r < rows ? src[r * ars + k * acs] : 0.0f;
  }
}

// Rows [k0, k0 + kc) of B's columns [n0, n0 + n), n <= kNR, as one strip (strip_index), columns past n
// zero.
void pack_b_block(const float* b, int64_t brs, int64_t bcs, int64_t k0, int64_t kc, int64_t n0, int64_t n, float* out) {
  const float* src = b + k0 * brs + n0 * bcs;
  if (bcs == 1) {  // row-major: each k is n contiguous floats, six masked 8-lane copies (std::copy
                   // was a memmove call per k: 9% of a 1024-cube matmul)
    __m256i mask[6];
    for (int v = 0; v < 6; ++v) mask[v] = lane_mask8(n - 8 * v);
    for (int64_t k = 0; k < kc; ++k)
      for (int v = 0; v < 6; ++v)
        _mm256_storeu_ps(out + strip_index(k, 8 * v, kc), _mm256_maskload_ps(src + k * brs + 8 * v, mask[v]));
    return;
  }
  int64_t j0 = 0;
  if (brs == 1)  // column-major (a transposed weight): 8 columns x 8 rows at a time, transposed
    for (; j0 + 8 <= n; j0 += 8) {  // (8 columns never straddle two sub-strips: kSub is a multiple of 8)
      float* o = out + strip_index(0, j0, kc);
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) transpose8(src + j0 * bcs + k, bcs, o + k * kSub, kSub);
      for (; k < kc; ++k)
        for (int64_t j = 0; j < 8; ++j) o[k * kSub + j] = src[(j0 + j) * bcs + k];
    }
  for (int64_t k = 0; k < kc; ++k)
    for (int64_t j = j0; j < kNR; ++j) out[strip_index(k, j, kc)] = j < n ? src[k * brs + j * bcs] : 0.0f;
}

#endif  // CORTEX_GEMM_AVX512

}  // namespace

int64_t packed_a_size(int64_t M, int64_t K) { return (M + kMR - 1) / kMR * kMR * K; }

void pack_a(const float* a, int64_t lda, int64_t M, int64_t K, float* out) {
  // The panels of all K columns are one depth pass of K: sixteen rows at a time transposed in
  // registers (a scalar 8x16 scatter took a tenth of ResNet-50's batch-1 forward).
  pack_a_pass(a, lda, 1, M, 0, K, out);
}

int64_t packed_b_size(int64_t kc, int64_t N) { return b_strips(N) * kNR * kc; }

double strip_cost(int64_t N) {
  const int64_t tail = N % kNR;
  return static_cast<double>(N / kNR) +
         (tail == 0 ? 0.0 : tail <= kTall ? 0.1 : tail <= kV ? 0.4 : tail <= 2 * kV ? 0.7 : 1.0);
}

void gemm_strip(int64_t M, int64_t n, int64_t K, int64_t k0, int64_t kc, const float* pa, const float* pb,
                const float* bias, float* c, int64_t ldc) {
  run_strip(M, n, kc, pa + k0 * kMR, K * kMR, pb, c, ldc, k0 == 0, bias, nullptr);  // panels of all K
}

void gemm_pass(int64_t M, int64_t N, int64_t K, int64_t k0, int64_t kc, const float* pa, const float* pb,
               const float* bias, float* c, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {  // empty sum: the bias alone
    for (int64_t m = 0; m < M; ++m) std::fill(c + m * ldc, c + m * ldc + N, bias ? bias[m] : 0.0f);
    return;
  }
  for (int64_t n0 = 0; n0 < N; n0 += kNR)
    gemm_strip(M, std::min(kNR, N - n0), K, k0, kc, pa, pb + b_strip_offset(n0 / kNR, kc), bias, c + n0, ldc);
}

void gemm_pass_direct(int64_t M, int64_t N, int64_t k0, int64_t kc, const float* a, int64_t lda, const float* pb,
                      const float* bias, float* c, int64_t ldc) {
  if (M == 0 || N == 0) return;
  for (int64_t n0 = 0; n0 < N; n0 += kNR)
    run_strip_direct(M, std::min(kNR, N - n0), kc, a + k0, lda, pb + b_strip_offset(n0 / kNR, kc), c + n0, ldc,
                     k0 == 0, bias);
}

namespace {

bool empty_sum(int64_t M, int64_t N, int64_t K, float* c, int64_t ldc, bool accumulate, const float* row_bias,
               const float* col_bias) {
  if (K != 0) return false;
  if (!accumulate)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < N; ++j) c[m * ldc + j] = row_bias ? row_bias[m] : col_bias ? col_bias[j] : 0.0f;
  return true;
}

}  // namespace

bool weight_rows_pays(int64_t M, int64_t brs, int64_t bcs, int64_t ldc) {
#ifdef CORTEX_GEMM_AVX512
  return M <= kWeightRowsM && brs == 1 && bcs != 1 && ldc <= kMaxGatherLd;
#else
  (void)M, (void)brs, (void)bcs, (void)ldc;
  return false;
#endif
}

void gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars, int64_t acs, const float* b, int64_t brs,
          int64_t bcs, float* c, int64_t ldc, bool accumulate, const float* row_bias, const float* col_bias) {
  if (weight_rows_pays(M, brs, bcs, ldc))
    gemm_weight_rows(M, N, K, a, ars, acs, b, bcs, c, ldc, accumulate, row_bias, col_bias);
  else
    gemm_pack_both(M, N, K, a, ars, acs, b, brs, bcs, c, ldc, accumulate, row_bias, col_bias);
}

#ifdef CORTEX_GEMM_AVX512
void gemm_weight_rows(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars, int64_t acs, const float* w,
                      int64_t ldw, float* c, int64_t ldc, bool accumulate, const float* row_bias,
                      const float* col_bias) {
  if (empty_sum(M, N, K, c, ldc, accumulate, row_bias, col_bias)) return;
  // X^T's strips for one depth pass (all M columns), kept between calls.
  thread_local std::vector<float> xbuf;
  const int64_t strips = b_strips(M);
  if (static_cast<int64_t>(xbuf.size()) < strips * kNR * kWeightRowsKC) xbuf.resize(strips * kNR * kWeightRowsKC);
  float* px = xbuf.data();
  // The last strip's columns past its full vectors go to micro_lanes when they are few.
  const int64_t last = strips - 1, last_cols = M - last * kNR;
  const int64_t left = last_cols % kV <= kLaneCols ? last_cols % kV : 0, last_main = last_cols - left;
  for (int64_t k0 = 0; k0 < K; k0 += kWeightRowsKC) {
    const int64_t kc = std::min(kWeightRowsKC, K - k0);
    const bool first = k0 == 0 && !accumulate;
    for (int64_t s = 0; s < strips; ++s)  // X^T (k, i) = a[i ars + k acs]
      pack_b_block(a, acs, ars, k0, kc, s * kNR, std::min(kNR, M - s * kNR), px + b_strip_offset(s, kc));
    // One panel of 8 weight rows (8 x kc floats, read in place) against every strip: the panel
    // stays in L1 while the strips come from L2. Two panels, then the last strip's leftover
    // columns for their 16 rows at once.
    for (int64_t o0 = 0; o0 < N; o0 += 2 * kMR) {
      for (int64_t o = o0; o < std::min(o0 + 2 * kMR, N); o += kMR)
        for (int64_t s = 0; s < strips; ++s) {
          const int64_t i0 = s * kNR, n = s == last ? last_main : kNR;
          if (n == 0) continue;
          micro_n<true, true>(n, kc, w + o * ldw + k0, px + b_strip_offset(s, kc), c + i0 * ldc + o, ldc, first,
                              col_bias ? col_bias + o : nullptr, std::min(kMR, N - o),
                              row_bias ? row_bias + i0 : nullptr, ldw);
        }
      if (left > 0) {
        const int64_t i0 = last * kNR + last_main;
        lanes_n(left, kc, w + o0 * ldw + k0, ldw, std::min(2 * kMR, N - o0), px + b_strip_offset(last, kc) + last_main,
                c + i0 * ldc + o0, ldc, first, col_bias ? col_bias + o0 : nullptr, row_bias ? row_bias + i0 : nullptr);
      }
    }
  }
}
#else
// AVX2 builds have no transposed-tile kernel: the weight is packed like any column-major B. The
// same sums, so the same bits as gemm_weight_rows on AVX-512 (and as gemm_pack_both here).
void gemm_weight_rows(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars, int64_t acs, const float* w,
                      int64_t ldw, float* c, int64_t ldc, bool accumulate, const float* row_bias,
                      const float* col_bias) {
  gemm_pack_both(M, N, K, a, ars, acs, w, 1, ldw, c, ldc, accumulate, row_bias, col_bias);
}
#endif

void gemm_pack_both(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars, int64_t acs, const float* b,
                    int64_t brs, int64_t bcs, float* c, int64_t ldc, bool accumulate, const float* row_bias,
                    const float* col_bias) {
  if (empty_sum(M, N, K, c, ldc, accumulate, row_bias, col_bias)) return;
  // This thread's packing buffers, kept between calls (a pass of A is at most 576 x kKC floats
  // for the tiles of gemm_tiles.h, 0.9 MB; larger M just grows it).
  // Few rows against a column-major B (a linear layer's weight, seen transposed; on AVX-512 that
  // goes to gemm_weight_rows): passes of kDeepKC, so that each weight row is read in runs of 6 KB
  // and C is read and written back a quarter as often. The same sums in the same order, so the
  // same bits, whatever the depth.
  const int64_t depth = M <= kDeepM && brs == 1 ? kDeepKC : kKC;
  thread_local std::vector<float> abuf, bbuf;
  const int64_t panels = (M + kMR - 1) / kMR;
  if (static_cast<int64_t>(abuf.size()) < panels * kMR * depth) abuf.resize(panels * kMR * depth);
  if (static_cast<int64_t>(bbuf.size()) < depth * kNR) bbuf.resize(depth * kNR);
  float* pa = abuf.data();
  float* pb = bbuf.data();
  for (int64_t k0 = 0; k0 < K; k0 += depth) {
    const int64_t kc = std::min(depth, K - k0);
    const bool first = k0 == 0 && !accumulate;
    pack_a_pass(a, ars, acs, M, k0, kc, pa);
    for (int64_t n0 = 0; n0 < N; n0 += kNR) {
      const int64_t n = std::min(kNR, N - n0);
      pack_b_block(b, brs, bcs, k0, kc, n0, n, pb);
      run_strip(M, n, kc, pa, kc * kMR, pb, c + n0, ldc, first, row_bias, col_bias ? col_bias + n0 : nullptr);
    }
  }
}

}  // namespace cortex::kernels::cpu::conv_gemm
#endif  // CORTEX_CONV_GEMM
