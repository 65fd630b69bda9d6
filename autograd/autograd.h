// Reverse- and forward-mode automatic differentiation.
//
// Reverse mode records a tape: every differentiable op whose inputs require grad creates a Node
// holding its VJP (written with other ops, so the VJP is itself differentiable and second
// derivatives come for free). backward()/grad() walk the nodes in reverse topological order.
//
// Forward mode carries a tangent beside each primal ("dual tensors"): every op with a tangent on
// an input computes its output tangent from its JVP right away, so a JVP costs a small constant
// times the forward pass.
//
// Batched derivatives: jacobian() pushes many tangents (or cotangents) through at once by giving
// them one extra leading dimension. Inside a BatchedScope every VJP/JVP rule sees derivative
// tensors of shape [B, *primal_shape]; the helpers in autograd/rules.h (sum_to, bdim, ...) keep
// the rules correct in both cases. Derivation of each rule: docs/autodiff.md.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex {

struct Node;

// One level's view of a tensor. Level 0 is the base tape (with_grad / backward / grad); every call
// of a transform (jvp, vjp, grad(f, x), jacobian, hvp, hessian, per_sample_grads) opens a new level
// with a fresh id, so derivatives of nested transforms never mix (docs/autodiff.md, "Levels").
struct LevelMeta {
  uint64_t level = 0;
  bool requires_grad = false;       // reverse levels: on this level's tape
  std::shared_ptr<Node> grad_fn;    // the op that produced this tensor at this level; null for leaves
  int output_nr = 0;                // which output of grad_fn
  Tensor tangent;                   // forward levels: the tangent, shape (batch, *shape)
  const char* blocked_by = nullptr;  // depends on this level's inputs only through an op without a derivative
};

// Autograd state of one tensor handle (TensorImpl::autograd).
struct AutogradMeta {
  Tensor grad;               // accumulated gradient of the base tape (leaves, and non-leaves with retain_grad)
  bool retains_grad = false;
  std::vector<LevelMeta> levels;  // one entry per level this handle takes part in (usually 0-2)

  LevelMeta* find(uint64_t level) {
    for (LevelMeta& l : levels)
      if (l.level == level) return &l;
    return nullptr;
  }
  LevelMeta& at(uint64_t level) {
    if (LevelMeta* l = find(level)) return *l;
    LevelMeta m;
    m.level = level;
    levels.push_back(m);
    return levels.back();
  }
};

// ---- per-tensor helpers (free functions: the Tensor class belongs to the tensor layer) ----
// Marks a leaf as requiring grad (returns the same handle). Only float tensors can.
Tensor& set_requires_grad(Tensor& t, bool on = true);
// A new leaf handle on t's storage, with no history, that requires grad.
Tensor with_grad(const Tensor& t);
bool requires_grad(const Tensor& t);
bool is_leaf(const Tensor& t);
Tensor grad_of(const Tensor& t);        // the accumulated .grad (undefined if none)
void zero_grad(const Tensor& t);        // drops the accumulated .grad
void retain_grad(const Tensor& t);      // keep .grad on a non-leaf too
std::shared_ptr<Node> grad_fn(const Tensor& t);
// A new handle on the same storage with no autograd history and no tangent, at any level: a stop
// gradient. Inside a transform, an output that depends on the transform's input only through
// detach makes the transform throw (naming "detach") rather than return zeros.
Tensor detach(const Tensor& t);
// Forward-mode tangent of t at the innermost forward level (undefined when none).
Tensor tangent_of(const Tensor& t);

// ---- modes ----
// True when some reverse level records right now (the base tape outside NoGradGuard, or a
// transform's level).
bool grad_mode_enabled();
// Disables recording in its scope (inference, optimizer steps): on the base tape and on every
// transform level already open. A transform called inside the scope opens a new level that records
// anyway, as torch.func's do: transforms ignore the caller's grad mode but respect a NoGradGuard
// inside the function they differentiate.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  std::vector<std::pair<uint64_t, bool>> prev_;
};
// Inside this scope derivative tensors (tangents, cotangents) carry one leading batch dim: the
// tangents given to jvp, the cotangents given to grad / backward / a vjp pullback. A transform runs
// the function it is given outside any batched scope (f's own transforms are unbatched unless f
// opens one), and grad(f, x), jacobian, hvp, hessian and per_sample_grads give the same results
// inside a batched scope as outside.
class BatchedScope {
 public:
  explicit BatchedScope(int dims = 1);
  ~BatchedScope();
  BatchedScope(const BatchedScope&) = delete;
  BatchedScope& operator=(const BatchedScope&) = delete;

 private:
  int prev_;
};
int derivative_batch_dims();  // 0, or 1 inside a BatchedScope

// ---- reverse mode ----
// Accumulates d(sum(outputs * grad_outputs))/d(leaf) into every leaf's .grad. grad_outputs may be
// omitted only for one-element outputs. The graph is freed unless retain_graph.
void backward(const Tensor& output, const Tensor& grad_output = Tensor(), bool retain_graph = false,
              bool create_graph = false);
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs, bool retain_graph = false,
              bool create_graph = false);
// Returns d(sum(outputs * grad_outputs))/d(inputs) without touching .grad. An input the outputs do
// not depend on gets an undefined tensor, or zeros when materialize_zeros. With create_graph the
// results are differentiable (grad of grad, Hessian-vector products). retain_graph defaults to
// create_graph, as in PyTorch.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool create_graph = false,
                         std::optional<bool> retain_graph = std::nullopt, bool materialize_zeros = true);

// ---- functional transforms ----
// Function transforms, as torch.func's: they give the same answers whatever the caller's grad mode
// (they work under NoGradGuard), and they nest in any order (jacobian of grad, jvp of vjp, ...).
// The result of a transform is differentiable by every enclosing transform and, with grad mode on,
// by the base tape. Where the output depends on the input only through an op without a derivative
// (an integer or boolean result, detach) a transform throws naming that op; an output that does not
// depend on the input at all has a zero derivative.
using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
using Fn1 = std::function<Tensor(const Tensor&)>;

struct JvpResult {
  std::vector<Tensor> outputs, tangents;
};
// Evaluates f at primals and pushes tangents forward (one forward pass, no Jacobian). Inside a
// BatchedScope the tangents are (B, *shape) and B directions go through in one pass.
JvpResult jvp(const Fn& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents);

struct VjpResult {
  std::vector<Tensor> outputs;
  // cotangents (one per output) -> one gradient per primal. Callable more than once; inside a
  // BatchedScope the cotangents are (B, *shape).
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> pullback;
};
VjpResult vjp(const Fn& f, const std::vector<Tensor>& primals);

// d f(x) / d x of a function with one-element output, shaped like x (torch.func.grad).
Tensor grad(const Fn1& f, const Tensor& x);

enum class JacobianMode { Auto, Forward, Reverse };
// d f(x) / d x as a tensor of shape [*f(x).shape, *x.shape]. Auto picks forward mode when x has
// fewer elements than f(x), reverse otherwise. Tangents (or cotangents) go through `chunk` at a
// time stacked on a leading batch dim, so memory is bounded by the chunk (chunk <= 0: all at once).
Tensor jacobian(const Fn1& f, const Tensor& x, JacobianMode mode = JacobianMode::Auto, int64_t chunk = 64);
// Hessian-vector product of a function with one-element output: d/dx <grad f(x), v>, forward over
// reverse (one gradient pass carrying one tangent).
Tensor hvp(const Fn1& f, const Tensor& x, const Tensor& v);
// The Hessian of a function with one-element output, shape [*x.shape, *x.shape]: the Jacobian
// (mode `outer`) of the gradient (mode `inner`); forward over reverse by default.
Tensor hessian(const Fn1& f, const Tensor& x, JacobianMode outer = JacobianMode::Forward,
               JacobianMode inner = JacobianMode::Reverse, int64_t chunk = 64);
// Per-sample gradients (torch.func's vmap(grad(loss))): `losses` maps the parameters to one loss
// per sample, shape (N); the result holds, for each parameter p, d loss_i / d p stacked as
// (N, *p.shape). The N cotangents go through one batched backward pass `chunk` at a time. Equal to
// the gradient of each sample's loss alone when samples do not interact (no batch statistics).
std::vector<Tensor> per_sample_grads(const Fn& losses, const std::vector<Tensor>& params, int64_t chunk = 64);

}  // namespace cortex
