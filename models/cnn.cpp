#include "models/cnn.h"

#include <algorithm>
#include <set>

#include "tensor/error.h"

namespace cortex::models {

namespace {
ModulePtr relu_layer() { return std::make_shared<Activation>(Act::ReLU); }

void check_image(const char* arch, const Tensor& x) {
  CORTEX_CHECK(x.defined() && x.dim() == 4 && x.size(1) == 3, arch, ": expected images (N, 3, H, W), found ",
               x.defined() ? shape_str(x.shape()) : std::string("an undefined tensor"));
}

// Sorted indices N of keys "<prefix>.N.<leaf>".
std::vector<int64_t> indices(const Shapes& s, const std::string& prefix, const std::string& leaf) {
  std::set<int64_t> out;
  for (auto& [k, sh] : s) {
    if (k.compare(0, prefix.size() + 1, prefix + ".") != 0) continue;
    const std::string rest = k.substr(prefix.size() + 1);
    const auto dot = rest.find('.');
    if (dot == std::string::npos || rest.substr(dot + 1) != leaf) continue;
    const std::string num = rest.substr(0, dot);
    if (num.empty() || !std::all_of(num.begin(), num.end(), ::isdigit)) continue;
    out.insert(std::stoll(num));
  }
  return {out.begin(), out.end()};
}
}  // namespace

// ---------------------------------------------------------------- AlexNet

AlexNetSpec alexnet_spec(const Shapes& s) {
  AlexNetSpec sp;
  const int64_t idx[5] = {0, 3, 6, 8, 10};
  for (int i = 0; i < 5; ++i)
    sp.channels[i] = shape_of(s, "features." + std::to_string(idx[i]) + ".weight", "alexnet")[0];
  sp.hidden1 = shape_of(s, "classifier.1.weight", "alexnet")[0];
  sp.hidden2 = shape_of(s, "classifier.4.weight", "alexnet")[0];
  sp.num_classes = shape_of(s, "classifier.6.weight", "alexnet")[0];
  return sp;
}

AlexNet::AlexNet(const AlexNetSpec& sp) {
  CORTEX_CHECK(sp.channels.size() == 5, "AlexNet: expected 5 conv widths, found ", sp.channels.size());
  const auto& c = sp.channels;
  features = register_module(
      "features",
      std::make_shared<Sequential>(std::vector<ModulePtr>{
          std::make_shared<Conv2d>(3, c[0], 11, 4, 2), relu_layer(), std::make_shared<MaxPool2d>(3, 2),
          std::make_shared<Conv2d>(c[0], c[1], 5, 1, 2), relu_layer(), std::make_shared<MaxPool2d>(3, 2),
          std::make_shared<Conv2d>(c[1], c[2], 3, 1, 1), relu_layer(),
          std::make_shared<Conv2d>(c[2], c[3], 3, 1, 1), relu_layer(),
          std::make_shared<Conv2d>(c[3], c[4], 3, 1, 1), relu_layer(), std::make_shared<MaxPool2d>(3, 2)}));
  avgpool = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(6, 6));
  classifier = register_module(
      "classifier", std::make_shared<Sequential>(std::vector<ModulePtr>{
                        std::make_shared<Dropout>(0.5), std::make_shared<Linear>(c[4] * 36, sp.hidden1), relu_layer(),
                        std::make_shared<Dropout>(0.5), std::make_shared<Linear>(sp.hidden1, sp.hidden2),
                        relu_layer(), std::make_shared<Linear>(sp.hidden2, sp.num_classes)}));
  set_name("");
}

Tensor AlexNet::forward(const Tensor& x, TapContext& ctx) {
  check_image("AlexNet", x);
  Tensor y = (*features)(x, ctx);
  if (ctx.done()) return y;
  y = (*avgpool)(y, ctx);
  if (ctx.done()) return y;
  return (*classifier)(y.flatten(1), ctx);
}

// ---------------------------------------------------------------- VGG

VGGSpec vgg_spec(const std::string& name) {
  VGGSpec sp;
  std::string base = name;
  if (base.size() > 3 && base.substr(base.size() - 3) == "_bn") {
    sp.batch_norm = true;
    base = base.substr(0, base.size() - 3);
  }
  const int64_t M = -1;
  if (base == "vgg11")
    sp.cfg = {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
  else if (base == "vgg13")
    sp.cfg = {64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
  else if (base == "vgg16")
    sp.cfg = {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M};
  else if (base == "vgg19")
    sp.cfg = {64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M};
  else
    throw Error("vgg_spec: expected vgg11, vgg13, vgg16 or vgg19 (optionally _bn), found '" + name + "'");
  return sp;
}

VGGSpec vgg_spec(const Shapes& s) {
  // torchvision's make_layers emits conv[, bn], relu per channel entry and one MaxPool per "M", so
  // the gaps between conv indices say where the pools are; the last pool closes the features.
  VGGSpec sp;
  const auto convs = indices(s, "features", "weight");
  const auto bns = indices(s, "features", "running_mean");
  CORTEX_CHECK(!convs.empty(), "vgg: expected weights features.N.weight, found none");
  sp.batch_norm = !bns.empty();
  int64_t idx = 0;
  for (int64_t i : convs) {
    if (std::find(bns.begin(), bns.end(), i) != bns.end()) continue;  // a bn weight, not a conv
    CORTEX_CHECK(i >= idx, "vgg: unexpected layout of features at index ", i);
    for (; idx < i; ++idx) sp.cfg.push_back(-1);
    sp.cfg.push_back(shape_of(s, "features." + std::to_string(i) + ".weight", "vgg")[0]);
    idx = i + (sp.batch_norm ? 3 : 2);
  }
  sp.cfg.push_back(-1);
  sp.hidden1 = shape_of(s, "classifier.0.weight", "vgg")[0];
  sp.hidden2 = shape_of(s, "classifier.3.weight", "vgg")[0];
  sp.num_classes = shape_of(s, "classifier.6.weight", "vgg")[0];
  return sp;
}

VGG::VGG(const VGGSpec& sp) {
  CORTEX_CHECK(!sp.cfg.empty(), "VGG: expected a layer configuration, found an empty one");
  features = register_module("features", std::make_shared<Sequential>());
  int64_t c = 3;
  for (int64_t v : sp.cfg) {
    if (v < 0) {
      features->push_back(std::make_shared<MaxPool2d>(2, 2));
      continue;
    }
    features->push_back(std::make_shared<Conv2d>(c, v, 3, 1, 1));
    if (sp.batch_norm) features->push_back(std::make_shared<BatchNorm2d>(v));
    features->push_back(relu_layer());
    c = v;
  }
  avgpool = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(7, 7));
  classifier = register_module(
      "classifier", std::make_shared<Sequential>(std::vector<ModulePtr>{
                        std::make_shared<Linear>(c * 49, sp.hidden1), relu_layer(), std::make_shared<Dropout>(0.5),
                        std::make_shared<Linear>(sp.hidden1, sp.hidden2), relu_layer(),
                        std::make_shared<Dropout>(0.5), std::make_shared<Linear>(sp.hidden2, sp.num_classes)}));
  set_name("");
}

Tensor VGG::forward(const Tensor& x, TapContext& ctx) {
  check_image("VGG", x);
  Tensor y = (*features)(x, ctx);
  if (ctx.done()) return y;
  y = (*avgpool)(y, ctx);
  if (ctx.done()) return y;
  return (*classifier)(y.flatten(1), ctx);
}

// ---------------------------------------------------------------- ResNet

ResBlock::ResBlock(bool bn_, int64_t in, int64_t width, int64_t out, int64_t stride, int64_t groups, bool ds)
    : bottleneck(bn_) {
  if (bottleneck) {
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, width, 1, 1, 0, false));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(width));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(width, width, 3, stride, 1, false, groups));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(width));
    conv3 = register_module("conv3", std::make_shared<Conv2d>(width, out, 1, 1, 0, false));
    bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(out));
  } else {
    CORTEX_CHECK(width == out && groups == 1, "BasicBlock: expected width == out and groups 1, found ", width, ", ",
                 out, ", ", groups);
    conv1 = register_module("conv1", std::make_shared<Conv2d>(in, out, 3, stride, 1, false));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(out));
    conv2 = register_module("conv2", std::make_shared<Conv2d>(out, out, 3, 1, 1, false));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(out));
  }
  relu = register_module("relu", std::make_shared<Activation>(Act::ReLU));
  if (ds)
    downsample = register_module(
        "downsample", std::make_shared<Sequential>(std::vector<ModulePtr>{
                          std::make_shared<Conv2d>(in, out, 1, stride, 0, false), std::make_shared<BatchNorm2d>(out)}));
}

Tensor ResBlock::forward(const Tensor& x, TapContext& ctx) {
  Tensor y = (*relu)((*bn1)((*conv1)(x, ctx), ctx), ctx);
  y = (*bn2)((*conv2)(y, ctx), ctx);
  if (bottleneck) y = (*bn3)((*conv3)((*relu)(y, ctx), ctx), ctx);
  Tensor id = downsample ? (*downsample)(x, ctx) : x;
  return (*relu)(add(y, id), ctx);
}

void ResBlock::fold_batchnorm() {
  if (!bn1->folded()) bn1->fold_into(*conv1);
  if (!bn2->folded()) bn2->fold_into(*conv2);
  if (bottleneck && !bn3->folded()) bn3->fold_into(*conv3);
  if (downsample) downsample->fold_batchnorm();
}

ResNetSpec resnet_spec(const std::string& name) {
  ResNetSpec sp;
  if (name == "resnet18") {
    sp.bottleneck = false;
    sp.blocks = {2, 2, 2, 2};
  } else if (name == "resnet34") {
    sp.bottleneck = false;
    sp.blocks = {3, 4, 6, 3};
  } else if (name == "resnet50") {
    sp.blocks = {3, 4, 6, 3};
  } else if (name == "resnet101") {
    sp.blocks = {3, 4, 23, 3};
  } else if (name == "resnet152") {
    sp.blocks = {3, 8, 36, 3};
  } else {
    throw Error("resnet_spec: expected resnet18, resnet34, resnet50, resnet101 or resnet152, found '" + name + "'");
  }
  return sp;
}

ResNetSpec resnet_spec(const Shapes& s) {
  ResNetSpec sp;
  sp.stem = shape_of(s, "conv1.weight", "resnet")[0];
  sp.bottleneck = s.count("layer1.0.conv3.weight") != 0;
  sp.blocks.clear();
  sp.planes.clear();
  for (int64_t L = 1;; ++L) {
    const std::string p = "layer" + std::to_string(L);
    const auto b = indices(s, p, "conv1.weight");
    if (b.empty()) break;
    CORTEX_CHECK(b.front() == 0 && b.back() == static_cast<int64_t>(b.size()) - 1, "resnet: blocks of ", p,
                 " are not numbered 0..", b.size() - 1);
    sp.blocks.push_back(static_cast<int64_t>(b.size()));
    // Output channels of the stage: conv3 (bottleneck, = planes * 4) or conv2 (basic, = planes).
    const Shape& o = shape_of(s, p + ".0." + (sp.bottleneck ? "conv3" : "conv2") + ".weight", "resnet");
    sp.planes.push_back(sp.bottleneck ? o[0] / 4 : o[0]);
    if (L == 1 && sp.bottleneck) {
      const Shape& w1 = shape_of(s, p + ".0.conv1.weight", "resnet");
      const Shape& w2 = shape_of(s, p + ".0.conv2.weight", "resnet");
      sp.groups = w1[0] / w2[1];
      sp.width_per_group = w1[0] * 64 / (sp.planes[0] * sp.groups);
    }
  }
  CORTEX_CHECK(!sp.blocks.empty(), "resnet: expected weights layer1.0.conv1.weight, found none");
  sp.num_classes = shape_of(s, "fc.weight", "resnet")[0];
  return sp;
}

ResNet::ResNet(const ResNetSpec& sp) {
  CORTEX_CHECK(!sp.blocks.empty() && sp.blocks.size() == sp.planes.size(),
               "ResNet: expected as many block counts as stage widths, found ", sp.blocks.size(), " and ",
               sp.planes.size());
  conv1 = register_module("conv1", std::make_shared<Conv2d>(3, sp.stem, 7, 2, 3, false));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(sp.stem));
  relu = register_module("relu", std::make_shared<Activation>(Act::ReLU));
  maxpool = register_module("maxpool", std::make_shared<MaxPool2d>(3, 2, 1));
  const int64_t expansion = sp.bottleneck ? 4 : 1;
  int64_t in = sp.stem;
  for (size_t L = 0; L < sp.blocks.size(); ++L) {
    CORTEX_CHECK(sp.blocks[L] > 0 && sp.planes[L] > 0, "ResNet: expected positive blocks and widths in stage ", L + 1);
    auto stage = std::make_shared<Sequential>();
    const int64_t planes = sp.planes[L], out = planes * expansion;
    const int64_t width = sp.bottleneck ? planes * sp.width_per_group / 64 * sp.groups : planes;
    for (int64_t b = 0; b < sp.blocks[L]; ++b) {
      const int64_t stride = (L > 0 && b == 0) ? 2 : 1;
      const bool ds = b == 0 && (stride != 1 || in != out);
      stage->push_back(std::make_shared<ResBlock>(sp.bottleneck, in, width, out, stride, sp.bottleneck ? sp.groups : 1, ds));
      in = out;
    }
    layers.push_back(register_module("layer" + std::to_string(L + 1), stage));
  }
  avgpool = register_module("avgpool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
  fc = register_module("fc", std::make_shared<Linear>(in, sp.num_classes));
  set_name("");
}

Tensor ResNet::forward(const Tensor& x, TapContext& ctx) {
  check_image("ResNet", x);
  Tensor y = (*maxpool)((*relu)((*bn1)((*conv1)(x, ctx), ctx), ctx), ctx);
  for (auto& stage : layers) {
    if (ctx.done()) return y;
    y = (*stage)(y, ctx);
  }
  if (ctx.done()) return y;
  y = (*avgpool)(y, ctx);
  return (*fc)(y.flatten(1), ctx);
}

void ResNet::fold_batchnorm() {
  if (!bn1->folded()) bn1->fold_into(*conv1);
  for (auto& s : layers) s->fold_batchnorm();
}

}  // namespace cortex::models
