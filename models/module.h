// Module: a node of a model tree with named parameters, buffers and children, named as in the
// PyTorch state_dict the weights come from ("features.5", "layer3.1.conv2"), and feature taps:
// any module's output can be asked for by its full name.
//
// Taps cost one branch per module when none are requested. When some are, every module records
// its output if its name is asked for; once the last requested tap has been recorded the context
// says `done()` and containers return at once (early stop), unless the caller wants the output.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::models {

// Per-forward state: the requested taps and what has been recorded so far.
class TapContext {
 public:
  TapContext() = default;
  // stop_early: containers stop once every requested tap is recorded.
  TapContext(const std::vector<std::string>& taps, bool stop_early);
  bool any() const { return !wanted_.empty(); }
  bool wants(const std::string& name) const { return !wanted_.empty() && wanted_.count(name) != 0; }
  void record(const std::string& name, const Tensor& value);  // keeps the last value for a name
  bool done() const { return stop_early_ && !wanted_.empty() && got_.size() == wanted_.size(); }
  const std::map<std::string, Tensor>& values() const { return got_; }
  std::map<std::string, Tensor>& values() { return got_; }

 private:
  std::set<std::string> wanted_;
  std::map<std::string, Tensor> got_;
  bool stop_early_ = false;
};

class Module : public std::enable_shared_from_this<Module> {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Runs forward() and records the output under this module's name when it is tapped.
  Tensor operator()(const Tensor& x, TapContext& ctx);
  Tensor operator()(const Tensor& x);  // no taps
  virtual Tensor forward(const Tensor& x, TapContext& ctx) = 0;

  // Full dotted name (empty for the root); set by set_name() on the root after construction.
  const std::string& name() const { return name_; }
  void set_name(const std::string& full_name);  // renames this module and, recursively, its children
  virtual std::string type_name() const = 0;

  // Parameters and buffers by full name (e.g. "layer1.0.bn1.running_mean"), in registration order.
  std::vector<std::pair<std::string, Tensor*>> named_parameters();
  std::vector<std::pair<std::string, Tensor*>> named_buffers();
  // Parameters then buffers: the state_dict keys.
  std::vector<std::pair<std::string, Tensor*>> named_tensors();
  // Every module of the tree with its full name, the root first ("" for the root).
  std::vector<std::pair<std::string, Module*>> named_modules();
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  std::shared_ptr<Module> child(const std::string& local_name) const;  // throws when absent

  // Training mode (batch norm statistics, dropout); recursive.
  void train(bool on = true);
  bool training() const { return training_; }
  // Folds every BatchNorm2d that follows a Conv2d into that conv (inference); recursive.
  virtual void fold_batchnorm();
  // Marks every parameter as requiring grad (or not); recursive.
  void requires_grad(bool on = true);
  // Moves every parameter and buffer to `device` (the forward then runs where its input lives).
  void to(Device device);
  // The dtype Linear, Conv2d and MultiheadAttention compute in (docs/bf16.md): Float32, the
  // default, or BFloat16 (autocast, inference only: the layer casts its input to bf16, runs the
  // bf16 kernel with float32 accumulation on bf16 copies of its weights, and casts the output back
  // to the input's dtype; every other module stays in float32). Recursive. The bf16 weight copies
  // are made here, once; a layer re-makes a copy only when its weight changed (a load, a batch-norm
  // fold, a move to another device).
  void set_compute_dtype(DType dt);
  DType compute_dtype() const { return compute_dtype_; }

 protected:
  void register_parameter(const std::string& local, Tensor* t);
  void register_buffer(const std::string& local, Tensor* t);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& local, std::shared_ptr<M> m) {
    add_child(local, m);
    return m;
  }
  void add_child(const std::string& local, std::shared_ptr<Module> m);
  // Moves tensors a module holds outside its parameters and buffers (called by to()).
  virtual void to_extra(Device) {}
  // Makes the layer's weight copies for compute_dtype() (called by set_compute_dtype()).
  virtual void prepare_compute_dtype() {}

 private:
  std::string name_;
  bool training_ = false;
  DType compute_dtype_ = DType::Float32;
  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

using ModulePtr = std::shared_ptr<Module>;

}  // namespace cortex::models
