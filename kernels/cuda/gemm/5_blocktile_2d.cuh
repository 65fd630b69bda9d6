// GEMM version 5: 2-D block tiling. Each thread now computes an 8 x 8 sub-tile of C (TM x TN): per
// k it loads 8 values of A and 8 of B into registers and does 64 multiply-adds with them, so a
// multiply-add costs 1/4 of a shared-memory load (version 4: 1.125). The block owns 128 x 128 of C
// with 256 threads; the A tile is stored transposed (As[k][m]) so a thread's 8 values of A are
// contiguous in shared memory. Each thread loads 4 elements of each tile per step of K = 8.
// Arithmetic intensity per block doubles again (128 x 128 outputs per 2 x 128 x 8 loads).
#pragma once
#include "kernels/cuda/gemm/4_blocktile_1d.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

namespace bt2 {
constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
constexpr int kThreads = (BM / TM) * (BN / TN);  // 256
}  // namespace bt2

__global__ void __launch_bounds__(bt2::kThreads) gemm5_blocktile_2d(GemmArgs<float> g) {
  using namespace bt2;
  __shared__ float As[BK * BM];  // As[k * BM + m]: transposed
  __shared__ float Bs[BK * BN];  // Bs[k * BN + n]
  const int t = threadIdx.x;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * BM, j0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int tr = t / (BN / TN), tc = t % (BN / TN);  // this thread's sub-tile: rows tr*TM.., cols tc*TN..
  float acc[TM * TN] = {};
  float rm[TM], rn[TN];
  for (int64_t k0 = 0; k0 < g.K; k0 += BK) {
    for (int l = t; l < BM * BK; l += kThreads) {
      const int m = l / BK, k = l % BK;
      As[k * BM + m] = (i0 + m < g.M && k0 + k < g.K) ? gemm_a(g, i0 + m, k0 + k) : 0.0f;
    }
    for (int l = t; l < BK * BN; l += kThreads) {
      const int k = l / BN, n = l % BN;
      Bs[k * BN + n] = (k0 + k < g.K && j0 + n < g.N) ? gemm_b(g, k0 + k, j0 + n) : 0.0f;
    }
    __syncthreads();
    CORTEX_GEMM_UNROLL
    for (int k = 0; k < BK; ++k) {
      CORTEX_GEMM_UNROLL
      for (int r = 0; r < TM; ++r) rm[r] = As[k * BM + tr * TM + r];
      CORTEX_GEMM_UNROLL
      for (int c = 0; c < TN; ++c) rn[c] = Bs[k * BN + tc * TN + c];
      CORTEX_GEMM_UNROLL
      for (int r = 0; r < TM; ++r)
        CORTEX_GEMM_UNROLL
        for (int c = 0; c < TN; ++c) acc[r * TN + c] += rm[r] * rn[c];
    }
    __syncthreads();
  }
  CORTEX_GEMM_UNROLL
  for (int r = 0; r < TM; ++r) {
    const int64_t i = i0 + tr * TM + r;
    if (i >= g.M) break;
    CORTEX_GEMM_UNROLL
    for (int c = 0; c < TN; ++c) {
      const int64_t j = j0 + tc * TN + c;
      if (j < g.N) gemm_store(g, i, j, acc[r * TN + c]);
    }
  }
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
