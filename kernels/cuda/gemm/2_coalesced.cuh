// GEMM version 2: coalesced. Same work per thread as version 1, but the thread index is mapped so
// that the 32 threads of a warp share one row i of C and take 32 consecutive columns j. A warp now
// reads one A(i, k) (a broadcast), 32 consecutive B(k, j) (one 128-byte transaction when B is
// row-major) and writes 32 consecutive C(i, j): the memory system serves a warp's request with one
// or two transactions instead of 32. On siboehm/SGEMM_CUDA's A6000 this alone is ~6x.
#pragma once
#include "kernels/cuda/gemm/1_naive.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

constexpr int kCoalescedTile = 32;  // a block (1024 threads) covers a 32 x 32 tile of C

template <class T>
__global__ void gemm2_coalesced(GemmArgs<T> g) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kCoalescedTile + threadIdx.x / kCoalescedTile;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * kCoalescedTile + threadIdx.x % kCoalescedTile;
  if (i >= g.M || j >= g.N) return;
  T acc = T(0);
  for (int64_t k = 0; k < g.K; ++k) acc += gemm_a(g, i, k) * gemm_b(g, k, j);
  gemm_store(g, i, j, acc);
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
