// A packed single-threaded float GEMM, C (M, N) = A (M, K) B (K, N) + bias, with an AVX-512
// register-blocked micro-kernel (on AVX2, the same tiles in 4 x 24 sub-tiles: docs/gemm.md): the
// conv2d forward and input gradient drive it pass by pass with their own im2col packing; every other float GEMM (gemm_tiles.h: linear, matmul, the 1x1 convs,
// the weight gradients) calls gemm() below, which packs strided operands itself. Eigen 3.4's float kernel on AVX-512 is 48x4 and
// reaches about 60% of what oneDNN does on AlexNet's convs; this 8x48 kernel closes most of that.
//
// A is packed once per call (pack_a). B is packed one depth pass at a time, kKC rows in column
// strips of kNR (b_strip_offset; sub-strips of kSub, strip_index), just before gemm_pass uses it: the conv's im2col writes each
// pass straight into that form, so B is never made as a whole (AlexNet's conv4 im2col is 12 MB
// for five images; one pass of it is 1.3 MB).
// Built where the compiler targets AVX-512, or AVX2 with FMA (CORTEX_CONV_GEMM); elsewhere Eigen.
// Determinism: every output is bias + its K products summed in order, pass after pass, by one
// accumulator lane, whatever the strip, panel or call it falls in; so callers may cut M and N as
// they like (by the thread count too) without changing a bit (docs/conv.md).
#pragma once
#include <cstdint>

// CORTEX_GEMM_AVX512: the AVX-512 kernels; otherwise the same tiles and packing with AVX2 + FMA
// (8-wide halves of each 16-wide column vector; conv_gemm.cpp), giving the same bits.
#if defined(__AVX512F__)
#define CORTEX_CONV_GEMM 1
#define CORTEX_GEMM_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#define CORTEX_CONV_GEMM 1
#endif

#ifdef CORTEX_CONV_GEMM
#include <immintrin.h>

#include <algorithm>
#endif

namespace cortex::kernels::cpu::conv_gemm {

#ifdef CORTEX_CONV_GEMM
// 8-lane helpers (AVX2 code, so AVX-512 builds have them too). Mask of lanes [0, n) (n clamped to
// [0, 8]) for the AVX2 kernels' masked 8-float loads (this GEMM's edges, attention.cpp's softmax
// tails).
inline __m256i lane_mask8(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::clamp<int64_t>(n, 0, 8))),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
// p[i] = v[i] for lanes i in [from, to) (clamped to [0, 8]). Not vmaskmovps: on AMD's Zen 3 that
// store takes about 3.8 ns whether or not every lane is set, a plain store 0.4 ns (docs/gemm.md).
// So all eight lanes are one plain store, and fewer go through a stack copy, lane by lane. (Also
// conv_winograd.cpp's output row ends.)
inline void store_lanes8(float* p, __m256 v, int64_t from, int64_t to) {
  from = std::clamp<int64_t>(from, 0, 8), to = std::clamp<int64_t>(to, 0, 8);
  if (from == 0 && to == 8) {
    _mm256_storeu_ps(p, v);
    return;
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, v);
  for (int64_t i = from; i < to; ++i) p[i] = t[i];
}
#endif

constexpr int64_t kMR = 8;   // rows of A per panel: one broadcast each per k
constexpr int64_t kNR = 48;  // columns of B per strip: three 16-float vectors
constexpr int64_t kKC = 384; // depth of one pass: a kKC x kNR block of B (72 KB) is reused from L2

// Packed A: panel i holds rows [i kMR, i kMR + kMR) as (K, kMR), rows past M zero.
int64_t packed_a_size(int64_t M, int64_t K);
void pack_a(const float* a, int64_t lda, int64_t M, int64_t K, float* out);

// Packed B slice, rows [k0, k0 + kc) of B: strip s holds columns [s kNR, s kNR + kNR) at
// b_strip_offset(s, kc), as kNR / kSub sub-strips of (kc, kSub) one after the other (element
// (k, j) of the strip at strip_index(k, j, kc)); the last strip's columns past N must be zero (or finite:
// they are computed, never stored). A last strip of at most 4 columns runs a kernel with the rows
// in the lanes (about a tenth of a full strip's time), one of at most 16 or 32 columns about a
// third or two thirds of a full one (see strip_cost); callers choosing N can use that.
int64_t packed_b_size(int64_t kc, int64_t N);
inline int64_t b_strips(int64_t N) { return (N + kNR - 1) / kNR; }
inline int64_t b_strip_offset(int64_t s, int64_t kc) { return s * kc * kNR; }
// Columns of one sub-strip, each row of it contiguous. On AVX-512 the whole strip (three 16-wide
// vectors per k). On AVX2 a 4 x 24 sub-tile reads 24 columns per k: as rows of 48 each k touched
// two cache lines for 96 useful bytes and the 72 KB block was fetched from L2 for every sub-tile;
// 24-wide sub-strips read 1.5 lines per k, and one 36 KB sub-strip serves every panel in turn
// (the sub-tile alone, data in L2: 85 -> 100 GFLOP/s on a Zen 3; docs/gemm.md).
#ifdef CORTEX_GEMM_AVX512
constexpr int64_t kSub = kNR;
#else
constexpr int64_t kSub = 24;
#endif
inline int64_t strip_index(int64_t k, int64_t j, int64_t kc) { return j / kSub * kc * kSub + k * kSub + j % kSub; }
// Column p of a packed pass (all its strips, strip stride `stride` = b_strip_offset(1, kc)), row 0.
// (Sub-strips follow one another kc kSub = stride / kNR * kSub floats apart, across strips too.)
inline int64_t pass_index(int64_t p, int64_t stride) { return p / kSub * (stride / kNR * kSub) + p % kSub; }
// Relative cost of the GEMM's columns, a full strip being 1: per depth step a full strip takes
// 24 FMAs, a 32-wide tail 16, a 16-wide one 8 FMAs that wait on 8 broadcast loads.
double strip_cost(int64_t N);

// One strip of one depth pass: C (M, n), n <= kNR, row stride ldc, = bias + A_pass B_strip when
// k0 == 0 (no bias when it is null), else C += A_pass B_strip. A_pass: columns [k0, k0 + kc) of A
// (pack_a of all K columns); B_strip: rows [k0, k0 + kc) of the strip's columns, packed (strip_index),
// columns past n zero (or finite: they are computed, never stored). The passes k0 = 0, kKC,
// 2 kKC, ... (kc = kKC but the last) in order give C = A B + bias.
void gemm_strip(int64_t M, int64_t n, int64_t K, int64_t k0, int64_t kc, const float* pa, const float* pb,
                const float* bias, float* c, int64_t ldc);

// gemm_strip over every strip of a packed B slice (b_strip_offset(s, kc)): C (M, N) for one depth
// pass. K == 0: C = bias.
void gemm_pass(int64_t M, int64_t N, int64_t K, int64_t k0, int64_t kc, const float* pa, const float* pb,
               const float* bias, float* c, int64_t ldc);

// gemm_pass with A read in place, row i at a + i lda (all K columns), not packed: for a conv's
// weights when few columns use them (batch 1 on small maps), where packing them on every call
// cost up to a fifth of the layer. The same sums as gemm_pass on pack_a(a), so the same bits;
// slower than it when many columns reuse A (a strip's 8 rows come from 8 streams). kc >= 1.
void gemm_pass_direct(int64_t M, int64_t N, int64_t k0, int64_t kc, const float* a, int64_t lda, const float* pb,
                      const float* bias, float* c, int64_t ldc);

// C (M, N) = A B (+ row_bias[i] on row i, or + col_bias[j] on column j, when not null), or
// C += A B when accumulating (no bias then); A element (i, k) at a[i ars + k acs], B element
// (k, j) at b[k brs + j bcs], either operand row- or column-major (one stride 1) or neither
// (read element by element). Packs one depth pass of A (all M rows, kKC columns; kDeepKC for a column-major B against at most kDeepM rows) and, per strip,
// one kKC x kNR block of B into this thread's buffers. Every output is (C, or the bias, or 0) + its
// K products in order, as in gemm_pass. M, N >= 1, K >= 0.
void gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars, int64_t acs, const float* b, int64_t brs,
          int64_t bcs, float* c, int64_t ldc, bool accumulate, const float* row_bias = nullptr,
          const float* col_bias = nullptr);

// gemm() picks one of two ways to cut the work, by the shape and layout alone (the same bits
// either way: every output is the same in-order sum):
// - gemm_pack_both packs a depth pass of A and, strip by strip, a kc x kNR block of B;
// - gemm_weight_rows, for at most kWeightRowsM rows of A against a column-major B (a linear
//   layer's weight (out, in), row-major, seen transposed): C^T = B^T A^T, the weight's rows read in
//   place 8 at a time (they stay in L1 while every strip of A's rows passes), A's rows packed as
//   the strips, each tile stored transposed; the last 1-8 rows of A past a whole vector run with
//   16 weight rows in the lanes instead; the weight is never copied (docs/gemm.md).
//   w: column j of B, i.e. weight row j, at w + j ldw, contiguous in k.
// gemm_weight_rows takes depth passes of kWeightRowsKC = 768: a panel's 8 weight rows are then
// read as whole rows of ViT-B/16's 768 inputs (24 KB, in L1), one contiguous block, and up to 320
// rows of A are 1 MB of strips, in this Xeon's 2 MB L2.
// gemm_pack_both's depth passes for at most kDeepM rows of A against a column-major B: kDeepKC
// (a pass of A is then at most 256 x 1536 floats, 1.5 MB). ViT-B/16 at batch 1 on the EPYC (AVX2),
// one thread, min of 5, two A/B runs: 441 / 452 -> 424 / 427 ms (768-deep: 426 / 432 ms; 3072-deep:
// 430 / 435 ms); two threads 236 / 240 -> 228 / 231 ms.
constexpr int64_t kDeepM = 256;
constexpr int64_t kDeepKC = 4 * kKC;
constexpr int64_t kWeightRowsM = 320;
constexpr int64_t kWeightRowsKC = 768;
constexpr int64_t kMaxGatherLd = int64_t{1} << 26;  // 15 ldc must fit the gathers' int32 offsets
bool weight_rows_pays(int64_t M, int64_t brs, int64_t bcs, int64_t ldc);
void gemm_pack_both(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars, int64_t acs, const float* b,
                    int64_t brs, int64_t bcs, float* c, int64_t ldc, bool accumulate, const float* row_bias = nullptr,
                    const float* col_bias = nullptr);
void gemm_weight_rows(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars, int64_t acs, const float* w,
                      int64_t ldw, float* c, int64_t ldc, bool accumulate, const float* row_bias = nullptr,
                      const float* col_bias = nullptr);

// Whether gemm() beats Eigen's 48x4 kernel on this shape (measured on Xeon, docs/gemm.md): not on
// matrix-vector products or thin ones, where packing costs more than the wider kernel saves; not
// under 96 columns unless the product is small (A's packing, about M K / 3 cycles, is spread over
// only N columns: 512 x 2048 x 49 ran 0.82x Eigen, 197 x 768 x 50 0.93x, while 32 x 32 x 32 ran
// 1.26x); nor where the last strip's padding costs more than a quarter.
inline bool gemm_pays(int64_t M, int64_t N, int64_t K) {
  return M >= 8 && N >= 16 && K >= 16 && M * N * K >= (1 << 15) && (N >= 2 * kNR || M * N * K < (1 << 18)) &&
         strip_cost(N) * static_cast<double>(kNR) <= 1.25 * static_cast<double>(N);
}

}  // namespace cortex::kernels::cpu::conv_gemm
