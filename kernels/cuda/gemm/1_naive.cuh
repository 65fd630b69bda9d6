// GEMM version 1: naive. One thread per element of C, which walks row i of A and column j of B
// straight from global memory. blockIdx.x/threadIdx.x run along the rows of C, so the 32 threads of
// a warp read 32 different rows of A and write 32 different rows of C: every access of the warp
// touches 32 separate cache lines (no coalescing). Each of the M*N threads loads 2K values for K
// multiply-adds, so the kernel is bound by memory traffic: the baseline the next six improve on.
//
// Also holds what every version shares: the element accessors and the epilogue (bias, store).
#pragma once
#include "kernels/cuda/gemm.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

// Loops over a thread's registers must be unrolled, or nvcc keeps the accumulators in local memory
// (a 512-byte stack frame in version 7 before this); the host compiler is asked the same.
#ifdef __CUDACC__
#define CORTEX_GEMM_UNROLL _Pragma("unroll")
#else
#define CORTEX_GEMM_UNROLL _Pragma("GCC unroll 16")
#endif

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

template <class T>
__device__ __forceinline__ T gemm_a(const GemmArgs<T>& g, int64_t i, int64_t k) {
  return g.A[i * g.a_rs + k * g.a_cs];
}
template <class T>
__device__ __forceinline__ T gemm_b(const GemmArgs<T>& g, int64_t k, int64_t j) {
  return g.B[k * g.b_rs + j * g.b_cs];
}
// C(i, j) = acc (+ bias[j]).
template <class T>
__device__ __forceinline__ void gemm_store(const GemmArgs<T>& g, int64_t i, int64_t j, T acc) {
  if (g.bias != nullptr) acc += g.bias[j * g.bias_s];
  g.C[i * g.ldc + j] = acc;
}

constexpr int kNaiveBlock = 32;  // 32 x 32 threads, one per element of a 32 x 32 tile of C

template <class T>
__global__ void gemm1_naive(GemmArgs<T> g) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // row of C
  const int64_t j = static_cast<int64_t>(blockIdx.y) * blockDim.y + threadIdx.y;  // column of C
  if (i >= g.M || j >= g.N) return;
  T acc = T(0);
  for (int64_t k = 0; k < g.K; ++k) acc += gemm_a(g, i, k) * gemm_b(g, k, j);
  gemm_store(g, i, j, acc);
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
