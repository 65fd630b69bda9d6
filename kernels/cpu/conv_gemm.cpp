// The packed conv GEMM (see conv_gemm.h). One strip of one depth pass: the kKC x kNR block of B
// stays in cache while every row panel of A streams past it; C is written at the end of each
// pass (initialised with the bias on the first, read back and added to on later ones).
#include "kernels/cpu/conv_gemm.h"

#ifdef CORTEX_CONV_GEMM
#include <immintrin.h>

#include <algorithm>

namespace cortex::kernels::cpu::conv_gemm {
namespace {

constexpr int kV = 16;  // floats per AVX-512 vector

// C tile (rows <= kMR, cols <= NV * kV) of one pass: acc = (first ? bias : C) + A_panel B_strip
// over kc steps. a: (kc, kMR), b: (kc, kNR). Rows and columns past the tile are computed on the
// packed zeros and masked off when loading and storing. NV vectors of columns: 3 for a full
// strip, fewer for a narrow last strip so its padding costs less.
template <int NV>
void micro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool first, const float* bias,
           int64_t rows, int64_t cols) {
  __m512 acc[kMR][NV];
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) {
    const int64_t left = std::clamp<int64_t>(cols - v * kV, 0, kV);
    mask[v] = static_cast<__mmask16>((1u << left) - 1u);
  }
  for (int r = 0; r < kMR; ++r)
    for (int v = 0; v < NV; ++v) {
      if (r >= rows)
        acc[r][v] = _mm512_setzero_ps();
      else if (first)
        acc[r][v] = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
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
      const __m512 ar = _mm512_set1_ps(a[k * kMR + r]);
#pragma GCC unroll 3
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < NV; ++v) _mm512_mask_storeu_ps(c + r * ldc + v * kV, mask[v], acc[r][v]);
}

}  // namespace

int64_t packed_a_size(int64_t M, int64_t K) { return (M + kMR - 1) / kMR * kMR * K; }

void pack_a(const float* a, int64_t lda, int64_t M, int64_t K, float* out) {
  // Eight rows at a time, 16 columns of each: an 8x16 block transposed in registers and stored
  // as 16 contiguous panel rows (a row-by-row scatter into the panel took 3.4% of a dream step).
  for (int64_t m0 = 0; m0 < M; m0 += kMR) {
    float* panel = out + m0 * K;  // (K, kMR)
    const int64_t rows = std::min(kMR, M - m0);
    int64_t k = 0;
    if (rows == kMR)
      for (; k + 16 <= K; k += 16) {
        alignas(64) float t[kMR][16];
        for (int64_t r = 0; r < kMR; ++r) _mm512_store_ps(t[r], _mm512_loadu_ps(a + (m0 + r) * lda + k));
        for (int64_t j = 0; j < 16; ++j)
          for (int64_t r = 0; r < kMR; ++r) panel[(k + j) * kMR + r] = t[r][j];
      }
    for (; k < K; ++k)
      for (int64_t r = 0; r < kMR; ++r) panel[k * kMR + r] = r < rows ? a[(m0 + r) * lda + k] : 0.0f;
  }
}

int64_t packed_b_size(int64_t kc, int64_t N) { return b_strips(N) * kNR * kc; }

double strip_cost(int64_t N) {
  const int64_t tail = N % kNR;
  return static_cast<double>(N / kNR) + (tail == 0 ? 0.0 : tail <= kV ? 0.4 : tail <= 2 * kV ? 0.7 : 1.0);
}

void gemm_strip(int64_t M, int64_t n, int64_t K, int64_t k0, int64_t kc, const float* pa, const float* pb,
                const float* bias, float* c, int64_t ldc) {
  for (int64_t m0 = 0; m0 < M; m0 += kMR) {
    const float* a = pa + m0 * K + k0 * kMR;
    float* ct = c + m0 * ldc;
    const float* bt = bias ? bias + m0 : nullptr;
    const int64_t rows = std::min(kMR, M - m0);
    if (n > 2 * kV)
      micro<3>(kc, a, pb, ct, ldc, k0 == 0, bt, rows, n);
    else if (n > kV)
      micro<2>(kc, a, pb, ct, ldc, k0 == 0, bt, rows, n);
    else
      micro<1>(kc, a, pb, ct, ldc, k0 == 0, bt, rows, n);
  }
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

}  // namespace cortex::kernels::cpu::conv_gemm
#endif  // CORTEX_CONV_GEMM
