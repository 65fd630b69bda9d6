// Matrix products: forward (kernels/linalg.h), VJP and JVP side by side.
//   y = a b:        ga = g b^T,  gb = a^T g,  ty = ta b + a tb
// Leading (batch) dims broadcast, so the gradients are summed back to each operand's shape.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/rules.h"
#include "kernels/linalg.h"
#include "kernels/matmul.h"

namespace cortex {
namespace {
using Grads = std::vector<Tensor>;
Tensor mT(const Tensor& t) { return t.transpose(-1, -2); }

// The primitive: both operands at least 2-D.
Tensor matmul2(const Tensor& a, const Tensor& b) {
  Tensor y = raw([&] { return kernels::matmul(a, b); });
  const Shape ys = y.shape();
  return record1(
      "matmul", {a, b}, y,
      [a, b](const Grads& g, const Grads&) -> Grads {
        return {requires_grad(a) ? rules::sum_to(matmul(g[0], mT(b)), a.shape()) : Tensor(),
                requires_grad(b) ? rules::sum_to(matmul(mT(a), g[0]), b.shape()) : Tensor()};
      },
      [a, b, ys](const Grads& t, const Grads&) -> Grads {
        // Batched tangents get the output's rank first so their batch dim does not meet b's batch dims.
        const int64_t r = static_cast<int64_t>(ys.size());
        Tensor ta = t[0].defined() ? matmul(rules::bpad(t[0], r), b) : Tensor();
        Tensor tb = t[1].defined() ? matmul(a, rules::bpad(t[1], r)) : Tensor();
        Tensor s = rules::tadd(ta, tb);
        return {s.defined() ? rules::bexpand(s, ys) : s};
      });
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  CORTEX_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: operands must have at least 1 dim, found shapes ",
               shape_str(a.shape()), " and ", shape_str(b.shape()));
  // 1-D operands as in NumPy: a vector on the left is a row, on the right a column; the added dim
  // is removed again. Written with views so the derivatives come from the 2-D rule.
  if (a.dim() == 1 && b.dim() == 1) return matmul2(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  if (a.dim() == 1) return matmul2(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul2(a, b.unsqueeze(1)).squeeze(-1);
  return matmul2(a, b);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  Tensor y = raw([&] { return kernels::linear(x, w, b); });
  const int64_t in = w.shape()[1], out = w.shape()[0];
  const Shape xs = x.shape(), ys = y.shape();
  // Derivatives work on x flattened to (M, in) so that a batched derivative (B, M, ...) lines up.
  return record1(
      "linear", {x, w, b}, y,
      [x, w, b, in, out, xs](const Grads& g, const Grads&) -> Grads {
        Tensor gx = requires_grad(x) ? matmul(g[0], w) : Tensor();
        Tensor gw;
        if (requires_grad(w)) {
          Tensor g2 = rules::breshape(g[0], {-1, out});  // (batch, M, out)
          gw = matmul(mT(g2), x.reshape({-1, in}));      // (batch, out, in)
        }
        Tensor gb = requires_grad(b) ? rules::sum_to(g[0], {out}) : Tensor();
        return {gx, gw, gb};
      },
      [x, w, in, out, ys](const Grads& t, const Grads&) -> Grads {
        Tensor s;
        if (t[0].defined()) s = matmul(t[0], mT(w));
        if (t[1].defined()) {
          Tensor xw = matmul(x.reshape({-1, in}), mT(t[1]));  // (batch, M, out)
          s = rules::tadd(s, rules::breshape(xw, ys));
        }
        if (t[2].defined()) s = rules::tadd(s, rules::bexpand(t[2], ys));
        return {s.defined() ? rules::bexpand(s, ys) : s};
      });
}

}  // namespace cortex
