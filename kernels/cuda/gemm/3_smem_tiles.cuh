// GEMM version 3: shared-memory tiles. The block (32 x 32 threads, one per element of its tile of
// C) walks K in steps of 32: it copies a 32 x 32 tile of A and one of B into shared memory, one
// element per thread (coalesced), waits, and every thread then does 32 multiply-adds from shared
// memory. Each element loaded from global memory is used 32 times instead of once, so global
// traffic drops 32x; shared memory is ~10x faster than DRAM. Tiles that overhang M, N or K are
// padded with zeros, so any size works and the padded terms add exact zeros.
#pragma once
#include "kernels/cuda/gemm/2_coalesced.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

constexpr int kSmemTile = 32;

template <class T>
__global__ void gemm3_smem_tiles(GemmArgs<T> g) {
  constexpr int S = kSmemTile;
  __shared__ T As[S * S];  // As[r * S + k] = A(i0 + r, k0 + k)
  __shared__ T Bs[S * S];  // Bs[k * S + c] = B(k0 + k, j0 + c)
  const int r = threadIdx.x / S, c = threadIdx.x % S;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * S + r;
  const int64_t j = static_cast<int64_t>(blockIdx.y) * S + c;
  T acc = T(0);
  for (int64_t k0 = 0; k0 < g.K; k0 += S) {
    As[r * S + c] = (i < g.M && k0 + c < g.K) ? gemm_a(g, i, k0 + c) : T(0);
    Bs[r * S + c] = (k0 + r < g.K && j < g.N) ? gemm_b(g, k0 + r, j) : T(0);
    __syncthreads();
    for (int k = 0; k < S; ++k) acc += As[r * S + k] * Bs[k * S + c];
    __syncthreads();  // the tiles are overwritten next step
  }
  if (i < g.M && j < g.N) gemm_store(g, i, j, acc);
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
