// CPU softmax, log_softmax, layer_norm and inference batch_norm. Inputs are made contiguous first
// (one copy for a strided view) so every kernel below walks plain rows. Each row's statistics are
// folded by one task in a fixed order (kernels/cpu/parallel.h), whatever the thread count.
#include "kernels/cpu/nn.h"

// GCC 12 reports -Wmaybe-uninitialized inside its own AVX-512 intrinsics (_mm512_undefined_*) when
// Eigen's vectorised exp/max are inlined; a false positive, silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace cortex::kernels::cpu {
namespace {

template <class T> using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
template <class T> using CMap = Eigen::Map<const Arr<T>>;
template <class T> using MMap = Eigen::Map<Arr<T>>;

// Eigen's vectorised exp clamps its argument near the underflow point, so exp(-inf) comes back as
// ~1e-38 instead of 0. Below this shift the true value is subnormal; the kernels write 0 there,
// which keeps masked (-inf) entries exactly zero as in PyTorch.
template <class T> constexpr T exp_floor() { return std::is_same_v<T, float> ? T(-87.3) : T(-708.0); }


// x, y are (rows, D), contiguous: one softmax per row. A row whose max is not finite (all -inf,
// a +inf or a NaN) is NaN throughout, as PyTorch gives (its x - max is NaN there).
template <class T>
void softmax_last(const T* x, T* y, int64_t rows, int64_t D, bool log) {
  const T lo = exp_floor<T>();
  parallel::for_each(rows, double(rows) * double(D), [&](int64_t r) {
    const T* a = x + r * D;
    T* b = y + r * D;
    const T m = CMap<T>(a, D).template maxCoeff<Eigen::PropagateNaN>();
    if (!std::isfinite(m)) {
      std::fill(b, b + D, std::numeric_limits<T>::quiet_NaN());
      return;
    }
    MMap<T>(b, D) = (CMap<T>(a, D) - m).exp();
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) {
      const T e = a[i] - m < lo ? T(0) : b[i];
      b[i] = e;
      s += e;
    }
    if (log) {
      const T ls = std::log(s);
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) b[i] = (a[i] - m) - ls;
    } else {
      const T inv = T(1) / s;
#pragma omp simd
      for (int64_t i = 0; i < D; ++i) b[i] *= inv;
    }
  });
}

// x, y are (outer, D, inner), contiguous, softmax over D. Each task takes a chunk of J columns of
// one outer block so the inner loops run along contiguous memory.
template <class T>
void softmax_mid(const T* x, T* y, int64_t outer, int64_t D, int64_t inner, bool log) {
  constexpr int64_t J = 256;
  const T lo = exp_floor<T>();
  const int64_t nchunks = (inner + J - 1) / J;
  parallel::for_each(outer * nchunks, double(outer) * double(D) * double(inner), [&](int64_t task) {
    const int64_t o = task / nchunks, j0 = (task % nchunks) * J, n = std::min(J, inner - j0);
    const T* xb = x + o * D * inner + j0;
    T* yb = y + o * D * inner + j0;
    T m[J], s[J];
    for (int64_t j = 0; j < n; ++j) m[j] = -std::numeric_limits<T>::infinity(), s[j] = 0;
    for (int64_t d = 0; d < D; ++d) {
      const T* a = xb + d * inner;
      for (int64_t j = 0; j < n; ++j) m[j] = (a[j] > m[j] || a[j] != a[j]) ? a[j] : m[j];
    }
    for (int64_t d = 0; d < D; ++d) {
      const T* a = xb + d * inner;
      T* b = yb + d * inner;
      MMap<T>(b, n) = (CMap<T>(a, n) - CMap<T>(m, n)).exp();
      for (int64_t j = 0; j < n; ++j) {
        const T e = a[j] - m[j] < lo ? T(0) : b[j];
        b[j] = e;
        s[j] += e;
      }
    }
    for (int64_t j = 0; j < n; ++j) s[j] = log ? std::log(s[j]) : T(1) / s[j];
    for (int64_t d = 0; d < D; ++d) {
      const T* a = xb + d * inner;
      T* b = yb + d * inner;
      if (log)
        for (int64_t j = 0; j < n; ++j) b[j] = (a[j] - m[j]) - s[j];
      else
        for (int64_t j = 0; j < n; ++j) b[j] *= s[j];
    }
    for (int64_t j = 0; j < n; ++j)
      if (!std::isfinite(m[j]))
        for (int64_t d = 0; d < D; ++d) yb[d * inner + j] = std::numeric_limits<T>::quiet_NaN();
  });
}

Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const Tensor xc = x.contiguous();
  Tensor y = empty(x.shape(), x.dtype());
  if (x.numel() == 0) return y;
  int64_t outer = 1, D = 1, inner = 1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < dim) outer *= x.size(d);
    else if (d == dim) D = x.size(d);
    else inner *= x.size(d);
  }
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto t) {
    using T = decltype(t);
    if (inner == 1) softmax_last<T>(xc.data<T>(), y.data<T>(), outer, D, log);
    else softmax_mid<T>(xc.data<T>(), y.data<T>(), outer, D, inner, log);
  });
  return y;
}

// One row of layer norm: mean and biased variance accumulated in float64 (two passes, so a
// large mean does not cancel the variance), then y = (x - mean) * rstd * w + b in T.
template <class T, bool HasW, bool HasB>
void layer_norm_rows(const T* x, T* y, T* mean, T* rstd, const T* w, const T* b, int64_t rows, int64_t D,
                     double eps) {
  parallel::for_each(rows, 2.0 * double(rows) * double(D), [&](int64_t r) {
    const T* a = x + r * D;
    T* o = y + r * D;
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < D; ++i) s += static_cast<double>(a[i]);
    const double mu = s / static_cast<double>(D);
    double v = 0;
#pragma omp simd reduction(+ : v)
    for (int64_t i = 0; i < D; ++i) {
      const double c = static_cast<double>(a[i]) - mu;
      v += c * c;
    }
    const double rs = 1.0 / std::sqrt(v / static_cast<double>(D) + eps);
    mean[r] = static_cast<T>(mu);
    rstd[r] = static_cast<T>(rs);
    // mean = m + dm: x - m is (nearly) exact in T when x is close to the mean, and subtracting the
    // rounding residual dm afterwards keeps a large mean (offset data) from costing precision.
    const T m = static_cast<T>(mu), dm = static_cast<T>(mu - static_cast<double>(m)), q = static_cast<T>(rs);
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) {
      T z = ((a[i] - m) - dm) * q;
      if constexpr (HasW) z *= w[i];
      if constexpr (HasB) z += b[i];
      o[i] = z;
    }
  });
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

LayerNorm layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                     double eps) {
  const Tensor xc = x.contiguous();
  const Shape batch(x.shape().begin(), x.shape().end() - normalized_ndim);
  const Shape norm(x.shape().end() - normalized_ndim, x.shape().end());
  const int64_t rows = shape_numel(batch), D = shape_numel(norm);
  LayerNorm out{empty(x.shape(), x.dtype()), empty(batch, x.dtype()), empty(batch, x.dtype())};
  if (rows == 0) return out;
  const Tensor wc = weight.defined() ? weight.contiguous() : weight;
  const Tensor bc = bias.defined() ? bias.contiguous() : bias;
  dispatch_float(x.dtype(), "layer_norm", [&](auto t) {
    using T = decltype(t);
    const T* w = wc.defined() ? wc.data<T>() : nullptr;
    const T* b = bc.defined() ? bc.data<T>() : nullptr;
    auto run = [&](auto f) {
      f(xc.data<T>(), out.y.data<T>(), out.mean.data<T>(), out.rstd.data<T>(), w, b, rows, D, eps);
    };
    if (w && b) run(layer_norm_rows<T, true, true>);
    else if (w) run(layer_norm_rows<T, true, false>);
    else if (b) run(layer_norm_rows<T, false, true>);
    else run(layer_norm_rows<T, false, false>);
  });
  return out;
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps) {
  // x is (N, C, L) with L the product of the trailing dims (1 for (N, C)).
  const Tensor xc = x.contiguous();
  Tensor y = empty(x.shape(), x.dtype());
  const int64_t N = x.size(0), C = x.size(1);
  const int64_t L = C == 0 || N == 0 ? 0 : x.numel() / (N * C);
  if (x.numel() == 0) return y;
  dispatch_float(x.dtype(), "batch_norm", [&](auto t) {
    using T = decltype(t);
    // y = x * alpha + beta with alpha = w / sqrt(var + eps), beta = b - mean * alpha (in float64).
    const auto mean = running_mean.to_vector<double>(), var = running_var.to_vector<double>();
    const auto w = weight.defined() ? weight.to_vector<double>() : std::vector<double>(C, 1.0);
    const auto b = bias.defined() ? bias.to_vector<double>() : std::vector<double>(C, 0.0);
    std::vector<T> alpha(C), beta(C);
    for (int64_t c = 0; c < C; ++c) {
      const double a = w[c] / std::sqrt(var[c] + eps);
      alpha[c] = static_cast<T>(a);
      beta[c] = static_cast<T>(b[c] - mean[c] * a);
    }
    const T* xp = xc.data<T>();
    T* yp = y.data<T>();
    if (L == 1) {
      // (N, C): rows of C, one scale per column.
      parallel::for_each(N, double(N) * double(C), [&](int64_t n) {
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yp[n * C + c] = xp[n * C + c] * alpha[c] + beta[c];
      });
      return;
    }
    parallel::for_each(N * C, double(N) * double(C) * double(L), [&](int64_t p) {
      const T a = alpha[p % C], c = beta[p % C];
      const T* xi = xp + p * L;
      T* yo = yp + p * L;
#pragma omp simd
      for (int64_t l = 0; l < L; ++l) yo[l] = xi[l] * a + c;
    });
  });
  return y;
}

}  // namespace cortex::kernels::cpu
