// Attention forward, version 3: tiled, flash-attention style. A block owns a tile of br query rows
// (kept in shared memory for the whole kernel) and walks the keys in tiles of bc = br rows: it loads
// the K and V tiles into shared memory once for all br rows, computes the br x bc score tile,
// updates each row's running max m and sum l (online softmax), rescales its output rows by
// exp(m_old - m_new) and adds P V. No (Lq, Lk) matrix exists anywhere; K/V traffic drops from Lq
// times the K/V size (v2) to Lq / br times.
//
// Threads: kTiledThreads; row r of the tile has g = kTiledThreads / br consecutive lanes (g <= 32,
// so a row's lanes are in one warp and its max/sum are warp shuffles). Dynamic shared memory:
//   Qs (br, D) | Ks (bc, D + kTilePad) | Vs (bc, Dv) | Ss (br, bc) | Os (br, Dv)
// The K tile's rows are padded: in the score loop a warp's lanes take consecutive keys cc and read
// Ks[cc * ldk + c]; with ldk = D (a multiple of 32 floats) all 32 lanes hit one bank (a 32-way
// conflict, docs/attention.md section 5), with ldk = D + 1 they hit 32 different banks.
// Rows past Lq are loaded as zeros and never written; keys past Lk score -inf (p = 0).
#pragma once
#include "kernels/cuda/attention/2_row_block.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

constexpr unsigned kTiledThreads = 256;
// Extra elements at the end of each row of a tile that a warp reads down a column (one row per
// lane): K in the forward and JVP, K and V in the backward. The launchers size shared memory with it.
constexpr int64_t kTilePad = 1;

// Copies rows [r0, r0 + rows) of a strided matrix into a (rows, cols) tile whose rows are `ld`
// elements apart (ld >= cols; the padding is never read), zeros past `limit`.
template <class T>
__device__ __forceinline__ void load_tile(T* dst, int64_t ld, const T* src, int64_t rs, int64_t cs, int64_t r0,
                                          int64_t rows, int64_t cols, int64_t limit) {
  for (int64_t e = threadIdx.x; e < rows * cols; e += blockDim.x) {
    const int64_t r = e / cols, c = e % cols;
    dst[r * ld + c] = r0 + r < limit ? src[(r0 + r) * rs + c * cs] : T(0);
  }
}

template <class T>
__global__ void attn3_tiled(AttnFwdArgs<T> a, int br) {
  CORTEX_DYNAMIC_SMEM(T, sm);
  const int bc = br;
  const int64_t D = a.n.D, Dv = a.n.Dv, ldk = D + kTilePad;
  T* Qs = sm;
  T* Ks = Qs + br * D;
  T* Vs = Ks + bc * ldk;
  T* Ss = Vs + bc * Dv;
  T* Os = Ss + br * bc;
  const int64_t nblk = (a.n.Lq + br - 1) / br;
  const int64_t b = blockIdx.x / nblk, i0 = (blockIdx.x % nblk) * br;
  const int g = static_cast<int>(blockDim.x) / br, r = static_cast<int>(threadIdx.x) / g,
            lg = static_cast<int>(threadIdx.x) % g;
  const T* k = a.k.p + a.lead.off(1, b);
  const T* v = a.v.p + a.lead.off(2, b);
  load_tile(Qs, D, a.q.p + a.lead.off(0, b), a.q.rs, a.q.cs, i0, br, D, a.n.Lq);
  for (int64_t e = threadIdx.x; e < br * Dv; e += blockDim.x) Os[e] = T(0);
  T m = neg_inf<T>(), l = T(0);
  for (int64_t j0 = 0; j0 < a.n.Lk; j0 += bc) {
    __syncthreads();  // the previous tile's readers are done (and Qs/Os are written, first time)
    load_tile(Ks, ldk, k, a.k.rs, a.k.cs, j0, bc, D, a.n.Lk);
    load_tile(Vs, Dv, v, a.v.rs, a.v.cs, j0, bc, Dv, a.n.Lk);
    __syncthreads();
    for (int64_t e = threadIdx.x; e < br * bc; e += blockDim.x) {
      const int64_t rr = e / bc, cc = e % bc;
      Ss[e] = j0 + cc < a.n.Lk ? a.scale * dot_of(Qs + rr * D, 1, Ks + cc * ldk, 1, D) : neg_inf<T>();
    }
    __syncthreads();
    T tmax = neg_inf<T>();
    for (int cc = lg; cc < bc; cc += g) tmax = max_of(tmax, Ss[r * bc + cc]);
    const T mn = max_of(m, group_max(tmax, g));
    const T alpha = exp_of(m - mn);
    T psum = T(0);
    for (int cc = lg; cc < bc; cc += g) {
      const T p = exp_of(Ss[r * bc + cc] - mn);
      Ss[r * bc + cc] = p;
      psum += p;
    }
    l = l * alpha + group_sum(psum, g);
    m = mn;
    __syncthreads();  // P of row r, written by its g lanes, is read by all of them
    for (int64_t d = lg; d < Dv; d += g) {
      T acc = Os[r * Dv + d] * alpha;
      for (int cc = 0; cc < bc; ++cc) acc += Ss[r * bc + cc] * Vs[cc * Dv + d];
      Os[r * Dv + d] = acc;
    }
  }
  if (i0 + r >= a.n.Lq) return;
  const int64_t row = b * a.n.Lq + i0 + r;
  for (int64_t d = lg; d < Dv; d += g) a.out[row * Dv + d] = Os[r * Dv + d] / l;
  if (lg == 0) a.lse[row] = m + log_of(l);
}

}  // namespace
}  // namespace cortex::kernels::CORTEX_BACKEND
