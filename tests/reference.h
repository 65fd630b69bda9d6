// Naive float64 references shared by the per-family tests and the op-by-backend test
// (tests/test_backend_ops.cpp): each computes an op by its definition, loops over plain
// std::vector<double>, with no use of the kernels it checks.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/reduce.h"
#include "tensor/tensor.h"

namespace cortex::testing::ref {

using kernels::Reduce;
using kernels::Unary;

inline const double kNaN = std::numeric_limits<double>::quiet_NaN();
inline const double kInf = std::numeric_limits<double>::infinity();

// A tensor's values in row-major order, as float64.
inline std::vector<double> values(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }
inline std::vector<double> vals(const Tensor& t) { return values(t); }

// ---------------------------------------------------------------- elementwise

inline double sigmoid_ref(double x) { return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x)); }

inline double unary_ref(Unary op, double x, double p) {
  switch (op) {
    case Unary::Neg: return -x;
    case Unary::Exp: return std::exp(x);
    case Unary::Log: return std::log(x);
    case Unary::Log1p: return std::log1p(x);
    case Unary::Expm1: return std::expm1(x);
    case Unary::Sqrt: return std::sqrt(x);
    case Unary::Rsqrt: return 1 / std::sqrt(x);
    case Unary::Reciprocal: return 1 / x;
    case Unary::Square: return x * x;
    case Unary::Abs: return std::fabs(x);
    case Unary::Sign: return std::isnan(x) ? x : (x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0));
    case Unary::Sin: return std::sin(x);
    case Unary::Cos: return std::cos(x);
    case Unary::Tanh: return std::tanh(x);
    case Unary::Erf: return std::erf(x);
    case Unary::Sigmoid: return sigmoid_ref(x);
    case Unary::Relu: return std::isnan(x) ? x : std::max(x, 0.0);
    case Unary::GeluErf: return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case Unary::GeluTanh: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case Unary::QuickGelu: return x * sigmoid_ref(1.702 * x);
    case Unary::Elu: return x > 0 ? x : p * std::expm1(x);
    case Unary::Softplus: return p * x > 20 ? x : std::log1p(std::exp(p * x)) / p;
    case Unary::PowScalar: return std::pow(x, p);
    case Unary::Floor: return std::floor(x);
    case Unary::Ceil: return std::ceil(x);
    case Unary::Round: return std::nearbyint(x);
  }
  return kNaN;
}

// Applies a float64 reference elementwise and returns it in dtype `dt` (so float32 overflow and
// rounding match what a float32 kernel can produce).
inline Tensor map_ref(const Tensor& x, const std::function<double(double)>& f, DType dt) {
  auto v = vals(x);
  for (auto& e : v) e = f(e);
  return from_vector(v, x.shape(), dt);
}


// ---------------------------------------------------------------- reductions

// The naive reference: the input values grouped by output element (keepdim layout), each group in
// row-major order of the input.
struct Groups {
  Shape keep;     // output shape with keepdim
  Shape dropped;  // output shape without
  std::vector<std::vector<double>> g;
};

inline Groups group(const Tensor& x, const Shape& dims) {
  const int64_t nd = x.dim();
  std::vector<bool> red(nd, dims.empty());
  for (int64_t d : dims) red[d < 0 ? d + nd : d] = true;
  Groups r;
  for (int64_t d = 0; d < nd; ++d) {
    r.keep.push_back(red[d] ? 1 : x.shape()[d]);
    if (!red[d]) r.dropped.push_back(x.shape()[d]);
  }
  r.g.resize(static_cast<size_t>(shape_numel(r.keep)));
  auto v = vals(x);
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
    int64_t rem = i, o = 0, mul = 1;
    for (int64_t d = nd - 1; d >= 0; --d) {
      const int64_t id = rem % x.shape()[d];
      rem /= x.shape()[d];
      if (!red[d]) {
        o += id * mul;
        mul *= x.shape()[d];
      }
    }
    r.g[o].push_back(v[i]);
  }
  return r;
}

using RedFn = std::function<double(const std::vector<double>&)>;

inline double ref_sum(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e;
  return s;
}
inline double ref_max(const std::vector<double>& v) {
  double m = -kInf;
  for (double e : v) {
    if (std::isnan(e)) return kNaN;
    m = std::max(m, e);
  }
  return m;
}
inline double ref_min(const std::vector<double>& v) {
  double m = kInf;
  for (double e : v) {
    if (std::isnan(e)) return kNaN;
    m = std::min(m, e);
  }
  return m;
}
inline double ref_prod(const std::vector<double>& v) {
  double p = 1;
  for (double e : v) p *= e;
  return p;
}
inline double ref_lse(const std::vector<double>& v) {
  const double m = ref_max(v);
  if (std::isnan(m)) return kNaN;
  if (std::isinf(m)) return m;  // +inf, or every term -inf (and the empty sum)
  double s = 0;
  for (double e : v) s += std::exp(e - m);
  return m + std::log(s);
}
inline double ref_var(const std::vector<double>& v, int64_t corr) {
  const double mean = ref_sum(v) / static_cast<double>(v.size());
  double ss = 0;
  for (double e : v) ss += (e - mean) * (e - mean);
  return ss / static_cast<double>(std::max<int64_t>(static_cast<int64_t>(v.size()) - corr, 0));
}
inline double ref_norm(const std::vector<double>& v, double p) {
  if (std::isinf(p)) {
    double m = 0;
    for (double e : v) {
      if (std::isnan(e)) return kNaN;
      m = std::max(m, std::abs(e));
    }
    return m;
  }
  double s = 0;
  for (double e : v) s += std::pow(std::abs(e), p);
  return std::pow(s, 1 / p);
}

inline RedFn ref_for(Reduce op) {
  switch (op) {
    case Reduce::Sum: return ref_sum;
    case Reduce::Mean: return [](const std::vector<double>& v) { return ref_sum(v) / static_cast<double>(v.size()); };
    case Reduce::Max: return ref_max;
    case Reduce::Min: return ref_min;
    case Reduce::Prod: return ref_prod;
    case Reduce::LogSumExp: return ref_lse;
    case Reduce::Any:
      return [](const std::vector<double>& v) {
        for (double e : v)
          if (e != 0) return 1.0;
        return 0.0;
      };
    case Reduce::All:
      return [](const std::vector<double>& v) {
        for (double e : v)
          if (e == 0) return 0.0;
        return 1.0;
      };
  }
  return nullptr;
}

// Reference output of `f` over `dims`, as a tensor of dtype `dt` and keepdim layout as asked.
inline Tensor ref_reduce(const Tensor& x, const Shape& dims, bool keepdim, const RedFn& f, DType dt) {
  Groups gr = group(x, dims);
  std::vector<double> out;
  for (const auto& v : gr.g) out.push_back(f(v));
  return from_vector(out, keepdim ? gr.keep : gr.dropped, dt);
}


// ---------------------------------------------------------------- matmul

// Row-major index of `idx` in `shape`, where dims of size 1 broadcast (index 0).
inline int64_t bindex(const Shape& shape, const Shape& idx) {
  int64_t off = 0;
  const size_t lead = idx.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d) off = off * shape[d] + (shape[d] == 1 ? 0 : idx[lead + d]);
  return off;
}

// NumPy matmul in float64 by the definition.
inline Tensor ref_matmul(const Tensor& a, const Tensor& b) {
  Shape as = a.shape(), bs = b.shape();
  if (a.dim() == 1) as.insert(as.begin(), 1);
  if (b.dim() == 1) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  const Shape ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  const size_t nb = std::max(ab.size(), bb.size());
  Shape batch(nb, 1);
  for (size_t d = 0; d < nb; ++d) {
    const int64_t da = d + ab.size() >= nb ? ab[d + ab.size() - nb] : 1;
    const int64_t db = d + bb.size() >= nb ? bb[d + bb.size() - nb] : 1;
    batch[d] = da == 1 ? db : da;
  }
  int64_t B = 1;
  for (int64_t s : batch) B *= s;
  const auto va = values(a), vb = values(b);
  std::vector<double> out(B * m * n, 0.0);
  Shape idx(nb);
  for (int64_t i = 0; i < B; ++i) {
    int64_t r = i;
    for (int64_t d = static_cast<int64_t>(nb) - 1; d >= 0; --d) {
      idx[d] = r % batch[d];
      r /= batch[d];
    }
    const int64_t oa = bindex(ab, idx) * m * k, ob = bindex(bb, idx) * k * n;
    for (int64_t x = 0; x < m; ++x)
      for (int64_t y = 0; y < n; ++y) {
        double s = 0;
        for (int64_t z = 0; z < k; ++z) s += va[oa + x * k + z] * vb[ob + z * n + y];
        out[(i * m + x) * n + y] = s;
      }
  }
  Shape os = batch;
  if (a.dim() != 1) os.push_back(m);
  if (b.dim() != 1) os.push_back(n);
  return from_vector(out, os, DType::Float64);
}


// ---------------------------------------------------------------- softmax, layer norm

// Softmax over `dim` of a row-major array of shape s, in float64.
inline std::vector<double> ref_softmax(const std::vector<double>& x, const Shape& s, int64_t dim, bool log) {
  int64_t outer = 1, D = 1, inner = 1;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d)
    (d < dim ? outer : d == dim ? D : inner) *= s[d];
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t d) { return (o * D + d) * inner + i; };
      double m = -kInf;
      for (int64_t d = 0; d < D; ++d) m = std::max(m, x[at(d)]);
      double sum = 0;
      for (int64_t d = 0; d < D; ++d) sum += std::exp(x[at(d)] - m);
      for (int64_t d = 0; d < D; ++d) y[at(d)] = log ? x[at(d)] - m - std::log(sum) : std::exp(x[at(d)] - m) / sum;
    }
  return y;
}

struct RefLN { std::vector<double> y, mean, rstd; };
inline RefLN ref_layer_norm(const std::vector<double>& x, int64_t rows, int64_t D, const std::vector<double>* w,
                     const std::vector<double>* b, double eps) {
  RefLN r{std::vector<double>(x.size()), std::vector<double>(rows), std::vector<double>(rows)};
  for (int64_t i = 0; i < rows; ++i) {
    double m = 0;
    for (int64_t j = 0; j < D; ++j) m += x[i * D + j];
    m /= D;
    double v = 0;
    for (int64_t j = 0; j < D; ++j) v += (x[i * D + j] - m) * (x[i * D + j] - m);
    v /= D;
    const double rs = 1 / std::sqrt(v + eps);
    r.mean[i] = m, r.rstd[i] = rs;
    for (int64_t j = 0; j < D; ++j)
      r.y[i * D + j] = (x[i * D + j] - m) * rs * (w ? (*w)[j] : 1.0) + (b ? (*b)[j] : 0.0);
  }
  return r;
}


}  // namespace cortex::testing::ref
