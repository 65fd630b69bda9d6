#include "models/vit.h"

#include <cmath>

#include "tensor/error.h"

namespace cortex::models {

namespace {
bool has(const Shapes& s, const std::string& k) { return s.count(k) != 0; }

int64_t count_blocks(const Shapes& s, const std::string& prefix) {
  int64_t n = 0;
  while (true) {
    const std::string p = prefix + std::to_string(n) + ".";
    auto it = s.lower_bound(p);
    if (it == s.end() || it->first.compare(0, p.size(), p) != 0) break;
    ++n;
  }
  return n;
}

int64_t isqrt_exact(int64_t n) {
  if (n <= 0) return -1;
  int64_t r = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  return r * r == n ? r : -1;
}

// timm PatchEmbed: proj (conv), then (N, C, h, w) -> (N, h*w, C).
class PatchEmbed : public Module {
 public:
  PatchEmbed(int64_t dim, int64_t patch, bool bias) {
    proj = register_module("proj", std::make_shared<Conv2d>(3, dim, patch, patch, 0, bias));
  }
  Tensor forward(const Tensor& x, TapContext& ctx) override { return (*proj)(x, ctx).flatten(2).transpose(1, 2); }
  std::string type_name() const override { return "PatchEmbed"; }
  std::shared_ptr<Conv2d> proj;
};
}  // namespace

// torchvision's Encoder: + pos_embedding, dropout, layers, ln.
struct ViT::Encoder : public Module {
  Encoder(ViT& vit, const ViTSpec& sp) : owner(vit) {
    pos_embedding = zeros({1, 1 + sp.pos_grid * sp.pos_grid, sp.dim});
    register_parameter("pos_embedding", &pos_embedding);
    dropout = register_module("dropout", std::make_shared<Dropout>(0.0));
    layers = register_module("layers", std::make_shared<Sequential>());
    for (int64_t i = 0; i < sp.depth; ++i)
      layers->push_back("encoder_layer_" + std::to_string(i), std::make_shared<ViTBlock>(sp));
    ln = register_module("ln", std::make_shared<LayerNorm>(sp.dim, sp.ln_eps));
  }
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "Encoder"; }
  ViT& owner;
  Tensor pos_embedding;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Sequential> layers;
  std::shared_ptr<LayerNorm> ln;
};

VitLayout parse_vit_layout(const std::string& n) {
  if (n == "torchvision") return VitLayout::TorchVision;
  if (n == "clip" || n == "open_clip") return VitLayout::Clip;
  if (n == "timm" || n == "dinov2" || n == "mae") return VitLayout::Timm;
  throw Error("vit: expected layout torchvision, clip, timm, dinov2 or mae, found '" + n + "'");
}

ViTSpec vit_spec(VitLayout layout, const Shapes& s, const ModelConfig& cfg) {
  ViTSpec sp;
  sp.layout = layout;
  CORTEX_CHECK(cfg.heads > 0, "vit: the config must name the number of heads (\"heads\"), found ", cfg.heads);
  sp.heads = cfg.heads;
  int64_t pos_len = 0;
  if (layout == VitLayout::TorchVision) {
    sp.dim = shape_of(s, "class_token", "vit")[2];
    sp.patch = shape_of(s, "conv_proj.weight", "vit")[2];
    sp.depth = count_blocks(s, "encoder.layers.encoder_layer_");
    sp.mlp_hidden = shape_of(s, "encoder.layers.encoder_layer_0.mlp.0.weight", "vit")[0];
    sp.qkv_bias = has(s, "encoder.layers.encoder_layer_0.self_attention.in_proj_bias");
    pos_len = shape_of(s, "encoder.pos_embedding", "vit")[1];
    sp.num_classes = has(s, "heads.head.weight") ? shape_of(s, "heads.head.weight", "vit")[0] : 0;
    sp.act = Act::GELU;
    sp.ln_eps = 1e-6;
    sp.pos_prefix = 1;
  } else if (layout == VitLayout::Clip) {
    sp.dim = shape_of(s, "class_embedding", "clip")[0];
    sp.patch = shape_of(s, "conv1.weight", "clip")[2];
    sp.patch_bias = has(s, "conv1.bias");
    sp.depth = count_blocks(s, "transformer.resblocks.");
    sp.mlp_hidden = shape_of(s, "transformer.resblocks.0.mlp.c_fc.weight", "clip")[0];
    sp.qkv_bias = has(s, "transformer.resblocks.0.attn.in_proj_bias");
    pos_len = shape_of(s, "positional_embedding", "clip")[0];
    sp.num_classes = has(s, "proj") ? shape_of(s, "proj", "clip")[1] : 0;
    sp.act = Act::QuickGELU;
    sp.ln_eps = 1e-5;
    sp.pos_prefix = 1;
  } else {
    const Shape& pe = shape_of(s, "pos_embed", "timm vit");
    sp.dim = pe[2];
    pos_len = pe[1];
    sp.patch = shape_of(s, "patch_embed.proj.weight", "timm vit")[2];
    sp.patch_bias = has(s, "patch_embed.proj.bias");
    sp.depth = count_blocks(s, "blocks.");
    sp.mlp_hidden = shape_of(s, "blocks.0.mlp.fc1.weight", "timm vit")[0];
    sp.qkv_bias = has(s, "blocks.0.attn.qkv.bias");
    sp.layer_scale = has(s, "blocks.0.ls1.gamma");
    sp.num_register_tokens = has(s, "reg_token") ? shape_of(s, "reg_token", "timm vit")[1] : 0;
    sp.fc_norm = has(s, "fc_norm.weight") && !has(s, "norm.weight");
    sp.num_classes = has(s, "head.weight") ? shape_of(s, "head.weight", "timm vit")[0] : 0;
    sp.act = Act::GELU;
    sp.ln_eps = 1e-6;
    sp.pos_interp_antialias = true;
  }
  CORTEX_CHECK(sp.depth > 0, "vit: expected at least one transformer block in the weights, found none");
  CORTEX_CHECK(cfg.num_register_tokens < 0 || cfg.num_register_tokens == sp.num_register_tokens,
               "vit: the config says ", cfg.num_register_tokens, " register tokens, the weights hold ",
               sp.num_register_tokens);
  CORTEX_CHECK(cfg.patch_size <= 0 || cfg.patch_size == sp.patch, "vit: the config says patch size ", cfg.patch_size,
               ", the weights' patch embedding has ", sp.patch);
  CORTEX_CHECK(sp.dim % sp.heads == 0, "vit: width ", sp.dim, " is not divisible by ", sp.heads, " heads");
  // Which prefix tokens carry a position embedding follows from the embedding's length: all of
  // them (torchvision, CLIP, timm), none (timm no_embed_class) or only the class token (DINOv2's
  // own code, registers inserted after the position embedding is added).
  const int64_t R = sp.num_register_tokens;
  std::vector<int64_t> candidates = {1 + R, 1, 0};
  if (layout != VitLayout::Timm) candidates = {1};
  sp.pos_prefix = -1;
  for (int64_t P : candidates) {
    const int64_t g = isqrt_exact(pos_len - P);
    if (g <= 0) continue;
    if (cfg.image_size > 0 && g * sp.patch != cfg.image_size) continue;
    sp.pos_prefix = P;
    sp.pos_grid = g;
    break;
  }
  CORTEX_CHECK(sp.pos_prefix >= 0, "vit: a position embedding of ", pos_len, " tokens fits no square patch grid",
               cfg.image_size > 0 ? detail::cat(" of image size ", cfg.image_size, " and patch ", sp.patch) : "",
               " with 0, 1 or ", 1 + R, " prefix tokens");
  if (!cfg.activation.empty()) sp.act = parse_act(cfg.activation);
  if (cfg.ln_eps > 0) sp.ln_eps = cfg.ln_eps;
  return sp;
}

ViTBlock::ViTBlock(const ViTSpec& sp) {
  using L = MultiheadAttention::Layout;
  switch (sp.layout) {
    case VitLayout::TorchVision:
      norm1 = register_module("ln_1", std::make_shared<LayerNorm>(sp.dim, sp.ln_eps));
      attn = register_module("self_attention", std::make_shared<MultiheadAttention>(sp.dim, sp.heads, L::Packed, sp.qkv_bias));
      drop = register_module("dropout", std::make_shared<Dropout>(0.0));
      norm2 = register_module("ln_2", std::make_shared<LayerNorm>(sp.dim, sp.ln_eps));
      mlp = register_module("mlp", std::make_shared<Mlp>(sp.dim, sp.mlp_hidden, sp.act, Mlp::Names{"0", "1", "2", "3", "4"}));
      break;
    case VitLayout::Clip:
      norm1 = register_module("ln_1", std::make_shared<LayerNorm>(sp.dim, sp.ln_eps));
      attn = register_module("attn", std::make_shared<MultiheadAttention>(sp.dim, sp.heads, L::Packed, sp.qkv_bias));
      norm2 = register_module("ln_2", std::make_shared<LayerNorm>(sp.dim, sp.ln_eps));
      mlp = register_module("mlp", std::make_shared<Mlp>(sp.dim, sp.mlp_hidden, sp.act, Mlp::Names{"c_fc", "gelu", "", "c_proj", ""}));
      break;
    case VitLayout::Timm:
      norm1 = register_module("norm1", std::make_shared<LayerNorm>(sp.dim, sp.ln_eps));
      attn = register_module("attn", std::make_shared<MultiheadAttention>(sp.dim, sp.heads, L::Qkv, sp.qkv_bias));
      if (sp.layer_scale) ls1 = register_module("ls1", std::make_shared<LayerScale>(sp.dim));
      norm2 = register_module("norm2", std::make_shared<LayerNorm>(sp.dim, sp.ln_eps));
      mlp = register_module("mlp", std::make_shared<Mlp>(sp.dim, sp.mlp_hidden, sp.act, Mlp::Names{"fc1", "act", "", "fc2", ""}));
      if (sp.layer_scale) ls2 = register_module("ls2", std::make_shared<LayerScale>(sp.dim));
      break;
  }
}

Tensor ViTBlock::forward(const Tensor& x, TapContext& ctx) {
  Tensor a = (*attn)((*norm1)(x, ctx), ctx);
  if (drop) a = (*drop)(a, ctx);
  if (ls1) a = (*ls1)(a, ctx);
  Tensor y = add(x, a);
  Tensor m = (*mlp)((*norm2)(y, ctx), ctx);
  if (ls2) m = (*ls2)(m, ctx);
  return add(y, m);
}

ViT::ViT(const ViTSpec& sp) : spec(sp) {
  CORTEX_CHECK(sp.dim > 0 && sp.depth > 0 && sp.heads > 0 && sp.patch > 0 && sp.pos_grid > 0 && sp.mlp_hidden > 0 &&
                   sp.num_register_tokens >= 0 &&
                   (sp.pos_prefix == 0 || sp.pos_prefix == 1 || sp.pos_prefix == 1 + sp.num_register_tokens),
               "ViT: invalid spec (dim ", sp.dim, ", depth ", sp.depth, ", heads ", sp.heads, ", patch ", sp.patch,
               ", grid ", sp.pos_grid, ", pos_prefix ", sp.pos_prefix, ")");
  CORTEX_CHECK(sp.layout == VitLayout::Timm || sp.num_register_tokens == 0,
               "ViT: register tokens exist only in the timm layout");
  const int64_t D = sp.dim, G = sp.pos_grid * sp.pos_grid;
  image_size = sp.pos_grid * sp.patch;
  switch (sp.layout) {
    case VitLayout::TorchVision: {
      patch_conv_ = register_module("conv_proj", std::make_shared<Conv2d>(3, D, sp.patch, sp.patch, 0, true));
      cls_ = zeros({1, 1, D});
      register_parameter("class_token", &cls_);
      encoder_ = register_module("encoder", std::make_shared<Encoder>(*this, sp));
      if (sp.num_classes > 0) {
        heads_ = register_module("heads", std::make_shared<Sequential>());
        head_ = std::make_shared<Linear>(D, sp.num_classes);
        heads_->push_back("head", head_);
      }
      break;
    }
    case VitLayout::Clip: {
      patch_conv_ = register_module("conv1", std::make_shared<Conv2d>(3, D, sp.patch, sp.patch, 0, sp.patch_bias));
      cls_ = zeros({D});
      pos_ = zeros({1 + G, D});
      register_parameter("class_embedding", &cls_);
      register_parameter("positional_embedding", &pos_);
      if (sp.num_classes > 0) {
        proj_ = zeros({D, sp.num_classes});
        register_parameter("proj", &proj_);
      }
      ln_pre_ = register_module("ln_pre", std::make_shared<LayerNorm>(D, sp.ln_eps));
      auto transformer = register_module("transformer", std::make_shared<Sequential>());
      blocks_ = std::make_shared<Sequential>();
      for (int64_t i = 0; i < sp.depth; ++i) blocks_->push_back(std::make_shared<ViTBlock>(sp));
      transformer->push_back("resblocks", blocks_);
      norm_ = register_module("ln_post", std::make_shared<LayerNorm>(D, sp.ln_eps));
      break;
    }
    case VitLayout::Timm: {
      auto pe = std::make_shared<PatchEmbed>(D, sp.patch, sp.patch_bias);
      patch_embed_ = register_module("patch_embed", pe);
      patch_conv_ = pe->proj;
      cls_ = zeros({1, 1, D});
      register_parameter("cls_token", &cls_);
      if (sp.num_register_tokens > 0) {
        reg_ = zeros({1, sp.num_register_tokens, D});
        register_parameter("reg_token", &reg_);
      }
      pos_ = zeros({1, sp.pos_prefix + G, D});
      register_parameter("pos_embed", &pos_);
      blocks_ = register_module("blocks", std::make_shared<Sequential>());
      for (int64_t i = 0; i < sp.depth; ++i) blocks_->push_back(std::make_shared<ViTBlock>(sp));
      norm_ = register_module(sp.fc_norm ? "fc_norm" : "norm", std::make_shared<LayerNorm>(D, sp.ln_eps));
      if (sp.num_classes > 0) head_ = register_module("head", std::make_shared<Linear>(D, sp.num_classes));
      break;
    }
  }
  set_name("");
}

Tensor bicubic_matrix(int64_t in, int64_t out, bool antialias, double offset) {
  CORTEX_CHECK(in > 0 && out > 0 && offset >= 0, "bicubic_matrix: expected positive sizes and offset >= 0, found ", in,
               " -> ", out, " offset ", offset);
  std::vector<double> m(static_cast<size_t>(out * in), 0.0);
  const double scale = static_cast<double>(in) / (static_cast<double>(out) + offset);
  auto cubic = [](double x, double a) {
    x = std::abs(x);
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0.0;
  };
  for (int64_t i = 0; i < out; ++i) {
    double* row = m.data() + i * in;
    if (antialias) {
      // PyTorch's _upsample_bicubic2d_aa (PIL's filter, a = -0.5, support widened when shrinking).
      const double support = scale >= 1 ? 2.0 * scale : 2.0, inv = scale >= 1 ? 1.0 / scale : 1.0;
      const double center = scale * (i + 0.5);
      const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
      const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
      double total = 0;
      for (int64_t j = lo; j < hi; ++j) total += cubic((j - center + 0.5) * inv, -0.5);
      for (int64_t j = lo; j < hi; ++j) row[j] += total != 0 ? cubic((j - center + 0.5) * inv, -0.5) / total : 0;
    } else {
      // upsample_bicubic2d, align_corners=False: 4 taps (a = -0.75), indices clamped at the border.
      const double src = scale * (i + 0.5) - 0.5;
      const int64_t f = static_cast<int64_t>(std::floor(src));
      const double t = src - f;
      const double w[4] = {cubic(t + 1, -0.75), cubic(t, -0.75), cubic(1 - t, -0.75), cubic(2 - t, -0.75)};
      for (int k = 0; k < 4; ++k) row[std::clamp<int64_t>(f - 1 + k, 0, in - 1)] += w[k];
    }
  }
  return from_vector(m, {out, in}, DType::Float64);
}

Tensor ViT::resample_pos(const Tensor& pos, int64_t gh, int64_t gw) const {
  const int64_t g = spec.pos_grid, D = spec.dim;
  CORTEX_CHECK(pos.dim() == 3 && pos.size(1) == g * g && pos.size(2) == D, "ViT: expected a patch position embedding (1, ",
               g * g, ", ", D, "), found ", shape_str(pos.shape()));
  if (gh == g && gw == g) return pos;
  // Bicubic resampling is linear and separable: P' = Ah P Aw^T per channel, as two matmuls
  // (differentiable, so the embedding can still be fine-tuned).
  // The small resampling matrices are made on the host, then moved to the embedding's device.
  Tensor ah = bicubic_matrix(g, gh, spec.pos_interp_antialias, spec.pos_interp_offset).to(pos.dtype()).to(pos.device());
  Tensor aw = bicubic_matrix(g, gw, spec.pos_interp_antialias, spec.pos_interp_offset).to(pos.dtype()).to(pos.device());
  Tensor p = pos.reshape({g, g, D}).permute({2, 0, 1});  // (D, g, g)
  p = matmul(matmul(ah, p), aw.t());                      // (D, gh, gw)
  return p.permute({1, 2, 0}).reshape({1, gh * gw, D});
}

// Adds the position embedding to x = [cls, registers, patches] (N, 1 + R + h*w, D).
static Tensor add_pos(const ViT& vit, const Tensor& x, const Tensor& pos_full, int64_t gh, int64_t gw) {
  const auto& sp = vit.spec;
  const int64_t P = sp.pos_prefix, n_prefix = 1 + sp.num_register_tokens;
  Tensor pos = pos_full.dim() == 2 ? pos_full.unsqueeze(0) : pos_full;
  Tensor patch_pos = vit.resample_pos(pos.slice(1, P, P + sp.pos_grid * sp.pos_grid), gh, gw);
  Tensor patches = add(x.slice(1, n_prefix, x.size(1)), patch_pos);
  std::vector<Tensor> parts;
  if (P > 0) parts.push_back(add(x.slice(1, 0, P), pos.slice(1, 0, P)));
  if (P < n_prefix) parts.push_back(x.slice(1, P, n_prefix));
  parts.push_back(patches);
  return concat(parts, 1);
}

Tensor ViT::Encoder::forward(const Tensor& x, TapContext& ctx) {
  Tensor y = add_pos(owner, x, pos_embedding, owner.gh_, owner.gw_);
  y = (*dropout)(y, ctx);
  y = (*layers)(y, ctx);
  if (ctx.done()) return y;
  return (*ln)(y, ctx);
}

Tensor ViT::forward(const Tensor& x, TapContext& ctx) {
  CORTEX_CHECK(x.defined() && x.dim() == 4 && x.size(1) == 3 && x.size(2) >= spec.patch && x.size(3) >= spec.patch,
               "ViT: expected images (N, 3, H, W) with H, W >= patch ", spec.patch, ", found ",
               x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
  const int64_t B = x.size(0), D = spec.dim;
  gh_ = x.size(2) / spec.patch;
  gw_ = x.size(3) / spec.patch;
  Tensor tokens;
  if (patch_embed_) {
    tokens = (*patch_embed_)(x, ctx);
  } else {
    tokens = (*patch_conv_)(x, ctx).flatten(2).transpose(1, 2);
  }
  if (ctx.done()) return tokens;
  std::vector<Tensor> seq{cls_.reshape({1, 1, D}).expand({B, 1, D})};
  if (reg_.defined()) seq.push_back(reg_.expand({B, spec.num_register_tokens, D}));
  seq.push_back(tokens);
  Tensor h = concat(seq, 1);
  switch (spec.layout) {
    case VitLayout::TorchVision: {
      h = (*encoder_)(h, ctx);
      if (ctx.done() || !heads_) return ctx.done() ? h : h.select(1, 0);
      return (*heads_)(h.select(1, 0), ctx);
    }
    case VitLayout::Clip: {
      h = (*ln_pre_)(add_pos(*this, h, pos_, gh_, gw_), ctx);
      if (ctx.done()) return h;
      h = (*child("transformer"))(h, ctx);
      if (ctx.done()) return h;
      Tensor pooled = (*norm_)(h.select(1, 0), ctx);
      return proj_.defined() ? matmul(pooled, proj_) : pooled;
    }
    case VitLayout::Timm: {
      h = (*blocks_)(add_pos(*this, h, pos_, gh_, gw_), ctx);
      if (ctx.done()) return h;
      const int64_t n_prefix = 1 + spec.num_register_tokens;
      Tensor pooled = spec.fc_norm ? (*norm_)(mean(h.slice(1, n_prefix, h.size(1)), {1}), ctx)
                                   : (*norm_)(h, ctx).select(1, 0);
      if (ctx.done()) return pooled;
      return head_ ? (*head_)(pooled, ctx) : pooled;
    }
  }
  throw Error("ViT: unknown layout");
}

Tensor ViT::to_grid(const std::string& tap, const Tensor& t) {
  const int64_t n_prefix = 1 + spec.num_register_tokens;
  if (t.dim() == 4 && t.size(2) == gh_ && t.size(3) == gw_) return t;  // already a map (the patch conv)
  CORTEX_CHECK(t.dim() == 3 && t.size(1) == n_prefix + gh_ * gw_, "ViT: tap '", tap, "' is not a token sequence (N, ",
               n_prefix + gh_ * gw_, ", C): found ", shape_str(t.shape()));
  return t.slice(1, n_prefix, t.size(1)).reshape({t.size(0), gh_, gw_, t.size(2)}).permute({0, 3, 1, 2}).contiguous();
}

std::vector<std::string> ViT::tap_names() {
  auto names = Backbone::tap_names();
  std::vector<std::string> grid;
  for (auto& [name, m] : named_modules())
    if (dynamic_cast<ViTBlock*>(m) || dynamic_cast<MultiheadAttention*>(m)) grid.push_back(name + ":grid");
  names.insert(names.end(), grid.begin(), grid.end());
  return names;
}

}  // namespace cortex::models
