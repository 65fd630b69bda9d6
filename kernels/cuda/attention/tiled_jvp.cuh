// Attention JVP, tiled, in one pass (docs/attention.md): with tS = s (tq k^T + q tk^T),
//   tout_i = sum_j P_ij (tS_ij v_j + tv_j) - (sum_j P_ij tS_ij) out_i.
// Over the key tiles a row keeps, unnormalised and rescaled by the same exp(m_old - m_new) as the
// forward's output O_i = sum_j p_ij v_j and sum l_i = sum_j p_ij, two more accumulators:
//   A_i = sum_j p_ij (tS_ij v_j + tv_j)  (Dv entries)   and   c_i = sum_j p_ij tS_ij  (a scalar),
// and at the end out_i = O_i / l_i, tout_i = A_i / l_i - (c_i / l_i) out_i. No (Lq, Lk) matrix.
// Layout and threads as version 3 of the forward (3_tiled.cuh), K and tK rows padded alike. Shared
// memory: Qs, tQs (br, D) | Ks, tKs (bc, D + kTilePad) | Vs, tVs (bc, Dv) | Ss, tSs (br, bc) | Os, As (br, Dv)
#pragma once
#include "kernels/cuda/attention/3_tiled.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

template <class T>
struct AttnJvpArgs {
  AttnDims n;
  AttnLead lead;  // operands 0..5: q, k, v, tq, tk, tv
  AttnMat<T> q, k, v, tq, tk, tv;
  T scale;
  T *out, *tout;  // (nb, Lq, Dv) contiguous
};

template <class T>
__global__ void attn_jvp_tiled(AttnJvpArgs<T> a, int br) {
  CORTEX_DYNAMIC_SMEM(T, sm);
  const int bc = br;
  const int64_t D = a.n.D, Dv = a.n.Dv, ldk = D + kTilePad;
  T* Qs = sm;
  T* tQs = Qs + br * D;
  T* Ks = tQs + br * D;
  T* tKs = Ks + bc * ldk;
  T* Vs = tKs + bc * ldk;
  T* tVs = Vs + bc * Dv;
  T* Ss = tVs + bc * Dv;
  T* tSs = Ss + br * bc;
  T* Os = tSs + br * bc;
  T* As = Os + br * Dv;
  const int64_t nblk = (a.n.Lq + br - 1) / br;
  const int64_t b = blockIdx.x / nblk, i0 = (blockIdx.x % nblk) * br;
  const int g = static_cast<int>(blockDim.x) / br, r = static_cast<int>(threadIdx.x) / g,
            lg = static_cast<int>(threadIdx.x) % g;
  load_tile(Qs, D, a.q.p + a.lead.off(0, b), a.q.rs, a.q.cs, i0, br, D, a.n.Lq);
  load_tile(tQs, D, a.tq.p + a.lead.off(3, b), a.tq.rs, a.tq.cs, i0, br, D, a.n.Lq);
  for (int64_t e = threadIdx.x; e < br * Dv; e += blockDim.x) Os[e] = As[e] = T(0);
  T m = neg_inf<T>(), l = T(0), c = T(0);
  for (int64_t j0 = 0; j0 < a.n.Lk; j0 += bc) {
    __syncthreads();
    load_tile(Ks, ldk, a.k.p + a.lead.off(1, b), a.k.rs, a.k.cs, j0, bc, D, a.n.Lk);
    load_tile(tKs, ldk, a.tk.p + a.lead.off(4, b), a.tk.rs, a.tk.cs, j0, bc, D, a.n.Lk);
    load_tile(Vs, Dv, a.v.p + a.lead.off(2, b), a.v.rs, a.v.cs, j0, bc, Dv, a.n.Lk);
    load_tile(tVs, Dv, a.tv.p + a.lead.off(5, b), a.tv.rs, a.tv.cs, j0, bc, Dv, a.n.Lk);
    __syncthreads();
    for (int64_t e = threadIdx.x; e < br * bc; e += blockDim.x) {
      const int64_t rr = e / bc, cc = e % bc;
      const bool valid = j0 + cc < a.n.Lk;
      Ss[e] = valid ? a.scale * dot_of(Qs + rr * D, 1, Ks + cc * ldk, 1, D) : neg_inf<T>();
      tSs[e] = valid ? a.scale * (dot_of(tQs + rr * D, 1, Ks + cc * ldk, 1, D) + dot_of(Qs + rr * D, 1, tKs + cc * ldk, 1, D))
                     : T(0);
    }
    __syncthreads();
    T tmax = neg_inf<T>();
    for (int cc = lg; cc < bc; cc += g) tmax = max_of(tmax, Ss[r * bc + cc]);
    const T mn = max_of(m, group_max(tmax, g));
    const T alpha = exp_of(m - mn);
    T psum = T(0), csum = T(0);
    for (int cc = lg; cc < bc; cc += g) {
      const T p = exp_of(Ss[r * bc + cc] - mn);
      Ss[r * bc + cc] = p;
      tSs[r * bc + cc] *= p;  // p tS
      psum += p;
      csum += tSs[r * bc + cc];
    }
    l = l * alpha + group_sum(psum, g);
    c = c * alpha + group_sum(csum, g);
    m = mn;
    __syncthreads();
    for (int64_t d = lg; d < Dv; d += g) {
      T o = Os[r * Dv + d] * alpha, t = As[r * Dv + d] * alpha;
      for (int cc = 0; cc < bc; ++cc) {
        const T p = Ss[r * bc + cc];
        o += p * Vs[cc * Dv + d];
        t += tSs[r * bc + cc] * Vs[cc * Dv + d] + p * tVs[cc * Dv + d];
      }
      Os[r * Dv + d] = o;
      As[r * Dv + d] = t;
    }
  }
  if (i0 + r >= a.n.Lq) return;
  const int64_t row = b * a.n.Lq + i0 + r;
  const T cl = c / l;
  for (int64_t d = lg; d < Dv; d += g) {
    const T o = Os[r * Dv + d] / l;
    a.out[row * Dv + d] = o;
    a.tout[row * Dv + d] = As[r * Dv + d] / l - cl * o;
  }
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
