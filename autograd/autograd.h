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

// Autograd state of one tensor handle (TensorImpl::autograd).
struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                   // accumulated gradient (leaves, and non-leaves with retain_grad)
  bool retains_grad = false;
  std::shared_ptr<Node> grad_fn;  // the op that produced this tensor; null for leaves
  int output_nr = 0;             // which output of grad_fn
  Tensor tangent;                // forward-mode tangent, when inside jvp()
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
// A new handle on the same storage with no autograd history (and no tangent).
Tensor detach(const Tensor& t);
// Forward-mode tangent of t (undefined when none).
Tensor tangent_of(const Tensor& t);

// ---- modes ----
bool grad_mode_enabled();
// Disables recording in its scope (inference, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
// Inside this scope derivative tensors (tangents, cotangents) carry one leading batch dim.
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
using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
using Fn1 = std::function<Tensor(const Tensor&)>;

struct JvpResult {
  std::vector<Tensor> outputs, tangents;
};
// Evaluates f at primals and pushes tangents forward (one forward pass, no Jacobian).
JvpResult jvp(const Fn& f, const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents);

struct VjpResult {
  std::vector<Tensor> outputs;
  // cotangents (one per output) -> one gradient per primal. Callable more than once.
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> pullback;
};
VjpResult vjp(const Fn& f, const std::vector<Tensor>& primals);

enum class JacobianMode { Auto, Forward, Reverse };
// d f(x) / d x as a tensor of shape [*f(x).shape, *x.shape]. Auto picks forward mode when x has
// fewer elements than f(x), reverse otherwise. Tangents (or cotangents) go through `chunk` at a
// time stacked on a leading batch dim, so memory is bounded by the chunk (chunk <= 0: all at once).
Tensor jacobian(const Fn1& f, const Tensor& x, JacobianMode mode = JacobianMode::Auto, int64_t chunk = 64);
// Hessian-vector product of a scalar function: d/dx <grad f(x), v> (reverse over reverse).
Tensor hvp(const Fn1& f, const Tensor& x, const Tensor& v);

}  // namespace cortex
