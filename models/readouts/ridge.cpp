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

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "dist/comm.h"
#include "kernels/cpu/parallel.h"
#include "kernels/elementwise.h"
#include "kernels/index.h"
#include "kernels/linalg.h"
#include "kernels/matmul.h"
#include "kernels/reduce.h"

namespace cortex::models {
namespace {

// any_device: the function runs on every device through kernel entries (else the CPU only).
void check_matrix(const Tensor& t, const char* fn, const char* name, bool any_device = false) {
  CORTEX_CHECK(t.defined(), fn, ": ", name, " is undefined");
  CORTEX_CHECK(t.dim() == 2, fn, ": expected ", name, " to be 2-D, found shape ", shape_str(t.shape()));
  CORTEX_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, fn, ": expected ", name,
               " float32 or float64, found ", dtype_name(t.dtype()));
  CORTEX_CHECK(any_device || t.device() == Device::cpu(), fn, ": expected ", name, " on the CPU, found ",
               t.device().str());
}

// Contiguous float64 copy; throws on a non-finite value (a NaN voxel would poison every score).
Tensor to64_finite(const Tensor& t, const char* fn, const char* name) {
  Tensor d = t.to(DType::Float64).contiguous();
  if (d.is_same(t)) d = t.clone();  // never centre the caller's tensor in place
  const double* p = d.data<double>();
  const int64_t n = d.numel();
  // The last bad index: each fixed chunk's last, the chunks' maximum (parallel.h).
  const int64_t bad = parallel::reduce_chunks(
      n, 1 << 14, int64_t{-1},
      [&](int64_t lo, int64_t hi) {
        int64_t b = -1;
        for (int64_t i = lo; i < hi; ++i)
          if (!std::isfinite(p[i])) b = i;
        return b;
      },
      [](int64_t a, int64_t b) { return std::max(a, b); });
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
  parallel::for_each(n, double(n) * double(c), [&](int64_t i) {
    for (int64_t j = 0; j < c; ++j) p[i * c + j] -= mean[j];
  });
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
  parallel::for_each(r, double(r) * double(v), [&](int64_t k) {
    const double sk = sv[k];
    for (int64_t j = 0; j < v; ++j) o[k * v + j] = sk > tol ? a[k * v + j] * sk / (sk * sk + alpha) : 0.0;
  });
  return out;
}

// ---- fit_ridge_cv: kernel entries only, so it runs on the device of X and Y ----------------

namespace K = kernels;

Tensor sub(const Tensor& a, const Tensor& b) { return K::binary(K::Binary::Sub, a, b); }
Tensor add(const Tensor& a, const Tensor& b) { return K::binary(K::Binary::Add, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return K::binary(K::Binary::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return K::binary(K::Binary::Div, a, b); }
// A 0-d float64 tensor on t's device (the scalar operand of a broadcast op).
Tensor scalar(double v, const Tensor& t) { return full({}, v, DType::Float64, t.device()); }
Tensor sum0(const Tensor& t) { return K::reduce(K::Reduce::Sum, t, {0}, true); }
Tensor mean0(const Tensor& t) { return K::reduce(K::Reduce::Mean, t, {0}, true); }
// Column sums of squares, accumulated in float64: the 2-norm's sum before its root, squared back
// (one pass instead of a product and a sum; relative rounding ~1e-16).
Tensor sum_sq0(const Tensor& t) {
  const Tensor r = K::norm(t, 2.0, {0});
  return mul(r, r);
}
Tensor rows_index(const std::vector<int64_t>& rows, Device d) {
  return from_vector(rows, {static_cast<int64_t>(rows.size())}, DType::Int64, d);
}

// Throws on a non-finite value of t, naming the last one as the CPU loop did: one reduction on
// t's device (x * 0 is NaN exactly for NaN and +-Inf), the host scan only when it fails.
void check_finite(const Tensor& t, const char* fn, const char* name) {
  if (t.numel() == 0) return;
  const Tensor zero = full({}, 0.0, t.dtype(), t.device());
  if (std::isfinite(K::reduce(K::Reduce::Sum, K::binary(K::Binary::Mul, t, zero)).item())) return;
  const Tensor h = t.to(Device::cpu()).to(DType::Float64).contiguous();
  const double* p = h.data<double>();
  int64_t bad = -1;
  for (int64_t i = 0; i < h.numel(); ++i)
    if (!std::isfinite(p[i])) bad = i;
  CORTEX_CHECK(bad < 0, fn, ": expected finite ", name, ", found ", p[bad], " at flat index ", bad);
}

// One fold's system: pred = C (S + a I)^-1 R. float64.
struct FoldSystem {
  Tensor S;    // (d, d), symmetric positive semi-definite
  Tensor C;    // (nva, d)
  Tensor mxf;  // primal only: the training fold's mean of the globally centred X, (1, p)
};

// Primal: Xtr_c = Xtr - 1 mxf^T, so Xtr_c^T Xtr_c = (X^T X - Xva^T Xva) - ntr mxf mxf^T. The
// training mean is (column sums of Xc - those of Xva) / ntr, with no gather of the training rows.
FoldSystem primal_fold(const Tensor& gram, const Tensor& xc64, const Tensor& xsum, const Tensor& va, int64_t ntr) {
  FoldSystem fs;
  const Tensor xva = K::index_select(xc64, 0, va);
  fs.mxf = div(sub(xsum, sum0(xva)), scalar(static_cast<double>(ntr), xva));
  const Tensor outer = K::matmul(fs.mxf.t(), fs.mxf);
  fs.S = sub(sub(gram, K::matmul(xva.t(), xva)), mul(outer, scalar(static_cast<double>(ntr), xva)));
  fs.C = sub(xva, fs.mxf);
  return fs;
}

// Dual: with K = Xc Xc^T and m the training mean, (x_i - m).(x_j - m) = K_ij - r_i - r_j + K̄, where
// r_i = x_i.m is row i's mean over the training columns of K and K̄ = m.m the mean of the r_j, j in tr.
FoldSystem dual_fold(const Tensor& gram, const Tensor& tr, const Tensor& va) {
  const Tensor ktr = K::index_select(gram, 1, tr);  // (n, ntr)
  const Tensor r = K::reduce(K::Reduce::Mean, ktr, {1}, true);
  const Tensor rt = K::index_select(r, 0, tr), rv = K::index_select(r, 0, va);
  const Tensor kbar = K::reduce(K::Reduce::Mean, rt);
  FoldSystem fs;
  fs.S = add(sub(sub(K::index_select(ktr, 0, tr), rt), rt.t()), kbar);
  fs.C = add(sub(sub(K::index_select(ktr, 0, va), rv), rt.t()), kbar);
  return fs;
}

// (d, d) s + a I for each penalty a of `al` ((c) float64): (c, d, d), s copied c times and each
// penalty added to its copy's diagonal (a strided view), so only the diagonal is computed.
Tensor shifted(const Tensor& s, const std::vector<double>& al) {
  const int64_t d = s.size(0), c = static_cast<int64_t>(al.size());
  Tensor m = empty({c, d, d}, DType::Float64, s.device());
  m.copy_(s.unsqueeze(0).expand({c, d, d}));
  Tensor diag(m.storage(), {c, d}, {d * d, d + 1}, m.offset(), m.dtype());
  diag.copy_(add(diag, from_vector(al, {c, 1}, DType::Float64, s.device())));
  return m;
}

// M_a = C (S + a I)^-1 for every penalty, (nva, d) each, in dtype dt. float64 factorisations: the
// spectrum of S spans many decades and the small penalties sit near its bottom. Penalties go in
// batches of at most 256 MB of factors: the batched kernels run the matrices of a batch side by
// side (one per OpenMP thread on the CPU, one block each on a device).
std::vector<Tensor> penalty_maps(const FoldSystem& fs, const std::vector<double>& alphas, DType dt) {
  const int64_t d = fs.S.size(0), nva = fs.C.size(0), na = static_cast<int64_t>(alphas.size());
  const int64_t chunk = std::clamp<int64_t>((int64_t{256} << 20) / std::max<int64_t>(8 * d * d, 1), 1, na);
  const Tensor ct = fs.C.t();
  std::vector<Tensor> M(alphas.size());
  for (int64_t a0 = 0; a0 < na; a0 += chunk) {
    const int64_t c = std::min(chunk, na - a0);
    const Tensor l = K::cholesky(shifted(fs.S, std::vector<double>(alphas.begin() + a0, alphas.begin() + a0 + c)));
    const Tensor x = K::cholesky_solve(l, ct.unsqueeze(0).expand({c, d, nva}));  // (S + aI)^-1 C^T
    for (int64_t i = 0; i < c; ++i) M[a0 + i] = x.select(0, i).t().to(dt);      // S symmetric
  }
  return M;
}

}  // namespace

RidgeCV fit_ridge_cv(const Tensor& X, const Tensor& Y, const std::vector<double>& alphas, int folds, uint64_t seed,
                     int64_t voxel_batch) {
  const char* fn = "fit_ridge_cv";
  check_matrix(X, fn, "X", true);
  check_matrix(Y, fn, "Y", true);
  CORTEX_CHECK(X.device() == Y.device(), fn, ": expected X and Y on one device, found ", X.device().str(), " and ",
               Y.device().str());
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
  const Device dev = X.device();
  const DType f64 = DType::Float64;

  // Centre globally first, so every fold's mean is a small correction and the Gram subtractions
  // below lose no digits to large feature or response means.
  const Tensor x64 = X.to(f64);
  check_finite(x64, fn, "X");
  const Tensor mx = mean0(x64);      // (1, p)
  const Tensor xc64 = sub(x64, mx);  // a new tensor: the caller's X is never touched
  const Tensor xc = xc64.to(dt);     // operand of the big products, in the input dtype
  check_finite(Y, fn, "Y");
  Tensor my = empty({1, v}, f64, dev);
  for (int64_t v0 = 0; v0 < v; v0 += voxel_batch) {
    const int64_t vb = std::min(voxel_batch, v - v0);
    my.narrow(1, v0, vb).copy_(mean0(Y.narrow(1, v0, vb).to(f64)));
  }
  // Voxels [v0, v0+vb) of Y minus their means, in the input dtype.
  auto centred_block = [&](int64_t v0, int64_t vb) { return sub(Y.narrow(1, v0, vb).to(f64), my.narrow(1, v0, vb)).to(dt); };

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
  // The work is cut into units fixed by the problem size alone (column blocks of the Gram, voxel
  // blocks, (fold, voxel block) pairs, refit chunks), each computed whole by one rank and gathered
  // in unit order (dist::for_units), so the result is the same bits for any number of MPI ranks;
  // one process runs the same units in a loop (docs/distributed.md).
  const int64_t vblock = std::min(voxel_batch, std::max<int64_t>(128, (v + 63) / 64));
  const int64_t nvb = (v + vblock - 1) / vblock;
  const auto vrange = [&](int64_t b) { return std::pair<int64_t, int64_t>{b * vblock, std::min(vblock, v - b * vblock)}; };
  // Gram of the globally centred features, in column blocks: X^T X (primal) or X X^T (dual).
  const int64_t gd = primal ? p : n, gw = std::max<int64_t>(256, (gd + 63) / 64), ngb = (gd + gw - 1) / gw;
  const auto gram_blocks = dist::run_units(
      ngb,
      [&](int64_t b) {
        const int64_t c0 = b * gw, cw = std::min(gw, gd - c0);
        return std::vector<Tensor>{primal ? K::matmul(xc64.t(), xc64.narrow(1, c0, cw))
                                          : K::matmul(xc64, xc64.narrow(0, c0, cw).t())};
      },
      true, dev);
  std::vector<Tensor> gcols;
  for (const auto& u : gram_blocks) gcols.push_back(u[0]);
  const Tensor gram = gcols.size() == 1 ? gcols[0] : K::concat(gcols, 1);
  // Primal: Xc^T Yc for every voxel, the part of each fold's right-hand side shared by all folds.
  Tensor xty, xsum;
  if (primal) {
    xty = empty({p, v}, dt, dev);
    dist::for_units(
        nvb,
        [&](int64_t b) {
          const auto [v0, vb] = vrange(b);
          return std::vector<Tensor>{K::matmul(xc.t(), centred_block(v0, vb))};
        },
        [&](int64_t b, std::vector<Tensor>& u) { xty.narrow(1, vrange(b).first, vrange(b).second).copy_(u[0]); }, true,
        dev);
    xsum = sum0(xc64);
  }

  // Cross-validation in (fold, voxel block) units, fold-major; a rank builds a fold's system and
  // penalty maps once for the units it owns. Each unit returns its R^2 / folds per penalty,
  // (na, vb); the scores are their sums in fold order, as one process adds them.
  const Tensor one = full({}, 1.0, f64, dev), zero = full({}, 0.0, f64, dev), nfolds = full({}, double(folds), f64, dev);
  int cached_fold = -1;
  FoldSystem fs;
  std::vector<Tensor> M;
  Tensor tri, vai, xva;
  int64_t ntr = 0;
  Tensor scores = zeros({na, v}, f64, dev);
  dist::for_units(
      int64_t{folds} * nvb,
      [&](int64_t u) {
        const int f = static_cast<int>(u / nvb);
        if (f != cached_fold) {
          std::vector<int64_t> tr, va;
          fold_rows(f, tr, va);
          ntr = static_cast<int64_t>(tr.size());
          tri = rows_index(tr, dev), vai = rows_index(va, dev);
          fs = primal ? primal_fold(gram, xc64, xsum, vai, ntr) : dual_fold(gram, tri, vai);
          M = penalty_maps(fs, alphas, dt);
          xva = primal ? K::index_select(xc, 0, vai) : Tensor();
          cached_fold = f;
        }
        const auto [v0, vb] = vrange(u % nvb);
        const Tensor yb = centred_block(v0, vb);
        const Tensor yb64 = yb.to(f64);
        const Tensor ytr = K::index_select(yb64, 0, tri);
        const Tensor myf = mean0(ytr);  // the training fold's voxel means, (1, vb)
        // Validation targets centred with the training means; R^2 about the fold's own mean
        // (sklearn's r2_score); a voxel constant on the fold has nothing to explain and scores 0.
        const Tensor yva = K::index_select(yb, 0, vai);
        const Tensor y = sub(yva.to(f64), myf);
        const Tensor sstot = sum_sq0(sub(y, mean0(y)));
        const Tensor constant = K::reduce(K::Reduce::All, K::compare(K::Compare::Eq, y, y.narrow(0, 0, 1)), {0});
        // Right-hand side: primal Xtr_c^T Ytr_c = (Xc^T Yc - Xva^T Yva) - ntr mxf myf^T (the
        // cancellation is mild: the fold means are corrections to a centred whole); dual Ytr_c.
        const Tensor rhs =
            primal ? K::axpy(sub(xty.narrow(1, v0, vb).to(f64), K::matmul(xva.t(), yva).to(f64)),
                             -static_cast<double>(ntr), K::matmul(fs.mxf.t(), myf))
                         .to(dt)
                   : sub(ytr, myf).to(dt);
        std::vector<Tensor> r2s;
        for (int64_t a = 0; a < na; ++a) {
          const Tensor ss = sum_sq0(sub(y, K::matmul(M[a], rhs).to(f64)));
          r2s.push_back(div(K::where(constant, zero, sub(one, div(ss, sstot))), nfolds).reshape({1, vb}));
        }
        return std::vector<Tensor>{K::concat(r2s, 0)};  // (na, vb)
      },
      [&](int64_t u, std::vector<Tensor>& r2) {
        Tensor s = scores.narrow(1, vrange(u % nvb).first, vrange(u % nvb).second);
        s.copy_(add(s, r2[0]));
      },
      true, dev);

  RidgeCV out;
  out.alphas = alphas;
  out.cv_scores = scores.to(Device::cpu());
  // Each voxel's best penalty (ties: the first listed, argmax's first maximum).
  const Tensor arg = K::argmax(scores, 0).to(Device::cpu());
  out.best_alpha = empty({v}, f64);
  double* best = out.best_alpha.data<double>();
  std::vector<std::vector<int64_t>> group(na);  // the voxels choosing each penalty
  for (int64_t j = 0; j < v; ++j) {
    const int64_t a = arg.data<int64_t>()[j];
    best[j] = alphas[a];
    group[a].push_back(j);
  }

  // Refit on all rows: one factorisation per penalty in use, solved for its voxels in chunks of
  // vblock: W = (G + aI)^-1 Xc^T Yc (primal) or Xc^T (K + aI)^-1 Yc (dual), b = my - mx W.
  // The chunks' columns are put back in voxel order by one gather at the end. Units: (penalty,
  // chunk of its voxels), in penalty order; a rank factorises a penalty's system once for its units.
  std::vector<std::pair<int64_t, std::vector<int64_t>>> chunks;  // penalty index, its voxels
  std::vector<int64_t> order;  // the voxel of each chunk column, in chunk order
  for (int64_t a = 0; a < na; ++a)
    for (size_t c0 = 0; c0 < group[a].size(); c0 += static_cast<size_t>(vblock)) {
      chunks.emplace_back(a, std::vector<int64_t>(group[a].begin() + c0,
                                                  group[a].begin() + std::min(group[a].size(), c0 + vblock)));
      order.insert(order.end(), chunks.back().second.begin(), chunks.back().second.end());
    }
  int64_t cached_alpha = -1;
  Tensor l;
  const auto refit = dist::run_units(
      static_cast<int64_t>(chunks.size()),
      [&](int64_t u) {
        const auto& [a, cols] = chunks[u];
        if (a != cached_alpha) l = K::cholesky(shifted(gram, {alphas[a]})).select(0, 0), cached_alpha = a;
        const Tensor gi = rows_index(cols, dev);
        const Tensor myg = K::index_select(my, 1, gi);
        const Tensor rhs = primal ? K::index_select(xty, 1, gi).to(f64) : sub(K::index_select(Y, 1, gi).to(f64), myg);
        Tensor w = K::cholesky_solve(l, rhs);
        if (!primal) w = K::matmul(xc64.t(), w);
        return std::vector<Tensor>{w.to(dt), sub(myg, K::matmul(mx, w)).to(dt)};
      },
      true, dev);
  std::vector<Tensor> ws, bs;
  for (const auto& u : refit) ws.push_back(u[0]), bs.push_back(u[1]);
  std::vector<int64_t> pos(v);
  for (int64_t i = 0; i < v; ++i) pos[order[i]] = i;
  const Tensor back = rows_index(pos, dev);
  out.weights = K::index_select(K::concat(ws, 1), 1, back);
  out.intercept = K::index_select(K::concat(bs, 1), 1, back).reshape({v});
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
  check_matrix(X, fn, "X", true);
  check_matrix(weights, fn, "weights", true);
  CORTEX_CHECK(intercept.defined() && intercept.dim() == 1, fn, ": expected a 1-D intercept");
  CORTEX_CHECK(X.size(1) == weights.size(0), fn, ": expected X with ", weights.size(0), " columns, found ",
               X.size(1));
  CORTEX_CHECK(intercept.size(0) == weights.size(1), fn, ": expected an intercept of ", weights.size(1),
               " values, found ", intercept.size(0));
  const Tensor w = weights.to(X.dtype()).to(X.device()), b = intercept.to(X.dtype()).to(X.device());
  return kernels::linear(X, w.t(), b);
}

}  // namespace cortex::models
