// Training losses as compositions of differentiable ops (autograd/losses.h): each checks its inputs
// and builds the loss from primitives, so reverse mode, forward mode and higher derivatives all
// come from the primitives' rules.
#include "autograd/losses.h"

#include <cmath>

namespace cortex {
namespace {

Tensor like(double v, const Tensor& x) { return scalar(v, x.dtype(), x.device()); }

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::None: return loss;
    case Reduction::Sum: return sum(loss);
    case Reduction::Mean: return mean(loss);
  }
  throw Error("loss: unknown reduction");
}

void check_float(const char* op, const Tensor& t, const char* what) {
  CORTEX_CHECK(t.defined(), op, ": ", what, " is undefined");
  CORTEX_CHECK(is_floating(t.dtype()), op, ": expected a float ", what, ", found ", dtype_name(t.dtype()));
}

// pred and target of one float dtype and one shape (no silent broadcasting: a (N, 1) against (N)
// mismatch would otherwise train on an (N, N) loss).
void check_pair(const char* op, const Tensor& pred, const Tensor& target, const char* pname = "pred") {
  check_float(op, pred, pname);
  check_float(op, target, "target");
  CORTEX_CHECK(pred.dtype() == target.dtype(), op, ": ", pname, " is ", dtype_name(pred.dtype()), " but target is ",
               dtype_name(target.dtype()), "; expected one dtype");
  CORTEX_CHECK(pred.shape() == target.shape(), op, ": ", pname, " has shape ", shape_str(pred.shape()),
               " but target has shape ", shape_str(target.shape()), "; expected the same shape");
}

}  // namespace

Tensor mse_loss(const Tensor& pred, const Tensor& target, Reduction reduction) {
  check_pair("mse_loss", pred, target);
  return reduce(square(sub(pred, target)), reduction);
}

Tensor l1_loss(const Tensor& pred, const Tensor& target, Reduction reduction) {
  check_pair("l1_loss", pred, target);
  return reduce(abs(sub(pred, target)), reduction);
}

Tensor poisson_nll_loss(const Tensor& pred_rate, const Tensor& target, double eps, bool full, Reduction reduction) {
  check_pair("poisson_nll_loss", pred_rate, target, "pred_rate");
  CORTEX_CHECK(eps >= 0, "poisson_nll_loss: eps must be >= 0, found ", eps);
  Tensor loss = sub(pred_rate, mul(target, log(add(pred_rate, eps))));
  if (full) {
    // Stirling's approximation of log(target!), only where target > 1. The log is taken of a
    // target clamped to 1 elsewhere so that neither its value nor its derivative is inf/NaN there.
    Tensor big = gt(target, like(1.0, target));
    Tensor t = where(big, target, like(1.0, target));
    Tensor stirling = add(sub(mul(t, log(t)), t), mul(log(mul(t, 2.0 * M_PI)), 0.5));
    loss = add(loss, where(big, stirling, like(0.0, target)));
  }
  return reduce(loss, reduction);
}

Tensor neg_pearson(const Tensor& pred, const Tensor& target, int64_t dim, double eps, Reduction reduction) {
  check_pair("neg_pearson", pred, target);
  CORTEX_CHECK(pred.dim() >= 1, "neg_pearson: expected at least 1-D inputs (samples along dim), found 0-dim");
  const int64_t d = wrap_dim(dim, pred.dim(), "neg_pearson");
  CORTEX_CHECK(pred.size(d) >= 2, "neg_pearson: a correlation needs at least 2 samples along dim ", d,
               ", found shape ", shape_str(pred.shape()));
  CORTEX_CHECK(eps > 0, "neg_pearson: eps must be > 0 (it keeps a constant column finite), found ", eps);
  const Shape ax{d};
  Tensor pc = sub(pred, mean(pred, ax, true));
  Tensor tc = sub(target, mean(target, ax, true));
  Tensor cov = mean(mul(pc, tc), ax);
  // sqrt(var + eps) > 0, so r is finite and so are its derivatives (d var / d pc = 2 pc / N).
  Tensor sp = sqrt(add(mean(square(pc), ax), eps));
  Tensor st = sqrt(add(mean(square(tc), ax), eps));
  Tensor r = div(cov, mul(sp, st));
  return reduce(neg(r), reduction);
}

Tensor info_nce(const Tensor& a, const Tensor& b, double temperature, bool symmetric, Reduction reduction) {
  check_pair("info_nce", a, b, "a");
  CORTEX_CHECK(a.dim() == 2, "info_nce: expected a and b of shape (N, D), found ", shape_str(a.shape()));
  CORTEX_CHECK(a.size(0) >= 1, "info_nce: expected at least one pair, found shape ", shape_str(a.shape()));
  CORTEX_CHECK(temperature > 0 && std::isfinite(temperature), "info_nce: temperature must be a finite value > 0, found ",
               temperature);
  auto normalize = [](const Tensor& x) {
    return div(x, maximum(norm(x, 2.0, {1}, true), like(1e-12, x)));
  };
  Tensor logits = div(matmul(normalize(a), normalize(b).t()), temperature);  // (N, N)
  Tensor loss = neg(log_softmax(logits, 1).diagonal());                        // a -> b, (N)
  if (symmetric) loss = mul(add(loss, neg(log_softmax(logits, 0).diagonal())), 0.5);
  return reduce(loss, reduction);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, double label_smoothing, Reduction reduction) {
  check_float("cross_entropy", logits, "logits");
  CORTEX_CHECK(target.defined(), "cross_entropy: target is undefined");
  CORTEX_CHECK(target.dtype() == DType::Int64, "cross_entropy: expected int64 class indices as target, found ",
               dtype_name(target.dtype()));
  CORTEX_CHECK(label_smoothing >= 0 && label_smoothing <= 1, "cross_entropy: label_smoothing must be in [0, 1], found ",
               label_smoothing);
  CORTEX_CHECK(logits.dim() >= 1, "cross_entropy: expected logits (C), (N, C) or (N, C, d1, ...), found 0-dim");
  // Unbatched (C) with a 0-dim target: a batch of one.
  if (logits.dim() == 1) {
    CORTEX_CHECK(target.dim() == 0, "cross_entropy: logits of shape ", shape_str(logits.shape()),
                 " need a 0-dim target, found shape ", shape_str(target.shape()));
    Tensor l = cross_entropy(logits.unsqueeze(0), target.unsqueeze(0), label_smoothing, reduction);
    return reduction == Reduction::None ? l.squeeze(0) : l;
  }
  // target must be logits' shape without the class dim 1.
  Shape want = logits.shape();
  want.erase(want.begin() + 1);
  CORTEX_CHECK(target.shape() == want, "cross_entropy: logits of shape ", shape_str(logits.shape()),
               " need a target of shape ", shape_str(want), ", found ", shape_str(target.shape()));
  const int64_t C = logits.size(1);
  CORTEX_CHECK(C >= 1, "cross_entropy: expected at least one class, found logits of shape ", shape_str(logits.shape()));
  // The kernels would catch a bad index too, but naming the loss and the class count helps more.
  for (int64_t t : target.to(Device::cpu()).to_vector<int64_t>())
    CORTEX_CHECK(t >= 0 && t < C, "cross_entropy: target index ", t, " is out of range for ", C, " classes");

  Tensor logp = log_softmax(logits, 1);
  Tensor loss = neg(gather(logp, 1, detach(target).unsqueeze(1)).squeeze(1));  // target's shape
  if (label_smoothing > 0) {
    Tensor uniform = neg(mean(logp, {1}));
    loss = add(mul(loss, 1.0 - label_smoothing), mul(uniform, label_smoothing));
  }
  return reduce(loss, reduction);
}

}  // namespace cortex
