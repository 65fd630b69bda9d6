// Ridge CV by per-fold Cholesky factorisations of one Gram matrix (derivation and costs:
// docs/ridge.md). For fold f and penalty a the validation prediction is
//   pred = C (S + a I)^-1 R
// with, in the primal form (every training fold has n_tr >= p rows), S = Xtr^T Xtr (p, p),
// C = Xva (nva, p) and R = Xtr^T Ytr (p, v), and in the dual form (n_tr < p) S = Xtr Xtr^T
// (n_tr, n_tr), C = Xva Xtr^T (nva, n_tr) and R = Ytr (n_tr, v), all centred with the training
// fold's means. S and C of every fold are cut out of one Gram of the globally centred features
// (X^T X, or X X^T) with exact rank-one centring corrections, and in the primal form every fold's
// R is X^T Y minus the validation rows' share. Per penalty, M = C (S + a I)^-1 (float64 Cholesky),
// then one (nva, d) x (d, voxel batch) product in the input dtype, as himalaya does.
//
// Why not one SVD per fold (himalaya's solve_ridge_cv_svd, what this file did before): at 8,000 x
// 4,000 an SVD costs ~40 s here and U^T Ytr another n_tr*p*v product per fold, against ~1.6 s for
// a Cholesky and its solves; the per-penalty product, the inherent cost, is the same size in both.
#include "models/readouts/ridge.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <numeric>
#include <random>

#include "kernels/linalg.h"
#include "kernels/matmul.h"

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

// Singular values below this are treated as zero (the minimum-norm solution when alpha == 0).
double rank_tol(const Tensor& s, int64_t n, int64_t p) {
  const double smax = s.numel() ? s.data<double>()[0] : 0.0;
  return smax * static_cast<double>(std::max(n, p)) * std::numeric_limits<double>::epsilon();
}

// (r, v) .* d where d = s/(s^2 + alpha): the SVD solution's spectral filter, for fit_ridge.
Tensor scale_rows(const Tensor& uty, const Tensor& s, double tol, double alpha) {
  const int64_t r = uty.size(0), v = uty.size(1);
  Tensor out = empty({r, v}, DType::Float64);
  const double* a = uty.data<double>();
  const double* sv = s.data<double>();
  double* o = out.data<double>();
#pragma omp parallel for
  for (int64_t k = 0; k < r; ++k) {
    const double sk = sv[k];
    for (int64_t j = 0; j < v; ++j) o[k * v + j] = sk > tol ? a[k * v + j] * sk / (sk * sk + alpha) : 0.0;
  }
  return out;
}

// ---- fit_ridge_cv ---------------------------------------------------------------------------

// Runs f(0..count-1) on the OpenMP threads. Eigen's LLT and triangular solves use one thread, so
// independent factorisations side by side are what keeps both cores busy; an exception thrown
// inside a parallel loop would terminate, so the first one is carried out and rethrown.
template <class F>
void parallel_each(int64_t count, F&& f) {
  std::vector<std::exception_ptr> err(count);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < count; ++i) {
    try {
      f(i);
    } catch (...) {
      err[i] = std::current_exception();
    }
  }
  for (auto& e : err)
    if (e) std::rethrow_exception(e);
}

// Rows `idx` of a contiguous (n, c) matrix, same dtype.
Tensor gather_rows(const Tensor& m, const std::vector<int64_t>& idx) {
  const int64_t c = m.size(1), k = static_cast<int64_t>(idx.size());
  Tensor out = empty({k, c}, m.dtype());
  dispatch_float(m.dtype(), "gather_rows", [&](auto tag) {
    using T = decltype(tag);
    const T* src = m.data<T>();
    T* dst = out.data<T>();
#pragma omp parallel for
    for (int64_t i = 0; i < k; ++i) std::copy(src + idx[i] * c, src + (idx[i] + 1) * c, dst + i * c);
  });
  return out;
}

// Column means of Y (n, v) in float64, checking every value is finite.
std::vector<double> finite_column_means(const Tensor& Y, const char* fn) {
  const int64_t n = Y.size(0), v = Y.size(1);
  const Tensor y = Y.contiguous();
  std::vector<double> mean(v, 0.0);
  int64_t bad = -1;
  dispatch_float(y.dtype(), fn, [&](auto tag) {
    using T = decltype(tag);
    const T* p = y.data<T>();
    // Each thread owns a block of columns, so the sums need no reduction.
#pragma omp parallel for reduction(max : bad)
    for (int64_t j0 = 0; j0 < v; j0 += 256) {
      const int64_t j1 = std::min(v, j0 + 256);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = j0; j < j1; ++j) {
          const double x = p[i * v + j];
          if (!std::isfinite(x)) bad = std::max(bad, i * v + j);
          mean[j] += x;
        }
    }
  });
  CORTEX_CHECK(bad < 0, fn, ": expected finite Y, found ", Y.contiguous().to(DType::Float64).data<double>()[bad],
               " at flat index ", bad);
  for (auto& m : mean) m /= static_cast<double>(n);
  return mean;
}

// Voxels [v0, v0+vb) of Y minus their means `my`: a new contiguous (n, vb) tensor, dtype of Y.
Tensor centred_block(const Tensor& Y, int64_t v0, int64_t vb, const std::vector<double>& my) {
  Tensor yb = Y.narrow(1, v0, vb).clone();
  const int64_t n = yb.size(0);
  dispatch_float(yb.dtype(), "fit_ridge_cv", [&](auto tag) {
    using T = decltype(tag);
    T* p = yb.data<T>();
#pragma omp parallel for
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < vb; ++j) p[i * vb + j] = static_cast<T>(static_cast<double>(p[i * vb + j]) - my[v0 + j]);
  });
  return yb;
}

// Column means of the rows `idx` of a contiguous (n, c) matrix, in float64.
std::vector<double> row_subset_means(const Tensor& m, const std::vector<int64_t>& idx) {
  const int64_t c = m.size(1);
  std::vector<double> mean(c, 0.0);
  dispatch_float(m.dtype(), "fit_ridge_cv", [&](auto tag) {
    using T = decltype(tag);
    const T* p = m.data<T>();
#pragma omp parallel for
    for (int64_t j0 = 0; j0 < c; j0 += 256) {
      const int64_t j1 = std::min(c, j0 + 256);
      for (int64_t i : idx)
        for (int64_t j = j0; j < j1; ++j) mean[j] += static_cast<double>(p[i * c + j]);
    }
  });
  for (auto& x : mean) x /= static_cast<double>(idx.size());
  return mean;
}

// One fold's system: pred = C (S + a I)^-1 R. float64.
struct FoldSystem {
  Tensor S;                 // (d, d), symmetric positive semi-definite
  Tensor C;                 // (nva, d)
  std::vector<double> mxf;  // primal only: the training fold's mean of the globally centred X, (p)
};

// Primal: Xtr_c = Xtr - 1 mxf^T, so Xtr_c^T Xtr_c = (X^T X - Xva^T Xva) - ntr mxf mxf^T.
FoldSystem primal_fold(const Tensor& gram, const Tensor& xc64, const std::vector<int64_t>& tr,
                       const std::vector<int64_t>& va) {
  const int64_t p = xc64.size(1), nva = static_cast<int64_t>(va.size());
  const double ntr = static_cast<double>(tr.size());
  FoldSystem fs;
  fs.mxf = row_subset_means(xc64, tr);
  fs.C = gather_rows(xc64, va);
  fs.S = kernels::matmul(fs.C.t(), fs.C);  // Xva^T Xva, before C is centred
  double* s = fs.S.data<double>();
  const double* g = gram.data<double>();
  const double* m = fs.mxf.data();
#pragma omp parallel for
  for (int64_t k = 0; k < p; ++k)
    for (int64_t l = 0; l < p; ++l) s[k * p + l] = g[k * p + l] - s[k * p + l] - ntr * m[k] * m[l];
  double* c = fs.C.data<double>();
#pragma omp parallel for
  for (int64_t i = 0; i < nva; ++i)
    for (int64_t k = 0; k < p; ++k) c[i * p + k] -= m[k];
  return fs;
}

// Dual: with K = Xc Xc^T and m the training mean, (x_i - m).(x_j - m) = K_ij - r_i - r_j + K̄, where
// r_i = x_i.m is row i's mean over the training columns of K and K̄ = m.m the mean of the r_j, j in tr.
FoldSystem dual_fold(const Tensor& gram, const std::vector<int64_t>& tr, const std::vector<int64_t>& va) {
  const int64_t n = gram.size(0), ntr = static_cast<int64_t>(tr.size()), nva = static_cast<int64_t>(va.size());
  const double* k = gram.data<double>();
  auto row_means = [&](const std::vector<int64_t>& rows) {
    std::vector<double> r(rows.size(), 0.0);
    for (size_t i = 0; i < rows.size(); ++i) {
      for (int64_t j : tr) r[i] += k[rows[i] * n + j];
      r[i] /= static_cast<double>(ntr);
    }
    return r;
  };
  const std::vector<double> rt = row_means(tr), rv = row_means(va);
  const double kbar = std::accumulate(rt.begin(), rt.end(), 0.0) / static_cast<double>(ntr);
  FoldSystem fs;
  fs.S = empty({ntr, ntr}, DType::Float64);
  fs.C = empty({nva, ntr}, DType::Float64);
  double* s = fs.S.data<double>();
  double* c = fs.C.data<double>();
#pragma omp parallel for
  for (int64_t i = 0; i < ntr; ++i)
    for (int64_t j = 0; j < ntr; ++j) s[i * ntr + j] = k[tr[i] * n + tr[j]] - rt[i] - rt[j] + kbar;
#pragma omp parallel for
  for (int64_t i = 0; i < nva; ++i)
    for (int64_t j = 0; j < ntr; ++j) c[i * ntr + j] = k[va[i] * n + tr[j]] - rv[i] - rt[j] + kbar;
  return fs;
}

// a I added to a copy of the symmetric (d, d) float64 matrix s, then its Cholesky factor.
Tensor shifted_cholesky(const Tensor& s, double a) {
  Tensor m = s.clone();
  const int64_t d = m.size(0);
  double* p = m.data<double>();
  for (int64_t i = 0; i < d; ++i) p[i * d + i] += a;
  return kernels::cholesky(m);
}

// M_a = C (S + a I)^-1 for every penalty, (nva, d) each, in dtype dt. float64 factorisations: the
// spectrum of S spans many decades and the small penalties sit near its bottom.
std::vector<Tensor> penalty_maps(const FoldSystem& fs, const std::vector<double>& alphas, DType dt) {
  std::vector<Tensor> M(alphas.size());
  parallel_each(static_cast<int64_t>(alphas.size()), [&](int64_t a) {
    const Tensor l = shifted_cholesky(fs.S, alphas[a]);
    M[a] = kernels::cholesky_solve(l, fs.C.t()).t().to(dt);  // ((S + aI)^-1 C^T)^T, S symmetric
  });
  return M;
}

// Primal right-hand side for voxels [v0, v0+vb): Xtr_c^T Ytr_c = (Xc^T Yc - Xva^T Yva) - ntr mxf myf^T,
// in the dtype of xty (the cancellation is mild: the fold means are corrections to a centred whole).
Tensor primal_rhs(const Tensor& xty, int64_t v0, const Tensor& xva, const Tensor& yva, const std::vector<double>& mxf,
                  const std::vector<double>& myf, int64_t ntr) {
  const int64_t p = xty.size(0), v = xty.size(1), vb = yva.size(1);
  Tensor r = kernels::matmul(xva.t(), yva);  // (p, vb)
  dispatch_float(r.dtype(), "fit_ridge_cv", [&](auto tag) {
    using T = decltype(tag);
    T* o = r.data<T>();
    const T* full = xty.data<T>();
    const double nt = static_cast<double>(ntr);
#pragma omp parallel for
    for (int64_t k = 0; k < p; ++k)
      for (int64_t j = 0; j < vb; ++j)
        o[k * vb + j] = static_cast<T>(static_cast<double>(full[k * v + v0 + j]) - static_cast<double>(o[k * vb + j]) -
                                       nt * mxf[k] * myf[j]);
  });
  return r;
}

// Dual right-hand side: the training rows of the block minus their means, (ntr, vb).
Tensor dual_rhs(const Tensor& yb, const std::vector<int64_t>& tr, const std::vector<double>& myf) {
  Tensor r = gather_rows(yb, tr);
  const int64_t ntr = r.size(0), vb = r.size(1);
  dispatch_float(r.dtype(), "fit_ridge_cv", [&](auto tag) {
    using T = decltype(tag);
    T* o = r.data<T>();
#pragma omp parallel for
    for (int64_t i = 0; i < ntr; ++i)
      for (int64_t j = 0; j < vb; ++j) o[i * vb + j] = static_cast<T>(static_cast<double>(o[i * vb + j]) - myf[j]);
  });
  return r;
}

// The validation targets of one fold and voxel block, centred with the training means (float64),
// and what R^2 divides by.
struct Targets {
  Tensor y;                    // (nva, vb) float64
  std::vector<double> sstot;   // sum of squares about the validation fold's own mean (as sklearn's r2_score)
  std::vector<char> constant;  // every validation value equal: nothing to explain, scored 0
};

Targets validation_targets(const Tensor& yva, const std::vector<double>& myf) {
  const int64_t nva = yva.size(0), vb = yva.size(1);
  Targets t;
  t.y = yva.to(DType::Float64).contiguous();
  if (t.y.is_same(yva)) t.y = yva.clone();
  t.sstot.assign(vb, 0.0);
  t.constant.assign(vb, 1);
  double* y = t.y.data<double>();
#pragma omp parallel for
  for (int64_t j = 0; j < vb; ++j) {
    double mean = 0;
    for (int64_t i = 0; i < nva; ++i) {
      y[i * vb + j] -= myf[j];
      mean += y[i * vb + j];
      if (y[i * vb + j] != y[j]) t.constant[j] = 0;
    }
    mean /= static_cast<double>(nva);
    for (int64_t i = 0; i < nva; ++i) t.sstot[j] += (y[i * vb + j] - mean) * (y[i * vb + j] - mean);
  }
  return t;
}

// score[j] += R^2_j / folds for the prediction pred (nva, vb), residual sums in float64.
void add_r2(const Tensor& pred, const Targets& t, double* score, int folds) {
  const int64_t nva = pred.size(0), vb = pred.size(1);
  dispatch_float(pred.dtype(), "fit_ridge_cv", [&](auto tag) {
    using T = decltype(tag);
    const T* pp = pred.data<T>();
    const double* y = t.y.data<double>();
    constexpr int64_t kB = 64;  // columns per thread task: contiguous reads, accumulators in registers
#pragma omp parallel for
    for (int64_t j0 = 0; j0 < vb; j0 += kB) {
      const int64_t j1 = std::min(vb, j0 + kB);
      double ss[kB] = {};
      for (int64_t i = 0; i < nva; ++i)
        for (int64_t j = j0; j < j1; ++j) {
          const double e = y[i * vb + j] - static_cast<double>(pp[i * vb + j]);
          ss[j - j0] += e * e;
        }
      for (int64_t j = j0; j < j1; ++j)
        score[j] += (t.constant[j] ? 0.0 : 1.0 - ss[j - j0] / t.sstot[j]) / folds;
    }
  });
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
  const DType dt = X.dtype();

  // Centre globally first, so every fold's mean is a small correction and the Gram subtractions
  // below lose no digits to large feature or response means.
  Tensor xc64 = to64_finite(X, fn, "X");
  const std::vector<double> mx = centre(xc64);
  const Tensor xc = xc64.to(dt);  // operand of the big products, in the input dtype
  const std::vector<double> my = finite_column_means(Y, fn);

  // The same seed gives the same folds on every platform: mt19937_64 and a hand-written shuffle.
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[static_cast<int64_t>(rng() % (i + 1))]);
  auto fold_rows = [&](int f, std::vector<int64_t>& tr, std::vector<int64_t>& va) {
    const int64_t lo = n * f / folds, hi = n * (f + 1) / folds;
    va.assign(perm.begin() + lo, perm.begin() + hi);
    tr.assign(perm.begin(), perm.begin() + lo);
    tr.insert(tr.end(), perm.begin() + hi, perm.end());
  };

  // One form for all folds and the refit: the primal (p x p systems) when every training fold has
  // at least p rows, else the dual (n_tr x n_tr), so the factorised matrix is the smaller one.
  int64_t ntr_min = n;
  for (int f = 0; f < folds; ++f) ntr_min = std::min(ntr_min, n - (n * (f + 1) / folds - n * f / folds));
  const bool primal = ntr_min >= p;
  const Tensor gram = primal ? kernels::matmul(xc64.t(), xc64) : kernels::matmul(xc64, xc64.t());
  // Primal: Xc^T Yc for every voxel, the part of each fold's right-hand side shared by all folds.
  Tensor xty;
  if (primal) {
    xty = empty({p, v}, dt);
    for (int64_t v0 = 0; v0 < v; v0 += voxel_batch) {
      const int64_t vb = std::min(voxel_batch, v - v0);
      xty.narrow(1, v0, vb).copy_(kernels::matmul(xc.t(), centred_block(Y, v0, vb, my)));
    }
  }

  Tensor scores = zeros({na, v}, DType::Float64);
  double* sc = scores.data<double>();
  std::vector<int64_t> tr, va;
  for (int f = 0; f < folds; ++f) {
    fold_rows(f, tr, va);
    const int64_t ntr = static_cast<int64_t>(tr.size());
    const FoldSystem fs = primal ? primal_fold(gram, xc64, tr, va) : dual_fold(gram, tr, va);
    const std::vector<Tensor> M = penalty_maps(fs, alphas, dt);
    const Tensor xva = primal ? gather_rows(xc, va) : Tensor();
    for (int64_t v0 = 0; v0 < v; v0 += voxel_batch) {
      const int64_t vb = std::min(voxel_batch, v - v0);
      const Tensor yb = centred_block(Y, v0, vb, my);
      const std::vector<double> myf = row_subset_means(yb, tr);
      const Tensor yva = gather_rows(yb, va);
      const Targets t = validation_targets(yva, myf);
      const Tensor rhs = primal ? primal_rhs(xty, v0, xva, yva, fs.mxf, myf, ntr) : dual_rhs(yb, tr, myf);
      for (int64_t a = 0; a < na; ++a) add_r2(kernels::matmul(M[a], rhs), t, sc + a * v + v0, folds);
    }
  }

  RidgeCV out;
  out.alphas = alphas;
  out.cv_scores = scores;
  out.best_alpha = empty({v}, DType::Float64);
  double* best = out.best_alpha.data<double>();
  std::vector<std::vector<int64_t>> group(na);  // the voxels choosing each penalty
  for (int64_t j = 0; j < v; ++j) {
    int64_t arg = 0;  // ties go to the smaller index, i.e. the first-listed alpha
    for (int64_t a = 1; a < na; ++a)
      if (sc[a * v + j] > sc[arg * v + j]) arg = a;
    best[j] = alphas[arg];
    group[arg].push_back(j);
  }

  // Refit on all rows: one factorisation per penalty in use, solved for all its voxels; the
  // voxels are cut into chunks of at most voxel_batch, at least one per thread.
  out.weights = empty({p, v}, dt);
  out.intercept = empty({v}, dt);
  const int64_t threads = omp_get_max_threads();
  const Tensor ycontig = primal ? Tensor() : Y.contiguous();
  for (int64_t a = 0; a < na; ++a) {
    const auto& g = group[a];
    if (g.empty()) continue;
    const int64_t ng = static_cast<int64_t>(g.size());
    const Tensor l = shifted_cholesky(gram, alphas[a]);
    const int64_t chunk = std::min(voxel_batch, (ng + threads - 1) / threads);
    parallel_each((ng + chunk - 1) / chunk, [&](int64_t c) {
      const int64_t c0 = c * chunk, cn = std::min(chunk, ng - c0);
      // Right-hand side columns in float64: Xc^T Yc (primal) or Yc (dual).
      Tensor rhs = empty({primal ? p : n, cn}, DType::Float64);
      double* r = rhs.data<double>();
      dispatch_float(dt, fn, [&](auto tag) {
        using T = decltype(tag);
        if (primal) {
          const T* src = xty.data<T>();
          for (int64_t k = 0; k < p; ++k)
            for (int64_t j = 0; j < cn; ++j) r[k * cn + j] = static_cast<double>(src[k * v + g[c0 + j]]);
        } else {
          const T* src = ycontig.data<T>();
          for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < cn; ++j) r[i * cn + j] = static_cast<double>(src[i * v + g[c0 + j]]) - my[g[c0 + j]];
        }
      });
      Tensor w = kernels::cholesky_solve(l, rhs);
      if (!primal) w = kernels::matmul(xc64.t(), w);  // W = Xc^T (K + aI)^-1 Yc
      const double* wp = w.data<double>();
      dispatch_float(dt, fn, [&](auto tag) {
        using T = decltype(tag);
        T* W = out.weights.data<T>();
        T* b = out.intercept.data<T>();
        for (int64_t j = 0; j < cn; ++j) {
          const int64_t col = g[c0 + j];
          double s = my[col];
          for (int64_t k = 0; k < p; ++k) {
            W[k * v + col] = static_cast<T>(wp[k * cn + j]);
            s -= mx[k] * wp[k * cn + j];
          }
          b[col] = static_cast<T>(s);
        }
      });
    });
  }
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
  const double tol = rank_tol(sv.s, x.size(0), x.size(1));
  const Tensor w = kernels::matmul(sv.vh.t(), scale_rows(kernels::matmul(sv.u.t(), y), sv.s, tol, alpha));
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
