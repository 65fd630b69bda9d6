// eigh, eigh_topk, svd, cholesky, solve, cholesky_solve and qr, checked by float64 loops written
// here: the factors rebuild the input (A v = lambda v, U S Vh = A, L L^T = A, Q R = A, A x = b),
// the factors are orthonormal / triangular as promised, values are sorted, eigenvector signs
// follow the convention, on Philox-drawn odd sizes, strided views, size-0 and size-1 matrices,
// float32 and float64; and every input error (shapes, dtypes, not symmetric, not positive
// definite, singular, NaN/Inf).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/linalg.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
namespace ct = cortex::testing;

namespace {

// A dense float64 matrix for the reference arithmetic.
struct M {
  int64_t r = 0, c = 0;
  std::vector<double> v;
  M(int64_t rows, int64_t cols) : r(rows), c(cols), v(rows * cols, 0.0) {}
  explicit M(const Tensor& t) : r(t.size(0)), c(t.dim() == 2 ? t.size(1) : 1) {
    v = t.to(DType::Float64).contiguous().to_vector<double>();
  }
  double& operator()(int64_t i, int64_t j) { return v[i * c + j]; }
  double operator()(int64_t i, int64_t j) const { return v[i * c + j]; }
};

M mul(const M& a, const M& b, bool ta = false, bool tb = false) {
  const int64_t m = ta ? a.c : a.r, k = ta ? a.r : a.c, n = tb ? b.r : b.c;
  M out(m, n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t z = 0; z < k; ++z) s += (ta ? a(z, i) : a(i, z)) * (tb ? b(j, z) : b(z, j));
      out(i, j) = s;
    }
  return out;
}

double max_abs(const M& a) {
  double m = 0;
  for (double x : a.v) m = std::max(m, std::abs(x));
  return m;
}

// max |a - b| <= tol * max(1, max |b|)
::testing::AssertionResult near(const M& a, const M& b, double tol) {
  if (a.r != b.r || a.c != b.c)
    return ::testing::AssertionFailure() << "shapes " << a.r << "x" << a.c << " vs " << b.r << "x" << b.c;
  double d = 0;
  for (size_t i = 0; i < a.v.size(); ++i) d = std::max(d, std::abs(a.v[i] - b.v[i]));
  if (d <= tol * std::max(1.0, max_abs(b))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |diff| " << d << " > " << tol << " * " << std::max(1.0, max_abs(b));
}

M identity(int64_t n) {
  M e(n, n);
  for (int64_t i = 0; i < n; ++i) e(i, i) = 1;
  return e;
}

double tol_of(DType dt, int64_t n) { return (dt == DType::Float64 ? 1e-12 : 2e-5) * std::max<int64_t>(n, 1); }

// Symmetric (x + x^T) / 2 of a standard normal x.
Tensor sym(int64_t n, uint64_t seed, DType dt) {
  M x(ct::randn({n, n}, seed));
  std::vector<double> s(n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) s[i * n + j] = 0.5 * (x(i, j) + x(j, i));
  return from_vector(s, {n, n}, dt);
}
// Symmetric positive definite x x^T / n + I.
Tensor spd(int64_t n, uint64_t seed, DType dt) {
  M x(ct::randn({n, n}, seed));
  M a = mul(x, x, false, true);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a(i, j) = a(i, j) / n + (i == j ? 1.0 : 0.0);
  return from_vector(a.v, {n, n}, dt);
}

// Each column's sum is positive, or (sum ~ 0) its first non-negligible entry is. Sums between
// the two bounds may be either rounding noise or real, so they are not judged.
void expect_sign_convention(const M& v, DType dt) {
  const double tie = dt == DType::Float64 ? 1e-12 : 1e-5, real = dt == DType::Float64 ? 1e-8 : 1e-3;
  for (int64_t j = 0; j < v.c; ++j) {
    double s = 0;
    for (int64_t i = 0; i < v.r; ++i) s += v(i, j);
    if (std::abs(s) > real) {
      EXPECT_GT(s, 0) << "column " << j;
    } else if (std::abs(s) < tie) {
      for (int64_t i = 0; i < v.r; ++i)
        if (std::abs(v(i, j)) > real) {
          EXPECT_GT(v(i, j), 0) << "column " << j << " first non-zero entry " << i;
          break;
        }
    }
  }
}

// A v = v diag(lambda), v^T v = I.
void expect_eigenpairs(const Tensor& a, const Tensor& vals, const Tensor& vecs, DType dt) {
  const M am(a), lm(vals), vm(vecs);
  const int64_t n = am.r, k = vm.c;
  M vl = vm;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < k; ++j) vl(i, j) *= lm(j, 0);
  EXPECT_TRUE(near(mul(am, vm), vl, tol_of(dt, n))) << "A v = v lambda";
  EXPECT_TRUE(near(mul(vm, vm, true), identity(k), tol_of(dt, n))) << "v^T v = I";
  expect_sign_convention(vm, dt);
}

const DType kFloats[] = {DType::Float32, DType::Float64};
const int64_t kSizes[] = {1, 2, 5, 17, 33};

}  // namespace

TEST(Eigh, ReconstructsAndSorts) {
  uint64_t seed = 10;
  for (DType dt : kFloats)
    for (int64_t n : kSizes) {
      SCOPED_TRACE("n " + std::to_string(n) + " " + dtype_name(dt));
      const Tensor a = sym(n, ++seed, dt);
      for (const Tensor& in : {a, ct::noncontig(a), a.t()}) {
        const K::Eigh e = K::eigh(in);
        EXPECT_EQ(e.values.shape(), (Shape{n}));
        EXPECT_EQ(e.vectors.shape(), (Shape{n, n}));
        EXPECT_EQ(e.values.dtype(), dt);
        const M l(e.values);
        for (int64_t i = 1; i < n; ++i) EXPECT_LE(l(i - 1, 0), l(i, 0)) << "ascending";
        expect_eigenpairs(a, e.values, e.vectors, dt);
        // trace = sum of eigenvalues
        double tr = 0, sum = 0;
        for (int64_t i = 0; i < n; ++i) tr += M(a)(i, i), sum += l(i, 0);
        EXPECT_NEAR(tr, sum, tol_of(dt, n) * 10);
      }
    }
  EXPECT_EQ(K::eigh(zeros({0, 0})).vectors.shape(), (Shape{0, 0}));
}

TEST(Eigh, SignConventionTies) {
  // Path-graph Laplacian: every eigenvector but the constant one sums to zero, so the first
  // non-zero entry decides; the constant one must come out positive.
  const int64_t n = 9;
  std::vector<double> lap(n * n, 0.0);
  for (int64_t i = 0; i + 1 < n; ++i) {
    lap[i * n + i + 1] = lap[(i + 1) * n + i] = -1;
    lap[i * n + i] += 1;
    lap[(i + 1) * n + i + 1] += 1;
  }
  for (DType dt : kFloats) {
    const Tensor a = from_vector(lap, {n, n}, dt);
    const K::Eigh e = K::eigh(a);
    const M v(e.vectors);
    for (int64_t i = 0; i < n; ++i) EXPECT_GT(v(i, 0), 0) << "constant eigenvector positive";
    for (int64_t j = 1; j < n; ++j) {
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += v(i, j);
      EXPECT_NEAR(s, 0, 1e-4);
      EXPECT_GT(v(0, j), 1e-3) << "column " << j << ": first entry positive";
    }
    expect_eigenpairs(a, e.values, e.vectors, dt);
    // A diagonal matrix with negative entries: the eigenvectors are +e_i, never -e_i.
    const Tensor d = from_vector(std::vector<double>{-3, 0, 0, 0, 2, 0, 0, 0, -1}, {3, 3}, dt);
    const M dv(K::eigh(d).vectors);
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t i = 0; i < 3; ++i) EXPECT_GE(dv(i, j), 0);
  }
}

TEST(EighTopk, LargestAndSmallest) {
  uint64_t seed = 40;
  for (DType dt : kFloats)
    for (int64_t n : {1, 6, 25}) {
      const Tensor a = sym(n, ++seed, dt);
      const M all(K::eigh(a).values);
      for (int64_t k : {int64_t(1), std::min<int64_t>(3, n), n}) {
        SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " " + dtype_name(dt));
        const K::Eigh big = K::eigh_topk(a, k, true), small = K::eigh_topk(ct::noncontig(a), k, false);
        EXPECT_EQ(big.values.shape(), (Shape{k}));
        EXPECT_EQ(big.vectors.shape(), (Shape{n, k}));
        const M lb(big.values), ls(small.values);
        for (int64_t j = 0; j < k; ++j) {
          EXPECT_NEAR(lb(j, 0), all(n - 1 - j, 0), tol_of(dt, n)) << "descending largest";
          EXPECT_NEAR(ls(j, 0), all(j, 0), tol_of(dt, n)) << "ascending smallest";
        }
        expect_eigenpairs(a, big.values, big.vectors, dt);
        expect_eigenpairs(a, small.values, small.vectors, dt);
      }
    }
  const K::Eigh none = K::eigh_topk(sym(4, 1, DType::Float64), 0);
  EXPECT_EQ(none.values.shape(), (Shape{0}));
  EXPECT_EQ(none.vectors.shape(), (Shape{4, 0}));
}

TEST(Eigh, Errors) {
  const Tensor a = sym(4, 1, DType::Float64);
  EXPECT_CORTEX_ERROR(K::eigh(ct::randn({3, 4}, 1)), "eigh: expected a to be square");
  EXPECT_CORTEX_ERROR(K::eigh(ct::randn({4}, 1)), "to be 2-D");
  EXPECT_CORTEX_ERROR(K::eigh(ct::randn({4, 4}, 1)), "expected a symmetric matrix");
  EXPECT_CORTEX_ERROR(K::eigh(a.to(DType::Int64)), "float32 or float64");
  Tensor bad = a.clone();
  bad.select(0, 2).select(0, 2).fill_(std::nan(""));
  EXPECT_CORTEX_ERROR(K::eigh(bad), "eigh: expected finite values");
  bad.select(0, 2).select(0, 2).fill_(INFINITY);
  EXPECT_CORTEX_ERROR(K::eigh(bad), "NaN or Inf");
  EXPECT_CORTEX_ERROR(K::eigh_topk(a, 5), "expected k in [0, 4]");
  EXPECT_CORTEX_ERROR(K::eigh_topk(a, -1), "expected k in [0, 4]");
  EXPECT_CORTEX_ERROR(K::eigh_topk(bad, 2), "eigh_topk: expected finite values");
  EXPECT_CORTEX_ERROR(K::eigh_topk(ct::randn({3, 4}, 1), 1), "square");
}

TEST(Svd, ReconstructsAndSorts) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{5, 3}, {3, 5}, {7, 7}, {1, 4}, {4, 1}, {1, 1}, {41, 23}, {19, 37}};
  uint64_t seed = 60;
  for (DType dt : kFloats)
    for (auto [m, n] : shapes) {
      SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + " " + dtype_name(dt));
      const Tensor a = ct::randn({m, n}, ++seed, dt);
      const int64_t r = std::min(m, n);
      for (const Tensor& in : {a, ct::noncontig(a), a.t().contiguous().t()}) {
        const K::Svd s = K::svd(in);
        EXPECT_EQ(s.u.shape(), (Shape{m, r}));
        EXPECT_EQ(s.s.shape(), (Shape{r}));
        EXPECT_EQ(s.vh.shape(), (Shape{r, n}));
        const M u(s.u), sv(s.s), vh(s.vh);
        for (int64_t i = 0; i < r; ++i) {
          EXPECT_GE(sv(i, 0), 0);
          if (i) {
            EXPECT_GE(sv(i - 1, 0), sv(i, 0)) << "descending";
          }
        }
        M us = u;
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < r; ++j) us(i, j) *= sv(j, 0);
        EXPECT_TRUE(near(mul(us, vh), M(a), tol_of(dt, std::max(m, n)))) << "U S Vh = A";
        EXPECT_TRUE(near(mul(u, u, true), identity(r), tol_of(dt, m))) << "U^T U = I";
        EXPECT_TRUE(near(mul(vh, vh, false, true), identity(r), tol_of(dt, n))) << "Vh Vh^T = I";
      }
    }
  // Rank 2 (6, 5): two non-zero singular values, still an exact reconstruction.
  M x(ct::randn({6, 2}, 1)), y(ct::randn({2, 5}, 2));
  const M low = mul(x, y);
  const Tensor lt = from_vector(low.v, {6, 5}, DType::Float64);
  const K::Svd s = K::svd(lt);
  const M sv(s.s);
  EXPECT_LT(sv(2, 0), 1e-12 * sv(0, 0));
  M us(s.u);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t j = 0; j < 5; ++j) us(i, j) *= sv(j, 0);
  EXPECT_TRUE(near(mul(us, M(s.vh)), low, 1e-12));
  // empty
  const K::Svd e = K::svd(zeros({0, 3}, DType::Float64));
  EXPECT_EQ(e.u.shape(), (Shape{0, 0}));
  EXPECT_EQ(e.s.shape(), (Shape{0}));
  EXPECT_EQ(e.vh.shape(), (Shape{0, 3}));
  // errors
  EXPECT_CORTEX_ERROR(K::svd(ct::randn({2, 3, 4}, 1)), "svd: expected a to be 2-D");
  EXPECT_CORTEX_ERROR(K::svd(ct::randn({3, 4}, 1).to(DType::Int32)), "float32 or float64");
  Tensor bad = ct::randn({3, 4}, 1);
  bad.select(0, 1).select(0, 1).fill_(std::nan(""));
  EXPECT_CORTEX_ERROR(K::svd(bad), "svd: expected finite values");
}

TEST(Cholesky, ReconstructsAndErrors) {
  uint64_t seed = 80;
  for (DType dt : kFloats)
    for (int64_t n : kSizes) {
      SCOPED_TRACE("n " + std::to_string(n) + " " + dtype_name(dt));
      const Tensor a = spd(n, ++seed, dt);
      for (const Tensor& in : {a, ct::noncontig(a)}) {
        const Tensor l = K::cholesky(in);
        EXPECT_EQ(l.shape(), (Shape{n, n}));
        const M lm(l);
        for (int64_t i = 0; i < n; ++i) {
          EXPECT_GT(lm(i, i), 0);
          for (int64_t j = i + 1; j < n; ++j) EXPECT_EQ(lm(i, j), 0.0) << "upper triangle zero";
        }
        EXPECT_TRUE(near(mul(lm, lm, false, true), M(a), tol_of(dt, n))) << "L L^T = A";
      }
    }
  EXPECT_EQ(K::cholesky(zeros({0, 0})).shape(), (Shape{0, 0}));
  const Tensor indef = from_vector(std::vector<double>{1, 2, 2, 1}, {2, 2});
  EXPECT_CORTEX_ERROR(K::cholesky(indef), "cholesky: expected a symmetric positive definite matrix");
  EXPECT_CORTEX_ERROR(K::cholesky(zeros({3, 3}, DType::Float64)), "positive definite");
  EXPECT_CORTEX_ERROR(K::cholesky(ct::randn({4, 4}, 1)), "expected a symmetric matrix");
  EXPECT_CORTEX_ERROR(K::cholesky(ct::randn({3, 4}, 1)), "square");
  Tensor bad = spd(3, 1, DType::Float64);
  bad.select(0, 0).select(0, 0).fill_(std::nan(""));
  EXPECT_CORTEX_ERROR(K::cholesky(bad), "cholesky: expected finite values");
}

TEST(Solve, ResidualAndErrors) {
  uint64_t seed = 100;
  for (DType dt : kFloats)
    for (int64_t n : kSizes) {
      SCOPED_TRACE("n " + std::to_string(n) + " " + dtype_name(dt));
      // random + n I: well conditioned
      M am(ct::randn({n, n}, ++seed));
      for (int64_t i = 0; i < n; ++i) am(i, i) += n;
      const Tensor a = from_vector(am.v, {n, n}, dt);
      for (const Shape& bs : {Shape{n}, Shape{n, 1}, Shape{n, 4}}) {
        const Tensor b = ct::randn(bs, ++seed, dt);
        for (bool strided : {false, true}) {
          const Tensor x = strided ? K::solve(ct::noncontig(a), ct::noncontig(b)) : K::solve(a, b);
          EXPECT_EQ(x.shape(), bs);
          EXPECT_EQ(x.dtype(), dt);
          EXPECT_TRUE(near(mul(M(a), M(x)), M(b), tol_of(dt, n) * 10)) << "A x = b";
        }
      }
    }
  EXPECT_EQ(K::solve(zeros({0, 0}), zeros({0, 3})).shape(), (Shape{0, 3}));
  EXPECT_EQ(K::solve(eye(2), zeros({2, 0})).shape(), (Shape{2, 0}));
  // singular: zero, rank-deficient, numerically singular
  EXPECT_CORTEX_ERROR(K::solve(zeros({3, 3}, DType::Float64), ct::randn({3}, 1)), "solve: expected a non-singular");
  EXPECT_CORTEX_ERROR(K::solve(from_vector(std::vector<double>{1, 2, 2, 4}, {2, 2}), ct::randn({2}, 1)),
                      "non-singular");
  // non-zero pivots but a condition number of 1e20
  EXPECT_CORTEX_ERROR(K::solve(from_vector(std::vector<double>{1, 0, 0, 1e-20}, {2, 2}), ct::randn({2}, 3)),
                      "reciprocal condition number");
  EXPECT_CORTEX_ERROR(K::solve(from_vector(std::vector<float>{1, 1, 1, 1.00000001f}, {2, 2}),
                               ct::randn({2}, 1, DType::Float32)),
                      "non-singular");
  // shapes, dtypes, NaN
  const Tensor a = eye(3, -1, DType::Float64);
  EXPECT_CORTEX_ERROR(K::solve(a, ct::randn({4}, 1)), "solve: expected b with 3 rows");
  EXPECT_CORTEX_ERROR(K::solve(a, ct::randn({3, 2, 1}, 1)), "b of shape (n) or (n, k)");
  EXPECT_CORTEX_ERROR(K::solve(ct::randn({3, 4}, 1), ct::randn({3}, 1)), "square");
  EXPECT_CORTEX_ERROR(K::solve(a, ct::randn({3}, 1, DType::Float32)), "one dtype");
  Tensor bad = ct::randn({3}, 1);
  bad.select(0, 1).fill_(std::nan(""));
  EXPECT_CORTEX_ERROR(K::solve(a, bad), "solve: expected finite values in b");
}

TEST(CholeskySolve, ResidualAndErrors) {
  uint64_t seed = 120;
  for (DType dt : kFloats)
    for (int64_t n : kSizes) {
      SCOPED_TRACE("n " + std::to_string(n) + " " + dtype_name(dt));
      const Tensor a = spd(n, ++seed, dt);
      const Tensor l = K::cholesky(a);
      // The upper triangle of l is not read: filling it must not change the answer.
      M lg(l);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = i + 1; j < n; ++j) lg(i, j) = 7.0;
      const Tensor l_garbage = from_vector(lg.v, {n, n}, dt);
      for (const Shape& bs : {Shape{n}, Shape{n, 3}}) {
        const Tensor b = ct::randn(bs, ++seed, dt);
        for (const Tensor& x : {K::cholesky_solve(l, b), K::cholesky_solve(ct::noncontig(l_garbage), ct::noncontig(b))}) {
          EXPECT_EQ(x.shape(), bs);
          EXPECT_TRUE(near(mul(M(a), M(x)), M(b), tol_of(dt, n) * 10)) << "A x = b";
        }
      }
    }
  const Tensor l = from_vector(std::vector<double>{1, 0, 2, 0}, {2, 2});
  EXPECT_CORTEX_ERROR(K::cholesky_solve(l, ct::randn({2}, 1)), "cholesky_solve: expected a factor with a non-zero diagonal");
  EXPECT_CORTEX_ERROR(K::cholesky_solve(eye(2, -1, DType::Float64), ct::randn({3}, 1)), "b with 2 rows");
  EXPECT_CORTEX_ERROR(K::cholesky_solve(ct::randn({2, 3}, 1), ct::randn({2}, 1)), "square");
  Tensor bad = eye(2, -1, DType::Float64);
  bad.select(0, 1).select(0, 0).fill_(std::nan(""));
  EXPECT_CORTEX_ERROR(K::cholesky_solve(bad, ct::randn({2}, 1)), "expected finite values in l");
}

TEST(Qr, ReconstructsAndErrors) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{5, 3}, {3, 5}, {7, 7}, {1, 4}, {4, 1}, {1, 1}, {41, 23}};
  uint64_t seed = 140;
  for (DType dt : kFloats)
    for (auto [m, n] : shapes) {
      SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(n) + " " + dtype_name(dt));
      const Tensor a = ct::randn({m, n}, ++seed, dt);
      const int64_t r = std::min(m, n);
      for (const Tensor& in : {a, ct::noncontig(a)}) {
        const K::Qr f = K::qr(in);
        EXPECT_EQ(f.q.shape(), (Shape{m, r}));
        EXPECT_EQ(f.r.shape(), (Shape{r, n}));
        const M q(f.q), rr(f.r);
        for (int64_t i = 0; i < r; ++i) {
          EXPECT_GE(rr(i, i), 0) << "diag(r) >= 0";
          for (int64_t j = 0; j < i; ++j) EXPECT_EQ(rr(i, j), 0.0) << "r upper triangular";
        }
        EXPECT_TRUE(near(mul(q, rr), M(a), tol_of(dt, m))) << "Q R = A";
        EXPECT_TRUE(near(mul(q, q, true), identity(r), tol_of(dt, m))) << "Q^T Q = I";
      }
    }
  const K::Qr e = K::qr(zeros({3, 0}, DType::Float64));
  EXPECT_EQ(e.q.shape(), (Shape{3, 0}));
  EXPECT_EQ(e.r.shape(), (Shape{0, 0}));
  EXPECT_CORTEX_ERROR(K::qr(ct::randn({3}, 1)), "qr: expected a to be 2-D");
  EXPECT_CORTEX_ERROR(K::qr(ct::randn({3, 3}, 1).to(DType::UInt8)), "float32 or float64");
  Tensor bad = ct::randn({3, 3}, 1);
  bad.select(0, 2).select(0, 0).fill_(-INFINITY);
  EXPECT_CORTEX_ERROR(K::qr(bad), "qr: expected finite values");
}
