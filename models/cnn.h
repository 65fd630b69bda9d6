// torchvision's CNNs with their exact module names: AlexNet, VGG (with and without batch norm) and
// ResNet (BasicBlock and Bottleneck, any block counts and widths). Sizes come from a spec, or from
// the shapes of a weight file.
#pragma once
#include <memory>
#include <vector>

#include "models/backbone.h"
#include "models/layers.h"

namespace cortex::models {

struct AlexNetSpec {
  std::vector<int64_t> channels = {64, 192, 384, 256, 256};  // features.{0,3,6,8,10}
  int64_t hidden1 = 4096, hidden2 = 4096, num_classes = 1000;
};
AlexNetSpec alexnet_spec(const Shapes& s);

class AlexNet : public Backbone {
 public:
  explicit AlexNet(const AlexNetSpec& spec = {});
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "AlexNet"; }
  std::shared_ptr<Sequential> features, classifier;
  std::shared_ptr<AdaptiveAvgPool2d> avgpool;
};

struct VGGSpec {
  std::vector<int64_t> cfg;  // output channels per conv, -1 for a max pool (torchvision's "M")
  bool batch_norm = false;
  int64_t hidden1 = 4096, hidden2 = 4096, num_classes = 1000;
};
VGGSpec vgg_spec(const std::string& name);  // "vgg11", "vgg13", "vgg16", "vgg19" (+ "_bn")
VGGSpec vgg_spec(const Shapes& s);

class VGG : public Backbone {
 public:
  explicit VGG(const VGGSpec& spec);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "VGG"; }
  std::shared_ptr<Sequential> features, classifier;
  std::shared_ptr<AdaptiveAvgPool2d> avgpool;
};

// One residual block: BasicBlock (conv1 3x3, conv2 3x3) or Bottleneck (conv1 1x1, conv2 3x3 with
// the stride and groups, conv3 1x1), each conv followed by its bn, with an optional downsample
// (1x1 conv + bn) on the identity.
class ResBlock : public Module {
 public:
  ResBlock(bool bottleneck, int64_t in, int64_t width, int64_t out, int64_t stride, int64_t groups, bool downsample);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return bottleneck ? "Bottleneck" : "BasicBlock"; }
  void fold_batchnorm() override;
  bool bottleneck;
  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<BatchNorm2d> bn1, bn2, bn3;
  std::shared_ptr<Activation> relu;
  std::shared_ptr<Sequential> downsample;
};

struct ResNetSpec {
  bool bottleneck = true;
  std::vector<int64_t> blocks = {3, 4, 6, 3};
  std::vector<int64_t> planes = {64, 128, 256, 512};  // per stage; width = planes * width_per_group/64 * groups
  int64_t stem = 64, groups = 1, width_per_group = 64, num_classes = 1000;
};
ResNetSpec resnet_spec(const std::string& name);  // "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"
ResNetSpec resnet_spec(const Shapes& s);

class ResNet : public Backbone {
 public:
  explicit ResNet(const ResNetSpec& spec);
  Tensor forward(const Tensor& x, TapContext& ctx) override;
  std::string type_name() const override { return "ResNet"; }
  void fold_batchnorm() override;
  std::shared_ptr<Conv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1;
  std::shared_ptr<Activation> relu;
  std::shared_ptr<MaxPool2d> maxpool;
  std::vector<std::shared_ptr<Sequential>> layers;
  std::shared_ptr<AdaptiveAvgPool2d> avgpool;
  std::shared_ptr<Linear> fc;
};

}  // namespace cortex::models
