// The conv kernels of kernels/cuda/conv.cu (implicit GEMM, direct depthwise kernels) on the
// emulated CUDA device, in strict device mode (a host fallback fails the test): conv2d,
// conv2d_input_grad and conv2d_weight_grad against a direct float64 loop written here and against
// the CPU kernels, over odd sizes, stride 2 and 3, padding, dilation 2, groups 2, depthwise, 1x1
// and 7x7 kernels, several column and row tiles, the weight grad's split-K path, an empty batch,
// an empty channel dim and strided views; float32 and float64.
//
// Bounds: the kernels sum in another order than the CPU's Eigen GEMM, so results are compared by
// normalised mean squared error (NMSE = sum (got - want)^2 / sum want^2): float32 <= 1e-11 against
// the float64 reference and the CPU (float32 rounding of sums of up to a few hundred O(1) terms
// gives about 1e-13), float64 <= 1e-26. Strided inputs, and every schedule order (forward,
// reverse, random), must give the same bits as the contiguous run (no atomics; inputs are made
// contiguous in the entries). The adjoint identity <conv(x), gy> == <x, input_grad(gy)> ==
// <w, weight_grad(x, gy)> is checked in float64 on the device.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/conv.h"
#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::bytes_of;
namespace ct = cortex::testing;

namespace {

const Device kEmu = Device::emu();

class CudaConv : public cortex::testing::StrictEmuTest {};

std::vector<double> values(const Tensor& t) {
  return t.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>();
}

struct Cfg {
  std::string name;
  int64_t N, C, H, W, O, KH, KW;
  K::Conv2dParams p;
  bool bias;
  int64_t OH() const { return (H + 2 * p.pad_h - p.dilation_h * (KH - 1) - 1) / p.stride_h + 1; }
  int64_t OW() const { return (W + 2 * p.pad_w - p.dilation_w * (KW - 1) - 1) / p.stride_w + 1; }
  Shape x() const { return {N, C, H, W}; }
  Shape w() const { return {O, C / p.groups, KH, KW}; }
  Shape y() const { return {N, O, OH(), OW()}; }
};

Cfg make(const std::string& name, int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW,
         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups, bool bias) {
  Cfg c{name, N, C, H, W, O, KH, KW, {}, bias};
  c.p.stride_h = sh, c.p.stride_w = sw, c.p.pad_h = ph, c.p.pad_w = pw, c.p.dilation_h = dh, c.p.dilation_w = dw;
  c.p.groups = groups;
  return c;
}

const std::vector<Cfg>& cfgs() {
  static const std::vector<Cfg> c = {
      make("3x3 pad 1, odd sizes", 2, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, true),
      make("stride 2, even kernel", 2, 4, 13, 10, 6, 2, 4, 2, 2, 1, 0, 1, 1, 1, false),
      make("stride 3, dilation 2, rectangular", 3, 2, 17, 19, 3, 3, 2, 3, 2, 2, 1, 2, 2, 1, true),
      make("groups 2", 2, 6, 8, 9, 4, 3, 3, 2, 1, 1, 2, 1, 2, 2, true),
      make("depthwise", 2, 5, 10, 9, 5, 3, 3, 2, 1, 1, 1, 2, 1, 5, true),
      make("depthwise, multiplier 2 (GEMM path)", 1, 3, 7, 8, 6, 3, 3, 1, 1, 1, 1, 1, 1, 3, false),
      make("1x1", 3, 7, 6, 5, 9, 1, 1, 1, 1, 0, 0, 1, 1, 1, true),
      make("1x1 stride 2 padded", 2, 4, 7, 7, 3, 1, 1, 2, 2, 1, 1, 1, 1, 1, false),
      make("7x7 stride 2 pad 3", 2, 3, 15, 17, 4, 7, 7, 2, 2, 3, 3, 1, 1, 1, true),
      // More than one row tile (70 > 64 output channels) and column tile; weight-grad split-K.
      make("two row tiles, split-K", 3, 4, 13, 13, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, true),
      make("kernel == image: 1x1 output", 2, 3, 5, 5, 2, 5, 5, 1, 1, 0, 0, 1, 1, 1, true),
      make("1x1 images", 3, 2, 1, 1, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, true),
      make("empty batch", 0, 3, 6, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, true),
      make("no input channels", 2, 0, 5, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, true),
  };
  return c;
}

// Calls f(y_index, x_index, w_index) for every (output, tap) pair whose input pixel is inside the
// image: the definition of the convolution.
template <class F>
void for_each_tap(const Cfg& c, F&& f) {
  const int64_t G = c.p.groups, Cg = c.C / G, Og = c.O / G, OH = c.OH(), OW = c.OW();
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow)
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t kh = 0; kh < c.KH; ++kh)
              for (int64_t kw = 0; kw < c.KW; ++kw) {
                const int64_t ih = oh * c.p.stride_h - c.p.pad_h + kh * c.p.dilation_h;
                const int64_t iw = ow * c.p.stride_w - c.p.pad_w + kw * c.p.dilation_w;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                const int64_t ci = (o / Og) * Cg + cg;
                f(((n * c.O + o) * OH + oh) * OW + ow, ((n * c.C + ci) * c.H + ih) * c.W + iw,
                  ((o * Cg + cg) * c.KH + kh) * c.KW + kw);
              }
}

struct Refs {
  Tensor y, gx, gw;
};

Refs refs(const Cfg& c, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& gy) {
  const auto xv = values(x), wv = values(w), gv = values(gy);
  std::vector<double> y(shape_numel(c.y()), 0.0), gx(shape_numel(c.x()), 0.0), gw(shape_numel(c.w()), 0.0);
  for_each_tap(c, [&](int64_t yi, int64_t xi, int64_t wi) {
    y[yi] += xv[xi] * wv[wi];
    gx[xi] += gv[yi] * wv[wi];
    gw[wi] += gv[yi] * xv[xi];
  });
  if (b.defined()) {
    const auto bv = values(b);
    const int64_t P = c.OH() * c.OW();
    for (size_t i = 0; i < y.size(); ++i) y[i] += bv[(i / P) % c.O];
  }
  return {from_vector(y, c.y(), DType::Float64), from_vector(gx, c.x(), DType::Float64),
          from_vector(gw, c.w(), DType::Float64)};
}

double nmse(const Tensor& got, const Tensor& want) {
  const auto g = values(got), w = values(want);
  if (g.size() != w.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) return INFINITY;
    num += (g[i] - w[i]) * (g[i] - w[i]);
    den += w[i] * w[i];
  }
  return den == 0 ? num : num / den;
}

double bound(DType dt) { return dt == DType::Float32 ? 1e-11 : 1e-26; }

// The largest NMSE seen per dtype, printed after the value test (figures for docs/conv.md).
double g_worst[2] = {0, 0};

::testing::AssertionResult close(const Tensor& got, const Tensor& want, DType dt, const std::string& what) {
  if (got.device() != kEmu) return ::testing::AssertionFailure() << what << ": result on " << got.device().str();
  if (got.dtype() != dt || got.shape() != want.shape())
    return ::testing::AssertionFailure() << what << ": " << dtype_name(got.dtype()) << shape_str(got.shape())
                                         << ", expected " << dtype_name(dt) << shape_str(want.shape());
  const double e = nmse(got, want);
  double& worst = g_worst[dt == DType::Float32 ? 0 : 1];
  worst = std::max(worst, e);
  if (e <= bound(dt)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << ": NMSE " << e << " > " << bound(dt);
}

Tensor rn(const Shape& s, uint64_t seed, DType dt) { return ct::randn(s, seed, dt); }

// A strided view with the same values: stored channels-last and viewed back as NCHW (4-D), or
// gapped along the last dim (tests/test_util.h's noncontig).
Tensor strided(const Tensor& t, int kind) {
  if (t.numel() == 0) return t;
  if (kind == 0) return t.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2});
  return ct::noncontig(t);
}

double dot(const Tensor& a, const Tensor& b) {
  const auto va = values(a), vb = values(b);
  double s = 0;
  for (size_t i = 0; i < va.size(); ++i) s += va[i] * vb[i];
  return s;
}

}  // namespace

TEST_F(CudaConv, AllThreeOpsMatchTheFloat64ReferenceAndTheCpu) {
  uint64_t seed = 100;
  for (const Cfg& c : cfgs())
    for (DType dt : {DType::Float32, DType::Float64}) {
      SCOPED_TRACE(c.name + " " + dtype_name(dt));
      seed += 10;
      const Tensor x = rn(c.x(), seed, dt), w = rn(c.w(), seed + 1, dt), gy = rn(c.y(), seed + 2, dt);
      const Tensor b = c.bias ? rn({c.O}, seed + 3, dt) : Tensor();
      const Refs r = refs(c, x, w, b, gy);
      const Tensor xe = x.to(kEmu), we = w.to(kEmu), gye = gy.to(kEmu), be = c.bias ? b.to(kEmu) : Tensor();
      const Tensor y = K::conv2d(xe, we, be, c.p);
      const Tensor gx = K::conv2d_input_grad(gye, we, c.x(), c.p);
      const Tensor gw = K::conv2d_weight_grad(xe, gye, c.w(), c.p);
      EXPECT_TRUE(close(y, r.y, dt, "conv2d vs float64 reference"));
      EXPECT_TRUE(close(gx, r.gx, dt, "input grad vs float64 reference"));
      EXPECT_TRUE(close(gw, r.gw, dt, "weight grad vs float64 reference"));
      {
        K::set_strict_device(false);  // the CPU kernels, for comparison
        const Tensor cy = K::conv2d(x, w, b, c.p), cgx = K::conv2d_input_grad(gy, w, c.x(), c.p),
                     cgw = K::conv2d_weight_grad(x, gy, c.w(), c.p);
        K::set_strict_device(true);
        EXPECT_TRUE(close(y, cy, dt, "conv2d vs cpu"));
        EXPECT_TRUE(close(gx, cgx, dt, "input grad vs cpu"));
        EXPECT_TRUE(close(gw, cgw, dt, "weight grad vs cpu"));
      }
      // Strided views of every input give the contiguous run's bits.
      for (int kind : {0, 1}) {
        const Tensor xs = strided(xe, kind), ws = strided(we, kind), gys = strided(gye, kind);
        const std::string what = kind == 0 ? " channels-last" : " gapped";
        EXPECT_EQ(bytes_of(K::conv2d(xs, ws, be, c.p)), bytes_of(y)) << "conv2d" << what;
        EXPECT_EQ(bytes_of(K::conv2d_input_grad(gys, ws, c.x(), c.p)), bytes_of(gx)) << "input grad" << what;
        EXPECT_EQ(bytes_of(K::conv2d_weight_grad(xs, gys, c.w(), c.p)), bytes_of(gw)) << "weight grad" << what;
      }
    }
  std::printf("[ conv ] largest NMSE on the emulated device (vs float64 reference or cpu): float32 %.2e, float64 %.2e\n",
              g_worst[0], g_worst[1]);
}

TEST_F(CudaConv, EmptyBatchGivesEmptyOutputsAndZeroWeightGrad) {
  const Cfg c = make("empty", 0, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, true);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = empty(c.x(), dt, kEmu), w = rn(c.w(), 1, dt).to(kEmu), gy = empty(c.y(), dt, kEmu);
    EXPECT_EQ(K::conv2d(x, w, rn({6}, 2, dt).to(kEmu), c.p).shape(), c.y());
    EXPECT_EQ(K::conv2d_input_grad(gy, w, c.x(), c.p).shape(), c.x());
    const Tensor gw = K::conv2d_weight_grad(x, gy, c.w(), c.p);
    EXPECT_EQ(gw.shape(), c.w());
    for (double v : values(gw)) EXPECT_EQ(v, 0.0);
  }
}

// <conv2d(x, w), gy> == <x, conv2d_input_grad(gy, w)> == <w, conv2d_weight_grad(x, gy)>, float64,
// every value computed on the device.
TEST_F(CudaConv, AdjointsSatisfyTheInnerProductIdentity) {
  uint64_t seed = 500;
  for (const Cfg& c : cfgs()) {
    if (shape_numel(c.y()) == 0 || c.C == 0) continue;
    SCOPED_TRACE(c.name);
    seed += 10;
    const Tensor x = rn(c.x(), seed, DType::Float64).to(kEmu), w = rn(c.w(), seed + 1, DType::Float64).to(kEmu);
    const Tensor gy = rn(c.y(), seed + 2, DType::Float64).to(kEmu);
    const double lhs = dot(K::conv2d(x, w, Tensor(), c.p), gy);
    const double via_x = dot(x, K::conv2d_input_grad(gy, w, c.x(), c.p));
    const double via_w = dot(w, K::conv2d_weight_grad(x, gy, c.w(), c.p));
    const double scale = std::sqrt(static_cast<double>(shape_numel(c.y())) * (c.C / c.p.groups) * c.KH * c.KW);
    EXPECT_GT(std::abs(lhs), 1e-3 * scale) << "a degenerate case tests nothing";
    EXPECT_NEAR(lhs, via_x, 1e-12 * scale) << "input adjoint";
    EXPECT_NEAR(lhs, via_w, 1e-12 * scale) << "weight adjoint";
  }
}

// Several blocks, partial tiles, split-K and the depthwise reduction: the same bytes in every
// schedule order.
TEST_F(CudaConv, BitIdenticalAcrossScheduleOrders) {
  for (int which : {3, 4, 9}) {
    const Cfg& c = cfgs()[which];
    SCOPED_TRACE(c.name);
    const Tensor x = rn(c.x(), 7, DType::Float32).to(kEmu), w = rn(c.w(), 8, DType::Float32).to(kEmu);
    const Tensor gy = rn(c.y(), 9, DType::Float32).to(kEmu), b = rn({c.O}, 10, DType::Float32).to(kEmu);
    using Fn = std::function<std::vector<unsigned char>()>;
    const std::vector<std::pair<std::string, Fn>> fns = {
        {"conv2d", [&] { return bytes_of(K::conv2d(x, w, b, c.p)); }},
        {"conv2d_input_grad", [&] { return bytes_of(K::conv2d_input_grad(gy, w, c.x(), c.p)); }},
        {"conv2d_weight_grad", [&] { return bytes_of(K::conv2d_weight_grad(x, gy, c.w(), c.p)); }},
    };
    for (const auto& [name, f] : fns) {
      cortex::simt::set_schedule({cortex::simt::Order::forward, 0});
      const auto ref = f();
      for (const cortex::simt::Schedule s : {cortex::simt::Schedule{cortex::simt::Order::reverse, 0},
                                             cortex::simt::Schedule{cortex::simt::Order::random, 7}}) {
        cortex::simt::set_schedule(s);
        EXPECT_EQ(f(), ref) << name << ": results differ across schedule orders";
      }
      cortex::simt::clear_schedule();
    }
  }
}

// CORTEX_CONV chooses the path: igemm or cudnn (the emulated device runs the hand-written kernels
// either way); anything else is refused with the accepted values named.
TEST_F(CudaConv, ConvPathSwitch) {
  const Cfg& c = cfgs()[0];
  const Tensor x = rn(c.x(), 1, DType::Float32).to(kEmu), w = rn(c.w(), 2, DType::Float32).to(kEmu);
  const auto want = bytes_of(K::conv2d(x, w, Tensor(), c.p));
  for (const char* v : {"igemm", "cudnn"}) {
    setenv("CORTEX_CONV", v, 1);
    EXPECT_EQ(bytes_of(K::conv2d(x, w, Tensor(), c.p)), want) << v;
  }
  setenv("CORTEX_CONV", "fast", 1);
  ct::expect_error([&] { K::conv2d(x, w, Tensor(), c.p); }, {"CORTEX_CONV", "igemm or cudnn", "fast"});
  unsetenv("CORTEX_CONV");
}

// An emulator figure, not a speed claim: AlexNet's conv1 (x [1,3,224,224], w [64,3,11,11], stride
// 4, pad 2) on the emulated device and on the CPU, printed; the two results agree.
TEST_F(CudaConv, AlexNetConv1EmulatorTiming) {
  const Cfg c = make("alexnet conv1", 1, 3, 224, 224, 64, 11, 11, 4, 4, 2, 2, 1, 1, 1, true);
  const Tensor x = rn(c.x(), 1, DType::Float32), w = rn(c.w(), 2, DType::Float32), b = rn({64}, 3, DType::Float32);
  const Tensor xe = x.to(kEmu), we = w.to(kEmu), be = b.to(kEmu);
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  const Tensor ye = K::conv2d(xe, we, be, c.p);
  auto t1 = clock::now();
  K::set_strict_device(false);
  const Tensor yc = K::conv2d(x, w, b, c.p);
  auto t2 = clock::now();
  std::printf("[ conv ] AlexNet conv1 [1,3,224,224] * [64,3,11,11] s4 p2: emulated device %.1f ms, cpu %.1f ms "
              "(emulator figure, not a speed claim)\n",
              std::chrono::duration<double, std::milli>(t1 - t0).count(),
              std::chrono::duration<double, std::milli>(t2 - t1).count());
  EXPECT_TRUE(close(ye, yc, DType::Float32, "alexnet conv1 vs cpu"));
}
