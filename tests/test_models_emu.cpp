// Whole models on the emulated CUDA device (Device::emu(), ../shared/SIMT.md): the AlexNet, ResNet
// (Bottleneck) and ViT fixtures of tests/data (tests/data/make_fixtures.py) moved to the device with
// Module::to give every tap and the output of the same model on the CPU to rel. error 1e-4 (and
// PyTorch's, as tests/model_fixtures.h checks on the CPU); the ViT's jvp and vjp (autograd
// transforms) on emu give the CPU's; one epoch of Gaussian-readout training (two Adam steps and the
// validation pass of models/readouts/train) on emu gives the CPU's loss and parameters to 1e-5;
// DINOv2 with its position grid resampled runs there too; encoding::to_model_input (ToTensor +
// Normalize on the device) gives the host's bits; Module::to moves everything and back.
//
// The device kernels do not always do the CPU's arithmetic in the CPU's order (GEMM tiles, tree
// reductions), so the comparison is within a tolerance, not bit-identity: max |emu - cpu| /
// max |cpu| per tensor (tests/model_fixtures.h's rel_error).
//
// CORTEX_MODELS_DEVICE=cuda runs the same checks on a real GPU (scripts/gpu-check.sh).
//
// Strict device mode (kernels/dispatch.h) is the requirement: with kStrict every op of these models
// must run on the emulated device, a host fallback fails the test naming the op. Each test prints
// the fallbacks it saw (none in strict mode).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "encoding/features.h"
#include "kernels/dispatch.h"
#include "models/readouts/train.h"
#include "tensor/device.h"
#include "tensor/io/image.h"
#include "tensor/random.h"
#include "tests/model_fixtures.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::models;
namespace K = cortex::kernels;
using cortex::testing::load_fixture;
using cortex::testing::rel_error;

namespace {

// Strict device mode: no op of these models may fall back to the host on emu. Set false only to
// look at the values while a kernel is missing (each test prints the fallbacks it saw).
constexpr bool kStrict = true;

// The device under test: the emulated CUDA device, or with CORTEX_MODELS_DEVICE=cuda a real GPU
// (scripts/gpu-check.sh runs this test both ways).
Device device_under_test() {
  const char* e = std::getenv("CORTEX_MODELS_DEVICE");
  const std::string s = e ? e : "";
  if (s.empty() || s == "emu") return Device::emu();
  CORTEX_CHECK(s == "cuda", "CORTEX_MODELS_DEVICE: expected emu or cuda, found '", s, "'");
  return Device::cuda(0);
}
const Device kEmu = device_under_test();

class ModelsEmu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kEmu.is_cuda() && !cuda_available()) GTEST_SKIP() << "CORTEX_MODELS_DEVICE=cuda but no CUDA device";
    K::reset_fallback_stats();
    K::set_strict_device(kStrict);
  }
  void TearDown() override {
    K::set_strict_device(false);
    if (IsSkipped()) return;
    const auto fb = K::fallback_stats();
    std::string s;
    for (const auto& [op, n] : fb) s += " " + op + "(" + std::to_string(n) + ")";
    std::printf("[ fallbacks ] %s:%s\n", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                fb.empty() ? " none" : s.c_str());
  }
};

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to(Device::cpu()).to(DType::Float64).to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

double rel(const Tensor& got, const Tensor& want) { return rel_error(got.to(Device::cpu()), want.to(Device::cpu())); }

// The first n rows of every fixture tensor (batch 1 keeps the emulated run short).
std::map<std::string, Tensor> first_rows(const std::map<std::string, Tensor>& io, int64_t n) {
  std::map<std::string, Tensor> out;
  for (const auto& [k, t] : io) out[k] = t.narrow(0, 0, std::min<int64_t>(n, t.size(0))).contiguous();
  return out;
}

// Runs fixture `name` on the CPU and on emu (batch `batch`) with every tap and compares them.
void check_on_emu(const std::string& name, int64_t batch) {
  auto r = load_fixture(name);
  const auto io = first_rows(r.io, batch);
  auto taps = r.taps;
  taps.push_back("output");
  const Tensor x = io.at("input");
  NoGradGuard ng;
  const auto cpu = r.model->features(x, taps, false);
  r.model->to(kEmu);
  for (auto& [k, t] : r.model->named_tensors()) ASSERT_EQ(t->device(), kEmu) << name << ": " << k << " not moved";
  const auto emu = r.model->features(x.to(kEmu), taps, false);
  double worst = 0, worst_pt = 0;
  for (const auto& k : taps) {
    ASSERT_TRUE(emu.count(k)) << name << ": tap " << k << " missing";
    const Tensor& got = emu.at(k);
    ASSERT_EQ(got.device(), kEmu) << name << ": tap " << k;
    ASSERT_EQ(got.shape(), cpu.at(k).shape()) << name << ": tap " << k;
    const double e = rel(got, cpu.at(k));
    EXPECT_LE(e, 1e-4) << name << ": tap " << k << " on emu vs cpu, rel. error " << e;
    // And PyTorch's activation (the fixture), as on the CPU.
    const double p = rel(got, io.at(k));
    EXPECT_LE(p, 1e-4) << name << ": tap " << k << " on emu vs PyTorch, rel. error " << p;
    worst = std::max(worst, e);
    worst_pt = std::max(worst_pt, p);
  }
  std::printf("%s on %s, batch %lld: %zu taps + output, max rel. error %.2e vs cpu, %.2e vs PyTorch\n",
              name.c_str(), kEmu.str().c_str(), static_cast<long long>(batch), taps.size() - 1, worst, worst_pt);
}

TEST_F(ModelsEmu, AlexNetEqualsCpu) { check_on_emu("alexnet", 1); }
TEST_F(ModelsEmu, ResNetBottleneckEqualsCpu) { check_on_emu("resnet_bottleneck", 1); }
TEST_F(ModelsEmu, VitEqualsCpu) { check_on_emu("vit_torchvision", 2); }
// DINOv2 with registers run at another image size: the position grid is resampled on the device.
TEST_F(ModelsEmu, Dinov2ResampledPositionsEqualCpu) { check_on_emu("dinov2_reg", 1); }

// Forward and reverse mode through the ViT with respect to its input image: jvp with a random
// tangent, vjp with a random cotangent, on the CPU and on emu.
TEST_F(ModelsEmu, VitJvpAndVjpEqualCpu) {
  auto r = load_fixture("vit_torchvision");
  const Tensor x = r.io.at("input").narrow(0, 0, 1).contiguous();
  const Tensor t = cortex::testing::randn(x.shape(), 5, DType::Float32);
  Shape yshape;
  {
    NoGradGuard ng;
    yshape = (*r.model)(x).shape();
  }
  const Tensor v = cortex::testing::randn(yshape, 6, DType::Float32);
  auto model = r.model;
  const Fn f = [model](const std::vector<Tensor>& in) { return std::vector<Tensor>{(*model)(in[0])}; };

  const JvpResult jc = jvp(f, {x}, {t});
  const VjpResult vc = vjp(f, {x});
  const Tensor gc = vc.pullback({v})[0];

  model->to(kEmu);
  const JvpResult je = jvp(f, {x.to(kEmu)}, {t.to(kEmu)});
  const VjpResult ve = vjp(f, {x.to(kEmu)});
  const Tensor ge = ve.pullback({v.to(kEmu)})[0];

  ASSERT_EQ(je.tangents[0].device(), kEmu);
  ASSERT_EQ(ge.device(), kEmu);
  const double e_out = rel(je.outputs[0], jc.outputs[0]), e_jvp = rel(je.tangents[0], jc.tangents[0]);
  const double e_vout = rel(ve.outputs[0], vc.outputs[0]), e_vjp = rel(ge, gc);
  EXPECT_LE(e_out, 1e-4);
  EXPECT_LE(e_jvp, 1e-4);
  EXPECT_LE(e_vout, 1e-4);
  EXPECT_LE(e_vjp, 1e-4);
  // Not a vacuous comparison: the derivatives are not zero.
  EXPECT_GT(max_abs(gc), 0.0);
  EXPECT_GT(max_abs(jc.tangents[0]), 0.0);
  std::printf("vit jvp / vjp on emu: rel. error output %.2e, jvp %.2e, vjp %.2e\n", e_out, e_jvp, e_vjp);
}

// Smooth maps: white noise at 4x4 upsampled bilinearly to 12x12.
Tensor smooth_maps(int64_t b, int64_t c, uint64_t seed) {
  NoGradGuard ng;
  return resize_bilinear(cortex::testing::randn({b, c, 4, 4}, seed, DType::Float32), 12, 12, true).contiguous();
}

// One epoch of models/readouts/train on a Gaussian readout (full sigma, so the sampled positions go
// through a batched matmul; AdamW with weight decay and the L1 penalty): two training batches, so
// the second Adam step uses the first's moments, then the validation pass.
TEST_F(ModelsEmu, GaussianReadoutTrainingStepEqualsCpu) {
  const int64_t B = 16, C = 3, N = 5;
  const Tensor maps = smooth_maps(B, C, 40);
  const Tensor y = cortex::testing::randn({B, N}, 41, DType::Float32);
  TrainOptions o;
  o.max_epochs = 1;
  o.lr = 0.02;
  o.optim = OptimKind::AdamW;
  o.weight_decay = 1e-3;
  o.penalty_weight = 1e-3;
  struct Run {
    double loss = 0, r = 0;
    std::vector<std::pair<std::string, Tensor>> params;
  };
  auto run = [&](Device d) {
    GaussianReadout m({C, 12, 12}, N, GaussSigma::Full, 0.1, false, {}, 42);
    m.to(d);
    const Tensor md = maps.to(d), yd = y.to(d);
    auto tr = in_memory_batches({md.narrow(0, 0, 12)}, yd.narrow(0, 0, 12), 6, true, 43);
    auto va = in_memory_batches({md.narrow(0, 12, 4)}, yd.narrow(0, 12, 4), 4, false);
    Run out;
    const Tensor features0 = m.features.to(Device::cpu()).clone();
    const TrainResult res = train_readout(m, tr, va, o);
    EXPECT_GT(rel_error(m.features.to(Device::cpu()), features0), 1e-4) << "training did not move the features";
    EXPECT_EQ(res.history.size(), 1u);
    out.loss = res.history.at(0).train_loss;
    out.r = res.history.at(0).val_r;
    for (auto& [k, t] : m.named_tensors()) {
      EXPECT_EQ(t->device(), d) << k;
      out.params.emplace_back(k, t->to(Device::cpu()));
    }
    return out;
  };
  const Run cpu = run(Device::cpu());
  const Run emu = run(kEmu);
  EXPECT_NEAR(emu.loss, cpu.loss, 1e-5 * std::abs(cpu.loss));
  EXPECT_NEAR(emu.r, cpu.r, 1e-5);
  ASSERT_EQ(emu.params.size(), cpu.params.size());
  double worst = 0;
  for (size_t k = 0; k < cpu.params.size(); ++k) {
    const double e = rel_error(emu.params[k].second, cpu.params[k].second);
    EXPECT_LE(e, 1e-5) << cpu.params[k].first;
    worst = std::max(worst, e);
  }
  std::printf("gaussian readout epoch on emu: loss %.8g (cpu %.8g), max parameter rel. error %.2e\n", emu.loss,
              cpu.loss, worst);
}

// ToTensor + Normalize on the device (encoding::to_model_input, what cortex fit runs on a batch moved
// to the device as uint8): the same bits as the host's io::to_float_chw + io::normalize, for both
// statistics, batched and single images, and a strided (non-contiguous) batch.
TEST_F(ModelsEmu, InputPreprocessingOnDeviceIsBitIdentical) {
  Generator g(7);
  const Tensor imgs = randint(0, 256, {2, 9, 11, 3}, g, DType::Int32).to(DType::UInt8);
  for (auto stats : {Preprocess::ImageNet, Preprocess::Clip}) {
    const encoding::Preprocessing p{stats, 9, false};
    const bool clip = stats == Preprocess::Clip;
    const Tensor want = io::normalize(io::to_float_chw(imgs), clip ? io::kClipMean : io::kImageNetMean,
                                      clip ? io::kClipStd : io::kImageNetStd);
    const Tensor host = encoding::to_model_input(imgs, p);
    EXPECT_TRUE(cortex::testing::allclose(host, want, 0, 0));
    const Tensor dev = encoding::to_model_input(imgs.to(kEmu), p);
    ASSERT_EQ(dev.device(), kEmu);
    ASSERT_EQ(dev.shape(), (Shape{2, 3, 9, 11}));
    EXPECT_TRUE(cortex::testing::allclose(dev.to(Device::cpu()), want, 0, 0)) << (clip ? "clip" : "imagenet");
    const Tensor one = encoding::to_model_input(imgs.select(0, 1).to(kEmu), p);
    EXPECT_TRUE(cortex::testing::allclose(one.to(Device::cpu()), want.select(0, 1), 0, 0));
    const Tensor strided = imgs.to(kEmu).narrow(2, 1, 9);  // columns 1..9 of each row: not contiguous
    EXPECT_TRUE(cortex::testing::allclose(encoding::to_model_input(strided, p).to(Device::cpu()),
                                          want.narrow(3, 1, 9), 0, 0));
  }
  EXPECT_CORTEX_ERROR(encoding::to_model_input(imgs.to(DType::Float32), {}), "expected uint8 RGB images");
}

// The parameters, buffers and the folded batch norm's conv bias (outside the state_dict) all move,
// and back again.
TEST_F(ModelsEmu, ModuleToMovesEverythingAndBack) {
  auto r = load_fixture("resnet_bottleneck");
  r.model->fold_batchnorm();
  const Tensor x = r.io.at("input").narrow(0, 0, 1).contiguous();
  NoGradGuard ng;
  const Tensor want = (*r.model)(x);
  r.model->to(kEmu);
  const Tensor got = (*r.model)(x.to(kEmu));
  EXPECT_EQ(got.device(), kEmu);
  EXPECT_LE(rel(got, want), 1e-4);
  r.model->to(Device::cpu());
  for (auto& [k, t] : r.model->named_tensors()) EXPECT_TRUE(t->device().is_cpu()) << k;
  EXPECT_LE(rel((*r.model)(x), want), 1e-6);
  // A model on emu refuses a host input, naming both devices.
  r.model->to(kEmu);
  EXPECT_CORTEX_ERROR((*r.model)(x), "expected all tensors on one device");
}

}  // namespace
