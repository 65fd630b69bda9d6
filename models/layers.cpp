#include "models/layers.h"

#include <cmath>

#include "autograd/autograd.h"
#include "tensor/error.h"

namespace cortex::models {

namespace {
void check_input(const char* what, const Tensor& x, int64_t min_dim) {
  CORTEX_CHECK(x.defined(), what, ": expected an input tensor, found an undefined one");
  CORTEX_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, what,
               ": expected a float32 or float64 input, found ", dtype_name(x.dtype()));
  CORTEX_CHECK(x.dim() >= min_dim, what, ": expected at least ", min_dim, " dims, found shape ", shape_str(x.shape()));
}
void check_nchw(const char* what, const Tensor& x, int64_t channels) {
  check_input(what, x, 4);
  CORTEX_CHECK(x.dim() == 4 && (channels < 0 || x.size(1) == channels), what, ": expected input (N, ", channels,
               ", H, W), found ", shape_str(x.shape()));
}
// In bf16 compute (Module::set_compute_dtype) layers are for inference: the backward of a bf16
// convolution has no kernel, and training wants float32 gradients.
bool use_bf16(const Module& m) {
  if (m.compute_dtype() != DType::BFloat16) return false;
  CORTEX_CHECK(!m.training(), m.type_name(), " '", m.name(),
               "': bfloat16 compute is for inference; set_compute_dtype(float32) to train");
  return true;
}
Tensor to_bf16(const Tensor& x) { return x.to(DType::BFloat16); }
}  // namespace

const Tensor& Bf16Copy::of(const Tensor& w) {
  if (!w.defined()) {
    copy_ = Tensor();
    return copy_;
  }
  const bool fresh = copy_.defined() && storage_.lock() == w.storage() && version_ == w.storage()->version &&
                     offset_ == w.offset() && copy_.shape() == w.shape();
  if (!fresh) {
    NoGradGuard ng;
    copy_ = w.to(DType::BFloat16);
    storage_ = w.storage();
    version_ = w.storage()->version;
    offset_ = w.offset();
  }
  return copy_;
}

void Linear::prepare_compute_dtype() {
  if (compute_dtype() == DType::BFloat16) {
    weight16_.of(weight);
    bias16_.of(bias);
  } else {
    weight16_.clear();
    bias16_.clear();
  }
}

Linear::Linear(int64_t in, int64_t out, bool has_bias) : in_features(in), out_features(out) {
  CORTEX_CHECK(in > 0 && out > 0, "Linear: expected positive sizes, found in ", in, " out ", out);
  weight = zeros({out, in});
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = zeros({out});
    register_parameter("bias", &bias);
  }
}

Tensor Linear::forward(const Tensor& x, TapContext&) {
  check_input("Linear", x, 1);
  CORTEX_CHECK(x.size(-1) == in_features, "Linear '", name(), "': expected last dim ", in_features, ", found input ",
               shape_str(x.shape()));
  if (use_bf16(*this)) return linear(to_bf16(x), weight16_.of(weight), bias16_.of(bias)).to(x.dtype());
  return linear(x, weight, bias);
}

Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool has_bias, int64_t groups)
    : in_channels(in), out_channels(out), kernel_size(kernel), has_bias_param(has_bias) {
  CORTEX_CHECK(in > 0 && out > 0 && kernel > 0 && stride > 0 && padding >= 0 && groups > 0 && in % groups == 0 &&
                   out % groups == 0,
               "Conv2d: invalid sizes in ", in, " out ", out, " kernel ", kernel, " stride ", stride, " padding ",
               padding, " groups ", groups);
  params.stride_h = params.stride_w = stride;
  params.pad_h = params.pad_w = padding;
  params.groups = groups;
  weight = zeros({out, in / groups, kernel, kernel});
  register_parameter("weight", &weight);
  if (has_bias) {
    bias = zeros({out});
    register_parameter("bias", &bias);
  }
}

Tensor Conv2d::forward(const Tensor& x, TapContext&) {
  check_nchw("Conv2d", x, in_channels);
  if (use_bf16(*this)) return conv2d(to_bf16(x), weight16_.of(weight), bias16_.of(bias), params).to(x.dtype());
  return conv2d(x, weight, bias, params);
}

void Conv2d::prepare_compute_dtype() {
  if (compute_dtype() == DType::BFloat16) {
    weight16_.of(weight);
    bias16_.of(bias);
  } else {
    weight16_.clear();
    bias16_.clear();
  }
}

BatchNorm2d::BatchNorm2d(int64_t c, double eps_, double momentum_) : channels(c), eps(eps_), momentum(momentum_) {
  CORTEX_CHECK(c > 0 && eps_ > 0, "BatchNorm2d: expected channels > 0 and eps > 0, found ", c, " and ", eps_);
  weight = ones({c});
  bias = zeros({c});
  running_mean = zeros({c});
  running_var = ones({c});
  num_batches_tracked = zeros({}, DType::Int64);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
}

Tensor BatchNorm2d::forward(const Tensor& x, TapContext&) {
  check_nchw("BatchNorm2d", x, channels);
  CORTEX_CHECK(!(folded_ && training()), "BatchNorm2d '", name(),
               "': folded into its conv for inference; build the model again to train it");
  if (folded_) return x;
  if (training()) {
    // The running statistics are updated in place; they never carry gradients.
    return batch_norm_train(x, weight, bias, running_mean, running_var, momentum, eps);
  }
  return batch_norm(x, running_mean, running_var, weight, bias, eps);
}

void BatchNorm2d::fold_into(Conv2d& conv) {
  CORTEX_CHECK(!folded_, "BatchNorm2d '", name(), "': already folded");
  CORTEX_CHECK(conv.out_channels == channels, "BatchNorm2d '", name(), "': cannot fold into conv '", conv.name(),
               "' with ", conv.out_channels, " output channels (expected ", channels, ")");
  NoGradGuard ng;
  // w' = w * g / sqrt(v + eps); b' = beta + (b - m) * g / sqrt(v + eps), computed in float64.
  Tensor s = div(weight.to(DType::Float64), sqrt(add(running_var.to(DType::Float64), eps)));
  Tensor w = mul(conv.weight.to(DType::Float64), s.reshape({-1, 1, 1, 1}));
  Tensor b0 = conv.bias.defined() ? conv.bias.to(DType::Float64) : zeros({channels}, DType::Float64);
  Tensor b = add(bias.to(DType::Float64), mul(sub(b0, running_mean.to(DType::Float64)), s));
  conv.weight = w.to(DType::Float32);
  conv.bias = b.to(DType::Float32);
  folded_ = true;
}

LayerNorm::LayerNorm(int64_t d, double eps_) : dim(d), eps(eps_) {
  CORTEX_CHECK(d > 0 && eps_ > 0, "LayerNorm: expected dim > 0 and eps > 0, found ", d, " and ", eps_);
  weight = ones({d});
  bias = zeros({d});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor LayerNorm::forward(const Tensor& x, TapContext&) {
  check_input("LayerNorm", x, 1);
  CORTEX_CHECK(x.size(-1) == dim, "LayerNorm '", name(), "': expected last dim ", dim, ", found input ",
               shape_str(x.shape()));
  return layer_norm(x, {dim}, weight, bias, eps);
}

Act parse_act(const std::string& n) {
  if (n == "relu") return Act::ReLU;
  if (n == "gelu") return Act::GELU;
  if (n == "gelu_tanh") return Act::GELUTanh;
  if (n == "quick_gelu") return Act::QuickGELU;
  throw Error("activation: expected one of relu, gelu, gelu_tanh, quick_gelu, found '" + n + "'");
}

Tensor Activation::forward(const Tensor& x, TapContext&) {
  check_input("Activation", x, 0);
  switch (act) {
    case Act::ReLU: return relu(x);
    case Act::GELU: return gelu(x, GeluApprox::None);
    case Act::GELUTanh: return gelu(x, GeluApprox::Tanh);
    case Act::QuickGELU: return quick_gelu(x);
  }
  throw Error("Activation: unknown activation");
}

std::string Activation::type_name() const {
  switch (act) {
    case Act::ReLU: return "ReLU";
    case Act::GELU: return "GELU";
    case Act::GELUTanh: return "GELU(tanh)";
    case Act::QuickGELU: return "QuickGELU";
  }
  return "Activation";
}

static Pool2dParams pool_params(const char* what, int64_t k, int64_t s, int64_t p, bool ceil) {
  CORTEX_CHECK(k > 0 && s > 0 && p >= 0 && 2 * p <= k, what, ": invalid kernel ", k, " stride ", s, " padding ", p);
  Pool2dParams pp;
  pp.kernel_h = pp.kernel_w = k;
  pp.stride_h = pp.stride_w = s;
  pp.pad_h = pp.pad_w = p;
  pp.ceil_mode = ceil;
  return pp;
}

MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t p, bool ceil) : params(pool_params("MaxPool2d", k, s, p, ceil)) {}
Tensor MaxPool2d::forward(const Tensor& x, TapContext&) {
  check_nchw("MaxPool2d", x, -1);
  return max_pool2d(x, params);
}

AvgPool2d::AvgPool2d(int64_t k, int64_t s, int64_t p, bool ceil, bool cip)
    : params(pool_params("AvgPool2d", k, s, p, ceil)) {
  params.count_include_pad = cip;
}
Tensor AvgPool2d::forward(const Tensor& x, TapContext&) {
  check_nchw("AvgPool2d", x, -1);
  return avg_pool2d(x, params);
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t h, int64_t w) : out_h(h), out_w(w) {
  CORTEX_CHECK(h > 0 && w > 0, "AdaptiveAvgPool2d: expected positive output size, found ", h, "x", w);
}
Tensor AdaptiveAvgPool2d::forward(const Tensor& x, TapContext&) {
  check_nchw("AdaptiveAvgPool2d", x, -1);
  return adaptive_avg_pool2d(x, out_h, out_w);
}

Tensor Flatten::forward(const Tensor& x, TapContext&) {
  check_input("Flatten", x, 1);
  return x.flatten(start, end);
}

Dropout::Dropout(double p_, uint64_t seed) : p(p_), gen_(seed) {
  CORTEX_CHECK(p_ >= 0 && p_ < 1, "Dropout: expected p in [0, 1), found ", p_);
}
Tensor Dropout::forward(const Tensor& x, TapContext&) {
  if (!training() || p == 0) return x;
  return dropout(x, p, true, gen_);
}

Sequential::Sequential(std::vector<ModulePtr> layers) {
  for (auto& m : layers) push_back(std::move(m));
}

void Sequential::push_back(ModulePtr m) { add_child(std::to_string(children().size()), std::move(m)); }
void Sequential::push_back(const std::string& name, ModulePtr m) { add_child(name, std::move(m)); }

Tensor Sequential::forward(const Tensor& x, TapContext& ctx) {
  Tensor y = x;
  for (auto& [n, m] : children()) {
    y = (*m)(y, ctx);
    if (ctx.done()) break;
  }
  return y;
}

void Sequential::fold_batchnorm() {
  const auto& ch = children();
  for (size_t i = 0; i < ch.size(); ++i) {
    ch[i].second->fold_batchnorm();
    if (i + 1 < ch.size()) {
      auto conv = std::dynamic_pointer_cast<Conv2d>(ch[i].second);
      auto bn = std::dynamic_pointer_cast<BatchNorm2d>(ch[i + 1].second);
      if (conv && bn && !bn->folded()) bn->fold_into(*conv);
    }
  }
}

MultiheadAttention::MultiheadAttention(int64_t d, int64_t h, Layout l, bool qkv_bias) : dim(d), heads(h), layout(l) {
  CORTEX_CHECK(d > 0 && h > 0 && d % h == 0, "MultiheadAttention: expected dim divisible by heads, found dim ", d,
               " and ", h, " heads");
  if (l == Layout::Packed) {
    in_proj_weight = zeros({3 * d, d});
    register_parameter("in_proj_weight", &in_proj_weight);
    if (qkv_bias) {
      in_proj_bias = zeros({3 * d});
      register_parameter("in_proj_bias", &in_proj_bias);
    }
    out_proj = register_module("out_proj", std::make_shared<Linear>(d, d));
  } else {
    qkv = register_module("qkv", std::make_shared<Linear>(d, 3 * d, qkv_bias));
    proj = register_module("proj", std::make_shared<Linear>(d, d));
  }
}

Tensor MultiheadAttention::forward(const Tensor& x, TapContext& ctx) {
  check_input("MultiheadAttention", x, 3);
  CORTEX_CHECK(x.dim() == 3 && x.size(2) == dim, "MultiheadAttention '", name(), "': expected (B, L, ", dim,
               "), found ", shape_str(x.shape()));
  const int64_t B = x.size(0), L = x.size(1), hd = dim / heads;
  // qkv: (B, L, 3D) -> (3, B, H, L, hd); q, k, v in that order, heads contiguous, as torch and timm.
  // bf16 compute: the projections in bf16 (the Linear children on their own), and q, k, v cast to
  // bf16 for the attention kernel; its output comes back in x's dtype.
  const bool bf16 = use_bf16(*this);
  Tensor qkv_t;
  if (layout == Layout::Packed) {
    qkv_t = bf16 ? linear(to_bf16(x), in_proj_weight16_.of(in_proj_weight), in_proj_bias16_.of(in_proj_bias))
            : linear(x, in_proj_weight, in_proj_bias);
  } else {
    qkv_t = (*qkv)(x, ctx);
  }
  if (bf16) qkv_t = to_bf16(qkv_t);
  Tensor t = qkv_t.reshape({B, L, 3, heads, hd}).permute({2, 0, 3, 1, 4});
  Tensor o = scaled_dot_product_attention(t.select(0, 0), t.select(0, 1), t.select(0, 2));
  if (bf16) o = o.to(x.dtype());
  o = o.permute({0, 2, 1, 3}).reshape({B, L, dim});
  return layout == Layout::Packed ? (*out_proj)(o, ctx) : (*proj)(o, ctx);
}

void MultiheadAttention::prepare_compute_dtype() {
  if (compute_dtype() == DType::BFloat16) {
    in_proj_weight16_.of(in_proj_weight);
    in_proj_bias16_.of(in_proj_bias);
  } else {
    in_proj_weight16_.clear();
    in_proj_bias16_.clear();
  }
}

Mlp::Mlp(int64_t d, int64_t hidden, Act act, const Names& n) {
  CORTEX_CHECK(!n.fc1.empty() && !n.fc2.empty() && !n.act.empty(), "Mlp: expected names for fc1, act and fc2");
  auto add = [&](const std::string& name, ModulePtr m) {
    if (name.empty()) return;
    add_child(name, m);
    order.push_back(m);
  };
  add(n.fc1, std::make_shared<Linear>(d, hidden));
  add(n.act, std::make_shared<Activation>(act));
  add(n.drop1, std::make_shared<Dropout>(0.0));
  add(n.fc2, std::make_shared<Linear>(hidden, d));
  add(n.drop2, std::make_shared<Dropout>(0.0));
}

Tensor Mlp::forward(const Tensor& x, TapContext& ctx) {
  Tensor y = x;
  for (auto& m : order) y = (*m)(y, ctx);
  return y;
}

LayerScale::LayerScale(int64_t d) {
  CORTEX_CHECK(d > 0, "LayerScale: expected dim > 0, found ", d);
  gamma = ones({d});
  register_parameter("gamma", &gamma);
}
Tensor LayerScale::forward(const Tensor& x, TapContext&) {
  check_input("LayerScale", x, 1);
  CORTEX_CHECK(x.size(-1) == gamma.size(0), "LayerScale '", name(), "': expected last dim ", gamma.size(0),
               ", found ", shape_str(x.shape()));
  return mul(x, gamma);
}

void init_random(Module& m, uint64_t seed) {
  Generator g(seed);
  NoGradGuard ng;
  for (auto& [name, t] : m.named_tensors()) {
    if (!t->defined() || t->dtype() != DType::Float32) continue;
    const auto dot = name.rfind('.');
    const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
    if (leaf == "running_var") {
      *t = rand(t->shape(), g, 0.5, 1.5);
    } else if (leaf == "running_mean" || leaf == "bias" || leaf == "in_proj_bias") {
      *t = randn(t->shape(), g, 0.0, 0.05);
    } else if (t->dim() >= 2) {
      const int64_t fan_in = t->numel() / t->size(0);
      *t = randn(t->shape(), g, 0.0, 1.0 / std::sqrt(static_cast<double>(fan_in)));
    } else {
      *t = randn(t->shape(), g, leaf == "gamma" || leaf == "weight" ? 1.0 : 0.0, 0.1);
    }
  }
}

}  // namespace cortex::models
