// What the fused-attention kernels share (kernels/cuda/attention.cu, docs/attention.md): how a
// batch index finds its q/k/v matrices through any leading dims and strides, and the math helpers.
#pragma once
#include <cstdint>

#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

constexpr int kAttnMaxLead = 6;  // leading dims of q, k, v
constexpr int kAttnMaxOps = 6;   // strided operands a kernel reads (the backward: q, k, v, out, lse, gout)

// Batch index b (row-major over the leading dims) -> element offset of operand k's matrix.
struct AttnLead {
  int nd = 0;
  int64_t size[kAttnMaxLead] = {};
  int64_t st[kAttnMaxOps][kAttnMaxLead] = {};
  __host__ __device__ __forceinline__ int64_t off(int k, int64_t b) const {
    int64_t o = 0;
    for (int d = nd - 1; d >= 0; --d) {
      o += (b % size[d]) * st[k][d];
      b /= size[d];
    }
    return o;
  }
};

// A strided matrix operand: element (r, c) of batch b is p[lead.off(k, b) + r * rs + c * cs].
template <class T>
struct AttnMat {
  const T* p = nullptr;
  int64_t rs = 0, cs = 0;
};

struct AttnDims {
  int64_t nb = 0, Lq = 0, Lk = 0, D = 0, Dv = 0;
};

__device__ __forceinline__ float exp_of(float v) { return expf(v); }
__device__ __forceinline__ double exp_of(double v) { return exp(v); }
__device__ __forceinline__ float log_of(float v) { return logf(v); }
__device__ __forceinline__ double log_of(double v) { return log(v); }
template <class T>
__device__ __forceinline__ T neg_inf() {
  return -static_cast<T>(INFINITY);
}
template <class T>
__device__ __forceinline__ T max_of(T a, T b) {
  return a > b ? a : b;
}

// sum_c a[c * as] b[c * bs] for c < n, in c order.
template <class T>
__device__ __forceinline__ T dot_of(const T* a, int64_t as, const T* b, int64_t bs, int64_t n) {
  T s = T(0);
  for (int64_t c = 0; c < n; ++c) s += a[c * as] * b[c * bs];
  return s;
}

// Max / sum over the g consecutive lanes of a row group (g a power of two <= 32, groups aligned in
// the warp); every lane of the group gets the result. All 32 lanes of the warp must call it.
template <class T>
__device__ __forceinline__ T group_max(T v, int g) {
  for (int o = g / 2; o > 0; o /= 2) v = max_of(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <class T>
__device__ __forceinline__ T group_sum(T v, int g) {
  for (int o = g / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
