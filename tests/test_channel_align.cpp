// Channel align (models/readouts/channel_align.h): the forward and the aligned features against
// float64 loops, gradchecks of the readout and of the eigen-constraint on a graph with a clear
// eigengap, the regularisers' closed forms and invariances, the brain r on simulated voxels
// against ridge on the same features, and the errors.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "models/module.h"
#include "models/readouts/channel_align.h"
#include "models/readouts/ridge.h"
#include "models/readouts/train.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::models;
using cortex::testing::allclose;
using cortex::testing::randn;

namespace {

// Every parameter as float64 (the readout then runs in float64, as the gradchecks need).
void to_f64(ChannelAlign& m) {
  for (auto& a : m.align) a = a.to(DType::Float64);
  m.head_weight = m.head_weight.to(DType::Float64);
  m.head_bias = m.head_bias.to(DType::Float64);
}

// m nodes in 3 well-separated clusters along random directions of R^c (plus a little noise): the
// Ncut graph has 3 strong eigenvectors and a clear gap after the third.
Tensor clustered_nodes(int64_t m, int64_t c, uint64_t seed) {
  Tensor centres = randn({3, c}, seed);
  Tensor noise = randn({m, c}, seed + 1);
  std::vector<double> v(static_cast<size_t>(m * c));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < c; ++j)
      v[static_cast<size_t>(i * c + j)] = 3.0 * centres.at({i % 3, j}) + 0.3 * noise.at({i, j});
  return from_vector(v, {m, c}, DType::Float64);
}

// Eigenvalues (descending) of the normalised cosine graph of x, in float64 loops.
std::vector<double> graph_spectrum(const Tensor& x, double t) {
  const int64_t m = x.size(0), d = x.size(1);
  std::vector<double> n(static_cast<size_t>(m * d));
  for (int64_t i = 0; i < m; ++i) {
    double s = 0;
    for (int64_t j = 0; j < d; ++j) s += x.at({i, j}) * x.at({i, j});
    for (int64_t j = 0; j < d; ++j) n[static_cast<size_t>(i * d + j)] = x.at({i, j}) / std::sqrt(s);
  }
  std::vector<double> a(static_cast<size_t>(m * m)), deg(static_cast<size_t>(m), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < m; ++k) {
      double c = 0;
      for (int64_t j = 0; j < d; ++j) c += n[static_cast<size_t>(i * d + j)] * n[static_cast<size_t>(k * d + j)];
      a[static_cast<size_t>(i * m + k)] = std::exp((c - 1) / t);
      deg[static_cast<size_t>(i)] += a[static_cast<size_t>(i * m + k)];
    }
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < m; ++k) a[static_cast<size_t>(i * m + k)] /= std::sqrt(deg[i] * deg[k]);
  Tensor at = from_vector(a, {m, m}, DType::Float64);
  return eigh_topk(at, m).values.to_vector<double>();
}

}  // namespace

TEST(ChannelAlign, ReadAndAlignedFeaturesMatchLoops) {
  ChannelAlignOptions o;
  o.dim = 5;
  ChannelAlign ca({{3, 2, 3}, {4, 1, 1}}, 2, o, 7);
  to_f64(ca);
  ca.head_bias = randn({2}, 8);
  Tensor f0 = randn({3, 3, 2, 3}, 1), f1 = randn({3, 4, 1, 1}, 2);
  Tensor y = ca.read({f0, f1});
  std::vector<Tensor> z = ca.aligned_features({f0, f1});
  ASSERT_EQ(y.shape(), Shape({3, 2}));
  ASSERT_EQ(z[0].shape(), Shape({3, 6, 5}));
  ASSERT_EQ(z[1].shape(), Shape({3, 1, 5}));
  const std::vector<Tensor> fs = {f0, f1};
  for (int64_t b = 0; b < 3; ++b) {
    std::vector<double> shared(5, 0.0);
    for (size_t l = 0; l < 2; ++l) {
      const Tensor& f = fs[l];
      const int64_t c = f.size(1), h = f.size(2), w = f.size(3);
      for (int64_t d = 0; d < 5; ++d)
        for (int64_t i = 0; i < h; ++i)
          for (int64_t j = 0; j < w; ++j) {
            double v = 0;
            for (int64_t k = 0; k < c; ++k) v += ca.align[l].at({d, k}) * f.at({b, k, i, j});
            EXPECT_NEAR(z[l].at({b, i * w + j, d}), v, 1e-12);
            shared[static_cast<size_t>(d)] += v / static_cast<double>(h * w);
          }
    }
    for (int64_t v = 0; v < 2; ++v) {
      double ref = ca.head_bias.at({v});
      for (int64_t d = 0; d < 5; ++d) ref += ca.head_weight.at({v, d}) * shared[static_cast<size_t>(d)];
      EXPECT_NEAR(y.at({b, v}), ref, 1e-12);
    }
  }
  // Parameter names as the model file stores them.
  std::vector<std::string> names;
  for (auto& [n, t] : ca.named_parameters()) names.push_back(n);
  EXPECT_EQ(names, (std::vector<std::string>{"align.0", "align.1", "head.weight", "head.bias"}));
}

TEST(ChannelAlign, ReadoutGradcheck) {
  ChannelAlignOptions o;
  o.dim = 3;
  ChannelAlign ca({{2, 2, 2}, {3, 1, 2}}, 2, o, 3);
  to_f64(ca);
  Tensor f0 = randn({2, 2, 2, 2}, 4), f1 = randn({2, 3, 1, 2}, 5);
  EXPECT_GRADCHECK(
      [&](const std::vector<Tensor>& x) {
        ca.align[0] = x[0], ca.align[1] = x[1], ca.head_weight = x[2];
        return std::vector<Tensor>{ca.read({x[3], f1})};
      },
      {ca.align[0], ca.align[1], ca.head_weight, f0});
}

TEST(ChannelAlign, EigenConstraintGradcheckWithEigengap) {
  // 24 nodes in 3 clusters, k = 3: after a random alignment the graph's third and fourth
  // eigenvalues are far apart (asserted), so the subspace is differentiable and well conditioned.
  ChannelAlignOptions o;
  o.dim = 6;
  o.eig_k = 3;
  o.temperature = 0.5;
  ChannelAlign ca({{5, 1, 1}}, 1, o, 11);
  to_f64(ca);
  const Tensor nodes = clustered_nodes(24, 5, 12);
  const Tensor w0 = add(ca.align[0], mul(randn({6, 5}, 13), 0.3));
  const std::vector<double> ev = graph_spectrum(matmul(nodes, w0.t()), o.temperature);
  EXPECT_GT(ev[2] - ev[3], 0.2) << "eigenvalues " << ev[0] << " " << ev[1] << " " << ev[2] << " " << ev[3];
  const std::vector<double> evb = graph_spectrum(nodes, o.temperature);
  EXPECT_GT(evb[2] - evb[3], 0.2);
  auto f = [&](const std::vector<Tensor>& x) {
    ca.align[0] = x[0];
    auto [e, fo] = ca.eigen_constraint(0, nodes);
    return std::vector<Tensor>{e, fo};
  };
  EXPECT_GRADCHECK(f, {w0});
  // The value is not trivially 0 there (the gradient above is not the gradient of a constant).
  ca.align[0] = w0;
  EXPECT_GT(ca.eigen_constraint(0, nodes).first.item(), 1e-4);
  // The other two regularisers, through penalties() on maps holding those nodes as tokens.
  Tensor maps = nodes.reshape({24, 5, 1, 1});
  ChannelAlignOptions oz = o;
  oz.nodes = 24;
  ChannelAlign cz({{5, 1, 1}}, 1, oz, 11);
  to_f64(cz);
  EXPECT_GRADCHECK(
      [&](const std::vector<Tensor>& x) {
        cz.align[0] = x[0];
        cz.gen.set_offset(0);  // the same nodes (all 24, permuted) at every call
        ChannelAlign::Penalties p = cz.penalties({maps}, true);
        return std::vector<Tensor>{p.zero_centre, p.covariance};
      },
      {w0});
}

TEST(ChannelAlign, RegularisersClosedFormsAndInvariances) {
  ChannelAlignOptions o;
  o.dim = 7;
  o.eig_k = 3;
  o.nodes = 30;
  ChannelAlign ca({{5, 5, 6}}, 1, o, 21);
  to_f64(ca);
  const Tensor nodes = clustered_nodes(30, 5, 22);
  // An isometry (orthonormal columns, D >= C) keeps every cosine, so the graph and its
  // eigenvectors: the eigen-constraint and its focal variant are 0.
  Tensor q = kernels::qr(randn({7, 5}, 23)).q;  // (7, 5), q^T q = I
  ca.align[0] = q;
  auto [e0, f0] = ca.eigen_constraint(0, nodes);
  EXPECT_LT(e0.item(), 1e-20);
  EXPECT_LT(f0.item(), 1e-20);
  // Scale invariance of all four.
  Tensor maps = nodes.t().contiguous().reshape({1, 5, 5, 6});  // the 30 nodes as the tokens of one image
  ca.align[0] = randn({7, 5}, 24);
  ca.gen.set_offset(0);
  ChannelAlign::Penalties a = ca.penalties({maps}, true);
  ca.align[0] = mul(ca.align[0], 3.0);
  ca.gen.set_offset(0);
  ChannelAlign::Penalties b = ca.penalties({maps}, true);
  EXPECT_NEAR(a.eigen.item(), b.eigen.item(), 1e-9);
  EXPECT_NEAR(a.focal.item(), b.focal.item(), 1e-9);
  EXPECT_NEAR(a.zero_centre.item(), b.zero_centre.item(), 1e-12);
  EXPECT_NEAR(a.covariance.item(), b.covariance.item(), 1e-12);
  EXPECT_GT(a.eigen.item(), 0.0);
  // Zero-centre: tokens all equal -> |mean|^2 / mean |z|^2 = 1; centred +-v -> 0.
  Tensor same = full({2, 5, 5, 6}, 0.5, DType::Float64);
  EXPECT_NEAR(ca.penalties({same}, true).zero_centre.item(), 1.0, 1e-12);
  // Covariance: aligned features with a diagonal covariance (W picks two independent +-1
  // coordinates, all four sign pairs present) -> 0; perfectly correlated -> |C_off|^2 / |C|^2 = 1/2.
  ChannelAlignOptions o2;
  o2.dim = 2;
  o2.nodes = 4;
  ChannelAlign c2({{2, 2, 2}}, 1, o2, 1);
  to_f64(c2);
  c2.align[0] = eye(2, 2, DType::Float64);
  Tensor grid = from_vector(std::vector<double>{1, 1, -1, -1, 1, -1, 1, -1}, {1, 2, 2, 2}, DType::Float64);
  EXPECT_NEAR(c2.penalties({grid}, true).covariance.item(), 0.0, 1e-12);
  c2.align[0] = from_vector(std::vector<double>{1, 0, 1, 0}, {2, 2}, DType::Float64);
  EXPECT_NEAR(c2.penalties({grid}, true).covariance.item(), 0.5, 1e-12);
}

TEST(ChannelAlign, BrainRWithinFivePercentOfRidge) {
  // Simulated voxels: a linear function of the three layers' pooled features (which share a
  // latent per image) plus noise at SNR 1. Ridge CV on the concatenated pooled features against
  // channel align (defaults: L1 loss, eigen-constraint on, D = 64 >= 36 channels) trained with
  // early stopping: mean test r of each and their ratio.
  const int64_t n = 700, n_test = 200, V = 30;
  const std::vector<MapShape> shapes = {{12, 4, 4}, {16, 3, 3}, {8, 2, 2}};
  Tensor latent = randn({n, 6}, 100);
  std::vector<Tensor> maps;
  uint64_t seed = 200;
  for (const auto& s : shapes) {
    Tensor mix = randn({s.c, 6}, seed++);
    Tensor pattern = mul(randn({1, s.c, s.h, s.w}, seed++), 0.5);
    Tensor per_image = matmul(latent, mix.t()).reshape({n, s.c, 1, 1});
    maps.push_back(add(add(per_image, pattern), randn({n, s.c, s.h, s.w}, seed++)).to(DType::Float32));
  }
  std::vector<Tensor> pooled;
  for (const Tensor& m : maps) pooled.push_back(mean(m, {2, 3}).to(DType::Float64));
  Tensor x = concat(pooled, 1);  // (n, 36)
  Tensor beta = randn({36, V}, 300);
  Tensor clean = matmul(x, beta);
  Tensor noise_sd = std_dev(clean, {0}, 1, true);
  Tensor y = add(clean, mul(randn({n, V}, 301), noise_sd)).to(DType::Float32);

  auto rows = [](const Tensor& t, int64_t lo, int64_t hi) { return t.narrow(0, lo, hi - lo).contiguous(); };
  const int64_t n_fit = n - n_test - 100;  // then 100 validation rows, then the test rows
  std::vector<Tensor> fit_maps, val_maps, test_maps;
  for (const Tensor& m : maps) {
    fit_maps.push_back(rows(m, 0, n_fit));
    val_maps.push_back(rows(m, n_fit, n - n_test));
    test_maps.push_back(rows(m, n - n_test, n));
  }
  const std::vector<double> alphas = {1e-2, 1e-1, 1, 10, 1e2, 1e3, 1e4};
  // Ridge on the same training rows (fit + validation) and the same features, pooled.
  const RidgeCV ridge = fit_ridge_cv(rows(x, 0, n - n_test).to(DType::Float32), rows(y, 0, n - n_test), alphas, 5, 0);
  const double r_ridge = mean_pearson_r(predict(rows(x, n - n_test, n).to(DType::Float32), ridge), rows(y, n - n_test, n));

  const auto t0 = std::chrono::steady_clock::now();
  ChannelAlignOptions o;
  o.dim = 64;
  o.nodes = 100;
  ChannelAlign ca(shapes, V, o, 1);
  ca.warm_start(fit_maps, rows(y, 0, n_fit), alphas, 5, 0);
  TrainOptions to;
  to.loss = LossKind::L1;
  to.penalty_weight = 1.0;
  to.lr = 1e-3;
  to.max_epochs = 40;
  to.patience = 5;
  const TrainResult res = train_readout(ca, in_memory_batches(fit_maps, rows(y, 0, n_fit), 32, true, 1),
                                        in_memory_batches(val_maps, rows(y, n_fit, n - n_test), 256, false), to);
  ca.train(false);
  Tensor pred;
  {
    NoGradGuard ng;
    pred = ca.read(test_maps);
  }
  const double r_ca = mean_pearson_r(pred, rows(y, n - n_test, n));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "brain r on simulated voxels: ridge " << r_ridge << ", channel align " << r_ca << ", ratio "
            << r_ca / r_ridge << " (" << res.epochs << " epochs, best " << res.best_epoch + 1 << ", " << secs
            << " s)\n";
  EXPECT_GT(r_ridge, 0.5);  // the task is learnable
  EXPECT_GE(r_ca / r_ridge, 0.95);
  // The regularisers were on and finite during training (the eigen-constraint had gradients).
  ca.train(true);
  ca.read(fit_maps);
  const double pen = ca.penalty().item();
  EXPECT_TRUE(std::isfinite(pen) && pen > 0);
}

TEST(ChannelAlign, Errors) {
  ChannelAlign ca({{3, 2, 2}, {2, 1, 1}}, 4);
  EXPECT_CORTEX_ERROR(ca.read({randn({2, 3, 2, 2}, 1, DType::Float32)}), "expected 2 feature maps");
  EXPECT_CORTEX_ERROR(ca.read({randn({2, 3, 2, 2}, 1, DType::Float32), randn({2, 3, 1, 1}, 2, DType::Float32)}),
                      "(C, H, W) = (2, 1, 1)");
  EXPECT_CORTEX_ERROR(ca.read({randn({2, 3, 2, 2}, 1, DType::Float32), randn({3, 2, 1, 1}, 2, DType::Float32)}),
                      "one batch size");
  EXPECT_CORTEX_ERROR(ca.read({randn({2, 3, 2}, 1, DType::Float32), randn({2, 2, 1, 1}, 2, DType::Float32)}), "4-D");
  EXPECT_CORTEX_ERROR(ca.penalty(), "call read() in training mode first");
  ChannelAlignOptions bad;
  bad.dim = 0;
  EXPECT_CORTEX_ERROR(ChannelAlign({{3, 2, 2}}, 1, bad), "D > 0");
  bad = {};
  bad.eigen = -1;
  EXPECT_CORTEX_ERROR(ChannelAlign({{3, 2, 2}}, 1, bad), "weights >= 0");
  bad = {};
  bad.temperature = 0;
  EXPECT_CORTEX_ERROR(ChannelAlign({{3, 2, 2}}, 1, bad), "temperature > 0");
  EXPECT_CORTEX_ERROR(ChannelAlign({}, 1), "at least one layer");
  EXPECT_CORTEX_ERROR(ChannelAlign({{3, 2, 2}}, 0), "positive number of outputs");
  EXPECT_CORTEX_ERROR(ca.eigen_constraint(0, randn({5, 2}, 3, DType::Float32)), "expected nodes (m >= 2, 3)");
  EXPECT_CORTEX_ERROR(ca.warm_start({randn({6, 3, 2, 2}, 1, DType::Float32), randn({6, 2, 1, 1}, 2, DType::Float32)},
                                    randn({5, 4}, 3, DType::Float32), {1.0}, 2, 0),
                      "warm_start expected responses (6, 4)");
  // One token per layer and one image: no graph to regularise, the penalty is 0, not an error.
  ChannelAlign one({{3, 1, 1}}, 1);
  one.train(true);
  one.read({randn({1, 3, 1, 1}, 4, DType::Float32)});
  EXPECT_EQ(one.penalty().item(), 0.0);
}
