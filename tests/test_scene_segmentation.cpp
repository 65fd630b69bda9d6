// Oracle figure-ground mIoU per layer on simulated scenes, end to end: scenes with known masks
// (data/scenes.h) -> a random-weights AlexNet (small widths) -> each ReLU tap's features -> Nystrom
// Ncut eigenvectors (analysis/spectral) -> oracle mIoU against the masks downsampled to the tap's
// grid by area majority (analysis/segmentation.h). Issue 18 asks the best layer to reach 0.6.
// The control scores the same eigenvectors against the masks of other scenes (chance level: about
// the background fraction for the background class): it must fall by at least 0.05.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>

#include "analysis/segmentation.h"
#include "analysis/spectral/ncut.h"
#include "autograd/autograd.h"
#include "data/scenes.h"
#include "models/cnn.h"
#include "models/vit.h"
#include "tensor/io/image.h"

using namespace cortex;

TEST(SceneSegmentation, RandomAlexNetFigureGroundOracle) {
  const auto t0 = std::chrono::steady_clock::now();
  data::SceneConfig c;
  c.images = 12, c.size = 128, c.classes = 3, c.seed = 5;
  const data::Scenes s = data::simulate_scenes(c);
  c.seed = 6;
  const data::Scenes other = data::simulate_scenes(c);
  models::AlexNetSpec spec;
  spec.channels = {32, 64, 96, 64, 64};
  spec.hidden1 = spec.hidden2 = 16, spec.num_classes = 10;
  models::AlexNet net(spec);
  models::init_random(net, 1);
  const Tensor x = io::normalize(io::to_float_chw(s.images), io::kImageNetMean, io::kImageNetStd);
  const std::vector<std::string> taps = {"features.1", "features.4", "features.7", "features.9", "features.11"};
  std::map<std::string, Tensor> f;
  {
    NoGradGuard ng;
    f = net.Backbone::features(x, taps);
  }
  double best = 0, best_control = 0;
  std::string best_tap;
  for (const auto& tap : taps) {
    const Tensor& ft = f.at(tap);  // (N, C, h, w)
    const int64_t h = ft.size(2), w = ft.size(3);
    analysis::spectral::NcutOptions o;
    o.k = 20, o.samples = 1500, o.knn = 10, o.seed = 0;
    const Tensor v = analysis::spectral::ncut(ft, o).eigenvectors;  // (N h w, k), node (b, i, j)
    const analysis::OracleResult r = analysis::oracle_miou(v, analysis::downsample_mask(s.figure, h, w));
    const analysis::OracleResult q = analysis::oracle_miou(v, analysis::downsample_mask(other.figure, h, w));
    // Categories (background + 3 classes): reported, not asserted (issue 18 asserts figure-ground).
    const analysis::OracleResult cat = analysis::oracle_miou(v, analysis::downsample_mask(s.labels, h, w));
    std::printf("[ scene ] %-12s grid %3lldx%-3lld figure-ground oracle mIoU %.3f (bg %.3f, fg %.3f, tau %.2f/%.2f); "
                "control (other scenes' masks) %.3f; categories %.3f\n",
                tap.c_str(), static_cast<long long>(h), static_cast<long long>(w), r.miou, r.iou[0], r.iou[1],
                r.best_threshold[0], r.best_threshold[1], q.miou, cat.miou);
    if (r.miou > best) best = r.miou, best_tap = tap, best_control = q.miou;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ scene ] best layer %s: oracle mIoU %.3f, control %.3f (%.1f s)\n", best_tap.c_str(), best, best_control,
              secs);
  EXPECT_GE(best, 0.6);
  // Other seeds (1, 2, 3, 6) give best 0.66-0.74 with controls 0.57-0.61 (docs/alignedcut.md).
  EXPECT_LT(best_control, best - 0.05);
}

// The same on a small random-weights ViT (torchvision layout, dim 64, 4 blocks, patch 8: a 16x16
// grid at every block). Each patch's linear embedding keeps its colour and grating, so every block
// separates well (0.74-0.79 figure-ground, about 0.9 categories, docs/alignedcut.md).
TEST(SceneSegmentation, RandomViTFigureGroundOracle) {
  data::SceneConfig c;
  c.images = 12, c.size = 128, c.classes = 3, c.seed = 5;
  const data::Scenes s = data::simulate_scenes(c);
  c.seed = 6;
  const data::Scenes other = data::simulate_scenes(c);
  models::ViTSpec spec;
  spec.dim = 64, spec.depth = 4, spec.heads = 4, spec.mlp_hidden = 128, spec.patch = 8, spec.pos_grid = 16;
  models::ViT net(spec);
  models::init_random(net, 1);
  const Tensor x = io::normalize(io::to_float_chw(s.images), io::kImageNetMean, io::kImageNetStd);
  std::vector<std::string> taps;
  for (int i = 0; i < 4; ++i) taps.push_back("encoder.layers.encoder_layer_" + std::to_string(i) + ":grid");
  std::map<std::string, Tensor> f;
  {
    NoGradGuard ng;
    f = net.Backbone::features(x, taps);
  }
  double best = 0, best_control = 0;
  for (const auto& tap : taps) {
    const Tensor& ft = f.at(tap);  // (N, C, 16, 16)
    analysis::spectral::NcutOptions o;
    o.k = 20, o.samples = 1500, o.knn = 10, o.seed = 0;
    const Tensor v = analysis::spectral::ncut(ft, o).eigenvectors;
    const int64_t h = ft.size(2), w = ft.size(3);
    const analysis::OracleResult r = analysis::oracle_miou(v, analysis::downsample_mask(s.figure, h, w));
    const analysis::OracleResult q = analysis::oracle_miou(v, analysis::downsample_mask(other.figure, h, w));
    const analysis::OracleResult cat = analysis::oracle_miou(v, analysis::downsample_mask(s.labels, h, w));
    std::printf("[ scene ] vit %-40s figure-ground %.3f, control %.3f, categories %.3f\n", tap.c_str(), r.miou, q.miou,
                cat.miou);
    if (r.miou > best) best = r.miou, best_control = q.miou;
  }
  EXPECT_GE(best, 0.6);
  EXPECT_GT(best, best_control + 0.1);
}
