// grid_sample, bilinear resize and pad against naive float64 loops written here (bilinear as a
// sum of tent weights over every pixel, so no floor/tap logic is shared with the kernels), their
// backward kernels by the dot-product identity, grid_sample's grid gradient by central finite
// differences, exact known values, odd shapes, strided views, size-1 dims and every input error.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/sample.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
namespace K = cortex::kernels;
namespace ct = cortex::testing;

namespace {

std::vector<int64_t> draw(int64_t lo, int64_t hi, int64_t n, uint64_t seed) {
  Generator g(seed);
  return randint(lo, hi, {n}, g).to_vector<int64_t>();
}
std::vector<double> values(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }
Tensor f64(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, DType::Float64); }
double dot(const Tensor& a, const Tensor& b) {
  const auto va = values(a), vb = values(b);
  double s = 0;
  for (size_t i = 0; i < va.size(); ++i) s += va[i] * vb[i];
  return s;
}
double tent(double t) { return std::max(0.0, 1.0 - std::abs(t)); }

// ---------------------------------------------------------------- grid_sample reference

double unnormalize(double g, int64_t size, bool align) {
  return align ? (g + 1) / 2 * static_cast<double>(size - 1) : ((g + 1) * static_cast<double>(size) - 1) / 2;
}

// x (N, C, H, W), grid (N, Ho, Wo, 2) as flat vectors; out (N, C, Ho, Wo).
std::vector<double> ref_grid_sample(const std::vector<double>& x, const std::vector<double>& grid, const Shape& xs,
                                    int64_t Ho, int64_t Wo, bool align, K::GridPadding pad) {
  const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], L = Ho * Wo;
  std::vector<double> y(N * C * L, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t l = 0; l < L; ++l) {
      double sx = unnormalize(grid[(n * L + l) * 2], W, align), sy = unnormalize(grid[(n * L + l) * 2 + 1], H, align);
      if (pad == K::GridPadding::Border) {
        sx = std::clamp(sx, 0.0, static_cast<double>(W - 1));
        sy = std::clamp(sy, 0.0, static_cast<double>(H - 1));
      }
      for (int64_t c = 0; c < C; ++c) {
        double v = 0;
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) v += x[((n * C + c) * H + h) * W + w] * tent(sx - w) * tent(sy - h);
        y[(n * C + c) * L + l] = v;
      }
    }
  return y;
}

// Nearest: the pixel at the source coordinate rounded half to even (std::nearbyint, as torch),
// 0 outside with zero padding; written from the definition, no tap logic shared with the kernel.
std::vector<double> ref_grid_sample_nearest(const std::vector<double>& x, const std::vector<double>& grid,
                                            const Shape& xs, int64_t Ho, int64_t Wo, bool align, K::GridPadding pad) {
  const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], L = Ho * Wo;
  std::vector<double> y(N * C * L, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t l = 0; l < L; ++l) {
      double sx = unnormalize(grid[(n * L + l) * 2], W, align), sy = unnormalize(grid[(n * L + l) * 2 + 1], H, align);
      if (pad == K::GridPadding::Border) {
        sx = std::clamp(sx, 0.0, static_cast<double>(W - 1));
        sy = std::clamp(sy, 0.0, static_cast<double>(H - 1));
      }
      const double rx = std::nearbyint(sx), ry = std::nearbyint(sy);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w)
            if (static_cast<double>(h) == ry && static_cast<double>(w) == rx)
              y[(n * C + c) * L + l] = x[((n * C + c) * H + h) * W + w];
    }
  return y;
}

// Nudges grid values so that no source coordinate lies within 0.02 px of an integer, where
// bilinear interpolation (and the border clamp) is not differentiable.
std::vector<double> away_from_integers(std::vector<double> g, int64_t H, int64_t W, bool align) {
  for (size_t i = 0; i < g.size(); ++i) {
    const int64_t size = i % 2 == 0 ? W : H;
    if (align && size == 1) continue;  // the source coordinate is always 0; the output ignores g
    const double scale = align ? (size - 1) / 2.0 : size / 2.0;
    for (int it = 0; it < 10; ++it) {
      const double s = unnormalize(g[i], size, align);
      if (std::abs(s - std::round(s)) > 0.02) break;
      g[i] += 0.05 / scale;
    }
  }
  return g;
}

}  // namespace

TEST(GridSample, RandomAgainstTentReference) {
  uint64_t seed = 1;
  for (int trial = 0; trial < 24; ++trial) {
    const auto r = draw(1, 8, 5, 500 + trial);
    const int64_t N = 1 + trial % 2, C = r[0] % 4, H = r[1], W = r[2], Ho = r[3], Wo = r[4];
    const bool align = trial % 2;
    const K::GridPadding pad = (trial / 2) % 2 ? K::GridPadding::Border : K::GridPadding::Zeros;
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor x = ct::randn({N, C, H, W}, seed++, dt);
      const Tensor grid = ct::randu({N, Ho, Wo, 2}, seed++, -1.3, 1.3, dt);
      const Tensor ref = f64(ref_grid_sample(values(x), values(grid), x.shape(), Ho, Wo, align, pad), {N, C, Ho, Wo});
      const double tol = dt == DType::Float32 ? 1e-5 : 1e-13;
      EXPECT_TRUE(allclose(K::grid_sample(x, grid, align, pad), ref, tol, tol)) << "trial " << trial;
      // strided x and a grid stored as (N, 2, Ho, Wo) and permuted into place
      const Tensor gp = grid.permute({0, 3, 1, 2}).contiguous().permute({0, 2, 3, 1});
      EXPECT_TRUE(allclose(K::grid_sample(ct::noncontig(x), gp, align, pad), ref, tol, tol)) << "trial " << trial;
    }
  }
}

TEST(GridSample, IdentityGridsAndKnownValues) {
  for (const auto& [H, W] : std::vector<std::pair<int64_t, int64_t>>{{5, 7}, {1, 4}, {3, 1}, {1, 1}})
    for (bool align : {true, false}) {
      std::vector<double> g;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w) {
          // the grid coordinates whose unnormalised position is exactly pixel (h, w)
          auto norm = [&](int64_t i, int64_t n) {
            return align ? (n == 1 ? 0.0 : -1.0 + 2.0 * i / (n - 1)) : (2.0 * i + 1) / n - 1;
          };
          g.push_back(norm(w, W));
          g.push_back(norm(h, H));
        }
      const Tensor grid = f64(g, {1, H, W, 2}).expand({2, H, W, 2});  // a broadcast (stride 0) grid
      const Tensor x = ct::randn({2, 3, H, W}, 42);
      for (auto pad : {K::GridPadding::Zeros, K::GridPadding::Border})
        EXPECT_TRUE(allclose(K::grid_sample(x, grid, align, pad), x, 1e-14, 1e-14)) << H << "x" << W << " " << align;
    }
  // x = [[1, 2], [3, 4]]: the centre is 2.5 either way; (1, 1) is pixel (1.5, 1.5) without
  // align_corners: a quarter of 4 with zero padding, 4 with border padding
  const Tensor x = f64({1, 2, 3, 4}, {1, 1, 2, 2});
  const Tensor g = f64({0, 0, 1, 1, -1, 1, 5, -5}, {1, 1, 4, 2});
  EXPECT_TRUE(allclose(K::grid_sample(x, g, false, K::GridPadding::Zeros), f64({2.5, 1.0, 0.75, 0}, {1, 1, 1, 4})));
  EXPECT_TRUE(allclose(K::grid_sample(x, g, false, K::GridPadding::Border), f64({2.5, 4, 3, 2}, {1, 1, 1, 4})));
  EXPECT_TRUE(allclose(K::grid_sample(x, g, true, K::GridPadding::Zeros), f64({2.5, 4, 3, 0}, {1, 1, 1, 4})));
  // far outside, infinite and NaN coordinates: zeros (or the edge) and NaN, never a bad read
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor odd = f64({1e30, 0, -inf, 0, std::nan(""), 0}, {1, 1, 3, 2});
  const Tensor yz = K::grid_sample(x, odd, false, K::GridPadding::Zeros);
  EXPECT_EQ(yz.at({0, 0, 0, 0}), 0.0);
  EXPECT_EQ(yz.at({0, 0, 0, 1}), 0.0);
  EXPECT_TRUE(std::isnan(yz.at({0, 0, 0, 2})));
  const Tensor yb = K::grid_sample(x, odd, false, K::GridPadding::Border);
  EXPECT_EQ(yb.at({0, 0, 0, 0}), 3.0);  // x clamped to 1, y = 0 -> pixel (0.5, 1): between 2 and 4
  EXPECT_EQ(yb.at({0, 0, 0, 1}), 2.0);
  // empty channel, batch and output sizes
  EXPECT_EQ(K::grid_sample(zeros({2, 0, 3, 3}), zeros({2, 4, 5, 2}), true, K::GridPadding::Zeros).shape(),
            (Shape{2, 0, 4, 5}));
  EXPECT_EQ(K::grid_sample(zeros({0, 2, 3, 3}), zeros({0, 4, 5, 2}), true, K::GridPadding::Zeros).shape(),
            (Shape{0, 2, 4, 5}));
  EXPECT_EQ(K::grid_sample(zeros({1, 2, 3, 3}), zeros({1, 0, 5, 2}), true, K::GridPadding::Zeros).shape(),
            (Shape{1, 2, 0, 5}));
}

TEST(GridSample, BackwardAdjointAndFiniteDifferences) {
  uint64_t seed = 100;
  for (int trial = 0; trial < 16; ++trial) {
    const auto r = draw(1, 7, 5, 700 + trial);
    const int64_t N = 1 + trial % 2, C = 1 + r[0] % 3, H = r[1], W = r[2], Ho = r[3], Wo = r[4];
    const bool align = trial % 2;
    const K::GridPadding pad = (trial / 2) % 2 ? K::GridPadding::Border : K::GridPadding::Zeros;
    const Tensor x = ct::randn({N, C, H, W}, seed++);
    const auto gv = away_from_integers(values(ct::randu({N, Ho, Wo, 2}, seed++, -1.25, 1.25)), H, W, align);
    const Tensor grid = f64(gv, {N, Ho, Wo, 2});
    const Tensor gy = ct::randn({N, C, Ho, Wo}, seed++);
    const K::GridSampleGrads gr = K::grid_sample_backward(ct::noncontig(gy), ct::noncontig(x), grid, align, pad);
    ASSERT_EQ(gr.input.shape(), x.shape());
    ASSERT_EQ(gr.grid.shape(), grid.shape());
    // grid_grad false: the same input gradient, bit for bit, and no grid gradient
    const K::GridSampleGrads gi = K::grid_sample_backward(gy, x, grid, align, pad, K::GridMode::Bilinear, false);
    EXPECT_FALSE(gi.grid.defined());
    EXPECT_EQ(values(gi.input), values(gr.input)) << "trial " << trial;
    // the input gradient is the adjoint of the (linear in x) forward
    const double lhs = dot(K::grid_sample(x, grid, align, pad), gy), rhs = dot(x, gr.input);
    EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs))) << "trial " << trial;
    // the grid gradient against central differences of sum(gy * reference(x, grid))
    const auto xv = values(x), gyv = values(gy);
    const auto gg = values(gr.grid);
    auto loss = [&](const std::vector<double>& g) {
      const auto y = ref_grid_sample(xv, g, x.shape(), Ho, Wo, align, pad);
      double s = 0;
      for (size_t i = 0; i < y.size(); ++i) s += y[i] * gyv[i];
      return s;
    };
    const double eps = 1e-6;
    for (size_t i = 0; i < gv.size(); ++i) {
      auto gp = gv, gm = gv;
      gp[i] += eps, gm[i] -= eps;
      const double fd = (loss(gp) - loss(gm)) / (2 * eps);
      EXPECT_NEAR(gg[i], fd, 1e-6 * (1 + std::abs(fd))) << "trial " << trial << " grid element " << i;
    }
    // float32 agrees with float64
    const K::GridSampleGrads g32 = K::grid_sample_backward(gy.to(DType::Float32), x.to(DType::Float32),
                                                           grid.to(DType::Float32), align, pad);
    EXPECT_EQ(g32.grid.dtype(), DType::Float32);
    EXPECT_TRUE(allclose(g32.input, gr.input, 1e-4, 1e-5));
    EXPECT_TRUE(allclose(g32.grid, gr.grid, 1e-3, 1e-4));
  }
  // the gradient along a border-clamped axis is zero, as PyTorch's
  const Tensor x = ct::randn({1, 2, 4, 4}, 5);
  const Tensor grid = f64({1.7, 0.13, -0.21, -2.0}, {1, 1, 2, 2});
  const auto gg = values(K::grid_sample_backward(ones({1, 2, 1, 2}, DType::Float64), x, grid, true,
                                                 K::GridPadding::Border).grid);
  EXPECT_EQ(gg[0], 0.0);
  EXPECT_NE(gg[1], 0.0);
  EXPECT_NE(gg[2], 0.0);
  EXPECT_EQ(gg[3], 0.0);
  // a big case for the threaded loops: adjoint identity
  const Tensor bx = ct::randn({2, 16, 23, 29}, 6), bg = ct::randu({2, 31, 37, 2}, 7, -1.1, 1.1);
  const Tensor bgy = ct::randn({2, 16, 31, 37}, 8);
  const double lhs = dot(K::grid_sample(bx, bg, false, K::GridPadding::Zeros), bgy);
  const double rhs = dot(bx, K::grid_sample_backward(bgy, bx, bg, false, K::GridPadding::Zeros).input);
  EXPECT_NEAR(lhs, rhs, 1e-11 * (1 + std::abs(lhs)));
}

TEST(GridSample, Errors) {
  const Tensor x = zeros({2, 3, 4, 5}), g = zeros({2, 6, 7, 2});
  EXPECT_CORTEX_ERROR(K::grid_sample(zeros({3, 4, 5}), g, true, K::GridPadding::Zeros),
                      "grid_sample: expected x of shape (N, C, H, W), found [3, 4, 5]");
  EXPECT_CORTEX_ERROR(K::grid_sample(zeros({2, 3, 0, 5}), g, true, K::GridPadding::Zeros), "non-empty spatial");
  EXPECT_CORTEX_ERROR(K::grid_sample(zeros({2, 3, 4, 5}, DType::Int32), g, true, K::GridPadding::Zeros),
                      "expected x to be float32 or float64");
  EXPECT_CORTEX_ERROR(K::grid_sample(x, zeros({2, 6, 7, 2}, DType::Float64), true, K::GridPadding::Zeros),
                      "one dtype");
  EXPECT_CORTEX_ERROR(K::grid_sample(x, zeros({1, 6, 7, 2}), true, K::GridPadding::Zeros),
                      "expected grid of shape (2, Ho, Wo, 2)");
  EXPECT_CORTEX_ERROR(K::grid_sample(x, zeros({2, 6, 7, 3}), true, K::GridPadding::Zeros), "found [2, 6, 7, 3]");
  EXPECT_CORTEX_ERROR(K::grid_sample(x, zeros({2, 42, 2}), true, K::GridPadding::Zeros), "expected grid of shape");
  EXPECT_CORTEX_ERROR(K::grid_sample_backward(zeros({2, 3, 6, 6}), x, g, true, K::GridPadding::Zeros),
                      "grid_sample_backward: expected gy of shape [2, 3, 6, 7]");
  EXPECT_CORTEX_ERROR(K::grid_sample_backward(zeros({2, 3, 6, 7}, DType::Float64), x, g, true, K::GridPadding::Zeros),
                      "one dtype");
  EXPECT_CORTEX_ERROR(K::grid_sample_backward(Tensor(), x, g, true, K::GridPadding::Zeros), "expected a defined tensor for gy");
}

// ---------------------------------------------------------------- resize

namespace {
double resize_src(int64_t o, int64_t in, int64_t out, bool align) {
  if (align) return out > 1 ? static_cast<double>(o) * (in - 1) / (out - 1) : 0.0;
  return std::clamp((o + 0.5) * in / out - 0.5, 0.0, static_cast<double>(in - 1));
}
std::vector<double> ref_resize(const std::vector<double>& x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW,
                               bool align) {
  std::vector<double> y(P * OH * OW, 0.0);
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < OH; ++i)
      for (int64_t j = 0; j < OW; ++j) {
        const double sh = resize_src(i, H, OH, align), sw = resize_src(j, W, OW, align);
        double v = 0;
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) v += x[(p * H + h) * W + w] * tent(sh - h) * tent(sw - w);
        y[(p * OH + i) * OW + j] = v;
      }
  return y;
}
}  // namespace

TEST(Resize, RandomAgainstReferenceAndAdjoint) {
  uint64_t seed = 900;
  for (int trial = 0; trial < 30; ++trial) {
    const auto r = draw(1, 12, 4, 9000 + trial);
    const int64_t N = 1 + trial % 2, C = 1 + trial % 3, H = r[0], W = r[1], OH = r[2], OW = r[3];
    const bool align = trial % 2;
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor x = ct::randn({N, C, H, W}, seed++, dt);
      const Tensor ref = f64(ref_resize(values(x), N * C, H, W, OH, OW, align), {N, C, OH, OW});
      const double tol = dt == DType::Float32 ? 1e-5 : 1e-13;
      EXPECT_TRUE(allclose(K::resize_bilinear(x, OH, OW, align), ref, tol, tol)) << "trial " << trial;
      EXPECT_TRUE(allclose(K::resize_bilinear(ct::noncontig(x), OH, OW, align), ref, tol, tol)) << "trial " << trial;
      const Tensor g = ct::randn({N, C, OH, OW}, seed++, dt);
      const Tensor gx = K::resize_bilinear_backward(ct::noncontig(g), x.shape(), align);
      EXPECT_EQ(gx.dtype(), dt);
      if (dt == DType::Float64) {
        const double lhs = dot(K::resize_bilinear(x, OH, OW, align), g), rhs = dot(x, gx);
        EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs))) << "trial " << trial;
      }
    }
  }
  // threaded sizes
  const Tensor x = ct::randn({2, 8, 37, 41}, 3), g = ct::randn({2, 8, 64, 19}, 4);
  EXPECT_TRUE(allclose(K::resize_bilinear(x, 64, 19, false), f64(ref_resize(values(x), 16, 37, 41, 64, 19, false),
                                                                 {2, 8, 64, 19}), 1e-13, 1e-13));
  const double lhs = dot(K::resize_bilinear(x, 64, 19, true), g);
  EXPECT_NEAR(lhs, dot(x, K::resize_bilinear_backward(g, x.shape(), true)), 1e-11 * (1 + std::abs(lhs)));
}

TEST(Resize, KnownValues) {
  const Tensor x = f64({1, 2, 3, 4}, {1, 1, 2, 2});
  // F.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False)
  EXPECT_TRUE(allclose(K::resize_bilinear(x, 4, 4, false),
                       f64({1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4}, {1, 1, 4, 4}),
                       1e-15));
  // align_corners=True to 3x3: the corners stay, the rest interpolates
  EXPECT_TRUE(allclose(K::resize_bilinear(x, 3, 3, true), f64({1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4}, {1, 1, 3, 3}), 1e-15));
  // to 1x1: align_corners picks the corner, otherwise the centre
  EXPECT_EQ(K::resize_bilinear(x, 1, 1, true).item(), 1.0);
  EXPECT_EQ(K::resize_bilinear(x, 1, 1, false).item(), 2.5);
  // same size is the identity, both ways; from 1x1 everything is that value
  const Tensor r = ct::randn({2, 3, 5, 1}, 8, DType::Float32);
  for (bool align : {true, false}) {
    EXPECT_TRUE(allclose(K::resize_bilinear(r, 5, 1, align), r, 0, 0));
    EXPECT_TRUE(allclose(K::resize_bilinear_backward(r, r.shape(), align), r, 0, 0));
    EXPECT_TRUE(allclose(K::resize_bilinear(full({1, 1, 1, 1}, 7.0), 3, 2, align), full({1, 1, 3, 2}, 7.0), 0, 0));
  }
  EXPECT_EQ(K::resize_bilinear(zeros({0, 3, 2, 2}), 4, 5, true).shape(), (Shape{0, 3, 4, 5}));
  EXPECT_EQ(K::resize_bilinear_backward(zeros({2, 0, 4, 5}), {2, 0, 2, 2}, true).shape(), (Shape{2, 0, 2, 2}));
}

TEST(Resize, Errors) {
  EXPECT_CORTEX_ERROR(K::resize_bilinear(zeros({3, 4, 4}), 2, 2, true), "resize_bilinear: expected x of shape (N, C, H, W)");
  EXPECT_CORTEX_ERROR(K::resize_bilinear(zeros({1, 3, 4, 4}), 0, 2, true), "positive output size, found (0, 2)");
  EXPECT_CORTEX_ERROR(K::resize_bilinear(zeros({1, 3, 4, 0}), 2, 2, true), "non-empty spatial");
  EXPECT_CORTEX_ERROR(K::resize_bilinear(zeros({1, 3, 4, 4}, DType::UInt8), 2, 2, true), "float32 or float64");
  EXPECT_CORTEX_ERROR(K::resize_bilinear_backward(zeros({1, 2, 4, 4}), {1, 3, 2, 2}, true),
                      "resize_bilinear_backward: expected gy of shape (1, 3, out_h >= 1, out_w >= 1)");
  EXPECT_CORTEX_ERROR(K::resize_bilinear_backward(zeros({1, 3, 4, 4}), {3, 2, 2}, true), "expected x_shape of shape");
  EXPECT_CORTEX_ERROR(K::resize_bilinear_backward(zeros({1, 3, 4, 4}), {1, 3, 0, 2}, true), "non-empty spatial");
}

// ---------------------------------------------------------------- pad

namespace {
// Source index of padded index o along a dim of size n with left pad l, by the definition of
// each mode; -1 means the constant.
int64_t pad_src(int64_t o, int64_t n, int64_t l, K::PadMode mode) {
  int64_t i = o - l;
  if (i >= 0 && i < n) return i;
  if (mode == K::PadMode::Constant) return -1;
  if (mode == K::PadMode::Replicate) return i < 0 ? 0 : n - 1;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;  // mirror about the edge cells
  return i;
}
std::vector<double> ref_pad(const std::vector<double>& x, const Shape& xs, const Shape& pads, K::PadMode mode,
                            double value, Shape& os) {
  const int64_t nd = static_cast<int64_t>(xs.size());
  os = xs;
  Shape left(nd, 0);
  for (size_t k = 0; 2 * k < pads.size(); ++k) {
    left[nd - 1 - k] = pads[2 * k];
    os[nd - 1 - k] += pads[2 * k] + pads[2 * k + 1];
  }
  const int64_t n = shape_numel(os);
  std::vector<double> y(n);
  for (int64_t f = 0; f < n; ++f) {
    int64_t rem = f, src = 0, stride = 1;
    bool constant = false;
    for (int64_t d = nd - 1; d >= 0; --d) {
      const int64_t o = rem % os[d];
      rem /= os[d];
      const int64_t i = pad_src(o, xs[d], left[d], mode);
      if (i < 0) constant = true;
      src += i * stride;
      stride *= xs[d];
    }
    y[f] = constant ? value : x[src];
  }
  return y;
}
}  // namespace

TEST(Pad, KnownValues) {
  const Tensor x = f64({1, 2, 3}, {3});
  EXPECT_TRUE(allclose(K::pad(x, {2, 2}, K::PadMode::Reflect), f64({3, 2, 1, 2, 3, 2, 1}, {7}), 0, 0));
  EXPECT_TRUE(allclose(K::pad(x, {2, 2}, K::PadMode::Replicate), f64({1, 1, 1, 2, 3, 3, 3}, {7}), 0, 0));
  EXPECT_TRUE(allclose(K::pad(x, {1, 2}, K::PadMode::Constant, -5), f64({-5, 1, 2, 3, -5, -5}, {6}), 0, 0));
  EXPECT_TRUE(allclose(K::pad(f64({1, 2, 3, 4}, {4}), {-1, 2}), f64({2, 3, 4, 0, 0}, {5}), 0, 0));
  EXPECT_TRUE(allclose(K::pad(f64({1, 2, 3, 4}, {4}), {-1, 2}, K::PadMode::Reflect), f64({2, 3, 4, 3, 2}, {5}), 0, 0));
  EXPECT_EQ(K::pad(x, {-2, -1}).shape(), (Shape{0}));
  // pairs go from the last dim backwards: {left, right, top, bottom}
  const Tensor m = f64({1, 2, 3, 4}, {2, 2});
  EXPECT_TRUE(allclose(K::pad(m, {0, 1, 1, 0}), f64({0, 0, 0, 1, 2, 0, 3, 4, 0}, {3, 3}), 0, 0));
  // integer images pad too (F.pad works for every dtype)
  const Tensor u = from_vector(std::vector<uint8_t>{10, 20, 30}, {1, 3});
  const Tensor pu = K::pad(u, {1, 1, 1, 0}, K::PadMode::Constant, 255);
  EXPECT_EQ(pu.dtype(), DType::UInt8);
  EXPECT_EQ(pu.to_vector<uint8_t>(), (std::vector<uint8_t>{255, 255, 255, 255, 255, 255, 10, 20, 30, 255}));
  EXPECT_EQ(K::pad(from_vector(std::vector<int64_t>{7, 8}), {1, 1}, K::PadMode::Replicate).to_vector<int64_t>(),
            (std::vector<int64_t>{7, 7, 8, 8}));
  // a 0-dim tensor with no pads is copied; no pads at all is a copy
  EXPECT_EQ(K::pad(scalar(2.0), {}).item(), 2.0);
  EXPECT_TRUE(allclose(K::pad(m.t(), {}), m.t(), 0, 0));
}

TEST(Pad, RandomModesAgainstReferenceAndAdjoint) {
  uint64_t seed = 1200;
  const K::PadMode modes[] = {K::PadMode::Constant, K::PadMode::Reflect, K::PadMode::Replicate};
  for (int trial = 0; trial < 60; ++trial) {
    const K::PadMode mode = modes[trial % 3];
    const int64_t nd = 1 + trial % 4;
    const auto sz = draw(1, 7, nd, 12000 + trial);
    const Shape xs(sz.begin(), sz.end());
    const int64_t npairs = 1 + (trial / 3) % nd;
    const auto pr = draw(0, 1000, 2 * npairs, 13000 + trial);
    Shape pads;
    for (int64_t k = 0; k < npairs; ++k) {
      const int64_t n = xs[nd - 1 - k];
      for (int side = 0; side < 2; ++side) {
        const int64_t v = pr[2 * k + side];
        // reflect: pads in (-n, n); otherwise in [-n/2, 4], so the result is never negative
        pads.push_back(mode == K::PadMode::Reflect ? v % (2 * n - 1) - (n - 1) : v % (5 + n / 2) - n / 2);
      }
      if (mode == K::PadMode::Reflect && n + pads[2 * k] + pads[2 * k + 1] < 0) pads[2 * k] = pads[2 * k + 1] = 0;
    }
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor x = ct::randn(xs, seed++, dt);
      Shape os;
      const auto ref = ref_pad(values(x), xs, pads, mode, 0.75, os);
      for (const Tensor& in : {x, ct::noncontig(x)}) {
        const Tensor y = K::pad(in, pads, mode, 0.75);
        EXPECT_TRUE(allclose(y, f64(ref, os), 0, 0)) << "trial " << trial << " " << shape_str(xs) << " pads "
                                                     << shape_str(pads);
      }
      const Tensor g = ct::randn(os, seed++, dt);
      const Tensor gx = K::pad_backward(ct::noncontig(g), xs, pads, mode);
      EXPECT_EQ(gx.shape(), xs);
      if (dt == DType::Float64) {
        // <pad(x), g> == <x, pad_backward(g)>; constant mode's fill is affine, so pad with 0 here
        const double lhs = dot(K::pad(x, pads, mode, 0.0), g), rhs = dot(x, gx);
        EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs))) << "trial " << trial << " pads " << shape_str(pads);
      }
    }
  }
  // large enough for the threads; pads on a leading dim make many output rows read one input row
  const Tensor x = ct::randn({9, 5, 33, 40}, 77);
  for (const K::PadMode mode : modes) {
    const Shape pads{3, 2, -4, 4, 3, 1, 2, 3};
    Shape os;
    const auto ref = ref_pad(values(x), x.shape(), pads, mode, 0.0, os);
    EXPECT_TRUE(allclose(K::pad(x, pads, mode), f64(ref, os), 0, 0));
    const Tensor g = ct::randn(os, 78);
    const double lhs = dot(K::pad(x, pads, mode), g), rhs = dot(x, K::pad_backward(g, x.shape(), pads, mode));
    EXPECT_NEAR(lhs, rhs, 1e-11 * (1 + std::abs(lhs)));
  }
  // size-0 dims
  EXPECT_EQ(K::pad(zeros({0, 3}), {1, 1}).shape(), (Shape{0, 5}));
  EXPECT_EQ(K::pad(zeros({2, 0}), {1, 2}).shape(), (Shape{2, 3}));
  EXPECT_EQ(K::pad_backward(zeros({2, 3}), {2, 0}, {1, 2}, K::PadMode::Constant).shape(), (Shape{2, 0}));
  EXPECT_EQ(K::pad_backward(zeros({0, 5}), {0, 3}, {1, 1}, K::PadMode::Replicate).shape(), (Shape{0, 3}));
}

TEST(Pad, Errors) {
  const Tensor x = zeros({2, 3});
  EXPECT_CORTEX_ERROR(K::pad(x, {1}), "pad: expected an even number of pads");
  EXPECT_CORTEX_ERROR(K::pad(x, {1, 1, 1, 1, 1, 1}), "at most 2 per dim (4 for shape [2, 3]), found 6");
  EXPECT_CORTEX_ERROR(K::pad(x, {-2, -2}), "non-negative size for dim 1");
  EXPECT_CORTEX_ERROR(K::pad(x, {0, 0, std::numeric_limits<int64_t>::max(), 1}), "non-negative size");
  EXPECT_CORTEX_ERROR(K::pad(x, {3, 0}, K::PadMode::Reflect), "reflect padding expects pads smaller than the dim");
  EXPECT_CORTEX_ERROR(K::pad(x, {0, 0, 0, 2}, K::PadMode::Reflect), "found pads (0, 2) for dim 0 of size 2");
  EXPECT_CORTEX_ERROR(K::pad(zeros({2, 0}), {1, 0}, K::PadMode::Replicate), "replicate padding expects a non-empty dim");
  EXPECT_CORTEX_ERROR(K::pad_backward(zeros({2, 4}), {2, 3}, {1, 1}, K::PadMode::Constant),
                      "pad_backward: expected gy of the padded shape [2, 5], found [2, 4]");
  EXPECT_CORTEX_ERROR(K::pad_backward(zeros({2, 5}, DType::Int64), {2, 3}, {1, 1}, K::PadMode::Constant),
                      "expected gy to be float32 or float64");
  EXPECT_CORTEX_ERROR(K::pad_backward(zeros({2, 5}), {2, 3}, {1}, K::PadMode::Constant), "even number");
  EXPECT_CORTEX_ERROR(K::pad_backward(zeros({2, 5}), {-2, 3}, {1, 1}, K::PadMode::Constant), "negative");
}

TEST(GridSample, NearestAgainstReference) {
  uint64_t seed = 900;
  for (int trial = 0; trial < 24; ++trial) {
    const auto r = draw(1, 8, 5, 1900 + trial);
    const int64_t N = 1 + trial % 2, C = r[0] % 4, H = r[1], W = r[2], Ho = r[3], Wo = r[4];
    const bool align = trial % 2;
    const K::GridPadding pad = (trial / 2) % 2 ? K::GridPadding::Border : K::GridPadding::Zeros;
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor x = ct::randn({N, C, H, W}, seed++, dt);
      const Tensor grid = ct::randu({N, Ho, Wo, 2}, seed++, -1.4, 1.4, dt);
      const Tensor ref =
          f64(ref_grid_sample_nearest(values(x), values(grid), x.shape(), Ho, Wo, align, pad), {N, C, Ho, Wo});
      // a copy of one element: exact in both dtypes
      EXPECT_TRUE(allclose(K::grid_sample(x, grid, align, pad, K::GridMode::Nearest), ref, 0, 0)) << "trial " << trial;
      const Tensor gp = grid.permute({0, 3, 1, 2}).contiguous().permute({0, 2, 3, 1});
      EXPECT_TRUE(allclose(K::grid_sample(ct::noncontig(x), gp, align, pad, K::GridMode::Nearest), ref, 0, 0))
          << "trial " << trial;
      // backward: the adjoint of the forward, and a zero grid gradient
      const Tensor gy = ct::randn({N, C, Ho, Wo}, seed++, dt);
      const K::GridSampleGrads gr =
          K::grid_sample_backward(ct::noncontig(gy), x, grid, align, pad, K::GridMode::Nearest);
      const double lhs = dot(K::grid_sample(x, grid, align, pad, K::GridMode::Nearest), gy), rhs = dot(x, gr.input);
      EXPECT_NEAR(lhs, rhs, (dt == DType::Float32 ? 1e-5 : 1e-12) * (1 + std::abs(lhs))) << "trial " << trial;
      EXPECT_TRUE(allclose(gr.grid, zeros(grid.shape(), dt), 0, 0)) << "trial " << trial;
    }
  }
}

TEST(GridSample, NearestRoundsHalfToEvenAndKeepsNaN) {
  // W = 4 without align_corners: g = -0.5, 0, 0.5 are source x 0.5, 1.5, 2.5 -> pixels 0, 2, 2
  // (half to even); g = 0.75 is 3.0 -> pixel 3; g = 1 is 3.5 -> 4, outside (zero) or clamped (3).
  const Tensor x = f64({10, 11, 12, 13}, {1, 1, 1, 4});
  const Tensor g = f64({-0.5, 0, 0, 0, 0.5, 0, 0.75, 0, 1, 0, std::nan(""), 0}, {1, 1, 6, 2});
  const Tensor yz = K::grid_sample(x, g, false, K::GridPadding::Zeros, K::GridMode::Nearest);
  const auto vz = values(yz);
  EXPECT_EQ(vz[0], 10.0);
  EXPECT_EQ(vz[1], 12.0);
  EXPECT_EQ(vz[2], 12.0);
  EXPECT_EQ(vz[3], 13.0);
  EXPECT_EQ(vz[4], 0.0);
  EXPECT_TRUE(std::isnan(vz[5]));
  const auto vb = values(K::grid_sample(x, g, false, K::GridPadding::Border, K::GridMode::Nearest));
  EXPECT_EQ(vb[4], 13.0);
  // an inf neighbour does not leak into a nearest read (bilinear would give 0 * inf = NaN there)
  const Tensor xi = f64({1, std::numeric_limits<double>::infinity()}, {1, 1, 1, 2});
  const Tensor gi = f64({-0.6, 0}, {1, 1, 1, 2});
  EXPECT_EQ(values(K::grid_sample(xi, gi, false, K::GridPadding::Zeros, K::GridMode::Nearest))[0], 1.0);
  // the grid gradient is 0, NaN at the NaN point; the input gradient sums onto the picked pixels
  const K::GridSampleGrads gr = K::grid_sample_backward(ones({1, 1, 1, 6}, DType::Float64), x, g, false,
                                                        K::GridPadding::Zeros, K::GridMode::Nearest);
  EXPECT_TRUE(allclose(gr.input, f64({1, 0, 2, 1}, {1, 1, 1, 4}), 0, 0));
  const auto gg = values(gr.grid);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(gg[i], 0.0) << i;
  EXPECT_TRUE(std::isnan(gg[10]) && std::isnan(gg[11]));
}
