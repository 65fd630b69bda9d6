// Backbone: a model whose intermediate activations can be asked for by name, built from a weight
// file whose shapes give the layer sizes, plus a small config for what shapes cannot say.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/load.h"
#include "models/module.h"
#include "tensor/io/safetensors.h"

namespace cortex::models {

enum class Preprocess { ImageNet, Clip };

class Backbone : public Module {
 public:
  // Runs the model on x (N, 3, H, W) and returns the requested taps by name, plus "output" when the
  // forward ran to its end (always when stop_early is false or "output" is among the taps; otherwise
  // the forward stops once the last requested tap is recorded). A tap is the full name of any module
  // ("features.5", "layer3.1", "encoder.layers.encoder_layer_4.self_attention"); ViTs also accept
  // "<name>:grid" for a token tap reshaped to (N, C, H/p, W/p) (patch tokens only). Unknown names
  // are an error listing some valid ones.
  std::map<std::string, Tensor> features(const Tensor& x, const std::vector<std::string>& taps,
                                         bool stop_early = true);
  // Every name features() accepts (modules, then the ViT grid forms).
  virtual std::vector<std::string> tap_names();
  virtual Preprocess preprocess() const { return Preprocess::ImageNet; }
  // The image size the model was trained at (224 unless the config says otherwise).
  int64_t image_size = 224;

 protected:
  // Reshapes a token tap (N, L, C) to the patch grid (N, C, h, w); only ViTs can.
  virtual Tensor to_grid(const std::string& tap, const Tensor& tokens);
};

using Shapes = std::map<std::string, Shape>;
// The shape of `key`, or an error naming the key and what it was needed for.
const Shape& shape_of(const Shapes& s, const std::string& key, const char* arch);
Shapes shapes_of(const io::SafeTensors& file, const LoadOptions& opts);

// What the weights cannot say. JSON keys (all optional but "arch"): arch ("alexnet", "vgg",
// "resnet", "vit"), layout (vit: "torchvision", "clip", "timm", "dinov2", "mae"), heads,
// patch_size (checked against the weights), image_size, activation ("gelu", "quick_gelu", "gelu_tanh"), num_register_tokens, ln_eps, prefix.
struct ModelConfig {
  std::string arch;
  std::string layout;
  int64_t heads = 0;
  int64_t patch_size = 0;  // 0: read from the weights (when given, checked against them)
  int64_t image_size = 0;  // 0: the family's default
  std::string activation;  // empty: the layout's default
  int64_t num_register_tokens = -1;  // -1: read from the weights
  double ln_eps = 0;                 // 0: the layout's default
  std::string prefix;                // prefix of the weight names in the file
};
ModelConfig config_from_json(const std::string& text, const std::string& source = "config");
ModelConfig config_from_file(const std::string& path);
// Presets by torchvision / hub name: alexnet, vgg11, vgg11_bn, vgg16, vgg16_bn, resnet18, resnet34,
// resnet50, resnet101, resnet152, vit_b_16, vit_b_32, vit_l_16, clip_vit_b_16, clip_vit_b_32,
// clip_vit_l_14, dinov2_vits14, dinov2_vitb14, dinov2_vitl14 (+ "_reg"), mae_vit_b_16, mae_vit_l_16.
ModelConfig config_for_arch(const std::string& name);

// Builds the model the config names with sizes read from the file's shapes and loads it strictly.
std::shared_ptr<Backbone> load_backbone(const ModelConfig& cfg, const std::string& weights_path);
std::shared_ptr<Backbone> load_backbone(const ModelConfig& cfg, const io::SafeTensors& file);

}  // namespace cortex::models
