// Spectral clustering (analysis/spectral): affinities, the Ncut normalisation, the RBF bandwidth
// search, the dense and matrix-free eigensolvers, sampling, AlignedCut's KNN propagation, Fowlkes et
// al.'s Nystrom method, t-SNE colouring and the end-to-end ncut(). Every value is checked against an
// independent float64 reference written here: naive affinity loops, the explicitly built normalised
// affinity solved by Eigen's dense solver, a naive FPS, a naive KNN average. docs/spectral.md has the
// accuracy table that NcutNystrom.PrincipalAnglesVsExactN20000 prints.
#include <gtest/gtest.h>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen + GCC 12 AVX-512 (GCC bug 105593)
#endif
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <set>
#include <vector>

#include "analysis/spectral/affinity.h"
#include "analysis/spectral/colour.h"
#include "analysis/spectral/eigensolver.h"
#include "analysis/spectral/ncut.h"
#include "analysis/spectral/nystrom.h"
#include "tensor/io/image.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::analysis::spectral;
using cortex::testing::allclose;
using cortex::testing::noncontig;
namespace fs = std::filesystem;

using cortex::testing::TempDir;

namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;
using RowMatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

MatrixXd to_eigen(const Tensor& t) {
  const Tensor h = t.to(DType::Float64).contiguous();
  if (t.dim() == 1) return Eigen::Map<const VectorXd>(h.data<double>(), t.size(0));
  return Eigen::Map<const RowMatD>(h.data<double>(), t.size(0), t.size(1));
}
Tensor from_eigen(const MatrixXd& m, DType dt = DType::Float64) {
  const RowMatD r = m;
  return from_vector(std::vector<double>(r.data(), r.data() + r.size()), {m.rows(), m.cols()}, dt);
}

// Planted clusters: C centres on the unit sphere of R^d, point i = centre(i % C) + noise * g / sqrt(d)
// with g standard normal, so that within-cluster cosines are ~1 / (1 + noise^2) and across ~0.
struct Blobs {
  Tensor x;
  std::vector<int> label;
};
Blobs blobs(int64_t n, int64_t d, int C, double noise, uint64_t seed, DType dt = DType::Float64) {
  const MatrixXd g = to_eigen(cortex::testing::randn({n + C, d}, seed));
  MatrixXd centres = g.topRows(C);
  for (int c = 0; c < C; ++c) centres.row(c).normalize();
  MatrixXd x(n, d);
  Blobs b;
  b.label.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    b.label[i] = static_cast<int>(i % C);
    x.row(i) = centres.row(b.label[i]) + noise / std::sqrt(double(d)) * g.row(C + i);
  }
  b.x = from_eigen(x, dt);
  return b;
}

// Naive float64 affinity, straight from the definitions; zero rows have cosine 0 with everything.
MatrixXd naive_affinity(const MatrixXd& x, const MatrixXd& y, Affinity kind, double t) {
  MatrixXd w(x.rows(), y.rows());
  for (int64_t i = 0; i < x.rows(); ++i)
    for (int64_t j = 0; j < y.rows(); ++j) {
      if (kind == Affinity::Cosine) {
        double dot = 0, nx = 0, ny = 0;
        for (int64_t e = 0; e < x.cols(); ++e) {
          dot += x(i, e) * y(j, e);
          nx += x(i, e) * x(i, e);
          ny += y(j, e) * y(j, e);
        }
        const double c = (nx > 0 && ny > 0) ? dot / std::sqrt(nx * ny) : 0.0;
        w(i, j) = std::exp(-(1 - c) / t);
      } else {
        double d2 = 0;
        for (int64_t e = 0; e < x.cols(); ++e) d2 += (x(i, e) - y(j, e)) * (x(i, e) - y(j, e));
        w(i, j) = std::exp(-d2 / (2 * t * t));
      }
    }
  return w;
}
// The square affinity with the documented self-loops W_ii = 1.
MatrixXd naive_affinity(const MatrixXd& x, Affinity kind, double t) {
  MatrixXd w = naive_affinity(x, x, kind, t);
  w.diagonal().setOnes();
  return w;
}
MatrixXd naive_normalized(const MatrixXd& w) {
  const VectorXd s = w.rowwise().sum().array().rsqrt();
  return s.asDiagonal() * w * s.asDiagonal();
}

struct RefEig {
  VectorXd values;
  MatrixXd vectors;
};
// Top k of a symmetric matrix in float64, descending, each column's sum made positive.
RefEig ref_topk(const MatrixXd& a, int64_t k) {
  Eigen::SelfAdjointEigenSolver<MatrixXd> es(a);
  const int64_t n = a.rows();
  RefEig r{VectorXd(k), MatrixXd(n, k)};
  for (int64_t j = 0; j < k; ++j) {
    r.values(j) = es.eigenvalues()(n - 1 - j);
    r.vectors.col(j) = es.eigenvectors().col(n - 1 - j);
    if (r.vectors.col(j).sum() < 0) r.vectors.col(j) *= -1;
  }
  return r;
}
RefEig ref_ncut(const Tensor& x, int64_t k, Affinity kind, double t) {
  return ref_topk(naive_normalized(naive_affinity(to_eigen(x), kind, t)), k);
}

// max_i |A v_i - lambda_i v_i|
double residual(const MatrixXd& a, const Tensor& values, const Tensor& vectors) {
  const MatrixXd v = to_eigen(vectors);
  const VectorXd l = to_eigen(values);
  return (a * v - v * l.asDiagonal()).colwise().norm().maxCoeff();
}

// Cosines of the principal angles between span(a) and span(b): singular values of Qa^T Qb.
VectorXd principal_cosines(const MatrixXd& a, const MatrixXd& b) {
  const MatrixXd qa = Eigen::HouseholderQR<MatrixXd>(a).householderQ() * MatrixXd::Identity(a.rows(), a.cols());
  const MatrixXd qb = Eigen::HouseholderQR<MatrixXd>(b).householderQ() * MatrixXd::Identity(b.rows(), b.cols());
  return Eigen::JacobiSVD<MatrixXd>(qa.transpose() * qb).singularValues();
}

// Fraction of nodes whose cluster is recovered: k-means (farthest-point start from row 0, Lloyd) on
// the row-normalised first C columns (Ng, Jordan & Weiss), then the best matching of found to
// planted clusters over all C! permutations.
double cluster_accuracy(const MatrixXd& emb_all, const std::vector<int>& label, int C) {
  MatrixXd e = emb_all.leftCols(C);
  const int64_t n = e.rows();
  for (int64_t i = 0; i < n; ++i) e.row(i) /= std::max(e.row(i).norm(), 1e-300);
  MatrixXd cen(C, C);
  cen.row(0) = e.row(0);
  VectorXd mind = (e.rowwise() - e.row(0)).rowwise().squaredNorm();
  for (int c = 1; c < C; ++c) {
    Eigen::Index far;
    mind.maxCoeff(&far);
    cen.row(c) = e.row(far);
    mind = mind.cwiseMin((e.rowwise() - e.row(far)).rowwise().squaredNorm());
  }
  std::vector<int> as(n, 0);
  for (int it = 0; it < 50; ++it) {
    for (int64_t i = 0; i < n; ++i) {
      Eigen::Index best;
      (cen.rowwise() - e.row(i)).rowwise().squaredNorm().minCoeff(&best);
      as[i] = static_cast<int>(best);
    }
    MatrixXd sum = MatrixXd::Zero(C, C);
    VectorXd cnt = VectorXd::Zero(C);
    for (int64_t i = 0; i < n; ++i) {
      sum.row(as[i]) += e.row(i);
      cnt(as[i]) += 1;
    }
    for (int c = 0; c < C; ++c)
      if (cnt(c) > 0) cen.row(c) = sum.row(c) / cnt(c);
  }
  std::vector<std::vector<int64_t>> conf(C, std::vector<int64_t>(C, 0));
  for (int64_t i = 0; i < n; ++i) ++conf[as[i]][label[i]];
  std::vector<int> perm(C);
  std::iota(perm.begin(), perm.end(), 0);
  int64_t best = 0;
  do {
    int64_t s = 0;
    for (int c = 0; c < C; ++c) s += conf[c][perm[c]];
    best = std::max(best, s);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return double(best) / double(n);
}

void expect_sign_convention(const Tensor& vectors) {
  const MatrixXd v = to_eigen(vectors);
  for (int64_t j = 0; j < v.cols(); ++j) EXPECT_GT(v.col(j).sum(), 0) << "column " << j;
}
void expect_finite(const Tensor& t) {
  for (double v : t.to(DType::Float64).to_vector<double>()) ASSERT_TRUE(std::isfinite(v));
}

// A symmetric (n, n) matrix Q diag(l) Q^T with Q a random orthogonal matrix.
MatrixXd with_spectrum(const VectorXd& l, uint64_t seed) {
  const int64_t n = l.size();
  const MatrixXd g = to_eigen(cortex::testing::randn({n, n}, seed));
  const MatrixXd q = Eigen::HouseholderQR<MatrixXd>(g).householderQ();
  MatrixXd a = q * l.asDiagonal() * q.transpose();
  return (a + a.transpose()) / 2;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Affinities and the normalisation

TEST(SpectralAffinity, MatchesNaiveFloat64) {
  const Tensor x = cortex::testing::randn({37, 11}, 1), y = cortex::testing::randn({23, 11}, 2);
  for (Affinity kind : {Affinity::Cosine, Affinity::Rbf}) {
    const double t = kind == Affinity::Cosine ? 0.3 : 2.5;
    const MatrixXd ref = naive_affinity(to_eigen(x), to_eigen(y), kind, t);
    EXPECT_TRUE(allclose(affinity(x, y, kind, t), from_eigen(ref), 1e-12, 1e-14)) << affinity_name(kind);
    // float32 in float32, within its rounding
    EXPECT_TRUE(allclose(affinity(x.to(DType::Float32), y.to(DType::Float32), kind, t), from_eigen(ref), 2e-5, 1e-6));
    // strided inputs read the same values
    EXPECT_TRUE(allclose(affinity(noncontig(x), noncontig(y), kind, t), from_eigen(ref), 1e-12, 1e-14));
    const Tensor w = affinity(x, kind, t);
    EXPECT_TRUE(allclose(w, from_eigen(naive_affinity(to_eigen(x), kind, t)), 1e-12, 1e-14));
    const MatrixXd we = to_eigen(w);
    EXPECT_EQ((we - we.transpose()).cwiseAbs().maxCoeff(), 0.0);  // exactly symmetric
    for (int64_t i = 0; i < 37; ++i) EXPECT_EQ(we(i, i), 1.0);
  }
  EXPECT_STREQ(affinity_name(Affinity::Cosine), "cosine");
  EXPECT_STREQ(affinity_name(Affinity::Rbf), "rbf");
}

TEST(SpectralAffinity, ZeroRowsAndFarPoints) {
  // A zero row has cosine 0 with every other row (torch's F.normalize), and itself a self-loop of 1.
  MatrixXd x = to_eigen(cortex::testing::randn({5, 4}, 3));
  x.row(2).setZero();
  const MatrixXd w = to_eigen(affinity(from_eigen(x), Affinity::Cosine, 0.5));
  for (int64_t j = 0; j < 5; ++j) EXPECT_NEAR(w(2, j), j == 2 ? 1.0 : std::exp(-2.0), 1e-15);
  // RBF between points 1e3 sigma apart underflows to 0, never NaN; the self-loop keeps degree 1.
  MatrixXd far = MatrixXd::Zero(3, 2);
  far(1, 0) = 1e3;
  far(2, 1) = -1e3;
  const MatrixXd wf = to_eigen(affinity(from_eigen(far), Affinity::Rbf, 1.0));
  EXPECT_EQ(wf(0, 1), 0.0);
  EXPECT_EQ(wf(1, 1), 1.0);
  const Normalized nf = ncut_normalize(from_eigen(wf));
  EXPECT_TRUE(allclose(nf.a, from_eigen(MatrixXd::Identity(3, 3)), 0, 1e-15));
}

TEST(SpectralAffinity, Errors) {
  const Tensor x = cortex::testing::randn({4, 3}, 1);
  EXPECT_CORTEX_ERROR(affinity(x, Affinity::Cosine, 0), "temperature t > 0");
  EXPECT_CORTEX_ERROR(affinity(x, Affinity::Rbf, -1), "sigma > 0");
  EXPECT_CORTEX_ERROR(affinity(x, Affinity::Rbf, std::nan("")), "sigma > 0");
  EXPECT_CORTEX_ERROR(affinity(x, x.to(DType::Float32), Affinity::Cosine, 1), "one dtype");
  EXPECT_CORTEX_ERROR(affinity(x, cortex::testing::randn({4, 2}, 1), Affinity::Cosine, 1), "same feature size");
  EXPECT_CORTEX_ERROR(affinity(x.reshape({12}), Affinity::Cosine, 1), "of shape (n, d)");
  EXPECT_CORTEX_ERROR(affinity(x.to(DType::Int64), Affinity::Cosine, 1), "float32 or float64");
  MatrixXd bad = to_eigen(x);
  bad(2, 1) = std::nan("");
  EXPECT_CORTEX_ERROR(affinity(from_eigen(bad), Affinity::Cosine, 1), "finite values in x, found nan in row 2");
  bad(2, 1) = INFINITY;
  EXPECT_CORTEX_ERROR(affinity(x, from_eigen(bad), Affinity::Rbf, 1), "finite values in y");
}

TEST(SpectralNormalize, MatchesNaiveAndFloorsZeroDegrees) {
  const MatrixXd w = naive_affinity(to_eigen(cortex::testing::randn({30, 5}, 4)), Affinity::Rbf, 1.5);
  const Normalized n = ncut_normalize(from_eigen(w));
  EXPECT_TRUE(allclose(n.a, from_eigen(naive_normalized(w)), 1e-13, 1e-15));
  EXPECT_TRUE(allclose(n.degree, from_eigen(w.rowwise().sum()).reshape({30}), 1e-13, 0));
  EXPECT_EQ(n.degree.dtype(), DType::Float64);
  EXPECT_TRUE(allclose(ncut_normalize(from_eigen(w, DType::Float32)).a, n.a, 1e-5, 1e-7));
  // A node with no edges (a zero row and column): its degree is raised to the floor, the row stays
  // finite (zero), never 0/0.
  MatrixXd z = w;
  z.row(7).setZero();
  z.col(7).setZero();
  const Normalized nz = ncut_normalize(from_eigen(z));
  expect_finite(nz.a);
  const double dmax = z.rowwise().sum().maxCoeff();
  EXPECT_DOUBLE_EQ(nz.degree.at({7}), kDegreeFloor * dmax);
  EXPECT_EQ(to_eigen(nz.a).row(7).cwiseAbs().maxCoeff(), 0.0);
  EXPECT_CORTEX_ERROR(ncut_normalize(zeros({3, 3}, DType::Float64)), "positive degree");
  EXPECT_CORTEX_ERROR(ncut_normalize(zeros({3, 4}, DType::Float64)), "square (n, n)");
}

// The degree-quantile search, written independently from its description (affinity.h): naive
// distances, sigma0 = sum of per-feature sample std devs, target = linear-interpolated quantile of
// per-node mean affinities (diagonal zeroed but counted), bisection / doubling from init.
double naive_sigma(const MatrixXd& x, double quantile, double init, double rtol, int max_iter) {
  const int64_t n = x.rows();
  MatrixXd d2(n, n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) d2(i, j) = (x.row(i) - x.row(j)).squaredNorm();
  auto means = [&](double s) {
    VectorXd m(n);
    for (int64_t i = 0; i < n; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < n; ++j)
        if (i != j) acc += std::exp(-d2(i, j) / (2 * s * s));
      m(i) = acc / double(n);
    }
    return m;
  };
  double s0 = 0;
  for (int64_t e = 0; e < x.cols(); ++e) {
    const double mu = x.col(e).mean();
    s0 += std::sqrt((x.col(e).array() - mu).square().sum() / double(n - 1));
  }
  VectorXd m0 = means(s0);
  std::vector<double> v(m0.data(), m0.data() + n);
  std::sort(v.begin(), v.end());
  const double pos = quantile * double(n - 1);
  const int64_t lo = int64_t(pos);
  const double target = v[lo] + (pos - double(lo)) * (v[std::min(lo + 1, n - 1)] - v[lo]);
  double s = init, low = 0, high = INFINITY, cur = means(s).mean();
  for (int it = 0; it < max_iter && std::abs(cur - target) > rtol * target; ++it) {
    if (cur > target) {
      high = s;
      s = (low + s) / 2;
    } else {
      low = s;
      s = std::isinf(high) ? 2 * s : (s + high) / 2;
    }
    cur = means(s).mean();
  }
  return s;
}

TEST(SpectralAffinity, SigmaSearchMatchesNaive) {
  for (double scale : {0.05, 1.0, 40.0}) {
    const MatrixXd x = scale * to_eigen(cortex::testing::randn({120, 6}, 5));
    const double ref = naive_sigma(x, 0.25, 0.5, 1e-2, 100);
    const double got = find_sigma_by_degree(from_eigen(x));
    EXPECT_NEAR(got, ref, 1e-9 * ref) << "scale " << scale;
    // the result does what it promises: mean affinity within rtol of the target
    SigmaSearch q;
    q.quantile = 0.6;
    EXPECT_NEAR(find_sigma_by_degree(from_eigen(x), q), naive_sigma(x, 0.6, 0.5, 1e-2, 100), 1e-9 * ref);
  }
  // All points equal: every sigma gives the same graph, the documented fallback is 1.
  EXPECT_EQ(find_sigma_by_degree(ones({10, 3}, DType::Float64)), 1.0);
  SigmaSearch bad;
  bad.quantile = 1.0;
  EXPECT_CORTEX_ERROR(find_sigma_by_degree(ones({10, 3}), bad), "quantile in (0, 1)");
  EXPECT_CORTEX_ERROR(find_sigma_by_degree(ones({1, 3})), "at least 2 points");
}

// ---------------------------------------------------------------------------------------------
// Eigensolvers

TEST(SpectralEigensolver, DenseMatchesFloat64Reference) {
  const MatrixXd a = naive_normalized(naive_affinity(to_eigen(blobs(200, 8, 3, 0.5, 6).x), Affinity::Cosine, 0.5));
  const RefEig ref = ref_topk(a, 8);
  const Eigenpairs e = eigh_topk_dense(from_eigen(a), 8);
  EXPECT_TRUE(allclose(e.values, from_eigen(ref.values).reshape({8}), 0, 1e-12));
  EXPECT_LT(residual(a, e.values, e.vectors), 1e-12);
  EXPECT_NEAR(e.values.at({0}), 1.0, 1e-12);  // the Ncut normalisation's top eigenvalue
  expect_sign_convention(e.vectors);
  EXPECT_CORTEX_ERROR(eigh_topk_dense(from_eigen(a), 201), "k in [1, 200]");
  EXPECT_CORTEX_ERROR(eigh_topk_dense(from_eigen(a), 0), "k in [1, 200]");
  EXPECT_CORTEX_ERROR(eigh_topk_dense(zeros({3, 4}), 1), "square");
}

TEST(SpectralEigensolver, LanczosAndSubspaceMatchReference) {
  // An Ncut matrix (PSD, spectrum in [0, 1]) large enough for restarts.
  const MatrixXd a = naive_normalized(naive_affinity(to_eigen(blobs(900, 16, 5, 0.6, 7).x), Affinity::Cosine, 0.5));
  const int64_t k = 10;
  const RefEig ref = ref_topk(a, k);
  const MatVec mv = dense_matvec(from_eigen(a));
  for (int64_t block : {1, 4}) {
    EigOptions o;
    o.block = block;
    o.tol = 1e-10;
    const Eigenpairs e = lanczos_topk(900, k, mv, o);
    EXPECT_TRUE(e.converged);
    EXPECT_LE(e.residual, 1e-10);
    EXPECT_GT(e.iterations, 1) << "meant to exercise restarts";
    EXPECT_TRUE(allclose(e.values, from_eigen(ref.values).reshape({k}), 0, 1e-11)) << "block " << block;
    EXPECT_LT(residual(a, e.values, e.vectors), 1e-9);
    EXPECT_GT(principal_cosines(to_eigen(e.vectors), ref.vectors).minCoeff(), 1 - 1e-10);
    expect_sign_convention(e.vectors);
    const MatrixXd v = to_eigen(e.vectors);
    EXPECT_LT((v.transpose() * v - MatrixXd::Identity(k, k)).cwiseAbs().maxCoeff(), 1e-12);
  }
  EigOptions o;
  o.tol = 1e-9;
  const Eigenpairs s = subspace_topk(900, k, mv, o);
  EXPECT_TRUE(s.converged);
  EXPECT_TRUE(allclose(s.values, from_eigen(ref.values).reshape({k}), 0, 1e-10));
  EXPECT_LT(residual(a, s.values, s.vectors), 1e-8);
  expect_sign_convention(s.vectors);
  // float32 basis: values and residual within float32 rounding
  o.dtype = DType::Float32;
  o.tol = 1e-5;
  const Eigenpairs f = lanczos_topk(900, k, mv, o);
  EXPECT_EQ(f.values.dtype(), DType::Float32);
  EXPECT_TRUE(f.converged);
  EXPECT_TRUE(allclose(f.values, from_eigen(ref.values).reshape({k}), 0, 1e-5));
  EXPECT_LT(residual(a, f.values, f.vectors), 1e-4);
}

TEST(SpectralEigensolver, IndefiniteAndRankDeficient) {
  // Lanczos finds the algebraically largest; subspace iteration the largest in magnitude.
  VectorXd l(300);
  for (int64_t i = 0; i < 300; ++i) l(i) = 0.9 - 0.006 * double(i);  // 0.9 ... -0.894
  l(299) = -3;
  const MatrixXd a = with_spectrum(l, 8);
  const MatVec mv = dense_matvec(from_eigen(a));
  EigOptions o;
  o.tol = 1e-10;
  const Eigenpairs e = lanczos_topk(300, 4, mv, o);
  EXPECT_TRUE(allclose(e.values, from_vector(std::vector<double>{0.9, 0.894, 0.888, 0.882}), 0, 1e-9));
  const Eigenpairs s = subspace_topk(300, 1, mv, o);
  EXPECT_NEAR(s.values.at({0}), -3.0, 1e-9);
  // Rank 3, k = 6: the Krylov space is exhausted after three steps (breakdown); the solver carries on
  // with fresh directions, returns the three non-zero eigenvalues and zeros, no NaN.
  VectorXd r = VectorXd::Zero(200);
  r(0) = 2;
  r(1) = 1;
  r(2) = 0.5;
  const MatrixXd low = with_spectrum(r, 9);
  for (int64_t block : {1, 2}) {
    o.block = block;
    const Eigenpairs lr = lanczos_topk(200, 6, dense_matvec(from_eigen(low)), o);
    expect_finite(lr.vectors);
    EXPECT_TRUE(allclose(lr.values, from_vector(std::vector<double>{2, 1, 0.5, 0, 0, 0}), 0, 1e-10));
    EXPECT_LT(residual(low, lr.values, lr.vectors), 1e-9);
    const MatrixXd v = to_eigen(lr.vectors);
    EXPECT_LT((v.transpose() * v - MatrixXd::Identity(6, 6)).cwiseAbs().maxCoeff(), 1e-10);
  }
}

TEST(SpectralEigensolver, SmallOperatorsAndReports) {
  // n small enough that the solver forms the matrix from n products and solves it densely.
  const MatrixXd a = with_spectrum(VectorXd::LinSpaced(40, 1, -1), 10);
  const Eigenpairs e = lanczos_topk(40, 3, dense_matvec(from_eigen(a)));
  EXPECT_EQ(e.matvecs, 40);
  EXPECT_TRUE(allclose(e.values, from_eigen(ref_topk(a, 3).values).reshape({3}), 0, 1e-12));
  // max_iter = 1 with an unreachable tolerance: a report, not an exception
  VectorXd slow(500);
  for (int64_t i = 0; i < 500; ++i) slow(i) = 1 - 0.001 * double(i);  // small gaps: many restarts needed
  const MatrixXd big = with_spectrum(slow, 11);
  EigOptions o;
  o.max_iter = 1;
  o.tol = 1e-15;
  const Eigenpairs r = lanczos_topk(500, 5, dense_matvec(from_eigen(big)), o);
  EXPECT_FALSE(r.converged);
  EXPECT_GT(r.residual, 1e-15);
  EXPECT_EQ(r.iterations, 1);
  const Eigenpairs rs = subspace_topk(500, 5, dense_matvec(from_eigen(big)), o);
  EXPECT_FALSE(rs.converged);
}

TEST(SpectralEigensolver, Errors) {
  const MatVec mv = dense_matvec(eye(100, 100, DType::Float64));
  EXPECT_CORTEX_ERROR(lanczos_topk(100, 101, mv), "k in [1, 100]");
  EXPECT_CORTEX_ERROR(subspace_topk(100, 0, mv), "k in [1, 100]");
  EXPECT_CORTEX_ERROR(lanczos_topk(0, 1, mv), "size n >= 1");
  EXPECT_CORTEX_ERROR(lanczos_topk(100, 2, MatVec{}), "empty function");
  EigOptions o;
  o.tol = 0;
  EXPECT_CORTEX_ERROR(lanczos_topk(100, 2, mv, o), "tol > 0");
  o = {};
  o.dtype = DType::Int32;
  EXPECT_CORTEX_ERROR(subspace_topk(100, 2, mv, o), "float32 or float64");
  o = {};
  o.block = 0;
  EXPECT_CORTEX_ERROR(lanczos_topk(100, 2, mv, o), "block >= 1");
  o = {};
  o.basis = 5;
  EXPECT_CORTEX_ERROR(lanczos_topk(100, 10, mv, o), "at least k + block");
  o = {};
  o.max_iter = 0;
  EXPECT_CORTEX_ERROR(subspace_topk(100, 2, mv, o), "max_iter >= 1");
  const MatVec wrong = [](const Tensor& x) { return zeros({x.size(0) + 1, x.size(1)}, DType::Float64); };
  EXPECT_CORTEX_ERROR(lanczos_topk(100, 2, wrong), "return shape");
  const MatVec nan = [](const Tensor& x) { return full(x.shape(), std::nan(""), DType::Float64); };
  EXPECT_CORTEX_ERROR(subspace_topk(100, 2, nan), "NaN or Inf");
  EXPECT_CORTEX_ERROR(dense_matvec(zeros({3, 4})), "square");
  EXPECT_CORTEX_ERROR(mv(zeros({99, 2}, DType::Float64)), "block of shape (100, b)");
}

TEST(SpectralEigensolver, FixSigns) {
  Tensor v = from_vector(std::vector<double>{-1, 0, 1, -2, 0, 3, -1, 0, 0}, {3, 3});
  fix_signs(v);
  // column 0 sums to -2: flipped; column 1 sums to 0 and is all zero: left; column 2 sums to 1: kept
  EXPECT_TRUE(allclose(v, from_vector(std::vector<double>{1, 0, 1, 2, 0, 3, 1, 0, 0}, {3, 3}), 0, 0));
  // a zero sum decided by the first non-zero entry
  Tensor z = from_vector(std::vector<double>{-1, 1}, {2, 1});
  fix_signs(z);
  EXPECT_EQ(z.at({0, 0}), 1.0);
  Tensor t = from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}).t();
  EXPECT_CORTEX_ERROR(fix_signs(t), "contiguous");
}

// ---------------------------------------------------------------------------------------------
// Sampling

// Exact FPS from node 0 on the rows as given: the reference when there is no random draw and the
// data has no more dimensions than the PCA keeps (centring and a rotation keep every distance).
std::vector<int64_t> naive_fps(const MatrixXd& x, int64_t m) {
  const int64_t n = x.rows();
  std::vector<int64_t> picks{0};
  VectorXd mind = VectorXd::Constant(n, INFINITY);
  std::vector<char> taken(n, 0);
  taken[0] = 1;
  while (int64_t(picks.size()) < m) {
    const int64_t c = picks.back();
    int64_t bi = -1;
    double best = -1;
    for (int64_t i = 0; i < n; ++i) {
      if (taken[i]) continue;
      mind(i) = std::min(mind(i), (x.row(i) - x.row(c)).squaredNorm());
      if (mind(i) > best) {
        best = mind(i);
        bi = i;
      }
    }
    picks.push_back(bi);
    taken[bi] = 1;
  }
  return picks;
}

TEST(SpectralSampling, FarthestPointMatchesNaive) {
  const MatrixXd x = to_eigen(cortex::testing::randn({300, 6}, 12));
  const std::vector<int64_t> got = farthest_point_sampling(from_eigen(x), 80).to_vector<int64_t>();
  EXPECT_EQ(got, naive_fps(x, 80));
  // PCA to fewer dimensions than the data has: still distinct, first pick node 0, deterministic
  FpsOptions o;
  o.pca_dims = 2;
  const Tensor a = farthest_point_sampling(from_eigen(x), 80, 0, o);
  EXPECT_EQ(a.to_vector<int64_t>(), farthest_point_sampling(from_eigen(x), 80, 0, o).to_vector<int64_t>());
  EXPECT_EQ(a.at({0}), 0);
  const std::vector<int64_t> av = a.to_vector<int64_t>();
  EXPECT_EQ(std::set<int64_t>(av.begin(), av.end()).size(), 80u);
  // one pick per well-separated cluster first
  const Blobs b = blobs(500, 8, 6, 0.05, 13);
  std::set<int> seen;
  for (int64_t i : farthest_point_sampling(b.x, 6).to_vector<int64_t>()) seen.insert(b.label[i]);
  EXPECT_EQ(seen.size(), 6u);
  // every node, float32 input, m = N
  const Tensor all = farthest_point_sampling(from_eigen(x, DType::Float32), 300);
  std::vector<int64_t> sorted = all.to_vector<int64_t>();
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 300; ++i) EXPECT_EQ(sorted[i], i);
}

TEST(SpectralSampling, DrawDeterminismAndDuplicates) {
  const Tensor x = cortex::testing::randn({5000, 12}, 14);
  // N > 4 m: FPS runs on a seeded random draw of 4 m nodes
  const std::vector<int64_t> a = farthest_point_sampling(x, 100, 7).to_vector<int64_t>();
  EXPECT_EQ(a, farthest_point_sampling(x, 100, 7).to_vector<int64_t>());
  EXPECT_NE(a, farthest_point_sampling(x, 100, 8).to_vector<int64_t>());
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 100u);
  for (int64_t i : a) EXPECT_TRUE(i >= 0 && i < 5000);
  // the same with threads on (n * q large) and a strided input
  EXPECT_EQ(a, farthest_point_sampling(noncontig(x), 100, 7).to_vector<int64_t>());
  // 10 distinct points, each repeated 5 times: the first 10 picks are the 10 distinct points, then
  // duplicates, never an index twice
  MatrixXd base = to_eigen(cortex::testing::randn({10, 3}, 15));
  MatrixXd dup(50, 3);
  for (int64_t i = 0; i < 50; ++i) dup.row(i) = base.row(i % 10);
  const std::vector<int64_t> d = farthest_point_sampling(from_eigen(dup), 30).to_vector<int64_t>();
  std::set<int64_t> first;
  for (int i = 0; i < 10; ++i) first.insert(d[i] % 10);
  EXPECT_EQ(first.size(), 10u);
  EXPECT_EQ(std::set<int64_t>(d.begin(), d.end()).size(), 30u);

  const std::vector<int64_t> r = random_sampling(1000, 50, 3).to_vector<int64_t>();
  EXPECT_EQ(r, random_sampling(1000, 50, 3).to_vector<int64_t>());
  EXPECT_NE(r, random_sampling(1000, 50, 4).to_vector<int64_t>());
  EXPECT_TRUE(std::is_sorted(r.begin(), r.end()));
  EXPECT_EQ(std::set<int64_t>(r.begin(), r.end()).size(), 50u);
  EXPECT_EQ(sample_nodes(x, 20, Sampling::Random, 3).to_vector<int64_t>(),
            random_sampling(5000, 20, 3).to_vector<int64_t>());
  EXPECT_STREQ(sampling_name(Sampling::Fps), "fps");

  EXPECT_CORTEX_ERROR(farthest_point_sampling(x, 5001), "1 <= m <= N = 5000");
  EXPECT_CORTEX_ERROR(farthest_point_sampling(x, 0), "1 <= m <= N");
  EXPECT_CORTEX_ERROR(random_sampling(10, 11), "1 <= m <= n");
  EXPECT_CORTEX_ERROR(sample_nodes(x.reshape({-1}), 3, Sampling::Random), "shape (N, d)");
  FpsOptions o;
  o.draw_ratio = 0.5;
  EXPECT_CORTEX_ERROR(farthest_point_sampling(x, 10, 0, o), "draw_ratio >= 1");
}

// ---------------------------------------------------------------------------------------------
// Subgraph Ncut, propagation, Fowlkes

TEST(SpectralNystrom, SubgraphEigenpairsMatchReference) {
  const Tensor x = blobs(1200, 10, 4, 0.5, 16).x;
  const RefEig ref = ref_ncut(x, 6, Affinity::Cosine, 0.4);
  const MatrixXd a = naive_normalized(naive_affinity(to_eigen(x), Affinity::Cosine, 0.4));
  for (EigSolver s : {EigSolver::Dense, EigSolver::Lanczos, EigSolver::Subspace, EigSolver::Auto}) {
    double secs = -1;
    const Eigenpairs e = ncut_eigenpairs(x, 6, Affinity::Cosine, 0.4, s, nullptr, &secs);
    EXPECT_GE(secs, 0);
    EXPECT_TRUE(allclose(e.values, from_eigen(ref.values).reshape({6}), 0, 1e-8)) << solver_name(s);
    EXPECT_LT(residual(a, e.values, e.vectors), 1e-7) << solver_name(s);
    expect_sign_convention(e.vectors);
  }
  const Eigenpairs f = ncut_eigenpairs(x.to(DType::Float32), 6, Affinity::Cosine, 0.4);
  EXPECT_EQ(f.vectors.dtype(), DType::Float32);
  EXPECT_LT(residual(a, f.values, f.vectors), 1e-4);
  EXPECT_CORTEX_ERROR(ncut_eigenpairs(x, 1201, Affinity::Cosine, 1), "k in [1, 1200]");
  EXPECT_CORTEX_ERROR(ncut_eigenpairs(x, 2, Affinity::Rbf, 0), "sigma > 0");
}

// out_i = sum over the K most similar sampled rows of W_ij v_j / sum W_ij, by brute force.
MatrixXd naive_propagate(const MatrixXd& v, const MatrixXd& x, const MatrixXd& xs, int64_t K, Affinity kind, double t) {
  const MatrixXd w = naive_affinity(x, xs, kind, t);
  MatrixXd out(x.rows(), v.cols());
  for (int64_t i = 0; i < x.rows(); ++i) {
    std::vector<int64_t> idx(xs.rows());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return w(i, a) > w(i, b); });
    double s = 0;
    VectorXd acc = VectorXd::Zero(v.cols());
    for (int64_t q = 0; q < std::min<int64_t>(K, xs.rows()); ++q) {
      s += w(i, idx[q]);
      acc += w(i, idx[q]) * v.row(idx[q]).transpose();
    }
    out.row(i) = acc / s;
  }
  return out;
}

TEST(SpectralNystrom, PropagateKnnMatchesNaive) {
  const MatrixXd x = to_eigen(cortex::testing::randn({257, 7}, 17));
  const MatrixXd xs = x.topRows(40) + 0.1 * to_eigen(cortex::testing::randn({40, 7}, 18));
  const MatrixXd v = to_eigen(cortex::testing::randn({40, 5}, 19));
  for (Affinity kind : {Affinity::Cosine, Affinity::Rbf}) {
    const double t = kind == Affinity::Cosine ? 0.2 : 1.3;
    const MatrixXd ref = naive_propagate(v, x, xs, 6, kind, t);
    const Tensor got = propagate_knn(from_eigen(v), from_eigen(x), from_eigen(xs), 6, kind, t);
    EXPECT_TRUE(allclose(got, from_eigen(ref), 1e-10, 1e-12)) << affinity_name(kind);
    // chunking does not change the answer, nor does a strided input
    EXPECT_TRUE(allclose(propagate_knn(from_eigen(v), noncontig(from_eigen(x)), from_eigen(xs), 6, kind, t, 7), got,
                         1e-13, 1e-15));
    // float32
    EXPECT_TRUE(allclose(propagate_knn(from_eigen(v), from_eigen(x, DType::Float32), from_eigen(xs, DType::Float32), 6,
                                       kind, t),
                         from_eigen(ref), 1e-4, 1e-5));
    // K > m is clamped to m (the reference's behaviour)
    EXPECT_TRUE(allclose(propagate_knn(from_eigen(v), from_eigen(x), from_eigen(xs), 100, kind, t),
                         from_eigen(naive_propagate(v, x, xs, 40, kind, t)), 1e-10, 1e-12));
  }
  // Far from every sample (rbf affinities that underflow): weights are relative to the best
  // neighbour, so the row is a proper average, not 0/0.
  MatrixXd xf = x.topRows(3);
  xf.row(0).setConstant(1e4);
  const Tensor far = propagate_knn(from_eigen(v), from_eigen(xf), from_eigen(xs), 3, Affinity::Rbf, 0.1);
  expect_finite(far);
  // a sampled node propagated with K = 1 gets its own values back
  const Tensor own = propagate_knn(from_eigen(v), from_eigen(xs), from_eigen(xs), 1, Affinity::Rbf, 1.0);
  EXPECT_TRUE(allclose(own, from_eigen(v), 0, 0));
  EXPECT_CORTEX_ERROR(propagate_knn(from_eigen(v), from_eigen(x), from_eigen(xs), 0, Affinity::Rbf, 1), "knn >= 1");
  EXPECT_CORTEX_ERROR(propagate_knn(from_eigen(v.topRows(39)), from_eigen(x), from_eigen(xs), 3, Affinity::Rbf, 1),
                      "one row per sampled node (40)");
  EXPECT_CORTEX_ERROR(propagate_knn(from_eigen(v), from_eigen(x), from_eigen(xs, DType::Float32), 3, Affinity::Rbf, 1),
                      "one dtype");
  EXPECT_CORTEX_ERROR(propagate_knn(from_eigen(v), from_eigen(x).slice(1, 0, 6), from_eigen(xs), 3, Affinity::Rbf, 1),
                      "one feature size");
  EXPECT_CORTEX_ERROR(propagate_knn(from_eigen(v), from_eigen(x), from_eigen(xs), 3, Affinity::Rbf, 1, 0),
                      "chunk >= 1");
}

TEST(SpectralNystrom, FowlkesIsExactWithEveryNodeSampled) {
  // m = N: C = A, so C^T A^+ C = W and the method is exact.
  const Tensor x = blobs(300, 6, 3, 0.6, 20).x;
  const RefEig ref = ref_ncut(x, 5, Affinity::Rbf, 0.8);
  std::vector<int64_t> all(300);
  std::iota(all.begin(), all.end(), 0);
  const Eigenpairs f = fowlkes_nystrom(x, from_vector(all), 5, Affinity::Rbf, 0.8, 64);
  EXPECT_TRUE(allclose(f.values, from_eigen(ref.values).reshape({5}), 0, 1e-7));
  EXPECT_GT(principal_cosines(to_eigen(f.vectors), ref.vectors).minCoeff(), 1 - 1e-8);
  expect_sign_convention(f.vectors);
  // m < N: orthonormal columns by construction, close to the exact subspace on clustered data
  const Blobs b = blobs(1200, 8, 4, 0.3, 21);
  const RefEig rb = ref_ncut(b.x, 4, Affinity::Cosine, 0.2);
  const Tensor s = farthest_point_sampling(b.x, 150);
  const Eigenpairs fb = fowlkes_nystrom(b.x, s, 4, Affinity::Cosine, 0.2, 333);
  const MatrixXd v = to_eigen(fb.vectors);
  EXPECT_LT((v.transpose() * v - MatrixXd::Identity(4, 4)).cwiseAbs().maxCoeff(), 1e-8);
  EXPECT_GT(principal_cosines(v, rb.vectors).mean(), 0.999);
  EXPECT_GT(cluster_accuracy(v, b.label, 4), 0.999);
  // the chunk size changes nothing
  EXPECT_TRUE(allclose(fowlkes_nystrom(b.x, s, 4, Affinity::Cosine, 0.2, 1200).vectors, fb.vectors, 1e-9, 1e-12));
  EXPECT_CORTEX_ERROR(fowlkes_nystrom(x, from_vector(std::vector<int64_t>{1, 1}), 1, Affinity::Rbf, 1), "distinct");
  EXPECT_CORTEX_ERROR(fowlkes_nystrom(x, from_vector(std::vector<int64_t>{1, 300}), 1, Affinity::Rbf, 1), "[0, 300)");
  EXPECT_CORTEX_ERROR(fowlkes_nystrom(x, from_vector(std::vector<int64_t>{1, 2}), 3, Affinity::Rbf, 1),
                      "k in [1, m = 2]");
  EXPECT_CORTEX_ERROR(fowlkes_nystrom(x, from_vector(std::vector<double>{1, 2}), 1, Affinity::Rbf, 1), "int64");
}

// ---------------------------------------------------------------------------------------------
// Layouts and the end-to-end ncut()

TEST(SpectralNcut, FlattenFeaturesLayouts) {
  const Tensor nd = cortex::testing::randn({6, 4}, 22);
  EXPECT_TRUE(flatten_features(nd).is_same(nd));
  // (B, T, d): node b * T + t
  const Tensor btd = cortex::testing::randn({2, 3, 4}, 23);
  const Tensor f3 = flatten_features(btd);
  EXPECT_EQ(f3.shape(), (Shape{6, 4}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 3; ++t)
      for (int64_t e = 0; e < 4; ++e) EXPECT_EQ(f3.at({b * 3 + t, e}), btd.at({b, t, e}));
  // (B, C, H, W): node (b * H + h) * W + w, feature c; also from a strided view
  const Tensor nchw = cortex::testing::randn({2, 5, 3, 4}, 24);
  for (const Tensor& in : {nchw, noncontig(nchw), nchw.permute({0, 1, 3, 2}).contiguous().permute({0, 1, 3, 2})}) {
    const Tensor f4 = flatten_features(in);
    ASSERT_EQ(f4.shape(), (Shape{24, 5}));
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 5; ++c)
        for (int64_t h = 0; h < 3; ++h)
          for (int64_t w = 0; w < 4; ++w) EXPECT_EQ(f4.at({(b * 3 + h) * 4 + w, c}), nchw.at({b, c, h, w}));
  }
  EXPECT_TRUE(allclose(flatten_features(noncontig(btd)), f3, 0, 0));
  EXPECT_CORTEX_ERROR(flatten_features(zeros({3})), "(N, d), (B, T, d) or (B, C, H, W), found [3]");
  EXPECT_CORTEX_ERROR(flatten_features(zeros({1, 1, 1, 1, 1})), "found [1, 1, 1, 1, 1]");
  EXPECT_CORTEX_ERROR(flatten_features(Tensor()), "undefined");
}

TEST(SpectralNcut, ExactMatchesFloat64Reference) {
  const Blobs b = blobs(400, 12, 4, 0.5, 25);
  for (Affinity kind : {Affinity::Cosine, Affinity::Rbf}) {
    NcutOptions o;
    o.k = 8;
    o.method = NcutMethod::Exact;
    o.affinity = kind;
    o.t = kind == Affinity::Cosine ? 0.3 : 0.7;
    const NcutResult r = ncut(b.x, o);
    const MatrixXd a = naive_normalized(naive_affinity(to_eigen(b.x), kind, o.t));
    const RefEig ref = ref_topk(a, 8);
    EXPECT_TRUE(allclose(r.eigenvalues, from_eigen(ref.values).reshape({8}), 0, 1e-10)) << affinity_name(kind);
    EXPECT_LT(residual(a, r.eigenvalues, r.eigenvectors), 1e-9);
    EXPECT_NEAR(r.eigenvalues.at({0}), 1.0, 1e-10);
    for (double l : r.eigenvalues.to_vector<double>()) EXPECT_TRUE(l >= -1e-12 && l <= 1 + 1e-12);
    // the top eigenvector is D^1/2 1 / |D^1/2 1|
    const VectorXd sd = naive_affinity(to_eigen(b.x), kind, o.t).rowwise().sum().cwiseSqrt();
    EXPECT_LT((to_eigen(r.eigenvectors).col(0) - sd / sd.norm()).cwiseAbs().maxCoeff(), 1e-9);
    expect_sign_convention(r.eigenvectors);
    EXPECT_EQ(r.sample_indices.numel(), 0);
    EXPECT_GT(cluster_accuracy(to_eigen(r.eigenvectors), b.label, 4), 0.999);
    EXPECT_GE(r.timings.total, r.timings.affinity);
  }
  // float32 features: float32 results, within float32 accuracy of the float64 reference
  NcutOptions o;
  o.k = 8;
  o.method = NcutMethod::Exact;
  o.t = 0.3;
  const NcutResult r32 = ncut(b.x.to(DType::Float32), o);
  EXPECT_EQ(r32.eigenvectors.dtype(), DType::Float32);
  const MatrixXd a = naive_normalized(naive_affinity(to_eigen(b.x), Affinity::Cosine, 0.3));
  EXPECT_LT(residual(a, r32.eigenvalues, r32.eigenvectors), 1e-4);
  // a Nystrom method with m >= N is the full graph (documented clamp), sample = every node
  const NcutResult rn = ncut(b.x, NcutOptions{.k = 8, .method = NcutMethod::Nystrom, .samples = 5000, .t = 0.3});
  EXPECT_TRUE(allclose(rn.eigenvalues, from_eigen(ref_topk(a, 8).values).reshape({8}), 0, 1e-10));
  EXPECT_EQ(rn.sample_indices.numel(), 400);
}

TEST(SpectralNcut, LayoutsGiveTheSameGraph) {
  // The same 48 nodes as (N, d), (B, T, d) and (B, C, H, W): identical eigenpairs in node order.
  const Tensor x = blobs(48, 5, 3, 0.4, 26).x;  // node n = (b * H + h) * W + w with B=2, H=4, W=6
  const Tensor btd = x.reshape({2, 24, 5});
  const Tensor nchw = x.reshape({2, 4, 6, 5}).permute({0, 3, 1, 2});
  NcutOptions o;
  o.k = 4;
  o.method = NcutMethod::Exact;
  const NcutResult a = ncut(x, o), b = ncut(btd, o), c = ncut(nchw, o);
  EXPECT_TRUE(allclose(b.eigenvectors, a.eigenvectors, 0, 1e-13));
  EXPECT_TRUE(allclose(c.eigenvectors, a.eigenvectors, 0, 1e-13));
  EXPECT_DOUBLE_EQ(a.t, 1.0);  // the cosine default
}

TEST(SpectralNcut, RbfAutomaticSigma) {
  // N <= 1000: the FPS subsample for the search is every node, in another order, and the search is
  // order-independent, so the automatic sigma is the search on all of x.
  const Tensor x = blobs(300, 6, 3, 0.5, 27).x;
  NcutOptions o;
  o.k = 3;
  o.method = NcutMethod::Exact;
  o.affinity = Affinity::Rbf;
  const NcutResult r = ncut(x, o);
  EXPECT_NEAR(r.t, naive_sigma(to_eigen(x), 0.25, 0.5, 1e-2, 100), 1e-9 * r.t);
  o.sigma_quantile = 0.5;
  EXPECT_NEAR(ncut(x, o).t, naive_sigma(to_eigen(x), 0.5, 0.5, 1e-2, 100), 1e-9 * r.t);
}

TEST(SpectralNcut, NystromRecoversPlantedClusters) {
  const Blobs b = blobs(6000, 32, 6, 0.5, 28, DType::Float32);
  for (Sampling s : {Sampling::Fps, Sampling::Random}) {
    for (NcutMethod m : {NcutMethod::Nystrom, NcutMethod::Fowlkes}) {
      NcutOptions o;
      o.k = 6;
      o.method = m;
      o.samples = 300;
      o.knn = 10;
      o.sampling = s;
      o.t = 0.2;
      o.chunk = 1000;
      const NcutResult r = ncut(b.x, o);
      ASSERT_EQ(r.eigenvectors.shape(), (Shape{6000, 6}));
      EXPECT_EQ(r.eigenvectors.dtype(), DType::Float32);
      expect_finite(r.eigenvectors);
      expect_sign_convention(r.eigenvectors);
      EXPECT_EQ(r.sample_indices.numel(), 300);
      const double acc = cluster_accuracy(to_eigen(r.eigenvectors), b.label, 6);
      EXPECT_GT(acc, 0.999) << method_name(m) << " " << sampling_name(s);
      std::vector<float> ev = r.eigenvalues.to_vector<float>();
      EXPECT_TRUE(std::is_sorted(ev.rbegin(), ev.rend()));
      EXPECT_NEAR(ev[0], 1.0, 1e-3);
    }
  }
  // orthogonalize: orthonormal columns, same span
  NcutOptions o;
  o.k = 6;
  o.samples = 300;
  o.t = 0.2;
  const NcutResult plain = ncut(b.x, o);
  o.orthogonalize = true;
  const NcutResult orth = ncut(b.x, o);
  const MatrixXd v = to_eigen(orth.eigenvectors);
  EXPECT_LT((v.transpose() * v - MatrixXd::Identity(6, 6)).cwiseAbs().maxCoeff(), 1e-4);
  EXPECT_GT(principal_cosines(v, to_eigen(plain.eigenvectors)).minCoeff(), 1 - 1e-4);
  expect_sign_convention(orth.eigenvectors);
  // determinism for a seed
  o.orthogonalize = false;
  EXPECT_TRUE(allclose(ncut(b.x, o).eigenvectors, plain.eigenvectors, 0, 0));
}

TEST(SpectralNcut, BadInputs) {
  const Tensor x = cortex::testing::randn({50, 4}, 29);
  EXPECT_CORTEX_ERROR(ncut(x, {.k = 51, .method = NcutMethod::Exact}), "k <= N, found k = 51 for N = 50");
  EXPECT_CORTEX_ERROR(ncut(x, {.k = 11, .samples = 10}), "k <= m, the number of samples, found k = 11 and m = 10");
  EXPECT_CORTEX_ERROR(ncut(x, {.k = 11, .method = NcutMethod::Fowlkes, .samples = 10}), "k <= m");
  EXPECT_CORTEX_ERROR(ncut(x, {.k = 0}), "k >= 1");
  EXPECT_CORTEX_ERROR(ncut(x, {.k = 2, .samples = 0}), "samples >= 1");
  EXPECT_CORTEX_ERROR(ncut(x, {.k = 2, .knn = 0}), "knn >= 1");
  EXPECT_CORTEX_ERROR(ncut(x, {.k = 2, .t = -1}), "t >= 0");
  EXPECT_CORTEX_ERROR(ncut(x, {.k = 2, .chunk = 0}), "chunk >= 1");
  EXPECT_CORTEX_ERROR(ncut(x, {.k = 2, .method = NcutMethod::Exact, .max_exact_nodes = 49}), "use method nystrom");
  EXPECT_CORTEX_ERROR(ncut(x.to(DType::Int32), {.k = 2}), "float32 or float64");
  EXPECT_CORTEX_ERROR(ncut(zeros({0, 4}), {.k = 1}), "at least one node");
  MatrixXd bad = to_eigen(x);
  bad(31, 2) = std::nan("");
  EXPECT_CORTEX_ERROR(ncut(from_eigen(bad), {.k = 2, .samples = 10}), "finite values in features, found nan in row 31");
  EXPECT_CORTEX_ERROR(ncut(from_eigen(bad).reshape({2, 25, 4}), {.k = 2}), "row 31");
  EXPECT_STREQ(method_name(NcutMethod::Fowlkes), "fowlkes");
}

TEST(SpectralNcut, ConstantAndZeroFeaturesNeverNaN) {
  // Every node identical: W = 1 everywhere (rbf, or cosine of equal non-zero rows), A = 11^T / N of
  // rank 1, eigenvalues 1, 0, ... All-zero rows under cosine: W = exp(-1/t) off the diagonal (cosine
  // 0) and 1 on it, full rank. Either way: finite output, top pair (1, const).
  for (double value : {0.0, 3.0}) {
    for (Affinity kind : {Affinity::Cosine, Affinity::Rbf}) {
      const bool rank_one = !(value == 0.0 && kind == Affinity::Cosine);
      for (NcutMethod m : {NcutMethod::Exact, NcutMethod::Nystrom, NcutMethod::Fowlkes}) {
        const Tensor x = full({200, 5}, value, DType::Float32);
        NcutOptions o;
        o.k = 4;
        o.method = m;
        o.samples = 50;
        o.affinity = kind;
        if (m == NcutMethod::Fowlkes && rank_one) {
          // the Nystrom approximation of a rank-1 graph has one positive eigenvalue: k = 1 only
          o.k = 1;
          EXPECT_CORTEX_ERROR(ncut(x, NcutOptions{.k = 2, .method = m, .samples = 50, .affinity = kind}),
                              "positive eigenvalues");
        }
        const NcutResult r = ncut(x, o);
        expect_finite(r.eigenvectors);
        expect_finite(r.eigenvalues);
        EXPECT_NEAR(r.eigenvalues.at({0}), 1.0, 1e-4);
        if (rank_one) {
          for (int64_t j = 1; j < o.k; ++j) EXPECT_NEAR(r.eigenvalues.at({j}), 0.0, 1e-4);
        }
        // the top vector is constant: every node is alike (Fowlkes on the full-rank zero-row graph
        // excepted: its approximation keeps the sampled nodes' self-loops only, so their degrees differ)
        const MatrixXd v = to_eigen(r.eigenvectors);
        if (rank_one || m != NcutMethod::Fowlkes) {
          EXPECT_LT(v.col(0).maxCoeff() - v.col(0).minCoeff(), 1e-5);
        }
        if (kind == Affinity::Rbf) {
          EXPECT_EQ(r.t, 1.0);  // the documented sigma fallback
        }
      }
    }
  }
}

// Nystrom against the exact solution at the size stated in the issue (N = 20,000): the mean cosine of
// the principal angles between the top-10 subspaces, printed for several m, both samplings and, at
// m = 2048, several K (docs/spectral.md has the table). Ten planted clusters with overlapping noise,
// so that the top-10 subspace is well defined (the 10 cluster indicators) but not trivially found.
// Asserted: AlignedCut above 0.975 (its KNN average is a low-pass filter: it cannot reproduce the
// node-to-node variation inside a cluster, so it levels off below 1 however large m is), Fowlkes
// above 0.998 from m = 256 and 0.9999 from m = 1024, and every planted cluster recovered.
TEST(NcutNystrom, PrincipalAnglesVsExactN20000) {
  const int64_t N = 20000, k = 10;
  const Blobs b = blobs(N, 32, 10, 0.8, 30, DType::Float32);
  NcutOptions o;
  o.k = k;
  o.t = 0.25;
  o.method = NcutMethod::Exact;
  const NcutResult ex = ncut(b.x, o);
  ASSERT_TRUE(ex.solve.converged);
  const MatrixXd ve = to_eigen(ex.eigenvectors);
  std::printf("[ spectral ] N = %lld, d = 32, 10 clusters, cosine t = 0.25, k = 10: exact %.2f s (affinity %.2f s, "
              "eigensolve %.2f s), lambda_1 = %.4f, lambda_10 = %.4f\n",
              (long long)N, ex.timings.total, ex.timings.affinity, ex.timings.eigensolve, ex.eigenvalues.at({0}),
              ex.eigenvalues.at({k - 1}));
  EXPECT_GT(cluster_accuracy(ve, b.label, 10), 0.999);
  auto run = [&](NcutMethod m, int64_t samples, Sampling s, int64_t knn) {
    o.method = m;
    o.samples = samples;
    o.sampling = s;
    o.knn = knn;
    const NcutResult r = ncut(b.x, o);
    const VectorXd c = principal_cosines(to_eigen(r.eigenvectors), ve);
    const double acc = cluster_accuracy(to_eigen(r.eigenvectors), b.label, 10);
    std::printf("[ spectral ] %-7s m = %4lld %-6s K = %2lld: mean cos %.5f, min cos %.5f, cluster acc %.4f, %.2f s\n",
                method_name(m), (long long)samples, sampling_name(s), (long long)knn, c.mean(), c.minCoeff(), acc,
                r.timings.total);
    EXPECT_GT(acc, 0.999) << method_name(m) << " m = " << samples;
    if (m == NcutMethod::Nystrom) {
      EXPECT_GT(c.mean(), 0.975) << "m = " << samples << ", K = " << knn;
    } else {
      EXPECT_GT(c.mean(), samples >= 1024 ? 0.9999 : 0.998) << "m = " << samples;
    }
  };
  for (int64_t samples : {256, 512, 1024, 2048})
    for (Sampling s : {Sampling::Fps, Sampling::Random}) run(NcutMethod::Nystrom, samples, s, 10);
  for (int64_t knn : {1, 3, 30}) run(NcutMethod::Nystrom, 2048, Sampling::Fps, knn);
  for (int64_t samples : {256, 512, 1024})
    for (Sampling s : {Sampling::Fps, Sampling::Random}) run(NcutMethod::Fowlkes, samples, s, 10);
  run(NcutMethod::Fowlkes, 2048, Sampling::Fps, 10);
}

// NcutOptions::search_dims: the propagation's neighbour search on the sample's top principal axes.
// On clustered data whose clusters live in a few directions, 16 of 96 dimensions keep the subspace
// (against the exact solve, as close as the full search); search_dims >= d is the full search bit for
// bit; rbf and negative values are refused.
TEST(NcutNystrom, ProjectedNeighbourSearchKeepsTheSubspace) {
  const int64_t N = 12000, k = 10;
  const Blobs b = blobs(N, 96, 10, 0.8, 31, DType::Float32);
  NcutOptions o;
  o.k = k, o.t = 0.25, o.method = NcutMethod::Exact;
  const MatrixXd ve = to_eigen(ncut(b.x, o).eigenvectors);
  o.method = NcutMethod::Nystrom, o.samples = 1024;
  const NcutResult full = ncut(b.x, o);
  o.search_dims = 16;
  const NcutResult proj = ncut(b.x, o);
  const VectorXd cf = principal_cosines(to_eigen(full.eigenvectors), ve), cp = principal_cosines(to_eigen(proj.eigenvectors), ve);
  std::printf("[ spectral ] search on 16 of 96 dims: mean cos %.5f (all dims %.5f), propagate %.3f s (all dims %.3f s)\n",
              cp.mean(), cf.mean(), proj.timings.propagate, full.timings.propagate);
  EXPECT_GT(cp.mean(), 0.975);
  EXPECT_GT(cp.mean(), cf.mean() - 0.005);
  EXPECT_GT(cluster_accuracy(to_eigen(proj.eigenvectors), b.label, 10), 0.999);
  o.search_dims = 96;  // >= d: all features
  const NcutResult same = ncut(b.x, o);
  EXPECT_EQ(0, std::memcmp(same.eigenvectors.raw_data(), full.eigenvectors.raw_data(),
                           size_t(full.eigenvectors.numel()) * full.eigenvectors.element_size()));
  o.search_dims = -1;
  EXPECT_THROW(ncut(b.x, o), Error);
  o.search_dims = 8, o.affinity = Affinity::Rbf;
  EXPECT_THROW(ncut(b.x, o), Error);
}

// ---------------------------------------------------------------------------------------------
// Colouring

TEST(SpectralColour, QuantileNormalizeMatchesNaive) {
  const MatrixXd x = to_eigen(cortex::testing::randn({101, 3}, 31));
  const Tensor got = quantile_normalize(from_eigen(x), 0.9);
  ASSERT_EQ(got.dtype(), DType::Float32);
  for (int64_t c = 0; c < 3; ++c) {
    std::vector<double> col(x.col(c).data(), x.col(c).data() + 101);
    std::sort(col.begin(), col.end());
    auto q = [&](double p) {
      const double pos = p * 100;
      const int64_t lo = int64_t(pos);
      return col[lo] + (pos - double(lo)) * (col[std::min<int64_t>(lo + 1, 100)] - col[lo]);
    };
    const double hi = q(0.9), lo = q(0.1);
    for (int64_t i = 0; i < 101; ++i)
      EXPECT_NEAR(got.at({i, c}), std::clamp((x(i, c) - lo) / (hi - lo), 0.0, 1.0), 1e-6);
  }
  MatrixXd cst = x;
  cst.col(1).setConstant(2.0);
  const Tensor g2 = quantile_normalize(from_eigen(cst));
  for (int64_t i = 0; i < 101; ++i) EXPECT_EQ(g2.at({i, 1}), 0.5);
  EXPECT_CORTEX_ERROR(quantile_normalize(from_eigen(x), 0.5), "q in (0.5, 1]");
}

TEST(SpectralColour, TsneSeparatesClusters) {
  const Blobs b = blobs(150, 10, 3, 0.3, 32);
  TsneOptions o;
  o.perplexity = 20;
  o.iterations = 400;
  const Tensor y = tsne(b.x, o);
  ASSERT_EQ(y.shape(), (Shape{150, 3}));
  expect_finite(y);
  EXPECT_TRUE(allclose(tsne(b.x, o), y, 0, 0));  // deterministic (PCA start)
  // every point's nearest neighbour in the embedding is from its own cluster
  const MatrixXd e = to_eigen(y);
  int64_t same = 0;
  for (int64_t i = 0; i < 150; ++i) {
    double best = INFINITY;
    int64_t bi = -1;
    for (int64_t j = 0; j < 150; ++j)
      if (j != i && (e.row(i) - e.row(j)).squaredNorm() < best) {
        best = (e.row(i) - e.row(j)).squaredNorm();
        bi = j;
      }
    same += b.label[bi] == b.label[i];
  }
  EXPECT_EQ(same, 150);
  // Weak structure (isotropic noise) at a high perplexity: the exaggerated phase contracts the
  // embedding towards a point; the gradient-norm check must end that phase so the rest can expand
  // it again (a regression: the colours of unstructured features came out as one grey).
  TsneOptions wide;
  wide.iterations = 400;
  const Tensor noise = tsne(cortex::testing::randn({400, 20}, 34), wide);
  const MatrixXd en = to_eigen(noise);
  for (int64_t e = 0; e < 3; ++e) EXPECT_GT(en.col(e).maxCoeff() - en.col(e).minCoeff(), 1.0) << "axis " << e;
  o.metric = TsneMetric::Euclidean;
  o.dims = 2;
  EXPECT_EQ(tsne(b.x, o).shape(), (Shape{150, 2}));
  // degenerate input (all rows equal): a small random start, finite output
  o.iterations = 50;
  expect_finite(tsne(ones({20, 4}, DType::Float64), o));
  EXPECT_CORTEX_ERROR(tsne(ones({1, 4}), o), "at least 2 points");
  o.dims = 4;
  EXPECT_CORTEX_ERROR(tsne(b.x, o), "dims in [1, 3]");
}

TEST(SpectralColour, ColourEigenvectorsImagesAndPngs) {
  const Blobs b = blobs(2 * 8 * 10, 6, 3, 0.3, 33);  // B = 2 images of 8 x 10 nodes
  const NcutResult r = ncut(b.x, {.k = 5, .method = NcutMethod::Exact, .t = 0.3});
  ColourOptions o;
  o.samples = 60;
  o.tsne.perplexity = 10;
  o.tsne.iterations = 300;
  const Colouring c = colour_eigenvectors(r.eigenvectors, o);
  ASSERT_EQ(c.rgb.shape(), (Shape{160, 3}));
  EXPECT_EQ(c.rgb.dtype(), DType::Float32);
  EXPECT_EQ(c.embedding.shape(), (Shape{160, 3}));
  for (float v : c.rgb.to_vector<float>()) EXPECT_TRUE(v >= 0 && v <= 1);
  const std::vector<int64_t> idx = c.sample_indices.to_vector<int64_t>();
  EXPECT_EQ(std::set<int64_t>(idx.begin(), idx.end()).size(), 60u);
  // knn = 1: a sampled node keeps its own t-SNE coordinates; the rgb is the quantile map of them
  Tensor sub = empty({60, 5}, DType::Float64);
  for (int64_t i = 0; i < 60; ++i) sub.select(0, i).copy_(r.eigenvectors.select(0, idx[i]));
  const Tensor emb = tsne(sub, o.tsne);
  for (int64_t i = 0; i < 60; ++i)
    for (int64_t e = 0; e < 3; ++e) EXPECT_EQ(c.embedding.at({idx[i], e}), emb.at({i, e}));
  EXPECT_TRUE(allclose(c.rgb, quantile_normalize(c.embedding, 0.95), 0, 0));

  const Tensor img = to_images(c.rgb, 2, 8, 10);
  ASSERT_EQ(img.shape(), (Shape{2, 8, 10, 3}));
  EXPECT_EQ(img.dtype(), DType::UInt8);
  for (int64_t e = 0; e < 3; ++e)
    EXPECT_EQ(img.at({1, 3, 7, e}), std::lround(c.rgb.at({(1 * 8 + 3) * 10 + 7, e}) * 255.0));
  TempDir dir;
  const std::vector<std::string> paths = write_pngs(img, dir / "seg");
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[1], dir / "seg_0001.png");
  const Tensor back = io::read_image(paths[1]);
  EXPECT_TRUE(allclose(back, img.select(0, 1), 0, 0));

  EXPECT_CORTEX_ERROR(to_images(c.rgb, 2, 8, 9), "N = B * H * W");
  EXPECT_CORTEX_ERROR(to_images(zeros({4, 2}), 1, 2, 2), "shape (N, 3)");
  EXPECT_CORTEX_ERROR(write_pngs(zeros({1, 2, 2, 3}), "x"), "uint8 images");
  ColourOptions bad = o;
  bad.tsne.dims = 2;
  EXPECT_CORTEX_ERROR(colour_eigenvectors(r.eigenvectors, bad), "tsne.dims = 3");
  bad = o;
  bad.samples = 1;
  EXPECT_CORTEX_ERROR(colour_eigenvectors(r.eigenvectors, bad), "samples >= 2");
  EXPECT_CORTEX_ERROR(colour_eigenvectors(r.eigenvectors.slice(0, 0, 1), o), "at least 2 rows");
}
