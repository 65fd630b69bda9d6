// models/readouts/train: a planted linear map is recovered; a run interrupted twice and resumed
// from its checkpoint ends bit-for-bit where an uninterrupted run ends; planted Gaussian readout
// positions are recovered on smooth synthetic feature maps; the conv core + Gaussian readout
// trains; batching, Pearson r and option errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "models/cnn.h"
#include "models/readouts/train.h"
#include "tensor/io/safetensors.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::models;
using cortex::testing::allclose;
namespace fs = std::filesystem;

using cortex::testing::TempDir;

namespace {

Tensor rnd32(const Shape& s, uint64_t seed) { return cortex::testing::randn(s, seed, DType::Float32); }

// Smooth maps: white noise at 4x4 upsampled bilinearly to 16x16 (correlation length ~ 1/4 of the map).
Tensor smooth_maps(int64_t b, int64_t c, uint64_t seed) {
  NoGradGuard ng;
  return resize_bilinear(rnd32({b, c, 4, 4}, seed), 16, 16, true).contiguous();
}

}  // namespace

TEST(Train, MeanPearsonAndBatches) {
  Tensor p = from_vector(std::vector<double>{1, 5, 2, 5, 3, 5}, {3, 2});
  Tensor t = from_vector(std::vector<double>{2, 1, 4, 2, 6, 3}, {3, 2});
  EXPECT_NEAR(mean_pearson_r(p, t), 0.5, 1e-12);  // column 0: r = 1; column 1 constant: 0
  auto src = in_memory_batches({rnd32({10, 2}, 1)}, rnd32({10, 1}, 2), 4, true, 3);
  EXPECT_EQ(src.n_batches, 3);
  EXPECT_EQ(src.get(0, 2).y.size(0), 2);
  EXPECT_TRUE(allclose(src.get(5, 1).y, src.get(5, 1).y, 0, 0));
  EXPECT_FALSE(allclose(src.get(0, 0).y, src.get(1, 0).y, 0, 0)) << "epochs are shuffled differently";
  EXPECT_CORTEX_ERROR(in_memory_batches({rnd32({9, 2}, 1)}, rnd32({10, 1}, 2), 4, true), "with 10 rows");
  LinearEncoder m(2, 1);
  TrainOptions o;
  o.max_epochs = 0;
  EXPECT_CORTEX_ERROR(train_readout(m, src, src, o), "max_epochs > 0");
  o.max_epochs = 1;
  o.resume = true;
  EXPECT_CORTEX_ERROR(train_readout(m, src, src, o), "checkpoint path to resume");
}

TEST(Train, RecoversAPlantedLinearMap) {
  const int64_t N = 640, P = 8, V = 3;
  Tensor X = rnd32({N, P}, 1), W = rnd32({V, P}, 2), b = rnd32({V}, 3);
  Tensor Y;
  {
    NoGradGuard ng;
    Y = linear(X, W, b) + 0.01 * rnd32({N, V}, 4);
  }
  auto tr = in_memory_batches({X.narrow(0, 0, 512)}, Y.narrow(0, 0, 512), 32, true, 5);
  auto va = in_memory_batches({X.narrow(0, 512, 128)}, Y.narrow(0, 512, 128), 128, false);
  LinearEncoder m(P, V, 6);
  TrainOptions o;
  o.max_epochs = 60;
  o.lr = 0.05;
  o.patience = 60;
  int calls = 0;
  o.progress = [&](const EpochReport&) { ++calls; };
  auto res = train_readout(m, tr, va, o);
  EXPECT_TRUE(res.finished);
  EXPECT_EQ(calls, res.epochs);
  EXPECT_GT(res.best_r, 0.999);
  EXPECT_TRUE(allclose(m.fc->weight, W, 0, 0.02));
  EXPECT_TRUE(allclose(m.fc->bias, b, 0, 0.02));
}

TEST(Train, ResumeGivesExactlyTheUninterruptedResult) {
  // A Gaussian readout in training mode draws sampling noise, so the generator offset, Adam's
  // moments, the best snapshot and the early-stopping counters must all survive the checkpoint.
  const int64_t B = 96, C = 3, N = 4;
  Tensor maps = smooth_maps(B, C, 10);
  GaussianReadout truth({C, 16, 16}, N, GaussSigma::Isotropic, 0.1, false, {}, 11);
  Tensor Y;
  {
    NoGradGuard ng;
    truth.features = rnd32({N, C}, 12);
    Y = truth.read({maps}) + 0.1 * rnd32({B, N}, 13);
  }
  auto tr = in_memory_batches({maps.narrow(0, 0, 64)}, Y.narrow(0, 0, 64), 16, true, 14);
  auto va = in_memory_batches({maps.narrow(0, 64, 32)}, Y.narrow(0, 64, 32), 32, false);
  TempDir dir;
  TrainOptions o;
  o.max_epochs = 7;
  o.lr = 0.02;
  o.optim = OptimKind::AdamW;
  o.weight_decay = 1e-3;
  o.penalty_weight = 1e-3;
  o.patience = 100;
  o.seed = 42;
  o.checkpoint = (dir / "a.safetensors");
  GaussianReadout a({C, 16, 16}, N, GaussSigma::Full, 0.1, false, {}, 15);
  auto ra = train_readout(a, tr, va, o);
  ASSERT_TRUE(ra.finished);
  ASSERT_EQ(ra.epochs, 7);

  o.checkpoint = (dir / "b.safetensors");
  o.resume = true;
  o.stop_after = 3;
  int64_t done = 0;
  std::vector<EpochReport> tail;
  for (int attempt = 0; attempt < 3; ++attempt) {
    // A fresh model each time, as a restarted process would build it.
    GaussianReadout b({C, 16, 16}, N, GaussSigma::Full, 0.1, false, {}, 15);
    auto rb = train_readout(b, tr, va, o);
    done = rb.epochs;
    tail.insert(tail.end(), rb.history.begin(), rb.history.end());
    if (rb.finished) {
      EXPECT_EQ(attempt, 2);
      EXPECT_EQ(rb.best_r, ra.best_r);
      EXPECT_EQ(rb.best_epoch, ra.best_epoch);
      auto pa = a.named_tensors(), pb = b.named_tensors();
      ASSERT_EQ(pa.size(), pb.size());
      for (size_t k = 0; k < pa.size(); ++k)
        EXPECT_TRUE(allclose(*pb[k].second, *pa[k].second, 0, 0)) << pa[k].first;
    }
  }
  EXPECT_EQ(done, 7);
  ASSERT_EQ(tail.size(), ra.history.size());
  for (size_t e = 0; e < tail.size(); ++e) {
    EXPECT_EQ(tail[e].train_loss, ra.history[e].train_loss) << "epoch " << e;
    EXPECT_EQ(tail[e].val_r, ra.history[e].val_r) << "epoch " << e;
  }
  // A checkpoint made with another seed is refused.
  o.seed = 43;
  GaussianReadout c({C, 16, 16}, N, GaussSigma::Full, 0.1, false, {}, 15);
  EXPECT_CORTEX_ERROR(train_readout(c, tr, va, o), "made with seed 42");
}

TEST(Train, RecoversPlantedGaussianPositions) {
  // Stated tolerance: every learned position within 0.02 (in [-1, 1] map units, 0.15 pixel of the
  // 16x16 map) of the planted one.
  const int64_t B = 768, C = 4, N = 6;
  Tensor maps = smooth_maps(B, C, 20);
  GaussianReadout truth({C, 16, 16}, N, GaussSigma::Isotropic, 0.1, false, {}, 21);
  const std::vector<double> planted{-0.5, -0.4, 0.45, -0.3, 0.0, 0.5, -0.3, 0.2, 0.3, 0.35, 0.1, -0.55};
  Tensor Y;
  {
    NoGradGuard ng;
    truth.mu = from_vector(planted, {N, 2}).to(DType::Float32);
    truth.features = rnd32({N, C}, 22);
    Y = truth.read({maps}) + 0.05 * rnd32({B, N}, 23);
  }
  auto tr = in_memory_batches({maps.narrow(0, 0, 640)}, Y.narrow(0, 0, 640), 64, true, 24);
  auto va = in_memory_batches({maps.narrow(0, 640, 128)}, Y.narrow(0, 640, 128), 128, false);
  GaussianReadout m({C, 16, 16}, N, GaussSigma::Isotropic, 0.3, false, {}, 25);
  TrainOptions o;
  o.max_epochs = 80;
  o.lr = 0.03;
  o.patience = 15;
  auto res = train_readout(m, tr, va, o);
  EXPECT_GT(res.best_r, 0.9);
  auto mu = m.mu.to_vector<float>();
  for (int64_t n = 0; n < N; ++n) {
    const double d = std::hypot(mu[2 * n] - planted[2 * n], mu[2 * n + 1] - planted[2 * n + 1]);
    EXPECT_LT(d, 0.02) << "neuron " << n << " at (" << mu[2 * n] << ", " << mu[2 * n + 1] << ")";
  }
}

TEST(Train, ConvCoreWithGaussianReadoutTrains) {
  const int64_t B = 128, N = 3;
  Tensor imgs = smooth_maps(B, 1, 30);
  Tensor Y;
  {
    NoGradGuard ng;
    // Responses: rectified local contrast at three places, Poisson-like positive rates.
    GaussianReadout t({1, 16, 16}, N, GaussSigma::Isotropic, 0.1, false, {}, 31);
    t.mu = from_vector(std::vector<double>{-0.5, 0.0, 0.5, 0.5, 0.0, -0.5}, {N, 2}).to(DType::Float32);
    t.features = ones({N, 1});
    Y = elu(t.read({imgs})) + 1.0;
  }
  ConvGaussianModel m(1, 4, 2, 3, 16, 16, N, GaussSigma::Isotropic, true, 32);
  std::vector<std::string> names;
  for (auto& [n, p] : m.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"core.0.weight", "core.0.bias", "core.1.weight", "core.1.bias",
                                              "readout.mu", "readout.sigma", "readout.features", "readout.bias"}));
  auto tr = in_memory_batches({imgs.narrow(0, 0, 96)}, Y.narrow(0, 0, 96), 32, true, 33);
  auto va = in_memory_batches({imgs.narrow(0, 96, 32)}, Y.narrow(0, 96, 32), 32, false);
  TrainOptions o;
  o.max_epochs = 30;
  o.lr = 0.01;
  o.loss = LossKind::Poisson;
  o.patience = 30;
  auto res = train_readout(m, tr, va, o);
  EXPECT_GT(res.history.front().train_loss, res.history.back().train_loss);
  EXPECT_GT(res.best_r, 0.5);
}

TEST(Train, LrScaleGroupsAndFreezes) {
  // Adam's first step moves every parameter by lr * scale (m / sqrt(v) = sign(g) when the moments
  // hold one gradient), so one batch, one epoch shows each group's rate exactly; a frozen
  // parameter does not move, and the checkpoint holds neither it nor its optimizer state.
  const int64_t B = 16;
  Tensor X = rnd32({B, 5}, 60), Y = rnd32({B, 2}, 61);
  auto src = in_memory_batches({X}, Y, B, false);
  TempDir dir;
  TwoLayerEncoder m(5, 4, 2, 62);
  const Tensor w1 = m.fc1->weight.clone(), w2 = m.fc2->weight.clone(), b2 = m.fc2->bias.clone();
  TrainOptions o;
  o.max_epochs = 1;
  o.lr = 0.01;
  o.checkpoint = dir / "ck.safetensors";
  o.lr_scale = [](const std::string& n) { return n.rfind("fc1.", 0) == 0 ? 0.0 : n == "fc2.weight" ? 0.5 : 1.0; };
  train_readout(m, src, src, o);
  EXPECT_TRUE(allclose(m.fc1->weight, w1, 0, 0));
  const auto dw = (m.fc2->weight - w2).to(DType::Float64).to_vector<double>();
  const auto db = (m.fc2->bias - b2).to(DType::Float64).to_vector<double>();
  for (double d : dw) EXPECT_NEAR(std::abs(d), 0.005, 1e-6);
  for (double d : db) EXPECT_NEAR(std::abs(d), 0.01, 1e-6);
  const auto ck = io::load_safetensors(o.checkpoint);
  EXPECT_EQ(ck.count("model/fc1.weight"), 0u);
  EXPECT_EQ(ck.count("model/fc2.weight"), 1u);
  EXPECT_EQ(ck.count("optim1/lr"), 1u);  // the second group (scale 1: fc2.bias)
  // A resume with another grouping is refused instead of loading mismatched moments.
  o.resume = true;
  o.max_epochs = 2;
  o.lr_scale = nullptr;
  TwoLayerEncoder m2(5, 4, 2, 62);
  EXPECT_CORTEX_ERROR(train_readout(m2, src, src, o), "checkpoint");
  o.lr_scale = [](const std::string&) { return -1.0; };
  o.resume = false;
  o.checkpoint.clear();
  EXPECT_CORTEX_ERROR(train_readout(m2, src, src, o), "lr_scale >= 0");
}

TEST(Train, BackboneReadoutFineTunesOnlyWhatTheTapsUse) {
  // A small ResNet tapped at layer1: the stem and layer1 get gradients, the later stages none.
  ResNetSpec spec;
  spec.bottleneck = false;
  spec.blocks = {1, 1};
  spec.planes = {8, 16};
  spec.stem = 8;
  spec.num_classes = 3;
  auto bb = std::make_shared<ResNet>(spec);
  init_random(*bb, 70);
  auto ro = std::make_shared<GaussianReadout>(MapShape{8, 8, 8}, 3, GaussSigma::Isotropic, 0.1, false,
                                              std::vector<int64_t>{}, 71);
  BackboneReadout net(bb, {"layer1"}, ro);
  net.requires_grad(true);
  net.train(true);
  const Tensor out = net.read({rnd32({2, 3, 32, 32}, 72)});
  ASSERT_EQ(out.shape(), (Shape{2, 3}));
  EXPECT_FALSE(bb->training()) << "the backbone stays in evaluation mode";
  backward(sum(out));
  int used = 0, unused = 0;
  for (auto& [n, t] : net.named_parameters()) {
    const bool got = grad_of(*t).defined();
    if (n.rfind("backbone.layer2", 0) == 0 || n.rfind("backbone.fc", 0) == 0) {
      EXPECT_FALSE(got) << n;
      ++unused;
    } else {
      EXPECT_TRUE(got) << n;
      ++used;
    }
  }
  EXPECT_GT(used, 4);
  EXPECT_GT(unused, 4);
  EXPECT_CORTEX_ERROR(net.read({rnd32({2, 3, 32}, 73)}), "image batch");
}

TEST(Train, RetinotopicMLPLearnsPositionsFromCoordinates) {
  // 40 neurons whose planted positions are a smooth (linear) map of their 2-D "cortical"
  // coordinates; the MLP readout learns the map from the responses. Stated tolerance: median
  // position error below 0.05 map units (0.4 pixel of the 16x16 map).
  const int64_t B = 768, C = 4, N = 40;
  Tensor maps = smooth_maps(B, C, 80);
  const Tensor coords = rnd32({N, 2}, 81);
  const auto cv = coords.to(DType::Float64).to_vector<double>();
  std::vector<double> planted;
  for (int64_t n = 0; n < N; ++n) {
    planted.push_back(std::clamp(0.35 * cv[2 * n] - 0.1 * cv[2 * n + 1], -0.8, 0.8));
    planted.push_back(std::clamp(0.1 * cv[2 * n] + 0.3 * cv[2 * n + 1], -0.8, 0.8));
  }
  GaussianReadout truth({C, 16, 16}, N, GaussSigma::Isotropic, 0.1, false, {}, 82);
  Tensor Y;
  {
    NoGradGuard ng;
    truth.mu = from_vector(planted, {N, 2}).to(DType::Float32);
    truth.features = rnd32({N, C}, 83);
    Y = truth.read({maps}) + 0.05 * rnd32({B, N}, 84);
  }
  auto tr = in_memory_batches({maps.narrow(0, 0, 640)}, Y.narrow(0, 0, 640), 64, true, 85);
  auto va = in_memory_batches({maps.narrow(0, 640, 128)}, Y.narrow(0, 640, 128), 128, false);
  GaussianReadout m({C, 16, 16}, N, GaussSigma::Isotropic, 0.3, false, {}, 86, PositionMLP{coords, 16, 1});
  auto median_error = [&] {
    NoGradGuard ng;
    const auto mu = m.mean_positions().to(DType::Float64).to_vector<double>();
    std::vector<double> err;
    for (int64_t n = 0; n < N; ++n)
      err.push_back(std::hypot(mu[2 * n] - planted[2 * n], mu[2 * n + 1] - planted[2 * n + 1]));
    std::sort(err.begin(), err.end());
    return err[N / 2];
  };
  const double before = median_error();
  TrainOptions o;
  o.max_epochs = 80;
  o.lr = 0.01;
  o.patience = 15;
  auto res = train_readout(m, tr, va, o);
  EXPECT_GT(res.best_r, 0.9);
  const double after = median_error();
  std::printf("retinotopic MLP: median position error %.4f (%.4f before training), best val r %.3f\n", after, before,
              res.best_r);
  EXPECT_LT(after, 0.05);
  EXPECT_GT(before, 0.1) << "the initial positions should be far off (the check can fail)";
}
