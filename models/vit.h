// One Vision Transformer with the module names of four libraries:
//   torchvision  vit_b_16 & co: conv_proj, class_token, encoder.{pos_embedding, layers.encoder_layer_i, ln}, heads.head
//   clip         OpenAI CLIP / open_clip visual tower: conv1, class_embedding, positional_embedding, ln_pre,
//                transformer.resblocks.i, ln_post, proj (pass prefix "visual." for a whole checkpoint)
//   timm         timm VisionTransformer (DINOv2 and MAE checkpoints in timm's names): patch_embed.proj,
//                cls_token, reg_token, pos_embed, blocks.i (ls1/ls2 layer scale when present), norm or
//                fc_norm, head
// Tokens are (N, L, C) everywhere (CLIP's own code runs its transformer as (L, N, C); its taps are
// given batch-first here). Inputs of another size than the position embedding's grid get the grid
// resampled (bicubic), as DINOv2 / timm do.
#pragma once
#include <memory>
#include <vector>

#include "models/backbone.h"
#include "models/layers.h"

namespace cortex::models {

enum class VitLayout { TorchVision, Clip, Timm };

struct ViTSpec {
  VitLayout layout = VitLayout::TorchVision;
  int64_t dim = 768, depth = 12, heads = 12, mlp_hidden = 3072, patch = 16;
  int64_t pos_grid = 14;           // side of the position embedding's patch grid
  int64_t num_register_tokens = 0;  // timm reg_token
  int64_t pos_prefix = 1;          // prefix tokens that have a position embedding: 0, 1 or 1 + registers
  bool layer_scale = false, qkv_bias = true, patch_bias = true;
  bool fc_norm = false;            // timm: average-pool the patch tokens and apply fc_norm (no norm)
  int64_t num_classes = 0;         // head outputs (0: none); CLIP: proj width (0: no proj)
  Act act = Act::GELU;
  double ln_eps = 1e-6;
  bool pos_interp_antialias = false;  // resampling of the position grid: timm uses antialias
  double pos_interp_offset = 0;       // DINOv2's hub code: scale factor (g + 0.1) / g0 instead of g / g0
};
// Reads the sizes of a ViT of `layout` from the weight shapes; heads, activation, eps and the
// native image size come from the config.
ViTSpec vit_spec(VitLayout layout, const Shapes& s, const ModelConfig& cfg);
VitLayout parse_vit_layout(const std::string& name);  // torchvision, clip, timm, dinov2, mae

class ViTBlock : public Module {
 public:
  ViTBlock(const ViTSpec& spec);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "ViTBlock"; }
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<MultiheadAttention> attn;
  std::shared_ptr<Mlp> mlp;
  std::shared_ptr<LayerScale> ls1, ls2;
  std::shared_ptr<Dropout> drop;
};

class ViT : public Backbone {
 public:
  explicit ViT(const ViTSpec& spec);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "ViT"; }
  std::vector<std::string> tap_names() override;
  Preprocess preprocess() const override {
    return spec.layout == VitLayout::Clip ? Preprocess::Clip : Preprocess::ImageNet;
  }
  // The patch part of a position embedding (1, g*g, C) resampled to (1, gh*gw, C).
  Tensor resample_pos(const Tensor& pos, int64_t gh, int64_t gw) const;
  ViTSpec spec;

 protected:
  Tensor to_grid(const std::string& tap, const Tensor& tokens) override;

 private:
  struct Encoder;  // torchvision's "encoder" module
  Tensor embed(const Tensor& x, TapContext& ctx);
  std::shared_ptr<Conv2d> patch_conv_;
  std::shared_ptr<Module> patch_embed_;  // timm PatchEmbed
  std::shared_ptr<Sequential> blocks_;
  std::shared_ptr<Module> encoder_;  // torchvision
  std::shared_ptr<LayerNorm> ln_pre_, norm_;
  std::shared_ptr<Linear> head_;
  std::shared_ptr<Sequential> heads_;
  Tensor cls_, reg_, pos_, proj_;
  int64_t gh_ = 0, gw_ = 0;  // patch grid of the last forward (for grid taps)
};

// Separable resampling matrix (out, in) of torch.nn.functional.interpolate(mode="bicubic",
// align_corners=False), with or without antialias, in float64. offset > 0: as interpolate called
// with scale_factor (out + offset) / in (source coordinates scaled by in / (out + offset)).
Tensor bicubic_matrix(int64_t in, int64_t out, bool antialias, double offset = 0);

}  // namespace cortex::models
