// torchvision AlexNet, VGG11, VGG16-BN, ResNet (BasicBlock, Bottleneck with groups) built from the
// shapes of PyTorch-made weights (tests/data/make_fixtures.py): every module's output matches
// PyTorch's to rel. error 1e-4, early stop returns the tap without the output, batch-norm folding
// keeps the output, gradients reach every parameter in training mode, and unknown taps and wrong
// configs fail clearly.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "models/cnn.h"
#include "tests/model_fixtures.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::models;
using cortex::testing::check_all_taps;
using cortex::testing::load_fixture;
using cortex::testing::rel_error;

namespace {

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to(DType::Float64).to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

TEST(ModelsCnn, AlexNetMatchesPyTorch) { check_all_taps("alexnet"); }
TEST(ModelsCnn, Vgg11MatchesPyTorch) { check_all_taps("vgg11"); }
TEST(ModelsCnn, Vgg16BnMatchesPyTorch) { check_all_taps("vgg16_bn"); }
TEST(ModelsCnn, ResNetBasicMatchesPyTorch) { check_all_taps("resnet_basic"); }
TEST(ModelsCnn, ResNetBottleneckMatchesPyTorch) { check_all_taps("resnet_bottleneck"); }

TEST(ModelsCnn, SpecsReadFromShapes) {
  auto r = load_fixture("vgg16_bn");
  auto vgg = std::dynamic_pointer_cast<VGG>(r.model);
  ASSERT_TRUE(vgg);
  EXPECT_EQ(vgg->features->size(), 13u * 3 + 5);  // 13 conv+bn+relu, 5 pools, as vgg16_bn
  auto b = load_fixture("resnet_bottleneck");
  auto rn = std::dynamic_pointer_cast<ResNet>(b.model);
  ASSERT_TRUE(rn);
  EXPECT_EQ(rn->layers.size(), 4u);
  EXPECT_EQ(rn->layers[1]->size(), 2u);
  auto blk = std::dynamic_pointer_cast<ResBlock>(rn->layers[0]->child("0"));
  EXPECT_EQ(blk->conv2->params.groups, 2);
}

TEST(ModelsCnn, EarlyStopAndFolding) {
  auto r = load_fixture("resnet_basic");
  Tensor x = r.io.at("input");
  auto early = r.model->features(x, {"layer1.0"}, true);
  EXPECT_EQ(early.count("output"), 0u);  // stopped before the head
  EXPECT_EQ(r.model->features(x, {"layer1.0", "output"}, true).count("output"), 1u);
  // The fixture keeps a block's output under its last module's name (the final relu).
  EXPECT_LE(rel_error(early.at("layer1.0"), r.io.at("layer1.0.relu")), 1e-4);
  r.model->fold_batchnorm();
  auto folded = r.model->features(x, {"layer2.0", "output"}, false);
  EXPECT_LE(rel_error(folded.at("output"), r.io.at("output")), 1e-4);
  EXPECT_LE(rel_error(folded.at("layer2.0"), r.io.at("layer2.0.relu")), 1e-4);
}

TEST(ModelsCnn, Errors) {
  auto r = load_fixture("alexnet");
  EXPECT_CORTEX_ERROR(r.model->features(r.io.at("input"), {"features.99"}), "unknown tap 'features.99'");
  EXPECT_CORTEX_ERROR(r.model->features(r.io.at("input"), {"features.0:grid"}), "only ViTs have token grids");
  EXPECT_CORTEX_ERROR((*r.model)(zeros({1, 1, 63, 63})), "expected images (N, 3, H, W)");
  // AlexNet weights read as a ResNet: the missing key that sizes it is named.
  ModelConfig cfg;
  cfg.arch = "resnet";
  EXPECT_CORTEX_ERROR(load_backbone(cfg, cortex::testing::model_fixture("alexnet.safetensors")), "'conv1.weight'");
  EXPECT_CORTEX_ERROR(config_from_json("{\"arch\": \"lenet\"}"), "found 'lenet'");
  EXPECT_CORTEX_ERROR(config_from_json("{\"arch\": \"vit\", \"layout\": \"timm\"}"), "needs 'heads'");
  EXPECT_CORTEX_ERROR(config_from_json("{\"arch\": \"resnet\", \"depth\": 3}"), "unknown key 'depth'");
  EXPECT_CORTEX_ERROR(config_for_arch("resnet51"), "unknown architecture 'resnet51'");
}

}  // namespace

namespace {

// Fine-tuning: gradients reach every parameter through a ResNet in training mode (batch
// statistics), and d sum(output) / d fc.bias is the batch size in each class.
TEST(ModelsCnn, GradientsForFineTuning) {
  auto r = load_fixture("resnet_basic");
  r.model->train(true);
  r.model->requires_grad(true);
  Tensor x = r.io.at("input");
  backward(sum((*r.model)(x)));
  for (auto& [k, t] : r.model->named_parameters()) {
    Tensor g = grad_of(*t);
    ASSERT_TRUE(g.defined()) << k;
    EXPECT_EQ(g.shape(), t->shape()) << k;
    EXPECT_GT(max_abs(g), 0.0) << k;
  }
  auto rn = std::dynamic_pointer_cast<ResNet>(r.model);
  EXPECT_TRUE(cortex::testing::allclose(grad_of(rn->fc->bias), full({10}, 2.0), 1e-6, 1e-6));
}

}  // namespace
