// GEMM version 6: vectorised memory access. Version 5's tiles, but global memory is read and
// written 4 floats at a time (float4: one 128-bit instruction instead of four 32-bit ones), and
// the registers of a thread's 8 values of A and of B come from shared memory as two float4 each.
// Fewer, wider instructions leave the load/store units less busy and the warp schedulers more
// room for the FMAs. The A tile is still transposed on its way into shared memory so that its
// reads are vectorised too.
//
// A float4 access needs 4 consecutive floats on a 16-byte boundary. The fast path is taken when
// the operand's inner stride is 1, its leading dim a multiple of 4 and its base pointer 16-byte
// aligned (then every 4-aligned column is), and the 4 elements lie inside the matrix; otherwise
// (a transposed or sliced operand, odd leading dims, the ragged edge of the tile) the same
// elements are read one by one. The choice depends only on the layout, never on timing.
#pragma once
#include "kernels/cuda/gemm/5_blocktile_2d.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

__device__ __forceinline__ bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
// Can rows of this (row stride rs, column stride cs) operand be read 4 columns at a time?
__device__ __forceinline__ bool vec_rows(const float* p, int64_t rs, int64_t cs) {
  return cs == 1 && rs % 4 == 0 && aligned16(p);
}

// A(i0 + m, k0 + k .. k0 + k + 3) into As[(k + q) * BM + m] (transposed), zero outside A.
template <int BM>
__device__ __forceinline__ void load_a4(const GemmArgs<float>& g, bool vec, int64_t i0, int64_t k0, int m, int k,
                                        float* As) {
  const int64_t i = i0 + m, kk = k0 + k;
  float v[4];
  if (vec && i < g.M && kk + 3 < g.K) {
    const float4 q = *reinterpret_cast<const float4*>(g.A + i * g.a_rs + kk);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  } else {
    CORTEX_GEMM_UNROLL
    for (int q = 0; q < 4; ++q) v[q] = (i < g.M && kk + q < g.K) ? gemm_a(g, i, kk + q) : 0.0f;
  }
  CORTEX_GEMM_UNROLL
  for (int q = 0; q < 4; ++q) As[(k + q) * BM + m] = v[q];
}

// B(k0 + k, j0 + n .. j0 + n + 3) into Bs[k * BN + n ..] as one float4, zero outside B.
template <int BN>
__device__ __forceinline__ void load_b4(const GemmArgs<float>& g, bool vec, int64_t k0, int64_t j0, int k, int n,
                                        float* Bs) {
  const int64_t kk = k0 + k, j = j0 + n;
  float4 v;
  if (vec && kk < g.K && j + 3 < g.N) {
    v = *reinterpret_cast<const float4*>(g.B + kk * g.b_rs + j);
  } else {
    float s[4];
    CORTEX_GEMM_UNROLL
    for (int q = 0; q < 4; ++q) s[q] = (kk < g.K && j + q < g.N) ? gemm_b(g, kk, j + q) : 0.0f;
    v = make_float4(s[0], s[1], s[2], s[3]);
  }
  *reinterpret_cast<float4*>(&Bs[k * BN + n]) = v;
}

// C(i, j .. j + 3) = v (+ bias), as one float4 when C allows it; the parts inside C otherwise.
__device__ __forceinline__ void store_c4(const GemmArgs<float>& g, bool vec, int64_t i, int64_t j, const float* v) {
  if (i >= g.M) return;
  float o[4];
  CORTEX_GEMM_UNROLL
  for (int q = 0; q < 4; ++q) o[q] = v[q] + ((g.bias != nullptr && j + q < g.N) ? g.bias[(j + q) * g.bias_s] : 0.0f);
  if (vec && j + 3 < g.N) {
    *reinterpret_cast<float4*>(g.C + i * g.ldc + j) = make_float4(o[0], o[1], o[2], o[3]);
  } else {
    CORTEX_GEMM_UNROLL
    for (int q = 0; q < 4; ++q)
      if (j + q < g.N) g.C[i * g.ldc + j + q] = o[q];
  }
}

namespace vec {
constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
constexpr int kThreads = (BM / TM) * (BN / TN);  // 256
static_assert(BM * BK / 4 == kThreads && BK * BN / 4 == kThreads, "one float4 of each tile per thread");
}  // namespace vec

__global__ void __launch_bounds__(vec::kThreads) gemm6_vectorized(GemmArgs<float> g) {
  using namespace vec;
  __align__(16) __shared__ float As[BK * BM];  // As[k * BM + m]: transposed
  __align__(16) __shared__ float Bs[BK * BN];  // Bs[k * BN + n]
  const int t = threadIdx.x;
  const int64_t i0 = static_cast<int64_t>(blockIdx.x) * BM, j0 = static_cast<int64_t>(blockIdx.y) * BN;
  const int tr = t / (BN / TN), tc = t % (BN / TN);
  const bool va = vec_rows(g.A, g.a_rs, g.a_cs), vb = vec_rows(g.B, g.b_rs, g.b_cs);
  const bool vc = g.ldc % 4 == 0 && aligned16(g.C);
  float acc[TM * TN] = {};
  float rm[TM], rn[TN];
  for (int64_t k0 = 0; k0 < g.K; k0 += BK) {
    load_a4<BM>(g, va, i0, k0, t / (BK / 4), (t % (BK / 4)) * 4, As);
    load_b4<BN>(g, vb, k0, j0, t / (BN / 4), (t % (BN / 4)) * 4, Bs);
    __syncthreads();
    CORTEX_GEMM_UNROLL
    for (int k = 0; k < BK; ++k) {
      CORTEX_GEMM_UNROLL
      for (int q = 0; q < TM; q += 4) {
        const float4 a = *reinterpret_cast<const float4*>(&As[k * BM + tr * TM + q]);
        rm[q] = a.x, rm[q + 1] = a.y, rm[q + 2] = a.z, rm[q + 3] = a.w;
      }
      CORTEX_GEMM_UNROLL
      for (int q = 0; q < TN; q += 4) {
        const float4 b = *reinterpret_cast<const float4*>(&Bs[k * BN + tc * TN + q]);
        rn[q] = b.x, rn[q + 1] = b.y, rn[q + 2] = b.z, rn[q + 3] = b.w;
      }
      CORTEX_GEMM_UNROLL
      for (int r = 0; r < TM; ++r)
        CORTEX_GEMM_UNROLL
        for (int c = 0; c < TN; ++c) acc[r * TN + c] += rm[r] * rn[c];
    }
    __syncthreads();
  }
  CORTEX_GEMM_UNROLL
  for (int r = 0; r < TM; ++r)
    CORTEX_GEMM_UNROLL
    for (int c = 0; c < TN; c += 4) store_c4(g, vc, i0 + tr * TM + r, j0 + tc * TN + c, &acc[r * TN + c]);
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
