// Attention forward, version 1: one thread per query row, two passes over the keys. Pass 1 finds
// the row max of the scores; pass 2 recomputes each score, adds exp(s - max) to the row sum and
// p * v_j into the output row, which lives in global memory (the accumulator has Dv entries, too
// many for registers at any Dv). Every thread reads all of K twice and all of V once, with no reuse
// between threads and uncoalesced rows (neighbouring threads read rows Dk apart): the baseline.
#pragma once
#include "kernels/cuda/attention/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

template <class T>
struct AttnFwdArgs {
  AttnDims n;
  AttnLead lead;  // operands 0, 1, 2: q, k, v
  AttnMat<T> q, k, v;
  T scale;
  T* out;  // (nb, Lq, Dv) contiguous
  T* lse;  // (nb, Lq)
};

constexpr unsigned kNaiveThreads = 128;

template <class T>
__global__ void attn1_naive(AttnFwdArgs<T> a) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= a.n.nb * a.n.Lq) return;
  const int64_t b = t / a.n.Lq, i = t % a.n.Lq;
  const T* q = a.q.p + a.lead.off(0, b) + i * a.q.rs;
  const T* k = a.k.p + a.lead.off(1, b);
  const T* v = a.v.p + a.lead.off(2, b);
  T* o = a.out + t * a.n.Dv;
  T m = neg_inf<T>();
  for (int64_t j = 0; j < a.n.Lk; ++j) m = max_of(m, a.scale * dot_of(q, a.q.cs, k + j * a.k.rs, a.k.cs, a.n.D));
  for (int64_t d = 0; d < a.n.Dv; ++d) o[d] = T(0);
  T l = T(0);
  for (int64_t j = 0; j < a.n.Lk; ++j) {
    const T p = exp_of(a.scale * dot_of(q, a.q.cs, k + j * a.k.rs, a.k.cs, a.n.D) - m);
    l += p;
    for (int64_t d = 0; d < a.n.Dv; ++d) o[d] += p * v[j * a.v.rs + d * a.v.cs];
  }
  for (int64_t d = 0; d < a.n.Dv; ++d) o[d] /= l;
  a.lse[t] = m + log_of(l);
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
