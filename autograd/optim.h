// Optimizers and learning-rate schedules, following torch.optim update for update.
//
// An optimizer holds handles to leaf parameters (tensors that require grad). step() reads each
// parameter's accumulated .grad (grad_of), skips parameters without one (as PyTorch), and writes
// the new value into the parameter's own storage (p.copy_(...) under NoGradGuard), so every
// module holding the handle sees it. Updates run in the parameter's dtype, as PyTorch.
//
// The state (momentum buffers, Adam moments, step counts, the learning rate) is exposed as named
// tensors for checkpoints: state() returns a snapshot, load_state() restores one, and the steps
// that follow are identical to those of the optimizer that was saved. Names:
//   "lr"                         0-dim float64
//   "<i>.step"                   0-dim int64, steps taken by parameter i (Adam, AdamW)
//   "<i>.momentum_buffer"        parameter i's shape (SGD with momentum)
//   "<i>.exp_avg", "<i>.exp_avg_sq"  parameter i's shape (Adam, AdamW)
// A parameter with no entries has no state yet (it has not been stepped).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"

namespace cortex {

using OptimizerState = std::map<std::string, Tensor>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Drops every parameter's .grad (PyTorch's set_to_none=True), so the next backward starts afresh.
  void zero_grad();
  // One update of every parameter that has a .grad.
  virtual void step() = 0;

  double lr() const { return lr_; }
  void set_lr(double lr);  // what schedules call
  const std::vector<Tensor>& params() const { return params_; }

  // A snapshot (copies) of the state, named as in the header comment.
  OptimizerState state() const;
  // Replaces the whole state with `s` (copied, moved to each parameter's device and dtype).
  // Throws on unknown names, parameter indices out of range, wrong shapes, or a parameter whose
  // state is incomplete (e.g. exp_avg without exp_avg_sq).
  void load_state(const OptimizerState& s);

 protected:
  // `name` prefixes error messages ("SGD", "Adam", ...); `slots` are the per-parameter state names.
  Optimizer(const char* name, std::vector<Tensor> params, double lr, std::vector<std::string> slots);
  // Parameter i's gradient, checked against the parameter; undefined when it has none.
  Tensor grad_for(size_t i) const;
  // Writes `value` into parameter i's storage (in place, without recording).
  void write(size_t i, const Tensor& value);

  const char* name_;
  std::vector<Tensor> params_;
  double lr_;
  std::vector<std::string> slots_;
  std::vector<std::map<std::string, Tensor>> state_;  // per parameter: slot -> tensor
};

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  double weight_decay = 0.0;
};

// torch.optim.SGD: g = grad + wd*p; with momentum, buf = g on the first step, else
// buf = momentum*buf + (1 - dampening)*g, and g = g + momentum*buf (nesterov) or g = buf;
// p = p - lr*g. Nesterov needs momentum > 0 and dampening == 0.
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& opt);
  void step() override;
  const SGDOptions& options() const { return opt_; }

 private:
  SGDOptions opt_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // PyTorch's AdamW default
};

// torch.optim.Adam (amsgrad off): t += 1; g = grad + wd*p (L2 penalty through the gradient);
// m = beta1*m + (1 - beta1)*g; v = beta2*v + (1 - beta2)*g^2;
// p = p - lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)  (eps outside the sqrt).
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& opt);
  void step() override;
  const AdamOptions& options() const { return opt_; }

 protected:
  Adam(const char* name, std::vector<Tensor> params, const AdamOptions& opt, bool decoupled);

 private:
  AdamOptions opt_;
  bool decoupled_;  // AdamW: decay the weights instead of adding wd*p to the gradient
};

// torch.optim.AdamW: p = p - lr*wd*p (decoupled decay), then Adam's update with the raw gradient.
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& opt);
};

// torch.nn.utils.clip_grad_norm_ with norm_type 2: the total norm is the 2-norm of all gradients
// taken together; when it exceeds max_norm every gradient is scaled by max_norm / (total + 1e-6).
// Parameters without a .grad are skipped. Returns the total norm before clipping.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

// ---------------------------------------------------------------- learning-rate schedules
//
// A schedule is a function of the number of step() calls e (e = 0 right after construction), as
// PyTorch's closed forms. A schedule bound to an optimizer takes the optimizer's lr at construction
// as its base lr, writes lr_at(0) into it right away, and lr_at(e) on each step(). Call step() once
// per optimizer step (or epoch), after the optimizer's step(), as in PyTorch.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // The learning rate after e steps.
  virtual double lr_at(int64_t e) const = 0;
  double lr() const { return lr_at(steps_); }
  double base_lr() const { return base_lr_; }
  void step();
  // Steps taken so far; set_steps restores a checkpoint (and writes lr_at(e) into the optimizer).
  int64_t steps() const { return steps_; }
  void set_steps(int64_t e);
  Optimizer& optimizer() const { return *opt_; }

 protected:
  explicit Scheduler(Optimizer& opt);
  // Derived constructors call this last, once lr_at can run.
  void start() { opt_->set_lr(lr_at(0)); }

  Optimizer* opt_;
  double base_lr_;
  int64_t steps_ = 0;
};

// lr = base * gamma^floor(e / step_size)  (torch.optim.lr_scheduler.StepLR).
class StepLR : public Scheduler {
 public:
  StepLR(Optimizer& opt, int64_t step_size, double gamma = 0.1);
  double lr_at(int64_t e) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = base * gamma^(number of milestones <= e)  (MultiStepLR). Milestones need not be sorted.
class MultiStepLR : public Scheduler {
 public:
  MultiStepLR(Optimizer& opt, std::vector<int64_t> milestones, double gamma = 0.1);
  double lr_at(int64_t e) const override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

// lr = eta_min + (base - eta_min) * (1 + cos(pi * e / t_max)) / 2  (CosineAnnealingLR's closed
// form; past t_max it rises again, as PyTorch's).
class CosineAnnealingLR : public Scheduler {
 public:
  CosineAnnealingLR(Optimizer& opt, int64_t t_max, double eta_min = 0.0);
  double lr_at(int64_t e) const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

// Linear warm-up: lr = base * (start_factor + (1 - start_factor) * e / warmup_steps) for
// e < warmup_steps (torch's LinearLR with end_factor 1). From then on, `after` (if given, bound to
// the same optimizer) runs from its own step 0: lr = after.lr_at(e - warmup_steps), as
// SequentialLR([LinearLR, after], milestones=[warmup_steps]); without `after`, lr = base.
// Warm-up then cosine over T steps in all: LinearWarmup(opt, f, N, make_unique<CosineAnnealingLR>(opt, T - N)).
class LinearWarmup : public Scheduler {
 public:
  LinearWarmup(Optimizer& opt, double start_factor, int64_t warmup_steps, std::unique_ptr<Scheduler> after = nullptr);
  double lr_at(int64_t e) const override;

 private:
  double start_factor_;
  int64_t warmup_steps_;
  std::unique_ptr<Scheduler> after_;
};

}  // namespace cortex
