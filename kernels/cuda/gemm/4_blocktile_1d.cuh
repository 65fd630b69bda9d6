// GEMM version 4: 1-D block tiling. Version 3 does one multiply-add per two shared-memory loads,
// so shared memory, not arithmetic, bounds it. Here each thread computes TM = 8 elements of one
// column of C: for each k it loads B(k, j) once into a register and reuses it for 8 rows, so a
// multiply-add costs 1 + 1/8 shared loads instead of 2. The block owns a 64 x 64 tile of C with
// 512 threads (64 * 64 / 8), and one step of K is 8 wide (the A tile is 64 x 8, the B tile 8 x 64:
// one element of each per thread). More work per thread also means fewer threads and fewer
// barriers per result.
#pragma once
#include "kernels/cuda/gemm/3_smem_tiles.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

namespace bt1 {
constexpr int BM = 64, BN = 64, BK = 8, TM = 8;
constexpr int kThreads = BM * BN / TM;  // 512
static_assert(kThreads == BM * BK && kThreads == BK * BN, "one element of each tile per thread");
}  // namespace bt1

__global__ void __launch_bounds__(bt1::kThreads) gemm4_blocktile_1d(GemmArgs<float> g) {
  using namespace bt1;
  __shared__ float As[BM * BK];  // As[m * BK + k]
  __shared__ float Bs[BK * BN];  // Bs[k * BN + n]
  const int t = threadIdx.x;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * BM, j0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int tc = t % BN, tr = t / BN;          // this thread's column and its group of TM rows
  const int am = t / BK, ak = t % BK;          // the A element it loads
  const int bk = t / BN, bn = t % BN;          // the B element it loads
  float acc[TM] = {};
  for (int64_t k0 = 0; k0 < g.K; k0 += BK) {
    As[am * BK + ak] = (i0 + am < g.M && k0 + ak < g.K) ? gemm_a(g, i0 + am, k0 + ak) : 0.0f;
    Bs[bk * BN + bn] = (k0 + bk < g.K && j0 + bn < g.N) ? gemm_b(g, k0 + bk, j0 + bn) : 0.0f;
    __syncthreads();
    CORTEX_GEMM_UNROLL
    for (int k = 0; k < BK; ++k) {
      const float b = Bs[k * BN + tc];
      CORTEX_GEMM_UNROLL
      for (int r = 0; r < TM; ++r) acc[r] += As[(tr * TM + r) * BK + k] * b;
    }
    __syncthreads();
  }
  const int64_t j = j0 + tc;
  if (j >= g.N) return;
  CORTEX_GEMM_UNROLL
  for (int r = 0; r < TM; ++r) {
    const int64_t i = i0 + tr * TM + r;
    if (i < g.M) gemm_store(g, i, j, acc[r]);
  }
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
