// CPU dense linear algebra: Eigen's SelfAdjointEigenSolver, BDCSVD, LLT, PartialPivLU and
// HouseholderQR on a column-major copy of the input (the copy also reads any strided view).
//
// Every input is scanned for NaN/Inf first: Eigen's decompositions would otherwise return NaN
// factors silently. Symmetric inputs are checked to be symmetric to a tolerance and then
// symmetrised, so a matrix that is symmetric up to rounding (x x^T from a GEMM) is accepted.
#include "kernels/cpu/linalg.h"

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized inside Eigen (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/LU>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace cortex::kernels::cpu {
namespace {

using Eigen::Dynamic;
template <class T> using Mat = Eigen::Matrix<T, Dynamic, Dynamic>;
template <class T> using Vec = Eigen::Matrix<T, Dynamic, 1>;
template <class T> using RowMat = Eigen::Matrix<T, Dynamic, Dynamic, Eigen::RowMajor>;

template <class T> constexpr T eps() { return std::numeric_limits<T>::epsilon(); }

// A 2-D tensor (or a 1-D one as a column) as a column-major Eigen matrix; throws on NaN/Inf.
template <class T>
Mat<T> load(const Tensor& t, const char* op, const char* name) {
  const int64_t r = t.size(0), c = t.dim() == 2 ? t.size(1) : 1;
  const int64_t rs = t.stride(0), cs = t.dim() == 2 ? t.stride(1) : 1;
  using Strided = Eigen::Map<const Mat<T>, 0, Eigen::Stride<Dynamic, Dynamic>>;
  Mat<T> m = Strided(t.data<T>(), r, c, Eigen::Stride<Dynamic, Dynamic>(cs, rs));
  CORTEX_CHECK(m.allFinite(), op, ": expected finite values in ", name, ", found NaN or Inf");
  return m;
}

// A new contiguous tensor of the matrix (shape (rows, cols), or (rows) for a vector result).
// Into `dst` instead when given (contiguous, of that shape: a batch's item).
template <class T, class M>
Tensor store(const M& m, Shape shape, const Tensor& dst = Tensor()) {
  Tensor t = dst.defined() ? dst : empty(shape, dtype_of<T>());
  Eigen::Map<RowMat<T>>(t.data<T>(), m.rows(), m.cols()) = m;
  return t;
}

// Symmetric to rounding: |a - a^T| <= tol * max|a|, tol well above GEMM rounding (a = x x^T) and
// far below what a genuinely non-symmetric matrix shows. Returns the symmetrised matrix.
template <class T>
Mat<T> symmetric(const Mat<T>& a, const char* op) {
  if (a.size() == 0) return a;
  const T scale = a.cwiseAbs().maxCoeff();
  const T asym = (a - a.transpose()).cwiseAbs().maxCoeff();
  const T tol = (sizeof(T) == 4 ? T(1e-4) : T(1e-8)) * scale;
  CORTEX_CHECK(asym <= tol, op, ": expected a symmetric matrix, found |a - a^T| up to ", asym, " (max |a| ", scale,
               ")");
  return (a + a.transpose()) / T(2);
}

// The sign convention of eigenvectors: each column's sum is positive; when the sum is zero to
// rounding (vectors orthogonal to the ones vector, such as a graph Laplacian's), the first entry
// that is non-zero to rounding is positive. The tolerances sit above the rounding noise of a
// unit vector (sum: sqrt(n) * 256 eps; entries: 256 eps) so the choice does not flip on noise.
template <class T>
void fix_signs(Mat<T>& v) {
  const int64_t n = v.rows();
  const T sum_tol = std::sqrt(static_cast<T>(n)) * T(256) * eps<T>();
  const T entry_tol = T(256) * eps<T>();
  for (int64_t j = 0; j < v.cols(); ++j) {
    const T s = v.col(j).sum();
    bool flip = false;
    if (std::abs(s) > sum_tol) {
      flip = s < 0;
    } else {
      for (int64_t i = 0; i < n; ++i)
        if (std::abs(v(i, j)) > entry_tol) {
          flip = v(i, j) < 0;
          break;
        }
    }
    if (flip) v.col(j) = -v.col(j);
  }
}

// Full symmetric eigendecomposition, eigenvalues ascending.
template <class T>
Eigen::SelfAdjointEigenSolver<Mat<T>> solve_eigh(const Tensor& a, const char* op) {
  const Mat<T> s = symmetric<T>(load<T>(a, op, "a"), op);
  parallel::SerialEigen serial_eigen;  // Eigen's threaded GEMM sums in a thread-count order
  Eigen::SelfAdjointEigenSolver<Mat<T>> es(s, Eigen::ComputeEigenvectors);
  CORTEX_CHECK(es.info() == Eigen::Success, op, ": the symmetric eigensolver did not converge");
  return es;
}

// Matrices of a batched (..., r, c) tensor: the product of the first nbatch dims.
int64_t batch_count(const Tensor& t, int64_t nbatch) {
  int64_t c = 1;
  for (int64_t d = 0; d < nbatch; ++d) c *= t.size(d);
  return c;
}
// The i-th item (row-major over the first nbatch dims) as a view.
Tensor batch_item(const Tensor& t, int64_t nbatch, int64_t i) {
  Tensor v = t;
  for (int64_t d = nbatch - 1; d >= 0; --d) {
    v = v.select(d, i % t.size(d));
    i /= t.size(d);
  }
  return v;
}

// out[i] = f(i, out[i]) for every item of a batch, side by side on the OpenMP threads (Eigen's LLT
// and triangular solves run on one thread each); f writes into its item, or returns a tensor to
// copy there. The first exception is carried out and rethrown.
template <class F>
Tensor batched(const Shape& out_shape, DType dt, int64_t nbatch, int64_t count, F&& f) {
  Tensor out = empty(out_shape, dt);
  std::vector<std::exception_ptr> err(static_cast<size_t>(count));
  parallel::for_chunks(count, 1, count > 1 ? double(parallel::kGrain) : 0.0, [&](int64_t i, int64_t) {
    try {
      Tensor item = batch_item(out, nbatch, i);
      const Tensor r = f(i, item);
      if (!r.is_same(item)) item.copy_(r);
    } catch (...) {
      err[static_cast<size_t>(i)] = std::current_exception();
    }
  });
  for (auto& e : err)
    if (e) std::rethrow_exception(e);
  return out;
}

}  // namespace

Eigh eigh(const Tensor& a) {
  const int64_t n = a.size(0);
  return dispatch_float(a.dtype(), "eigh", [&](auto tag) -> Eigh {
    using T = decltype(tag);
    if (n == 0) return {empty({0}, a.dtype()), empty({0, 0}, a.dtype())};
    auto es = solve_eigh<T>(a, "eigh");
    Mat<T> v = es.eigenvectors();
    fix_signs(v);
    return {store<T>(es.eigenvalues(), {n}), store<T>(v, {n, n})};
  });
}

// The full solver, then k columns: Eigen has no partial symmetric eigensolver, and the full one
// is exact and O(n^3) with a small constant, fine for the n (<= a few thousand) this serves; the
// large-n path (Nystrom) lives in analysis/ and calls this on its small core matrix.
Eigh eigh_topk(const Tensor& a, int64_t k, bool largest) {
  const int64_t n = a.size(0);
  return dispatch_float(a.dtype(), "eigh_topk", [&](auto tag) -> Eigh {
    using T = decltype(tag);
    if (k == 0) return {empty({0}, a.dtype()), empty({n, 0}, a.dtype())};
    auto es = solve_eigh<T>(a, "eigh_topk");
    Vec<T> vals(k);
    Mat<T> vecs(n, k);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t src = largest ? n - 1 - j : j;  // descending for largest, ascending for smallest
      vals(j) = es.eigenvalues()(src);
      vecs.col(j) = es.eigenvectors().col(src);
    }
    fix_signs(vecs);
    return {store<T>(vals, {k}), store<T>(vecs, {n, k})};
  });
}

Svd svd(const Tensor& a) {
  const int64_t m = a.size(0), n = a.size(1), r = std::min(m, n);
  return dispatch_float(a.dtype(), "svd", [&](auto tag) -> Svd {
    using T = decltype(tag);
    if (r == 0) return {zeros({m, 0}, a.dtype()), zeros({0}, a.dtype()), zeros({0, n}, a.dtype())};
    const Mat<T> x = load<T>(a, "svd", "a");
    parallel::SerialEigen serial_eigen;
    Eigen::BDCSVD<Mat<T>> sv(x, Eigen::ComputeThinU | Eigen::ComputeThinV);
    CORTEX_CHECK(sv.info() == Eigen::Success, "svd: the SVD did not converge");
    // Eigen returns singular values in descending order.
    return {store<T>(sv.matrixU(), {m, r}), store<T>(sv.singularValues(), {r}),
            store<T>(sv.matrixV().transpose(), {r, n})};
  });
}

static Tensor cholesky2d(const Tensor& a, const Tensor& dst = Tensor()) {
  const int64_t n = a.size(0);
  return dispatch_float(a.dtype(), "cholesky", [&](auto tag) -> Tensor {
    using T = decltype(tag);
    if (n == 0) return empty({0, 0}, a.dtype());
    const Mat<T> s = symmetric<T>(load<T>(a, "cholesky", "a"), "cholesky");
    parallel::SerialEigen serial_eigen;
    Eigen::LLT<Mat<T>> llt(s);
    CORTEX_CHECK(llt.info() == Eigen::Success,
                 "cholesky: expected a symmetric positive definite matrix, found a non-positive pivot");
    const Mat<T> l = llt.matrixL();  // the strict upper triangle is zero
    return store<T>(l, {n, n}, dst);
  });
}

Tensor solve(const Tensor& a, const Tensor& b) {
  const int64_t n = a.size(0), k = b.dim() == 2 ? b.size(1) : 1;
  return dispatch_float(a.dtype(), "solve", [&](auto tag) -> Tensor {
    using T = decltype(tag);
    if (n == 0 || k == 0) return zeros(b.shape(), b.dtype());
    const Mat<T> am = load<T>(a, "solve", "a");
    const Mat<T> bm = load<T>(b, "solve", "b");
    parallel::SerialEigen serial_eigen;
    Eigen::PartialPivLU<Mat<T>> lu(am);
    // A zero pivot means exactly singular; a reciprocal condition number below eps means the
    // solution would be all rounding noise. Either is an error, never a NaN/garbage result.
    const Vec<T> piv = lu.matrixLU().diagonal();
    CORTEX_CHECK((piv.array() != T(0)).all(), "solve: expected a non-singular matrix, found a zero pivot");
    const T rc = lu.rcond();
    CORTEX_CHECK(rc > eps<T>(), "solve: expected a non-singular matrix, found reciprocal condition number ", rc);
    const Mat<T> x = lu.solve(bm);
    CORTEX_CHECK(x.allFinite(), "solve: the solution overflowed (matrix too close to singular)");
    return store<T>(x, b.shape());
  });
}

static Tensor cholesky_solve2d(const Tensor& l, const Tensor& b, const Tensor& dst = Tensor()) {
  const int64_t n = l.size(0), k = b.dim() == 2 ? b.size(1) : 1;
  return dispatch_float(l.dtype(), "cholesky_solve", [&](auto tag) -> Tensor {
    using T = decltype(tag);
    if (n == 0 || k == 0) return zeros(b.shape(), b.dtype());
    // Only the lower triangle of l is read, as the factor cholesky() returns.
    const Mat<T> lm = load<T>(l, "cholesky_solve", "l");
    Mat<T> x = load<T>(b, "cholesky_solve", "b");
    CORTEX_CHECK((lm.diagonal().array() != T(0)).all(),
                 "cholesky_solve: expected a factor with a non-zero diagonal, found a zero (singular)");
    const auto lower = lm.template triangularView<Eigen::Lower>();
    // Blocks of 64 columns side by side, each solved by Eigen on one thread: the blocks are fixed
    // by k alone, so the result does not depend on the thread count (parallel.h). Inside a parallel
    // region (one matrix of a batch per thread) the blocks run one after another.
    parallel::for_chunks(k, 64, double(n) * double(n) * double(k), [&](int64_t c0, int64_t c1) {
      auto cols = x.middleCols(c0, c1 - c0);
      lower.solveInPlace(cols);              // l y = b
      lower.transpose().solveInPlace(cols);  // l^T x = y
    });
    CORTEX_CHECK(x.allFinite(), "cholesky_solve: the solution overflowed (factor too close to singular)");
    return store<T>(x, b.shape(), dst);
  });
}

// Batches: one 2-D factorisation or solve per matrix.
Tensor cholesky(const Tensor& a) {
  if (a.dim() == 2) return cholesky2d(a);
  const int64_t nb = a.dim() - 2;
  return batched(a.shape(), a.dtype(), nb, batch_count(a, nb),
                 [&](int64_t i, const Tensor& dst) { return cholesky2d(batch_item(a, nb, i), dst); });
}

Tensor cholesky_solve(const Tensor& l, const Tensor& b) {
  if (l.dim() == 2) return cholesky_solve2d(l, b);
  const int64_t nb = l.dim() - 2;
  return batched(b.shape(), b.dtype(), nb, batch_count(l, nb),
                 [&](int64_t i, const Tensor& dst) {
    return cholesky_solve2d(batch_item(l, nb, i), batch_item(b, nb, i), dst);
  });
}

Qr qr(const Tensor& a) {
  const int64_t m = a.size(0), n = a.size(1), r = std::min(m, n);
  return dispatch_float(a.dtype(), "qr", [&](auto tag) -> Qr {
    using T = decltype(tag);
    if (r == 0) return {zeros({m, 0}, a.dtype()), zeros({0, n}, a.dtype())};
    const Mat<T> x = load<T>(a, "qr", "a");
    parallel::SerialEigen serial_eigen;
    Eigen::HouseholderQR<Mat<T>> h(x);
    Mat<T> q = h.householderQ() * Mat<T>::Identity(m, r);  // thin Q without forming the full one
    Mat<T> rr = h.matrixQR().topRows(r).template triangularView<Eigen::Upper>();
    // Unique factors: flip row i of r and column i of q where r(i, i) < 0 (q r is unchanged).
    for (int64_t i = 0; i < r; ++i)
      if (rr(i, i) < 0) {
        rr.row(i) = -rr.row(i);
        q.col(i) = -q.col(i);
      }
    return {store<T>(q, {m, r}), store<T>(rr, {r, n})};
  });
}

}  // namespace cortex::kernels::cpu
