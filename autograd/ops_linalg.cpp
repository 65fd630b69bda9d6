// Matrix products: forward (kernels/linalg.h), VJP and JVP side by side.
//   y = a b:        ga = g b^T,  gb = a^T g,  ty = ta b + a tb
// Leading (batch) dims broadcast, so the gradients are summed back to each operand's shape.
// eigh_topk: the perturbation formulas of docs/autodiff.md, section 4.12.
#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

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

// ---------------------------------------------------------------- eigh_topk
//
// With A = V diag(lam) V^T + U diag(mu) U^T (V: the k top eigenvectors, U: the other n - k) and a
// symmetric tangent S = (T + T^T) / 2:
//   dlam_i = v_i^T S v_i
//   dV     = V (F o (V^T S V)) + U (G o (U^T S V)),  F_ij = 1 / (lam_j - lam_i) (i != j), G_ri = 1 / (lam_i - mu_r)
// (U (G o U^T .) is (lam_i I - A)^+ restricted to the complement of span V). The VJP is its adjoint:
//   Z = V (F o (V^T gV) + diag(glam)) + U (G o (U^T gV)),  gA = (Z V^T + V Z^T) / 2.
namespace {

// Eigenvalues closer than this (relative to the spectral radius) are taken as equal: the solver's
// eigenvalues carry errors of a few eps |A|, so a smaller gap is not resolved at all.
double degenerate_tol(DType dt) {
  return 1e3 * (dt == DType::Float32 ? double(std::numeric_limits<float>::epsilon())
                                     : std::numeric_limits<double>::epsilon());
}

struct EighParts {
  int64_t n = 0, k = 0;
  Tensor lam, v;    // (k), (n, k): the outputs, without autograd state
  Tensor mu, u;     // (n - k), (n, n - k): the rest of the spectrum
  Tensor f, fdeg;   // (k, k): F (0 on the diagonal and at degenerate pairs); 1 at degenerate pairs i != j
  Tensor g, gdeg;   // (n - k, k): G (0 at degenerate pairs); 1 at degenerate pairs
  std::vector<double> lam_h, mu_h;
  double tol_rel = 0;
};

EighParts eigh_parts(const Tensor& values, const Tensor& vectors, int64_t k, DType dt, Device dev) {
  EighParts p;
  p.n = vectors.size(0);
  p.k = k;
  p.lam = values.slice(0, 0, k);
  p.v = vectors.slice(1, 0, k);
  p.mu = values.slice(0, k, p.n);
  p.u = vectors.slice(1, k, p.n);
  p.lam_h = p.lam.to_vector<double>();
  p.mu_h = p.mu.to_vector<double>();
  double radius = 0;
  for (double x : p.lam_h) radius = std::max(radius, std::abs(x));
  for (double x : p.mu_h) radius = std::max(radius, std::abs(x));
  p.tol_rel = degenerate_tol(dt);
  const double tol = p.tol_rel * radius;
  const int64_t r = p.n - k;
  std::vector<double> f(static_cast<size_t>(k * k), 0.0), fdeg(f.size(), 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      if (i == j) continue;
      const double gap = p.lam_h[j] - p.lam_h[i];
      if (std::abs(gap) <= tol) fdeg[i * k + j] = 1;
      else f[i * k + j] = 1 / gap;
    }
  std::vector<double> g(static_cast<size_t>(r * k), 0.0), gdeg(g.size(), 0.0);
  for (int64_t q = 0; q < r; ++q)
    for (int64_t i = 0; i < k; ++i) {
      const double gap = p.lam_h[i] - p.mu_h[q];
      if (std::abs(gap) <= tol) gdeg[q * k + i] = 1;
      else g[q * k + i] = 1 / gap;
    }
  p.f = from_vector(f, {k, k}, dt, dev);
  p.fdeg = from_vector(fdeg, {k, k}, dt, dev);
  p.g = from_vector(g, {r, k}, dt, dev);
  p.gdeg = from_vector(gdeg, {r, k}, dt, dev);
  return p;
}

double max_abs(const Tensor& t) { return t.numel() ? amax(abs(t)).item() : 0.0; }

// The first entry (i, j) of a (..., rows, cols) derivative term, at a pair marked in `mask`, whose
// |value| exceeds tol_rel * ref; {-1, -1} when none.
std::pair<int64_t, int64_t> first_significant(const Tensor& term, const Tensor& mask, double tol_rel, double ref) {
  if (term.numel() == 0 || max_abs(mask) == 0) return {-1, -1};
  Tensor m = abs(mul(term, mask));
  if (m.dim() > 2) m = amax(m, {0});
  const int64_t c = m.size(1);
  const std::vector<double> h = m.contiguous().to_vector<double>();
  for (size_t e = 0; e < h.size(); ++e)
    if (h[e] > tol_rel * ref) return {static_cast<int64_t>(e) / c, static_cast<int64_t>(e) % c};
  return {-1, -1};
}

[[noreturn]] void refuse_split(const EighParts& p, int64_t q, int64_t i) {
  std::ostringstream os;
  os << "eigh_topk: the top-" << p.k << " eigenspace is not differentiable here: eigenvalue " << i + 1 << " ("
     << p.lam_h[static_cast<size_t>(i)] << ") of the top k and eigenvalue " << p.k + q + 1 << " ("
     << p.mu_h[static_cast<size_t>(q)] << ") outside it are equal to rounding, and the derivative moves the "
     << "subspace between them (choose k at an eigengap; docs/autodiff.md 4.12)";
  throw Error(os.str());
}

void refuse_second_order(bool recording) {
  CORTEX_CHECK(!recording, "eigh_topk: second derivatives (differentiating its VJP or JVP: create_graph, hvp, "
                           "hessian, nested transforms) are not supported; docs/autodiff.md 4.12");
}

}  // namespace

kernels::Eigh eigh_topk(const Tensor& a, int64_t k) {
  CORTEX_CHECK(a.defined() && a.dim() == 2 && a.size(0) == a.size(1), "eigh_topk: expected a square (n, n) matrix, ",
               "found ", a.defined() ? "shape " + shape_str(a.shape()) : std::string("an undefined tensor"));
  const int64_t n = a.size(0);
  CORTEX_CHECK(k >= 0 && k <= n, "eigh_topk: expected k in [0, ", n, "] for a ", shape_str(a.shape()), ", found k = ", k);
  // With derivatives to take, the whole spectrum: the eigenvectors' derivative needs the complement.
  // The kernel solves the full problem either way; its first k columns are the same.
  const bool diff = needs_autograd({a});
  kernels::Eigh e = raw([&] { return kernels::eigh_topk(a, diff ? n : k, /*largest=*/true); });
  kernels::Eigh out;
  out.values = raw([&] { return e.values.slice(0, 0, k).contiguous(); });
  out.vectors = raw([&] { return e.vectors.slice(1, 0, k).contiguous(); });
  if (!diff) return out;
  auto p = std::make_shared<EighParts>(raw([&] { return eigh_parts(e.values, e.vectors, k, a.dtype(), a.device()); }));
  std::vector<Tensor> outs = record(
      "eigh_topk", {a}, {out.values, out.vectors},
      [p, a](const Grads& g, const Grads&) -> Grads {
        refuse_second_order(needs_autograd({g[0], g[1], a}));
        const Tensor& gl = g[0];  // (B?, k)
        const Tensor& gv = g[1];  // (B?, n, k)
        if (p->k == 0) return {zeros(rules::cat_shape(rules::bshape(gv), {p->n, p->n}), a.dtype(), a.device())};
        const Tensor vt = p->v.t();
        Tensor m = matmul(vt, gv);  // (B?, k, k)
        // A degenerate pair inside the top k: the rotation within its eigenspace is not determined,
        // and the loss must not depend on it (the antisymmetric part of V^T gV is 0 there).
        auto [i, j] = first_significant(sub(m, m.transpose(-1, -2)), p->fdeg, p->tol_rel, max_abs(m));
        if (i >= 0) {
          std::ostringstream os;
          os << "eigh_topk: the gradient does not exist here: eigenvalues " << i + 1 << " and " << j + 1
             << " of the top k are equal to rounding (" << p->lam_h[static_cast<size_t>(i)] << "), and the loss "
             << "depends on how the eigenvectors are rotated inside that eigenspace (a loss of the subspace, "
             << "V V^T, does not; docs/autodiff.md 4.12)";
          throw Error(os.str());
        }
        Tensor z = add(matmul(p->v, mul(p->f, m)), mul(p->v, gl.unsqueeze(-2)));  // (B?, n, k)
        if (p->n > p->k) {
          Tensor c = matmul(p->u.t(), gv);  // (B?, n - k, k)
          auto [q, ii] = first_significant(c, p->gdeg, p->tol_rel, max_abs(gv));
          if (q >= 0) refuse_split(*p, q, ii);
          z = add(z, matmul(p->u, mul(p->g, c)));
        }
        Tensor ga = matmul(z, vt);  // (B?, n, n)
        return {mul(add(ga, ga.transpose(-1, -2)), 0.5)};
      },
      [p, a](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor(), Tensor()};
        refuse_second_order(needs_autograd({t[0], a}));
        const Shape b = rules::bshape(t[0]);
        if (p->k == 0)
          return {zeros(rules::cat_shape(b, {0}), a.dtype(), a.device()),
                  zeros(rules::cat_shape(b, {p->n, 0}), a.dtype(), a.device())};
        Tensor s = mul(add(t[0], t[0].transpose(-1, -2)), 0.5);  // (B?, n, n)
        Tensor sv = matmul(s, p->v);                              // (B?, n, k)
        Tensor dl = sum(mul(p->v, sv), {-2});                      // (B?, k): v_i^T S v_i
        // Degenerate pairs inside the top k have F = 0: the basis of that eigenspace is held fixed,
        // which leaves the subspace's tangent exact (docs/autodiff.md 4.12).
        Tensor dv = matmul(p->v, mul(p->f, matmul(p->v.t(), sv)));
        if (p->n > p->k) {
          Tensor c = matmul(p->u.t(), sv);  // (B?, n - k, k)
          auto [q, i] = first_significant(c, p->gdeg, p->tol_rel, max_abs(s));
          if (q >= 0) refuse_split(*p, q, i);
          dv = add(dv, matmul(p->u, mul(p->g, c)));
        }
        return {dl, dv};
      });
  return {outs[0], outs[1]};
}

}  // namespace cortex
