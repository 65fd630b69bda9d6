// analysis::integrated_gradients against closed forms: a linear model (IG = (x - b) * w exactly,
// at any number of steps), a separable exponential (IG_i = e^{a x_i} - e^{a b_i}; the trapezoid
// rule's error falls as 1 / m^2), the sum rule (completeness) and IG's linearity in the target
// (an ROI mean's map is the mean of its voxels' maps). Two successive calls give bit-identical maps
// and leave no .grad on the model's parameters (BOLDreams accumulated them); the path's batch size
// does not change the map. Blur, baselines, peaks, overlays and refusals.
#include <gtest/gtest.h>

#include <cmath>

#include "analysis/attribution.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "tensor/random.h"
#include "tests/test_util.h"

using namespace cortex;
using analysis::IGOptions;

namespace {

std::vector<double> v64(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }

Tensor uniform(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return rand(s, g);
}

// f(x) = flatten(x) W + c: (B, 3, H, W) -> (B, V).
struct LinearFn {
  Tensor W, c;
  Tensor operator()(const Tensor& x) const { return add(matmul(x.reshape({x.size(0), -1}), W), c); }
};

// A small ReLU conv net whose weights require grad (so a leak into their .grad would show):
// (B, 3, H, W) -> conv 3x3 (4 channels) -> relu -> mean over space -> (B, 4) -> x M -> (B, 3).
struct ConvFn {
  Tensor w, M;
  Tensor operator()(const Tensor& x) const {
    kernels::Conv2dParams p;
    p.pad_h = p.pad_w = 1;
    return matmul(mean(relu(conv2d(x, w, Tensor(), p)), {2, 3}), M);
  }
};

ConvFn conv_fn() {
  Generator g(3);
  ConvFn f{randn({4, 3, 3, 3}, g), randn({4, 3}, g)};
  set_requires_grad(f.w), set_requires_grad(f.M);
  return f;
}

}  // namespace

TEST(Attribution, LinearModelIsExactAtAnySteps) {
  const int64_t H = 5, W = 7, V = 4;
  Generator g(1);
  const LinearFn f{randn({3 * H * W, V}, g), randn({V}, g)};
  const Tensor x = uniform({3, H, W}, 2), b = uniform({3, H, W}, 3);
  for (int64_t steps : {1, 7, 50}) {
    IGOptions o;
    o.steps = steps;
    o.batch = 3;
    const auto r = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0, 3}, V), o);
    ASSERT_EQ(r.attr.shape(), (Shape{2, 3, H, W}));
    const auto xv = v64(x), bv = v64(b), wv = v64(f.W), a = v64(r.attr);
    double worst = 0;
    for (int k = 0; k < 2; ++k) {
      const int64_t vox = k == 0 ? 0 : 3;
      for (int64_t i = 0; i < 3 * H * W; ++i) {
        const double want = (xv[size_t(i)] - bv[size_t(i)]) * wv[size_t(i * V + vox)];
        worst = std::max(worst, std::fabs(a[size_t(k * 3 * H * W + i)] - want));
      }
      EXPECT_LT(r.rel_error[size_t(k)], 1e-5) << "steps " << steps;
    }
    EXPECT_LT(worst, 1e-5) << "steps " << steps;
  }
}

TEST(Attribution, SeparableExponentialConvergesAsOneOverStepsSquared) {
  const double a = 1.3;
  const int64_t H = 4, W = 3;
  const auto f = [a](const Tensor& x) { return sum(exp(mul(x, scalar(a))), {1, 2, 3}).reshape({x.size(0), 1}); };
  const Tensor x = uniform({3, H, W}, 4), b = zeros({3, H, W});
  const auto xv = v64(x);
  auto err = [&](int64_t steps) {
    IGOptions o;
    o.steps = steps;
    o.rule = analysis::Quadrature::Trapezoid;  // the uniform rule's order (adaptive refines unevenly)
    const auto r = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0}, 1), o);
    const auto av = v64(r.attr);
    double e = 0, total = 0;
    for (size_t i = 0; i < xv.size(); ++i) {
      const double want = std::exp(a * xv[i]) - 1.0;
      e += std::fabs(av[i] - want), total += want;
    }
    // completeness: f(x) - f(b) is the exact integral; the reported error is the rule's error.
    EXPECT_NEAR(r.f_x[0] - r.f_base[0], total, 1e-4 * total);
    return e / total;
  };
  const double e4 = err(4), e8 = err(8), e64 = err(64);
  std::printf("exp: relative error of the attributions: m=4 %.3e, m=8 %.3e, m=64 %.3e\n", e4, e8, e64);
  EXPECT_NEAR(e4 / e8, 4.0, 0.3);  // second order
  EXPECT_LT(e64, 1e-4);
  EXPECT_GT(e4, 1e-3);  // the check can fail: few steps are visibly off
}

TEST(Attribution, CompletenessIsReportedAndFailsWithFewSteps) {
  const ConvFn f = conv_fn();
  const Tensor x = uniform({3, 9, 9}, 5), b = zeros({3, 9, 9});
  IGOptions o;
  o.rule = analysis::Quadrature::Trapezoid;
  o.steps = 1;
  auto r1 = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0, 1, 2}, 3), o);
  o.steps = 256;
  auto r256 = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0, 1, 2}, 3), o);
  for (int k = 0; k < 3; ++k) {
    const double df = r256.f_x[size_t(k)] - r256.f_base[size_t(k)];
    // The error reported is |sum of attributions - (f(x) - f(b))| (relative to |f(x) - f(b)|).
    EXPECT_NEAR(r256.abs_error[size_t(k)], std::fabs(r256.total[size_t(k)] - df), 1e-12);
    EXPECT_NEAR(r256.rel_error[size_t(k)], r256.abs_error[size_t(k)] / std::fabs(df), 1e-12);
    EXPECT_NEAR(r256.total[size_t(k)], v64(sum(r256.attr.select(0, k)))[0], 1e-4 * std::fabs(df));
    EXPECT_LT(r256.rel_error[size_t(k)], 1e-2);
  }
  // One trapezoid interval is the average of the end gradients: far from the path integral of a ReLU net.
  double worst1 = 0;
  for (double e : r1.rel_error) worst1 = std::max(worst1, e);
  EXPECT_GT(worst1, 1e-2);
}

TEST(Attribution, TwoCallsGiveIdenticalMapsAndNoGradLeaks) {
  const ConvFn f = conv_fn();
  const Tensor x = uniform({3, 11, 6}, 6), b = analysis::make_baseline(analysis::Baseline::Blur, x, Tensor(), 2.0);
  const auto r1 = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({2, 0}, 3));
  const auto r2 = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({2, 0}, 3));
  EXPECT_EQ(v64(r1.attr), v64(r2.attr));  // bit for bit
  EXPECT_FALSE(grad_of(f.w).defined());
  EXPECT_FALSE(grad_of(f.M).defined());
  // The path's batching does not change the result.
  IGOptions one;
  one.batch = 1;
  const auto r3 = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({2, 0}, 3), one);
  EXPECT_TRUE(cortex::testing::allclose(r3.attr, r1.attr, 1e-5, 1e-7));
  // Each voxel of a list is its own run.
  const auto r4 = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0}, 3));
  EXPECT_TRUE(cortex::testing::allclose(r4.attr.select(0, 0), r1.attr.select(0, 1), 1e-5, 1e-7));
}

// Gauss-Legendre with n nodes integrates polynomials of degree 2n - 1 exactly: f = sum x_i^4 from a
// black baseline has the integrand 4 a^3 x_i^4 (degree 3), so IG_i = x_i^4 at n = 2 (steps 1), where
// the trapezoid rule is far off; the end points (not nodes) come from their own forward pass.
TEST(Attribution, GaussLegendreIsExactForCubicIntegrands) {
  const auto f = [](const Tensor& x) {
    const Tensor x2 = mul(x, x);
    return sum(mul(x2, x2), {1, 2, 3}).reshape({x.size(0), 1});
  };
  const Tensor x = uniform({3, 4, 5}, 13), b = zeros({3, 4, 5});
  const auto xv = v64(x);
  IGOptions o;
  o.steps = 1;
  o.rule = analysis::Quadrature::GaussLegendre;
  const auto r = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0}, 1), o);
  ASSERT_EQ(r.nodes[0].size(), 2u);
  EXPECT_NEAR(r.nodes[0][0], 0.5 - 0.5 / std::sqrt(3.0), 1e-12);
  const auto a = v64(r.attr);
  double total = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    EXPECT_NEAR(a[i], std::pow(xv[i], 4), 1e-5) << i;
    total += std::pow(xv[i], 4);
  }
  EXPECT_NEAR(r.f_x[0], total, 1e-4);
  EXPECT_EQ(r.f_base[0], 0.0);
  EXPECT_LT(r.rel_error[0], 1e-5);
  o.rule = analysis::Quadrature::Trapezoid;
  EXPECT_GT(analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0}, 1), o).rel_error[0], 0.5);
  // Nodes and weights at a larger n: the weights sum to 1 and integrate a^9 (degree 9 <= 2n - 1).
  o.rule = analysis::Quadrature::GaussLegendre;
  o.steps = 6;
  const auto r7 = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0}, 1), o);
  ASSERT_EQ(r7.nodes[0].size(), 7u);
  for (size_t i = 0; i + 1 < 7; ++i) EXPECT_LT(r7.nodes[0][i], r7.nodes[0][i + 1]);
  EXPECT_NEAR(r7.nodes[0][3], 0.5, 1e-14);
  EXPECT_LT(r7.rel_error[0], 1e-5);
}

// One kink: F(x) = relu(sum(x) - c) from a black baseline. The gradient is 0 before a* = c / sum(x)
// and 1 after, so IG_i = x_i (1 - a*) exactly. The uniform trapezoid rule errs by up to
// (1 / 2 steps) sum(x); the adaptive rule keeps bisecting the one interval that holds the kink (its
// error is the only nonzero one), so the kink's interval ends 2^(rounds) times narrower.
TEST(Attribution, AdaptiveRuleHomesInOnAKink) {
  const Tensor x = uniform({3, 4, 4}, 14), b = zeros({3, 4, 4});
  const auto xv = v64(x);
  double sx = 0;
  for (double v : xv) sx += v;
  const double astar = 0.3141;  // not a dyadic fraction: the kink is inside an interval at every level
  const double c = astar * sx;
  const auto f = [c](const Tensor& p) {
    return relu(sub(sum(p, {1, 2, 3}), scalar(float(c)))).reshape({p.size(0), 1});
  };
  auto err = [&](analysis::Quadrature rule, analysis::IGResult* out) {
    IGOptions o;
    o.steps = 16;
    o.rounds = 4;
    o.batch = 5;
    o.rule = rule;
    const auto r = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0}, 1), o);
    const auto a = v64(r.attr);
    double e = 0, tot = 0;
    for (size_t i = 0; i < xv.size(); ++i) e += std::fabs(a[i] - xv[i] * (1 - astar)), tot += xv[i] * (1 - astar);
    if (out) *out = r;
    return e / tot;
  };
  analysis::IGResult ra;
  const double et = err(analysis::Quadrature::Trapezoid, nullptr), ea = err(analysis::Quadrature::Adaptive, &ra);
  std::printf("one kink, 17 evaluations: map error trapezoid %.3e, adaptive %.3e\n", et, ea);
  // 8 uniform intervals, then 4 rounds of 2 bisections: the kink's interval is 1/8 / 2^4 = 1/128 wide.
  ASSERT_EQ(ra.nodes[0].size(), 17u);
  EXPECT_EQ(ra.nodes[0].front(), 0.0);
  EXPECT_EQ(ra.nodes[0].back(), 1.0);
  double width = 1;
  for (size_t i = 0; i + 1 < ra.nodes[0].size(); ++i)
    if (ra.nodes[0][i] <= astar && astar < ra.nodes[0][i + 1]) width = ra.nodes[0][i + 1] - ra.nodes[0][i];
  EXPECT_DOUBLE_EQ(width, 1.0 / 128);
  // The error of a jump inside an interval of width h is at most h / 2 of the jump (relative to 1 - a*).
  EXPECT_LT(ea, 0.5 / 128 / (1 - astar) + 1e-5);
  EXPECT_GT(et, 4 * ea);
  EXPECT_NEAR(ra.rel_error[0], ea, 1e-4);  // one kink: the completeness error is the map's error
}

// Many kinks: F_v(x) = sum_j relu(u_j . x - c_j) over 300 random units per output, kinks spread over
// the path. At 16 intervals the completeness error is several percent; with tol the adaptive rule
// keeps bisecting until every target is within it (the reported error is the real one: the maps'
// float32 sum against F's end points), and a target already within tol costs nothing more.
TEST(Attribution, ToleranceRefinesUntilEveryTargetIsComplete) {
  const int64_t V = 3, J = 300;
  const Tensor x = uniform({3, 4, 4}, 21), b = zeros({3, 4, 4});
  Generator g(22);
  const Tensor U = randn({48, V * J}, g, 0.0, 1.0);
  std::vector<float> cv(static_cast<size_t>(V * J));
  {
    const auto xu = v64(matmul(x.reshape({1, 48}), U));
    const auto pos = v64(uniform({V * J}, 24));
    for (int64_t j = 0; j < V * J; ++j) cv[size_t(j)] = float(pos[size_t(j)] * xu[size_t(j)]);  // kink at a = pos
  }
  const Tensor c = from_vector(cv, {1, V * J});
  const auto f = [&](const Tensor& p) {
    const Tensor h = relu(sub(matmul(p.reshape({p.size(0), 48}), U), c));  // (n, V J)
    return sum(h.reshape({p.size(0), V, J}), {2});
  };
  const Tensor T = analysis::voxel_targets({0, 1, 2}, V);
  IGOptions o;
  o.steps = 16, o.batch = 8, o.rule = analysis::Quadrature::Adaptive;
  const auto r0 = analysis::integrated_gradients(f, x, b, T, o);
  double worst0 = 0;
  for (int64_t k = 0; k < V; ++k) {
    EXPECT_EQ(r0.nodes[size_t(k)].size(), 17u);
    worst0 = std::max(worst0, r0.rel_error[size_t(k)]);
  }
  EXPECT_GT(worst0, 0.01) << "the case must need refinement for the test to mean anything";
  o.tol = 0.01;
  const auto r1 = analysis::integrated_gradients(f, x, b, T, o);
  for (int64_t k = 0; k < V; ++k) {
    std::printf("target %lld: error %.3f%% at 17 evaluations, %.4f%% at %zu with tol 1%%\n", (long long)k,
                100 * r0.rel_error[size_t(k)], 100 * r1.rel_error[size_t(k)], r1.nodes[size_t(k)].size());
    EXPECT_LE(r1.rel_error[size_t(k)], 0.01 + 1e-5);  // the float32 maps' sum against the float64 check
    if (r0.rel_error[size_t(k)] > 0.01)
      EXPECT_GT(r1.nodes[size_t(k)].size(), 17u);
    else
      EXPECT_EQ(r1.nodes[size_t(k)].size(), 17u);  // already within tol: nothing more
    EXPECT_LE(r1.nodes[size_t(k)].size(), 8u * 16 + 1);
  }
  // The same call twice: the same maps (the grid is a function of the values).
  const auto r2 = analysis::integrated_gradients(f, x, b, T, o);
  EXPECT_EQ(v64(r1.attr), v64(r2.attr));
  // A cap: at most max_steps intervals even when tol is out of reach.
  o.tol = 1e-9, o.max_steps = 24;
  const auto r3 = analysis::integrated_gradients(f, x, b, T, o);
  for (int64_t k = 0; k < V; ++k) EXPECT_EQ(r3.nodes[size_t(k)].size(), 25u);
  // A linear model is exact at once: tol adds no evaluation.
  const auto lin = [&](const Tensor& p) { return matmul(p.reshape({p.size(0), 48}), U.narrow(1, 0, V)); };
  o.tol = 0.001, o.max_steps = 0;
  const auto rl = analysis::integrated_gradients(lin, x, b, T, o);
  for (int64_t k = 0; k < V; ++k) EXPECT_EQ(rl.nodes[size_t(k)].size(), 17u);
  // Refusals.
  o.tol = -1;
  EXPECT_THROW(analysis::integrated_gradients(f, x, b, T, o), Error);
  o.tol = 0.01, o.max_steps = 8;
  EXPECT_THROW(analysis::integrated_gradients(f, x, b, T, o), Error);
}

TEST(Attribution, RoiMeanIsTheMeanOfItsVoxelsMaps) {
  // Linearity in the target holds for a fixed rule (the adaptive grid depends on the target).
  const ConvFn f = conv_fn();
  const Tensor x = uniform({3, 8, 8}, 7), b = zeros({3, 8, 8});
  IGOptions o;
  o.rule = analysis::Quadrature::Trapezoid;
  const auto each = analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0, 2}, 3), o);
  const auto roi = analysis::integrated_gradients(f, x, b, analysis::mean_target({0, 2}, 3), o);
  ASSERT_EQ(roi.attr.size(0), 1);
  const Tensor want = mul(add(each.attr.select(0, 0), each.attr.select(0, 1)), scalar(0.5));
  EXPECT_TRUE(cortex::testing::allclose(roi.attr.select(0, 0), want, 1e-5, 1e-7));
  EXPECT_NEAR(roi.f_x[0], (each.f_x[0] + each.f_x[1]) / 2, 1e-5);
}

TEST(Attribution, BlurAgainstA2DGaussianAndBaselines) {
  // An impulse far from the edges: the blur is the normalised 2-D Gaussian (cut at 3 sigma).
  const int64_t S = 21;
  std::vector<float> imp(size_t(S * S), 0.0f);
  imp[size_t(10 * S + 10)] = 1.0f;
  const double sigma = 1.5;
  const auto out = v64(analysis::gaussian_blur(from_vector(imp, {1, S, S}), sigma));
  double norm = 0;
  for (int d = -5; d <= 5; ++d) norm += std::exp(-0.5 * d * d / (sigma * sigma));
  for (int i = 0; i < S; ++i)
    for (int j = 0; j < S; ++j) {
      const int di = i - 10, dj = j - 10;
      const double want = std::abs(di) > 5 || std::abs(dj) > 5 ? 0.0
                          : std::exp(-0.5 * (di * di + dj * dj) / (sigma * sigma)) / (norm * norm);
      EXPECT_NEAR(out[size_t(i * S + j)], want, 1e-7) << i << "," << j;
    }
  // A constant image stays constant (the kernel is renormalised at the edges).
  for (double v : v64(analysis::gaussian_blur(full({2, 5, 4}, 0.25), 3.0))) EXPECT_NEAR(v, 0.25, 1e-6);
  const Tensor x = uniform({3, 6, 6}, 8);
  EXPECT_EQ(v64(analysis::make_baseline(analysis::Baseline::Black, x, Tensor(), 0)), std::vector<double>(108, 0.0));
  const Tensor m = uniform({3, 6, 6}, 9);
  EXPECT_EQ(v64(analysis::make_baseline(analysis::Baseline::Mean, x, m, 0)), v64(m));
  EXPECT_EQ(analysis::parse_baseline("blur"), analysis::Baseline::Blur);
  EXPECT_CORTEX_ERROR(analysis::parse_baseline("white"), "black, mean or blur");
  EXPECT_CORTEX_ERROR(analysis::make_baseline(analysis::Baseline::Mean, x, Tensor(), 0), "mean image");
  // Channel mean, then blur.
  const Tensor a = uniform({3, 6, 6}, 10);
  const Tensor p = analysis::postprocess(a, true, 0);
  ASSERT_EQ(p.shape(), (Shape{1, 6, 6}));
  EXPECT_TRUE(cortex::testing::allclose(p, mean(a, {0}, true), 1e-6, 1e-7));
  EXPECT_EQ(analysis::postprocess(a, false, 2.0).shape(), (Shape{3, 6, 6}));
}

TEST(Attribution, PeakCentreOfMassAndOverlay) {
  const int64_t H = 10, W = 12;
  std::vector<float> m(size_t(H * W));
  Generator g(11);
  const auto noise = v64(rand({H * W}, g));
  for (int64_t i = 0; i < H; ++i)
    for (int64_t j = 0; j < W; ++j)
      m[size_t(i * W + j)] = float(0.05 * noise[size_t(i * W + j)] -
                                   std::exp(-((j - 7) * (j - 7) + (i - 3) * (i - 3)) / 4.0));  // a negative bump
  const Tensor map = from_vector(m, {H, W});
  const auto pk = analysis::attribution_peak(map, 1.0);
  EXPECT_EQ(pk[0], 7.0);
  EXPECT_EQ(pk[1], 3.0);
  const auto cm = analysis::attribution_centre_of_mass(map);
  EXPECT_NEAR(cm[0], 7.0, 0.3);
  EXPECT_NEAR(cm[1], 3.0, 0.3);
  const Tensor img = full({3, H, W}, 0.5);
  const Tensor ov = analysis::overlay(img, map, 2);
  ASSERT_EQ(ov.shape(), (Shape{2 * H, 2 * W, 3}));
  ASSERT_EQ(ov.dtype(), DType::UInt8);
  // The largest |value| (negative) is pure blue.
  int64_t best = 0;
  for (int64_t q = 0; q < H * W; ++q)
    if (std::fabs(m[size_t(q)]) > std::fabs(m[size_t(best)])) best = q;
  const int64_t bi = best / W * 2, bj = best % W * 2;
  EXPECT_EQ(ov.at({bi, bj, 0}), 0.0);
  EXPECT_EQ(ov.at({bi + 1, bj + 1, 2}), 255.0);
}

TEST(Attribution, Refusals) {
  const ConvFn f = conv_fn();
  const Tensor x = uniform({3, 6, 6}, 12), b = zeros({3, 6, 6});
  const Tensor t = analysis::voxel_targets({0}, 3);
  IGOptions o;
  o.steps = 0;
  EXPECT_CORTEX_ERROR(analysis::integrated_gradients(f, x, b, t, o), "steps must be >= 1");
  o = {};
  o.batch = 0;
  EXPECT_CORTEX_ERROR(analysis::integrated_gradients(f, x, b, t, o), "batch must be >= 1");
  EXPECT_CORTEX_ERROR(analysis::integrated_gradients(f, x, zeros({3, 6, 5}), t), "differs from the image");
  EXPECT_CORTEX_ERROR(analysis::integrated_gradients(f, zeros({6, 6}), b, t), "expected the image as float (3, H, W)");
  EXPECT_CORTEX_ERROR(analysis::integrated_gradients(f, x, b, analysis::voxel_targets({0}, 5)), "targets weigh 5");
  EXPECT_CORTEX_ERROR(analysis::integrated_gradients(f, full({3, 6, 6}, NAN), b, t), "non-finite");
  o = {};
  o.rounds = 0;
  EXPECT_CORTEX_ERROR(analysis::integrated_gradients(f, x, b, t, o), "rounds must be >= 1");
  o = {};
  o.initial = -1;
  EXPECT_CORTEX_ERROR(analysis::integrated_gradients(f, x, b, t, o), "initial must be >= 0");
  EXPECT_CORTEX_ERROR(analysis::parse_quadrature("simpson"), "trapezoid, adaptive or gausslegendre");
  EXPECT_CORTEX_ERROR(analysis::voxel_targets({3}, 3), "out of range");
  EXPECT_CORTEX_ERROR(analysis::mean_target({}, 3), "no voxels");
  EXPECT_CORTEX_ERROR(analysis::gaussian_blur(zeros({4, 4}), 1.0), "expected maps (C, H, W)");
  EXPECT_CORTEX_ERROR(analysis::overlay(zeros({3, 4, 4}), zeros({4, 5}), 1), "expected a map (4, 4)");
}
