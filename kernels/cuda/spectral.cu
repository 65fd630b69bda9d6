// The spectral family on CUDA and the emulated CUDA device (kernels/cuda/common.cuh says how one
// source serves both): knn_affinity and knn_propagate of kernels/spectral.h. float32 and float64.
//
// knn_affinity runs two kernels.
//   prep_rows   one thread per row of x and of samples: the prepared row (cosine: x / max(|x|,
//               1e-12) with the norm in float64; rbf: a copy) and |row|^2 / 2 in float64, rounded
//               to the dtype: the CPU's arithmetic in the CPU's order, so the prepared rows are
//               bit-identical to the CPU's. A (rows, d) workspace: the size of the input, never N x m.
//   knn_scores  one block per tile of kTileRows rows of x. It walks the samples in tiles of
//               kTileCols: a kTileRows x kTileCols dot-product tile, accumulated over slabs of kSlab
//               features staged in shared memory (each thread owns 2 x 4 scores), goes to shared
//               memory; then thread r of the block inserts row r's scores, in sample order, into the
//               row's running top-k list (kept sorted in the output row itself, so k may be as large
//               as m; the count and the k-th score stay in registers). Ties keep the lower index
//               (strictly greater scores move ahead), as on the CPU. The N x m scores are never
//               stored: only one tile at a time, in shared memory.
// Every row is owned by one thread and every score is summed in one fixed order, so the results are
// the same in every schedule order. The dot products add in slab order, not in Eigen's GEMM order,
// so scores differ from the CPU's by rounding (a few ulps of |x||y|): values agree within that, and
// the ranking agrees except between scores that close.
// knn_propagate: one thread per output element, summing its K terms in the CPU's order in float64.
#include <cmath>
#include <cstdint>

#include "kernels/spectral.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

constexpr int kTileRows = 32, kTileCols = 64, kSlab = 16, kThreads = 256;
static_assert(kThreads == 16 * 16 && kTileRows == 2 * 16 && kTileCols == 4 * 16, "the 2 x 4 scores per thread");

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

template <class T>
__global__ void prep_rows_kernel(const T* __restrict__ x, int64_t rows, int64_t d, int64_t s0, int64_t s1, bool cosine,
                                 T* __restrict__ out, T* __restrict__ half_sq) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows) return;
  const T* xi = x + i * s0;
  T* oi = out + i * d;
  double inv = 1.0;
  if (cosine) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += double(xi[j * s1]) * double(xi[j * s1]);
    const double nrm = sqrt(s);
    inv = 1.0 / (nrm > 1e-12 ? nrm : 1e-12);
  }
  double s2 = 0;
  for (int64_t j = 0; j < d; ++j) {
    oi[j] = cosine ? static_cast<T>(xi[j * s1] * inv) : xi[j * s1];
    s2 += double(oi[j]) * double(oi[j]);
  }
  half_sq[i] = static_cast<T>(s2 / 2);
}

template <class T>
__global__ void knn_scores_kernel(const T* __restrict__ xp, const T* __restrict__ hx, const T* __restrict__ yp,
                                  const T* __restrict__ hy, int64_t N, int64_t m, int64_t d, int64_t K, bool cosine,
                                  T t, T* __restrict__ ov, int64_t* __restrict__ oi) {
  __shared__ T xs[kTileRows][kSlab + 1];
  __shared__ T ys[kTileCols][kSlab + 1];
  __shared__ T sc[kTileRows][kTileCols + 1];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTileRows;
  const bool owner = tid < kTileRows && r0 + tid < N;
  T* bv = ov + (owner ? (r0 + tid) * K : 0);
  int64_t* bi = oi + (owner ? (r0 + tid) * K : 0);
  int64_t cnt = 0;
  for (int64_t c0 = 0; c0 < m; c0 += kTileCols) {
    T acc[2][4];
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 4; ++b) acc[a][b] = T(0);
    for (int64_t k0 = 0; k0 < d; k0 += kSlab) {
      for (int e = tid; e < kTileRows * kSlab; e += kThreads) {
        const int r = e / kSlab, j = e % kSlab;
        const int64_t gr = r0 + r, gj = k0 + j;
        xs[r][j] = gr < N && gj < d ? xp[gr * d + gj] : T(0);
      }
      for (int e = tid; e < kTileCols * kSlab; e += kThreads) {
        const int c = e / kSlab, j = e % kSlab;
        const int64_t gc = c0 + c, gj = k0 + j;
        ys[c][j] = gc < m && gj < d ? yp[gc * d + gj] : T(0);
      }
      __syncthreads();
      const int jn = static_cast<int>(min64(kSlab, d - k0));
      for (int j = 0; j < jn; ++j)
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 4; ++b) acc[a][b] += xs[ty + 16 * a][j] * ys[tx + 16 * b][j];
      __syncthreads();
    }
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 4; ++b) {
        const int64_t gc = c0 + tx + 16 * b;
        sc[ty + 16 * a][tx + 16 * b] = cosine || gc >= m ? acc[a][b] : acc[a][b] - hy[gc];
      }
    __syncthreads();
    if (owner) {
      const int cn = static_cast<int>(min64(kTileCols, m - c0));
      for (int c = 0; c < cn; ++c) {
        const T v = sc[tid][c];
        if (cnt == K && !(v > bv[K - 1])) continue;
        int64_t pos = cnt < K ? cnt : K - 1;
        while (pos > 0 && bv[pos - 1] < v) {
          bv[pos] = bv[pos - 1];
          bi[pos] = bi[pos - 1];
          --pos;
        }
        bv[pos] = v;
        bi[pos] = c0 + c;
        if (cnt < K) ++cnt;
      }
    }
    __syncthreads();
  }
  if (!owner) return;
  const T h = hx[r0 + tid];
  for (int64_t q = 0; q < K; ++q) {
    const T s = bv[q];
    bv[q] = cosine ? ((s < T(1) ? s : T(1)) - T(1)) / t : ((s - h) < T(0) ? s - h : T(0)) / (t * t);
  }
}

template <class T>
__global__ void knn_propagate_kernel(const T* __restrict__ lw, int64_t lw0, int64_t lw1, const int64_t* __restrict__ ix,
                                     int64_t ix0, int64_t ix1, const T* __restrict__ v, int64_t v0, int64_t v1,
                                     int64_t N, int64_t K, int64_t c, T* __restrict__ out) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= N * c) return;
  const int64_t i = n / c, e = n % c;
  const double best = double(lw[i * lw0]);
  double wsum = 0, acc = 0;
  for (int64_t q = 0; q < K; ++q) {
    const double wq = exp(double(lw[i * lw0 + q * lw1]) - best);
    wsum += wq;
    acc += wq * double(v[ix[i * ix0 + q * ix1] * v0 + e * v1]);
  }
  out[n] = static_cast<T>(acc / wsum);
}

// The prepared (rows, d) copy of x and its |row|^2 / 2.
template <class T>
void prep_rows(const Tensor& x, bool cosine, Tensor& out, Tensor& half_sq) {
  const int64_t rows = x.size(0), d = x.size(1);
  out = empty({rows, d}, x.dtype(), x.device());
  half_sq = empty({rows}, x.dtype(), x.device());
  if (rows == 0) return;
  CORTEX_LAUNCH(prep_rows_kernel<T>, blocks_for(rows), kBlock, 0, stream(), static_cast<const T*>(x.raw_data()), rows,
                d, x.stride(0), x.stride(1), cosine, static_cast<T*>(out.raw_data()),
                static_cast<T*>(half_sq.raw_data()));
}

}  // namespace

KnnAffinity knn_affinity(const Tensor& x, const Tensor& samples, int64_t k, const KnnAffinityParams& p) {
  const int64_t N = x.size(0), m = samples.size(0), d = x.size(1);
  KnnAffinity r{empty({N, k}, x.dtype(), x.device()), empty({N, k}, DType::Int64, x.device())};
  if (N == 0) return r;
  const bool cosine = p.kind == KnnKernel::Cosine;
  dispatch_float(x.dtype(), "knn_affinity", [&](auto tag) {
    using T = decltype(tag);
    Tensor xp, hx, yp, hy;
    prep_rows<T>(x, cosine, xp, hx);
    prep_rows<T>(samples, cosine, yp, hy);
    const int64_t blocks = (N + kTileRows - 1) / kTileRows;
    CORTEX_CHECK(blocks <= 2147483647, "knn_affinity: ", N, " rows need more blocks than a grid holds");
    CORTEX_LAUNCH(knn_scores_kernel<T>, static_cast<unsigned>(blocks), kThreads, 0, stream(),
                  static_cast<const T*>(xp.raw_data()), static_cast<const T*>(hx.raw_data()),
                  static_cast<const T*>(yp.raw_data()), static_cast<const T*>(hy.raw_data()), N, m, d, k, cosine,
                  static_cast<T>(p.t), static_cast<T*>(r.values.raw_data()),
                  static_cast<int64_t*>(r.indices.raw_data()));
  });
  return r;
}

Tensor knn_propagate(const Tensor& log_w, const Tensor& indices, const Tensor& values) {
  const int64_t N = log_w.size(0), K = log_w.size(1), c = values.size(1);
  Tensor out = empty({N, c}, values.dtype(), values.device());
  if (N * c == 0) return out;
  dispatch_float(values.dtype(), "knn_propagate", [&](auto tag) {
    using T = decltype(tag);
    CORTEX_LAUNCH(knn_propagate_kernel<T>, blocks_for(N * c), kBlock, 0, stream(),
                  static_cast<const T*>(log_w.raw_data()), log_w.stride(0), log_w.stride(1),
                  static_cast<const int64_t*>(indices.raw_data()), indices.stride(0), indices.stride(1),
                  static_cast<const T*>(values.raw_data()), values.stride(0), values.stride(1), N, K, c,
                  static_cast<T*>(out.raw_data()));
  });
  return out;
}

}  // namespace cortex::kernels::CORTEX_BACKEND
