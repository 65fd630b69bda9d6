// The hand-written GEMM of the CUDA backend, by version (kernels/cuda/gemm/<n>_*.cuh, docs/gemm.md),
// and the choice of the path matmul and linear take. Plain C++: tests and benchmarks include it
// without the CUDA keyword macros of kernels/cuda/common.cuh.
//
// One GEMM is C (M, N) = A (M, K) B (K, N) [+ bias (N) in every row], every operand read through
// element strides, so a transposed view (A^T has strides (1, lda)) or a sliced one needs no copy.
// C has unit column stride and leading dim ldc.
#pragma once
#include <cstdint>

namespace cortex::kernels {

template <class T>
struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  const T* A = nullptr;
  int64_t a_rs = 0, a_cs = 0;  // A(i, k) = A[i * a_rs + k * a_cs]
  const T* B = nullptr;
  int64_t b_rs = 0, b_cs = 0;  // B(k, j) = B[k * b_rs + j * b_cs]
  T* C = nullptr;
  int64_t ldc = 0;             // C(i, j) = C[i * ldc + j]
  const T* bias = nullptr;     // optional: C(i, j) += bias[j * bias_s]
  int64_t bias_s = 0;
};

// The hand-written versions, 1 (naive) to 7 (warp tiles); kGemmVendor is cuBLAS (GPU builds).
inline constexpr int kGemmVersions = 7;
inline constexpr int kGemmVendor = 0;

}  // namespace cortex::kernels

// Each backend (emu: the emulated device, every build; cuda: nvcc, GPU builds) has its own copy.
#define CORTEX_GEMM_DECLARE_BACKEND(ns)                                                                        \
  namespace cortex::kernels::ns {                                                                              \
  /* C = A B (+ bias) with hand-written version 1..7 (float32) or 1..3 (float64). M, N or K may be 0. */      \
  void gemm(int version, const GemmArgs<float>& g);                                                            \
  void gemm(int version, const GemmArgs<double>& g);                                                           \
  /* The path matmul and linear take for float32: kGemmVendor or 1..7. Chosen by set_gemm_version, else */    \
  /* by env CORTEX_GEMM=cublas|1..7, else the default (cuBLAS under nvcc, the fastest hand-written */          \
  /* version on the emulated device). float64 always takes the simplest templated version. */                 \
  int gemm_version();                                                                                          \
  /* v: kGemmVendor, 1..7, or -1 to follow the environment again. */                                          \
  void set_gemm_version(int v);                                                                                \
  }

CORTEX_GEMM_DECLARE_BACKEND(emu)
CORTEX_GEMM_DECLARE_BACKEND(cuda)
#undef CORTEX_GEMM_DECLARE_BACKEND
