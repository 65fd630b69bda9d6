// Top-k symmetric eigensolvers (eigensolver.h). The matrix-free solvers keep their basis in the
// options' dtype (float32 halves the memory traffic of big bases; float64 is what the tests compare
// with) and solve every small projected problem in float64 with Eigen.
#include "analysis/spectral/eigensolver.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen + GCC 12 AVX-512 (GCC bug 105593)
#endif

#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/cpu/parallel.h"
#include "kernels/linalg.h"
#include "tensor/random.h"

namespace cortex::analysis::spectral {

namespace {

using Eigen::Dynamic;
template <class T> using Mat = Eigen::Matrix<T, Dynamic, Dynamic>;
template <class T> using RowMat = Eigen::Matrix<T, Dynamic, Dynamic, Eigen::RowMajor>;
using MatD = Mat<double>;
using VecD = Eigen::VectorXd;

template <class T>
void fix_signs_cols(T* v, int64_t n, int64_t k, int64_t row_stride, int64_t col_stride) {
  const T eps = std::numeric_limits<T>::epsilon();
  const double sum_tol = std::sqrt(double(n)) * 256 * double(eps);
  const double entry_tol = 256 * double(eps);
  for (int64_t j = 0; j < k; ++j) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += v[i * row_stride + j * col_stride];
    bool flip = false;
    if (std::abs(s) > sum_tol) {
      flip = s < 0;
    } else {
      for (int64_t i = 0; i < n; ++i) {
        const T e = v[i * row_stride + j * col_stride];
        if (std::abs(double(e)) > entry_tol) {
          flip = e < 0;
          break;
        }
      }
    }
    if (flip)
      for (int64_t i = 0; i < n; ++i) v[i * row_stride + j * col_stride] = -v[i * row_stride + j * col_stride];
  }
}

// The operator applied to the columns of a column-major block: through a row-major Tensor, as the
// MatVec contract says. Checks what comes back.
template <class T>
Mat<T> apply(const MatVec& matvec, const Mat<T>& x, const char* op) {
  const int64_t n = x.rows(), b = x.cols();
  Tensor tx = empty({n, b}, dtype_of<T>());
  Eigen::Map<RowMat<T>>(tx.data<T>(), n, b) = x;
  Tensor ty;
  {
    parallel::AllThreads all;  // the solvers hold Eigen on one thread; the operator gets every thread
    ty = matvec(tx);
  }
  CORTEX_CHECK(ty.defined() && ty.shape() == Shape({n, b}), op, ": expected the operator to return shape ",
               shape_str({n, b}), ", found ",
               ty.defined() ? shape_str(ty.shape()) : std::string("an undefined tensor"));
  ty = ty.to(Device::cpu()).to(dtype_of<T>()).contiguous();
  Mat<T> y = Eigen::Map<const RowMat<T>>(ty.data<T>(), n, b);
  CORTEX_CHECK(y.allFinite(), op, ": the operator returned NaN or Inf");
  return y;
}

template <class T>
Mat<T> random_block(int64_t n, int64_t b, uint64_t seed) {
  Generator g(seed);
  Tensor r = randn({n, b}, g, 0.0, 1.0, dtype_of<T>());
  return Eigen::Map<const RowMat<T>>(r.data<T>(), n, b);
}

// Orthonormalises the columns of y against v (n, c) and among themselves (classical Gram-Schmidt,
// twice: "twice is enough", Giraud et al. 2005). Returns the coefficients of y on v (c, b) in h and
// the triangular factor (b, b) in r; a column that falls into span(v, previous) (an invariant
// subspace was found) is replaced by a random direction orthogonal to everything, with r's
// diagonal 0 there, so the basis always grows.
template <class T>
void orthonormalise(const Eigen::Ref<const Mat<T>>& v, Mat<T>& y, MatD& h, MatD& r, uint64_t& seed) {
  const int64_t c = v.cols(), b = y.cols(), n = y.rows();
  // Norms before any projection: a column that lies in span(v) leaves only rounding noise, which
  // must be judged against what it was, not against itself.
  std::vector<double> before(b);
  for (int64_t j = 0; j < b; ++j) before[j] = double(y.col(j).norm());
  h = MatD::Zero(c, b);
  if (c > 0) {
    for (int pass = 0; pass < 2; ++pass) {
      Mat<T> hh = v.transpose() * y;
      y.noalias() -= v * hh;
      h += hh.template cast<double>();
    }
  }
  r = MatD::Zero(b, b);
  for (int64_t j = 0; j < b; ++j) {
    for (int pass = 0; pass < 2; ++pass) {
      for (int64_t i = 0; i < j; ++i) {
        const T dot = y.col(i).dot(y.col(j));
        y.col(j) -= dot * y.col(i);
        r(i, j) += double(dot);
      }
    }
    double nrm = double(y.col(j).norm());
    const double tiny = (sizeof(T) == 4 ? 1e-5 : 1e-12);
    if (!(nrm > tiny * std::max(before[j], 1e-300)) || nrm == 0) {
      // breakdown: a fresh random direction orthogonal to v and to the block so far
      Mat<T> z = random_block<T>(n, 1, ++seed);
      for (int pass = 0; pass < 2; ++pass) {
        if (c > 0) z.noalias() -= v * (v.transpose() * z).eval();
        for (int64_t i = 0; i < j; ++i) z.col(0) -= y.col(i).dot(z.col(0)) * y.col(i);
      }
      y.col(j) = z.col(0) / z.col(0).norm();
      r(j, j) = 0;
    } else {
      y.col(j) /= static_cast<T>(nrm);
      r(j, j) = nrm;
    }
  }
}

// Eigen-decomposition of a small symmetric matrix, eigenvalues sorted descending.
void sym_eig_desc(const MatD& h, VecD& vals, MatD& vecs) {
  Eigen::SelfAdjointEigenSolver<MatD> es(h);
  CORTEX_CHECK(es.info() == Eigen::Success, "eigensolver: the projected eigenproblem did not converge");
  const int64_t p = h.rows();
  vals.resize(p);
  vecs.resize(p, p);
  for (int64_t j = 0; j < p; ++j) {
    vals(j) = es.eigenvalues()(p - 1 - j);
    vecs.col(j) = es.eigenvectors().col(p - 1 - j);
  }
}

template <class T>
Eigenpairs finish(const Mat<T>& x, const VecD& vals, int64_t k) {
  const int64_t n = x.rows();
  Eigenpairs r;
  r.values = empty({k}, dtype_of<T>());
  r.vectors = empty({n, k}, dtype_of<T>());
  for (int64_t j = 0; j < k; ++j) r.values.data<T>()[j] = static_cast<T>(vals(j));
  Eigen::Map<RowMat<T>>(r.vectors.data<T>(), n, k) = x.leftCols(k);
  fix_signs_cols(r.vectors.data<T>(), n, k, k, 1);
  return r;
}

// Small operators: the dense matrix from n products with the identity, then the exact solver.
template <class T>
Eigenpairs small_dense(int64_t n, int64_t k, const MatVec& matvec, const char* op) {
  const Mat<T> a = apply<T>(matvec, Mat<T>::Identity(n, n), op);
  const MatD s = (a.template cast<double>() + a.template cast<double>().transpose()) / 2;
  VecD vals;
  MatD vecs;
  sym_eig_desc(s, vals, vecs);
  Eigenpairs r = finish<T>(vecs.template cast<T>(), vals, k);
  r.matvecs = n;
  r.iterations = 1;
  r.residual = 0;
  return r;
}

void check_common(int64_t n, int64_t k, const MatVec& matvec, const EigOptions& opt, const char* op) {
  CORTEX_CHECK(n >= 1, op, ": expected an operator of size n >= 1, found ", n);
  CORTEX_CHECK(k >= 1 && k <= n, op, ": expected k in [1, ", n, "] for an operator of size ", n, ", found ", k);
  CORTEX_CHECK(static_cast<bool>(matvec), op, ": expected an operator, found an empty function");
  CORTEX_CHECK(opt.dtype == DType::Float32 || opt.dtype == DType::Float64, op,
               ": expected dtype float32 or float64, found ", dtype_name(opt.dtype));
  CORTEX_CHECK(std::isfinite(opt.tol) && opt.tol > 0, op, ": expected tol > 0, found ", opt.tol);
  CORTEX_CHECK(opt.max_iter >= 1, op, ": expected max_iter >= 1, found ", opt.max_iter);
}

template <class T>
Eigenpairs lanczos_impl(int64_t n, int64_t k, const MatVec& matvec, const EigOptions& opt) {
  const char* op = "lanczos_topk";
  const int64_t b = opt.block;
  int64_t p = opt.basis > 0 ? opt.basis : std::max(2 * k, k + 32) + b;
  // Too small for a Krylov basis with room to restart: solve it densely (n products).
  if (n <= std::max<int64_t>(64, 2 * (k + b)) || p + b >= n) return small_dense<T>(n, k, matvec, op);
  CORTEX_CHECK(p >= k + b, op, ": expected a basis of at least k + block = ", k + b, " vectors, found ", p);

  uint64_t seed = opt.seed * 0x9E3779B97F4A7C15ull + 1;
  Mat<T> V(n, p + b);  // basis, then the residual block
  MatD H = MatD::Zero(p, p);
  MatD h, r, rres = MatD::Zero(b, b);
  {
    Mat<T> y = random_block<T>(n, b, seed);
    orthonormalise<T>(V.leftCols(0), y, h, r, seed);
    V.leftCols(b) = y;
  }
  int64_t cur = 0, matvecs = 0, it = 0;
  VecD theta;
  MatD Y;
  double res_max = 0;
  bool converged = false;
  for (it = 1;; ++it) {
    // Expand: A v_cur.. = V h + V_next r; h fills H's columns, r couples the next block.
    while (cur + b <= p) {
      Mat<T> y = apply<T>(matvec, V.middleCols(cur, b), op);
      matvecs += b;
      orthonormalise<T>(V.leftCols(cur + b), y, h, r, seed);
      MatD diag = h.middleRows(cur, b);
      h.middleRows(cur, b) = (diag + diag.transpose()) / 2;  // the block's own Rayleigh quotient is symmetric
      H.block(0, cur, cur + b, b) = h;
      H.block(cur, 0, b, cur + b) = h.transpose();
      V.middleCols(cur + b, b) = y;
      if (cur + 2 * b <= p) {
        H.block(cur + b, cur, b, b) = r;
        H.block(cur, cur + b, b, b) = r.transpose();
      } else {
        rres = r;
      }
      cur += b;
    }
    sym_eig_desc(H.topLeftCorner(cur, cur), theta, Y);
    // |A x_i - theta_i x_i| = |rres * (last b entries of y_i)|
    const double scale = std::max(std::abs(theta(0)), std::abs(theta(cur - 1)));
    res_max = 0;
    for (int64_t i = 0; i < k; ++i)
      res_max = std::max(res_max, (rres * Y.block(cur - b, i, b, 1)).norm() / std::max(scale, 1e-300));
    converged = res_max <= opt.tol;
    if (converged || it >= opt.max_iter) break;
    // Thick restart: keep the l best Ritz vectors and the residual block.
    const int64_t l = std::clamp<int64_t>(k + (cur - k) / 2, k, p - b);
    Mat<T> keep = V.leftCols(cur) * Y.leftCols(l).template cast<T>();
    Mat<T> resid = V.middleCols(cur, b);
    V.leftCols(l) = keep;
    V.middleCols(l, b) = resid;
    const MatD coupling = rres * Y.block(cur - b, 0, b, l);  // (b, l)
    H.setZero();
    for (int64_t i = 0; i < l; ++i) H(i, i) = theta(i);
    H.block(l, 0, b, l) = coupling;
    H.block(0, l, l, b) = coupling.transpose();
    cur = l;
  }
  Mat<T> x = V.leftCols(cur) * Y.leftCols(k).template cast<T>();
  Eigenpairs res = finish<T>(x, theta, k);
  res.matvecs = matvecs;
  res.iterations = it;
  res.residual = res_max;
  res.converged = converged;
  return res;
}

template <class T>
Eigenpairs subspace_impl(int64_t n, int64_t k, const MatVec& matvec, const EigOptions& opt) {
  const char* op = "subspace_topk";
  const int64_t p = std::min(n, k + (opt.oversample > 0 ? opt.oversample : std::max<int64_t>(k, 10)));
  auto orth = [&](const Mat<T>& z) -> Mat<T> {
    Eigen::HouseholderQR<Mat<T>> qr(z);
    return qr.householderQ() * Mat<T>::Identity(z.rows(), z.cols());
  };
  Mat<T> q = orth(random_block<T>(n, p, opt.seed * 0x9E3779B97F4A7C15ull + 7));
  VecD theta;
  MatD Y;
  std::vector<int64_t> order;
  double res_max = 0;
  bool converged = false;
  int64_t it = 0, matvecs = 0;
  Mat<T> xk;
  VecD vk(k);
  for (it = 1;; ++it) {
    const Mat<T> z = apply<T>(matvec, q, op);
    matvecs += p;
    MatD hq = (q.transpose() * z).template cast<double>();
    hq = (hq + hq.transpose()).eval() / 2;
    sym_eig_desc(hq, theta, Y);
    // subspace iteration finds the largest |lambda|: take those k, then sort them descending
    order.resize(p);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t c) { return std::abs(theta(a)) > std::abs(theta(c)); });
    order.resize(k);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return theta(a) > theta(c); });
    MatD yk(p, k);
    for (int64_t j = 0; j < k; ++j) {
      yk.col(j) = Y.col(order[j]);
      vk(j) = theta(order[j]);
    }
    const Mat<T> ykt = yk.template cast<T>();
    xk = q * ykt;
    const Mat<T> resid = z * ykt - xk * vk.template cast<T>().asDiagonal();
    double scale = 0;
    for (int64_t j = 0; j < p; ++j) scale = std::max(scale, std::abs(theta(j)));
    res_max = 0;
    for (int64_t j = 0; j < k; ++j) res_max = std::max(res_max, double(resid.col(j).norm()) / std::max(scale, 1e-300));
    converged = res_max <= opt.tol;
    if (converged || it >= opt.max_iter || p == n) {
      converged = converged || p == n;  // the whole space: Rayleigh-Ritz is exact
      break;
    }
    q = orth(z * Y.template cast<T>());
  }
  Eigenpairs res = finish<T>(xk, vk, k);
  res.matvecs = matvecs;
  res.iterations = it;
  res.residual = res_max;
  res.converged = converged;
  return res;
}

}  // namespace

void fix_signs(Tensor& v) {
  CORTEX_CHECK(v.dim() == 2 && v.is_contiguous() && v.device().is_cpu(),
               "fix_signs: expected a contiguous CPU (n, k) tensor, found shape ", shape_str(v.shape()));
  dispatch_float(v.dtype(), "fix_signs", [&](auto tag) {
    using T = decltype(tag);
    fix_signs_cols(v.data<T>(), v.size(0), v.size(1), v.size(1), 1);
  });
}

Eigenpairs eigh_topk_dense(const Tensor& a, int64_t k) {
  CORTEX_CHECK(a.dim() == 2 && a.size(0) == a.size(1), "eigh_topk_dense: expected a square (n, n) matrix, found ",
               shape_str(a.shape()));
  CORTEX_CHECK(k >= 1 && k <= a.size(0), "eigh_topk_dense: expected k in [1, ", a.size(0), "], found ", k);
  kernels::Eigh e = kernels::eigh_topk(a, k, true);
  Eigenpairs r;
  r.values = e.values;
  r.vectors = e.vectors;
  r.matvecs = 0;
  r.iterations = 1;
  return r;
}

Eigenpairs lanczos_topk(int64_t n, int64_t k, const MatVec& matvec, const EigOptions& opt) {
  check_common(n, k, matvec, opt, "lanczos_topk");
  CORTEX_CHECK(opt.block >= 1, "lanczos_topk: expected block >= 1, found ", opt.block);
  CORTEX_CHECK(opt.basis >= 0, "lanczos_topk: expected basis >= 0 (0: automatic), found ", opt.basis);
  return dispatch_float(opt.dtype, "lanczos_topk", [&](auto tag) {
    using T = decltype(tag);
    // Eigen on one thread (parallel.h): its threaded GEMM would sum in a thread-count order.
    return parallel::serial([&] { return lanczos_impl<T>(n, k, matvec, opt); });
  });
}

Eigenpairs subspace_topk(int64_t n, int64_t k, const MatVec& matvec, const EigOptions& opt) {
  check_common(n, k, matvec, opt, "subspace_topk");
  CORTEX_CHECK(opt.oversample >= 0, "subspace_topk: expected oversample >= 0 (0: automatic), found ", opt.oversample);
  return dispatch_float(opt.dtype, "subspace_topk", [&](auto tag) {
    using T = decltype(tag);
    return parallel::serial([&] { return subspace_impl<T>(n, k, matvec, opt); });
  });
}

MatVec dense_matvec(const Tensor& a) {
  CORTEX_CHECK(a.dim() == 2 && a.size(0) == a.size(1), "dense_matvec: expected a square (n, n) matrix, found ",
               shape_str(a.shape()));
  CORTEX_CHECK(a.dtype() == DType::Float32 || a.dtype() == DType::Float64,
               "dense_matvec: expected float32 or float64, found ", dtype_name(a.dtype()));
  const Tensor ha = a.to(Device::cpu()).contiguous();
  return [ha](const Tensor& x) -> Tensor {
    const int64_t n = ha.size(0);
    CORTEX_CHECK(x.dim() == 2 && x.size(0) == n, "dense_matvec: expected a block of shape (", n,
                 ", b), found ", shape_str(x.shape()));
    const Tensor xa = x.to(Device::cpu()).to(ha.dtype()).contiguous();
    const int64_t b = x.size(1);
    Tensor y = empty({n, b}, ha.dtype());
    dispatch_float(ha.dtype(), "dense_matvec", [&](auto tag) {
      using T = decltype(tag);
      Eigen::Map<const RowMat<T>> A(ha.data<T>(), n, n);
      Eigen::Map<const RowMat<T>> X(xa.data<T>(), n, b);
      Eigen::Map<RowMat<T>> Y(y.data<T>(), n, b);
      // Strips of 128 rows, one single-threaded product each: the strips are fixed by n alone, so
      // each row's sum runs in the same order at any thread count (parallel.h).
      parallel::for_chunks(n, 128, double(n) * double(n) * double(b), [&](int64_t r0, int64_t r1) {
        Y.middleRows(r0, r1 - r0).noalias() = A.middleRows(r0, r1 - r0) * X;
      });
    });
    return y.to(x.dtype());
  };
}

}  // namespace cortex::analysis::spectral

namespace cortex::analysis::spectral {

double min_principal_cosine(const Tensor& a, const Tensor& b) {
  const char* op = "min_principal_cosine";
  CORTEX_CHECK(a.defined() && b.defined() && a.dim() == 2 && b.dim() == 2 && a.size(0) == b.size(0) &&
                   a.size(1) >= 1 && b.size(1) >= 1 && a.size(1) <= a.size(0) && b.size(1) <= b.size(0),
               op, ": expected a (n, ka) and b (n, kb) with 1 <= ka, kb <= n, found ",
               a.defined() ? shape_str(a.shape()) : std::string("undefined"), " and ",
               b.defined() ? shape_str(b.shape()) : std::string("undefined"));
  auto basis = [&](const Tensor& t) {
    CORTEX_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op,
                 ": expected float32 or float64, found ", dtype_name(t.dtype()));
    const Tensor h = t.to(Device::cpu()).to(DType::Float64).contiguous();
    const MatD m = Eigen::Map<const RowMat<double>>(h.data<double>(), h.size(0), h.size(1));
    Eigen::HouseholderQR<MatD> qr(m);
    return MatD(qr.householderQ() * MatD::Identity(m.rows(), m.cols()));
  };
  const MatD qa = basis(a), qb = basis(b);
  const MatD c = qa.transpose() * qb;
  Eigen::JacobiSVD<MatD> svd(c);
  return std::clamp(svd.singularValues().minCoeff(), 0.0, 1.0);
}

}  // namespace cortex::analysis::spectral
