// models/readouts/ridge: the SVD solution against the normal equations in float64 (n > p and
// n < p), the CV scores, penalties, weights and intercepts against a brute-force float64 refit per
// fold and penalty (primal and dual forms, odd sizes, large means), voxel-batch invariance, the
// float32 path against the float64 one, constant voxels, recovery of a planted penalty, and input
// errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>

#include "kernels/linalg.h"
#include "kernels/matmul.h"
#include "models/readouts/ridge.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::models;
using cortex::testing::allclose;

namespace {

Tensor rnd(const Shape& s, uint64_t seed) { return cortex::testing::randn(s, seed, DType::Float64); }

// (X^T X + a I)^-1 X^T y on centred data, with the intercept ymean - xmean W: the textbook reference.
Ridge normal_equations(const Tensor& X, const Tensor& Y, double alpha) {
  const int64_t n = X.size(0), p = X.size(1), v = Y.size(1);
  auto x = X.to_vector<double>(), y = Y.to_vector<double>();
  std::vector<double> mx(p, 0), my(v, 0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < p; ++k) mx[k] += x[i * p + k] / n;
    for (int64_t j = 0; j < v; ++j) my[j] += y[i * v + j] / n;
  }
  std::vector<double> a(p * p, 0), b(p * v, 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < p; ++k) {
      const double xk = x[i * p + k] - mx[k];
      for (int64_t l = 0; l < p; ++l) a[k * p + l] += xk * (x[i * p + l] - mx[l]);
      for (int64_t j = 0; j < v; ++j) b[k * v + j] += xk * (y[i * v + j] - my[j]);
    }
  for (int64_t k = 0; k < p; ++k) a[k * p + k] += alpha;
  Tensor w = kernels::solve(from_vector(a, {p, p}), from_vector(b, {p, v}));
  auto wv = w.to_vector<double>();
  std::vector<double> icpt(v);
  for (int64_t j = 0; j < v; ++j) {
    double s = my[j];
    for (int64_t k = 0; k < p; ++k) s -= mx[k] * wv[k * v + j];
    icpt[j] = s;
  }
  return {w, from_vector(icpt, {v})};
}

// The folds of fit_ridge_cv: mt19937_64 shuffle, fold f is rows [n f / k, n (f+1) / k) of it.
std::vector<int64_t> shuffled_rows(int64_t n, uint64_t seed) {
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[static_cast<int64_t>(rng() % (i + 1))]);
  return perm;
}

// Brute-force CV in float64: the same folds, a fresh normal-equation fit per fold and penalty, R^2
// on the held-out fold (0 for a voxel constant there). Returns the (n_alphas, v) mean scores.
Tensor reference_cv_scores(const Tensor& X, const Tensor& Y, const std::vector<double>& alphas, int folds,
                           uint64_t seed) {
  const int64_t n = X.size(0), p = X.size(1), v = Y.size(1);
  const std::vector<int64_t> perm = shuffled_rows(n, seed);
  auto xv = X.to_vector<double>(), yv = Y.to_vector<double>();
  std::vector<double> ref(alphas.size() * v, 0.0);
  for (int f = 0; f < folds; ++f) {
    const int64_t lo = n * f / folds, hi = n * (f + 1) / folds;
    std::vector<double> xtr, ytr, xva, yva;
    for (int64_t i = 0; i < n; ++i) {
      const bool val = i >= lo && i < hi;
      auto& xd = val ? xva : xtr;
      auto& yd = val ? yva : ytr;
      xd.insert(xd.end(), xv.begin() + perm[i] * p, xv.begin() + (perm[i] + 1) * p);
      yd.insert(yd.end(), yv.begin() + perm[i] * v, yv.begin() + (perm[i] + 1) * v);
    }
    const int64_t nva = hi - lo, ntr = n - nva;
    for (size_t a = 0; a < alphas.size(); ++a) {
      Ridge r = normal_equations(from_vector(xtr, {ntr, p}), from_vector(ytr, {ntr, v}), alphas[a]);
      auto pred = ridge_predict(from_vector(xva, {nva, p}), r.weights, r.intercept).to_vector<double>();
      for (int64_t j = 0; j < v; ++j) {
        double m = 0, ssr = 0, sst = 0;
        bool constant = true;
        for (int64_t i = 0; i < nva; ++i) {
          m += yva[i * v + j] / nva;
          constant = constant && yva[i * v + j] == yva[j];
        }
        for (int64_t i = 0; i < nva; ++i) {
          ssr += std::pow(yva[i * v + j] - pred[i * v + j], 2);
          sst += std::pow(yva[i * v + j] - m, 2);
        }
        ref[a * v + j] += (constant ? 0.0 : 1 - ssr / sst) / folds;
      }
    }
  }
  return from_vector(ref, {static_cast<int64_t>(alphas.size()), v});
}

}  // namespace

TEST(Ridge, ClosedFormMatchesNormalEquationsTallAndWide) {
  for (auto [n, p] : {std::pair<int64_t, int64_t>{40, 7}, {9, 23}}) {
    Tensor X = rnd({n, p}, 1 + n), Y = rnd({n, 3}, 2 + n);
    for (double alpha : {0.05, 3.0}) {
      Ridge r = fit_ridge(X, Y, alpha), ref = normal_equations(X, Y, alpha);
      EXPECT_TRUE(allclose(r.weights, ref.weights, 1e-9, 1e-10)) << "n=" << n << " p=" << p << " alpha=" << alpha;
      EXPECT_TRUE(allclose(r.intercept, ref.intercept, 1e-9, 1e-10));
      EXPECT_TRUE(allclose(predict(X, r), ridge_predict(X, ref.weights, ref.intercept), 1e-9, 1e-10));
    }
  }
}

TEST(Ridge, CvRefitUsesEachVoxelsBestAlphaAndScoresMatchBruteForce) {
  const int64_t n = 30, p = 12, v = 5;
  const int folds = 3;
  const uint64_t seed = 7;
  Tensor X = rnd({n, p}, 11), Y = rnd({n, v}, 12);
  const std::vector<double> alphas{0.1, 1.0, 10.0, 100.0};
  RidgeCV cv = fit_ridge_cv(X, Y, alphas, folds, seed, 2);
  EXPECT_TRUE(allclose(cv.cv_scores, reference_cv_scores(X, Y, alphas, folds, seed), 1e-8, 1e-9));
  auto best = cv.best_alpha.to_vector<double>();
  for (int64_t j = 0; j < v; ++j) {
    Ridge r = normal_equations(X, Y.narrow(1, j, 1).contiguous(), best[j]);
    EXPECT_TRUE(allclose(cv.weights.narrow(1, j, 1), r.weights, 1e-9, 1e-10)) << "voxel " << j;
    EXPECT_NEAR(cv.intercept.at({j}), r.intercept.at({0}), 1e-9);
  }
  // Voxel batching changes memory, never the numbers.
  RidgeCV one = fit_ridge_cv(X, Y, alphas, folds, seed, 1000);
  EXPECT_TRUE(allclose(one.cv_scores, cv.cv_scores, 1e-12, 1e-12));
  EXPECT_TRUE(allclose(one.weights, cv.weights, 1e-12, 1e-12));
}

// Every output against the float64 brute force, in both forms and at the boundary between them:
// (n, p, v, folds) with n_tr < p (dual), n_tr >= p (primal), n_tr == p in some folds (primal; each
// fold's Gram is singular before the penalty is added), and n >= p with n_tr < p (dual folds and
// dual refit). Features and responses carry large means that the centring must remove.
TEST(Ridge, CvMatchesFloat64BruteForceInPrimalAndDualForms) {
  struct Case {
    int64_t n, p, v;
    int folds;
  };
  const std::vector<double> alphas{1e-3, 0.1, 3.0, 100.0, 1e4};
  for (Case c : {Case{37, 53, 7, 4}, Case{61, 17, 9, 5}, Case{23, 18, 5, 5}, Case{41, 35, 6, 4}}) {
    const std::string where = "n=" + std::to_string(c.n) + " p=" + std::to_string(c.p);
    Tensor X0 = rnd({c.n, c.p}, 100 + c.n);
    std::vector<double> wv = rnd({c.p, c.v}, 300 + c.n).to_vector<double>();
    for (int64_t k = 0; k < c.p; ++k)
      for (int64_t j = 0; j < c.v; ++j) wv[k * c.v + j] *= 0.5 / (1.0 + j);  // voxels from strong to weak signal
    auto y = kernels::matmul(X0, from_vector(wv, {c.p, c.v})).to_vector<double>();
    auto e = rnd({c.n, c.v}, 200 + c.n).to_vector<double>();
    for (size_t i = 0; i < y.size(); ++i) y[i] += e[i] + 1000.0;
    auto x = X0.to_vector<double>();
    for (int64_t i = 0; i < c.n; ++i)
      for (int64_t k = 0; k < c.p; ++k) x[i * c.p + k] += 50.0 + k;
    const Tensor X = from_vector(x, {c.n, c.p}), Y = from_vector(y, {c.n, c.v});
    const uint64_t seed = 5 + c.n;
    const RidgeCV cv = fit_ridge_cv(X, Y, alphas, c.folds, seed, 3);
    const Tensor ref = reference_cv_scores(X, Y, alphas, c.folds, seed);
    EXPECT_TRUE(allclose(cv.cv_scores, ref, 1e-8, 1e-9)) << where;
    const auto rs = ref.to_vector<double>();
    const auto best = cv.best_alpha.to_vector<double>();
    const int64_t na = static_cast<int64_t>(alphas.size());
    for (int64_t j = 0; j < c.v; ++j) {
      int64_t arg = 0;
      for (int64_t a = 1; a < na; ++a)
        if (rs[a * c.v + j] > rs[arg * c.v + j]) arg = a;
      EXPECT_EQ(best[j], alphas[arg]) << where << " voxel " << j;
      const Ridge r = normal_equations(X, Y.narrow(1, j, 1).contiguous(), best[j]);
      EXPECT_TRUE(allclose(cv.weights.narrow(1, j, 1), r.weights, 1e-8, 1e-10)) << where << " voxel " << j;
      EXPECT_NEAR(cv.intercept.at({j}), r.intercept.at({0}), 1e-8 * 1000.0) << where << " voxel " << j;
    }
  }
}

// A voxel constant in every fold has nothing to explain: score 0 for every penalty (so the first
// penalty wins the tie), weights 0 and its value as intercept. 0.1 is not a binary fraction, so
// its mean carries a rounding error that must not turn into a score.
TEST(Ridge, ConstantVoxelScoresZeroAndFitsItsValue) {
  const int64_t n = 40, p = 6;
  Tensor X = rnd({n, p}, 51);
  auto y = rnd({n, 3}, 52).to_vector<double>();
  for (int64_t i = 0; i < n; ++i) y[i * 3 + 1] = 0.1;
  const RidgeCV cv = fit_ridge_cv(X, from_vector(y, {n, 3}), {0.1, 10.0}, 4, 2);
  EXPECT_EQ(cv.cv_scores.at({0, 1}), 0.0);
  EXPECT_EQ(cv.cv_scores.at({1, 1}), 0.0);
  EXPECT_EQ(cv.best_alpha.at({1}), 0.1);
  EXPECT_TRUE(allclose(cv.weights.narrow(1, 1, 1), zeros({p, 1}, DType::Float64), 0, 1e-12));
  EXPECT_NEAR(cv.intercept.at({1}), 0.1, 1e-14);
}

// The float32 path does its large products in float32 (factorisations and residual sums stay
// float64). Against the float64 path on a random problem with signal, in the primal and the dual
// form: scores agree to 1e-4; each voxel picks the float64 penalty unless the two candidates'
// float64 scores are within 1e-4 (a near tie that float32 rounding may flip); weights of voxels
// with the same penalty agree to 1e-4 of the voxel's largest weight.
TEST(Ridge, Float32PathPicksTheFloat64PenaltiesAndWeights) {
  const int64_t v = 64;
  std::vector<double> alphas;
  for (int i = 0; i < 8; ++i) alphas.push_back(std::pow(10.0, -2.0 + i));
  for (auto [n, p] : {std::pair<int64_t, int64_t>{300, 120}, {90, 150}}) {
    const std::string where = "n=" + std::to_string(n) + " p=" + std::to_string(p);
    Tensor X = rnd({n, p}, 61 + n);
    auto w = rnd({p, v}, 62 + n).to_vector<double>();
    for (int64_t k = 0; k < p; ++k)
      for (int64_t j = 0; j < v; ++j) w[k * v + j] *= 0.3 / (1.0 + j % 8);
    auto y = kernels::matmul(X, from_vector(w, {p, v})).to_vector<double>();
    auto e = rnd({n, v}, 63 + n).to_vector<double>();
    for (size_t i = 0; i < y.size(); ++i) y[i] += e[i];
    const Tensor Y = from_vector(y, {n, v});
    const RidgeCV a = fit_ridge_cv(X, Y, alphas, 5, 9, 20);
    const RidgeCV b = fit_ridge_cv(X.to(DType::Float32), Y.to(DType::Float32), alphas, 5, 9, 20);
    EXPECT_TRUE(allclose(b.cv_scores, a.cv_scores, 0, 1e-4)) << where;
    const auto s = a.cv_scores.to_vector<double>();
    const auto ba = a.best_alpha.to_vector<double>(), bb = b.best_alpha.to_vector<double>();
    const auto wa = a.weights.to_vector<double>(), wb = b.weights.to_vector<double>();
    auto index = [&](double alpha) { return std::find(alphas.begin(), alphas.end(), alpha) - alphas.begin(); };
    int same = 0;
    for (int64_t j = 0; j < v; ++j) {
      if (ba[j] != bb[j]) {
        EXPECT_LT(std::abs(s[index(ba[j]) * v + j] - s[index(bb[j]) * v + j]), 1e-4) << where << " voxel " << j;
        continue;
      }
      ++same;
      double scale = 0, err = 0;
      for (int64_t k = 0; k < p; ++k) {
        scale = std::max(scale, std::abs(wa[k * v + j]));
        err = std::max(err, std::abs(wa[k * v + j] - wb[k * v + j]));
      }
      EXPECT_LE(err, 1e-4 * scale) << where << " voxel " << j;
    }
    EXPECT_GE(same, v - 2) << where;
  }
}

TEST(Ridge, Float32InputsGiveFloat32OutputsCloseToFloat64) {
  Tensor X = rnd({50, 10}, 21), Y = rnd({50, 4}, 22);
  RidgeCV a = fit_ridge_cv(X, Y, {0.5, 5.0}, 5, 3, 3);
  RidgeCV b = fit_ridge_cv(X.to(DType::Float32), Y.to(DType::Float32), {0.5, 5.0}, 5, 3, 3);
  EXPECT_EQ(b.weights.dtype(), DType::Float32);
  EXPECT_EQ(b.intercept.dtype(), DType::Float32);
  EXPECT_TRUE(allclose(b.weights, a.weights, 1e-4, 1e-5));
  EXPECT_TRUE(allclose(b.cv_scores, a.cv_scores, 1e-4, 1e-5));
}

// Bayes: with w ~ N(0, tau^2 I) and noise N(0, sigma^2), the best ridge penalty is sigma^2/tau^2.
// Planted 100 (tau 0.1, sigma 1) on a grid spaced 100x apart, so the neighbours are clearly worse.
TEST(Ridge, CvPicksThePlantedPenalty) {
  const int64_t n = 300, p = 80, v = 40;
  Tensor X = rnd({n, p}, 31);
  Tensor W = cortex::testing::randn({p, v}, 32, DType::Float64);
  auto wv = W.to_vector<double>();
  for (auto& w : wv) w *= 0.1;
  Tensor Y = kernels::matmul(X, from_vector(wv, {p, v}));
  auto yv = Y.to_vector<double>(), e = rnd({n, v}, 33).to_vector<double>();
  for (size_t i = 0; i < yv.size(); ++i) yv[i] += e[i] + 2.0;  // + an intercept the penalty must not shrink
  const std::vector<double> alphas{0.01, 1.0, 100.0, 1e4, 1e6};
  RidgeCV cv = fit_ridge_cv(X, from_vector(yv, {n, v}), alphas, 5, 1, 16);
  auto best = cv.best_alpha.to_vector<double>();
  int hits = 0;
  for (double b : best) hits += b == 100.0;
  EXPECT_GE(hits, static_cast<int>(0.8 * v)) << "voxels choosing the planted alpha 100";
  // Averaged over voxels, the planted alpha scores highest.
  auto s = cv.cv_scores.to_vector<double>();
  std::vector<double> mean(alphas.size(), 0);
  for (size_t a = 0; a < alphas.size(); ++a)
    for (int64_t j = 0; j < v; ++j) mean[a] += s[a * v + j] / v;
  EXPECT_EQ(std::max_element(mean.begin(), mean.end()) - mean.begin(), 2);
  double mi = 0;
  for (double b : cv.intercept.to_vector<double>()) mi += b / v;
  EXPECT_NEAR(mi, 2.0, 0.3);
}

TEST(Ridge, RejectsBadInputs) {
  Tensor X = rnd({10, 3}, 41), Y = rnd({10, 2}, 42);
  EXPECT_CORTEX_ERROR(fit_ridge_cv(X, rnd({9, 2}, 43), {1.0}, 2, 0), "same number of rows");
  EXPECT_CORTEX_ERROR(fit_ridge_cv(X, Y, {}, 2, 0), "empty alpha list");
  EXPECT_CORTEX_ERROR(fit_ridge_cv(X, Y, {1.0, -1.0}, 2, 0), "alpha finite and > 0");
  EXPECT_CORTEX_ERROR(fit_ridge_cv(X, Y, {1.0}, 1, 0), "folds in [2");
  EXPECT_CORTEX_ERROR(fit_ridge_cv(X, Y, {1.0}, 2, 0, 0), "voxel_batch > 0");
  EXPECT_CORTEX_ERROR(fit_ridge_cv(X.flatten(), Y, {1.0}, 2, 0), "X to be 2-D");
  EXPECT_CORTEX_ERROR(fit_ridge_cv(X, Y.to(DType::Float32), {1.0}, 2, 0), "one dtype");
  auto y = Y.to_vector<double>();
  y[5] = std::nan("");
  EXPECT_CORTEX_ERROR(fit_ridge_cv(X, from_vector(y, {10, 2}), {1.0}, 2, 0), "finite Y");
  auto x = X.to_vector<double>();
  x[4] = INFINITY;
  EXPECT_CORTEX_ERROR(fit_ridge(from_vector(x, {10, 3}), Y, 1.0), "finite X");
  EXPECT_CORTEX_ERROR(fit_ridge(X, Y, -2.0), "alpha >= 0");
  EXPECT_CORTEX_ERROR(ridge_predict(rnd({4, 5}, 44), rnd({3, 2}, 45), rnd({2}, 46)), "X with 3 columns");
  EXPECT_CORTEX_ERROR(ridge_predict(X, rnd({3, 2}, 45), rnd({3}, 46)), "intercept of 2");
}
