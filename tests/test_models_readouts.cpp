// models/readouts: every readout's forward against a float64 loop on a tiny case, gradcheck
// (float64 central differences, VJP and JVP) w.r.t. parameters and feature maps, the Gaussian
// readout's deterministic evaluation and its training-time sampling statistics, channel pruning,
// the Gaussian fwRF grid search on a planted field, parameter names, and input errors.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "models/load.h"
#include "models/readouts/readouts.h"
#include "tensor/io/safetensors.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::models;
using cortex::testing::allclose;

namespace {

Tensor rnd(const Shape& s, uint64_t seed) { return cortex::testing::randn(s, seed, DType::Float64); }
std::vector<double> vec(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }
Tensor t64(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, DType::Float64); }

std::vector<std::string> names(Module& m) {
  std::vector<std::string> out;
  for (auto& [n, t] : m.named_tensors()) out.push_back(n);
  return out;
}

// Bilinear read of map (C, H, W) at (x, y) in [-1, 1], align_corners=True, zero padding.
double bilinear(const std::vector<double>& f, int64_t c, int64_t h, int64_t w, int64_t ch, double x, double y) {
  const double ix = (x + 1) / 2 * (w - 1), iy = (y + 1) / 2 * (h - 1);
  const double x0 = std::floor(ix), y0 = std::floor(iy);
  double s = 0;
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) {
      const int64_t xi = static_cast<int64_t>(x0) + dx, yi = static_cast<int64_t>(y0) + dy;
      if (xi < 0 || xi >= w || yi < 0 || yi >= h) continue;
      const double wt = (dx ? ix - x0 : 1 - (ix - x0)) * (dy ? iy - y0 : 1 - (iy - y0));
      s += wt * f[(ch * h + yi) * w + xi];
    }
  (void)c;
  return s;
}

}  // namespace

TEST(Readouts, FwRFMatchesLoopAndGradcheck) {
  // Layers 0 and 1 share a 3x3 field; layer 2 has its own 2x2 field.
  const std::vector<MapShape> L{{2, 3, 3}, {3, 3, 3}, {2, 2, 2}};
  const int64_t B = 2, V = 3;
  FwRF m(L, V, {}, 5);
  EXPECT_EQ(names(m), (std::vector<std::string>{"rf.0", "rf.1", "weight", "bias"}));
  ASSERT_EQ(m.rf_of, (std::vector<int>{0, 0, 1}));
  std::vector<Tensor> maps{rnd({B, 2, 3, 3}, 1), rnd({B, 3, 3, 3}, 2), rnd({B, 2, 2, 2}, 3)};
  m.rf = {rnd({V, 3, 3}, 4), rnd({V, 2, 2}, 5)};
  m.weight = rnd({7, V}, 6);
  m.bias = rnd({V}, 7);
  std::vector<double> ref(B * V);
  auto w = vec(m.weight), bias = vec(m.bias);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t v = 0; v < V; ++v) {
      double y = bias[v];
      int64_t off = 0;
      for (size_t l = 0; l < L.size(); ++l) {
        auto f = vec(maps[l]), rf = vec(m.rf[m.rf_of[l]]);
        const int64_t hw = L[l].h * L[l].w;
        for (int64_t c = 0; c < L[l].c; ++c) {
          double s = 0;
          for (int64_t k = 0; k < hw; ++k) s += f[(b * L[l].c + c) * hw + k] * rf[v * hw + k];
          y += s * w[(off + c) * V + v];
        }
        off += L[l].c;
      }
      ref[b * V + v] = y;
    }
  EXPECT_TRUE(allclose(m.read(maps), t64(ref, {B, V}), 1e-10, 1e-12));
  auto f = [&](const std::vector<Tensor>& in) {
    m.rf = {in[3], in[4]};
    m.weight = in[5];
    m.bias = in[6];
    return std::vector<Tensor>{m.read({in[0], in[1], in[2]})};
  };
  EXPECT_EQ(gradcheck(f, {maps[0], maps[1], maps[2], rnd({V, 3, 3}, 8), rnd({V, 2, 2}, 9), rnd({7, V}, 10),
                          rnd({V}, 11)}),
            "");
  EXPECT_CORTEX_ERROR(m.read({maps[0], maps[1]}), "expected 3 feature maps");
  EXPECT_CORTEX_ERROR(m.read({maps[0], maps[0], maps[2]}), "expected map 1 of (C, H, W) = (3, 3, 3)");
}

TEST(Readouts, PruneChannelsKeepsTheMostVariableAndFwRFUsesThem) {
  // Channel c's spatial mean varies across images with std ~ (c + 1) except channel 2, made constant.
  const int64_t B = 50, C = 5;
  auto x = vec(rnd({B, C, 2, 2}, 20));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int k = 0; k < 4; ++k) x[(b * C + c) * 4 + k] = c == 2 ? 1.0 : x[(b * C + c) * 4 + k] * (c + 1);
  auto keep = prune_channels({t64(x, {B, C, 2, 2})}, 0.4);  // ceil(0.4 * 5) = 2 channels
  EXPECT_EQ(keep[0].to_vector<int64_t>(), (std::vector<int64_t>{3, 4}));
  FwRF m({{C, 2, 2}}, 2, keep, 1);
  EXPECT_EQ(m.weight.size(0), 2);
  EXPECT_EQ(names(m), (std::vector<std::string>{"rf.0", "weight", "bias", "keep.0"}));
  // Pruned fwRF == unpruned fwRF on the kept channels.
  FwRF full_m({{2, 2, 2}}, 2, {}, 1);
  full_m.rf = m.rf;
  full_m.weight = m.weight;
  Tensor maps = t64(x, {B, C, 2, 2});
  EXPECT_TRUE(allclose(m.read({maps.to(DType::Float32)}), full_m.read({maps.slice(1, 3, 5).contiguous().to(DType::Float32)}),
                       1e-6, 1e-6));
  EXPECT_CORTEX_ERROR(prune_channels({maps}, 0.0), "keep_fraction in (0, 1]");
}

TEST(Readouts, GaussianFwRFMatchesLoopAndGradcheck) {
  const std::vector<MapShape> L{{2, 3, 4}, {1, 2, 2}};
  const int64_t B = 2, V = 2;
  GaussianFwRF m(L, V);
  EXPECT_EQ(names(m), (std::vector<std::string>{"mu", "sigma", "weight", "bias"}));
  std::vector<Tensor> maps{rnd({B, 2, 3, 4}, 1), rnd({B, 1, 2, 2}, 2)};
  m.mu = t64({0.2, -0.3, -0.5, 0.4}, {V, 2});
  m.sigma = t64({0.6, 0.9}, {V});
  m.weight = rnd({3, V}, 3);
  m.bias = rnd({V}, 4);
  auto mu = vec(m.mu), sg = vec(m.sigma), w = vec(m.weight), bias = vec(m.bias);
  std::vector<double> ref(B * V);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t v = 0; v < V; ++v) {
      double y = bias[v];
      int64_t off = 0;
      for (size_t l = 0; l < L.size(); ++l) {
        auto f = vec(maps[l]);
        const int64_t H = L[l].h, W = L[l].w;
        std::vector<double> g(H * W);
        double z = 0;
        for (int64_t i = 0; i < H; ++i)
          for (int64_t j = 0; j < W; ++j) {
            const double xx = -1 + (2.0 * j + 1) / W, yy = -1 + (2.0 * i + 1) / H;
            g[i * W + j] = std::exp(-(std::pow(xx - mu[2 * v], 2) + std::pow(yy - mu[2 * v + 1], 2)) / (2 * sg[v] * sg[v]));
            z += g[i * W + j];
          }
        for (int64_t c = 0; c < L[l].c; ++c) {
          double s = 0;
          for (int64_t k = 0; k < H * W; ++k) s += f[(b * L[l].c + c) * H * W + k] * g[k] / z;
          y += s * w[(off + c) * V + v];
        }
        off += L[l].c;
      }
      ref[b * V + v] = y;
    }
  EXPECT_TRUE(allclose(m.read(maps), t64(ref, {B, V}), 1e-10, 1e-12));
  auto f = [&](const std::vector<Tensor>& in) {
    m.mu = in[2], m.sigma = in[3], m.weight = in[4], m.bias = in[5];
    return std::vector<Tensor>{m.read({in[0], in[1]})};
  };
  EXPECT_EQ(gradcheck(f, {maps[0], maps[1], m.mu.clone(), m.sigma.clone(), rnd({3, V}, 5), rnd({V}, 6)}), "");
}

TEST(Readouts, GaussianFwRFGridSearchFindsPlantedFields) {
  // Responses from known fields on the search grid; the search must pick exactly those.
  const int64_t B = 240, V = 4;
  const std::vector<MapShape> L{{3, 8, 8}};
  Tensor maps = cortex::testing::randn({B, 3, 8, 8}, 30, DType::Float32);
  GaussianFwRF truth(L, V);
  truth.mu = from_vector(std::vector<double>{-0.5, -0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 0.5}, {V, 2}).to(DType::Float32);
  truth.sigma = from_vector(std::vector<double>{0.2, 0.4, 0.2, 0.4}, {V}).to(DType::Float32);
  truth.weight = cortex::testing::randn({3, V}, 31, DType::Float32);
  Tensor Y;
  {
    NoGradGuard ng;
    Y = truth.read({maps}) + 0.05 * cortex::testing::randn({B, V}, 32, DType::Float32);
  }
  const std::vector<double> grid{-0.5, 0.0, 0.5};
  auto fit = fit_gaussian_fwrf({maps}, Y, grid, grid, {0.2, 0.4}, {0.01, 1.0, 100.0}, 4, 1);
  EXPECT_TRUE(allclose(fit.model->mu, truth.mu, 0, 1e-6));
  EXPECT_TRUE(allclose(fit.model->sigma, truth.sigma, 0, 1e-6));
  for (double s : vec(fit.best_score)) EXPECT_GT(s, 0.9);
  NoGradGuard ng;
  EXPECT_TRUE(allclose(fit.model->read({maps}), Y, 0, 0.25));
}

TEST(Readouts, FactorizedMatchesLoopPenaltyAndGradcheck) {
  const int64_t B = 2, C = 3, H = 2, W = 3, N = 2;
  Factorized m({C, H, W}, N, 3);
  EXPECT_EQ(names(m), (std::vector<std::string>{"spatial", "features", "bias"}));
  Tensor x = rnd({B, C, H, W}, 1);
  m.spatial = rnd({N, H, W}, 2);
  m.features = rnd({N, C}, 3);
  m.bias = rnd({N}, 4);
  auto f = vec(x), sp = vec(m.spatial), ft = vec(m.features), bias = vec(m.bias);
  std::vector<double> ref(B * N);
  double pen = 0;
  for (int64_t n = 0; n < N; ++n) {
    double nrm = 0, l1s = 0, l1f = 0;
    for (int64_t k = 0; k < H * W; ++k) nrm += sp[n * H * W + k] * sp[n * H * W + k];
    nrm = std::sqrt(nrm);
    for (int64_t k = 0; k < H * W; ++k) l1s += std::abs(sp[n * H * W + k]) / nrm;
    for (int64_t c = 0; c < C; ++c) l1f += std::abs(ft[n * C + c]);
    pen += l1s * l1f;
    for (int64_t b = 0; b < B; ++b) {
      double y = bias[n];
      for (int64_t c = 0; c < C; ++c)
        for (int64_t k = 0; k < H * W; ++k) y += f[(b * C + c) * H * W + k] * sp[n * H * W + k] / nrm * ft[n * C + c];
      ref[b * N + n] = y;
    }
  }
  EXPECT_TRUE(allclose(m.read({x}), t64(ref, {B, N}), 1e-10, 1e-12));
  EXPECT_NEAR(m.penalty().item(), pen, 1e-10);
  auto fn = [&](const std::vector<Tensor>& in) {
    m.spatial = in[1], m.features = in[2], m.bias = in[3];
    return std::vector<Tensor>{m.read({in[0]}), m.penalty()};
  };
  EXPECT_EQ(gradcheck(fn, {x, m.spatial.clone(), m.features.clone(), m.bias.clone()}), "");
}

TEST(Readouts, GaussianReadoutEvalMatchesLoopForEverySigmaKindAndGradcheck) {
  const int64_t B = 2, C = 3, H = 4, W = 5, N = 3;
  Tensor x = rnd({B, C, H, W}, 1);
  for (GaussSigma kind : {GaussSigma::Full, GaussSigma::Uncorrelated, GaussSigma::Isotropic})
    for (bool elu_out : {false, true}) {
      GaussianReadout m({C, H, W}, N, kind, 0.1, elu_out, {}, 7);
      EXPECT_EQ(names(m), (std::vector<std::string>{"mu", "sigma", "features", "bias"}));
      m.mu = t64({0.31, -0.47, -0.83, 0.12, 1.4, 0.55}, {N, 2});  // neuron 2's x is clamped to 1
      m.features = rnd({N, C}, 2);
      m.bias = rnd({N}, 3);
      m.sigma = m.sigma.to(DType::Float64);
      m.train(false);
      auto f = vec(x), mu = vec(m.mu), ft = vec(m.features), bias = vec(m.bias);
      std::vector<double> ref(B * N);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t n = 0; n < N; ++n) {
          double y = bias[n];
          const double px = std::clamp(mu[2 * n], -1.0, 1.0), py = std::clamp(mu[2 * n + 1], -1.0, 1.0);
          for (int64_t c = 0; c < C; ++c)
            y += bilinear(std::vector<double>(f.begin() + b * C * H * W, f.begin() + (b + 1) * C * H * W), C, H, W, c,
                          px, py) *
                 ft[n * C + c];
          ref[b * N + n] = elu_out ? (y > 0 ? y + 1 : std::exp(y)) : y;
        }
      Tensor y1 = m.read({x}), y2 = m.read({x});
      EXPECT_TRUE(allclose(y1, t64(ref, {B, N}), 1e-10, 1e-12));
      EXPECT_TRUE(allclose(y1, y2, 0, 0)) << "evaluation must be deterministic";
    }
  // Gradcheck in training mode with the noise replayed (generator offset reset on every call), so
  // mu, sigma and the sampling path are all exercised. mu kept inside (-1, 1) to avoid the clamp's kink.
  for (GaussSigma kind : {GaussSigma::Full, GaussSigma::Uncorrelated, GaussSigma::Isotropic}) {
    GaussianReadout m({C, H, W}, N, kind, 0.1, true, {}, 9);
    m.train(true);
    auto fn = [&](const std::vector<Tensor>& in) {
      m.gen.set_offset(0);
      m.mu = in[1], m.sigma = in[2], m.features = in[3], m.bias = in[4];
      return std::vector<Tensor>{m.read({in[0]}), m.penalty()};
    };
    Tensor mu = t64({0.31, -0.47, -0.23, 0.12, 0.4, 0.55}, {N, 2});
    EXPECT_EQ(gradcheck(fn, {x, mu, m.sigma.to(DType::Float64), rnd({N, C}, 4), rnd({N}, 5)}), "")
        << "sigma kind " << static_cast<int>(kind);
  }
}

TEST(Readouts, GaussianReadoutTrainingSamplesAroundMu) {
  const int64_t B = 20000, N = 2;
  GaussianReadout full({1, 5, 5}, N, GaussSigma::Full, 0.1, false, {}, 3);
  full.mu = t64({0.1, -0.2, -0.3, 0.25}, {N, 2});
  full.sigma = t64({0.1, 0.0, 0.05, 0.08, 0.2, 0.0, 0.0, 0.05}, {N, 2, 2});  // L per neuron
  full.train(true);
  auto p = vec(full.positions(B));
  auto p2 = vec(full.positions(B));
  EXPECT_NE(p, p2) << "each training call draws new noise";
  auto L = vec(full.sigma), mu = vec(full.mu);
  for (int64_t n = 0; n < N; ++n) {
    double m[2] = {0, 0}, cov[2][2] = {{0, 0}, {0, 0}};
    for (int64_t b = 0; b < B; ++b)
      for (int i = 0; i < 2; ++i) m[i] += p[(b * N + n) * 2 + i] / B;
    for (int64_t b = 0; b < B; ++b)
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j)
          cov[i][j] += (p[(b * N + n) * 2 + i] - m[i]) * (p[(b * N + n) * 2 + j] - m[j]) / B;
    for (int i = 0; i < 2; ++i) {
      EXPECT_NEAR(m[i], mu[n * 2 + i], 0.005);
      for (int j = 0; j < 2; ++j) {
        double llt = 0;  // (L L^T)_ij
        for (int k = 0; k < 2; ++k) llt += L[n * 4 + i * 2 + k] * L[n * 4 + j * 2 + k];
        EXPECT_NEAR(cov[i][j], llt, 0.002) << "neuron " << n << " cov(" << i << "," << j << ")";
      }
    }
  }
  full.train(false);
  EXPECT_TRUE(allclose(full.positions(3), full.mu.unsqueeze(0).expand({3, N, 2}), 0, 0));
}

TEST(Readouts, GaussianReadoutSharedFeatures) {
  const int64_t B = 2, C = 3, N = 3;
  GaussianReadout m({C, 3, 3}, N, GaussSigma::Isotropic, 0.1, false, {0, 1, 0}, 2);
  EXPECT_EQ(names(m), (std::vector<std::string>{"mu", "sigma", "features", "scales", "bias", "group_index"}));
  EXPECT_EQ(m.features.size(0), 2);
  m.train(false);
  m.features = rnd({2, C}, 1);
  m.scales = t64({1.0, 2.0, -0.5}, {N});
  m.mu = t64({0.0, 0.0, 0.5, 0.5, 0.0, 0.0}, {N, 2});
  m.sigma = m.sigma.to(DType::Float64);
  m.bias = zeros({N}, DType::Float64);
  Tensor y = m.read({rnd({B, C, 3, 3}, 3)});
  // Neurons 0 and 2 share position and features, so their outputs differ by the scale ratio -0.5.
  EXPECT_TRUE(allclose(y.select(1, 2), y.select(1, 0) * -0.5, 1e-12, 1e-12));
  EXPECT_CORTEX_ERROR(GaussianReadout({C, 3, 3}, N, GaussSigma::Isotropic, 0.1, false, {0, 1}), "one group id per neuron");
}

TEST(Readouts, PooledLinearAndEncodersMatchLoopsAndGradcheck) {
  const int64_t B = 3, V = 2;
  PooledLinear pl({{2, 2, 3}, {1, 3, 3}}, V, 1);
  EXPECT_EQ(names(pl), (std::vector<std::string>{"weight", "bias"}));
  std::vector<Tensor> maps{rnd({B, 2, 2, 3}, 1), rnd({B, 1, 3, 3}, 2)};
  pl.weight = rnd({V, 3}, 3);
  pl.bias = rnd({V}, 4);
  auto a = vec(maps[0]), b2 = vec(maps[1]), w = vec(pl.weight), bias = vec(pl.bias);
  std::vector<double> ref(B * V);
  for (int64_t b = 0; b < B; ++b) {
    double pooled[3] = {0, 0, 0};
    for (int c = 0; c < 2; ++c)
      for (int k = 0; k < 6; ++k) pooled[c] += a[(b * 2 + c) * 6 + k] / 6;
    for (int k = 0; k < 9; ++k) pooled[2] += b2[b * 9 + k] / 9;
    for (int64_t v = 0; v < V; ++v) {
      ref[b * V + v] = bias[v];
      for (int c = 0; c < 3; ++c) ref[b * V + v] += w[v * 3 + c] * pooled[c];
    }
  }
  EXPECT_TRUE(allclose(pl.read(maps), t64(ref, {B, V}), 1e-10, 1e-12));
  auto fp = [&](const std::vector<Tensor>& in) {
    pl.weight = in[2], pl.bias = in[3];
    return std::vector<Tensor>{pl.read({in[0], in[1]})};
  };
  EXPECT_EQ(gradcheck(fp, {maps[0], maps[1], pl.weight.clone(), pl.bias.clone()}), "");

  TwoLayerEncoder enc(4, 3, V, 2);
  EXPECT_EQ(names(enc), (std::vector<std::string>{"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}));
  Tensor x = rnd({B, 4}, 5);
  enc.fc1->weight = rnd({3, 4}, 6), enc.fc1->bias = rnd({3}, 7), enc.fc2->weight = rnd({V, 3}, 8),
  enc.fc2->bias = rnd({V}, 9);
  auto xv = vec(x), w1 = vec(enc.fc1->weight), b1 = vec(enc.fc1->bias), w2 = vec(enc.fc2->weight),
       bb2 = vec(enc.fc2->bias);
  std::vector<double> r2(B * V);
  for (int64_t b = 0; b < B; ++b) {
    double h[3];
    for (int j = 0; j < 3; ++j) {
      double s = b1[j];
      for (int i = 0; i < 4; ++i) s += w1[j * 4 + i] * xv[b * 4 + i];
      h[j] = 1 / (1 + std::exp(-s));
    }
    for (int64_t v = 0; v < V; ++v) {
      r2[b * V + v] = bb2[v];
      for (int j = 0; j < 3; ++j) r2[b * V + v] += w2[v * 3 + j] * h[j];
    }
  }
  EXPECT_TRUE(allclose(enc.read({x}), t64(r2, {B, V}), 1e-10, 1e-12));
  auto fe = [&](const std::vector<Tensor>& in) {
    enc.fc1->weight = in[1], enc.fc1->bias = in[2], enc.fc2->weight = in[3], enc.fc2->bias = in[4];
    return std::vector<Tensor>{enc.read({in[0]})};
  };
  EXPECT_EQ(gradcheck(fe, {x, enc.fc1->weight.clone(), enc.fc1->bias.clone(), enc.fc2->weight.clone(),
                           enc.fc2->bias.clone()}),
            "");
  LinearEncoder lin(4, V, 3);
  EXPECT_EQ(names(lin), (std::vector<std::string>{"fc.weight", "fc.bias"}));
  lin.fc->weight = rnd({V, 4}, 10), lin.fc->bias = rnd({V}, 11);
  auto lw = vec(lin.fc->weight), lb = vec(lin.fc->bias);
  std::vector<double> r3(B * V);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t v = 0; v < V; ++v) {
      r3[b * V + v] = lb[v];
      for (int i = 0; i < 4; ++i) r3[b * V + v] += lw[v * 4 + i] * xv[b * 4 + i];
    }
  EXPECT_TRUE(allclose(lin.read({x}), t64(r3, {B, V}), 1e-10, 1e-12));
  EXPECT_CORTEX_ERROR(enc.read({rnd({B, 5}, 1)}), "expected input (B, 4)");
}

TEST(Readouts, SaveAndLoadThroughSafetensors) {
  // A fitted readout is a state_dict like any backbone: written, read into a fresh instance (other
  // seed), it gives the same outputs.
  cortex::testing::TempDir dir;
  const std::string path = dir / "r.safetensors";
  Tensor x = cortex::testing::randn({2, 4, 5, 5}, 1, DType::Float32);
  NoGradGuard ng;
  auto keep = std::vector<Tensor>{from_vector(std::vector<int64_t>{0, 2}, {2}, DType::Int64)};
  FwRF a({{4, 5, 5}}, 3, keep, 1), b({{4, 5, 5}}, 3, keep, 2);
  io::write_safetensors(path, state_dict(a));
  load_safetensors(b, path);
  EXPECT_TRUE(allclose(b.read({x}), a.read({x}), 0, 0));
  GaussianReadout g1({4, 5, 5}, 3, GaussSigma::Full, 0.1, true, {0, 0, 1}, 1), g2({4, 5, 5}, 3, GaussSigma::Full, 0.1, true, {0, 0, 1}, 2);
  io::write_safetensors(path, state_dict(g1));
  load_safetensors(g2, path);
  EXPECT_TRUE(allclose(g2.read({x}), g1.read({x}), 0, 0));
}

TEST(Readouts, GaussianReadoutRetinotopicPositions) {
  // mu = tanh(W2 elu(W1 g + b1) + b2) with g the centred, max-abs-scaled coordinates: checked
  // against a float64 loop, then gradchecked through the MLP weights and the readout.
  const int64_t B = 2, C = 3, H = 4, W = 5, N = 4, D = 3, Hd = 5;
  const Tensor coords = rnd({N, D}, 30);
  GaussianReadout m({C, H, W}, N, GaussSigma::Isotropic, 0.1, false, {}, 31, PositionMLP{coords, Hd, 1});
  EXPECT_EQ(names(m), (std::vector<std::string>{"sigma", "features", "bias", "mu_transform.0.weight",
                                                "mu_transform.0.bias", "mu_transform.1.weight", "mu_transform.1.bias",
                                                "source_grid"}));
  auto& l0 = *m.mu_transform[0];
  auto& l1 = *m.mu_transform[1];
  l0.weight = rnd({Hd, D}, 32), l0.bias = rnd({Hd}, 33), l1.weight = rnd({2, Hd}, 34) * 0.5, l1.bias = rnd({2}, 35) * 0.2;
  m.sigma = m.sigma.to(DType::Float64), m.features = rnd({N, C}, 36), m.bias = rnd({N}, 37);
  m.train(false);
  // The reference positions from the raw coordinates.
  const auto c = vec(coords);
  std::vector<double> mean(D, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) mean[d] += c[n * D + d] / N;
  double mx = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) mx = std::max(mx, std::abs(c[n * D + d] - mean[d]));
  const auto w0 = vec(l0.weight), b0 = vec(l0.bias), w1 = vec(l1.weight), b1 = vec(l1.bias);
  std::vector<double> ref;
  for (int64_t n = 0; n < N; ++n) {
    std::vector<double> h(Hd);
    for (int64_t j = 0; j < Hd; ++j) {
      double a = b0[j];
      for (int64_t d = 0; d < D; ++d) a += w0[j * D + d] * (c[n * D + d] - mean[d]) / mx;
      h[j] = a > 0 ? a : std::expm1(a);
    }
    for (int64_t k = 0; k < 2; ++k) {
      double a = b1[k];
      for (int64_t j = 0; j < Hd; ++j) a += w1[k * Hd + j] * h[j];
      ref.push_back(std::tanh(a));
    }
  }
  // source_grid is stored in float32, so the positions agree to float32 rounding of the inputs.
  EXPECT_TRUE(allclose(m.mean_positions(), t64(ref, {N, 2}), 1e-6, 1e-6));
  // The readout at those positions equals a free-mu readout placed there.
  GaussianReadout free({C, H, W}, N, GaussSigma::Isotropic, 0.1, false, {}, 38);
  free.mu = m.mean_positions(), free.sigma = m.sigma, free.features = m.features, free.bias = m.bias;
  free.train(false);
  const Tensor x = rnd({B, C, H, W}, 39);
  EXPECT_TRUE(allclose(m.read({x}), free.read({x}), 1e-12, 1e-12));
  m.train(true);
  auto fn = [&](const std::vector<Tensor>& in) {
    m.gen.set_offset(0);
    l0.weight = in[1], l0.bias = in[2], l1.weight = in[3], l1.bias = in[4], m.sigma = in[5];
    return std::vector<Tensor>{m.read({in[0]})};
  };
  EXPECT_EQ(gradcheck(fn, {x, l0.weight, l0.bias, l1.weight, l1.bias, m.sigma}), "");
  EXPECT_CORTEX_ERROR(GaussianReadout({C, H, W}, N, GaussSigma::Isotropic, 0.1, false, {}, 0, PositionMLP{rnd({N + 1, D}, 1)}),
                      "retinotopic coords of shape (4, D)");
  EXPECT_CORTEX_ERROR(GaussianReadout({C, H, W}, N, GaussSigma::Isotropic, 0.1, false, {}, 0, PositionMLP{coords, 0, 1}),
                      "hidden >= 1");
}

TEST(Readouts, ReceptiveFieldCentres) {
  // Gaussian: mu (x, y) in [-1, 1] over pixel centres -> (j + 0.5) / W with j = (mu + 1) / 2 (W - 1).
  GaussianReadout g({2, 5, 9}, 2, GaussSigma::Isotropic, 0.1, false, {}, 1);
  g.mu = t64({-1.0, 1.0, 0.25, -0.5}, {2, 2});
  EXPECT_TRUE(allclose(g.rf_centres(), t64({0.5 / 9, 4.5 / 5, (5.0 + 0.5) / 9, (1.0 + 0.5) / 5}, {2, 2}), 1e-12, 1e-12));
  EXPECT_FALSE(g.rf_maps().defined());
  // Factorized and fwRF: the cell of the largest |value| of each spatial map.
  Factorized f({3, 4, 6}, 2, 2);
  f.spatial = zeros({2, 4, 6}, DType::Float64);
  f.spatial.select(0, 0).select(0, 1).select(0, 4).fill_(-3.0);  // row 1, column 4
  f.spatial.select(0, 1).select(0, 3).select(0, 0).fill_(2.0);   // row 3, column 0
  const Tensor want = t64({4.5 / 6, 1.5 / 4, 0.5 / 6, 3.5 / 4}, {2, 2});
  EXPECT_TRUE(allclose(f.rf_centres(), want, 1e-12, 1e-12));
  EXPECT_TRUE(allclose(f.rf_maps(), f.spatial, 0, 0));
  FwRF w({{3, 4, 6}, {2, 2, 2}}, 2, {}, 3);
  w.rf[0] = f.spatial;
  EXPECT_TRUE(allclose(w.rf_centres(), want, 1e-12, 1e-12));
  // Readouts without a location have none.
  EXPECT_FALSE(PooledLinear({{3, 4, 6}}, 2).rf_centres().defined());
  EXPECT_FALSE(TwoLayerEncoder(4, 3, 2).rf_centres().defined());
}
