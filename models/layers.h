// The layers backbones are built from. Parameter names follow torch.nn (weight, bias,
// running_mean, running_var, in_proj_weight, ...), so a tree of these has the same state_dict keys
// as the PyTorch model it mirrors. Every layer holds float32 tensors; shapes are fixed at
// construction and checked again when weights are loaded.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "models/module.h"
#include "tensor/random.h"

namespace cortex::models {

// A layer's bf16 copy of one of its float32 weights (Module::set_compute_dtype): made once, and
// made again only when the weight is no longer the tensor it was made from (reassigned by a load
// or a batch-norm fold, moved, or written in place).
class Bf16Copy {
 public:
  const Tensor& of(const Tensor& w);  // an undefined w gives an undefined copy
  void clear() { *this = Bf16Copy(); }

 private:
  Tensor copy_;
  std::weak_ptr<Storage> storage_;
  uint64_t version_ = 0;
  int64_t offset_ = 0;
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x, TapContext&) override { return x; }
  std::string type_name() const override { return "Identity"; }
};

// x w^T + b over the last dim (any leading dims).
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias = true);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "Linear"; }
  int64_t in_features, out_features;
  Tensor weight, bias;  // (out, in), (out) or undefined

 protected:
  void prepare_compute_dtype() override;

 private:
  Bf16Copy weight16_, bias16_;
};

class Conv2d : public Module {
 public:
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0, bool bias = true,
         int64_t groups = 1);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "Conv2d"; }
  int64_t in_channels, out_channels, kernel_size;
  Conv2dParams params;
  Tensor weight, bias;  // (out, in/groups, k, k), (out) or undefined
  bool has_bias_param;  // whether `bias` is part of the state_dict (a folded BN adds an extra bias)

 protected:
  void to_extra(Device d) override {
    if (!has_bias_param && bias.defined()) bias = bias.to(d);
  }
  void prepare_compute_dtype() override;

 private:
  Bf16Copy weight16_, bias16_;
};

// Inference: running statistics; training: batch statistics and a running-stat update. Once folded
// into the preceding conv it passes its input through (the conv then outputs what it did).
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "BatchNorm2d"; }
  // Scales conv's weight and sets its bias so that conv then this equals the folded conv.
  void fold_into(Conv2d& conv);
  bool folded() const { return folded_; }
  int64_t channels;
  double eps, momentum;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  bool folded_ = false;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-5);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "LayerNorm"; }
  int64_t dim;
  double eps;
  Tensor weight, bias;
};

enum class Act { ReLU, GELU, GELUTanh, QuickGELU };
Act parse_act(const std::string& name);  // "relu", "gelu", "gelu_tanh", "quick_gelu"
class Activation : public Module {
 public:
  explicit Activation(Act a) : act(a) {}
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override;
  Act act;
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int64_t kernel, int64_t stride, int64_t padding = 0, bool ceil_mode = false);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "MaxPool2d"; }
  Pool2dParams params;
};

class AvgPool2d : public Module {
 public:
  AvgPool2d(int64_t kernel, int64_t stride, int64_t padding = 0, bool ceil_mode = false, bool count_include_pad = true);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "AvgPool2d"; }
  Pool2dParams params;
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  int64_t out_h, out_w;
};

// Flattens dims [start, end] (torch.flatten(x, 1) in the CNN heads).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start = 1, int64_t end = -1) : start(start), end(end) {}
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "Flatten"; }
  int64_t start, end;
};

// Inverted dropout in training mode with its own counter-based generator; identity at inference.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, uint64_t seed = 0);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "Dropout"; }
  double p;

 private:
  Generator gen_;
};

// Children named "0", "1", ... run in order; stops when every requested tap has been recorded.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<ModulePtr> layers);
  void push_back(ModulePtr m);
  void push_back(const std::string& name, ModulePtr m);  // a named child (nn.Sequential(OrderedDict))
  size_t size() const { return children().size(); }
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "Sequential"; }
  void fold_batchnorm() override;  // Conv2d followed by BatchNorm2d
};

// Multi-head self-attention on (B, L, D) tokens.
// Layout Packed: torch.nn.MultiheadAttention (in_proj_weight, in_proj_bias, out_proj.{weight,bias}),
// used by torchvision's ViT and CLIP. Layout Qkv: timm's Attention (qkv.{weight,bias}, proj.*).
class MultiheadAttention : public Module {
 public:
  enum class Layout { Packed, Qkv };
  MultiheadAttention(int64_t dim, int64_t heads, Layout layout, bool qkv_bias = true);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "MultiheadAttention"; }
  int64_t dim, heads;
  Layout layout;
  Tensor in_proj_weight, in_proj_bias;          // Packed
  std::shared_ptr<Linear> qkv, proj, out_proj;  // Qkv: qkv, proj; Packed: out_proj

 protected:
  void prepare_compute_dtype() override;

 private:
  Bf16Copy in_proj_weight16_, in_proj_bias16_;  // Packed
};

// Two linear layers with an activation between them; child names given by the layout
// (torchvision "0","1","2","3","4"; CLIP "c_fc","gelu","c_proj"; timm "fc1","act","fc2").
class Mlp : public Module {
 public:
  struct Names {
    std::string fc1, act, drop1, fc2, drop2;  // empty: not present
  };
  Mlp(int64_t dim, int64_t hidden, Act act, const Names& names);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "Mlp"; }
  std::vector<ModulePtr> order;  // the children in call order
};

// timm LayerScale: x * gamma (per channel).
class LayerScale : public Module {
 public:
  explicit LayerScale(int64_t dim);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "LayerScale"; }
  Tensor gamma;
};

// Fills every parameter with seeded random values (weights ~ N(0, 1/fan_in), biases small,
// batch-norm statistics mean 0 / var 1) for benchmarks and tests that need real shapes only.
void init_random(Module& m, uint64_t seed);

}  // namespace cortex::models
