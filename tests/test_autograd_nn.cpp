// The neural-network ops of autograd/ops_nn.cpp: every op's VJP, JVP, batched modes and (for the
// smooth ones) second derivatives against finite differences (gradcheck), on float64 inputs with odd
// sizes and non-contiguous views; the Jacobian of a small conv net in both modes; batch norm's
// running-statistics update against a hand-computed reference; and the ops' errors.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::randu;

namespace {

Tensor t64(std::vector<double> v, Shape s) { return from_vector(v, s, DType::Float64); }
GradcheckOptions second_order() {
  GradcheckOptions o;
  o.check_second_order = true;
  return o;
}
// gradcheck of a function that itself calls grad(): forward mode does not see through a backward
// pass (VJPs run with forward mode off), so only the reverse checks apply.
GradcheckOptions reverse_only() {
  GradcheckOptions o;
  o.check_jvp = false;
  return o;
}

// Distinct values (a shuffled ramp plus a little noise), so that max pooling has no ties.
Tensor distinct(const Shape& s, uint64_t seed) {
  Generator g(seed);
  const int64_t n = shape_numel(s);
  Tensor perm = randperm(n, g).to(DType::Float64);
  return add(mul(perm, 0.1), randu({n}, seed + 1, 0.0, 0.01)).reshape(s);
}

// A sampling grid (N, Ho, Wo, 2) for an input of spatial size (H, W) whose points lie at least 0.2
// pixels from every pixel-grid line (where bilinear sampling is not differentiable), some of them
// up to one pixel outside the image.
Tensor safe_grid(int64_t N, int64_t Ho, int64_t Wo, int64_t H, int64_t W, bool align, uint64_t seed) {
  Generator g(seed);
  const int64_t n = N * Ho * Wo;
  auto ix = randint(-1, W, {n}, g).to_vector<int64_t>();
  auto iy = randint(-1, H, {n}, g).to_vector<int64_t>();
  auto f = rand({2 * n}, g, 0.2, 0.8, DType::Float64).to_vector<double>();
  std::vector<double> v(2 * n);
  auto norm = [align](double src, int64_t size) {
    return align ? 2.0 * src / static_cast<double>(size - 1) - 1.0 : (2.0 * src + 1.0) / static_cast<double>(size) - 1.0;
  };
  for (int64_t i = 0; i < n; ++i) {
    v[2 * i] = norm(static_cast<double>(ix[i]) + f[2 * i], W);
    v[2 * i + 1] = norm(static_cast<double>(iy[i]) + f[2 * i + 1], H);
  }
  return t64(v, {N, Ho, Wo, 2});
}

// Central-difference Jacobian of f at x, shaped [*f(x).shape, *x.shape].
Tensor fd_jacobian(const Fn1& f, const Tensor& x, double eps = 1e-6) {
  NoGradGuard ng;
  Tensor base = x.contiguous().clone();
  const Tensor y0 = f(base);
  const int64_t n = base.numel(), m = y0.numel();
  std::vector<double> J(static_cast<size_t>(m * n));
  for (int64_t j = 0; j < n; ++j) {
    Tensor p = base.clone(), q = base.clone();
    p.data<double>()[j] += eps;
    q.data<double>()[j] -= eps;
    auto fp = f(p).to_vector<double>(), fq = f(q).to_vector<double>();
    for (int64_t i = 0; i < m; ++i) J[i * n + j] = (fp[i] - fq[i]) / (2 * eps);
  }
  Shape s = y0.shape();
  s.insert(s.end(), x.shape().begin(), x.shape().end());
  return t64(J, s);
}

// x -> d/dx sum(tanh(f(x))^2), built with create_graph so that it can be differentiated again.
Fn grad_of_loss(std::function<Tensor(const Tensor&)> f) {
  return [f](const std::vector<Tensor>& in) {
    Tensor y = f(in[0]);
    Tensor loss = sum(square(tanh(y)));
    return grad({loss}, {in[0]}, {}, /*create_graph=*/true);
  };
}

}  // namespace

// ---------------------------------------------------------------- softmax family

TEST(AutogradNN, SoftmaxAndLogSoftmax) {
  Tensor x = randn({3, 5}, 1);
  for (int64_t dim : {0, 1, -1}) {
    EXPECT_GRADCHECK([dim](const std::vector<Tensor>& in) { return std::vector<Tensor>{softmax(in[0], dim)}; },
                     {noncontig(x)}, second_order());
    EXPECT_GRADCHECK([dim](const std::vector<Tensor>& in) { return std::vector<Tensor>{log_softmax(in[0], dim)}; },
                     {noncontig(x)}, second_order());
  }
  // a permuted 3-D view, softmax over the middle dim
  Tensor x3 = randn({4, 3, 2}, 2).permute({2, 0, 1});  // (2, 4, 3)
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return std::vector<Tensor>{softmax(in[0], 1)}; }, {x3},
                   second_order());
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return std::vector<Tensor>{log_softmax(in[0], 1)}; }, {x3},
                   second_order());
}

// ---------------------------------------------------------------- normalisation

TEST(AutogradNN, LayerNorm) {
  Tensor x = randn({2, 3, 5}, 3);
  Tensor w = randn({5}, 4), b = randn({5}, 5);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return std::vector<Tensor>{layer_norm(in[0], {5}, in[1], in[2])}; },
                   {noncontig(x), w, b}, second_order());
  // two normalised dims, no affine
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return std::vector<Tensor>{layer_norm(in[0], {3, 5})}; },
                   {x.permute({0, 2, 1}).contiguous().permute({0, 2, 1})}, second_order());
  // weight only, x a transposed view; all dims normalised
  Tensor w2 = randn({3, 4}, 6);
  EXPECT_GRADCHECK(
      [](const std::vector<Tensor>& in) { return std::vector<Tensor>{layer_norm(in[0], {3, 4}, in[1], Tensor(), 1e-3)}; },
      {randn({4, 3}, 7).t(), w2}, second_order());
  // weight and bias constants: only x differentiated
  EXPECT_GRADCHECK([w, b](const std::vector<Tensor>& in) { return std::vector<Tensor>{layer_norm(in[0], {5}, w, b)}; },
                   {x}, second_order());
}

TEST(AutogradNN, BatchNormInference) {
  Tensor x = randn({3, 4, 2, 3}, 8);
  Tensor m = randn({4}, 9), v = randu({4}, 10, 0.5, 2.0), w = randn({4}, 11), b = randn({4}, 12);
  auto f = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{batch_norm(in[0], in[1], in[2], in[3], in[4], 1e-3)};
  };
  EXPECT_GRADCHECK(f, {noncontig(x), m, v, w, b}, second_order());
  // 2-D input, no affine, running stats constant
  EXPECT_GRADCHECK([m, v](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{batch_norm(in[0], m, v, Tensor(), Tensor())};
  }, {randn({5, 4}, 13).t().contiguous().t()}, second_order());
  // The running statistics are saved for the backward pass: writing them first is an error.
  Tensor xl = with_grad(x);
  Tensor mc = m.clone();
  Tensor y = sum(batch_norm(xl, mc, v, w, b));
  mc.fill_(0.0);
  EXPECT_CORTEX_ERROR(backward(y), "modified in place");
}

TEST(AutogradNN, BatchNormTrain) {
  Tensor x = randn({4, 3, 2, 3}, 14);
  Tensor w = randn({3}, 15), b = randn({3}, 16);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{batch_norm_train(in[0], in[1], in[2], Tensor(), Tensor(), 0.1, 1e-3)};
  }, {noncontig(x), w, b}, second_order());
  // 2-D (N, C): statistics over dim 0; running stats updated on every call (not inputs of the node)
  Tensor rm = zeros({3}, DType::Float64), rv = ones({3}, DType::Float64);
  EXPECT_GRADCHECK([rm, rv](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{batch_norm_train(in[0], in[1], Tensor(), rm, rv, 0.2)};
  }, {randn({3, 5}, 17).t(), w}, second_order());
  // 3-D (N, C, L), x only
  EXPECT_GRADCHECK([w, b](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{batch_norm_train(in[0], w, b, Tensor(), Tensor())};
  }, {randn({2, 3, 4}, 18)}, second_order());
}

TEST(AutogradNN, BatchNormTrainRunningStatistics) {
  const int64_t N = 4, C = 3, L = 5;
  Tensor x = randn({N, C, L}, 19), w = randn({C}, 20), b = randn({C}, 21);
  std::vector<double> m0{0.1, -0.2, 0.3}, v0{1.0, 0.5, 2.0};
  Tensor rm = t64(m0, {C}), rv = t64(v0, {C});
  set_requires_grad(rm, true);  // a running stat that requires grad is still updated (under NoGradGuard)
  const double momentum = 0.1, eps = 1e-5;
  Tensor xl = with_grad(x);
  Tensor y = batch_norm_train(xl, w, b, rm, rv, momentum, eps);

  auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<double> want_y(xv.size()), want_m(C), want_v(C);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) s += xv[(n * C + c) * L + l];
    const double mean = s / (N * L);
    double ss = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) ss += (xv[(n * C + c) * L + l] - mean) * (xv[(n * C + c) * L + l] - mean);
    const double biased = ss / (N * L), unbiased = ss / (N * L - 1);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = (n * C + c) * L + l;
        want_y[i] = (xv[i] - mean) / std::sqrt(biased + eps) * wv[c] + bv[c];
      }
    want_m[c] = (1 - momentum) * m0[c] + momentum * mean;
    want_v[c] = (1 - momentum) * v0[c] + momentum * unbiased;
  }
  EXPECT_TRUE(allclose(y, t64(want_y, {N, C, L}), 1e-12, 1e-12));
  EXPECT_TRUE(allclose(rm, t64(want_m, {C}), 1e-14, 1e-14));
  EXPECT_TRUE(allclose(rv, t64(want_v, {C}), 1e-14, 1e-14));
  // the in-place update does not upset the backward pass
  backward(sum(square(y)));
  EXPECT_TRUE(grad_of(xl).defined());
  EXPECT_FALSE(grad_of(rm).defined());
  // momentum 0 leaves them alone
  Tensor rm2 = t64(m0, {C}), rv2 = t64(v0, {C});
  batch_norm_train(x, w, b, rm2, rv2, 0.0, eps);
  EXPECT_TRUE(allclose(rm2, t64(m0, {C}), 0, 0));
  EXPECT_TRUE(allclose(rv2, t64(v0, {C}), 0, 0));
}

// ---------------------------------------------------------------- convolution

TEST(AutogradNN, Conv2d) {
  kernels::Conv2dParams p;
  p.stride_h = 2, p.pad_h = 1, p.pad_w = 1, p.dilation_w = 2;
  Tensor x = randn({2, 5, 6, 3}, 22).permute({0, 3, 1, 2});  // (2, 3, 5, 6), not contiguous
  Tensor w = randn({4, 3, 3, 2}, 23), b = randn({4}, 24);
  EXPECT_GRADCHECK([p](const std::vector<Tensor>& in) { return std::vector<Tensor>{conv2d(in[0], in[1], in[2], p)}; },
                   {x, w, b}, second_order());
  // groups = 2, no bias, a sliced weight view
  kernels::Conv2dParams pg;
  pg.groups = 2, pg.pad_h = 1, pg.pad_w = 1, pg.stride_w = 2;
  Tensor xg = randn({1, 4, 5, 5}, 25), wg = randn({6, 2, 3, 6}, 26).slice(3, 0, 6, 2);  // (6, 2, 3, 3)
  EXPECT_GRADCHECK([pg](const std::vector<Tensor>& in) { return std::vector<Tensor>{conv2d(in[0], in[1], Tensor(), pg)}; },
                   {xg, wg}, second_order());
}

TEST(AutogradNN, Conv2dDoubleBackwardBatched) {
  // The gradient of a conv loss, differentiated again: exercises conv2d_input_grad / weight_grad as
  // differentiable ops, with batched cotangents (gradcheck's Jacobian rows) and groups.
  for (int64_t groups : {1, 2}) {
    kernels::Conv2dParams p;
    p.groups = groups, p.pad_h = 1, p.stride_w = 2;
    Tensor x = randn({2, 4, 4, 5}, 27), w = randn({2 * groups, 4 / groups, 3, 2}, 28), b = randn({2 * groups}, 29);
    EXPECT_GRADCHECK(grad_of_loss([w, b, p](const Tensor& xx) { return conv2d(xx, w, b, p); }), {x}, reverse_only());
    EXPECT_GRADCHECK(grad_of_loss([x, b, p](const Tensor& ww) { return conv2d(x, ww, b, p); }), {w}, reverse_only());
    // mixed: d/dw of (d/dx loss)
    EXPECT_GRADCHECK([x, b, p](const std::vector<Tensor>& in) {
      Tensor xl = with_grad(x);
      Tensor loss = sum(square(tanh(conv2d(xl, in[0], b, p))));
      return grad({loss}, {xl}, {}, true);
    }, {w}, reverse_only());
  }
}

// ---------------------------------------------------------------- pooling

TEST(AutogradNN, MaxPool2d) {
  kernels::Pool2dParams p;
  p.kernel_h = 3, p.kernel_w = 2, p.stride_h = 2, p.stride_w = 2, p.pad_h = 1, p.ceil_mode = true;
  auto f = [p](const std::vector<Tensor>& in) { return std::vector<Tensor>{max_pool2d(in[0], p)}; };
  EXPECT_GRADCHECK(f, {noncontig(distinct({2, 3, 7, 5}, 30))}, second_order());
  EXPECT_GRADCHECK(f, {distinct({3, 5, 6}, 31).transpose(1, 2)}, second_order());  // (C, H, W), transposed
}

TEST(AutogradNN, AvgPool2d) {
  kernels::Pool2dParams p;
  p.kernel_h = 3, p.kernel_w = 3, p.stride_h = 2, p.stride_w = 2, p.pad_h = 1, p.pad_w = 1, p.ceil_mode = true;
  p.count_include_pad = false;
  auto f = [p](const std::vector<Tensor>& in) { return std::vector<Tensor>{avg_pool2d(in[0], p)}; };
  EXPECT_GRADCHECK(f, {noncontig(randn({2, 3, 7, 6}, 32))}, second_order());
  kernels::Pool2dParams q;
  q.kernel_h = 2, q.kernel_w = 3, q.stride_h = 1, q.stride_w = 2;
  EXPECT_GRADCHECK([q](const std::vector<Tensor>& in) { return std::vector<Tensor>{avg_pool2d(in[0], q)}; },
                   {randn({5, 4, 3}, 33).permute({2, 0, 1})}, second_order());  // (C, H, W)
}

TEST(AutogradNN, AdaptiveAvgPool2d) {
  auto f = [](const std::vector<Tensor>& in) { return std::vector<Tensor>{adaptive_avg_pool2d(in[0], 3, 4)}; };
  EXPECT_GRADCHECK(f, {noncontig(randn({2, 3, 7, 5}, 34))}, second_order());
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return std::vector<Tensor>{adaptive_avg_pool2d(in[0], 2, 1)}; },
                   {randn({3, 5, 4}, 35)}, second_order());
}

// ---------------------------------------------------------------- resampling

TEST(AutogradNN, GridSample) {
  for (bool align : {false, true})
    for (auto pad : {kernels::GridPadding::Zeros, kernels::GridPadding::Border}) {
      Tensor x = randn({2, 3, 5, 6}, 36);
      Tensor grid = safe_grid(2, 4, 3, 5, 6, align, 37);
      auto f = [align, pad](const std::vector<Tensor>& in) {
        return std::vector<Tensor>{grid_sample(in[0], in[1], align, pad)};
      };
      EXPECT_GRADCHECK(f, {noncontig(x), grid});
    }
}

// Nearest: a grid kept 0.2 px or more from the rounding boundaries (safe_grid's points moved by
// half a pixel), so finite differences see the piecewise-constant output and a zero grid gradient.
TEST(AutogradNN, GridSampleNearest) {
  for (bool align : {false, true})
    for (auto pad : {kernels::GridPadding::Zeros, kernels::GridPadding::Border}) {
      const int64_t H = 5, W = 6;
      std::vector<double> g = safe_grid(2, 4, 3, H, W, align, 47).contiguous().to_vector<double>();
      for (size_t i = 0; i < g.size(); ++i) {
        const int64_t size = i % 2 == 0 ? W : H;
        g[i] -= 0.5 * (align ? 2.0 / static_cast<double>(size - 1) : 2.0 / static_cast<double>(size));
      }
      Tensor grid = t64(g, {2, 4, 3, 2});
      auto f = [align, pad](const std::vector<Tensor>& in) {
        return std::vector<Tensor>{grid_sample(in[0], in[1], align, pad, kernels::GridMode::Nearest)};
      };
      EXPECT_GRADCHECK(f, {noncontig(randn({2, 3, H, W}, 46)), grid});
      // d/dx (d/dx loss) through the input adjoint
      Tensor x = randn({2, 3, H, W}, 48);
      EXPECT_GRADCHECK(grad_of_loss([grid, f](const Tensor& xx) { return f({xx, grid})[0]; }), {x}, reverse_only());
    }
}

TEST(AutogradNN, GridSampleSecondOrder) {
  Tensor x = randn({1, 2, 4, 5}, 38);
  Tensor grid = safe_grid(1, 3, 2, 4, 5, false, 39);
  auto gs = [](const Tensor& a, const Tensor& g) { return grid_sample(a, g, false, kernels::GridPadding::Zeros); };
  // d/dx (d/dx loss): through the input adjoint's dependence on the cotangent
  EXPECT_GRADCHECK(grad_of_loss([grid, gs](const Tensor& xx) { return gs(xx, grid); }), {x}, reverse_only());
  // d/dgrid (d/dx loss): through the input adjoint's dependence on the grid
  EXPECT_GRADCHECK([x, gs](const std::vector<Tensor>& in) {
    Tensor xl = with_grad(x);
    Tensor loss = sum(square(tanh(gs(xl, in[0]))));
    return grad({loss}, {xl}, {}, true);
  }, {grid}, reverse_only());
  // d/dgrid (d/dgrid loss) is not available: a clear error, not a silent zero
  Tensor gl = with_grad(grid);
  Tensor loss = sum(square(gs(x, gl)));
  Tensor gg = grad({loss}, {gl}, {}, true)[0];
  EXPECT_CORTEX_ERROR(grad({sum(gg)}, {gl}), "double backward");
}

TEST(AutogradNN, ResizeBilinear) {
  for (bool align : {false, true}) {
    EXPECT_GRADCHECK([align](const std::vector<Tensor>& in) {
      return std::vector<Tensor>{resize_bilinear(in[0], 7, 3, align)};
    }, {noncontig(randn({2, 3, 4, 5}, 40))}, second_order());
    EXPECT_GRADCHECK([align](const std::vector<Tensor>& in) {
      return std::vector<Tensor>{resize_bilinear(in[0], 2, 3, align)};
    }, {randn({1, 2, 5, 7}, 41)}, second_order());
  }
}

TEST(AutogradNN, Pad) {
  using kernels::PadMode;
  Tensor x = randn({2, 4, 5}, 42);
  for (PadMode mode : {PadMode::Constant, PadMode::Reflect, PadMode::Replicate}) {
    EXPECT_GRADCHECK([mode](const std::vector<Tensor>& in) {
      return std::vector<Tensor>{pad(in[0], {2, 1, 1, 3}, mode, 0.5)};
    }, {noncontig(x)}, second_order());
  }
  // negative pads crop; a pair for the first dim too
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{pad(in[0], {-1, 2, 0, 0, 1, 1}, PadMode::Constant, -2.0)};
  }, {x.transpose(0, 2).contiguous().transpose(0, 2)}, second_order());
}

// ---------------------------------------------------------------- attention, dropout

TEST(AutogradNN, ScaledDotProductAttention) {
  Tensor q = randn({2, 3, 2, 4}, 43).transpose(1, 2);  // (2, 2, 3, 4), not contiguous
  Tensor k = randn({2, 2, 5, 4}, 44), v = randn({2, 2, 5, 3}, 45);
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{scaled_dot_product_attention(in[0], in[1], in[2])};
  }, {q, k, v}, second_order());
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{scaled_dot_product_attention(in[0], in[1], in[2], 0.7)};
  }, {q, k, v});
  // values: a naive loop with the default scale 1/sqrt(D)
  Tensor y = scaled_dot_product_attention(q, k, v);
  std::vector<double> want;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < 3; ++i) {
        std::vector<double> s(5);
        double mx = -1e300, z = 0;
        for (int64_t j = 0; j < 5; ++j) {
          for (int64_t d = 0; d < 4; ++d) s[j] += q.at({b, h, i, d}) * k.at({b, h, j, d});
          s[j] /= 2.0;
          mx = std::max(mx, s[j]);
        }
        for (double& e : s) z += (e = std::exp(e - mx));
        for (int64_t d = 0; d < 3; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < 5; ++j) acc += s[j] / z * v.at({b, h, j, d});
          want.push_back(acc);
        }
      }
  EXPECT_TRUE(allclose(y, t64(want, {2, 2, 3, 3}), 1e-12, 1e-12));
}

TEST(AutogradNN, Dropout) {
  Tensor x = randn({4, 5}, 46);
  // the same seed inside f makes it deterministic for finite differences
  EXPECT_GRADCHECK([](const std::vector<Tensor>& in) {
    Generator g(7);
    return std::vector<Tensor>{dropout(in[0], 0.3, true, g)};
  }, {noncontig(x)}, second_order());
  // values: every element is 0 or x / (1 - p), about 1 - p of them kept
  Generator g(8);
  Tensor big = randu({200, 50}, 47, 1.0, 2.0);
  Tensor y = dropout(big, 0.25, true, g);
  auto xv = big.to_vector<double>(), yv = y.to_vector<double>();
  int64_t kept = 0;
  for (size_t i = 0; i < xv.size(); ++i) {
    if (yv[i] != 0) {
      ++kept;
      EXPECT_NEAR(yv[i], xv[i] / 0.75, 1e-12);
    }
  }
  EXPECT_NEAR(static_cast<double>(kept) / xv.size(), 0.75, 0.02);
  // identity when not training or p == 0
  EXPECT_TRUE(allclose(dropout(x, 0.5, false, g), x, 0, 0));
  EXPECT_TRUE(allclose(dropout(x, 0.0, true, g), x, 0, 0));
}

// ---------------------------------------------------------------- a small conv net

TEST(AutogradNN, JacobianOfConvNetBothModes) {
  kernels::Conv2dParams cp;
  cp.pad_h = 1, cp.pad_w = 1;
  kernels::Pool2dParams pp;
  pp.kernel_h = 2, pp.kernel_w = 2, pp.stride_h = 2, pp.stride_w = 2;
  Tensor w = randn({3, 2, 3, 3}, 48), b = randn({3}, 49), lw = randn({5, 27}, 50), lb = randn({5}, 51);
  Fn1 f = [&](const Tensor& x) {
    Tensor h = avg_pool2d(relu(conv2d(x, w, b, cp)), pp);  // (1, 3, 3, 3)
    return linear(h.reshape({1, 27}), lw, lb);             // (1, 5)
  };
  Tensor x = randn({1, 2, 6, 6}, 52);
  Tensor jf = jacobian(f, x, JacobianMode::Forward, 16);
  Tensor jr = jacobian(f, x, JacobianMode::Reverse, 2);
  Tensor jn = fd_jacobian(f, x);
  ASSERT_EQ(jf.shape(), (Shape{1, 5, 1, 2, 6, 6}));
  EXPECT_TRUE(allclose(jf, jr, 1e-10, 1e-12));
  EXPECT_TRUE(allclose(jr, jn, 1e-5, 1e-6));
}

// ---------------------------------------------------------------- errors

TEST(AutogradNN, ClearErrors) {
  Tensor x = randn({2, 3, 4, 4}, 53);
  Tensor w = randn({2, 3, 3, 3}, 54);
  EXPECT_CORTEX_ERROR(conv2d(randn({3, 4, 4}, 55), w), "conv2d: expected x of shape (N, C, H, W)");
  Generator g(1);
  EXPECT_CORTEX_ERROR(dropout(x, 1.0, true, g), "dropout: expected p in [0, 1)");
  EXPECT_CORTEX_ERROR(dropout(x, -0.1, false, g), "dropout: expected p in [0, 1)");
  EXPECT_CORTEX_ERROR(layer_norm(x, {3, 4}), "layer_norm: expected the trailing dims");
  EXPECT_CORTEX_ERROR(batch_norm_train(randn({1, 3}, 56), Tensor(), Tensor(), Tensor(), Tensor()),
                      "more than 1 value per channel");
  EXPECT_CORTEX_ERROR(batch_norm_train(x, Tensor(), Tensor(), zeros({3}, DType::Float64), Tensor()), "both given");
  EXPECT_CORTEX_ERROR(batch_norm_train(x, Tensor(), Tensor(), zeros({4}, DType::Float64), ones({4}, DType::Float64)),
                      "running_mean and running_var of shape [3]");
  EXPECT_CORTEX_ERROR(scaled_dot_product_attention(randn({2, 3, 4}, 57), randn({2, 5, 3}, 58), randn({2, 5, 4}, 59)),
                      "scaled_dot_product_attention: expected q");
}
