// Neural-network ops: forward (kernels/nn.h, kernels/sample.h), VJP and JVP side by side.
// Derivations: docs/autodiff.md. Conventions used throughout:
//   - a derivative tensor (cotangent g, tangent t) has shape (batch, *primal_shape), batch = {} or
//     {B} inside a BatchedScope (rules::nb()); unbatched primals broadcast against it on the left;
//   - the image kernels take 4-D (or 3-D) inputs, so a batched derivative (B, N, ...) is folded into
//     the kernel's N dim, or, for the convolution weight, into its channel dims (see the conv block);
//   - linear adjoints (conv2d_input_grad, conv2d_weight_grad, the pooling/resize/pad backwards) are
//     differentiable ops themselves, so double backward and reverse-over-forward work through them.
#include <cmath>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/rules.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/reduce.h"

namespace cortex {
namespace {

using Grads = std::vector<Tensor>;
using rules::bdims;
using rules::nb;
using rules::tadd;

// ---------------------------------------------------------------- batch folding

// (B, N, *rest) -> (B * N, *rest) when derivatives are batched; identity otherwise.
Tensor fold(const Tensor& d) {
  if (nb() == 0) return d;
  Shape s(d.shape().begin() + 1, d.shape().end());
  s[0] *= d.size(0);
  return d.reshape(s);
}
// Inverse of fold: (B * N, *rest) -> (B, N, *rest).
Tensor unfold(const Tensor& d, int64_t B) {
  if (nb() == 0) return d;
  Shape s(d.shape());
  s[0] /= B;
  s.insert(s.begin(), B);
  return d.reshape(s);
}
// A primal repeated to line up with a folded derivative: (N, *rest) -> (B * N, *rest).
Tensor rep(const Tensor& p, int64_t B) {
  if (nb() == 0) return p;
  Shape e(p.shape());
  e.insert(e.begin(), B);
  Shape s(p.shape());
  s[0] *= B;
  return p.unsqueeze(0).expand(e).reshape(s);
}
int64_t bsize(const Tensor& d) { return nb() ? d.size(0) : 1; }

// A derivative of shape (batch, *lead, H, W) as a 3-D (planes, H, W) stack for the pooling
// kernels (pooling acts on each plane alone), and back.
Tensor planes(const Tensor& d) {
  const int64_t H = d.size(-2), W = d.size(-1);
  return d.reshape({d.numel() / (H * W), H, W});
}

// ---------------------------------------------------------------- normalisation helpers

// The Jacobian of xhat = (x - mean(x)) * rstd over the reduced axes `ax` (derivative axes, keepdim):
//   J d = rstd * (d - mean(d) - xhat * mean(d * xhat)).
// J is symmetric, so the same map is the VJP and the JVP.
Tensor norm_jac(const Tensor& d, const Tensor& xhat, const Tensor& rstd, const Shape& ax) {
  Tensor centred = sub(d, mean(d, ax, true));
  return mul(sub(centred, mul(xhat, mean(mul(d, xhat), ax, true))), rstd);
}

// xhat and rstd (keepdim shapes) for the normalisation of x over `axes`. When the rule itself is
// being differentiated (grad mode on inside a VJP/JVP means create_graph or reverse-over-forward)
// the statistics are recomputed with ops so that their dependence on x is on the tape; otherwise the
// kernel's saved mean / rstd are reused.
struct Normed {
  Tensor xhat, rstd;
};
Normed normed(const Tensor& x, const Shape& axes, const Shape& kshape, double eps, const Tensor& kmean,
              const Tensor& krstd) {
  Tensor mu, rs;
  if (needs_autograd({x})) {
    mu = mean(x, axes, true);
    rs = rsqrt(add(var(x, axes, 0, true), eps));
  } else {
    mu = kmean.reshape(kshape);
    rs = krstd.reshape(kshape);
  }
  return {mul(sub(x, mu), rs), rs};
}

// Per-channel helpers for batch norm on x of shape (N, C, *spatial).
struct Chan {
  Shape xs, cshape, axes;  // cshape (C, 1, ..., 1): a per-channel primal aligned with x; axes: all but 1
  explicit Chan(const Tensor& x) : xs(x.shape()) {
    cshape.assign(x.dim() - 1, 1);
    cshape[0] = x.size(1);
    for (int64_t d = 0; d < x.dim(); ++d)
      if (d != 1) axes.push_back(d);
  }
  int64_t nd() const { return static_cast<int64_t>(xs.size()); }
  // primal (C) -> (C, 1, ..., 1)
  Tensor p(const Tensor& t) const { return t.reshape(cshape); }
  // derivative (batch, C) -> (batch, *xs) (a broadcast view)
  Tensor d(const Tensor& t) const { return rules::bexpand(rules::breshape(t, cshape), xs); }
  // derivative (batch, *xs) -> (batch, C)
  Tensor sum(const Tensor& t) const { return cortex::sum(t, bdims(axes, nd()), false); }
  Shape bax() const { return bdims(axes, nd()); }
};

}  // namespace

// ---------------------------------------------------------------- softmax

Tensor softmax(const Tensor& x, int64_t dim) {
  Tensor y = raw([&] { return kernels::softmax(x, dim); });
  const int64_t nd = x.dim(), d = wrap_dim(dim, std::max<int64_t>(nd, 1), "softmax");
  // dy = y * (dx - <y, dx>) along dim; the Jacobian diag(y) - y y^T is symmetric.
  auto rule = [nd, d](const Tensor& v, const Tensor& y) {
    if (nd == 0) return mul(v, 0.0);  // softmax of a scalar is the constant 1
    return mul(y, sub(v, sum(mul(v, y), {rules::bdim(d, nd)}, true)));
  };
  return record1(
      "softmax", {x}, y, [rule](const Grads& g, const Grads& o) -> Grads { return {rule(g[0], o[0])}; },
      [rule](const Grads& t, const Grads& o) -> Grads { return {t[0].defined() ? rule(t[0], o[0]) : Tensor()}; },
      /*save_outputs=*/true);
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  Tensor y = raw([&] { return kernels::log_softmax(x, dim); });
  const int64_t nd = x.dim(), d = wrap_dim(dim, std::max<int64_t>(nd, 1), "log_softmax");
  // y = x - lse(x): gx = g - softmax * sum(g);  ty = t - sum(softmax * t).
  return record1(
      "log_softmax", {x}, y,
      [nd, d](const Grads& g, const Grads& o) -> Grads {
        if (nd == 0) return {mul(g[0], 0.0)};
        return {sub(g[0], mul(exp(o[0]), sum(g[0], {rules::bdim(d, nd)}, true)))};
      },
      [nd, d](const Grads& t, const Grads& o) -> Grads {
        if (!t[0].defined()) return {Tensor()};
        if (nd == 0) return {mul(t[0], 0.0)};
        return {sub(t[0], sum(mul(exp(o[0]), t[0]), {rules::bdim(d, nd)}, true))};
      },
      /*save_outputs=*/true);
}

// ---------------------------------------------------------------- layer norm

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  CORTEX_CHECK(k >= 1 && k <= x.dim() && std::equal(normalized_shape.begin(), normalized_shape.end(),
                                                    x.shape().end() - k),
               "layer_norm: expected the trailing dims of x to be normalized_shape ", shape_str(normalized_shape),
               ", found x of shape ", shape_str(x.shape()));
  kernels::LayerNorm r = raw([&] { return kernels::layer_norm(x, k, weight, bias, eps); });
  const Shape xs = x.shape(), ns = normalized_shape;
  Shape axes, kshape(xs.begin(), xs.end() - k);
  for (int64_t i = x.dim() - k; i < x.dim(); ++i) axes.push_back(i);
  kshape.insert(kshape.end(), k, 1);
  const int64_t nd = x.dim();
  Tensor kmean = r.mean, krstd = r.rstd;
  // y = xhat * w + b:  gxhat = g * w,  gx = J gxhat,  gw = sum_lead(g * xhat),  gb = sum_lead(g)
  return record1(
      "layer_norm", {x, weight, bias}, r.y,
      [x, weight, bias, axes, kshape, eps, kmean, krstd, nd, ns](const Grads& g, const Grads&) -> Grads {
        Normed n = normed(x, axes, kshape, eps, kmean, krstd);
        Tensor gx, gw, gb;
        if (requires_grad(x)) {
          Tensor gh = weight.defined() ? mul(g[0], weight) : g[0];
          gx = norm_jac(gh, n.xhat, n.rstd, bdims(axes, nd));
        }
        if (requires_grad(weight)) gw = rules::sum_to(mul(g[0], n.xhat), ns);
        if (requires_grad(bias)) gb = rules::sum_to(g[0], ns);
        return {gx, gw, gb};
      },
      [x, weight, axes, kshape, eps, kmean, krstd, nd, xs](const Grads& t, const Grads&) -> Grads {
        Normed n = normed(x, axes, kshape, eps, kmean, krstd);
        Tensor ty;
        if (t[0].defined()) {
          Tensor th = norm_jac(t[0], n.xhat, n.rstd, bdims(axes, nd));
          ty = weight.defined() ? mul(th, weight) : th;
        }
        if (t[1].defined()) ty = tadd(ty, mul(n.xhat, rules::bexpand(t[1], xs)));
        if (t[2].defined()) ty = tadd(ty, rules::bexpand(t[2], xs));
        return {ty};
      });
}

// ---------------------------------------------------------------- batch norm

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps) {
  Tensor y = raw([&] { return kernels::batch_norm(x, running_mean, running_var, weight, bias, eps); });
  const Chan c(x);
  // y = (x - m) * s * w + b with s = (v + eps)^(-1/2). Everything but x is per channel; the running
  // statistics are differentiable too (they are inputs like any other, and checked for in-place
  // writes before the backward pass).
  const Tensor m = running_mean, v = running_var;
  auto inv = [v, eps]() { return rsqrt(add(v, eps)); };
  auto scale = [weight, inv]() { return weight.defined() ? mul(weight, inv()) : inv(); };
  return record1(
      "batch_norm", {x, m, v, weight, bias}, y,
      [x, m, v, weight, bias, c, inv, scale](const Grads& g, const Grads&) -> Grads {
        Tensor gx, gm, gv, gw, gb;
        const Tensor s = inv();
        if (requires_grad(x)) gx = mul(g[0], c.p(scale()));
        if (requires_grad(m)) gm = mul(neg(c.sum(g[0])), scale());
        if (requires_grad(v) || requires_grad(weight)) {
          Tensor gxc = c.sum(mul(g[0], sub(x, c.p(m))));  // sum g (x - m), (batch, C)
          // d s / d v = -s^3 / 2
          if (requires_grad(v)) {
            Tensor ds = mul(pow(s, 3.0), -0.5);
            gv = mul(gxc, weight.defined() ? mul(weight, ds) : ds);
          }
          if (requires_grad(weight)) gw = mul(gxc, s);
        }
        if (requires_grad(bias)) gb = c.sum(g[0]);
        return {gx, gm, gv, gw, gb};
      },
      [x, m, v, weight, c, inv, scale](const Grads& t, const Grads&) -> Grads {
        Tensor ty;
        const Tensor s = inv();
        if (t[0].defined()) ty = mul(t[0], c.p(scale()));
        if (t[1].defined()) ty = tadd(ty, neg(mul(c.d(t[1]), c.p(scale()))));
        if (t[2].defined() || t[3].defined()) {
          Tensor xc = sub(x, c.p(m));
          if (t[2].defined()) {
            Tensor ds = mul(pow(s, 3.0), -0.5);
            ty = tadd(ty, mul(mul(xc, c.p(weight.defined() ? mul(weight, ds) : ds)), c.d(t[2])));
          }
          if (t[3].defined()) ty = tadd(ty, mul(mul(xc, c.p(s)), c.d(t[3])));
        }
        if (t[4].defined()) ty = tadd(ty, c.d(t[4]));
        return {ty};
      });
}

Tensor batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                        Tensor running_var, double momentum, double eps) {
  CORTEX_CHECK(x.dim() >= 2, "batch_norm_train: expected x of shape (N, C, ...), found ", shape_str(x.shape()));
  CORTEX_CHECK(running_mean.defined() == running_var.defined(),
               "batch_norm_train: expected running_mean and running_var both given or both undefined");
  CORTEX_CHECK(momentum >= 0 && momentum <= 1, "batch_norm_train: expected momentum in [0, 1], found ", momentum);
  const Chan c(x);
  const int64_t M = x.numel() / std::max<int64_t>(x.size(1), 1);  // values per channel
  CORTEX_CHECK(M > 1, "batch_norm_train: expected more than 1 value per channel, found x of shape ",
               shape_str(x.shape()));
  // Batch statistics over all dims but 1 (biased variance), then the normalisation kernel with them.
  // There is no fused training kernel: two reductions and the inference kernel do the work.
  Tensor bmean, bvar;
  Tensor y = raw([&] {
    bmean = kernels::reduce(kernels::Reduce::Mean, x, c.axes, false);
    bvar = kernels::var(x, c.axes, 0, false);
    return kernels::batch_norm(x, bmean, bvar, weight, bias, eps);
  });
  if (momentum > 0 && running_mean.defined()) {
    CORTEX_CHECK(running_mean.shape() == Shape{x.size(1)} && running_var.shape() == Shape{x.size(1)} &&
                     running_mean.dtype() == x.dtype() && running_var.dtype() == x.dtype(),
                 "batch_norm_train: expected running_mean and running_var of shape [", x.size(1), "] and dtype ",
                 dtype_name(x.dtype()), ", found ", shape_str(running_mean.shape()), " ",
                 dtype_name(running_mean.dtype()), " and ", shape_str(running_var.shape()), " ",
                 dtype_name(running_var.dtype()));
    // running = (1 - momentum) running + momentum batch, with the unbiased variance (PyTorch).
    NoGradGuard ng;
    Tensor rm = detach(running_mean), rv = detach(running_var);
    Tensor unbiased = mul(bvar, static_cast<double>(M) / static_cast<double>(M - 1));
    Tensor new_m = add(mul(rm, 1.0 - momentum), mul(bmean, momentum));
    Tensor new_v = add(mul(rv, 1.0 - momentum), mul(unbiased, momentum));
    rm.copy_(new_m);
    rv.copy_(new_v);
  }
  // The running statistics are not inputs of the node: they are written in place right here, and
  // the output does not depend on them.
  const Shape kshape = rules::cat_shape({1}, c.cshape);
  return record1(
      "batch_norm_train", {x, weight, bias}, y,
      [x, weight, bias, c, kshape, eps, bmean, bvar](const Grads& g, const Grads&) -> Grads {
        Normed n = normed(x, c.axes, kshape, eps, bmean, rsqrt(add(bvar, eps)));
        Tensor gx, gw, gb;
        if (requires_grad(x)) {
          Tensor gh = weight.defined() ? mul(g[0], c.p(weight)) : g[0];
          gx = norm_jac(gh, n.xhat, n.rstd, c.bax());
        }
        if (requires_grad(weight)) gw = c.sum(mul(g[0], n.xhat));
        if (requires_grad(bias)) gb = c.sum(g[0]);
        return {gx, gw, gb};
      },
      [x, weight, c, kshape, eps, bmean, bvar](const Grads& t, const Grads&) -> Grads {
        Normed n = normed(x, c.axes, kshape, eps, bmean, rsqrt(add(bvar, eps)));
        Tensor ty;
        if (t[0].defined()) {
          Tensor th = norm_jac(t[0], n.xhat, n.rstd, c.bax());
          ty = weight.defined() ? mul(th, c.p(weight)) : th;
        }
        if (t[1].defined()) ty = tadd(ty, mul(n.xhat, c.d(t[1])));
        if (t[2].defined()) ty = tadd(ty, c.d(t[2]));
        return {ty};
      });
}

// ---------------------------------------------------------------- convolution
//
// y = conv(x, w) is bilinear in (x, w). Its two adjoints are the kernels conv2d_input_grad
// (gx = W^T gy, a transposed convolution) and conv2d_weight_grad (gw = correlation of x with gy).
// Both are differentiable ops here, defined by the same three maps:
//   <gy, conv(x, w)> = <input_grad(gy, w), x> = <weight_grad(x, gy), w>.
// Batched derivatives are folded, never looped over:
//   - a batched input-side tensor (B, N, C, H, W) goes into N (conv, input_grad's gy) or, when it
//     meets an unbatched gy in weight_grad, into the input channels;
//   - a batched weight-side tensor (B, O, C/G, KH, KW) goes into the output channels (conv) or the
//     input channels (input_grad); with groups G the batch is placed inside each group so that every
//     group still sees only its own channels: channel index (g, b, c') instead of (b, g, c').

namespace {

using kernels::Conv2dParams;

Tensor conv2d_input_grad_op(const Tensor& gy, const Tensor& w, const Shape& xs, const Conv2dParams& p);
Tensor conv2d_weight_grad_op(const Tensor& x, const Tensor& gy, const Shape& ws, const Conv2dParams& p);

// conv(x, w) for x batched (B, N, C, H, W) -> (B, N, O, OH, OW).
Tensor conv_bx(const Tensor& xb, const Tensor& w, const Conv2dParams& p) {
  return unfold(cortex::conv2d(fold(xb), w, Tensor(), p), bsize(xb));
}
// conv(x, w) for w batched (B, O, Cg, KH, KW) -> (B, N, O, OH, OW).
Tensor conv_bw(const Tensor& x, const Tensor& wb, const Conv2dParams& p) {
  if (nb() == 0) return cortex::conv2d(x, wb, Tensor(), p);
  const int64_t B = wb.size(0), O = wb.size(1), G = p.groups, Og = O / G;
  const Shape& k = wb.shape();
  Tensor w = wb.reshape({B, G, Og, k[2], k[3], k[4]}).permute({1, 0, 2, 3, 4, 5}).reshape({G * B * Og, k[2], k[3], k[4]});
  Tensor y = cortex::conv2d(x, w, Tensor(), p);  // (N, G * B * Og, OH, OW), channels (g, b, o)
  const int64_t N = y.size(0), OH = y.size(2), OW = y.size(3);
  return y.reshape({N, G, B, Og, OH, OW}).permute({2, 0, 1, 3, 4, 5}).reshape({B, N, O, OH, OW});
}
// input_grad(gy, w) for gy batched (B, N, O, OH, OW) -> (B, N, *xs[1:]).
Tensor input_grad_bg(const Tensor& gyb, const Tensor& w, const Shape& xs, const Conv2dParams& p) {
  if (nb() == 0) return conv2d_input_grad_op(gyb, w, xs, p);
  const int64_t B = gyb.size(0);
  return unfold(conv2d_input_grad_op(fold(gyb), w, {B * xs[0], xs[1], xs[2], xs[3]}, p), B);
}
// input_grad(gy, w) for w batched (B, O, Cg, KH, KW) -> (B, *xs).
Tensor input_grad_bw(const Tensor& gy, const Tensor& wb, const Shape& xs, const Conv2dParams& p) {
  if (nb() == 0) return conv2d_input_grad_op(gy, wb, xs, p);
  const int64_t B = wb.size(0), O = wb.size(1), Cg = wb.size(2), G = p.groups;
  Tensor w = wb.permute({1, 0, 2, 3, 4}).reshape({O, B * Cg, wb.size(3), wb.size(4)});
  Tensor gx = conv2d_input_grad_op(gy, w, {xs[0], B * xs[1], xs[2], xs[3]}, p);  // channels (g, b, c)
  return gx.reshape({xs[0], G, B, Cg, xs[2], xs[3]}).permute({2, 0, 1, 3, 4, 5}).reshape({B, xs[0], xs[1], xs[2], xs[3]});
}
// weight_grad(x, gy) for x batched (B, N, C, H, W) -> (B, *ws).
Tensor weight_grad_bx(const Tensor& xb, const Tensor& gy, const Shape& ws, const Conv2dParams& p) {
  if (nb() == 0) return conv2d_weight_grad_op(xb, gy, ws, p);
  const int64_t B = xb.size(0), N = xb.size(1), C = xb.size(2), H = xb.size(3), W = xb.size(4);
  const int64_t G = p.groups, Cg = C / G;
  Tensor x = xb.reshape({B, N, G, Cg, H, W}).permute({1, 2, 0, 3, 4, 5}).reshape({N, C * B, H, W});
  Tensor gw = conv2d_weight_grad_op(x, gy, {ws[0], B * Cg, ws[2], ws[3]}, p);  // (O, (b, c), KH, KW)
  return gw.reshape({ws[0], B, Cg, ws[2], ws[3]}).permute({1, 0, 2, 3, 4});
}
// weight_grad(x, gy) for gy batched (B, N, O, OH, OW) -> (B, *ws).
Tensor weight_grad_bg(const Tensor& x, const Tensor& gyb, const Shape& ws, const Conv2dParams& p) {
  if (nb() == 0) return conv2d_weight_grad_op(x, gyb, ws, p);
  const int64_t B = gyb.size(0), N = gyb.size(1), O = gyb.size(2), OH = gyb.size(3), OW = gyb.size(4);
  const int64_t G = p.groups, Og = O / G;
  Tensor gy = gyb.reshape({B, N, G, Og, OH, OW}).permute({1, 2, 0, 3, 4, 5}).reshape({N, G * B * Og, OH, OW});
  Tensor gw = conv2d_weight_grad_op(x, gy, {G * B * Og, ws[1], ws[2], ws[3]}, p);  // ((g, b, o), Cg, KH, KW)
  return gw.reshape({G, B, Og, ws[1], ws[2], ws[3]}).permute({1, 0, 2, 3, 4, 5}).reshape({B, O, ws[1], ws[2], ws[3]});
}

// gx = input_grad(gy, w), linear in gy and in w:
//   VJP(a): d<a, gx>/dgy = conv(a, w),  d<a, gx>/dw = weight_grad(a, gy)
//   JVP:    input_grad(t_gy, w) + input_grad(gy, t_w)
Tensor conv2d_input_grad_op(const Tensor& gy, const Tensor& w, const Shape& xs, const Conv2dParams& p) {
  Tensor gx = raw([&] { return kernels::conv2d_input_grad(gy, w, xs, p); });
  const Shape ws = w.shape();
  return record1(
      "conv2d_input_grad", {gy, w}, gx,
      [gy, w, ws, p](const Grads& g, const Grads&) -> Grads {
        return {requires_grad(gy) ? conv_bx(g[0], w, p) : Tensor(),
                requires_grad(w) ? weight_grad_bx(g[0], gy, ws, p) : Tensor()};
      },
      [gy, w, xs, p](const Grads& t, const Grads&) -> Grads {
        Tensor a = t[0].defined() ? input_grad_bg(t[0], w, xs, p) : Tensor();
        Tensor b = t[1].defined() ? input_grad_bw(gy, t[1], xs, p) : Tensor();
        return {tadd(a, b)};
      });
}

// gw = weight_grad(x, gy), linear in x and in gy:
//   VJP(a): d<a, gw>/dx = input_grad(gy, a),  d<a, gw>/dgy = conv(x, a)
//   JVP:    weight_grad(t_x, gy) + weight_grad(x, t_gy)
Tensor conv2d_weight_grad_op(const Tensor& x, const Tensor& gy, const Shape& ws, const Conv2dParams& p) {
  Tensor gw = raw([&] { return kernels::conv2d_weight_grad(x, gy, ws, p); });
  const Shape xs = x.shape();
  return record1(
      "conv2d_weight_grad", {x, gy}, gw,
      [x, gy, xs, p](const Grads& g, const Grads&) -> Grads {
        return {requires_grad(x) ? input_grad_bw(gy, g[0], xs, p) : Tensor(),
                requires_grad(gy) ? conv_bw(x, g[0], p) : Tensor()};
      },
      [x, gy, ws, p](const Grads& t, const Grads&) -> Grads {
        Tensor a = t[0].defined() ? weight_grad_bx(t[0], gy, ws, p) : Tensor();
        Tensor b = t[1].defined() ? weight_grad_bg(x, t[1], ws, p) : Tensor();
        return {tadd(a, b)};
      });
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const kernels::Conv2dParams& p) {
  CORTEX_CHECK(x.defined() && w.defined() && x.dim() == 4 && w.dim() == 4,
               "conv2d: expected x of shape (N, C, H, W) and w of shape (O, C/groups, KH, KW), found x ",
               x.defined() ? shape_str(x.shape()) : "undefined", " and w ",
               w.defined() ? shape_str(w.shape()) : "undefined");
  Tensor y = raw([&] { return kernels::conv2d(x, w, bias, p); });
  const Shape xs = x.shape(), ws = w.shape(), ys = y.shape();
  const int64_t O = ws[0];
  return record1(
      "conv2d", {x, w, bias}, y,
      [x, w, bias, xs, ws, p](const Grads& g, const Grads&) -> Grads {
        return {requires_grad(x) ? input_grad_bg(g[0], w, xs, p) : Tensor(),
                requires_grad(w) ? weight_grad_bg(x, g[0], ws, p) : Tensor(),
                requires_grad(bias) ? sum(g[0], bdims({0, 2, 3}, 4)) : Tensor()};
      },
      [x, w, p, ys, O](const Grads& t, const Grads&) -> Grads {
        Tensor ty;
        if (t[0].defined()) ty = conv_bx(t[0], w, p);
        if (t[1].defined()) ty = tadd(ty, conv_bw(x, t[1], p));
        if (t[2].defined()) ty = tadd(ty, rules::bexpand(rules::breshape(t[2], {O, 1, 1}), ys));
        return {ty};
      });
}

// ---------------------------------------------------------------- pooling

Tensor max_pool2d(const Tensor& x, const kernels::Pool2dParams& p) {
  kernels::MaxPool r = raw([&] { return kernels::max_pool2d(x, p); });
  // y is a gather of x's planes at the kernel's argmax indices: gx scatters g back (scatter_add),
  // ty gathers t. Both are differentiable ops, so the rule is too.
  const Shape xs = x.shape(), ys = r.y.shape();
  const int64_t HW = xs[xs.size() - 2] * xs[xs.size() - 1], OHW = ys[ys.size() - 2] * ys[ys.size() - 1];
  Shape lead(xs.begin(), xs.end() - 2);
  Shape xflat = rules::cat_shape(lead, {HW}), yflat = rules::cat_shape(lead, {OHW});
  const Tensor idx = r.indices.reshape(yflat);
  // The index broadcast over the derivative's batch dim.
  auto bidx = [idx](const Tensor& d) {
    return nb() ? idx.unsqueeze(0).expand(rules::cat_shape(rules::bshape(d), idx.shape())) : idx;
  };
  return record1(
      "max_pool2d", {x}, r.y,
      [bidx, xs, xflat, yflat](const Grads& g, const Grads&) -> Grads {
        Tensor gf = rules::breshape(g[0], yflat);
        Tensor z = zeros(rules::cat_shape(rules::bshape(g[0]), xflat), g[0].dtype(), g[0].device());
        return {rules::breshape(scatter_add(z, -1, bidx(gf), gf), xs)};
      },
      [bidx, ys, xflat](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor()};
        Tensor tf = rules::breshape(t[0], xflat);
        return {rules::breshape(gather(tf, -1, bidx(tf)), ys)};
      });
}

namespace {

// The adjoint of avg_pool2d (a linear map), as a differentiable op: its own adjoint is avg_pool2d.
Tensor avg_pool2d_backward_op(const Tensor& gy, const Shape& xs, const kernels::Pool2dParams& p) {
  Tensor gx = raw([&] { return kernels::avg_pool2d_backward(gy, xs, p); });
  const Shape ys = gy.shape();
  return record1(
      "avg_pool2d_backward", {gy}, gx,
      [ys, p](const Grads& g, const Grads&) -> Grads {
        return {rules::breshape_as(cortex::avg_pool2d(planes(g[0]), p), g[0], ys)};
      },
      [xs, p](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor()};
        Tensor tp = planes(t[0]);
        return {rules::breshape_as(avg_pool2d_backward_op(tp, {tp.size(0), xs[xs.size() - 2], xs.back()}, p), t[0], xs)};
      });
}

Tensor adaptive_avg_pool2d_backward_op(const Tensor& gy, const Shape& xs) {
  Tensor gx = raw([&] { return kernels::adaptive_avg_pool2d_backward(gy, xs); });
  const Shape ys = gy.shape();
  const int64_t OH = ys[ys.size() - 2], OW = ys.back();
  return record1(
      "adaptive_avg_pool2d_backward", {gy}, gx,
      [ys, OH, OW](const Grads& g, const Grads&) -> Grads {
        return {rules::breshape_as(adaptive_avg_pool2d(planes(g[0]), OH, OW), g[0], ys)};
      },
      [xs](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor()};
        Tensor tp = planes(t[0]);
        return {rules::breshape_as(adaptive_avg_pool2d_backward_op(tp, {tp.size(0), xs[xs.size() - 2], xs.back()}), t[0], xs)};
      });
}

}  // namespace

Tensor avg_pool2d(const Tensor& x, const kernels::Pool2dParams& p) {
  Tensor y = raw([&] { return kernels::avg_pool2d(x, p); });
  const Shape xs = x.shape(), ys = y.shape();
  // Linear: gx = A^T g (the backward kernel), ty = A t (the forward kernel), each on the planes of
  // the (possibly batched) derivative.
  return record1(
      "avg_pool2d", {x}, y,
      [xs, p](const Grads& g, const Grads&) -> Grads {
        Tensor gp = planes(g[0]);
        return {rules::breshape_as(avg_pool2d_backward_op(gp, {gp.size(0), xs[xs.size() - 2], xs.back()}, p), g[0], xs)};
      },
      [ys, p](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor()};
        return {rules::breshape_as(cortex::avg_pool2d(planes(t[0]), p), t[0], ys)};
      });
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  Tensor y = raw([&] { return kernels::adaptive_avg_pool2d(x, out_h, out_w); });
  const Shape xs = x.shape(), ys = y.shape();
  return record1(
      "adaptive_avg_pool2d", {x}, y,
      [xs](const Grads& g, const Grads&) -> Grads {
        Tensor gp = planes(g[0]);
        return {rules::breshape_as(adaptive_avg_pool2d_backward_op(gp, {gp.size(0), xs[xs.size() - 2], xs.back()}), g[0], xs)};
      },
      [ys, out_h, out_w](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor()};
        return {rules::breshape_as(adaptive_avg_pool2d(planes(t[0]), out_h, out_w), t[0], ys)};
      });
}

// ---------------------------------------------------------------- grid_sample
//
// y[n, c, l] = sum over the four taps q of w_q(grid[n, l]) x[n, c, q]: linear in x, piecewise
// bilinear in the grid. With A(grid) the sampling matrix and D(x, grid)[n, c, l, k] =
// d y[n, c, l] / d grid[n, l, k] (k = 0 for the x coordinate, 1 for y):
//   VJP: gx = A^T g (grid_sample_backward's input part), ggrid[n, l, k] = sum_c g[n, c, l] D[n, c, l, k]
//   JVP: ty = A t_x + sum_k D[..., k] t_grid[..., k]
// D is exact and comes from the kernel: grid_sample_backward with one channel per plane (x reshaped
// to (N*C, 1, H, W), the grid repeated per channel) and a unit cotangent returns, for each plane, the
// grid gradient of that plane alone, which is D. Second derivatives: gx = A(grid)^T g is differentiated
// exactly (w.r.t. g by A, w.r.t. the grid through D at the cotangent); D's own derivatives (w.r.t. x and
// the grid) are not available from the kernels, so differentiating through them throws a clear error.
// Nearest mode: A picks one tap per point and D is 0 (the kernel returns a zero grid gradient), so the
// same rules hold unchanged with the mode passed through.

namespace {

using kernels::GridMode;
using kernels::GridPadding;

struct GridCfg {
  bool align;
  GridPadding padding;
  GridMode mode;
};

// D(x, grid): (N, C, Ho, Wo, 2). A differentiable op whose derivatives refuse, clearly.
Tensor grid_derivative(const Tensor& x, const Tensor& grid, GridCfg cfg) {
  Tensor d = raw([&] {
    const int64_t N = x.size(0), C = x.size(1), Ho = grid.size(1), Wo = grid.size(2);
    Tensor xp = x.reshape({N * C, 1, x.size(2), x.size(3)});
    Tensor gp = grid.unsqueeze(1).expand({N, C, Ho, Wo, 2}).reshape({N * C, Ho, Wo, 2});
    Tensor ones_ = full({N * C, 1, Ho, Wo}, 1.0, x.dtype(), x.device());
    return kernels::grid_sample_backward(ones_, xp, gp, cfg.align, cfg.padding, cfg.mode)
        .grid.reshape({N, C, Ho, Wo, 2});
  });
  auto refuse = []() -> Grads {
    CORTEX_CHECK(false, "grid_sample: double backward through the grid gradient (second derivatives w.r.t. the "
                        "grid, or mixed grid/input derivatives of the grid gradient) is not supported");
    return {};
  };
  return record1(
      "grid_sample_grid_derivative", {x, grid}, d, [refuse](const Grads&, const Grads&) { return refuse(); },
      [refuse](const Grads&, const Grads&) { return refuse(); });
}
// D for a batched x-side tensor (B, N, C, H, W) -> (B, N, C, Ho, Wo, 2).
Tensor grid_derivative_b(const Tensor& xb, const Tensor& grid, GridCfg cfg) {
  const int64_t B = bsize(xb);
  return unfold(grid_derivative(fold(xb), rep(grid, B), cfg), B);
}
// sum_c g[..., n, c, l] D[..., n, c, l, k] -> (..., N, Ho, Wo, 2)
Tensor contract_c(const Tensor& g, const Tensor& d) { return sum(mul(g.unsqueeze(-1), d), {-4}); }
// sum_k D[..., n, c, l, k] t[..., n, l, k] -> (..., N, C, Ho, Wo)
Tensor contract_k(const Tensor& t, const Tensor& d) { return sum(mul(t.unsqueeze(-4), d), {-1}); }
// A t for a batched t (B, N, C, H, W).
Tensor sample_b(const Tensor& tb, const Tensor& grid, GridCfg cfg) {
  const int64_t B = bsize(tb);
  return unfold(cortex::grid_sample(fold(tb), rep(grid, B), cfg.align, cfg.padding, cfg.mode), B);
}

// gx = A(grid)^T g with g (N, C, Ho, Wo) and x_shape xs, as a differentiable op:
//   VJP(a): d<a, gx>/dg = A a,  d<a, gx>/dgrid = d<A(grid) a, g>/dgrid = sum_c g D(a, grid)
Tensor grid_input_adjoint(const Tensor& g, const Tensor& grid, const Shape& xs, GridCfg cfg) {
  Tensor gx = raw([&] {
    return kernels::grid_sample_backward(g, zeros(xs, g.dtype(), g.device()), grid, cfg.align, cfg.padding, cfg.mode)
        .input;
  });
  return record1(
      "grid_sample_input_adjoint", {g, grid}, gx,
      [g, grid, cfg](const Grads& a, const Grads&) -> Grads {
        return {requires_grad(g) ? sample_b(a[0], grid, cfg) : Tensor(),
                requires_grad(grid) ? contract_c(g, grid_derivative_b(a[0], grid, cfg)) : Tensor()};
      },
      [g, grid, xs, cfg](const Grads& t, const Grads&) -> Grads {
        CORTEX_CHECK(!t[1].defined(), "grid_sample: forward-mode derivative of the input gradient w.r.t. the grid "
                                      "is not supported");
        if (!t[0].defined()) return {Tensor()};
        const int64_t B = bsize(t[0]);
        Shape fx = xs;
        fx[0] *= B;
        return {unfold(grid_input_adjoint(fold(t[0]), rep(grid, B), fx, cfg), B)};
      });
}

}  // namespace

Tensor grid_sample(const Tensor& x, const Tensor& grid, bool align_corners, kernels::GridPadding padding,
                   kernels::GridMode mode) {
  Tensor y = raw([&] { return kernels::grid_sample(x, grid, align_corners, padding, mode); });
  const GridCfg cfg{align_corners, padding, mode};
  const Shape xs = x.shape();
  return record1(
      "grid_sample", {x, grid}, y,
      [x, grid, xs, cfg](const Grads& g, const Grads&) -> Grads {
        const bool nx = requires_grad(x), ng = requires_grad(grid);
        const int64_t B = bsize(g[0]);
        if (!needs_autograd({g[0], x, grid})) {
          // Plain backward: one fused kernel call, batched cotangents folded into N.
          kernels::GridSampleGrads r = raw([&] {
            return kernels::grid_sample_backward(fold(g[0]), rep(detach(x), B), rep(detach(grid), B), cfg.align,
                                                 cfg.padding, cfg.mode, ng);
          });
          return {nx ? unfold(r.input, B) : Tensor(), ng ? unfold(r.grid, B) : Tensor()};
        }
        // create_graph: the same two results, as differentiable ops.
        Tensor gx, gg;
        if (nx) {
          Shape fx = xs;
          fx[0] *= B;
          gx = unfold(grid_input_adjoint(fold(g[0]), rep(grid, B), fx, cfg), B);
        }
        if (ng) gg = contract_c(g[0], grid_derivative(x, grid, cfg));
        return {gx, gg};
      },
      [x, grid, cfg](const Grads& t, const Grads&) -> Grads {
        Tensor ty;
        if (t[0].defined()) ty = sample_b(t[0], grid, cfg);
        if (t[1].defined()) ty = tadd(ty, contract_k(t[1], grid_derivative(x, grid, cfg)));
        return {ty};
      });
}

// ---------------------------------------------------------------- resize and pad

namespace {

Tensor resize_bilinear_backward_op(const Tensor& gy, const Shape& xs, bool align) {
  Tensor gx = raw([&] { return kernels::resize_bilinear_backward(gy, xs, align); });
  const int64_t OH = gy.size(2), OW = gy.size(3);
  return record1(
      "resize_bilinear_backward", {gy}, gx,
      [OH, OW, align](const Grads& g, const Grads&) -> Grads {
        return {unfold(resize_bilinear(fold(g[0]), OH, OW, align), bsize(g[0]))};
      },
      [xs, align](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor()};
        const int64_t B = bsize(t[0]);
        Shape fx = xs;
        fx[0] *= B;
        return {unfold(resize_bilinear_backward_op(fold(t[0]), fx, align), B)};
      });
}

Tensor pad_backward_op(const Tensor& gy, const Shape& xs, const Shape& pads, kernels::PadMode mode) {
  Tensor gx = raw([&] { return kernels::pad_backward(gy, xs, pads, mode); });
  // Pads act on trailing dims, so a batched derivative needs no folding: its x_shape gains the batch dim.
  return record1(
      "pad_backward", {gy}, gx,
      [pads, mode](const Grads& g, const Grads&) -> Grads { return {cortex::pad(g[0], pads, mode, 0.0)}; },
      [xs, pads, mode](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor()};
        return {pad_backward_op(t[0], rules::cat_shape(rules::bshape(t[0]), xs), pads, mode)};
      });
}

}  // namespace

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  Tensor y = raw([&] { return kernels::resize_bilinear(x, out_h, out_w, align_corners); });
  const Shape xs = x.shape();
  // Linear: gx = R^T g (the backward kernel), ty = R t.
  return record1(
      "resize_bilinear", {x}, y,
      [xs, align_corners](const Grads& g, const Grads&) -> Grads {
        const int64_t B = bsize(g[0]);
        Shape fx = xs;
        fx[0] *= B;
        return {unfold(resize_bilinear_backward_op(fold(g[0]), fx, align_corners), B)};
      },
      [out_h, out_w, align_corners](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor()};
        return {unfold(resize_bilinear(fold(t[0]), out_h, out_w, align_corners), bsize(t[0]))};
      });
}

Tensor pad(const Tensor& x, const Shape& pads, kernels::PadMode mode, double value) {
  Tensor y = raw([&] { return kernels::pad(x, pads, mode, value); });
  const Shape xs = x.shape();
  // Affine in x (the constant only fills cells that do not depend on x): gx = P^T g, ty = P t with a
  // zero fill.
  return record1(
      "pad", {x}, y,
      [xs, pads, mode](const Grads& g, const Grads&) -> Grads {
        return {pad_backward_op(g[0], rules::cat_shape(rules::bshape(g[0]), xs), pads, mode)};
      },
      [pads, mode](const Grads& t, const Grads&) -> Grads {
        return {t[0].defined() ? cortex::pad(t[0], pads, mode, 0.0) : Tensor()};
      });
}

// ---------------------------------------------------------------- attention and dropout

namespace {

// A primal as a batch of B equal copies (stride 0), to meet batched derivatives (B, *shape) in a
// kernel that takes any leading dims; itself when derivatives are not batched.
Tensor bcopies(const Tensor& p, int64_t B) {
  if (nb() == 0) return p;
  Shape e(p.shape());
  e.insert(e.begin(), B);
  return p.unsqueeze(0).expand(e);
}

// The attention VJP with the fused backward kernel (nothing records it): batched cotangents
// (B, *out) meet B stride-0 copies of the primals.
Grads attention_vjp_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                          const Tensor& g, double s, bool nq, bool nk, bool nv) {
  const int64_t B = bsize(g);
  kernels::AttentionGrads r = raw([&] {
    return kernels::attention_backward(bcopies(q, B), bcopies(k, B), bcopies(v, B), bcopies(out, B), bcopies(lse, B),
                                       g, s);
  });
  return {nq ? r.dq : Tensor(), nk ? r.dk : Tensor(), nv ? r.dv : Tensor()};
}

// The same VJP as differentiable ops (docs/autodiff.md section 4.10), for create_graph, hessians
// and forward-over-reverse: P is recomputed with ops so that its dependence on q and k is recorded.
Grads attention_vjp_composite(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, double s, bool nq,
                              bool nk, bool nv) {
  Tensor P = softmax(mul(matmul(q, k.transpose(-1, -2)), s), -1);
  Tensor gq, gk, gv;
  if (nv) gv = matmul(P.transpose(-1, -2), g);
  if (nq || nk) {
    Tensor gP = matmul(g, v.transpose(-1, -2));
    Tensor gS = mul(P, sub(gP, sum(mul(gP, P), {-1}, true)));
    if (nq) gq = mul(matmul(gS, k), s);
    if (nk) gk = mul(matmul(gS.transpose(-1, -2), q), s);
  }
  return {gq, gk, gv};
}

// The attention JVP with the one-pass fused kernel: zero tangents for inputs without one.
Tensor attention_jvp_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Grads& t, double s) {
  int64_t B = 1;
  for (const Tensor& d : t)
    if (d.defined()) B = bsize(d);
  const Tensor* p[3] = {&q, &k, &v};
  return raw([&] {
    Tensor pr[3], tg[3];
    for (int i = 0; i < 3; ++i) {
      pr[i] = bcopies(*p[i], B);
      tg[i] = t[i].defined() ? t[i] : zeros({}, q.dtype(), q.device()).expand(pr[i].shape());
    }
    return kernels::attention_jvp(pr[0], pr[1], pr[2], tg[0], tg[1], tg[2], s).tout;
  });
}

// The same JVP as differentiable ops, for reverse-over-forward and forward-over-forward:
//   tS = s (tq k^T + q tk^T),  tout = (P . tS) v - rowsum(P . tS) out + P tv.
Tensor attention_jvp_composite(const Tensor& q, const Tensor& k, const Tensor& v, const Grads& t, double s) {
  Tensor P = softmax(mul(matmul(q, k.transpose(-1, -2)), s), -1);
  Tensor tS;
  if (t[0].defined()) tS = matmul(t[0], k.transpose(-1, -2));
  if (t[1].defined()) tS = tadd(tS, matmul(q, t[1].transpose(-1, -2)));
  Tensor to;
  if (tS.defined()) {
    Tensor PtS = mul(P, mul(tS, s));
    to = sub(matmul(PtS, v), mul(sum(PtS, {-1}, true), matmul(P, v)));
  }
  if (t[2].defined()) to = tadd(to, matmul(P, t[2]));
  return to;
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  CORTEX_CHECK(q.defined() && k.defined() && v.defined() && q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim(),
               "scaled_dot_product_attention: expected q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) of one rank "
               ">= 2, found q ",
               q.defined() ? shape_str(q.shape()) : "undefined", ", k ", k.defined() ? shape_str(k.shape()) : "undefined",
               ", v ", v.defined() ? shape_str(v.shape()) : "undefined");
  const int64_t nd = q.dim();
  bool lead_ok = true;
  for (int64_t i = 0; i < nd - 2; ++i) lead_ok &= q.size(i) == k.size(i) && k.size(i) == v.size(i);
  CORTEX_CHECK(lead_ok && k.size(-1) == q.size(-1) && v.size(-2) == k.size(-2),
               "scaled_dot_product_attention: expected q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) with the same "
               "leading dims, found q ",
               shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  CORTEX_CHECK(scale >= 0 || q.size(-1) > 0,
               "scaled_dot_product_attention: the default scale 1/sqrt(D) needs D > 0, found q ", shape_str(q.shape()));
  const double s = scale < 0 ? 1.0 / std::sqrt(static_cast<double>(q.size(-1))) : scale;
  // Fused: one kernel (kernels/attention.h) that never stores the (Lq, Lk) score matrix. The rules
  // call the fused backward / one-pass JVP kernels when nothing differentiates them, and the
  // composite formulas (differentiable ops) when an enclosing level records the rule.
  kernels::Attention r = raw([&] { return kernels::attention_forward(q, k, v, s); });
  const Tensor lse = r.lse;  // private to the node: nobody else holds or writes it
  return record1(
      "scaled_dot_product_attention", {q, k, v}, r.out,
      [q, k, v, lse, s](const Grads& g, const Grads& o) -> Grads {
        const bool nq = requires_grad(q), nk = requires_grad(k), nv = requires_grad(v);
        if (!needs_autograd({g[0], q, k, v})) return attention_vjp_fused(q, k, v, o[0], lse, g[0], s, nq, nk, nv);
        return attention_vjp_composite(q, k, v, g[0], s, nq, nk, nv);
      },
      [q, k, v, s](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined() && !t[1].defined() && !t[2].defined()) return {Tensor()};
        std::vector<Tensor> in{q, k, v};
        for (const Tensor& d : t)
          if (d.defined()) in.push_back(d);
        if (!needs_autograd(in)) return {attention_jvp_fused(q, k, v, t, s)};
        return {attention_jvp_composite(q, k, v, t, s)};
      },
      /*save_outputs=*/true);
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  CORTEX_CHECK(p >= 0 && p < 1, "dropout: expected p in [0, 1), found ", p);
  if (!training || p == 0) return x;
  CORTEX_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64,
               "dropout: expected a float32 or float64 x, found ", dtype_name(x.dtype()));
  // Inverted dropout: keep where u < 1 - p and scale the kept values by 1 / (1 - p), so that the
  // expectation is x. The mask m is a constant: y = x * m, VJP g * m, JVP t * m (from mul).
  Tensor m = raw([&] {
    Tensor u = rand(x.shape(), gen, 0.0, 1.0, x.dtype(), x.device());
    Tensor keep = kernels::compare(kernels::Compare::Lt, u, scalar(1.0 - p, x.dtype(), x.device()));
    return kernels::binary(kernels::Binary::Mul, keep.to(x.dtype()), scalar(1.0 / (1.0 - p), x.dtype(), x.device()));
  });
  return mul(x, m);
}

}  // namespace cortex
