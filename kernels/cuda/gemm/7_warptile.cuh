// GEMM version 7: warp tiling. Version 6 splits the block tile among threads; here it is split
// first among warps (each of the 4 warps owns a 64 x 64 quarter of the 128 x 128 block tile) and
// then among the lanes of a warp, which sweep their warp's tile in WNITER = 4 strips of 64 x 16
// (each lane 8 x 4 of a strip). What that buys on a GPU: a warp's 32 lanes read a compact 64 x 16
// piece of B and 64 rows of A per k, so its shared-memory reads fall in few banks and broadcast
// well; the warp is the unit the scheduler issues, so its tile is the natural level for register
// reuse (the next step, tensor cores, also works per warp). The K step grows to 16 and the block
// shrinks to 128 threads with 128 accumulators each, which keeps more data in registers per load.
// Loads and stores are version 6's (float4 with the scalar fallback).
#pragma once
#include "kernels/cuda/gemm/6_vectorized.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

namespace wt {
constexpr int BM = 128, BN = 128, BK = 16;
constexpr int WM = 64, WN = 64, WNITER = 4, TM = 8, TN = 4;
constexpr int kWarps = (BM / WM) * (BN / WN);   // 4
constexpr int kThreads = kWarps * 32;            // 128
constexpr int WMITER = (WM * WN) / (32 * TM * TN * WNITER);  // 1
constexpr int WSUBM = WM / WMITER, WSUBN = WN / WNITER;      // 64 x 16: one sweep of the warp
static_assert(TN == 4, "store_c4 writes a lane's 4 columns of a strip");
static_assert(WMITER >= 1 && (WSUBN / TN) * (WSUBM / TM) == 32, "a warp's lanes tile one 64 x 16 strip");
static_assert((BM * BK / 4) % kThreads == 0 && (BK * BN / 4) % kThreads == 0, "whole float4s per thread");
}  // namespace wt

__global__ void __launch_bounds__(wt::kThreads) gemm7_warptile(GemmArgs<float> g) {
  using namespace wt;
  __align__(16) __shared__ float As[BK * BM];  // As[k * BM + m]: transposed
  __align__(16) __shared__ float Bs[BK * BN];  // Bs[k * BN + n]
  const int t = threadIdx.x, warp = t / 32, lane = t % 32;
  const int wr = warp / (BN / WN), wc = warp % (BN / WN);              // the warp's tile
  const int lr = lane / (WSUBN / TN), lc = lane % (WSUBN / TN);        // the lane's place in a strip
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * BM, j0 = static_cast<int64_t>(blockIdx.y) * BN;
  const bool va = vec_rows(g.A, g.a_rs, g.a_cs), vb = vec_rows(g.B, g.b_rs, g.b_cs);
  const bool vc = g.ldc % 4 == 0 && aligned16(g.C);
  float acc[WMITER * TM * WNITER * TN] = {};
  float rm[WMITER * TM], rn[WNITER * TN];
  for (int64_t k0 = 0; k0 < g.K; k0 += BK) {
    for (int l = t; l < BM * BK / 4; l += kThreads) load_a4<BM>(g, va, i0, k0, l / (BK / 4), (l % (BK / 4)) * 4, As);
    for (int l = t; l < BK * BN / 4; l += kThreads) load_b4<BN>(g, vb, k0, j0, l / (BN / 4), (l % (BN / 4)) * 4, Bs);
    __syncthreads();
    CORTEX_GEMM_UNROLL
    for (int k = 0; k < BK; ++k) {
      CORTEX_GEMM_UNROLL
      for (int wm = 0; wm < WMITER; ++wm)
        CORTEX_GEMM_UNROLL
        for (int q = 0; q < TM; q += 4) {
          const float4 a = *reinterpret_cast<const float4*>(&As[k * BM + wr * WM + wm * WSUBM + lr * TM + q]);
          rm[wm * TM + q] = a.x, rm[wm * TM + q + 1] = a.y, rm[wm * TM + q + 2] = a.z, rm[wm * TM + q + 3] = a.w;
        }
      CORTEX_GEMM_UNROLL
      for (int wn = 0; wn < WNITER; ++wn) {
        const float4 b = *reinterpret_cast<const float4*>(&Bs[k * BN + wc * WN + wn * WSUBN + lc * TN]);
        rn[wn * TN] = b.x, rn[wn * TN + 1] = b.y, rn[wn * TN + 2] = b.z, rn[wn * TN + 3] = b.w;
      }
      CORTEX_GEMM_UNROLL
      for (int r = 0; r < WMITER * TM; ++r)
        CORTEX_GEMM_UNROLL
        for (int c = 0; c < WNITER * TN; ++c) acc[r * (WNITER * TN) + c] += rm[r] * rn[c];
    }
    __syncthreads();
  }
  CORTEX_GEMM_UNROLL
  for (int wm = 0; wm < WMITER; ++wm)
    CORTEX_GEMM_UNROLL
    for (int r = 0; r < TM; ++r) {
      const int64_t i = i0 + wr * WM + wm * WSUBM + lr * TM + r;
      CORTEX_GEMM_UNROLL
      for (int wn = 0; wn < WNITER; ++wn)
        store_c4(g, vc, i, j0 + wc * WN + wn * WSUBN + lc * TN, &acc[(wm * TM + r) * (WNITER * TN) + wn * TN]);
    }
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
