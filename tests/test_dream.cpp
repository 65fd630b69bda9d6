// Maximally exciting images (analysis/dream.h, docs/dream.md):
// (a) planted truth: the simulator's simple cells (a linear Gabor on the grey image), a ridge model
//     fitted on the pixels (small and fast), dreams for several well-predicted simple voxels: the
//     dream's grey level correlates with the planted Gabor inside its receptive-field window (|r|,
//     sign-free; median asserted >= 0.5) and every dream drives its voxel above the best training
//     image's prediction;
// (b) determinism: the same seed gives the same images bit for bit, other seeds other images, and
//     without the diversity term image b does not depend on the batch;
// (c) the frequency parameterisation against a float64 loop of the inverse DFT, roll2 against
//     index arithmetic, and the gradient of the whole loss (fourier, jitter, TV, L2, diversity)
//     against central finite differences, in float64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <numbers>

#include "analysis/dream.h"
#include "analysis/metrics.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "data/simulate.h"
#include "encoding/model_fn.h"
#include "encoding/pipeline.h"
#include "models/readouts/train.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace cortex;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// A tiny smooth model in the given dtype: (B, 3, S, S) -> tanh(x W) (B, V).
struct Tiny {
  Tensor w;
  Tiny(int64_t S, int64_t V, DType dt, uint64_t seed) {
    Generator g(seed);
    w = randn({3 * S * S, V}, g, 0.0, 1.0 / std::sqrt(double(3 * S * S)), dt);
  }
  Tensor operator()(const Tensor& x) const { return tanh(matmul(x.reshape({x.size(0), -1}), w)); }
};

// A tiny model that exposes a layer: activations a = tanh(Wc x) (B, K, S, S) (a 1x1 convolution),
// outputs tanh(flatten(a) R) (B, V). An analysis::TapFn.
struct TinyMaps {
  Tensor wc, r;
  int64_t S;
  TinyMaps(int64_t S_, int64_t K, int64_t V, DType dt, uint64_t seed) : S(S_) {
    Generator g(seed);
    wc = randn({K, 3}, g, 0.0, 1.0, dt);
    r = randn({K * S * S, V}, g, 0.0, 1.0 / std::sqrt(double(K * S * S)), dt);
  }
  std::pair<Tensor, Tensor> operator()(const Tensor& x) const {
    const int64_t B = x.size(0);
    const Tensor a = tanh(matmul(wc, x.reshape({B, 3, S * S}))).reshape({B, wc.size(0), S, S});
    return {tanh(matmul(a.reshape({B, -1}), r)), a};
  }
};

// The largest error of the gradient of loss(params) against central differences, relative to
// |fd| + 1e-3 (float64 parameters).
double gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& loss, const std::vector<Tensor>& p0) {
  std::vector<Tensor> p;
  for (const Tensor& t : p0) p.push_back(with_grad(t.clone()));
  const auto gr = grad({loss(p)}, p);
  NoGradGuard ng;
  const double h = 1e-6;
  double worst = 0;
  for (size_t w = 0; w < p0.size(); ++w) {
    const std::vector<double> bv = p0[w].to_vector<double>(), gv = gr[w].to_vector<double>();
    for (size_t i = 0; i < bv.size(); ++i) {
      std::vector<double> a = bv, b = bv;
      a[i] += h, b[i] -= h;
      std::vector<Tensor> pa = p0, pb = p0;
      pa[w] = from_vector(a, p0[w].shape()), pb[w] = from_vector(b, p0[w].shape());
      const double fd = (loss(pa).item() - loss(pb).item()) / (2 * h);
      worst = std::max(worst, std::abs(fd - gv[i]) / (1e-3 + std::abs(fd)));
    }
  }
  return worst;
}

// Dreams (2 seeds, 100 steps, strong L2) for each of `vox`, each checked to drive its voxel above the
// best of the training images `px`, and scored by |r| of its grey level with the planted Gabor inside
// the receptive-field window (3 sigma). Returns the scores; `label` names the model in the output.
std::vector<double> planted_dream_scores(const std::string& label, const analysis::ImageFn& fn, int64_t size,
                                         int64_t voxels, const Tensor& px, const std::vector<data::Voxel>& truth,
                                         const std::vector<double>& r, const std::vector<int64_t>& vox,
                                         int64_t image_size) {
  analysis::DreamOptions d;
  // A strong L2 term keeps the dream inside (0, 1), where it follows the gradient's shape, instead of
  // saturating at the gradient's sign (median |r| 0.55 with l2 = 0, 0.84 with 100; docs/dream.md).
  d.seeds = 2, d.steps = 100, d.tv = 0.05, d.l2 = 100, d.jitter = 1;
  std::vector<double> rs;
  for (int64_t v : vox) {
    const Tensor t = analysis::voxel_targets({v}, voxels);
    const std::vector<double> tr = analysis::target_values(fn, px, t, 200);
    const double best = *std::max_element(tr.begin(), tr.end());
    const analysis::DreamResult res = analysis::dream(fn, size, t, d);
    const auto& p = truth[size_t(v)];
    const Tensor G = data::gabor_filter(image_size, p.x, p.y, p.size, p.orientation, p.frequency, p.phase);
    for (int64_t b = 0; b < d.seeds; ++b) {
      EXPECT_GT(res.response[size_t(b)], best) << label << ", voxel " << v << ", dream " << b;
      const Tensor grey = mean(res.images.select(0, b), {0}).to(DType::Float64).contiguous();
      std::vector<double> a, g;
      for (int64_t i = 0; i < image_size; ++i)
        for (int64_t j = 0; j < image_size; ++j)
          if (std::abs(double(i) - p.y) <= 3 * p.size && std::abs(double(j) - p.x) <= 3 * p.size)
            a.push_back(grey.at({i, j})), g.push_back(G.at({i, j}));
      const double rr = std::abs(analysis::pearson(a, g));
      rs.push_back(rr);
      std::printf("%s: voxel %lld (test r %.2f, sigma %.1f px): dream %lld drives %.3f (best training image %.3f), "
                  "|r| with the planted Gabor %.3f\n",
                  label.c_str(), (long long)v, r[size_t(v)], p.size, (long long)b, res.response[size_t(b)], best, rr);
    }
  }
  std::printf("planted dreams, %s: %zu voxels x %lld seeds, median |r| with the planted Gabor %.3f\n", label.c_str(),
              vox.size(), (long long)d.seeds, median(rs));
  return rs;
}

// Lucid's constants, by hand: color_correlation_svd_sqrt.
const double kLucid[3][3] = {{0.26, 0.09, 0.02}, {0.27, 0.00, -0.05}, {0.27, -0.09, 0.03}};

}  // namespace

TEST(Dream, PlantedSimpleCellsDreamTheirGabors) {
  cortex::testing::TempDir tmp;
  data::SimConfig cfg;
  cfg.n_train = 800, cfg.n_test = 50, cfg.voxels = 24, cfg.image_size = 32, cfg.seed = 5, cfg.snr = 4.0;
  const data::Simulation sim = data::simulate(cfg);
  const std::string dir = data::write_simulation(sim, tmp / "sim");
  const auto truth = data::read_ground_truth(dir, "both").voxels;
  encoding::EncodingSpec o;
  o.data = dir, o.hemi = "both", o.out = tmp / "ridge", o.device = "cpu", o.tap = "pixels", o.image_size = 32;
  o.folds = 3;
  const encoding::FitResult fr = encoding::fit(o);
  const std::vector<double> r = analysis::pearson_r(fr.pred, fr.test.responses).to(DType::Float64).to_vector<double>();
  const encoding::ModelFn f = encoding::load_model_fn(tmp / "ridge/model.safetensors");
  ASSERT_EQ(f.size, 32);
  std::vector<int64_t> vox;
  for (size_t v = 0; v < truth.size(); ++v)
    if (truth[v].kind == data::VoxelKind::Simple && r[v] > 0.5 && vox.size() < 6) vox.push_back(int64_t(v));
  ASSERT_GE(vox.size(), 4u) << "too few well-predicted simple voxels";
  // The training images as the model's pixels, and their best prediction per voxel.
  const Tensor train = sim.train_images.permute({0, 3, 1, 2}).to(DType::Float32).contiguous();
  const Tensor px = div(train, 255.0);
  const analysis::ImageFn fn = [&f](const Tensor& x) { return f(x); };

  EXPECT_GE(median(planted_dream_scores("ridge on pixels", fn, f.size, f.voxels, px, truth, r, vox, cfg.image_size)),
            0.5);
}

// The planted check on models that are nonlinear in the pixels, where the dream is no longer the
// weight map, so that it tests the optimisation itself: (1) the two-layer encoder (fc1 -> sigmoid ->
// fc2, 128 hidden units, on the z-scored grey pixels), trained by encoding::fit with early stopping;
// (2) a Gaussian fwRF (closed-form grid search of Gaussian pooling fields + ridge) on a backbone tap,
// the ReLU of random AlexNet's first convolution (features.1, 64 channels of 11 x 11 px, stride 4).
// The same simulation as the linear check. Numbers: docs/dream.md.
TEST(Dream, PlantedSimpleCellsThroughNonlinearModels) {
  cortex::testing::TempDir tmp;
  data::SimConfig cfg;
  cfg.n_train = 800, cfg.n_test = 50, cfg.voxels = 24, cfg.image_size = 32, cfg.seed = 5, cfg.snr = 4.0;
  const data::Simulation sim = data::simulate(cfg);
  const std::string dir = data::write_simulation(sim, tmp / "sim");
  const auto truth = data::read_ground_truth(dir, "both").voxels;
  const Tensor px = div(sim.train_images.permute({0, 3, 1, 2}).to(DType::Float32), 255.0).contiguous();
  for (const std::string model : {"two-layer", "gaussian-fwrf"}) {
    encoding::EncodingSpec o;
    o.data = dir, o.hemi = "both", o.out = tmp / model.c_str(), o.device = "cpu", o.image_size = 32, o.readout = model;
    if (model == "two-layer") {
      o.tap = "pixels", o.epochs = 40, o.batch = 32;
    } else {
      o.arch = "alexnet", o.random_weights = 1, o.tap = "features.1", o.folds = 3;
    }
    const encoding::FitResult fr = encoding::fit(o);
    const std::vector<double> r = analysis::pearson_r(fr.pred, fr.test.responses).to(DType::Float64).to_vector<double>();
    const encoding::ModelFn f = encoding::load_model_fn(tmp / (model + "/model.safetensors").c_str());
    ASSERT_EQ(f.size, 32);
    // A model without a backbone has no tap to give to the feature-space diversity.
    if (model == "two-layer") EXPECT_THROW(f.with_features(px.narrow(0, 0, 2)), Error);
    std::vector<int64_t> vox;
    for (size_t v = 0; v < truth.size(); ++v)
      if (truth[v].kind == data::VoxelKind::Simple && r[v] > 0.5 && vox.size() < 6) vox.push_back(int64_t(v));
    ASSERT_GE(vox.size(), 4u) << model << ": too few well-predicted simple voxels";
    const analysis::ImageFn fn = [&f](const Tensor& x) { return f(x); };

    EXPECT_GE(median(planted_dream_scores(model, fn, f.size, f.voxels, px, truth, r, vox, cfg.image_size)), 0.5)
        << model;
    if (model != "gaussian-fwrf") continue;
    // The feature-space diversity through the fitted model's tap (ModelFn::with_features): four dreams
    // of the first voxel, less alike in features.1's Gram space with the term (weight 10) than without
    // it, and each still above the best training image.
    const analysis::TapFn tf = [&f](const Tensor& x) { return f.with_features(x); };
    const Tensor t = analysis::voxel_targets({vox[0]}, f.voxels);
    const std::vector<double> tr = analysis::target_values(fn, px, t, 200);
    const double best = *std::max_element(tr.begin(), tr.end());
    analysis::DreamOptions d;  // the planted check's settings, four seeds, the feature space
    d.steps = 100, d.tv = 0.05, d.l2 = 100, d.jitter = 1;
    d.seeds = 4, d.diversity_space = analysis::DiversitySpace::Features;
    std::vector<double> cosine;
    for (double w : {0.0, 10.0}) {
      d.diversity = w;
      const analysis::DreamResult res = analysis::dream(tf, f.size, t, d);
      NoGradGuard ng;
      const Tensor c = analysis::gram_cosines(f.with_features(res.images).second);
      double off = 0;
      for (int64_t b = 0; b < d.seeds; ++b)
        for (int64_t e = 0; e < d.seeds; ++e)
          if (b != e) off += c.at({b, e}) / double(d.seeds * (d.seeds - 1));
      cosine.push_back(off);
      const double low = *std::min_element(res.response.begin(), res.response.end());
      std::printf("%s, voxel %lld, 4 dreams, feature diversity %.0f: mean pairwise Gram cosine of features.1 %.4f, "
                  "lowest response %.3f (best training image %.3f)\n",
                  model.c_str(), (long long)vox[0], w, off, low, best);
      EXPECT_GT(low, best) << "feature diversity " << w;
    }
    EXPECT_LT(cosine[1], cosine[0] - 0.2);  // measured 0.91 -> 0.22
  }
}

TEST(Dream, SameSeedSameImagesOtherSeedsOtherImages) {
  const int64_t S = 9, V = 5;
  Tiny m(S, V, DType::Float32, 3);
  const analysis::ImageFn fn = [&m](const Tensor& x) { return m(x); };
  const Tensor t = analysis::mean_target({1, 3}, V);
  for (auto param : {analysis::DreamParam::Fourier, analysis::DreamParam::Pixels}) {
    analysis::DreamOptions o;
    o.param = param, o.steps = 15, o.seeds = 3, o.seed = 7, o.jitter = 2, o.tv = 0.1, o.l2 = 0.1, o.diversity = 0.5;
    const auto a = analysis::dream(fn, S, t, o), b = analysis::dream(fn, S, t, o);
    const auto av = a.images.to_vector<float>(), bv = b.images.to_vector<float>();
    EXPECT_EQ(av, bv) << "the same seed twice";
    EXPECT_EQ(a.loss, b.loss);
    ASSERT_EQ(a.loss.size(), 15u);
    ASSERT_EQ(a.images.shape(), (Shape{3, 3, S, S}));
    for (float v : av) ASSERT_TRUE(v >= 0 && v <= 1);
    // The optimisation climbs: the last step's objective above the first's.
    EXPECT_GT(a.objective.back(), a.objective.front());
    o.seed = 8;
    const auto c = analysis::dream(fn, S, t, o);
    EXPECT_NE(c.images.to_vector<float>(), av) << "another seed";
    // The images of one batch differ from each other.
    double d01 = 0;
    for (int64_t i = 0; i < 3 * S * S; ++i) d01 = std::max(d01, std::abs(double(av[size_t(i)] - av[size_t(3 * S * S + i)])));
    EXPECT_GT(d01, 1e-3);
    // Without diversity, image 1 of seeds {7, 8} is the image of seed 8 alone.
    o.diversity = 0, o.seed = 7, o.seeds = 2;
    const auto two = analysis::dream(fn, S, t, o);
    o.seed = 8, o.seeds = 1;
    const auto one = analysis::dream(fn, S, t, o);
    const auto tv = two.images.to_vector<float>(), ov = one.images.to_vector<float>();
    for (int64_t i = 0; i < 3 * S * S; ++i) ASSERT_NEAR(tv[size_t(3 * S * S + i)], ov[size_t(i)], 1e-5);
  }
}

TEST(Dream, FourierImageAndRollAgainstLoops) {
  for (int64_t S : {1 + 1, 5, 6}) {
    const int64_t Wf = S / 2 + 1;
    Generator g(11);
    const Tensor re = randn({2, 3, S, Wf}, g, 0, 1, DType::Float64), im = randn({2, 3, S, Wf}, g, 0, 1, DType::Float64);
    const Tensor x = analysis::fourier_image(re, im, S);
    ASSERT_EQ(x.shape(), (Shape{2, 3, S, S}));
    const double pi = std::numbers::pi;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t h = 0; h < S; ++h)
          for (int64_t w = 0; w < S; ++w) {
            double v = 0;
            for (int64_t k = 0; k < S; ++k)
              for (int64_t l = 0; l < Wf; ++l) {
                const double fk = double(k <= S / 2 ? k : k - S) / double(S), fl = double(l) / double(S);
                const double s = 1.0 / std::max(std::sqrt(fk * fk + fl * fl), 1.0 / double(S));
                const double cl = (l == 0 || (S % 2 == 0 && l == S / 2)) ? 1 : 2;
                const double ang = 2 * pi * (double(k * h) / double(S) + double(l * w) / double(S));
                v += cl * s * (re.at({b, c, k, l}) * std::cos(ang) - im.at({b, c, k, l}) * std::sin(ang));
              }
            const double want = 1 / (1 + std::exp(-v / std::sqrt(double(S * S)) / 4));
            ASSERT_NEAR(x.at({b, c, h, w}), want, 1e-12) << S << " " << b << c << h << w;
          }
  }
  Generator g(2);
  const Tensor x = randn({2, 1, 4, 7}, g);
  for (auto [dy, dx] : {std::pair<int64_t, int64_t>{0, 0}, {1, -3}, {-5, 9}, {4, 7}}) {
    const Tensor y = analysis::roll2(x, dy, dx);
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 7; ++j)
          ASSERT_EQ(y.at({b, 0, i, j}), x.at({b, 0, (((i - dy) % 4) + 4) % 4, (((j - dx) % 7) + 7) % 7}));
  }
  EXPECT_THROW(analysis::roll2(zeros({3, 4}), 1, 1), Error);
  EXPECT_THROW(analysis::fourier_image(zeros({1, 3, 4, 4}), zeros({1, 3, 4, 4}), 4), Error);
}

TEST(Dream, LossGradientMatchesFiniteDifferences) {
  const int64_t S = 6, V = 4, B = 3, Wf = S / 2 + 1;
  Tiny m(S, V, DType::Float64, 5);
  const analysis::ImageFn fn = [&m](const Tensor& x) { return m(x); };
  const Tensor t = analysis::voxel_targets({2}, V).to(DType::Float64);
  analysis::DreamOptions o;
  o.tv = 0.3, o.l2 = 0.7, o.diversity = 0.9;
  const std::vector<std::array<int64_t, 2>> shifts = {{1, -2}, {0, 0}, {-3, 5}};
  Generator g(9);
  const Tensor re0 = randn({B, 3, S, Wf}, g, 0, 0.3, DType::Float64), im0 = randn({B, 3, S, Wf}, g, 0, 0.3, DType::Float64);
  auto loss = [&](const Tensor& re, const Tensor& im) {
    return analysis::dream_loss(fn, analysis::fourier_image(re, im, S), t, o, shifts);
  };
  const Tensor re = with_grad(re0.clone()), im = with_grad(im0.clone());
  const auto gr = grad({loss(re, im)}, {re, im});
  NoGradGuard ng;
  const double h = 1e-6;
  double worst = 0;
  for (int which = 0; which < 2; ++which) {
    const Tensor base = which == 0 ? re0 : im0;
    const std::vector<double> bv = base.to_vector<double>();
    const std::vector<double> gv = gr[size_t(which)].to_vector<double>();
    for (size_t i = 0; i < bv.size(); ++i) {
      std::vector<double> p = bv, q = bv;
      p[i] += h, q[i] -= h;
      const Tensor tp = from_vector(p, base.shape()), tq = from_vector(q, base.shape());
      const double fd = which == 0 ? (loss(tp, im0).item() - loss(tq, im0).item()) / (2 * h)
                                   : (loss(re0, tp).item() - loss(re0, tq).item()) / (2 * h);
      // Relative to |fd| + 1e-3: the imaginary parts numpy ignores have a zero gradient on both sides.
      worst = std::max(worst, std::abs(fd - gv[i]) / (1e-3 + std::abs(fd)));
    }
  }
  std::printf("fourier loss gradient against central differences: largest relative error %.2e\n", worst);
  EXPECT_LT(worst, 1e-6);
}

TEST(Dream, ColourDecorrelationAgainstFloat64) {
  // Column norms of Lucid's matrix: the first (luminance) is the largest, sqrt(0.26^2 + 0.27^2 + 0.27^2).
  const double top = std::sqrt(0.26 * 0.26 + 0.27 * 0.27 + 0.27 * 0.27);
  const Tensor M = analysis::colour_correlation_sqrt();
  ASSERT_EQ(M.shape(), (Shape{3, 3}));
  ASSERT_EQ(M.dtype(), DType::Float64);
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(M.at({c, k}), kLucid[c][k] / top, 1e-15);
  for (int k = 0; k < 3; ++k) {
    double n = 0;
    for (int c = 0; c < 3; ++c) n += M.at({c, k}) * M.at({c, k});
    EXPECT_LE(std::sqrt(n), 1 + 1e-15) << "column " << k;
  }
  Generator g(4);
  for (auto [B, H, W] : {std::array<int64_t, 3>{2, 5, 4}, {1, 1, 1}, {0, 3, 3}}) {
    const Tensor t = randn({B, 3, H, W}, g, 0, 1, DType::Float64);
    const Tensor y = analysis::decorrelate_colour(t);
    ASSERT_EQ(y.shape(), t.shape());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < H; ++i)
          for (int64_t j = 0; j < W; ++j) {
            double v = 0;
            for (int64_t k = 0; k < 3; ++k) v += kLucid[c][k] / top * t.at({b, k, i, j});
            ASSERT_NEAR(y.at({b, c, i, j}), v, 1e-14);
          }
  }
  EXPECT_EQ(analysis::decorrelate_colour(randn({1, 3, 2, 2}, g)).dtype(), DType::Float32);
  // The fourier image with it: sigmoid of the decorrelated pre-sigmoid image of the plain map (which
  // FourierImageAndRollAgainstLoops checks against the inverse DFT).
  const int64_t S = 5;
  const Tensor re = randn({2, 3, S, S / 2 + 1}, g, 0, 1, DType::Float64), im = randn({2, 3, S, S / 2 + 1}, g, 0, 1, DType::Float64);
  const Tensor x0 = analysis::fourier_image(re, im, S), x1 = analysis::fourier_image(re, im, S, true);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < S; ++j) {
          double v = 0;
          for (int64_t k = 0; k < 3; ++k) {
            const double p = x0.at({b, k, i, j});
            v += kLucid[c][k] / top * std::log(p / (1 - p));
          }
          ASSERT_NEAR(x1.at({b, c, i, j}), 1 / (1 + std::exp(-v)), 1e-12);
        }
  EXPECT_THROW(analysis::decorrelate_colour(zeros({1, 4, 2, 2})), Error);
  EXPECT_THROW(analysis::decorrelate_colour(zeros({3, 2, 2})), Error);
}

TEST(Dream, GramCosinesAgainstFloat64) {
  Generator g(8);
  // Maps with fewer channels than positions (the Gram form) and more (the kernel form), tokens, flat
  // features, and a batch of one.
  for (const Shape& sh : {Shape{3, 2, 3, 2}, Shape{3, 7, 2, 1}, Shape{4, 5, 4}, Shape{3, 6}, Shape{1, 3, 2, 2}}) {
    const Tensor a = randn(sh, g, 0, 1, DType::Float64);
    const int64_t B = sh[0];
    // X_b (P, C) by index arithmetic, then G_b (C, C) explicitly.
    std::vector<std::vector<double>> G(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) {
      int64_t P, C;
      std::function<double(int64_t, int64_t)> x;
      if (sh.size() == 4) P = sh[2] * sh[3], C = sh[1], x = [&, b](int64_t p, int64_t c) { return a.at({b, c, p / sh[3], p % sh[3]}); };
      else if (sh.size() == 3) P = sh[1], C = sh[2], x = [&, b](int64_t p, int64_t c) { return a.at({b, p, c}); };
      else P = 1, C = sh[1], x = [&, b](int64_t, int64_t c) { return a.at({b, c}); };
      for (int64_t i = 0; i < C; ++i)
        for (int64_t j = 0; j < C; ++j) {
          double v = 0;
          for (int64_t p = 0; p < P; ++p) v += x(p, i) * x(p, j);
          G[size_t(b)].push_back(v);
        }
    }
    const Tensor cs = analysis::gram_cosines(a);
    ASSERT_EQ(cs.shape(), (Shape{B, B}));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < B; ++c) {
        double bc = 0, bb = 0, cc = 0;
        for (size_t k = 0; k < G[0].size(); ++k)
          bc += G[size_t(b)][k] * G[size_t(c)][k], bb += G[size_t(b)][k] * G[size_t(b)][k], cc += G[size_t(c)][k] * G[size_t(c)][k];
        ASSERT_NEAR(cs.at({b, c}), bc / std::sqrt(bb * cc), 1e-9) << shape_str(sh) << " " << b << " " << c;
      }
  }
  EXPECT_THROW(analysis::gram_cosines(zeros({3})), Error);
  EXPECT_THROW(analysis::gram_cosines(zeros({2, 0, 3})), Error);
}

// The whole loss's gradient with the new terms, in float64: colour decorrelation in both
// parameterisations, and the feature-space diversity through a model's layer in both forms of the
// Gram inner products (fewer and more channels than positions).
TEST(Dream, DecorrelatedAndFeatureDiversityGradientsMatchFiniteDifferences) {
  const int64_t S = 6, V = 4, B = 3, Wf = S / 2 + 1;
  const Tensor t = analysis::voxel_targets({1}, V).to(DType::Float64);
  const std::vector<std::array<int64_t, 2>> shifts = {{1, -2}, {0, 0}, {-3, 5}};
  Generator g(12);
  const Tensor re = randn({B, 3, S, Wf}, g, 0, 0.3, DType::Float64), im = randn({B, 3, S, Wf}, g, 0, 0.3, DType::Float64);
  const Tensor z = randn({B, 3, S, S}, g, 0, 0.5, DType::Float64);
  for (int64_t K : {3, 40}) {
    TinyMaps m(S, K, V, DType::Float64, 7 + uint64_t(K));
    const analysis::TapFn fn = [&m](const Tensor& x) { return m(x); };
    for (auto space : {analysis::DiversitySpace::Pixels, analysis::DiversitySpace::Features}) {
      analysis::DreamOptions o;
      o.tv = 0.3, o.l2 = 0.7, o.diversity = 0.9, o.diversity_space = space, o.decorrelate = true;
      const double ef = gradcheck([&](const std::vector<Tensor>& p) {
        return analysis::dream_loss(fn, analysis::fourier_image(p[0], p[1], S, true), t, o, shifts);
      }, {re, im});
      const double ep = gradcheck([&](const std::vector<Tensor>& p) {
        return analysis::dream_loss(fn, sigmoid(analysis::decorrelate_colour(p[0])), t, o, shifts);
      }, {z});
      std::printf("K %lld, diversity in %s, decorrelated: largest relative gradient error fourier %.2e, pixels %.2e\n",
                  (long long)K, analysis::diversity_space_name(space), ef, ep);
      // Central differences at h = 1e-6 round to about eps |L| / h ~ 1e-8 here; a wrong term is off by O(1).
      EXPECT_LT(ef, 1e-5);
      EXPECT_LT(ep, 1e-5);
    }
  }
  // An ImageFn has no layer to give.
  Tiny plain(S, V, DType::Float64, 5);
  const analysis::ImageFn pf = [&plain](const Tensor& x) { return plain(x); };
  analysis::DreamOptions o;
  o.diversity = 1, o.diversity_space = analysis::DiversitySpace::Features, o.seeds = 2;
  EXPECT_THROW(analysis::dream_loss(pf, sigmoid(z), t, o, shifts), Error);
  EXPECT_THROW(analysis::dream(pf, S, t, o), Error);
}

// The feature-space term does what it is for: the B dreams of one target are less alike in the
// layer's Gram space with it than without it, while each still drives the target.
TEST(Dream, FeatureDiversitySpreadsTheDreamsInGramSpace) {
  const int64_t S = 8, V = 3, B = 4;
  TinyMaps m(S, 4, V, DType::Float32, 21);
  const analysis::TapFn fn = [&m](const Tensor& x) { return m(x); };
  const Tensor t = analysis::voxel_targets({0}, V);
  auto spread = [&](double w) {
    analysis::DreamOptions o;
    o.seeds = B, o.steps = 60, o.jitter = 0, o.param = analysis::DreamParam::Pixels, o.lr = 0.1;
    o.diversity = w, o.diversity_space = analysis::DiversitySpace::Features;
    const analysis::DreamResult r = analysis::dream(fn, S, t, o);
    NoGradGuard ng;
    const Tensor c = analysis::gram_cosines(m(r.images).second);
    double off = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t d = 0; d < B; ++d)
        if (b != d) off += c.at({b, d}) / double(B * (B - 1));
    const double low = *std::min_element(r.response.begin(), r.response.end());
    return std::pair{off, low};
  };
  const auto [without, low0] = spread(0.0);
  const auto [with, low1] = spread(1.0);
  double grey;
  {
    NoGradGuard ng;
    grey = m(full({1, 3, S, S}, 0.5)).first.at({0, 0});
  }
  std::printf("mean pairwise Gram cosine of the %lld dreams: %.4f without the feature diversity, %.4f with it "
              "(weight 1); lowest response %.3f and %.3f (grey image %.3f)\n", (long long)B, without, with, low0,
              low1, grey);
  EXPECT_LT(with, without - 0.05);
  // Each dream still drives the target: above the grey start, by at least half of what the dreams
  // without the term gain.
  EXPECT_GT(low1, grey + 0.5 * (low0 - grey));
}

// encoding::ModelFn::with_features: the same outputs as the model, and the backbone tap's activations
// of the same normalised pixels, on a ridge fit of random AlexNet features at 32 px and on a fine-tuned
// fit (tests/cli_dream.sh dreams through a tap with --diversity-space features).
TEST(Dream, ModelFnGivesItsTapForTheFeatureDiversity) {
  cortex::testing::TempDir tmp;
  data::SimConfig cfg;
  cfg.n_train = 60, cfg.n_test = 10, cfg.voxels = 4, cfg.image_size = 32, cfg.seed = 2;
  const data::Simulation sim = data::simulate(cfg);
  const std::string dir = data::write_simulation(sim, tmp / "sim");
  encoding::EncodingSpec o;
  o.data = dir, o.hemi = "both", o.out = tmp / "rw", o.device = "cpu", o.arch = "alexnet", o.random_weights = 1;
  o.tap = "features.1", o.image_size = 32, o.folds = 2;
  encoding::fit(o);
  const encoding::ModelFn f = encoding::load_model_fn(tmp / "rw/model.safetensors");
  const Tensor px = div(sim.test_images.narrow(0, 0, 3).permute({0, 3, 1, 2}).to(DType::Float32), 255.0).contiguous();
  const auto [y, a] = f.with_features(px);
  EXPECT_EQ(y.to_vector<float>(), f(px).to_vector<float>());
  const Tensor mean = from_vector(std::vector<float>{0.485f, 0.456f, 0.406f}, {1, 3, 1, 1});
  const Tensor sd = from_vector(std::vector<float>{0.229f, 0.224f, 0.225f}, {1, 3, 1, 1});
  {
    NoGradGuard ng;
    const Tensor want = f.backbone->features(div(sub(px, mean), sd), {"features.1"}).at("features.1");
    ASSERT_EQ(a.shape(), want.shape());
    EXPECT_EQ(a.shape().size(), 4u);
    EXPECT_EQ(a.contiguous().to_vector<float>(), want.contiguous().to_vector<float>());
  }

  // A fine-tuned model (one epoch of a Gaussian readout with the backbone): its own backbone's tap.
  o.out = tmp / "ft", o.readout = "gaussian", o.finetune = true, o.epochs = 1;
  encoding::fit(o);
  const encoding::ModelFn ft = encoding::load_model_fn(tmp / "ft/model.safetensors");
  ASSERT_FALSE(ft.backbone);
  const auto [yf, af] = ft.with_features(px);
  EXPECT_EQ(yf.to_vector<float>(), ft(px).to_vector<float>());
  const auto& net = dynamic_cast<const models::BackboneReadout&>(*ft.readout);
  NoGradGuard ng;
  const Tensor wf = net.backbone->features(div(sub(px, mean), sd), {"features.1"}).at("features.1");
  ASSERT_EQ(af.shape(), wf.shape());
  EXPECT_EQ(af.contiguous().to_vector<float>(), wf.contiguous().to_vector<float>());
}

TEST(Dream, RefusesBadOptions) {
  Tiny m(4, 2, DType::Float32, 1);
  const analysis::ImageFn fn = [&m](const Tensor& x) { return m(x); };
  const Tensor t = analysis::voxel_targets({0}, 2);
  auto bad = [&](auto edit) {
    analysis::DreamOptions o;
    o.steps = 2, o.jitter = 1;
    edit(o);
    EXPECT_THROW(analysis::dream(fn, 4, t, o), Error);
  };
  bad([](auto& o) { o.steps = 0; });
  bad([](auto& o) { o.seeds = 0; });
  bad([](auto& o) { o.lr = 0; });
  bad([](auto& o) { o.jitter = 4; });
  bad([](auto& o) { o.tv = -1; });
  bad([](auto& o) { o.l2 = NAN; });
  bad([](auto& o) { o.seeds = 1, o.diversity = 1; });
  EXPECT_THROW(analysis::dream(fn, 4, analysis::voxel_targets({0}, 3), {}), Error);
  EXPECT_THROW(analysis::parse_dream_param("wavelet"), Error);
}
