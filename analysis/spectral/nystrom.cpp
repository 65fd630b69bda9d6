// Sampling, the subgraph Ncut, AlignedCut's KNN propagation and Fowlkes et al.'s Nystrom Ncut
// (nystrom.h). Big products run in the features' dtype through Eigen's GEMM; small dense algebra
// (m x m) in float64.
#include "analysis/spectral/nystrom.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen + GCC 12 AVX-512 (GCC bug 105593)
#endif
#include <omp.h>

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <vector>

#include "dist/comm.h"
#include "kernels/cpu/parallel.h"
#include "kernels/elementwise.h"
#include "kernels/index.h"
#include "kernels/matmul.h"
#include "kernels/spectral.h"
#include "tensor/random.h"

namespace cortex::analysis::spectral {

namespace {

using Eigen::Dynamic;
template <class T> using Mat = Eigen::Matrix<T, Dynamic, Dynamic>;
template <class T> using RowMat = Eigen::Matrix<T, Dynamic, Dynamic, Eigen::RowMajor>;
using MatD = Mat<double>;
using VecD = Eigen::VectorXd;
using detail::check_t;
using detail::column_mean;
using detail::host_features;

// Rows `idx` of the row-major x (N, d).
template <class T>
std::vector<T> gather_rows(const T* x, int64_t d, const std::vector<int64_t>& idx) {
  std::vector<T> out(idx.size() * d);
  for (size_t i = 0; i < idx.size(); ++i) std::copy(x + idx[i] * d, x + (idx[i] + 1) * d, out.begin() + i * d);
  return out;
}

// The sample's rows prepared once for every chunk: (m, d) rows, |row|^2 / 2, the rbf centre.
template <class T>
struct Reference {
  std::vector<T> centre, rows, half_sq;
  int64_t m = 0, d = 0;
  Reference(const T* xs, int64_t m_, int64_t d_, Affinity kind) : m(m_), d(d_) {
    centre = column_mean(xs, m, d);
    rows.resize(m * d);
    half_sq.resize(m);
    detail::prepare_rows(xs, m, d, kind, centre.data(), rows.data(), half_sq.data());
  }
};

// Calls f(start, rows, w) for each chunk of x's rows with w (rows, m) the affinities to the sample.
// `sample` (m) are the sampled rows' indices in x: their self-affinities W(s_j, s_j) are set to 1,
// the self-loop affinity(x) gives every node, so that C's sampled columns are exactly A's (a zero
// feature row has cosine 0 even with itself, which would otherwise make them differ).
template <class T, class F>
void for_each_affinity_chunk(const T* x, int64_t n, const Reference<T>& ref, Affinity kind, T t, int64_t chunk,
                             const std::vector<int64_t>& sample, F&& f) {
  const int64_t d = ref.d, m = ref.m;
  const int64_t c = std::min(chunk, std::max<int64_t>(n, 1));
  std::vector<T> xc(c * d), hx(c), w(c * m);
  for (int64_t s = 0; s < n; s += c) {
    const int64_t cn = std::min(c, n - s);
    detail::prepare_rows(x + s * d, cn, d, kind, ref.centre.data(), xc.data(), hx.data());
    detail::affinity_block(xc.data(), hx.data(), cn, ref.rows.data(), ref.half_sq.data(), m, d, kind, t, w.data());
    for (int64_t j = 0; j < m; ++j)
      if (sample[j] >= s && sample[j] < s + cn) w[(sample[j] - s) * m + j] = T(1);
    f(s, cn, w.data());
  }
}

std::vector<int64_t> index_vector(const Tensor& idx, int64_t n, const char* op) {
  CORTEX_CHECK(idx.defined() && idx.dim() == 1 && (idx.dtype() == DType::Int64 || idx.dtype() == DType::Int32), op,
               ": expected a 1-D int64 tensor of sample indices, found ",
               idx.defined() ? shape_str(idx.shape()) + " " + dtype_name(idx.dtype()) : std::string("undefined"));
  std::vector<int64_t> v = idx.to(DType::Int64).to_vector<int64_t>();
  std::vector<char> seen(n, 0);
  for (int64_t i : v) {
    CORTEX_CHECK(i >= 0 && i < n, op, ": expected sample indices in [0, ", n, "), found ", i);
    CORTEX_CHECK(!seen[i], op, ": expected distinct sample indices, found ", i, " twice");
    seen[i] = 1;
  }
  return v;
}

// Full symmetric eigendecomposition (ascending, Eigen) of a float64 matrix.
Eigen::SelfAdjointEigenSolver<MatD> full_eig(const MatD& a, const char* op) {
  Eigen::SelfAdjointEigenSolver<MatD> es(a);
  CORTEX_CHECK(es.info() == Eigen::Success, op, ": the symmetric eigensolver did not converge");
  return es;
}

// ncut_eigenpairs on x's device: the normalised affinity through kernels, then the dense solver
// (kernels::eigh_topk: on the emulated device the CPU kernel, counted as a fallback) or a
// matrix-free one whose products are GEMMs on the device (kernels::matmul); the small Krylov basis
// stays on the host. Results on the host, as the CPU path's.
Eigenpairs device_eigenpairs(const Tensor& x, int64_t k, Affinity kind, double t, EigSolver solver,
                             const EigOptions* opt, double* affinity_seconds,
                             const std::function<void(double seconds)>& affinity_done) {
  const auto t0 = std::chrono::steady_clock::now();
  const char* op = "ncut_eigenpairs";
  const Tensor dx = detail::device_features(x, op, "x");
  const int64_t n = dx.size(0);
  CORTEX_CHECK(k >= 1 && k <= n, op, ": expected k in [1, ", n, "] for ", n, " nodes, found k = ", k);
  check_t(t, kind, op);
  const Tensor a = detail::normalized_affinity_on_device(dx, kind, t);
  const double aff_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (affinity_seconds) *affinity_seconds = aff_s;
  if (affinity_done) affinity_done(aff_s);
  if (solver == EigSolver::Auto) solver = n <= kDenseMax ? EigSolver::Dense : EigSolver::Lanczos;
  if (solver == EigSolver::Dense) {
    Eigenpairs r = eigh_topk_dense(a, k);
    r.values = r.values.to(Device::cpu());
    r.vectors = r.vectors.to(Device::cpu());
    return r;
  }
  EigOptions o;
  if (opt) {
    o = *opt;
  } else {
    o.dtype = a.dtype();
    o.tol = a.dtype() == DType::Float32 ? 1e-5 : 1e-9;
    o.block = n > 2048 ? std::min<int64_t>(k, 16) : 1;
  }
  const MatVec mv = [a](const Tensor& v) {
    return kernels::matmul(a, v.to(a.dtype()).to(a.device())).to(Device::cpu()).to(v.dtype());
  };
  Eigenpairs r = solver == EigSolver::Lanczos ? lanczos_topk(n, k, mv, o) : subspace_topk(n, k, mv, o);
  CORTEX_CHECK(r.converged, op, ": the ", solver_name(solver), " eigensolver did not converge in ", o.max_iter,
               " iterations (relative residual ", r.residual, ", tolerance ", o.tol, ")");
  r.values = r.values.to(a.dtype());
  r.vectors = r.vectors.to(a.dtype());
  return r;
}

}  // namespace

const char* sampling_name(Sampling s) { return s == Sampling::Fps ? "fps" : "random"; }

const char* solver_name(EigSolver s) {
  switch (s) {
    case EigSolver::Auto: return "auto";
    case EigSolver::Dense: return "dense";
    case EigSolver::Lanczos: return "lanczos";
    case EigSolver::Subspace: return "subspace";
  }
  return "?";
}

Tensor random_sampling(int64_t n, int64_t m, uint64_t seed) {
  CORTEX_CHECK(n >= 1 && m >= 1 && m <= n, "random_sampling: expected 1 <= m <= n, found m = ", m, " and n = ", n);
  Generator g(seed);
  const Tensor perm = randperm(n, g);
  std::vector<int64_t> idx(perm.data<int64_t>(), perm.data<int64_t>() + m);
  std::sort(idx.begin(), idx.end());
  return from_vector(idx);
}

Tensor farthest_point_sampling(const Tensor& x, int64_t m, uint64_t seed, const FpsOptions& opt) {
  const char* op = "farthest_point_sampling";
  const Tensor fx = detail::device_features(x, op, "x");  // a device x stays there
  const int64_t N = fx.size(0), d = fx.size(1);
  CORTEX_CHECK(m >= 1 && m <= N, op, ": expected 1 <= m <= N = ", N, ", found m = ", m);
  CORTEX_CHECK(opt.pca_dims >= 1, op, ": expected pca_dims >= 1, found ", opt.pca_dims);
  CORTEX_CHECK(opt.draw_ratio >= 1, op, ": expected draw_ratio >= 1, found ", opt.draw_ratio);

  // Candidates: a random draw of draw_ratio * m nodes when N is larger (the reference's max_draw_ratio).
  std::vector<int64_t> draw;
  const double nd = opt.draw_ratio * double(m);
  if (double(N) > nd) {
    Generator g(seed);
    const Tensor perm = randperm(N, g);
    draw.assign(perm.data<int64_t>(), perm.data<int64_t>() + static_cast<int64_t>(nd));
  } else {
    draw.resize(N);
    for (int64_t i = 0; i < N; ++i) draw[i] = i;
  }
  const int64_t n = static_cast<int64_t>(draw.size());
  // The candidates' rows: read in place on the CPU; on a device gathered there (kernels) and only
  // those n rows copied to the host.
  Tensor hx = fx;
  std::vector<int64_t> rows = draw;
  if (!fx.device().is_cpu()) {
    hx = kernels::index_select(fx, 0, from_vector(draw).to(fx.device())).to(Device::cpu()).contiguous();
    for (int64_t i = 0; i < n; ++i) rows[i] = i;
  }

  // The candidates on their top principal axes (n, q), row-major, float64.
  RowMat<double> xc(n, d);  // row-major: the gather and the row scaling walk memory in order
  dispatch_float(hx.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* p = hx.data<T>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j) xc(i, j) = p[rows[i] * d + j];
  });
  if (opt.unit_rows)
    for (int64_t i = 0; i < n; ++i) xc.row(i) /= std::max(xc.row(i).norm(), 1e-12);
  xc.rowwise() -= xc.colwise().mean();
  const int64_t q = std::min(opt.pca_dims, d);
  RowMat<double> P;
  if (q < d) {
    parallel::serial([&] {  // Eigen on one thread: a thread-count-independent summation order
      MatD cov = MatD::Zero(d, d);  // x^T x from one triangle: half the flops of the full product
      cov.selfadjointView<Eigen::Lower>().rankUpdate(xc.transpose());
      cov = cov.selfadjointView<Eigen::Lower>();
      const auto es = full_eig(cov, op);
      P = xc * es.eigenvectors().rightCols(q);
    });
  } else {
    P = xc;
  }

  // Exact FPS on P: mind[i] = squared distance to the nearest pick; picks are marked -1 (and stay
  // so: min(-1, d) = -1). P is stored by coordinate (q rows of n) so that each pick's update is a
  // few vectorised sweeps over contiguous arrays: the distances, the running minimum, its maximum,
  // then the first index holding that maximum (ties go to the lowest index).
  std::vector<double> pt(q * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < q; ++j) pt[j * n + i] = P(i, j);
  std::vector<double> mind(n, std::numeric_limits<double>::infinity()), dist(n);
  std::vector<int64_t> picks;
  picks.reserve(m);
  int64_t cur = 0;
  picks.push_back(draw[cur]);
  mind[cur] = -1;
  int64_t nt_used = 1;
  std::vector<double> tbest;
  std::vector<int64_t> tidx;
  // One parallel region for all m picks, two barriers per pick: worth it only when a pick's scan is
  // long (a barrier costs a scheduler slice when the cores are shared with other work).
#pragma omp parallel if (n * q > (1 << 17))
  {
    const int64_t nt = omp_get_num_threads(), tid = omp_get_thread_num();
#pragma omp single
    {
      nt_used = nt;
      tbest.assign(nt, -1.0);
      tidx.assign(nt, -1);
    }
    const int64_t lo = n * tid / nt, hi = n * (tid + 1) / nt;
    double* dl = dist.data();
    double* ml = mind.data();
    std::vector<double> c(q);
    for (int64_t s = 1; s < m; ++s) {
      for (int64_t j = 0; j < q; ++j) c[j] = pt[j * n + cur];
      for (int64_t i = lo; i < hi; ++i) dl[i] = 0;
      for (int64_t j = 0; j < q; ++j) {
        const double* pj = pt.data() + j * n;
        const double cj = c[j];
#pragma omp simd
        for (int64_t i = lo; i < hi; ++i) dl[i] += (pj[i] - cj) * (pj[i] - cj);
      }
      double best = -1;
#pragma omp simd reduction(max : best)
      for (int64_t i = lo; i < hi; ++i) {
        ml[i] = std::min(ml[i], dl[i]);
        best = std::max(best, ml[i]);
      }
      int64_t bi = -1;
      if (best >= 0)
        for (int64_t i = lo; i < hi; ++i)
          if (ml[i] == best) {
            bi = i;
            break;
          }
      tbest[tid] = best;
      tidx[tid] = bi;
#pragma omp barrier
#pragma omp single
      {
        double gb = -1;
        int64_t gi = -1;
        for (int64_t t = 0; t < nt_used; ++t)  // slices are in index order: strict > keeps the lowest index
          if (tidx[t] >= 0 && tbest[t] > gb) {
            gb = tbest[t];
            gi = tidx[t];
          }
        cur = gi;
        picks.push_back(draw[cur]);
        mind[cur] = -1;
      }
    }
  }
  return from_vector(picks);
}

Tensor sample_nodes(const Tensor& x, int64_t m, Sampling how, uint64_t seed, const FpsOptions& fps) {
  if (how == Sampling::Fps) return farthest_point_sampling(x, m, seed, fps);
  CORTEX_CHECK(x.defined() && x.dim() == 2, "sample_nodes: expected x of shape (N, d), found ",
               x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  return random_sampling(x.size(0), m, seed);
}

Eigenpairs ncut_eigenpairs(const Tensor& x, int64_t k, Affinity kind, double t, EigSolver solver,
                           const EigOptions* opt, double* affinity_seconds,
                           const std::function<void(double seconds)>& affinity_done) {
  const auto t0 = std::chrono::steady_clock::now();
  const char* op = "ncut_eigenpairs";
  if (x.defined() && !x.device().is_cpu()) return device_eigenpairs(x, k, kind, t, solver, opt, affinity_seconds, affinity_done);
  const Tensor hx = host_features(x, op, "x");
  const int64_t n = hx.size(0);
  CORTEX_CHECK(k >= 1 && k <= n, op, ": expected k in [1, ", n, "] for ", n, " nodes, found k = ", k);
  check_t(t, kind, op);
  Tensor w = affinity(hx, kind, t);  // (n, n), symmetric, diagonal 1
  // D^-1/2 W D^-1/2 in place (the n x n matrix is the memory that matters here)
  dispatch_float(w.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    T* pw = w.data<T>();
    std::vector<double> s(n);
#pragma omp parallel for schedule(static) if (n > 256)
    for (int64_t i = 0; i < n; ++i) {
      double a = 0;
      for (int64_t j = 0; j < n; ++j) a += pw[i * n + j];
      s[i] = a;
    }
    const double dmax = *std::max_element(s.begin(), s.end());
    for (double& v : s) v = 1.0 / std::sqrt(std::max(v, kDegreeFloor * dmax));
#pragma omp parallel for schedule(static) if (n > 256)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) pw[i * n + j] = static_cast<T>(s[i] * pw[i * n + j] * s[j]);
  });
  const double aff_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (affinity_seconds) *affinity_seconds = aff_s;
  if (affinity_done) affinity_done(aff_s);
  if (solver == EigSolver::Auto) solver = n <= kDenseMax ? EigSolver::Dense : EigSolver::Lanczos;
  if (solver == EigSolver::Dense) return eigh_topk_dense(w, k);
  EigOptions o;
  if (opt) {
    o = *opt;
  } else {
    o.dtype = w.dtype();
    o.tol = w.dtype() == DType::Float32 ? 1e-5 : 1e-9;
    // A stored matrix costs one read per operator call: blocks of vectors amortise it.
    o.block = n > 2048 ? std::min<int64_t>(k, 16) : 1;
  }
  Eigenpairs r = solver == EigSolver::Lanczos ? lanczos_topk(n, k, dense_matvec(w), o)
                                               : subspace_topk(n, k, dense_matvec(w), o);
  CORTEX_CHECK(r.converged, op, ": the ", solver_name(solver), " eigensolver did not converge in ", o.max_iter,
               " iterations (relative residual ", r.residual, ", tolerance ", o.tol, ")");
  r.values = r.values.to(w.dtype());
  r.vectors = r.vectors.to(w.dtype());
  return r;
}

Tensor propagate_knn(const Tensor& values, const Tensor& x, const Tensor& xs, int64_t knn, Affinity kind, double t,
                     int64_t chunk, const ChunkProgress& progress) {
  const char* op = "propagate_knn";
  const Tensor hx = detail::device_features(x, op, "x");
  CORTEX_CHECK(xs.defined() && xs.device() == hx.device(), op, ": expected x and xs on one device, found ",
               hx.device().str(), " and ", xs.defined() ? xs.device().str() : std::string("an undefined tensor"));
  const Tensor hs = detail::device_features(xs, op, "xs");
  CORTEX_CHECK(hx.dtype() == hs.dtype(), op, ": expected x and xs of one dtype, found ", dtype_name(hx.dtype()),
               " and ", dtype_name(hs.dtype()));
  CORTEX_CHECK(hx.size(1) == hs.size(1), op, ": expected x and xs with one feature size, found ",
               shape_str(hx.shape()), " and ", shape_str(hs.shape()));
  const int64_t N = hx.size(0), m = hs.size(0), d = hx.size(1);
  CORTEX_CHECK(m >= 1, op, ": expected at least one sampled node, found none");
  const Tensor hv = host_features(values, op, "values").to(hx.dtype()).to(hx.device());
  CORTEX_CHECK(hv.size(0) == m, op, ": expected values with one row per sampled node (", m, "), found ",
               shape_str(hv.shape()));
  CORTEX_CHECK(knn >= 1, op, ": expected knn >= 1, found ", knn);
  CORTEX_CHECK(chunk >= 1, op, ": expected chunk >= 1, found ", chunk);
  check_t(t, kind, op);
  const int64_t K = std::min(knn, m), c = hv.size(1);
  Tensor out = empty({N, c}, hx.dtype(), hx.device());
  // rbf: x and the sample centred on the sample's mean (column_mean of the m x d sample, on the host)
  Tensor centre;
  if (kind == Affinity::Rbf) {
    const Tensor h = hs.to(Device::cpu());
    centre = empty({1, d}, hs.dtype());
    dispatch_float(hs.dtype(), op, [&](auto tag) {
      using T = decltype(tag);
      const std::vector<T> cv = column_mean(h.data<T>(), m, d);
      std::copy(cv.begin(), cv.end(), centre.data<T>());
    });
    centre = centre.to(hs.device());
  }
  const Tensor ys = kind == Affinity::Rbf ? kernels::binary(kernels::Binary::Sub, hs, centre) : hs;
  const KnnAffinityParams p{kind == Affinity::Cosine ? KnnKernel::Cosine : KnnKernel::Rbf, t};
  const int64_t cs = std::min(chunk, std::max<int64_t>(N, 1));
  // Chunks of rows are the units MPI ranks share (docs/distributed.md): each chunk is computed whole
  // by one rank, as one process computes it, and every rank gets all rows back.
  dist::for_units(
      (N + cs - 1) / cs,
      [&](int64_t u) {
        const int64_t s0 = u * cs, cn = std::min(cs, N - s0);
        Tensor xc = hx.narrow(0, s0, cn);
        if (kind == Affinity::Rbf) xc = kernels::binary(kernels::Binary::Sub, xc, centre);
        // the K best samples by affinity, fused with the similarity (no cn x m block kept), then the
        // weighted average of their values (kernels/spectral.h)
        const kernels::KnnAffinity nn = kernels::knn_affinity(xc, ys, K, p);
        if (progress) progress(double(s0 + cn) / double(N));
        return std::vector<Tensor>{kernels::knn_propagate(nn.values, nn.indices, hv)};
      },
      [&](int64_t u, std::vector<Tensor>& t) { out.narrow(0, u * cs, t[0].size(0)).copy_(t[0]); }, true, hx.device());
  return out;
}

Eigenpairs fowlkes_nystrom(const Tensor& x, const Tensor& sample, int64_t k, Affinity kind, double t, int64_t chunk,
                           const ChunkProgress& progress) {
  const char* op = "fowlkes_nystrom";
  const Tensor hx = host_features(x, op, "x");
  const int64_t N = hx.size(0), d = hx.size(1);
  const std::vector<int64_t> idx = index_vector(sample, N, op);
  const int64_t m = static_cast<int64_t>(idx.size());
  CORTEX_CHECK(m >= 1, op, ": expected at least one sampled node, found none");
  CORTEX_CHECK(k >= 1 && k <= m, op, ": expected k in [1, m = ", m, "], found k = ", k);
  CORTEX_CHECK(chunk >= 1, op, ": expected chunk >= 1, found ", chunk);
  check_t(t, kind, op);
  Eigenpairs res;
  // Eigen on one thread throughout (parallel.h); the passes over the N rows are for_chunks loops.
  parallel::SerialEigen serial_eigen;
  dispatch_float(hx.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* px = hx.data<T>();
    const std::vector<T> xs = gather_rows(px, d, idx);
    const Reference<T> ref(xs.data(), m, d, kind);
    const T tt = static_cast<T>(t);

    // A = W(S, S) and its pseudo-inverse square root through one full eigendecomposition.
    std::vector<T> wa(m * m);
    detail::affinity_block(ref.rows.data(), ref.half_sq.data(), m, ref.rows.data(), ref.half_sq.data(), m, d, kind, tt,
                           wa.data());
    MatD A = Eigen::Map<const RowMat<T>>(wa.data(), m, m).template cast<double>();
    A = ((A + A.transpose()) / 2).eval();
    A.diagonal().setOnes();
    const auto esA = full_eig(A, op);
    const VecD& la = esA.eigenvalues();
    const double lmax = la.maxCoeff();
    CORTEX_CHECK(lmax > 0, op, ": the sample's affinity matrix has no positive eigenvalue");
    VecD inv(m), inv_sqrt(m);
    for (int64_t i = 0; i < m; ++i) {
      const bool keep = la(i) > kPinvRcond * lmax;
      inv(i) = keep ? 1.0 / la(i) : 0.0;
      inv_sqrt(i) = keep ? 1.0 / std::sqrt(la(i)) : 0.0;
    }
    const MatD& UA = esA.eigenvectors();
    const MatD Ahalf = UA * inv_sqrt.asDiagonal() * UA.transpose();

    // Pass 1: r = C 1, the sample rows' degrees in W ~ C^T A^+ C.
    // Threads own columns, not rows: every r_j is summed in node order, so the result does not
    // depend on the thread count or on which thread finishes first.
    VecD r = VecD::Zero(m);
    for_each_affinity_chunk<T>(px, N, ref, kind, tt, chunk, idx, [&](int64_t s0, int64_t cn, const T* w) {
      parallel::for_chunks(m, 256, double(cn) * double(m), [&](int64_t j0, int64_t j1) {
        for (int64_t i = 0; i < cn; ++i)
          for (int64_t j = j0; j < j1; ++j) r(j) += w[i * m + j];
      });
      if (progress) progress(double(s0 + cn) / double(N) / 3);
    });
    const VecD g = UA * (inv.asDiagonal() * (UA.transpose() * r));  // A^+ r
    const double floor = kDegreeFloor * r.maxCoeff();

    // Pass 2: approximate degrees d = C^T g and M = Ct Ct^T with Ct = C D^-1/2.
    std::vector<double> dinv_sqrt(N);
    MatD M = MatD::Zero(m, m);
    Mat<T> mc(m, m);
    RowMat<T> ct;
    for_each_affinity_chunk<T>(px, N, ref, kind, tt, chunk, idx, [&](int64_t s0, int64_t cn, const T* w) {
      ct.resize(cn, m);
      parallel::for_each(cn, double(cn) * double(m), [&](int64_t i) {
        double di = 0;
        for (int64_t j = 0; j < m; ++j) di += double(w[i * m + j]) * g(j);
        const double s = 1.0 / std::sqrt(std::max(di, floor));
        dinv_sqrt[s0 + i] = s;
        for (int64_t j = 0; j < m; ++j) ct(i, j) = static_cast<T>(w[i * m + j] * s);
      });
      mc.setZero();
      mc.template selfadjointView<Eigen::Lower>().rankUpdate(ct.transpose());
      M += mc.template cast<double>();
      if (progress) progress((1 + double(s0 + cn) / double(N)) / 3);
    });
    M = M.template selfadjointView<Eigen::Lower>();

    // Q = A^+1/2 M A^+1/2 and its top k: the approximate normalised affinity's eigenvalues.
    MatD Q = Ahalf * M * Ahalf;
    Q = ((Q + Q.transpose()) / 2).eval();
    VecD lq(k);
    MatD uq(m, k);
    if (m <= kDenseMax) {
      const auto esQ = full_eig(Q, op);
      for (int64_t j = 0; j < k; ++j) {
        lq(j) = esQ.eigenvalues()(m - 1 - j);
        uq.col(j) = esQ.eigenvectors().col(m - 1 - j);
      }
    } else {
      Tensor tq = empty({m, m}, DType::Float64);
      Eigen::Map<RowMat<double>>(tq.data<double>(), m, m) = Q;
      EigOptions o;
      o.tol = 1e-10;
      const Eigenpairs e = lanczos_topk(m, k, dense_matvec(tq), o);
      CORTEX_CHECK(e.converged, op, ": the Lanczos solver did not converge on the m x m core (residual ", e.residual,
                   ")");
      lq = Eigen::Map<const VecD>(e.values.data<double>(), k);
      uq = Eigen::Map<const RowMat<double>>(e.vectors.data<double>(), m, k);
    }
    CORTEX_CHECK(lq(k - 1) > 1e-12 * std::max(lq(0), 0.0) && lq(k - 1) > 0, op, ": expected ", k,
                 " positive eigenvalues of the approximated affinity, found the k-th = ", lq(k - 1),
                 " (increase the number of samples or use the AlignedCut method)");
    // V = Ct^T A^+1/2 U L^-1/2, one (chunk, m) x (m, k) product per chunk in pass 3.
    const Mat<T> Pk = (Ahalf * uq * lq.cwiseInverse().cwiseSqrt().asDiagonal()).template cast<T>();
    res.values = empty({k}, dtype_of<T>());
    res.vectors = empty({N, k}, dtype_of<T>());
    for (int64_t j = 0; j < k; ++j) res.values.data<T>()[j] = static_cast<T>(lq(j));
    T* pv = res.vectors.data<T>();
    for_each_affinity_chunk<T>(px, N, ref, kind, tt, chunk, idx, [&](int64_t s0, int64_t cn, const T* w) {
      Eigen::Map<const RowMat<T>> W(w, cn, m);
      Eigen::Map<RowMat<T>> V(pv + s0 * k, cn, k);
      parallel::for_chunks(cn, 256, double(cn) * double(m) * double(k), [&](int64_t lo, int64_t hi) {
        V.middleRows(lo, hi - lo).noalias() = W.middleRows(lo, hi - lo) * Pk;
        for (int64_t i = lo; i < hi; ++i) V.row(i) *= static_cast<T>(dinv_sqrt[s0 + i]);
      });
      if (progress) progress((2 + double(s0 + cn) / double(N)) / 3);
    });
    fix_signs(res.vectors);
  });
  res.matvecs = 0;
  res.iterations = 1;
  return res;
}

}  // namespace cortex::analysis::spectral
