// CPU kernels of kernels/spectral.h: prepared rows, one single-threaded Eigen GEMM per strip of rows
// against all samples, then a top-k per row by insertion (strips in parallel, parallel.h); the propagation
// is a gather and a float64 weighted sum per row. This is the arithmetic analysis/spectral used
// before the kernel existed, so its results did not change.
#include "kernels/cpu/spectral.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen + GCC 12 AVX-512 (GCC bug 105593)
#endif
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace cortex::kernels::cpu {
namespace {

template <class T> using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows [r0, r0 + n) of the strided (rows, d) matrix x, prepared as kernels/spectral.h says: cosine
// scales each row to unit norm (a zero row stays zero), rbf copies; half_sq receives |row|^2 / 2.
template <class T>
void prepare(const Tensor& x, int64_t r0, int64_t n, bool cosine, T* out, T* half_sq) {
  const int64_t d = x.size(1), s0 = x.stride(0), s1 = x.stride(1);
  const T* base = x.data<T>();
#pragma omp parallel for schedule(static) if (n * d > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = base + (r0 + i) * s0;
    T* oi = out + i * d;
    if (cosine) {
      double s = 0;
      for (int64_t j = 0; j < d; ++j) s += double(xi[j * s1]) * double(xi[j * s1]);
      // torch's F.normalize: x / max(|x|, eps)
      const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);
      double s2 = 0;
      for (int64_t j = 0; j < d; ++j) {
        oi[j] = static_cast<T>(xi[j * s1] * inv);
        s2 += double(oi[j]) * double(oi[j]);
      }
      half_sq[i] = static_cast<T>(s2 / 2);
    } else {
      double s = 0;
      for (int64_t j = 0; j < d; ++j) {
        oi[j] = xi[j * s1];
        s += double(oi[j]) * double(oi[j]);
      }
      half_sq[i] = static_cast<T>(s / 2);
    }
  }
}

template <class T>
void knn_impl(const Tensor& x, const Tensor& samples, int64_t K, const KnnAffinityParams& p, T* pv, int64_t* pi) {
  const int64_t N = x.size(0), m = samples.size(0), d = x.size(1);
  const bool cosine = p.kind == KnnKernel::Cosine;
  const T t = static_cast<T>(p.t);
  std::vector<T> ys(m * d), hy(m);
  prepare<T>(samples, 0, m, cosine, ys.data(), hy.data());
  // Rows per chunk: the (chunk, m) score block stays near 2^25 elements (8,192 rows of 4,096 samples).
  const int64_t cs = std::min(std::max<int64_t>(N, 1), std::max<int64_t>(64, (int64_t(1) << 25) / std::max<int64_t>(m, 1)));
  std::vector<T> xc(cs * d), hx(cs);
  // From the host block cache (tensor/host_allocator.h): repeated calls reuse the block instead of
  // faulting in fresh pages each time.
  const Tensor score_block = empty({cs, m}, x.dtype());
  T* const S = score_block.data<T>();
  Eigen::Map<const RowMat<T>> Y(ys.data(), m, d);
  for (int64_t s0 = 0; s0 < N; s0 += cs) {
    const int64_t cn = std::min(cs, N - s0);
    prepare<T>(x, s0, cn, cosine, xc.data(), hx.data());
    // Strips of 256 rows: one single-threaded GEMM each (parallel.h: Eigen's threaded GEMM sums in an
    // order that follows the thread count), then the strip's top-k while its scores are in cache.
    parallel::for_chunks(cn, 256, double(cn) * double(m) * double(std::max<int64_t>(d, 1)), [&](int64_t lo, int64_t hi) {
    Eigen::Map<RowMat<T>> Sm(S + lo * m, hi - lo, m);
    if (d > 0) {
      Sm.noalias() = Eigen::Map<const RowMat<T>>(xc.data() + lo * d, hi - lo, d) * Y.transpose();
    } else {
      Sm.setZero();
    }
    for (int64_t i = lo; i < hi; ++i) {
      T* row = S + i * m;
      if (!cosine)
        for (int64_t j = 0; j < m; ++j) row[j] -= hy[j];
      // top-K by insertion into the sorted (descending) output row; equal scores keep the lower index first
      T* bv = pv + (s0 + i) * K;
      int64_t* bi = pi + (s0 + i) * K;
      int64_t cnt = 0;
      for (int64_t j = 0; j < m; ++j) {
        const T v = row[j];
        if (cnt == K && !(v > bv[K - 1])) continue;
        int64_t pos = cnt < K ? cnt : K - 1;
        while (pos > 0 && bv[pos - 1] < v) {
          bv[pos] = bv[pos - 1];
          bi[pos] = bi[pos - 1];
          --pos;
        }
        bv[pos] = v;
        bi[pos] = j;
        if (cnt < K) ++cnt;
      }
      for (int64_t q = 0; q < K; ++q)
        bv[q] = cosine ? (std::min(bv[q], T(1)) - T(1)) / t : std::min(bv[q] - hx[i], T(0)) / (t * t);
    }
    });
  }
}

}  // namespace

KnnAffinity knn_affinity(const Tensor& x, const Tensor& samples, int64_t k, const KnnAffinityParams& p) {
  const int64_t N = x.size(0);
  KnnAffinity r{empty({N, k}, x.dtype()), empty({N, k}, DType::Int64)};
  if (N == 0) return r;
  dispatch_float(x.dtype(), "knn_affinity", [&](auto tag) {
    using T = decltype(tag);
    knn_impl<T>(x, samples, k, p, r.values.data<T>(), r.indices.data<int64_t>());
  });
  return r;
}

Tensor knn_propagate(const Tensor& log_w, const Tensor& indices, const Tensor& values) {
  const int64_t N = log_w.size(0), K = log_w.size(1), c = values.size(1);
  Tensor out = empty({N, c}, values.dtype());
  if (N == 0 || c == 0) return out;
  dispatch_float(values.dtype(), "knn_propagate", [&](auto tag) {
    using T = decltype(tag);
    const T* lw = log_w.data<T>();
    const int64_t* ix = indices.data<int64_t>();
    const T* pv = values.data<T>();
    const int64_t lw0 = log_w.stride(0), lw1 = log_w.stride(1), ix0 = indices.stride(0), ix1 = indices.stride(1);
    const int64_t v0 = values.stride(0), v1 = values.stride(1);
    T* po = out.data<T>();
    parallel::for_chunks(N, 64, double(N) * double(K) * double(c), [&](int64_t lo, int64_t hi) {
      std::vector<double> acc(c);
      for (int64_t i = lo; i < hi; ++i) {
        const double best = lw[i * lw0];
        double wsum = 0;
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t q = 0; q < K; ++q) {
          const double wq = std::exp(double(lw[i * lw0 + q * lw1]) - best);
          wsum += wq;
          const T* vr = pv + ix[i * ix0 + q * ix1] * v0;
          for (int64_t e = 0; e < c; ++e) acc[e] += wq * double(vr[e * v1]);
        }
        for (int64_t e = 0; e < c; ++e) po[i * c + e] = static_cast<T>(acc[e] / wsum);
      }
    });
  });
  return out;
}

}  // namespace cortex::kernels::cpu
