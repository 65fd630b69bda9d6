// max/avg/adaptive-avg pooling against naive float64 loops written here (PyTorch's window,
// padding, ceil_mode and count_include_pad rules), the backward kernels by the dot-product
// identity <K x, g> == <x, K^T g>, known output sizes, special values, and every input error.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/pool.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
namespace K = cortex::kernels;
namespace ct = cortex::testing;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

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

// Output size written from the definition: with L = in + 2 pad, floor mode counts the window
// starts o * stride with o * stride + k <= L; ceil mode counts o * stride < L - k + stride (a last
// partial window) whose window still starts inside the input or the left padding. 0: no window.
int64_t ref_out(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
  const int64_t L = in + 2 * p;
  int64_t n = 0;
  for (int64_t o = 0; o < 1000; ++o)
    if (ceil_mode ? (o * s < L - k + s && o * s - p < in) : (o * s + k <= L)) n = o + 1;
  return n;
}

struct Ref { std::vector<double> y; std::vector<int64_t> idx; };

// x (P, H, W) planes. Every cell of a window is visited: inside the input it counts, inside the
// padding it counts for count_include_pad, beyond the padding (a ceil-mode overhang) it is dropped.
Ref ref_pool(const std::vector<double>& x, int64_t P, int64_t H, int64_t W, const K::Pool2dParams& p, int64_t OH,
             int64_t OW, bool max) {
  Ref r{std::vector<double>(P * OH * OW), std::vector<int64_t>(P * OH * OW)};
  for (int64_t pl = 0; pl < P; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double best = -kInf, sum = 0;
        int64_t arg = -1, count_in = 0, count_pad = 0;
        for (int64_t i = 0; i < p.kernel_h; ++i)
          for (int64_t j = 0; j < p.kernel_w; ++j) {
            const int64_t h = oh * p.stride_h - p.pad_h + i, w = ow * p.stride_w - p.pad_w + j;
            if (h >= H + p.pad_h || w >= W + p.pad_w) continue;  // beyond the padding
            if (h < 0 || w < 0 || h >= H || w >= W) {
              ++count_pad;
              continue;
            }
            const double v = x[(pl * H + h) * W + w];
            ++count_in;
            sum += v;
            if (arg < 0 || v > best) best = v, arg = h * W + w;
          }
        const int64_t o = (pl * OH + oh) * OW + ow;
        r.idx[o] = arg;
        r.y[o] = max ? best : sum / static_cast<double>(p.count_include_pad ? count_in + count_pad : count_in);
      }
  return r;
}

}  // namespace

TEST(Pool, OutputSizesKnownValues) {
  // (in, k, stride, pad, ceil) -> out, worked out by hand from PyTorch's rule
  struct Case { int64_t in, k, s, p; bool ceil; int64_t out; };
  for (const Case& c : std::vector<Case>{{5, 2, 2, 0, false, 2}, {5, 2, 2, 0, true, 3}, {6, 3, 2, 1, true, 4},
                                         {6, 3, 2, 1, false, 3}, {5, 2, 2, 1, true, 3}, {5, 2, 2, 1, false, 3},
                                         {1, 1, 1, 0, false, 1}, {1, 3, 3, 1, true, 1}, {7, 3, 3, 1, true, 3},
                                         {2, 3, 1, 1, false, 2}, {4, 4, 1, 2, true, 5},
                                         {2, 3, 2, 0, true, 1}}) {
    K::Pool2dParams p;
    p.kernel_h = c.k, p.kernel_w = 1, p.stride_h = c.s, p.pad_h = c.p, p.ceil_mode = c.ceil;
    EXPECT_EQ(K::avg_pool2d(zeros({1, 1, c.in, 1}), p).size(2), c.out)
        << c.in << " " << c.k << " " << c.s << " " << c.p << " " << c.ceil;
    EXPECT_EQ(ref_out(c.in, c.k, c.s, c.p, c.ceil), c.out);
  }
}

TEST(Pool, MaxAndAvgRandomParams) {
  uint64_t seed = 10;
  int checked = 0;
  for (int trial = 0; trial < 80; ++trial) {
    const auto r = draw(1, 10, 10, 1000 + trial);
    K::Pool2dParams p;
    p.kernel_h = 1 + r[0] % 4, p.kernel_w = 1 + r[1] % 4;
    p.stride_h = 1 + r[2] % 3, p.stride_w = 1 + r[3] % 3;
    p.pad_h = r[4] % (p.kernel_h / 2 + 1), p.pad_w = r[5] % (p.kernel_w / 2 + 1);
    p.ceil_mode = r[6] % 2, p.count_include_pad = r[7] % 2;
    const int64_t N = 1 + trial % 2, C = 1 + trial % 3, H = r[8], W = r[9];
    const int64_t OH = ref_out(H, p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode);
    const int64_t OW = ref_out(W, p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode);
    const DType dt = trial % 2 ? DType::Float32 : DType::Float64;
    const Tensor x = ct::randn({N, C, H, W}, seed++, dt);
    if (OH < 1 || OW < 1) {
      EXPECT_CORTEX_ERROR(K::max_pool2d(x, p), "output size of at least 1");
      continue;
    }
    ++checked;
    const auto xv = values(x);
    const Ref rm = ref_pool(xv, N * C, H, W, p, OH, OW, true), ra = ref_pool(xv, N * C, H, W, p, OH, OW, false);
    const Shape os{N, C, OH, OW};
    const double tol = dt == DType::Float32 ? 1e-6 : 1e-14;
    for (const Tensor& in : {x, ct::noncontig(x), x.permute({0, 1, 3, 2}).contiguous().permute({0, 1, 3, 2})}) {
      const K::MaxPool m = K::max_pool2d(in, p);
      EXPECT_TRUE(allclose(m.y, f64(rm.y, os), 0, 0)) << "trial " << trial;
      EXPECT_EQ(m.indices.dtype(), DType::Int64);
      EXPECT_EQ(m.indices.to_vector<int64_t>(), rm.idx) << "trial " << trial;
      EXPECT_TRUE(allclose(K::avg_pool2d(in, p), f64(ra.y, os), tol, tol)) << "trial " << trial;
    }
    // the backward is the adjoint of the forward
    const Tensor xd = x.to(DType::Float64), g = ct::randn(os, seed++);
    const double lhs = dot(K::avg_pool2d(xd, p), g), rhs = dot(xd, K::avg_pool2d_backward(ct::noncontig(g), x.shape(), p));
    EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs))) << "trial " << trial;
    const Tensor gx = K::avg_pool2d_backward(g.to(dt), x.shape(), p);
    EXPECT_EQ(gx.dtype(), dt);
    EXPECT_EQ(gx.shape(), x.shape());
  }
  EXPECT_GT(checked, 40);
}

TEST(Pool, LargeThreadedAndUnbatched) {
  K::Pool2dParams p;
  p.kernel_h = 3, p.kernel_w = 3, p.stride_h = 2, p.stride_w = 2, p.pad_h = 1, p.pad_w = 1, p.ceil_mode = true;
  p.count_include_pad = false;
  const Tensor x = ct::randn({3, 16, 33, 35}, 5, DType::Float32);
  const int64_t OH = ref_out(33, 3, 2, 1, true), OW = ref_out(35, 3, 2, 1, true);
  const auto xv = values(x);
  const Ref rm = ref_pool(xv, 48, 33, 35, p, OH, OW, true), ra = ref_pool(xv, 48, 33, 35, p, OH, OW, false);
  const K::MaxPool m = K::max_pool2d(x, p);
  EXPECT_TRUE(allclose(m.y, f64(rm.y, {3, 16, OH, OW}), 0, 0));
  EXPECT_EQ(m.indices.to_vector<int64_t>(), rm.idx);
  EXPECT_TRUE(allclose(K::avg_pool2d(x, p), f64(ra.y, {3, 16, OH, OW}), 1e-6, 1e-6));
  // (C, H, W) input, as PyTorch accepts: the same as a batch of one
  const Tensor u = x.select(0, 1);
  const K::MaxPool mu = K::max_pool2d(u, p);
  EXPECT_EQ(mu.y.shape(), (Shape{16, OH, OW}));
  EXPECT_TRUE(allclose(mu.y, m.y.select(0, 1), 0, 0));
  EXPECT_TRUE(allclose(mu.indices.to(DType::Float64), m.indices.select(0, 1).to(DType::Float64), 0, 0));
  EXPECT_TRUE(allclose(K::avg_pool2d(u, p), K::avg_pool2d(x, p).select(0, 1), 0, 0));
  const Tensor g = ct::randn({16, OH, OW}, 6, DType::Float32);
  const Tensor gx = K::avg_pool2d_backward(g, {16, 33, 35}, p);
  EXPECT_EQ(gx.shape(), (Shape{16, 33, 35}));
  EXPECT_TRUE(allclose(gx, K::avg_pool2d_backward(g.unsqueeze(0), {1, 16, 33, 35}, p).squeeze(0), 0, 0));
  // empty batch and one-pixel planes
  EXPECT_EQ(K::max_pool2d(zeros({0, 2, 5, 5}), p).y.shape(), (Shape{0, 2, 3, 3}));
  K::Pool2dParams one;
  const Tensor px = ct::randn({2, 3, 1, 1}, 7);
  EXPECT_TRUE(allclose(K::max_pool2d(px, one).y, px, 0, 0));
  EXPECT_TRUE(allclose(K::avg_pool2d(px, one), px, 0, 0));
}

TEST(Pool, MaxInteriorColumnsMatchScalarRule) {
  // The vectorised interior columns (stride 1, 2 and other strides, with and without padding and
  // ceil mode, AlexNet's 55 -> 27 -> 13 -> 6 maps) against PyTorch's scalar rule written here:
  // start at the first in-bounds cell with -inf, take v when v > max or v is NaN. The input holds
  // ties, -inf, +inf and NaNs, so which index wins is checked, not only the value.
  struct Case { int64_t H, W, k, s, p; bool ceil; };
  for (const Case& c : std::vector<Case>{{55, 55, 3, 2, 0, false}, {27, 27, 3, 2, 0, false}, {13, 13, 3, 2, 0, false},
                                         {9, 40, 3, 1, 1, false}, {7, 37, 2, 3, 1, true}, {8, 33, 3, 2, 1, true},
                                         {5, 21, 4, 4, 2, false}}) {
    K::Pool2dParams p;
    p.kernel_h = p.kernel_w = c.k, p.stride_h = p.stride_w = c.s, p.pad_h = p.pad_w = c.p, p.ceil_mode = c.ceil;
    const int64_t P = 6, OH = ref_out(c.H, c.k, c.s, c.p, c.ceil), OW = ref_out(c.W, c.k, c.s, c.p, c.ceil);
    // values from a few levels, so ties are common, and specials sprinkled in
    const auto lv = draw(0, 9, P * c.H * c.W, 40 + c.W);
    std::vector<double> xv(lv.size());
    for (size_t i = 0; i < lv.size(); ++i)
      xv[i] = lv[i] == 0 ? std::nan("") : lv[i] == 1 ? -kInf : lv[i] == 2 ? kInf : static_cast<double>(lv[i] % 4);
    for (DType dt : {DType::Float32, DType::Float64}) {
      SCOPED_TRACE("H " + std::to_string(c.H) + " W " + std::to_string(c.W) + " k " + std::to_string(c.k) + " s " +
                   std::to_string(c.s) + " " + dtype_name(dt));
      const K::MaxPool m = K::max_pool2d(f64(xv, {2, 3, c.H, c.W}).to(dt), p);
      ASSERT_EQ(m.y.shape(), (Shape{2, 3, OH, OW}));
      const auto y = values(m.y);
      const auto idx = m.indices.to_vector<int64_t>();
      for (int64_t pl = 0; pl < P; ++pl)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t h0 = std::max<int64_t>(oh * c.s - c.p, 0), h1 = std::min(oh * c.s - c.p + c.k, c.H);
            const int64_t w0 = std::max<int64_t>(ow * c.s - c.p, 0), w1 = std::min(ow * c.s - c.p + c.k, c.W);
            double best = -kInf;
            int64_t arg = h0 * c.W + w0;
            for (int64_t ih = h0; ih < h1; ++ih)
              for (int64_t iw = w0; iw < w1; ++iw) {
                const double v = xv[(pl * c.H + ih) * c.W + iw];
                if (v > best || std::isnan(v)) best = v, arg = ih * c.W + iw;
              }
            const int64_t o = (pl * OH + oh) * OW + ow;
            ASSERT_EQ(idx[o], arg) << "plane " << pl << " at " << oh << ", " << ow;
            if (std::isnan(best))
              ASSERT_TRUE(std::isnan(y[o]));
            else
              ASSERT_EQ(y[o], best);
          }
    }
  }
}

TEST(Pool, MaxSpecialValuesAndDivisors) {
  // padding counts as -inf: a window of -inf returns -inf at its first in-bounds cell
  K::Pool2dParams p;
  p.kernel_h = p.kernel_w = 2, p.stride_h = p.stride_w = 2, p.pad_h = p.pad_w = 1;
  const Tensor x = from_vector(std::vector<double>{-kInf, -kInf, -kInf, -kInf, -kInf, std::nan(""), -2, -3, 1},
                               {1, 1, 3, 3});
  const K::MaxPool m = K::max_pool2d(x, p);  // 2x2 windows starting at -1, 1
  EXPECT_EQ(m.y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(m.y.at({0, 0, 0, 0}), -kInf);
  // windows: {0}, {1, 2} (all -inf: first cell), {3, 6} (-2), {4, 5, 7, 8} (the NaN at 5 wins)
  EXPECT_EQ(m.indices.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 6, 5}));
  EXPECT_EQ(m.y.at({0, 0, 0, 1}), -kInf);
  EXPECT_EQ(m.y.at({0, 0, 1, 0}), -2.0);
  EXPECT_TRUE(std::isnan(m.y.at({0, 0, 1, 1})));
  // a NaN wins its window (window (0, 1) covers cells 1, 2 and (1, 1) covers 4, 5, 7, 8)
  const K::MaxPool m2 = K::max_pool2d(x, [] { K::Pool2dParams q; q.kernel_h = q.kernel_w = 2; return q; }());
  EXPECT_TRUE(std::isnan(m2.y.at({0, 0, 0, 1})));
  EXPECT_EQ(m2.indices.at({0, 0, 0, 1}), 5);
  EXPECT_TRUE(std::isnan(m2.y.at({0, 0, 1, 1})));
  // avg divisor: count_include_pad uses the window clipped to input + padding, ceil overhang excluded
  K::Pool2dParams a;
  a.kernel_h = a.kernel_w = 3, a.stride_h = a.stride_w = 2, a.pad_h = a.pad_w = 1, a.ceil_mode = true;
  const Tensor o = ones({1, 1, 4, 4}, DType::Float64);
  // windows start at -1, 1, 3; the last covers 3, 4(pad), 5(overhang) -> 2 cells counted per dim
  const Tensor y = K::avg_pool2d(o, a);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_DOUBLE_EQ(y.at({0, 0, 0, 0}), 4.0 / 9.0);
  EXPECT_DOUBLE_EQ(y.at({0, 0, 2, 2}), 1.0 / 4.0);
  EXPECT_DOUBLE_EQ(y.at({0, 0, 1, 2}), 3.0 / 6.0);
  a.count_include_pad = false;
  EXPECT_TRUE(allclose(K::avg_pool2d(o, a), ones({1, 1, 3, 3}, DType::Float64), 1e-15));
}

namespace {
// PyTorch's adaptive bins from the formula, in floating point.
std::vector<double> ref_adaptive(const std::vector<double>& x, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  std::vector<double> y(P * OH * OW);
  for (int64_t pl = 0; pl < P; ++pl)
    for (int64_t i = 0; i < OH; ++i)
      for (int64_t j = 0; j < OW; ++j) {
        const int64_t h0 = static_cast<int64_t>(std::floor(double(i) * H / OH));
        const int64_t h1 = static_cast<int64_t>(std::ceil(double(i + 1) * H / OH));
        const int64_t w0 = static_cast<int64_t>(std::floor(double(j) * W / OW));
        const int64_t w1 = static_cast<int64_t>(std::ceil(double(j + 1) * W / OW));
        double s = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) s += x[(pl * H + h) * W + w];
        y[(pl * OH + i) * OW + j] = s / double((h1 - h0) * (w1 - w0));
      }
  return y;
}
}  // namespace

TEST(Pool, AdaptiveAvgAndAdjoint) {
  uint64_t seed = 300;
  for (int trial = 0; trial < 30; ++trial) {
    const auto r = draw(1, 12, 4, 3000 + trial);
    const int64_t N = 1 + trial % 2, C = 1 + trial % 3, H = r[0], W = r[1], OH = r[2], OW = 1 + r[3] % 5;
    const DType dt = trial % 2 ? DType::Float32 : DType::Float64;
    const Tensor x = ct::randn({N, C, H, W}, seed++, dt);
    const Shape os{N, C, OH, OW};
    const Tensor ref = f64(ref_adaptive(values(x), N * C, H, W, OH, OW), os);
    const double tol = dt == DType::Float32 ? 1e-6 : 1e-14;
    EXPECT_TRUE(allclose(K::adaptive_avg_pool2d(x, OH, OW), ref, tol, tol)) << trial;
    EXPECT_TRUE(allclose(K::adaptive_avg_pool2d(ct::noncontig(x), OH, OW), ref, tol, tol)) << trial;
    const Tensor xd = x.to(DType::Float64), g = ct::randn(os, seed++);
    const double lhs = dot(K::adaptive_avg_pool2d(xd, OH, OW), g);
    const double rhs = dot(xd, K::adaptive_avg_pool2d_backward(ct::noncontig(g), x.shape()));
    EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs))) << trial;
  }
  // global pooling is the plane mean; same size is the identity; 3-D input; big threaded case
  const Tensor x = ct::randn({2, 3, 5, 7}, 9);
  EXPECT_TRUE(allclose(K::adaptive_avg_pool2d(x, 5, 7), x, 1e-15));
  double plane_sum = 0;
  for (double v : values(x.select(0, 1).select(0, 2))) plane_sum += v;
  EXPECT_NEAR(K::adaptive_avg_pool2d(x, 1, 1).at({1, 2, 0, 0}), plane_sum / 35, 1e-14);
  EXPECT_EQ(K::adaptive_avg_pool2d(x.select(0, 0), 2, 3).shape(), (Shape{3, 2, 3}));
  EXPECT_EQ(K::adaptive_avg_pool2d_backward(ones({3, 2, 3}), {3, 5, 7}).shape(), (Shape{3, 5, 7}));
  const Tensor big = ct::randn({4, 64, 29, 31}, 10, DType::Float32);
  EXPECT_TRUE(allclose(K::adaptive_avg_pool2d(big, 7, 6), f64(ref_adaptive(values(big), 256, 29, 31, 7, 6), {4, 64, 7, 6}),
                       1e-5, 1e-6));
}

TEST(Pool, Errors) {
  K::Pool2dParams p;
  p.kernel_h = p.kernel_w = 2;
  const Tensor x = zeros({1, 2, 4, 4});
  EXPECT_CORTEX_ERROR(K::max_pool2d(zeros({1, 2, 4, 4}, DType::Int64), p), "max_pool2d: expected x to be float32");
  EXPECT_CORTEX_ERROR(K::avg_pool2d(zeros({4, 4}), p), "avg_pool2d: expected x of shape (N, C, H, W) or (C, H, W)");
  EXPECT_CORTEX_ERROR(K::max_pool2d(zeros({1, 2, 0, 4}), p), "non-empty spatial dims");
  K::Pool2dParams q = p;
  q.kernel_w = 0;
  EXPECT_CORTEX_ERROR(K::max_pool2d(x, q), "positive kernel size, found 0");
  q = p, q.stride_h = 0;
  EXPECT_CORTEX_ERROR(K::avg_pool2d(x, q), "positive stride");
  q = p, q.pad_h = 2;
  EXPECT_CORTEX_ERROR(K::avg_pool2d(x, q), "padding in [0, kernel / 2] = [0, 1], found 2");
  q = p, q.pad_w = -1;
  EXPECT_CORTEX_ERROR(K::max_pool2d(x, q), "padding in");
  q = p, q.kernel_h = 5;
  EXPECT_CORTEX_ERROR(K::max_pool2d(x, q), "output size of at least 1");
  q.kernel_h = 3, q.stride_h = 2;
  EXPECT_CORTEX_ERROR(K::max_pool2d(zeros({1, 1, 2, 4}), q), "found 0 (input size 2, kernel 3");
  q.ceil_mode = true;  // a partial window is allowed in ceil mode
  EXPECT_EQ(K::max_pool2d(zeros({1, 1, 2, 4}), q).y.shape(), (Shape{1, 1, 1, 3}));
  q.kernel_h = 6, q.pad_h = 0;
  EXPECT_CORTEX_ERROR(K::max_pool2d(zeros({1, 1, 2, 4}), q), "output size of at least 1");
  EXPECT_CORTEX_ERROR(K::avg_pool2d_backward(zeros({1, 2, 3, 2}), {1, 2, 4, 4}, p),
                      "avg_pool2d_backward: expected gy of shape [1, 2, 3, 3]");
  EXPECT_CORTEX_ERROR(K::avg_pool2d_backward(zeros({1, 2, 2, 2}, DType::Int32), {1, 2, 4, 4}, p), "expected gy to be");
  EXPECT_CORTEX_ERROR(K::avg_pool2d_backward(zeros({2, 2}), {4, 4}, p), "expected x_shape");
  EXPECT_CORTEX_ERROR(K::adaptive_avg_pool2d(x, 0, 2), "adaptive_avg_pool2d: expected a positive output size");
  EXPECT_CORTEX_ERROR(K::adaptive_avg_pool2d(zeros({2, 3}), 1, 1), "expected x of shape");
  EXPECT_CORTEX_ERROR(K::adaptive_avg_pool2d_backward(zeros({1, 3, 2, 2}), {1, 2, 4, 4}),
                      "adaptive_avg_pool2d_backward: expected gy of shape");
  EXPECT_CORTEX_ERROR(K::adaptive_avg_pool2d_backward(zeros({1, 2, 0, 2}), {1, 2, 4, 4}), "positive output size");
  EXPECT_CORTEX_ERROR(K::adaptive_avg_pool2d_backward(zeros({1, 2, 2, 2}), {1, -2, 4, 4}), "negative");
}
