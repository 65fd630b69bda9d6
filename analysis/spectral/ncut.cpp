// The end-to-end Ncut (ncut.h): input layouts, option checks, the three methods, phase timings.
#include "analysis/spectral/ncut.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen + GCC 12 AVX-512 (GCC bug 105593)
#endif
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/index.h"
#include "kernels/matmul.h"

namespace cortex::analysis::spectral {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Rows `idx` of x (N, d) as a new (m, d) tensor on x's device (a device gathers them: kernels).
Tensor take_rows(const Tensor& x, const std::vector<int64_t>& idx) {
  if (!x.device().is_cpu()) return kernels::index_select(x, 0, from_vector(idx).to(x.device()));
  const int64_t d = x.size(1), m = static_cast<int64_t>(idx.size());
  Tensor out = empty({m, d}, x.dtype());
  const size_t row = static_cast<size_t>(d) * x.element_size();
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  for (int64_t i = 0; i < m; ++i) std::copy(src + idx[i] * row, src + (idx[i] + 1) * row, dst + i * row);
  return out;
}

// Orthonormal columns spanning v's (Householder QR), each keeping the sign convention.
Tensor orthonormalise(const Tensor& v) {
  const int64_t n = v.size(0), k = v.size(1);
  Tensor out = empty({n, k}, v.dtype());
  dispatch_float(v.dtype(), "ncut", [&](auto tag) {
    using T = decltype(tag);
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
    using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Mat a = Eigen::Map<const RowMat>(v.data<T>(), n, k);
    parallel::SerialEigen serial_eigen;  // Eigen's threaded products sum in a thread-count order
    Eigen::HouseholderQR<Mat> qr(a);
    Eigen::Map<RowMat>(out.data<T>(), n, k) = qr.householderQ() * Mat::Identity(n, k);
  });
  fix_signs(out);
  return out;
}

// The projection of NcutOptions::search_dims: the top-P principal axes (uncentred, as cosine
// compares directions) of the sample's unit-normalised rows, as a (d, P) basis in xs's dtype and on
// its device. Eigen on one thread, so the basis does not depend on the thread count.
Tensor search_basis(const Tensor& xs, int64_t P) {
  const Tensor h = xs.to(Device::cpu()).to(DType::Float64).contiguous();
  const int64_t m = h.size(0), d = h.size(1);
  using RowMatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::MatrixXd Y = Eigen::Map<const RowMatD>(h.data<double>(), m, d);
  for (int64_t i = 0; i < m; ++i) {
    const double n = Y.row(i).norm();
    if (n > 0) Y.row(i) /= n;
  }
  parallel::SerialEigen serial_eigen;
  const Eigen::MatrixXd C = Y.transpose() * Y;
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(C);  // ascending eigenvalues
  Tensor B = empty({d, P}, DType::Float64);
  double* pb = B.data<double>();
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < P; ++j) pb[i * P + j] = es.eigenvectors()(i, d - 1 - j);
  return B.to(xs.dtype()).to(xs.device());
}

// The bandwidth / temperature: given, the cosine default, or the reference's rbf search on a
// 1000-node FPS subsample of `pool`.
double pick_t(const NcutOptions& opt, const Tensor& pool) {
  if (opt.t > 0) return opt.t;
  if (opt.affinity == Affinity::Cosine) return 1.0;
  const int64_t ns = std::min<int64_t>(1000, pool.size(0));
  if (ns < 2) return 1.0;  // one node: any sigma gives the same (trivial) graph
  const Tensor idx = farthest_point_sampling(pool, ns, opt.seed);
  SigmaSearch s;
  s.quantile = opt.sigma_quantile;
  return find_sigma_by_degree(take_rows(pool, idx.to_vector<int64_t>()).to(Device::cpu()), s);
}

// The solver's options for an n-node graph: tolerance by dtype; blocks of vectors once the stored
// n x n matrix is large, as each operator call reads all of it (one GEMM instead of b GEMVs).
EigOptions solver_options(const NcutOptions& opt, DType dt, int64_t n) {
  EigOptions eo;
  eo.seed = opt.seed;
  eo.dtype = dt;
  eo.tol = dt == DType::Float32 ? 1e-5 : 1e-9;
  eo.block = n > 2048 ? std::min<int64_t>(opt.k, 16) : 1;
  return eo;
}

}  // namespace

const char* method_name(NcutMethod m) {
  switch (m) {
    case NcutMethod::Exact: return "exact";
    case NcutMethod::Nystrom: return "nystrom";
    case NcutMethod::Fowlkes: return "fowlkes";
  }
  return "?";
}

Tensor flatten_features(const Tensor& x) {
  CORTEX_CHECK(x.defined(), "ncut: expected features, found an undefined tensor");
  switch (x.dim()) {
    case 2: return x;
    case 3: return x.reshape({x.size(0) * x.size(1), x.size(2)});                        // (B, T, d)
    case 4: return x.permute({0, 2, 3, 1}).reshape({x.size(0) * x.size(2) * x.size(3), x.size(1)});  // NCHW
    default: break;
  }
  throw Error(::cortex::detail::cat("ncut: expected features of shape (N, d), (B, T, d) or (B, C, H, W), found ",
                          shape_str(x.shape())));
}

NcutResult ncut(const Tensor& features, const NcutOptions& opt) {
  const auto t_start = Clock::now();
  CORTEX_CHECK(opt.k >= 1, "ncut: expected k >= 1, found ", opt.k);
  CORTEX_CHECK(opt.samples >= 1, "ncut: expected samples >= 1, found ", opt.samples);
  CORTEX_CHECK(opt.knn >= 1, "ncut: expected knn >= 1, found ", opt.knn);
  CORTEX_CHECK(opt.chunk >= 1, "ncut: expected chunk >= 1, found ", opt.chunk);
  CORTEX_CHECK(opt.search_dims >= 0, "ncut: expected search_dims >= 0 (0: all features), found ", opt.search_dims);
  CORTEX_CHECK(opt.search_dims == 0 || opt.affinity == Affinity::Cosine,
               "ncut: search_dims projects the cosine affinity's neighbour search; expected 0 with the rbf affinity, found ",
               opt.search_dims);
  CORTEX_CHECK(std::isfinite(opt.t) && opt.t >= 0, "ncut: expected t >= 0 (0: automatic), found ", opt.t);
  CORTEX_CHECK(opt.sigma_quantile > 0 && opt.sigma_quantile < 1, "ncut: expected sigma_quantile in (0, 1), found ",
               opt.sigma_quantile);
  NcutResult res;
  NcutTimings& tm = res.timings;
  auto report = [&](const char* phase, double done, double seconds) {
    if (opt.progress) opt.progress(phase, done, seconds);
  };

  auto t0 = Clock::now();
  // The features where the work runs: the host (CPU), or the device, checked there (kernels).
  const Device dev = opt.device;
  const Tensor x = dev.is_cpu() ? detail::host_features(flatten_features(features), "ncut", "features")
                                : detail::device_features(flatten_features(features).to(dev), "ncut", "features");
  const int64_t N = x.size(0);
  CORTEX_CHECK(N >= 1, "ncut: expected at least one node, found none");
  CORTEX_CHECK(opt.k <= N, "ncut: expected k <= N, found k = ", opt.k, " for N = ", N, " nodes");
  tm.prepare = since(t0);
  report("prepare", 1, tm.prepare);

  // Exact, or a Nystrom method whose sample is every node: the full graph.
  const bool full = opt.method == NcutMethod::Exact || opt.samples >= N;
  if (full) {
    CORTEX_CHECK(N <= opt.max_exact_nodes, "ncut: the exact method needs the N x N affinity; expected N <= ",
                 opt.max_exact_nodes, ", found N = ", N, " (use method nystrom)");
    t0 = Clock::now();
    res.t = pick_t(opt, x);
    if (opt.method != NcutMethod::Exact) {
      std::vector<int64_t> all(N);
      for (int64_t i = 0; i < N; ++i) all[i] = i;
      res.sample_indices = from_vector(all);
    } else {
      res.sample_indices = empty({0}, DType::Int64);
    }
    tm.sampling = since(t0);
    report("sampling", 1, tm.sampling);
    t0 = Clock::now();
    const EigOptions eo = solver_options(opt, x.dtype(), N);
    res.solve = ncut_eigenpairs(x, opt.k, opt.affinity, res.t, opt.solver, &eo, &tm.affinity,
                                [&](double s) { report("affinity", 1, s); });
    tm.eigensolve = since(t0) - tm.affinity;
    report("eigensolve", 1, tm.eigensolve);
    res.eigenvalues = res.solve.values;
    res.eigenvectors = res.solve.vectors;
    tm.total = since(t_start);
    return res;
  }

  const int64_t m = opt.samples;  // < N here
  CORTEX_CHECK(opt.k <= m, "ncut: expected k <= m, the number of samples, found k = ", opt.k, " and m = ", m);
  t0 = Clock::now();
  FpsOptions fps;
  fps.unit_rows = opt.affinity == Affinity::Cosine;
  res.sample_indices = sample_nodes(x, m, opt.sampling, opt.seed, fps);
  const Tensor xs = take_rows(x, res.sample_indices.to_vector<int64_t>());
  res.t = pick_t(opt, xs);
  tm.sampling = since(t0);
  report("sampling", 1, tm.sampling);

  if (opt.method == NcutMethod::Fowlkes) {
    CORTEX_CHECK(dev.is_cpu(), "ncut: the fowlkes method computes on the CPU only (its passes have no device ",
                 "kernels); found device ", dev.str(), " (use the cpu device, or the nystrom or exact method)");
    t0 = Clock::now();
    res.solve = fowlkes_nystrom(x, res.sample_indices, opt.k, opt.affinity, res.t, opt.chunk, [&](double f) {
      if (f < 1) report("eigensolve", f, since(t0));
    });
    tm.eigensolve = since(t0);
    report("eigensolve", 1, tm.eigensolve);
    res.eigenvalues = res.solve.values;
    res.eigenvectors = res.solve.vectors;
    tm.total = since(t_start);
    return res;
  }

  // AlignedCut: the subgraph's Ncut, then KNN propagation to every node.
  t0 = Clock::now();
  const EigOptions eo = solver_options(opt, x.dtype(), m);
  res.solve = ncut_eigenpairs(xs, opt.k, opt.affinity, res.t, opt.solver, &eo, &tm.affinity,
                              [&](double s) { report("affinity", 1, s); });
  tm.eigensolve = since(t0) - tm.affinity;
  report("eigensolve", 1, tm.eigensolve);
  res.eigenvalues = res.solve.values;
  t0 = Clock::now();
  Tensor xq = x, xsq = xs;  // where the neighbours are searched: all features, or their projection
  if (opt.search_dims > 0 && opt.search_dims < x.size(1)) {
    const Tensor basis = search_basis(xs, opt.search_dims);
    xq = kernels::matmul(x, basis), xsq = kernels::matmul(xs, basis);
  }
  res.eigenvectors = propagate_knn(res.solve.vectors, xq, xsq, opt.knn, opt.affinity, res.t, opt.chunk, [&](double f) {
                       if (f < 1) report("propagate", f, since(t0));
                     }).to(Device::cpu());
  // The subgraph's signs make each column's sum over the sample positive; the propagation is linear,
  // so flipping a propagated column is the same as flipping its subgraph vector first, and gives the
  // promised convention over all N nodes.
  if (opt.orthogonalize) {
    res.eigenvectors = orthonormalise(res.eigenvectors);
  } else {
    fix_signs(res.eigenvectors);
  }
  tm.propagate = since(t0);
  report("propagate", 1, tm.propagate);
  tm.total = since(t_start);
  return res;
}

}  // namespace cortex::analysis::spectral
