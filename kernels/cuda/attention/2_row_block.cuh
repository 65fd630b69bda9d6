// Attention forward, version 2: one block per query row, online softmax in one pass. The q row sits
// in shared memory; the block takes the keys kRowThreads at a time, one score per thread (so the K
// rows a warp reads are spread over its lanes), reduces the chunk's max and sum across the block,
// rescales its running output by exp(m_old - m_new) and adds the chunk's p v. One pass over K and
// V instead of v1's three, and the output row is in shared memory, not global memory. Each block
// still streams all of K and V for one query row: K/V traffic is Lq times the K/V size.
#pragma once
#include "kernels/cuda/attention/1_naive.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

constexpr unsigned kRowThreads = 128;
constexpr unsigned kRowWarps = kRowThreads / 32;

// The reduction of v over the block with op (max or sum); every thread gets it. red holds kRowWarps.
template <class T, bool kMax>
__device__ __forceinline__ T row_block_reduce(T v, T* red) {
  v = kMax ? group_max(v, 32) : group_sum(v, 32);
  const unsigned warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) red[warp] = v;
  __syncthreads();
  T r = red[0];
  for (unsigned w = 1; w < kRowWarps; ++w) r = kMax ? max_of(r, red[w]) : r + red[w];
  __syncthreads();  // red is reused by the next reduction
  return r;
}

// Dynamic shared memory: q row (D), p chunk (kRowThreads), output row (Dv), reduction (kRowWarps).
template <class T>
__global__ void attn2_row_block(AttnFwdArgs<T> a) {
  CORTEX_DYNAMIC_SMEM(T, sm);
  T* qs = sm;
  T* ps = qs + a.n.D;
  T* os = ps + kRowThreads;
  T* red = os + a.n.Dv;
  const int64_t t = blockIdx.x;  // (b, i)
  const int64_t b = t / a.n.Lq, i = t % a.n.Lq;
  const unsigned tid = threadIdx.x;
  const T* q = a.q.p + a.lead.off(0, b) + i * a.q.rs;
  const T* k = a.k.p + a.lead.off(1, b);
  const T* v = a.v.p + a.lead.off(2, b);
  for (int64_t c = tid; c < a.n.D; c += kRowThreads) qs[c] = q[c * a.q.cs];
  for (int64_t d = tid; d < a.n.Dv; d += kRowThreads) os[d] = T(0);
  __syncthreads();
  T m = neg_inf<T>(), l = T(0);
  for (int64_t j0 = 0; j0 < a.n.Lk; j0 += kRowThreads) {
    const int64_t j = j0 + tid;
    const T s = j < a.n.Lk ? a.scale * dot_of(qs, 1, k + j * a.k.rs, a.k.cs, a.n.D) : neg_inf<T>();
    const T mn = max_of(m, row_block_reduce<T, true>(s, red));
    const T alpha = exp_of(m - mn);  // 0 on the first chunk (m = -inf)
    const T p = j < a.n.Lk ? exp_of(s - mn) : T(0);
    ps[tid] = p;
    l = l * alpha + row_block_reduce<T, false>(p, red);  // its barriers also publish ps
    m = mn;
    const int64_t cnt = a.n.Lk - j0 < kRowThreads ? a.n.Lk - j0 : kRowThreads;
    for (int64_t d = tid; d < a.n.Dv; d += kRowThreads) {
      T acc = os[d] * alpha;
      for (int64_t jj = 0; jj < cnt; ++jj) acc += ps[jj] * v[(j0 + jj) * a.v.rs + d * a.v.cs];
      os[d] = acc;
    }
    __syncthreads();  // ps is overwritten by the next chunk
  }
  for (int64_t d = tid; d < a.n.Dv; d += kRowThreads) a.out[t * a.n.Dv + d] = os[d] / l;
  if (tid == 0) a.lse[t] = m + log_of(l);
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
