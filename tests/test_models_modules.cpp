// models/module, layers and load: every layer against a float64 loop or a closed form, module
// naming and taps (early stop), batch-norm folding, and the strict loader's errors (missing,
// unexpected, wrong shape, wrong dtype, truncated file), prefix and name maps.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "autograd/ops.h"
#include "models/layers.h"
#include "models/load.h"
#include "tensor/io/safetensors.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::models;
using cortex::testing::allclose;
namespace fs = std::filesystem;

using cortex::testing::TempDir;

namespace {

Tensor rnd(const Shape& s, uint64_t seed) { return cortex::testing::randn(s, seed, DType::Float32); }
std::vector<double> vec(const Tensor& t) { return t.to(DType::Float64).to_vector<double>(); }
Tensor t64(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, DType::Float64); }

TEST(ModelsLayers, LinearMatchesLoop) {
  Linear l(5, 3);
  l.weight = rnd({3, 5}, 1);
  l.bias = rnd({3}, 2);
  Tensor x = rnd({2, 4, 5}, 3);
  auto xv = vec(x), wv = vec(l.weight), bv = vec(l.bias);
  std::vector<double> ref(2 * 4 * 3);
  for (int r = 0; r < 8; ++r)
    for (int o = 0; o < 3; ++o) {
      double s = bv[o];
      for (int i = 0; i < 5; ++i) s += xv[r * 5 + i] * wv[o * 5 + i];
      ref[r * 3 + o] = s;
    }
  EXPECT_TRUE(allclose(l(x), t64(ref, {2, 4, 3}), 1e-5, 1e-6));
  EXPECT_CORTEX_ERROR(l(rnd({2, 4}, 4)), "expected last dim 5");
}

TEST(ModelsLayers, Conv2dMatchesLoop) {
  Conv2d c(2, 3, 3, 2, 1);
  c.weight = rnd({3, 2, 3, 3}, 5);
  c.bias = rnd({3}, 6);
  Tensor x = rnd({1, 2, 5, 6}, 7);
  Tensor y = c(x);
  ASSERT_EQ(y.shape(), (Shape{1, 3, 3, 3}));
  auto xv = vec(x), wv = vec(c.weight), bv = vec(c.bias);
  std::vector<double> ref(27);
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        double s = bv[o];
        for (int ci = 0; ci < 2; ++ci)
          for (int ki = 0; ki < 3; ++ki)
            for (int kj = 0; kj < 3; ++kj) {
              int yi = i * 2 - 1 + ki, xj = j * 2 - 1 + kj;
              if (yi < 0 || yi >= 5 || xj < 0 || xj >= 6) continue;
              s += xv[(ci * 5 + yi) * 6 + xj] * wv[((o * 2 + ci) * 3 + ki) * 3 + kj];
            }
        ref[(o * 3 + i) * 3 + j] = s;
      }
  EXPECT_TRUE(allclose(y, t64(ref, {1, 3, 3, 3}), 1e-5, 1e-6));
  EXPECT_CORTEX_ERROR(c(rnd({1, 3, 5, 5}, 8)), "expected input (N, 2, H, W)");
}

TEST(ModelsLayers, BatchNormClosedFormAndFolding) {
  BatchNorm2d bn(3, 1e-3);
  bn.weight = rnd({3}, 9);
  bn.bias = rnd({3}, 10);
  bn.running_mean = rnd({3}, 11);
  bn.running_var = add(abs(rnd({3}, 12)), 0.5);
  Tensor x = rnd({2, 3, 4, 4}, 13);
  auto xv = vec(x), g = vec(bn.weight), b = vec(bn.bias), m = vec(bn.running_mean), v = vec(bn.running_var);
  std::vector<double> ref(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) {
    const int c = static_cast<int>((i / 16) % 3);
    ref[i] = (xv[i] - m[c]) / std::sqrt(v[c] + 1e-3) * g[c] + b[c];
  }
  EXPECT_TRUE(allclose(bn(x), t64(ref, {2, 3, 4, 4}), 1e-5, 1e-5));

  // conv -> bn equals the folded conv, and the bn then passes its input through.
  auto seq = std::make_shared<Sequential>();
  auto conv = std::make_shared<Conv2d>(2, 3, 3, 1, 1, false);
  conv->weight = rnd({3, 2, 3, 3}, 14);
  auto bn2 = std::make_shared<BatchNorm2d>(3);
  bn2->weight = bn.weight;
  bn2->bias = bn.bias;
  bn2->running_mean = bn.running_mean;
  bn2->running_var = bn.running_var;
  seq->push_back(conv);
  seq->push_back(bn2);
  Tensor xin = rnd({2, 2, 5, 5}, 15);
  Tensor before = (*seq)(xin);
  seq->fold_batchnorm();
  EXPECT_TRUE(bn2->folded());
  EXPECT_TRUE(allclose((*seq)(xin), before, 1e-4, 1e-5));

  // Training mode normalises with the batch statistics: per-channel mean = bias, and updates the
  // running mean towards the batch mean.
  BatchNorm2d tr(3);
  tr.bias = rnd({3}, 16);
  tr.train(true);
  Tensor y = tr(mul(add(rnd({4, 3, 5, 5}, 17), 2.0), 3.0));
  EXPECT_TRUE(allclose(mean(y, {0, 2, 3}), tr.bias, 1e-4, 1e-5));
  EXPECT_GT(std::abs(vec(tr.running_mean)[0]), 0.1);
}

TEST(ModelsLayers, LayerNormMatchesLoop) {
  LayerNorm ln(6, 1e-6);
  ln.weight = rnd({6}, 18);
  ln.bias = rnd({6}, 19);
  Tensor x = rnd({3, 6}, 20);
  auto xv = vec(x), g = vec(ln.weight), b = vec(ln.bias);
  std::vector<double> ref(18);
  for (int r = 0; r < 3; ++r) {
    double mu = 0, var = 0;
    for (int i = 0; i < 6; ++i) mu += xv[r * 6 + i] / 6;
    for (int i = 0; i < 6; ++i) var += (xv[r * 6 + i] - mu) * (xv[r * 6 + i] - mu) / 6;
    for (int i = 0; i < 6; ++i) ref[r * 6 + i] = (xv[r * 6 + i] - mu) / std::sqrt(var + 1e-6) * g[i] + b[i];
  }
  EXPECT_TRUE(allclose(ln(x), t64(ref, {3, 6}), 1e-5, 1e-5));
}

TEST(ModelsLayers, ActivationsClosedForm) {
  Tensor x = from_vector(std::vector<float>{-2.0f, -0.5f, 0.0f, 0.7f, 3.0f}, {5});
  auto xv = vec(x);
  std::vector<double> relu_r, gelu_r, tanh_r, quick_r;
  for (double v : xv) {
    relu_r.push_back(v > 0 ? v : 0);
    gelu_r.push_back(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
    tanh_r.push_back(0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
    quick_r.push_back(v / (1 + std::exp(-1.702 * v)));
  }
  EXPECT_TRUE(allclose(Activation(Act::ReLU)(x), t64(relu_r, {5}), 1e-6, 1e-7));
  EXPECT_TRUE(allclose(Activation(Act::GELU)(x), t64(gelu_r, {5}), 1e-5, 1e-6));
  EXPECT_TRUE(allclose(Activation(Act::GELUTanh)(x), t64(tanh_r, {5}), 1e-5, 1e-6));
  EXPECT_TRUE(allclose(Activation(Act::QuickGELU)(x), t64(quick_r, {5}), 1e-5, 1e-6));
  EXPECT_EQ(parse_act("quick_gelu"), Act::QuickGELU);
  EXPECT_CORTEX_ERROR(parse_act("swish"), "found 'swish'");
}

TEST(ModelsLayers, PoolsMatchLoops) {
  Tensor x = rnd({1, 2, 5, 5}, 21);
  auto xv = vec(x);
  // MaxPool 3/2 pad 1 and AvgPool 2/2 and adaptive 2x2 (bins [0,3) and [2,5)).
  std::vector<double> mx(2 * 3 * 3), av(2 * 2 * 2), ad(2 * 2 * 2);
  for (int c = 0; c < 2; ++c) {
    auto at = [&](int i, int j) { return xv[(c * 5 + i) * 5 + j]; };
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        double m = -INFINITY;
        for (int a = i * 2 - 1; a <= i * 2 + 1; ++a)
          for (int b = j * 2 - 1; b <= j * 2 + 1; ++b)
            if (a >= 0 && a < 5 && b >= 0 && b < 5) m = std::max(m, at(a, b));
        mx[(c * 3 + i) * 3 + j] = m;
      }
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        av[(c * 2 + i) * 2 + j] = (at(2 * i, 2 * j) + at(2 * i + 1, 2 * j) + at(2 * i, 2 * j + 1) + at(2 * i + 1, 2 * j + 1)) / 4;
        double s = 0;
        for (int a = 2 * i; a < 2 * i + 3; ++a)
          for (int b = 2 * j; b < 2 * j + 3; ++b) s += at(a, b);
        ad[(c * 2 + i) * 2 + j] = s / 9;
      }
  }
  EXPECT_TRUE(allclose(MaxPool2d(3, 2, 1)(x), t64(mx, {1, 2, 3, 3}), 1e-6, 1e-7));
  EXPECT_TRUE(allclose(AvgPool2d(2, 2)(x), t64(av, {1, 2, 2, 2}), 1e-5, 1e-6));
  EXPECT_TRUE(allclose(AdaptiveAvgPool2d(2, 2)(x), t64(ad, {1, 2, 2, 2}), 1e-5, 1e-6));
}

TEST(ModelsLayers, DropoutIdentityAtInference) {
  Dropout d(0.5, 3);
  Tensor x = rnd({1000}, 22);
  EXPECT_TRUE(x.is_same(d(x)) || allclose(d(x), x, 0, 0));
  d.train(true);
  auto y = vec(d(x)), xv = vec(x);
  int zeros_n = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] == 0) ++zeros_n;
    else EXPECT_NEAR(y[i], 2 * xv[i], 1e-5);
  }
  EXPECT_GT(zeros_n, 400);
  EXPECT_LT(zeros_n, 600);
}

// Attention against a float64 loop; both weight layouts give the same result from the same weights.
TEST(ModelsLayers, MultiheadAttentionMatchesLoop) {
  const int B = 2, L = 3, D = 4, H = 2, hd = 2;
  MultiheadAttention packed(D, H, MultiheadAttention::Layout::Packed);
  packed.in_proj_weight = rnd({3 * D, D}, 23);
  packed.in_proj_bias = rnd({3 * D}, 24);
  packed.out_proj->weight = rnd({D, D}, 25);
  packed.out_proj->bias = rnd({D}, 26);
  Tensor x = rnd({B, L, D}, 27);
  auto xv = vec(x), w = vec(packed.in_proj_weight), bw = vec(packed.in_proj_bias), wo = vec(packed.out_proj->weight),
       bo = vec(packed.out_proj->bias);
  std::vector<double> ref(B * L * D);
  for (int b = 0; b < B; ++b) {
    std::vector<double> qkv(L * 3 * D), o(L * D);
    for (int l = 0; l < L; ++l)
      for (int r = 0; r < 3 * D; ++r) {
        double s = bw[r];
        for (int i = 0; i < D; ++i) s += xv[(b * L + l) * D + i] * w[r * D + i];
        qkv[l * 3 * D + r] = s;
      }
    for (int h = 0; h < H; ++h)
      for (int l = 0; l < L; ++l) {
        std::vector<double> sc(L);
        double mx = -INFINITY, den = 0;
        for (int m = 0; m < L; ++m) {
          double s = 0;
          for (int k = 0; k < hd; ++k) s += qkv[l * 3 * D + h * hd + k] * qkv[m * 3 * D + D + h * hd + k];
          sc[m] = s / std::sqrt(double(hd));
          mx = std::max(mx, sc[m]);
        }
        for (int m = 0; m < L; ++m) den += (sc[m] = std::exp(sc[m] - mx));
        for (int k = 0; k < hd; ++k) {
          double s = 0;
          for (int m = 0; m < L; ++m) s += sc[m] / den * qkv[m * 3 * D + 2 * D + h * hd + k];
          o[l * D + h * hd + k] = s;
        }
      }
    for (int l = 0; l < L; ++l)
      for (int r = 0; r < D; ++r) {
        double s = bo[r];
        for (int i = 0; i < D; ++i) s += o[l * D + i] * wo[r * D + i];
        ref[(b * L + l) * D + r] = s;
      }
  }
  EXPECT_TRUE(allclose(packed(x), t64(ref, {B, L, D}), 1e-4, 1e-5));

  MultiheadAttention timm(D, H, MultiheadAttention::Layout::Qkv);
  timm.qkv->weight = packed.in_proj_weight;
  timm.qkv->bias = packed.in_proj_bias;
  timm.proj->weight = packed.out_proj->weight;
  timm.proj->bias = packed.out_proj->bias;
  EXPECT_TRUE(allclose(timm(x), t64(ref, {B, L, D}), 1e-4, 1e-5));
  EXPECT_CORTEX_ERROR(MultiheadAttention(5, 2, MultiheadAttention::Layout::Qkv), "divisible by heads");
}

// A two-level tree with torch-style names, for naming, taps and loading.
std::shared_ptr<Sequential> small_net() {
  auto inner = std::make_shared<Sequential>();
  inner->push_back(std::make_shared<Conv2d>(2, 3, 3, 1, 1));
  inner->push_back(std::make_shared<BatchNorm2d>(3));
  inner->push_back(std::make_shared<Activation>(Act::ReLU));
  auto net = std::make_shared<Sequential>();
  net->push_back("features", inner);
  net->push_back("pool", std::make_shared<AdaptiveAvgPool2d>(1, 1));
  net->push_back("flat", std::make_shared<Flatten>());
  net->push_back("fc", std::make_shared<Linear>(3, 2));
  net->set_name("");
  init_random(*net, 5);
  return net;
}

TEST(ModelsModule, NamesTapsAndEarlyStop) {
  auto net = small_net();
  std::vector<std::string> keys;
  for (auto& [k, t] : net->named_tensors()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"features.0.weight", "features.0.bias", "features.1.weight",
                                            "features.1.bias", "fc.weight", "fc.bias", "features.1.running_mean",
                                            "features.1.running_var", "features.1.num_batches_tracked"}));
  EXPECT_EQ(net->child("features")->child("1")->name(), "features.1");
  Tensor x = rnd({2, 2, 4, 4}, 30);
  TapContext all({"features.0", "features", "fc"}, false);
  Tensor out = (*net)(x, all);
  EXPECT_EQ(all.values().size(), 3u);
  EXPECT_TRUE(allclose(all.values().at("fc"), out, 0, 0));
  Tensor conv_ref = conv2d(x, std::dynamic_pointer_cast<Conv2d>(net->child("features")->child("0"))->weight,
                           std::dynamic_pointer_cast<Conv2d>(net->child("features")->child("0"))->bias,
                           Conv2dParams{1, 1, 1, 1, 1, 1, 1});
  EXPECT_TRUE(allclose(all.values().at("features.0"), conv_ref, 1e-6, 1e-6));
  // Early stop: the forward returns right after the tapped module, before fc runs.
  TapContext early({"features.1"}, true);
  Tensor partial = (*net)(x, early);
  EXPECT_TRUE(early.done());
  EXPECT_EQ(partial.shape(), (Shape{2, 3, 4, 4}));
  // to(): every tensor (and a folded conv's extra bias) on the device; the result is unchanged.
  net->fold_batchnorm();
  net->to(Device::cpu());
  EXPECT_TRUE(allclose((*net)(x), out, 1e-4, 1e-5));
}

TEST(ModelsLoad, RoundTripPrefixAndNameMaps) {
  TempDir dir;
  auto a = small_net();
  auto sd = state_dict(*a);
  std::map<std::string, Tensor> prefixed;
  for (auto& [k, t] : sd) prefixed["visual." + (k == "fc.weight" ? std::string("head.weight") : k)] = t;
  prefixed["text.embedding"] = rnd({3}, 1);    // outside the prefix: ignored
  prefixed["visual.decoder.w"] = rnd({3}, 2);  // ignored by name
  io::write_safetensors((dir / "w.safetensors"), prefixed);
  auto b = small_net();
  init_random(*b, 99);
  LoadOptions o;
  o.prefix = "visual.";
  o.rename = {{"head.weight", "fc.weight"}};
  o.ignore = {"decoder"};
  load_safetensors(*b, (dir / "w.safetensors"), o);
  Tensor x = rnd({1, 2, 4, 4}, 31);
  EXPECT_TRUE(allclose((*b)(x), (*a)(x), 0, 0));
}

TEST(ModelsLoad, StrictErrorsNameTheKeys) {
  TempDir dir;
  auto net = small_net();
  auto sd = state_dict(*net);
  const std::string path = (dir / "bad.safetensors");
  auto expect_load_error = [&](std::map<std::string, Tensor> m, const std::string& needle) {
    io::write_safetensors(path, m);
    auto fresh = small_net();
    Tensor before = fresh->named_tensors()[0].second->clone();
    EXPECT_CORTEX_ERROR(load_safetensors(*fresh, path), needle);
    EXPECT_TRUE(allclose(*fresh->named_tensors()[0].second, before, 0, 0));  // left unchanged
  };
  auto m = sd;
  m.erase("features.1.running_var");
  expect_load_error(m, "missing keys (1): features.1.running_var");
  m = sd;
  m["fc.extra"] = rnd({2}, 3);
  expect_load_error(m, "unexpected keys (1): fc.extra");
  m = sd;
  m["fc.weight"] = rnd({2, 4}, 4);
  expect_load_error(m, "fc.weight expected [2, 3] found [2, 4]");
  m = sd;
  m["fc.bias"] = m["fc.bias"].to(DType::Float64);
  expect_load_error(m, "fc.bias expected float32 found float64");
  // Truncated file: a clean error from the reader, never a crash.
  io::write_safetensors(path, sd);
  const auto size = fs::file_size(path);
  fs::resize_file(path, size - 10);
  auto fresh = small_net();
  EXPECT_THROW(load_safetensors(*fresh, path), Error);
  fs::resize_file(path, 5);
  EXPECT_THROW(load_safetensors(*fresh, path), Error);
  // Folded batch norms have no state_dict of their own any more: loading is refused, as is training.
  io::write_safetensors(path, sd);
  fresh->fold_batchnorm();
  EXPECT_CORTEX_ERROR(load_safetensors(*fresh, path), "batch norms are folded ('features.1')");
  fresh->train(true);
  EXPECT_CORTEX_ERROR((*fresh)(rnd({1, 2, 4, 4}, 40)), "folded into its conv");
}

}  // namespace
