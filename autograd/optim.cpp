// Optimizers (SGD, Adam, AdamW), gradient clipping and learning-rate schedules (autograd/optim.h).
// Updates are computed with the ops under NoGradGuard (so nothing is recorded) from new tensors,
// and written into each parameter's storage with copy_: the parameter handles held by models stay
// valid. Adam and AdamW on float32/float64 parameters instead run one fused kernel
// (kernels/optim.h) that writes the parameter and its moments in place, with the same roundings. Gradients are never modified in place: the engine may hand back broadcast views as .grad.
#include "autograd/optim.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "autograd/ops.h"
#include "kernels/optim.h"

namespace cortex {

// ---------------------------------------------------------------- Optimizer

Optimizer::Optimizer(const char* name, std::vector<Tensor> params, double lr, std::vector<std::string> slots)
    : name_(name), params_(std::move(params)), lr_(0), slots_(std::move(slots)), state_(params_.size()) {
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    CORTEX_CHECK(p.defined(), name_, ": parameter ", i, " is undefined");
    CORTEX_CHECK(is_floating(p.dtype()), name_, ": parameter ", i, " must be a float tensor, found ",
                 dtype_name(p.dtype()));
    CORTEX_CHECK(requires_grad(p) && is_leaf(p), name_, ": parameter ", i,
                 " must be a leaf that requires grad (with_grad / set_requires_grad), found ",
                 requires_grad(p) ? "a non-leaf (the result of an op)" : "a tensor that does not require grad");
    for (size_t j = 0; j < i; ++j) {
      const Tensor& q = params_[j];
      const bool same = q.storage() == p.storage() && q.offset() == p.offset() && q.shape() == p.shape() &&
                        q.strides() == p.strides();
      CORTEX_CHECK(!same, name_, ": parameters ", j, " and ", i, " are the same tensor; each may appear once");
    }
  }
  set_lr(lr);
}

void Optimizer::set_lr(double lr) {
  CORTEX_CHECK(std::isfinite(lr) && lr >= 0, name_, ": the learning rate must be finite and >= 0, found ", lr);
  lr_ = lr;
}

void Optimizer::zero_grad() {
  for (const Tensor& p : params_) cortex::zero_grad(p);
}

Tensor Optimizer::grad_for(size_t i) const {
  const Tensor& p = params_[i];
  Tensor g = grad_of(p);
  if (!g.defined()) return g;
  CORTEX_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype(), name_, ": parameter ", i, " is ",
               dtype_name(p.dtype()), " ", shape_str(p.shape()), " but its .grad is ", dtype_name(g.dtype()), " ",
               shape_str(g.shape()));
  return detach(g);
}

void Optimizer::write(size_t i, const Tensor& value) {
  NoGradGuard ng;
  Tensor p = params_[i];
  p.copy_(value);
}

OptimizerState Optimizer::state() const {
  OptimizerState out;
  out["lr"] = scalar(lr_, DType::Float64);
  for (size_t i = 0; i < state_.size(); ++i)
    for (const auto& [slot, t] : state_[i]) out[std::to_string(i) + "." + slot] = t.clone();
  return out;
}

void Optimizer::load_state(const OptimizerState& s) {
  std::vector<std::map<std::string, Tensor>> fresh(params_.size());
  double lr = lr_;
  for (const auto& [key, t] : s) {
    CORTEX_CHECK(t.defined(), name_, ": load_state: '", key, "' is undefined");
    if (key == "lr") {
      CORTEX_CHECK(t.numel() == 1, name_, ": load_state: 'lr' must have one element, found shape ", shape_str(t.shape()));
      lr = t.item();
      continue;
    }
    // "<i>.<slot>"
    const size_t dot = key.find('.');
    const std::string idx = dot == std::string::npos ? "" : key.substr(0, dot);
    const std::string slot = dot == std::string::npos ? "" : key.substr(dot + 1);
    const bool digits = !idx.empty() && idx.size() < 10 && std::all_of(idx.begin(), idx.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
    const bool known = std::find(slots_.begin(), slots_.end(), slot) != slots_.end();
    CORTEX_CHECK(digits && known, name_, ": load_state: unknown entry '", key, "' (expected 'lr' or '<i>.<name>' with ",
                 "name one of the optimizer's state names)");
    const size_t i = std::stoul(idx);
    CORTEX_CHECK(i < params_.size(), name_, ": load_state: '", key, "' names parameter ", i, " but there are ",
                 params_.size(), " parameters");
    const Tensor& p = params_[i];
    if (slot == "step") {
      CORTEX_CHECK(t.numel() == 1, name_, ": load_state: '", key, "' must have one element, found shape ",
                   shape_str(t.shape()));
      const double v = t.item();
      CORTEX_CHECK(v >= 0 && v == std::floor(v), name_, ": load_state: '", key, "' must be a count >= 0, found ", v);
      fresh[i][slot] = scalar(v, DType::Int64);
    } else {
      CORTEX_CHECK(t.shape() == p.shape(), name_, ": load_state: '", key, "' has shape ", shape_str(t.shape()),
                   " but parameter ", i, " has shape ", shape_str(p.shape()));
      NoGradGuard ng;
      fresh[i][slot] = detach(t).to(p.dtype()).to(p.device()).clone();
    }
  }
  // A parameter's state is all of its slots or none (it has not been stepped yet).
  for (size_t i = 0; i < fresh.size(); ++i)
    if (!fresh[i].empty())
      for (const std::string& slot : slots_)
        CORTEX_CHECK(fresh[i].count(slot), name_, ": load_state: parameter ", i, " has some state but no '", i, ".",
                     slot, "'");
  set_lr(lr);
  state_ = std::move(fresh);
}

// ---------------------------------------------------------------- SGD

SGD::SGD(std::vector<Tensor> params, const SGDOptions& opt)
    : Optimizer("SGD", std::move(params), opt.lr, {"momentum_buffer"}), opt_(opt) {
  CORTEX_CHECK(opt.momentum >= 0, "SGD: momentum must be >= 0, found ", opt.momentum);
  CORTEX_CHECK(opt.weight_decay >= 0, "SGD: weight_decay must be >= 0, found ", opt.weight_decay);
  CORTEX_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
               "SGD: nesterov needs momentum > 0 and dampening == 0, found momentum ", opt.momentum, " and dampening ",
               opt.dampening);
}

void SGD::step() {
  NoGradGuard ng;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = grad_for(i);
    if (!g.defined()) continue;
    const Tensor p = detach(params_[i]);
    if (opt_.weight_decay != 0) g = add(g, mul(p, opt_.weight_decay));
    if (opt_.momentum != 0) {
      auto it = state_[i].find("momentum_buffer");
      Tensor buf = it == state_[i].end() ? g.clone()  // the first step takes the gradient as it is
                                         : add(mul(it->second, opt_.momentum), mul(g, 1.0 - opt_.dampening));
      state_[i]["momentum_buffer"] = buf;
      g = opt_.nesterov ? add(g, mul(buf, opt_.momentum)) : buf;
    }
    write(i, sub(p, mul(g, lr_)));
  }
}

// ---------------------------------------------------------------- Adam, AdamW

namespace {
void check_adam(const char* name, double beta1, double beta2, double eps, double wd) {
  CORTEX_CHECK(beta1 >= 0 && beta1 < 1, name, ": beta1 must be in [0, 1), found ", beta1);
  CORTEX_CHECK(beta2 >= 0 && beta2 < 1, name, ": beta2 must be in [0, 1), found ", beta2);
  CORTEX_CHECK(eps >= 0, name, ": eps must be >= 0, found ", eps);
  CORTEX_CHECK(wd >= 0, name, ": weight_decay must be >= 0, found ", wd);
}
AdamOptions as_adam(const AdamWOptions& o) { return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay}; }
// PyTorch's lerp: start + w (end - start), computed from the nearer end for accuracy.
Tensor lerp(const Tensor& start, const Tensor& end, double w) {
  return w < 0.5 ? add(start, mul(sub(end, start), w)) : sub(end, mul(sub(end, start), 1.0 - w));
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, const AdamOptions& opt) : Adam("Adam", std::move(params), opt, false) {}

Adam::Adam(const char* name, std::vector<Tensor> params, const AdamOptions& opt, bool decoupled)
    : Optimizer(name, std::move(params), opt.lr, {"step", "exp_avg", "exp_avg_sq"}), opt_(opt), decoupled_(decoupled) {
  check_adam(name, opt.beta1, opt.beta2, opt.eps, opt.weight_decay);
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& opt) : Adam("AdamW", std::move(params), as_adam(opt), true) {}

void Adam::step() {
  NoGradGuard ng;
  const double b1 = opt_.beta1, b2 = opt_.beta2, wd = opt_.weight_decay;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor g = grad_for(i);
    if (!g.defined()) continue;
    Tensor p = detach(params_[i]);
    auto& st = state_[i];
    if (st.empty()) {
      st["step"] = scalar(0, DType::Int64);
      st["exp_avg"] = zeros(p.shape(), p.dtype(), p.device());
      st["exp_avg_sq"] = zeros(p.shape(), p.dtype(), p.device());
    }
    const double t = st["step"].item() + 1;
    st["step"] = scalar(t, DType::Int64);
    if (p.dtype() == DType::Float32 || p.dtype() == DType::Float64) {
      // One fused pass (kernels/optim.h) on the parameter's device, in place into p and the
      // moments, with the roundings of the composed form below.
      const AdamStep s{lr_, b1, b2, opt_.eps, wd, static_cast<int64_t>(t), decoupled_};
      kernels::adam_step(p, g, st["exp_avg"], st["exp_avg_sq"], s);
      continue;
    }
    // bfloat16 / float16 parameters: the composed ops.
    if (wd != 0) {
      if (decoupled_) p = mul(p, 1.0 - lr_ * wd);
      else g = add(g, mul(p, wd));
    }
    Tensor m = lerp(st["exp_avg"], g, 1.0 - b1);
    Tensor v = add(mul(st["exp_avg_sq"], b2), mul(mul(g, g), 1.0 - b2));
    st["exp_avg"] = m;
    st["exp_avg_sq"] = v;
    const double bc1 = 1.0 - std::pow(b1, t), bc2 = 1.0 - std::pow(b2, t);
    const double step_size = lr_ / bc1;
    Tensor denom = add(div(sqrt(v), std::sqrt(bc2)), opt_.eps);
    write(i, sub(p, mul(div(m, denom), step_size)));
  }
}

// ---------------------------------------------------------------- clip_grad_norm

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  CORTEX_CHECK(max_norm >= 0, "clip_grad_norm: max_norm must be >= 0, found ", max_norm);
  NoGradGuard ng;
  std::vector<Tensor> with;
  double sq = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    CORTEX_CHECK(params[i].defined(), "clip_grad_norm: parameter ", i, " is undefined");
    Tensor g = grad_of(params[i]);
    if (!g.defined()) continue;
    const double n = norm(detach(g)).item();
    sq += n * n;
    with.push_back(params[i]);
  }
  const double total = std::sqrt(sq);
  const double coef = max_norm / (total + 1e-6);
  // As PyTorch: scale when the coefficient is below 1, or NaN (a non-finite norm propagates).
  if (!(coef >= 1.0))
    for (const Tensor& p : with) p.autograd_meta()->grad = mul(detach(grad_of(p)), coef);
  return total;
}

// ---------------------------------------------------------------- schedules

Scheduler::Scheduler(Optimizer& opt) : opt_(&opt), base_lr_(opt.lr()) {}

void Scheduler::step() {
  ++steps_;
  opt_->set_lr(lr());
}

void Scheduler::set_steps(int64_t e) {
  CORTEX_CHECK(e >= 0, "scheduler: the step count must be >= 0, found ", e);
  steps_ = e;
  opt_->set_lr(lr());
}

StepLR::StepLR(Optimizer& opt, int64_t step_size, double gamma) : Scheduler(opt), step_size_(step_size), gamma_(gamma) {
  CORTEX_CHECK(step_size > 0, "StepLR: step_size must be > 0, found ", step_size);
  CORTEX_CHECK(gamma >= 0, "StepLR: gamma must be >= 0, found ", gamma);
  start();
}
double StepLR::lr_at(int64_t e) const { return base_lr_ * std::pow(gamma_, static_cast<double>(e / step_size_)); }

MultiStepLR::MultiStepLR(Optimizer& opt, std::vector<int64_t> milestones, double gamma)
    : Scheduler(opt), milestones_(std::move(milestones)), gamma_(gamma) {
  CORTEX_CHECK(gamma >= 0, "MultiStepLR: gamma must be >= 0, found ", gamma);
  for (int64_t m : milestones_) CORTEX_CHECK(m >= 0, "MultiStepLR: milestones must be >= 0, found ", m);
  std::sort(milestones_.begin(), milestones_.end());
  start();
}
double MultiStepLR::lr_at(int64_t e) const {
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), e) - milestones_.begin();
  return base_lr_ * std::pow(gamma_, static_cast<double>(passed));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& opt, int64_t t_max, double eta_min)
    : Scheduler(opt), t_max_(t_max), eta_min_(eta_min) {
  CORTEX_CHECK(t_max > 0, "CosineAnnealingLR: t_max must be > 0, found ", t_max);
  CORTEX_CHECK(eta_min >= 0, "CosineAnnealingLR: eta_min must be >= 0, found ", eta_min);
  start();
}
double CosineAnnealingLR::lr_at(int64_t e) const {
  const double c = std::cos(M_PI * static_cast<double>(e) / static_cast<double>(t_max_));
  return eta_min_ + (base_lr_ - eta_min_) * (1 + c) / 2;
}

LinearWarmup::LinearWarmup(Optimizer& opt, double start_factor, int64_t warmup_steps, std::unique_ptr<Scheduler> after)
    : Scheduler(opt), start_factor_(start_factor), warmup_steps_(warmup_steps), after_(std::move(after)) {
  CORTEX_CHECK(start_factor >= 0 && start_factor <= 1, "LinearWarmup: start_factor must be in [0, 1], found ",
               start_factor);
  CORTEX_CHECK(warmup_steps > 0, "LinearWarmup: warmup_steps must be > 0, found ", warmup_steps);
  if (after_) {
    CORTEX_CHECK(&after_->optimizer() == &opt, "LinearWarmup: the schedule after the warm-up must be bound to the same ",
                 "optimizer");
    // `after` was built first and already wrote its lr_at(0); both share its base.
    base_lr_ = after_->base_lr();
  }
  start();
}
double LinearWarmup::lr_at(int64_t e) const {
  if (e < warmup_steps_)
    return base_lr_ * (start_factor_ + (1 - start_factor_) * static_cast<double>(e) / static_cast<double>(warmup_steps_));
  return after_ ? after_->lr_at(e - warmup_steps_) : base_lr_;
}

}  // namespace cortex
