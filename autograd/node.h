// What an op author uses to make an op differentiable: record() attaches a VJP (reverse mode)
// and a JVP (forward mode) to the outputs of a kernel call. See autograd/ops_*.cpp for examples
// and docs/autodiff.md for the derivations.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "autograd/autograd.h"

namespace cortex {

// grads: one cotangent per output (zeros where an output received none);
// outputs: the op's outputs (undefined unless record was asked to save them).
// Returns one gradient per input (undefined = no gradient flows to that input).
using VjpFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grads, const std::vector<Tensor>& outputs)>;
// tangents: one per input (undefined = zero tangent); returns one tangent per output (undefined = zero).
using JvpFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& tangents, const std::vector<Tensor>& outputs)>;

struct Edge {
  std::shared_ptr<Node> node;          // producer of the input, or null for a leaf
  int output_nr = 0;
  std::shared_ptr<AutogradMeta> leaf;  // set for leaves that require grad
  bool active() const { return node != nullptr || leaf != nullptr; }
};

struct Node : std::enable_shared_from_this<Node> {
  std::string name;
  uint64_t level = 0;               // the level whose tape this node is on (0: the base tape)
  // Base-tape nodes only: the op's outputs also took part in a transform level. The saved outputs
  // of a base-tape node carry no transform state, so running this node's VJP while that transform
  // is open would drop derivatives; the walk refuses instead (see run_backward).
  bool transform_state = false;
  uint64_t seq = 0;                 // creation order: later nodes run first among ready ones
  std::vector<Edge> next;           // one per input
  VjpFn vjp;
  // Inputs' storages and versions at record time: an in-place write before backward is an error.
  std::vector<std::weak_ptr<Storage>> input_storages;
  std::vector<uint64_t> input_versions;
  std::vector<Shape> input_shapes;  // to check what each VJP returns
  // Outputs saved without their autograd state (so no reference cycle node -> output -> node).
  bool save_outputs = false;
  std::vector<Tensor> saved_outputs;
  std::vector<uint64_t> output_versions;
  std::vector<Shape> output_shapes;
  std::vector<DType> output_dtypes;
  std::vector<Device> output_devices;
  std::vector<std::weak_ptr<AutogradMeta>> output_metas;  // for retain_grad
  bool released = false;

  // The saved outputs (carrying the state of the levels below this node's), re-linked to this node
  // when the base tape's backward is itself being recorded (create_graph).
  std::vector<Tensor> unpack_outputs(bool link);
};

// Attaches autograd to `outputs` computed by op `name` from `inputs`. Forward mode: when an input
// has a tangent, jvp runs now (with forward mode off inside, so it costs one pass). Reverse mode:
// when grad mode is on and an input requires grad, a Node is recorded. Non-float outputs never
// require grad. Returns the outputs (now carrying autograd state).
std::vector<Tensor> record(const char* name, const std::vector<Tensor>& inputs, std::vector<Tensor> outputs,
                           VjpFn vjp, JvpFn jvp, bool save_outputs = false);
Tensor record1(const char* name, const std::vector<Tensor>& inputs, Tensor output, VjpFn vjp, JvpFn jvp,
               bool save_outputs = false);

// Runs a kernel call with the Tensor-method hooks off (see HooksOff in tensor/tensor.h):
//   Tensor y = raw([&] { return kernels::softmax(x, dim); });
template <class F>
decltype(auto) raw(F&& f) {
  HooksOff off;
  return f();
}

// True when any input takes part in a level that records right now (requires grad on a recording
// reverse level, or carries a tangent of an open forward level): lets an op skip work that only
// derivatives need, and lets a rule know whether its own computation is being differentiated (then
// it must use differentiable ops, not a fused kernel).
bool needs_autograd(const std::vector<Tensor>& inputs);
// For ops with integer or boolean results (comparisons, argmax, casts to integers): marks outputs
// as depending on the inputs through `name`, an op without a derivative, at every level where an
// input takes part, so that a transform whose output depends on its input only this way throws
// naming the op instead of returning zeros.
void mark_blocked(const char* name, const std::vector<Tensor>& inputs, const std::vector<Tensor>& outputs);

}  // namespace cortex
