// Ridge CV by SVD (himalaya's solve_ridge_cv_svd): per fold, Xtr = U S V^T once; for a penalty a the
// validation prediction is (Xva V) diag(s/(s^2+a)) (U^T Ytr), so every penalty costs one
// (nva, r) x (r, vb) product and no new factorisation.
#include "models/readouts/ridge.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "kernels/linalg.h"

namespace cortex::models {
namespace {

void check_matrix(const Tensor& t, const char* fn, const char* name) {
  CORTEX_CHECK(t.defined(), fn, ": ", name, " is undefined");
  CORTEX_CHECK(t.dim() == 2, fn, ": expected ", name, " to be 2-D, found shape ", shape_str(t.shape()));
  CORTEX_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, fn, ": expected ", name,
               " float32 or float64, found ", dtype_name(t.dtype()));
  CORTEX_CHECK(t.device() == Device::cpu(), fn, ": expected ", name, " on the CPU");
}

// Contiguous float64 copy; throws on a non-finite value (a NaN voxel would poison every score).
Tensor to64_finite(const Tensor& t, const char* fn, const char* name) {
  Tensor d = t.to(DType::Float64).contiguous();
  if (d.is_same(t)) d = t.clone();  // never centre the caller's tensor in place
  const double* p = d.data<double>();
  const int64_t n = d.numel();
  int64_t bad = -1;
#pragma omp parallel for reduction(max : bad)
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) bad = std::max(bad, i);
  CORTEX_CHECK(bad < 0, fn, ": expected finite ", name, ", found ", p[bad], " at flat index ", bad);
  return d;
}

// Rows `idx` of a contiguous float64 (n, c) matrix.
Tensor gather_rows(const Tensor& m, const std::vector<int64_t>& idx) {
  const int64_t c = m.size(1);
  Tensor out = empty({static_cast<int64_t>(idx.size()), c}, DType::Float64);
  const double* src = m.data<double>();
  double* dst = out.data<double>();
#pragma omp parallel for
  for (int64_t i = 0; i < static_cast<int64_t>(idx.size()); ++i)
    std::copy(src + idx[i] * c, src + (idx[i] + 1) * c, dst + i * c);
  return out;
}

// Subtracts the column means (returned, (c)) of a contiguous float64 matrix in place.
std::vector<double> centre(Tensor& m) {
  const int64_t n = m.size(0), c = m.size(1);
  double* p = m.data<double>();
  std::vector<double> mean(c, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) mean[j] += p[i * c + j];
  for (auto& v : mean) v /= static_cast<double>(std::max<int64_t>(n, 1));
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) p[i * c + j] -= mean[j];
  return mean;
}

void subtract_means(Tensor& m, const std::vector<double>& mean) {
  const int64_t n = m.size(0), c = m.size(1);
  double* p = m.data<double>();
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j) p[i * c + j] -= mean[j];
}

// Singular values below this are treated as zero (the minimum-norm solution when alpha == 0).
double rank_tol(const Tensor& s, int64_t n, int64_t p) {
  const double smax = s.numel() ? s.data<double>()[0] : 0.0;
  return smax * static_cast<double>(std::max(n, p)) * std::numeric_limits<double>::epsilon();
}

// (r, v) .* d_j where d_j = s/(s^2 + alpha_j) and alpha_j is per column (alpha_of[j]).
Tensor scale_rows(const Tensor& uty, const Tensor& s, double tol, const double* alpha_of, bool per_col) {
  const int64_t r = uty.size(0), v = uty.size(1);
  Tensor out = empty({r, v}, DType::Float64);
  const double* a = uty.data<double>();
  const double* sv = s.data<double>();
  double* o = out.data<double>();
#pragma omp parallel for
  for (int64_t k = 0; k < r; ++k) {
    const double sk = sv[k];
    for (int64_t j = 0; j < v; ++j) {
      const double al = per_col ? alpha_of[j] : alpha_of[0];
      o[k * v + j] = sk > tol ? a[k * v + j] * sk / (sk * sk + al) : 0.0;
    }
  }
  return out;
}

// The centred-SVD ridge solution for voxels [v0, v0+vb) given per-voxel penalties.
void refit_batch(const kernels::Svd& sv, double tol, const Tensor& yc, const double* alpha_of, bool per_col,
                 Tensor& w_out /*(p, vb) float64*/) {
  Tensor uty = kernels::matmul(sv.u.t(), yc);
  w_out = kernels::matmul(sv.vh.t(), scale_rows(uty, sv.s, tol, alpha_of, per_col));
}

Tensor voxel_block64(const Tensor& Y, int64_t v0, int64_t vb, const char* fn) {
  return to64_finite(Y.narrow(1, v0, vb), fn, "Y");
}

}  // namespace

RidgeCV fit_ridge_cv(const Tensor& X, const Tensor& Y, const std::vector<double>& alphas, int folds, uint64_t seed,
                     int64_t voxel_batch) {
  const char* fn = "fit_ridge_cv";
  check_matrix(X, fn, "X");
  check_matrix(Y, fn, "Y");
  CORTEX_CHECK(X.size(0) == Y.size(0), fn, ": expected X and Y with the same number of rows, found ", X.size(0),
               " and ", Y.size(0));
  CORTEX_CHECK(X.dtype() == Y.dtype(), fn, ": expected X and Y of one dtype, found ", dtype_name(X.dtype()), " and ",
               dtype_name(Y.dtype()));
  CORTEX_CHECK(!alphas.empty(), fn, ": expected at least one penalty, found an empty alpha list");
  for (double a : alphas)
    CORTEX_CHECK(std::isfinite(a) && a > 0, fn, ": expected every alpha finite and > 0, found ", a);
  const int64_t n = X.size(0), p = X.size(1), v = Y.size(1);
  CORTEX_CHECK(p > 0 && v > 0, fn, ": expected at least one feature and one voxel, found p=", p, ", v=", v);
  CORTEX_CHECK(folds >= 2 && folds <= n, fn, ": expected folds in [2, n=", n, "], found ", folds);
  CORTEX_CHECK(voxel_batch > 0, fn, ": expected voxel_batch > 0, found ", voxel_batch);
  const int64_t na = static_cast<int64_t>(alphas.size());

  const Tensor X64 = to64_finite(X, fn, "X");
  // The same seed gives the same folds on every platform: mt19937_64 and a hand-written shuffle.
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[static_cast<int64_t>(rng() % (i + 1))]);

  Tensor scores = zeros({na, v}, DType::Float64);
  double* sc = scores.data<double>();
  for (int f = 0; f < folds; ++f) {
    const int64_t lo = n * f / folds, hi = n * (f + 1) / folds;
    std::vector<int64_t> tr, va(perm.begin() + lo, perm.begin() + hi);
    tr.insert(tr.end(), perm.begin(), perm.begin() + lo);
    tr.insert(tr.end(), perm.begin() + hi, perm.end());
    Tensor xtr = gather_rows(X64, tr), xva = gather_rows(X64, va);
    const auto mx = centre(xtr);
    subtract_means(xva, mx);
    const kernels::Svd sv = kernels::svd(xtr);
    const double tol = rank_tol(sv.s, xtr.size(0), p);
    const Tensor xvv = kernels::matmul(xva, sv.vh.t());  // (nva, r)
    const int64_t nva = static_cast<int64_t>(va.size());
    for (int64_t v0 = 0; v0 < v; v0 += voxel_batch) {
      const int64_t vb = std::min(voxel_batch, v - v0);
      const Tensor yb = voxel_block64(Y, v0, vb, fn);
      Tensor ytr = gather_rows(yb, tr), yva = gather_rows(yb, va);
      const auto my = centre(ytr);
      subtract_means(yva, my);
      // R^2 denominators use the validation fold's own mean, as sklearn/himalaya r2_score does.
      std::vector<double> vmean(vb, 0.0), sstot(vb, 0.0);
      const double* yv = yva.data<double>();
      for (int64_t i = 0; i < nva; ++i)
        for (int64_t j = 0; j < vb; ++j) vmean[j] += yv[i * vb + j] / static_cast<double>(nva);
      for (int64_t i = 0; i < nva; ++i)
        for (int64_t j = 0; j < vb; ++j) sstot[j] += (yv[i * vb + j] - vmean[j]) * (yv[i * vb + j] - vmean[j]);
      const Tensor uty = kernels::matmul(sv.u.t(), ytr);  // (r, vb)
      for (int64_t a = 0; a < na; ++a) {
        const Tensor pred = kernels::matmul(xvv, scale_rows(uty, sv.s, tol, &alphas[a], false)).contiguous();
        const double* pp = pred.data<double>();
        std::vector<double> ssres(vb, 0.0);
        for (int64_t i = 0; i < nva; ++i)
          for (int64_t j = 0; j < vb; ++j) {
            const double e = yv[i * vb + j] - pp[i * vb + j];
            ssres[j] += e * e;
          }
        for (int64_t j = 0; j < vb; ++j) {
          // A constant voxel in this fold has no variance to explain: score it 0, not -inf.
          const double r2 = sstot[j] > 0 ? 1.0 - ssres[j] / sstot[j] : 0.0;
          sc[a * v + v0 + j] += r2 / folds;
        }
      }
    }
  }

  RidgeCV out;
  out.alphas = alphas;
  out.cv_scores = scores;
  out.best_alpha = empty({v}, DType::Float64);
  double* best = out.best_alpha.data<double>();
  for (int64_t j = 0; j < v; ++j) {
    int64_t arg = 0;  // ties go to the smaller index, i.e. the first-listed alpha
    for (int64_t a = 1; a < na; ++a)
      if (sc[a * v + j] > sc[arg * v + j]) arg = a;
    best[j] = alphas[arg];
  }

  // Refit on all rows with each voxel's best penalty.
  Tensor xall = X64;
  const auto mx = centre(xall);
  const kernels::Svd sv = kernels::svd(xall);
  const double tol = rank_tol(sv.s, n, p);
  Tensor W = empty({p, v}, DType::Float64), b = empty({v}, DType::Float64);
  for (int64_t v0 = 0; v0 < v; v0 += voxel_batch) {
    const int64_t vb = std::min(voxel_batch, v - v0);
    Tensor yb = voxel_block64(Y, v0, vb, fn);
    const auto my = centre(yb);
    Tensor wb;
    refit_batch(sv, tol, yb, best + v0, true, wb);
    W.narrow(1, v0, vb).copy_(wb);
    const Tensor wc = wb.contiguous();
    const double* w = wc.data<double>();
    for (int64_t j = 0; j < vb; ++j) {
      double s = my[j];
      for (int64_t k = 0; k < p; ++k) s -= mx[k] * w[k * vb + j];
      b.data<double>()[v0 + j] = s;
    }
  }
  out.weights = W.to(X.dtype());
  out.intercept = b.to(X.dtype());
  return out;
}

Ridge fit_ridge(const Tensor& X, const Tensor& Y, double alpha) {
  const char* fn = "fit_ridge";
  check_matrix(X, fn, "X");
  check_matrix(Y, fn, "Y");
  CORTEX_CHECK(X.size(0) == Y.size(0), fn, ": expected X and Y with the same number of rows, found ", X.size(0),
               " and ", Y.size(0));
  CORTEX_CHECK(X.size(0) > 0 && X.size(1) > 0, fn, ": expected a non-empty X, found ", shape_str(X.shape()));
  CORTEX_CHECK(std::isfinite(alpha) && alpha >= 0, fn, ": expected a finite alpha >= 0, found ", alpha);
  Tensor x = to64_finite(X, fn, "X"), y = to64_finite(Y, fn, "Y");
  const auto mx = centre(x);
  const auto my = centre(y);
  const kernels::Svd sv = kernels::svd(x);
  Tensor w;
  refit_batch(sv, rank_tol(sv.s, x.size(0), x.size(1)), y, &alpha, false, w);
  const Tensor wc = w.contiguous();
  const int64_t p = x.size(1), v = y.size(1);
  Tensor b = empty({v}, DType::Float64);
  for (int64_t j = 0; j < v; ++j) {
    double s = my[j];
    for (int64_t k = 0; k < p; ++k) s -= mx[k] * wc.data<double>()[k * v + j];
    b.data<double>()[j] = s;
  }
  return {wc.to(X.dtype()), b.to(X.dtype())};
}

Tensor ridge_predict(const Tensor& X, const Tensor& weights, const Tensor& intercept) {
  const char* fn = "ridge_predict";
  check_matrix(X, fn, "X");
  check_matrix(weights, fn, "weights");
  CORTEX_CHECK(intercept.defined() && intercept.dim() == 1, fn, ": expected a 1-D intercept");
  CORTEX_CHECK(X.size(1) == weights.size(0), fn, ": expected X with ", weights.size(0), " columns, found ",
               X.size(1));
  CORTEX_CHECK(intercept.size(0) == weights.size(1), fn, ": expected an intercept of ", weights.size(1),
               " values, found ", intercept.size(0));
  const Tensor w = weights.to(X.dtype()), b = intercept.to(X.dtype());
  return kernels::linear(X, w.t(), b);
}

}  // namespace cortex::models
