// Reductions: forward (kernels/reduce.h), VJP and JVP side by side.
// A reduction's cotangent g has the reduced shape; the VJP reshapes it to keepdim form and
// broadcasts it back over the reduced axes, scaled by the local derivative.
#include <algorithm>
#include <cmath>
#include <limits>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/rules.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace cortex {
namespace {

using Grads = std::vector<Tensor>;
using R = kernels::Reduce;

Tensor like(double v, const Tensor& x) { return scalar(v, x.dtype(), x.device()); }

// Everything a reduction rule needs to move derivatives between x's shape and y's shape.
struct Red {
  Shape xshape, axes, kshape;  // kshape: y's shape with keepdim
  bool keepdim;
  int64_t count;               // elements reduced into each output
  Red(const Tensor& x, const Shape& dims, bool keep) : xshape(x.shape()), keepdim(keep) {
    axes = kernels::reduction_axes(dims, x.dim(), "reduce");
    kshape = kernels::reduced_shape(x.shape(), axes, true);
    count = 1;
    for (int64_t a : axes) count *= x.shape()[a];
  }
  // g (batch, *y.shape) -> (batch, *x.shape), broadcast over the reduced axes.
  Tensor expand(const Tensor& g) const { return rules::bexpand(rules::breshape(g, kshape), xshape); }
  // A primal of y's shape (unbatched) in keepdim form, broadcastable against x.
  Tensor keep(const Tensor& y) const { return y.reshape(kshape); }
  // Reduces a derivative of x's shape over the axes (the JVP side).
  // (No axes: a 0-d x. An empty dims list would mean "every dim", the batch dim included.)
  Tensor sum(const Tensor& t) const {
    return axes.empty() ? t : cortex::sum(t, rules::bdims(axes, xshape.size()), keepdim);
  }
};

}  // namespace

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor y = raw([&] { return kernels::reduce(R::Sum, x, dims, keepdim); });
  Red r(x, dims, keepdim);
  return record1(
      "sum", {x}, y, [r](const Grads& g, const Grads&) -> Grads { return {r.expand(g[0])}; },
      [r](const Grads& t, const Grads&) -> Grads { return {t[0].defined() ? r.sum(t[0]) : Tensor()}; });
}

Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor y = raw([&] { return kernels::reduce(R::Mean, x, dims, keepdim); });
  Red r(x, dims, keepdim);
  const double inv = 1.0 / static_cast<double>(std::max<int64_t>(r.count, 1));
  return record1(
      "mean", {x}, y, [r, inv](const Grads& g, const Grads&) -> Grads { return {mul(r.expand(g[0]), inv)}; },
      [r, inv](const Grads& t, const Grads&) -> Grads { return {t[0].defined() ? mul(r.sum(t[0]), inv) : Tensor()}; });
}

namespace {
// amax/amin: the cotangent goes to the elements equal to the extremum, shared evenly among ties.
Tensor extremum(const char* name, R op, const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor y = raw([&] { return kernels::reduce(op, x, dims, keepdim); });
  Red r(x, dims, keepdim);
  auto weights = [r](const Tensor& x, const Tensor& y) {
    Tensor hit = detach(eq(x, r.keep(y))).to(x.dtype());
    return div(hit, sum(hit, r.axes, true));
  };
  return record1(
      name, {x}, y,
      [x, r, weights](const Grads& g, const Grads& o) -> Grads { return {mul(r.expand(g[0]), weights(x, o[0]))}; },
      [x, r, weights](const Grads& t, const Grads& o) -> Grads {
        return {t[0].defined() ? r.sum(mul(t[0], weights(x, o[0]))) : Tensor()};
      },
      /*save_outputs=*/true);
}
}  // namespace

Tensor amax(const Tensor& x, const Shape& dims, bool keepdim) { return extremum("amax", R::Max, x, dims, keepdim); }
Tensor amin(const Tensor& x, const Shape& dims, bool keepdim) { return extremum("amin", R::Min, x, dims, keepdim); }

Tensor logsumexp(const Tensor& x, const Shape& dims, bool keepdim) {
  Tensor y = raw([&] { return kernels::reduce(R::LogSumExp, x, dims, keepdim); });
  Red r(x, dims, keepdim);
  // d lse / dx = exp(x - lse) (the softmax over the reduced axes)
  auto p = [r](const Tensor& x, const Tensor& y) { return exp(sub(x, r.keep(y))); };
  return record1(
      "logsumexp", {x}, y,
      [x, r, p](const Grads& g, const Grads& o) -> Grads { return {mul(r.expand(g[0]), p(x, o[0]))}; },
      [x, r, p](const Grads& t, const Grads& o) -> Grads { return {t[0].defined() ? r.sum(mul(t[0], p(x, o[0]))) : Tensor()}; },
      /*save_outputs=*/true);
}

Tensor var(const Tensor& x, const Shape& dims, int64_t correction, bool keepdim) {
  Tensor y = raw([&] { return kernels::var(x, dims, correction, keepdim); });
  Red r(x, dims, keepdim);
  const double denom = static_cast<double>(std::max<int64_t>(r.count - correction, 0));  // as the forward
  // d var / dx = 2 (x - mean) / (N - correction)
  auto d = [r, denom](const Tensor& x) { return mul(sub(x, mean(x, r.axes, true)), 2.0 / denom); };
  return record1(
      "var", {x}, y, [x, r, d](const Grads& g, const Grads&) -> Grads { return {mul(r.expand(g[0]), d(x))}; },
      [x, r, d](const Grads& t, const Grads&) -> Grads { return {t[0].defined() ? r.sum(mul(t[0], d(x))) : Tensor()}; });
}

Tensor std_dev(const Tensor& x, const Shape& dims, int64_t correction, bool keepdim) {
  Tensor v = var(x, dims, correction, keepdim);
  Tensor y = raw([&] { return kernels::unary(kernels::Unary::Sqrt, v); });
  // d sqrt(v) = dv / (2 sqrt(v)). A slice with zero spread has dv = 0 and sqrt(v) = 0: the gradient
  // is taken as 0 there (as PyTorch does) instead of 0 * inf = NaN.
  auto half_inv = [](const Tensor& y) {
    Tensor zero = eq(y, like(0, y));
    return where(zero, like(0, y), div(like(0.5, y), where(zero, like(1, y), y)));
  };
  return record1(
      "std_dev", {v}, y,
      [half_inv](const Grads& g, const Grads& o) -> Grads { return {mul(g[0], half_inv(o[0]))}; },
      [half_inv](const Grads& t, const Grads& o) -> Grads { return {t[0].defined() ? mul(t[0], half_inv(o[0])) : Tensor()}; },
      /*save_outputs=*/true);
}

Tensor norm(const Tensor& x, double p, const Shape& dims, bool keepdim) {
  CORTEX_CHECK(p > 0, "norm: p must be > 0, found ", p);
  if (std::isinf(p)) return amax(abs(x), dims, keepdim);
  Tensor y = raw([&] { return kernels::norm(x, p, dims, keepdim); });
  Red r(x, dims, keepdim);
  // d |x|_p / dx = sign(x) |x|^(p-1) / |x|_p^(p-1); taken as 0 where the norm is 0.
  auto d = [r, p](const Tensor& x, const Tensor& y) {
    Tensor yk = r.keep(y);
    Tensor safe = where(eq(yk, like(0, yk)), like(1, yk), yk);
    Tensor num = p == 2 ? x : (p == 1 ? sign(x) : mul(sign(x), pow(abs(x), p - 1)));
    // For p < 1, |x|^(p-1) is infinite at x = 0 and sign(0) * inf is NaN: those entries get 0.
    if (p < 1) num = where(eq(x, like(0, x)), like(0, x), num);
    Tensor den = p == 2 ? safe : (p == 1 ? like(1, x) : pow(safe, p - 1));
    return where(eq(yk, like(0, yk)), like(0, x), div(num, den));
  };
  return record1(
      "norm", {x}, y,
      [x, r, d](const Grads& g, const Grads& o) -> Grads { return {mul(r.expand(g[0]), d(x, o[0]))}; },
      [x, r, d](const Grads& t, const Grads& o) -> Grads { return {t[0].defined() ? r.sum(mul(t[0], d(x, o[0]))) : Tensor()}; },
      /*save_outputs=*/true);
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  Tensor y = raw([&] { return kernels::argmax(x, dim, keepdim); });
  mark_blocked("argmax", {x}, {y});
  return y;
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  Tensor y = raw([&] { return kernels::argmin(x, dim, keepdim); });
  mark_blocked("argmin", {x}, {y});
  return y;
}

}  // namespace cortex
