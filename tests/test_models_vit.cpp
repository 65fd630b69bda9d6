// ViT in four layouts from PyTorch-made weights (tests/data/make_fixtures.py): torchvision vit,
// OpenAI CLIP visual tower (prefix "visual.", QuickGELU, text keys ignored), timm DINOv2 with
// layer scale and register tokens run at another image size (position grid resampled, bicubic
// with antialias as timm) and without registers, DINOv2's torch.hub names (register_tokens,
// mask_token ignored), MAE (decoder keys ignored). Every module output,
// the attention outputs without residual, and token grids match PyTorch to rel. error 1e-4.
#include <gtest/gtest.h>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "models/vit.h"
#include "tests/model_fixtures.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::models;
using cortex::testing::check_all_taps;
using cortex::testing::load_fixture;
using cortex::testing::rel_error;

namespace {

TEST(ModelsVit, TorchvisionMatchesPyTorch) { check_all_taps("vit_torchvision"); }
TEST(ModelsVit, ClipMatchesPyTorch) { check_all_taps("clip"); }
TEST(ModelsVit, Dinov2RegistersResampledMatchesPyTorch) { check_all_taps("dinov2_reg"); }
TEST(ModelsVit, Dinov2MatchesPyTorch) { check_all_taps("dinov2"); }
TEST(ModelsVit, MaeMatchesPyTorch) { check_all_taps("mae"); }
// timm global_pool="avg" (MAE fine-tuned): fc_norm of the mean patch token, then the head.
TEST(ModelsVit, MaeAvgPoolHeadMatchesPyTorch) { check_all_taps("mae_avgpool"); }
// DINOv2's own (torch.hub) names: register_tokens and mask_token, registers inserted after the
// position embedding is added to the class and patch tokens; run at 20 px with the hub code's own
// resampling of the position grid (scale factor with offset 0.1, no antialias).
TEST(ModelsVit, Dinov2HubNamesMatchPyTorch) { check_all_taps("dinov2_hub"); }

TEST(ModelsVit, SpecsFromShapes) {
  auto r = load_fixture("dinov2_reg");
  auto vit = std::dynamic_pointer_cast<ViT>(r.model);
  ASSERT_TRUE(vit);
  EXPECT_EQ(vit->spec.num_register_tokens, 2);
  EXPECT_EQ(vit->spec.pos_prefix, 0);  // timm no_embed_class
  EXPECT_TRUE(vit->spec.layer_scale);
  EXPECT_EQ(vit->spec.patch, 4);
  EXPECT_EQ(vit->spec.pos_grid, 4);
  auto h = std::dynamic_pointer_cast<ViT>(load_fixture("dinov2_hub").model);
  EXPECT_EQ(h->spec.pos_prefix, 1);  // the class token only
  EXPECT_EQ(h->spec.num_register_tokens, 2);
  auto c = load_fixture("clip");
  auto clip = std::dynamic_pointer_cast<ViT>(c.model);
  EXPECT_EQ(clip->spec.act, Act::QuickGELU);
  EXPECT_EQ(clip->preprocess(), Preprocess::Clip);
  EXPECT_EQ(clip->spec.num_classes, 8);  // proj width
}

// Bicubic resampling rows sum to one (constants are kept), and the identity size is the identity.
TEST(ModelsVit, BicubicMatrix) {
  for (bool aa : {false, true}) {
    Tensor m = bicubic_matrix(4, 7, aa);
    Tensor rows = sum(m, {1});
    EXPECT_TRUE(cortex::testing::allclose(rows, ones({7}, DType::Float64), 1e-12, 1e-12));
    EXPECT_TRUE(cortex::testing::allclose(bicubic_matrix(5, 5, aa), eye(5, -1, DType::Float64), 1e-12, 1e-12));
  }
}

TEST(ModelsVit, EarlyStopGridAndErrors) {
  auto r = load_fixture("vit_torchvision");
  Tensor x = r.io.at("input");
  auto f = r.model->features(x, {"encoder.layers.encoder_layer_0.self_attention"}, true);
  EXPECT_EQ(f.count("output"), 0u);
  EXPECT_LE(rel_error(f.begin()->second, r.io.at("encoder.layers.encoder_layer_0.self_attention")), 1e-4);
  auto g = r.model->features(x, {"encoder.layers.encoder_layer_1:grid"}, true);
  EXPECT_EQ(g.at("encoder.layers.encoder_layer_1:grid").shape(), (Shape{2, 16, 4, 4}));
  EXPECT_CORTEX_ERROR(r.model->features(x, {"heads.head:grid"}), "is not a token sequence");
  EXPECT_CORTEX_ERROR((*r.model)(zeros({1, 3, 4, 4})), "H, W >= patch 8");
  // A DINOv2 config that disagrees with the weights about registers.
  auto cfg = config_from_file(cortex::testing::model_fixture("dinov2_reg.json"));
  cfg.num_register_tokens = 4;
  EXPECT_CORTEX_ERROR(load_backbone(cfg, cortex::testing::model_fixture("dinov2_reg.safetensors")),
                      "the weights hold 2");
  cfg = config_from_file(cortex::testing::model_fixture("dinov2_reg.json"));
  cfg.patch_size = 14;
  EXPECT_CORTEX_ERROR(load_backbone(cfg, cortex::testing::model_fixture("dinov2_reg.safetensors")),
                      "patch embedding has 4");
  // A CLIP checkpoint loaded without its prefix: nothing of the visual tower is found.
  auto clip_cfg = config_from_file(cortex::testing::model_fixture("clip.json"));
  clip_cfg.prefix = "";
  EXPECT_CORTEX_ERROR(load_backbone(clip_cfg, cortex::testing::model_fixture("clip.safetensors")),
                      "'class_embedding'");
}

}  // namespace

namespace {

// Gradients flow to the position embedding through the bicubic resampling and to the registers.
TEST(ModelsVit, GradientsReachEmbeddings) {
  auto r = load_fixture("dinov2_reg");
  r.model->requires_grad(true);
  backward(sum((*r.model)(r.io.at("input"))));
  for (auto& [k, t] : r.model->named_parameters()) {
    ASSERT_TRUE(grad_of(*t).defined()) << k;
    EXPECT_EQ(grad_of(*t).shape(), t->shape()) << k;
  }
}

}  // namespace
