// Elementwise ops: forward (kernels/elementwise.h), VJP and JVP side by side.
// A unary op y = f(x) has VJP g * f'(x) and JVP t * f'(x); f' is written with ops, so second
// derivatives work. Binary ops sum the cotangent back over broadcast dims (rules::sum_to).
#include <cmath>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/rules.h"
#include "kernels/elementwise.h"

namespace cortex {
namespace {

using K = kernels::Unary;
using B = kernels::Binary;
using Grads = std::vector<Tensor>;
using rules::sum_to;

Tensor like(double v, const Tensor& x) { return scalar(v, x.dtype(), x.device()); }
// 1 where cond holds, else 0, in x's dtype (a constant: comparisons have no derivative).
Tensor mask(const Tensor& cond, const Tensor& x) { return detach(cond).to(x.dtype()); }
// A batched tangent given the output's rank, so it lines up with the other (primal) operand.
Tensor rank_pad(const Tensor& t, const Shape& out) { return rules::bpad(t, static_cast<int64_t>(out.size())); }
// A tangent broadcast to the output's shape (tangents of broadcast inputs are smaller).
Tensor fit(const Tensor& t, const Shape& out) { return t.defined() ? rules::bexpand(t, out) : t; }

enum Needs { kX = 1, kY = 2 };

// y = op(x) with dy/dx = deriv(x, y), written with ops.
template <class D>
Tensor unary_rule(const char* name, K op, const Tensor& x, double param, int needs, D deriv) {
  Tensor y = raw([&] { return kernels::unary(op, x, param); });
  Tensor xs = (needs & kX) ? x : Tensor();
  return record1(
      name, {x}, y,
      [xs, deriv](const Grads& g, const Grads& o) -> Grads { return {mul(g[0], deriv(xs, o[0]))}; },
      [xs, deriv](const Grads& t, const Grads& o) -> Grads {
        return {t[0].defined() ? mul(t[0], deriv(xs, o[0])) : Tensor()};
      },
      (needs & kY) != 0);
}

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kInvSqrt2Pi = 0.3989422804014327;

}  // namespace

// ---------------------------------------------------------------- unary

Tensor neg(const Tensor& x) {
  Tensor y = raw([&] { return kernels::unary(K::Neg, x); });
  return record1(
      "neg", {x}, y, [](const Grads& g, const Grads&) -> Grads { return {neg(g[0])}; },
      [](const Grads& t, const Grads&) -> Grads { return {t[0].defined() ? neg(t[0]) : Tensor()}; });
}

Tensor exp(const Tensor& x) {
  return unary_rule("exp", K::Exp, x, 0, kY, [](const Tensor&, const Tensor& y) { return y; });
}
Tensor log(const Tensor& x) {
  return unary_rule("log", K::Log, x, 0, kX, [](const Tensor& x, const Tensor&) { return reciprocal(x); });
}
Tensor log1p(const Tensor& x) {
  return unary_rule("log1p", K::Log1p, x, 0, kX, [](const Tensor& x, const Tensor&) { return reciprocal(add(x, 1.0)); });
}
Tensor expm1(const Tensor& x) {
  return unary_rule("expm1", K::Expm1, x, 0, kY, [](const Tensor&, const Tensor& y) { return add(y, 1.0); });
}
Tensor sqrt(const Tensor& x) {
  return unary_rule("sqrt", K::Sqrt, x, 0, kY, [](const Tensor&, const Tensor& y) { return rdiv(0.5, y); });
}
Tensor rsqrt(const Tensor& x) {
  // d x^{-1/2} = -1/2 x^{-3/2} = -1/2 y^3
  return unary_rule("rsqrt", K::Rsqrt, x, 0, kY, [](const Tensor&, const Tensor& y) { return mul(pow(y, 3.0), -0.5); });
}
Tensor reciprocal(const Tensor& x) {
  return unary_rule("reciprocal", K::Reciprocal, x, 0, kY, [](const Tensor&, const Tensor& y) { return neg(square(y)); });
}
Tensor square(const Tensor& x) {
  return unary_rule("square", K::Square, x, 0, kX, [](const Tensor& x, const Tensor&) { return mul(x, 2.0); });
}
Tensor abs(const Tensor& x) {
  return unary_rule("abs", K::Abs, x, 0, kX, [](const Tensor& x, const Tensor&) { return sign(x); });
}
Tensor sign(const Tensor& x) {
  // Piecewise constant: no gradient flows (zero almost everywhere).
  return raw([&] { return kernels::unary(K::Sign, x); });
}
Tensor sin(const Tensor& x) {
  return unary_rule("sin", K::Sin, x, 0, kX, [](const Tensor& x, const Tensor&) { return cos(x); });
}
Tensor cos(const Tensor& x) {
  return unary_rule("cos", K::Cos, x, 0, kX, [](const Tensor& x, const Tensor&) { return neg(sin(x)); });
}
Tensor tanh(const Tensor& x) {
  return unary_rule("tanh", K::Tanh, x, 0, kY, [](const Tensor&, const Tensor& y) { return rsub(1.0, square(y)); });
}
Tensor erf(const Tensor& x) {
  return unary_rule("erf", K::Erf, x, 0, kX, [](const Tensor& x, const Tensor&) {
    return mul(exp(neg(square(x))), 2.0 / std::sqrt(M_PI));
  });
}
Tensor sigmoid(const Tensor& x) {
  return unary_rule("sigmoid", K::Sigmoid, x, 0, kY, [](const Tensor&, const Tensor& y) { return mul(y, rsub(1.0, y)); });
}
Tensor relu(const Tensor& x) {
  return unary_rule("relu", K::Relu, x, 0, kX, [](const Tensor& x, const Tensor&) { return mask(gt(x, like(0, x)), x); });
}
Tensor gelu(const Tensor& x, GeluApprox approx) {
  if (approx == GeluApprox::None) {
    // d/dx [x Phi(x)] = Phi(x) + x phi(x)
    return unary_rule("gelu", K::GeluErf, x, 0, kX, [](const Tensor& x, const Tensor&) {
      Tensor cdf = mul(add(erf(mul(x, M_SQRT1_2)), 1.0), 0.5);
      Tensor pdf = mul(exp(mul(square(x), -0.5)), kInvSqrt2Pi);
      return add(cdf, mul(x, pdf));
    });
  }
  // y = 0.5 x (1 + tanh(u)), u = c (x + a x^3): y' = 0.5 (1 + th) + 0.5 x (1 - th^2) c (1 + 3 a x^2)
  return unary_rule("gelu_tanh", K::GeluTanh, x, 0, kX, [](const Tensor& x, const Tensor&) {
    const double a = 0.044715;
    Tensor x2 = square(x);
    Tensor th = tanh(mul(mul(x, add(mul(x2, a), 1.0)), kSqrt2OverPi));
    Tensor left = mul(add(th, 1.0), 0.5);
    Tensor right = mul(mul(x, rsub(1.0, square(th))), mul(add(mul(x2, 3 * a), 1.0), 0.5 * kSqrt2OverPi));
    return add(left, right);
  });
}
Tensor quick_gelu(const Tensor& x) {
  // y = x s(1.702 x): y' = s + 1.702 x s (1 - s)
  return unary_rule("quick_gelu", K::QuickGelu, x, 0, kX, [](const Tensor& x, const Tensor&) {
    Tensor s = sigmoid(mul(x, 1.702));
    return add(s, mul(mul(x, 1.702), mul(s, rsub(1.0, s))));
  });
}
Tensor elu(const Tensor& x, double alpha) {
  // x > 0: 1; else alpha e^x = y + alpha
  return unary_rule("elu", K::Elu, x, alpha, kX | kY, [alpha](const Tensor& x, const Tensor& y) {
    return where(gt(x, like(0, x)), like(1, x), add(y, alpha));
  });
}
Tensor softplus(const Tensor& x, double beta) {
  CORTEX_CHECK(beta > 0, "softplus: beta must be > 0, found ", beta);
  return unary_rule("softplus", K::Softplus, x, beta, kX, [beta](const Tensor& x, const Tensor&) {
    return sigmoid(mul(x, beta));
  });
}
Tensor pow(const Tensor& x, double p) {
  if (p == 0) return raw([&] { return kernels::unary(K::PowScalar, x, 0.0); });  // constant 1
  if (p == 1) return x.clone();
  return unary_rule("pow", K::PowScalar, x, p, kX, [p](const Tensor& x, const Tensor&) {
    return mul(pow(x, p - 1), p);
  });
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  Tensor y = raw([&] { return kernels::clamp(x, lo, hi); });
  // Gradient passes where lo <= x <= hi (NaN bounds are no bound).
  auto pass = [lo, hi](const Tensor& x) {
    Tensor m = ones(x.shape(), DType::Bool, x.device());
    if (!std::isnan(lo)) m = raw([&] { return kernels::logical_and(m, kernels::compare(kernels::Compare::Ge, x, like(lo, x))); });
    if (!std::isnan(hi)) m = raw([&] { return kernels::logical_and(m, kernels::compare(kernels::Compare::Le, x, like(hi, x))); });
    return mask(m, x);
  };
  return record1(
      "clamp", {x}, y, [x, pass](const Grads& g, const Grads&) -> Grads { return {mul(g[0], pass(x))}; },
      [x, pass](const Grads& t, const Grads&) -> Grads { return {t[0].defined() ? mul(t[0], pass(x)) : Tensor()}; });
}

// ---------------------------------------------------------------- binary

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::binary(B::Add, a, b); });
  const Shape as = a.shape(), bs = b.shape(), ys = y.shape();
  return record1(
      "add", {a, b}, y,
      [as, bs](const Grads& g, const Grads&) -> Grads { return {sum_to(g[0], as), sum_to(g[0], bs)}; },
      [ys](const Grads& t, const Grads&) -> Grads { return {fit(rules::tadd(fit(t[0], ys), fit(t[1], ys)), ys)}; });
}
Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::binary(B::Sub, a, b); });
  const Shape as = a.shape(), bs = b.shape(), ys = y.shape();
  return record1(
      "sub", {a, b}, y,
      [as, bs](const Grads& g, const Grads&) -> Grads { return {sum_to(g[0], as), neg(sum_to(g[0], bs))}; },
      [ys](const Grads& t, const Grads&) -> Grads {
        return {rules::tadd(fit(t[0], ys), t[1].defined() ? fit(neg(t[1]), ys) : Tensor())};
      });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::binary(B::Mul, a, b); });
  const Shape ys = y.shape();
  return record1(
      "mul", {a, b}, y,
      [a, b](const Grads& g, const Grads&) -> Grads {
        return {requires_grad(a) ? sum_to(mul(g[0], b), a.shape()) : Tensor(),
                requires_grad(b) ? sum_to(mul(g[0], a), b.shape()) : Tensor()};
      },
      [a, b, ys](const Grads& t, const Grads&) -> Grads {
        Tensor ta = rank_pad(t[0], ys), tb = rank_pad(t[1], ys);
        return {fit(rules::tadd(ta.defined() ? mul(ta, b) : Tensor(), tb.defined() ? mul(a, tb) : Tensor()), ys)};
      });
}
Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::binary(B::Div, a, b); });
  const Shape ys = y.shape();
  return record1(
      "div", {a, b}, y,
      [a, b](const Grads& g, const Grads&) -> Grads {
        // d(a/b)/db = -a / b^2
        return {requires_grad(a) ? sum_to(div(g[0], b), a.shape()) : Tensor(),
                requires_grad(b) ? sum_to(neg(div(mul(g[0], a), square(b))), b.shape()) : Tensor()};
      },
      [a, b, ys](const Grads& t, const Grads&) -> Grads {
        Tensor ta = t[0].defined() ? div(rank_pad(t[0], ys), b) : Tensor();
        Tensor tb = t[1].defined() ? neg(div(mul(rank_pad(t[1], ys), a), square(b))) : Tensor();
        return {fit(rules::tadd(ta, tb), ys)};
      });
}
Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::binary(B::Pow, a, b); });
  const Shape ys = y.shape();
  // d/da = b a^(b-1); d/db = a^b log a (taken as 0 where a^b == 0, as PyTorch)
  auto da = [](const Tensor& a, const Tensor& b) { return mul(b, pow(a, sub(b, like(1, b)))); };
  auto db = [](const Tensor& a, const Tensor& y) {
    return where(eq(y, like(0, y)), like(0, y), mul(y, log(a)));
  };
  return record1(
      "pow", {a, b}, y,
      [a, b, da, db](const Grads& g, const Grads& o) -> Grads {
        return {requires_grad(a) ? sum_to(mul(g[0], da(a, b)), a.shape()) : Tensor(),
                requires_grad(b) ? sum_to(mul(g[0], db(a, o[0])), b.shape()) : Tensor()};
      },
      [a, b, da, db, ys](const Grads& t, const Grads& o) -> Grads {
        Tensor ta = t[0].defined() ? mul(rank_pad(t[0], ys), da(a, b)) : Tensor();
        Tensor tb = t[1].defined() ? mul(rank_pad(t[1], ys), db(a, o[0])) : Tensor();
        return {fit(rules::tadd(ta, tb), ys)};
      },
      /*save_outputs=*/true);
}

namespace {
// maximum/minimum: the winner takes the gradient; ties split it evenly.
Tensor extremum(const char* name, B op, kernels::Compare win, const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::binary(op, a, b); });
  const Shape ys = y.shape();
  auto wa = [win](const Tensor& a, const Tensor& b) {
    Tensor w = detach(raw([&] { return kernels::compare(win, a, b); })).to(a.dtype());
    Tensor tie = mask(eq(a, b), a);
    return add(w, mul(tie, 0.5));
  };
  return record1(
      name, {a, b}, y,
      [a, b, wa](const Grads& g, const Grads&) -> Grads {
        return {sum_to(mul(g[0], wa(a, b)), a.shape()), sum_to(mul(g[0], wa(b, a)), b.shape())};
      },
      [a, b, wa, ys](const Grads& t, const Grads&) -> Grads {
        Tensor ta = t[0].defined() ? mul(rank_pad(t[0], ys), wa(a, b)) : Tensor();
        Tensor tb = t[1].defined() ? mul(rank_pad(t[1], ys), wa(b, a)) : Tensor();
        return {fit(rules::tadd(ta, tb), ys)};
      });
}
}  // namespace
Tensor maximum(const Tensor& a, const Tensor& b) { return extremum("maximum", B::Maximum, kernels::Compare::Gt, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum("minimum", B::Minimum, kernels::Compare::Lt, a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::where(cond, a, b); });
  const Shape ys = y.shape();
  Tensor c = detach(cond);
  return record1(
      "where", {a, b}, y,
      [c, a, b](const Grads& g, const Grads&) -> Grads {
        Tensor z = like(0, g[0]);
        return {sum_to(where(c, g[0], z), a.shape()), sum_to(where(c, z, g[0]), b.shape())};
      },
      [c, a, ys](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined() && !t[1].defined()) return {Tensor()};
        Tensor z = like(0, a);
        return {fit(where(c, t[0].defined() ? rank_pad(t[0], ys) : z, t[1].defined() ? rank_pad(t[1], ys) : z), ys)};
      });
}

// ---------------------------------------------------------------- scalar forms and comparisons

Tensor add(const Tensor& a, double b) { return add(a, like(b, a)); }
Tensor sub(const Tensor& a, double b) { return sub(a, like(b, a)); }
Tensor rsub(double a, const Tensor& b) { return sub(like(a, b), b); }
Tensor mul(const Tensor& a, double b) { return mul(a, like(b, a)); }
Tensor div(const Tensor& a, double b) { return div(a, like(b, a)); }
Tensor rdiv(double a, const Tensor& b) { return div(like(a, b), b); }

Tensor eq(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::compare(kernels::Compare::Eq, a, b); });
  mark_blocked("eq", {a, b}, {y});
  return y;
}
Tensor ne(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::compare(kernels::Compare::Ne, a, b); });
  mark_blocked("ne", {a, b}, {y});
  return y;
}
Tensor lt(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::compare(kernels::Compare::Lt, a, b); });
  mark_blocked("lt", {a, b}, {y});
  return y;
}
Tensor le(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::compare(kernels::Compare::Le, a, b); });
  mark_blocked("le", {a, b}, {y});
  return y;
}
Tensor gt(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::compare(kernels::Compare::Gt, a, b); });
  mark_blocked("gt", {a, b}, {y});
  return y;
}
Tensor ge(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::compare(kernels::Compare::Ge, a, b); });
  mark_blocked("ge", {a, b}, {y});
  return y;
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return div(a, b); }
Tensor operator+(double a, const Tensor& b) { return add(b, a); }
Tensor operator-(double a, const Tensor& b) { return rsub(a, b); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
Tensor operator/(double a, const Tensor& b) { return rdiv(a, b); }

}  // namespace cortex
