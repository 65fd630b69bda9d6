// Attention backward, tiled, in two kernels and no atomics (the FlashAttention-2 split): with
// P = exp(S - lse) recomputed from the forward's lse, delta_i = sum_d gout_id out_id, and
// dS = P . (gout V^T - delta):
//   attn_bwd_dq:  a block per tile of br query rows walks the key tiles:  dq = s dS K;
//   attn_bwd_dkv: a block per tile of bc key rows walks the query tiles: dv = P^T gout, dk = s dS^T q.
// Each output element is written by one thread that adds its terms in a fixed order, so the results
// are the same in every schedule order; the price is computing S, P and dS twice. Rows/keys past
// Lq/Lk load as zeros and get P = 0. Threads: kTiledThreads, a thread per tile element in turn.
#pragma once
#include "kernels/cuda/attention/3_tiled.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

template <class T>
struct AttnBwdArgs {
  AttnDims n;
  AttnLead lead;  // operands 0..5: q, k, v, out, lse, gout (lse's matrix is (Lq, 1))
  AttnMat<T> q, k, v, out, lse, gout;
  T scale;
  T *dq, *dk, *dv;  // contiguous (nb, Lq, D), (nb, Lk, D), (nb, Lk, Dv)
};

// Ls[r] = lse, Ds[r] = sum_d gout out for the rows [i0, i0 + br) (0 past Lq); Gs holds gout's tile.
template <class T>
__device__ __forceinline__ void load_row_stats(const AttnBwdArgs<T>& a, int64_t b, int64_t i0, int br, T* Ls, T* Ds) {
  const T* out = a.out.p + a.lead.off(3, b);
  const T* lse = a.lse.p + a.lead.off(4, b);
  const T* go = a.gout.p + a.lead.off(5, b);
  for (int r = threadIdx.x; r < br; r += blockDim.x) {
    const int64_t i = i0 + r;
    Ls[r] = i < a.n.Lq ? lse[i * a.lse.rs] : T(0);
    Ds[r] = i < a.n.Lq ? dot_of(go + i * a.gout.rs, a.gout.cs, out + i * a.out.rs, a.out.cs, a.n.Dv) : T(0);
  }
}

// P and dS of tile element e = (rr, cc): rows i0.., keys j0... Ps may be null (the dq kernel).
// A warp's lanes take consecutive keys cc and read down the K and V tiles' columns, so both tiles'
// rows are padded to D + kTilePad, Dv + kTilePad elements (3_tiled.cuh: no bank conflicts).
template <class T>
__device__ __forceinline__ void p_ds_tile(const AttnBwdArgs<T>& a, int br, int bc, int64_t i0, int64_t j0,
                                          const T* Qs, const T* Gs, const T* Ks, const T* Vs, const T* Ls,
                                          const T* Ds, T* Ps, T* dSs) {
  const int64_t D = a.n.D, Dv = a.n.Dv, ldk = D + kTilePad, ldv = Dv + kTilePad;
  for (int64_t e = threadIdx.x; e < static_cast<int64_t>(br) * bc; e += blockDim.x) {
    const int64_t rr = e / bc, cc = e % bc;
    T p = T(0);
    if (i0 + rr < a.n.Lq && j0 + cc < a.n.Lk) p = exp_of(a.scale * dot_of(Qs + rr * D, 1, Ks + cc * ldk, 1, D) - Ls[rr]);
    const T dp = dot_of(Gs + rr * Dv, 1, Vs + cc * ldv, 1, Dv);
    if (Ps) Ps[e] = p;
    dSs[e] = p * (dp - Ds[rr]);
  }
}

// Shared memory: Qs (br, D) | Gs (br, Dv) | Ks (bc, D + kTilePad) | Vs (bc, Dv + kTilePad) | dSs (br, bc) |
// Ls, Ds (br)
template <class T>
__global__ void attn_bwd_dq(AttnBwdArgs<T> a, int br) {
  CORTEX_DYNAMIC_SMEM(T, sm);
  const int bc = br;
  const int64_t D = a.n.D, Dv = a.n.Dv, ldk = D + kTilePad, ldv = Dv + kTilePad;
  T* Qs = sm;
  T* Gs = Qs + br * D;
  T* Ks = Gs + br * Dv;
  T* Vs = Ks + bc * ldk;
  T* dSs = Vs + bc * ldv;
  T* Ls = dSs + br * bc;
  T* Ds = Ls + br;
  const int64_t nblk = (a.n.Lq + br - 1) / br;
  const int64_t b = blockIdx.x / nblk, i0 = (blockIdx.x % nblk) * br;
  load_tile(Qs, D, a.q.p + a.lead.off(0, b), a.q.rs, a.q.cs, i0, br, D, a.n.Lq);
  load_tile(Gs, Dv, a.gout.p + a.lead.off(5, b), a.gout.rs, a.gout.cs, i0, br, Dv, a.n.Lq);
  load_row_stats(a, b, i0, br, Ls, Ds);
  // dq accumulates in its own global slot: thread e owns elements e, e + blockDim, ... of the
  // (br, D) tile for every key tile, so each element has one writer (no atomics, a fixed order).
  T* dq = a.dq + (b * a.n.Lq) * D;
  for (int64_t e = threadIdx.x; e < br * D; e += blockDim.x)
    if (i0 + e / D < a.n.Lq) dq[(i0 + e / D) * D + e % D] = T(0);
  for (int64_t j0 = 0; j0 < a.n.Lk; j0 += bc) {
    __syncthreads();
    load_tile(Ks, ldk, a.k.p + a.lead.off(1, b), a.k.rs, a.k.cs, j0, bc, D, a.n.Lk);
    load_tile(Vs, ldv, a.v.p + a.lead.off(2, b), a.v.rs, a.v.cs, j0, bc, Dv, a.n.Lk);
    __syncthreads();
    p_ds_tile(a, br, bc, i0, j0, Qs, Gs, Ks, Vs, Ls, Ds, static_cast<T*>(nullptr), dSs);
    __syncthreads();
    for (int64_t e = threadIdx.x; e < br * D; e += blockDim.x) {
      const int64_t rr = e / D, c = e % D;
      if (i0 + rr >= a.n.Lq) continue;
      T acc = T(0);
      for (int cc = 0; cc < bc; ++cc) acc += dSs[rr * bc + cc] * Ks[cc * ldk + c];
      dq[(i0 + rr) * D + c] += a.scale * acc;
    }
  }
}

// Shared memory: Ks (bc, D + kTilePad) | Vs (bc, Dv + kTilePad) | Qs (br, D) | Gs (br, Dv) | Ps, dSs (br, bc) |
// Ls, Ds (br)
template <class T>
__global__ void attn_bwd_dkv(AttnBwdArgs<T> a, int br) {
  CORTEX_DYNAMIC_SMEM(T, sm);
  const int bc = br;
  const int64_t D = a.n.D, Dv = a.n.Dv, ldk = D + kTilePad, ldv = Dv + kTilePad;
  T* Ks = sm;
  T* Vs = Ks + bc * ldk;
  T* Qs = Vs + bc * ldv;
  T* Gs = Qs + br * D;
  T* Ps = Gs + br * Dv;
  T* dSs = Ps + br * bc;
  T* Ls = dSs + br * bc;
  T* Ds = Ls + br;
  const int64_t nblk = (a.n.Lk + bc - 1) / bc;
  const int64_t b = blockIdx.x / nblk, j0 = (blockIdx.x % nblk) * bc;
  load_tile(Ks, ldk, a.k.p + a.lead.off(1, b), a.k.rs, a.k.cs, j0, bc, D, a.n.Lk);
  load_tile(Vs, ldv, a.v.p + a.lead.off(2, b), a.v.rs, a.v.cs, j0, bc, Dv, a.n.Lk);
  T* dk = a.dk + (b * a.n.Lk) * D;
  T* dv = a.dv + (b * a.n.Lk) * Dv;
  for (int64_t e = threadIdx.x; e < bc * D; e += blockDim.x)
    if (j0 + e / D < a.n.Lk) dk[(j0 + e / D) * D + e % D] = T(0);
  for (int64_t e = threadIdx.x; e < bc * Dv; e += blockDim.x)
    if (j0 + e / Dv < a.n.Lk) dv[(j0 + e / Dv) * Dv + e % Dv] = T(0);
  for (int64_t i0 = 0; i0 < a.n.Lq; i0 += br) {
    __syncthreads();
    load_tile(Qs, D, a.q.p + a.lead.off(0, b), a.q.rs, a.q.cs, i0, br, D, a.n.Lq);
    load_tile(Gs, Dv, a.gout.p + a.lead.off(5, b), a.gout.rs, a.gout.cs, i0, br, Dv, a.n.Lq);
    load_row_stats(a, b, i0, br, Ls, Ds);
    __syncthreads();
    p_ds_tile(a, br, bc, i0, j0, Qs, Gs, Ks, Vs, Ls, Ds, Ps, dSs);
    __syncthreads();
    for (int64_t e = threadIdx.x; e < bc * Dv; e += blockDim.x) {
      const int64_t cc = e / Dv, d = e % Dv;
      if (j0 + cc >= a.n.Lk) continue;
      T acc = T(0);
      for (int rr = 0; rr < br; ++rr) acc += Ps[rr * bc + cc] * Gs[rr * Dv + d];
      dv[(j0 + cc) * Dv + d] += acc;
    }
    for (int64_t e = threadIdx.x; e < bc * D; e += blockDim.x) {
      const int64_t cc = e / D, c = e % D;
      if (j0 + cc >= a.n.Lk) continue;
      T acc = T(0);
      for (int rr = 0; rr < br; ++rr) acc += dSs[rr * bc + cc] * Qs[rr * D + c];
      dk[(j0 + cc) * D + c] += a.scale * acc;
    }
  }
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
