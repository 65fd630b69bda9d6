// Affinities, the Ncut normalisation and the RBF bandwidth search (affinity.h). One GEMM per block
// of affinities (Eigen, threaded through OpenMP), then a vectorised exp over the block.
#include "analysis/spectral/affinity.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen + GCC 12 AVX-512 (GCC bug 105593)
#endif
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.h"
#include "kernels/cpu/parallel.h"

namespace cortex::analysis::spectral {

using Eigen::Dynamic;
template <class T> using RowMat = Eigen::Matrix<T, Dynamic, Dynamic, Eigen::RowMajor>;
template <class T> using MapR = Eigen::Map<RowMat<T>>;
template <class T> using CMapR = Eigen::Map<const RowMat<T>>;

const char* affinity_name(Affinity a) { return a == Affinity::Cosine ? "cosine" : "rbf"; }

namespace detail {

template <class T>
void prepare_rows(const T* x, int64_t n, int64_t d, Affinity kind, const T* centre, T* out, T* half_sq) {
#pragma omp parallel for schedule(static) if (n * d > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * d;
    T* oi = out + i * d;
    if (kind == Affinity::Cosine) {
      double s = 0;
      for (int64_t j = 0; j < d; ++j) s += double(xi[j]) * double(xi[j]);
      // torch's F.normalize: x / max(|x|, eps), so a zero row stays zero (cosine 0 with everything)
      const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);
      double s2 = 0;
      for (int64_t j = 0; j < d; ++j) {
        oi[j] = static_cast<T>(xi[j] * inv);
        s2 += double(oi[j]) * double(oi[j]);
      }
      half_sq[i] = static_cast<T>(s2 / 2);
    } else {
      double s = 0;
      for (int64_t j = 0; j < d; ++j) {
        oi[j] = centre ? xi[j] - centre[j] : xi[j];
        s += double(oi[j]) * double(oi[j]);
      }
      half_sq[i] = static_cast<T>(s / 2);
    }
  }
}

template <class T>
void similarity(const T* x, int64_t n, const T* y, int64_t m, int64_t d, Affinity kind, const T* half_sq_y, T* s) {
  if (n == 0 || m == 0) return;
  // Strips of 256 rows, one single-threaded GEMM each (parallel.h: Eigen's threaded GEMM would sum
  // in an order that follows the thread count).
  const CMapR<T> X(x, n, d), Y(y, m, d);
  parallel::for_chunks(n, 256, double(n) * double(m) * double(std::max<int64_t>(d, 1)), [&](int64_t lo, int64_t hi) {
    MapR<T> S(s + lo * m, hi - lo, m);
    if (d == 0) {
      S.setZero();
    } else {
      S.noalias() = X.middleRows(lo, hi - lo) * Y.transpose();
    }
    if (kind == Affinity::Rbf) {
      Eigen::Map<const Eigen::Matrix<T, 1, Dynamic>> hy(half_sq_y, m);
      for (int64_t i = 0; i < hi - lo; ++i) S.row(i) -= hy;
    }
  });
}

template <class T>
void affinity_block(const T* x, const T* half_sq_x, int64_t n, const T* y, const T* half_sq_y, int64_t m, int64_t d,
                    Affinity kind, T t, T* w) {
  similarity(x, n, y, m, d, kind, half_sq_y, w);
  const T inv = kind == Affinity::Cosine ? T(1) / t : T(1) / (t * t);
#pragma omp parallel for schedule(static) if (n * m > (1 << 14))
  for (int64_t i = 0; i < n; ++i) {
    Eigen::Map<Eigen::Array<T, Dynamic, 1>> r(w + i * m, m);
    // cosine: exp((cos - 1) / t); rbf: exp((x.y - |y|^2/2 - |x|^2/2) / sigma^2) = exp(-|x-y|^2 / (2 sigma^2))
    const T shift = kind == Affinity::Cosine ? T(1) : half_sq_x[i];
    r = ((r - shift).min(T(0)) * inv).exp();
  }
}

Tensor host_features(const Tensor& x, const char* op, const char* name) {
  CORTEX_CHECK(x.defined() && x.dim() == 2, op, ": expected ", name, " of shape (n, d), found ",
               x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  CORTEX_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op, ": expected ", name,
               " of float32 or float64, found ", dtype_name(x.dtype()));
  Tensor h = x.to(Device::cpu()).contiguous();
  dispatch_float(h.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* p = h.data<T>();
    const int64_t n = h.numel();
    int64_t bad = std::numeric_limits<int64_t>::max();
#pragma omp parallel for schedule(static) reduction(min : bad) if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(p[i])) bad = std::min(bad, i);
    CORTEX_CHECK(bad == std::numeric_limits<int64_t>::max(), op, ": expected finite values in ", name, ", found ",
                 p[bad == std::numeric_limits<int64_t>::max() ? 0 : bad], " in row ",
                 bad / std::max<int64_t>(h.size(1), 1));
  });
  return h;
}

Tensor device_features(const Tensor& x, const char* op, const char* name) {
  if (!x.defined() || x.device().is_cpu()) return host_features(x, op, name);
  CORTEX_CHECK(x.dim() == 2, op, ": expected ", name, " of shape (n, d), found ", shape_str(x.shape()));
  CORTEX_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op, ": expected ", name,
               " of float32 or float64, found ", dtype_name(x.dtype()));
  NoGradGuard ng;
  // inf * 0 and NaN * 0 are NaN: the sum is finite exactly when every value is
  const double s = x.numel() == 0 ? 0.0 : sum(mul(x, 0.0)).to(Device::cpu()).item();
  if (!std::isfinite(s)) host_features(x, op, name);  // throws, naming the row
  return x.contiguous();
}

Tensor normalized_affinity_on_device(const Tensor& x, Affinity kind, double t) {
  NoGradGuard ng;
  const int64_t n = x.size(0);
  Tensor g;
  if (kind == Affinity::Cosine) {
    // torch's F.normalize: x / max(|x|, eps); the score is the cosine, clamped at 1
    const Tensor xn = div(x, clamp(norm(x, 2.0, {1}, true), 1e-12, INFINITY));
    g = div(sub(clamp(matmul(xn, xn.t()), -INFINITY, 1.0), 1.0), t);
  } else {
    // -|x - y|^2 / 2 = x.y - |x|^2/2 - |y|^2/2 on rows centred on their mean, clamped at 0
    const Tensor xc = sub(x, mean(x, {0}, true));
    const Tensor h = mul(sum(square(xc), {1}, true), 0.5);
    g = div(clamp(sub(sub(matmul(xc, xc.t()), h), h.t()), -INFINITY, 0.0), t * t);
  }
  Tensor w = exp(g);
  w = mul(add(w, w.t()), 0.5);  // exactly symmetric (the GEMM need not be)
  // unit diagonal: W (1 - I) + I
  Tensor eye = zeros({n, n}, x.dtype());
  dispatch_float(x.dtype(), "ncut", [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < n; ++i) eye.data<T>()[i * n + i] = T(1);
  });
  eye = eye.to(x.device());
  w = add(mul(w, rsub(1.0, eye)), eye);
  Tensor deg = sum(w, {1}, true);  // (n, 1)
  const double dmax = n == 0 ? 0.0 : amax(deg).to(Device::cpu()).item();
  CORTEX_CHECK(n == 0 || dmax > 0, "ncut_normalize: expected a positive degree for some node, found all degrees <= 0");
  const Tensor s = rsqrt(clamp(deg, kDegreeFloor * dmax, INFINITY));
  return mul(mul(w, s), s.t()).contiguous();
}

template void prepare_rows<float>(const float*, int64_t, int64_t, Affinity, const float*, float*, float*);
template void prepare_rows<double>(const double*, int64_t, int64_t, Affinity, const double*, double*, double*);
template void similarity<float>(const float*, int64_t, const float*, int64_t, int64_t, Affinity, const float*, float*);
template void similarity<double>(const double*, int64_t, const double*, int64_t, int64_t, Affinity, const double*,
                                 double*);
template void affinity_block<float>(const float*, const float*, int64_t, const float*, const float*, int64_t, int64_t,
                                    Affinity, float, float*);
template void affinity_block<double>(const double*, const double*, int64_t, const double*, const double*, int64_t,
                                     int64_t, Affinity, double, double*);

void check_t(double t, Affinity kind, const char* op) {
  CORTEX_CHECK(std::isfinite(t) && t > 0, op, ": expected ", kind == Affinity::Cosine ? "a temperature t" : "a sigma",
               " > 0, found ", t);
}

template <class T>
std::vector<T> column_mean(const T* x, int64_t n, int64_t d) {
  std::vector<double> acc(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) acc[j] += x[i * d + j];
  std::vector<T> c(d);
  for (int64_t j = 0; j < d; ++j) c[j] = static_cast<T>(n > 0 ? acc[j] / double(n) : 0.0);
  return c;
}
template std::vector<float> column_mean<float>(const float*, int64_t, int64_t);
template std::vector<double> column_mean<double>(const double*, int64_t, int64_t);

}  // namespace detail

using detail::check_t;
using detail::column_mean;
using detail::host_features;

Tensor affinity(const Tensor& x, const Tensor& y, Affinity kind, double t) {
  const Tensor hx = host_features(x, "affinity", "x"), hy = host_features(y, "affinity", "y");
  CORTEX_CHECK(x.dtype() == y.dtype(), "affinity: expected x and y of one dtype, found ", dtype_name(x.dtype()),
               " and ", dtype_name(y.dtype()));
  CORTEX_CHECK(x.size(1) == y.size(1), "affinity: expected x and y with the same feature size, found ",
               shape_str(x.shape()), " and ", shape_str(y.shape()));
  check_t(t, kind, "affinity");
  const int64_t n = x.size(0), m = y.size(0), d = x.size(1);
  Tensor w = empty({n, m}, x.dtype());
  dispatch_float(x.dtype(), "affinity", [&](auto tag) {
    using T = decltype(tag);
    const std::vector<T> c = column_mean(hx.data<T>(), n, d);
    std::vector<T> px(n * d), py(m * d), sx(n), sy(m);
    detail::prepare_rows(hx.data<T>(), n, d, kind, c.data(), px.data(), sx.data());
    detail::prepare_rows(hy.data<T>(), m, d, kind, c.data(), py.data(), sy.data());
    detail::affinity_block(px.data(), sx.data(), n, py.data(), sy.data(), m, d, kind, static_cast<T>(t), w.data<T>());
  });
  return w.to(x.device());
}

Tensor affinity(const Tensor& x, Affinity kind, double t) {
  const Tensor hx = host_features(x, "affinity", "x");
  check_t(t, kind, "affinity");
  const int64_t n = x.size(0), d = x.size(1);
  Tensor w = empty({n, n}, x.dtype());
  dispatch_float(x.dtype(), "affinity", [&](auto tag) {
    using T = decltype(tag);
    const std::vector<T> c = column_mean(hx.data<T>(), n, d);
    std::vector<T> px(n * d), sx(n);
    detail::prepare_rows(hx.data<T>(), n, d, kind, c.data(), px.data(), sx.data());
    T* pw = w.data<T>();
    // Only the upper triangle is computed (half the GEMM and half the exps), in strips of rows:
    // strip b is rows [r0, r0 + bs) against columns [r0, n), one GEMM each, the exp applied while
    // the strip is still in cache. Then the lower triangle is mirrored tile by tile, which also makes
    // W exactly symmetric, and W_ii = K(x, x) = 1.
    constexpr int64_t bs = 128;
    const int64_t nb = (n + bs - 1) / bs;
    const T inv = kind == Affinity::Cosine ? T(1) / static_cast<T>(t) : T(1) / static_cast<T>(t * t);
    using Strided = Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>>;
    const CMapR<T> X(px.data(), n, d);
    // Eigen runs its GEMM single-threaded inside each strip (parallel.h); the strips are the parallelism.
    parallel::for_chunks(nb, 1, double(n) * double(n) * double(std::max<int64_t>(d, 1)) / 2, [&](int64_t b, int64_t) {
      const int64_t r0 = b * bs, rn = std::min(bs, n - r0), cn = n - r0;
      Strided S(pw + r0 * n + r0, rn, cn, Eigen::OuterStride<>(n));
      if (d > 0) {
        S.noalias() = X.middleRows(r0, rn) * X.middleRows(r0, cn).transpose();
      } else {
        S.setZero();
      }
      for (int64_t i = 0; i < rn; ++i) {
        auto r = S.row(i).array();
        if (kind == Affinity::Cosine) {
          r = ((r - T(1)).min(T(0)) * inv).exp();
        } else {
          // x.y - |x|^2/2 - |y|^2/2 = -|x - y|^2 / 2
          const Eigen::Map<const Eigen::Array<T, 1, Dynamic>> hy(sx.data() + r0, cn);
          r = ((r - hy - sx[r0 + i]).min(T(0)) * inv).exp();
        }
      }
    });
    parallel::for_chunks(nb, 1, double(n) * double(n) / 2, [&](int64_t b, int64_t) {
      const int64_t r0 = b * bs, rn = std::min(bs, n - r0);
      for (int64_t c0 = 0; c0 <= r0; c0 += bs) {  // tile (b, c) of the lower triangle from (c, b)
        const int64_t cn = std::min(bs, n - c0);
        for (int64_t i = r0; i < r0 + rn; ++i)
          for (int64_t j = c0; j < std::min(c0 + cn, i); ++j) pw[i * n + j] = pw[j * n + i];
      }
      for (int64_t i = r0; i < r0 + rn; ++i) pw[i * n + i] = T(1);
    });
  });
  return w.to(x.device());
}

Normalized ncut_normalize(const Tensor& w) {
  CORTEX_CHECK(w.dim() == 2 && w.size(0) == w.size(1), "ncut_normalize: expected a square (n, n) affinity, found ",
               shape_str(w.shape()));
  const Tensor hw = host_features(w, "ncut_normalize", "w");
  const int64_t n = w.size(0);
  Tensor a = empty({n, n}, w.dtype());
  Tensor deg = empty({n}, DType::Float64);
  dispatch_float(w.dtype(), "ncut_normalize", [&](auto tag) {
    using T = decltype(tag);
    const T* pw = hw.data<T>();
    double* pd = deg.data<double>();
#pragma omp parallel for schedule(static) if (n * n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += pw[i * n + j];
      pd[i] = s;
    }
    double dmax = 0;
    for (int64_t i = 0; i < n; ++i) dmax = std::max(dmax, pd[i]);
    CORTEX_CHECK(n == 0 || dmax > 0,
                 "ncut_normalize: expected a positive degree for some node, found all degrees <= 0");
    const double floor = kDegreeFloor * dmax;
    std::vector<double> s(n);
    for (int64_t i = 0; i < n; ++i) {
      pd[i] = std::max(pd[i], floor);
      s[i] = 1.0 / std::sqrt(pd[i]);
    }
    T* pa = a.data<T>();
#pragma omp parallel for schedule(static) if (n * n > (1 << 16))
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) pa[i * n + j] = static_cast<T>(s[i] * pw[i * n + j] * s[j]);
  });
  return {a.to(w.device()), deg.to(w.device())};
}

double find_sigma_by_degree(const Tensor& x, const SigmaSearch& opt) {
  const Tensor hx = host_features(x, "find_sigma_by_degree", "x").to(DType::Float64);
  CORTEX_CHECK(opt.quantile > 0 && opt.quantile < 1, "find_sigma_by_degree: expected quantile in (0, 1), found ",
               opt.quantile);
  CORTEX_CHECK(opt.init > 0 && opt.rtol > 0 && opt.max_iter >= 0,
               "find_sigma_by_degree: expected init > 0, rtol > 0 and max_iter >= 0, found ", opt.init, ", ", opt.rtol,
               ", ", opt.max_iter);
  const int64_t n = x.size(0), d = x.size(1);
  CORTEX_CHECK(n >= 2, "find_sigma_by_degree: expected at least 2 points, found ", n);
  const double* p = hx.data<double>();
  // Squared distances once (n is ~1000); every sigma then costs one pass of exps.
  const std::vector<double> c = column_mean(p, n, d);
  std::vector<double> px(n * d), sx(n), d2(n * n);
  detail::prepare_rows(p, n, d, Affinity::Rbf, c.data(), px.data(), sx.data());
  detail::similarity(px.data(), n, px.data(), n, d, Affinity::Rbf, sx.data(), d2.data());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) d2[i * n + j] = i == j ? 0.0 : std::max(2.0 * (sx[i] - d2[i * n + j]), 0.0);

  // sigma0 = sum of per-feature (sample) standard deviations, as the reference's X.std(0).sum()
  double sigma0 = 0;
  for (int64_t j = 0; j < d; ++j) {
    double v = 0;
    for (int64_t i = 0; i < n; ++i) v += px[i * d + j] * px[i * d + j];
    sigma0 += std::sqrt(v / double(n - 1));
  }
  if (!(sigma0 > 0)) return 1.0;  // all points equal: the affinity is 1 for every sigma

  auto row_means = [&](double sigma, std::vector<double>& out) {
    const double g = 1.0 / (2 * sigma * sigma);
    out.assign(n, 0.0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j)
        if (j != i) s += std::exp(-d2[i * n + j] * g);
      out[i] = s / double(n);  // the reference's zeroed diagonal still counts in the mean
    }
  };
  auto mean_of = [&](const std::vector<double>& v) {
    double s = 0;
    for (double e : v) s += e;
    return s / double(v.size());
  };
  std::vector<double> deg;
  row_means(sigma0, deg);
  // torch.quantile's linear interpolation
  std::vector<double> sorted = deg;
  std::sort(sorted.begin(), sorted.end());
  const double pos = opt.quantile * double(n - 1);
  const int64_t lo = static_cast<int64_t>(std::floor(pos));
  const int64_t hi = std::min<int64_t>(lo + 1, n - 1);
  const double target = sorted[lo] + (pos - double(lo)) * (sorted[hi] - sorted[lo]);
  if (!(target > 0)) return sigma0;  // every pair is far apart even at sigma0: keep sigma0

  double sigma = opt.init, low = 0, high = std::numeric_limits<double>::infinity();
  row_means(sigma, deg);
  double cur = mean_of(deg);
  const double tol = opt.rtol * target;
  for (int64_t it = 0; it < opt.max_iter && std::abs(cur - target) > tol; ++it) {
    if (cur > target) {
      high = sigma;
      sigma = (low + sigma) / 2;
    } else {
      low = sigma;
      sigma = std::isinf(high) ? sigma * 2 : (sigma + high) / 2;
    }
    row_means(sigma, deg);
    cur = mean_of(deg);
  }
  return sigma;
}

}  // namespace cortex::analysis::spectral
