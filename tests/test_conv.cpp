// conv2d, conv2d_input_grad, conv2d_weight_grad and conv_out_size against a direct 7-loop float64
// convolution written here: Philox-drawn configs (odd sizes, stride 1-3, padding, dilation 2,
// groups 1/2/depthwise, batch 1 and 3, with and without bias), the kernel's internal paths (1x1,
// several small images per GEMM, row bands, channel blocks, batch segments, 1 to 3 threads),
// strided inputs, size-0 and size-1 dims, the adjoint dot-product identity in float64, and every
// input error.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/conv_gemm.h"
#include "kernels/cpu/conv_winograd.h"
#include "kernels/conv.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
namespace K = cortex::kernels;
namespace ct = cortex::testing;

namespace {

struct Draw {
  Generator g;
  explicit Draw(uint64_t seed) : g(seed) {}
  int64_t operator()(int64_t lo, int64_t hi) { return randint(lo, hi + 1, {1}, g).to_vector<int64_t>()[0]; }
};

std::vector<double> values(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }

struct Cfg {
  int64_t N, C, H, W, O, KH, KW;
  K::Conv2dParams p;
  bool bias;
  int64_t OH() const { return (H + 2 * p.pad_h - p.dilation_h * (KH - 1) - 1) / p.stride_h + 1; }
  int64_t OW() const { return (W + 2 * p.pad_w - p.dilation_w * (KW - 1) - 1) / p.stride_w + 1; }
  Shape x() const { return {N, C, H, W}; }
  Shape w() const { return {O, C / p.groups, KH, KW}; }
  Shape y() const { return {N, O, OH(), OW()}; }
  std::string str() const {
    return "x " + shape_str(x()) + " w " + shape_str(w()) + " stride (" + std::to_string(p.stride_h) + "," +
           std::to_string(p.stride_w) + ") pad (" + std::to_string(p.pad_h) + "," + std::to_string(p.pad_w) +
           ") dil (" + std::to_string(p.dilation_h) + "," + std::to_string(p.dilation_w) + ") groups " +
           std::to_string(p.groups) + (bias ? " bias" : "");
  }
};

// Calls f(y_index, x_index, w_index) for every (output, tap) pair whose input pixel is inside the
// image: the definition of the convolution, with no im2col.
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

Tensor ref_conv(const Cfg& c, const Tensor& x, const Tensor& w, const Tensor& b) {
  const auto xv = values(x), wv = values(w);
  std::vector<double> y(shape_numel(c.y()), 0.0);
  for_each_tap(c, [&](int64_t yi, int64_t xi, int64_t wi) { y[yi] += xv[xi] * wv[wi]; });
  if (b.defined()) {
    const auto bv = values(b);
    const int64_t P = c.OH() * c.OW();
    for (size_t i = 0; i < y.size(); ++i) y[i] += bv[(i / P) % c.O];
  }
  return from_vector(y, c.y(), DType::Float64);
}
Tensor ref_input_grad(const Cfg& c, const Tensor& gy, const Tensor& w) {
  const auto gv = values(gy), wv = values(w);
  std::vector<double> gx(shape_numel(c.x()), 0.0);
  for_each_tap(c, [&](int64_t yi, int64_t xi, int64_t wi) { gx[xi] += gv[yi] * wv[wi]; });
  return from_vector(gx, c.x(), DType::Float64);
}
Tensor ref_weight_grad(const Cfg& c, const Tensor& x, const Tensor& gy) {
  const auto xv = values(x), gv = values(gy);
  std::vector<double> gw(shape_numel(c.w()), 0.0);
  for_each_tap(c, [&](int64_t yi, int64_t xi, int64_t wi) { gw[wi] += gv[yi] * xv[xi]; });
  return from_vector(gw, c.w(), DType::Float64);
}

double dot(const Tensor& a, const Tensor& b) {
  const auto va = values(a), vb = values(b);
  double s = 0;
  for (size_t i = 0; i < va.size(); ++i) s += va[i] * vb[i];
  return s;
}

// Tolerance for sums of `terms` products of O(1) values.
::testing::AssertionResult close(const Tensor& got, const Tensor& want, DType dt, int64_t terms) {
  if (got.dtype() != dt) return ::testing::AssertionFailure() << "dtype " << dtype_name(got.dtype());
  if (!got.is_contiguous()) return ::testing::AssertionFailure() << "result not contiguous";
  const double t = static_cast<double>(std::max<int64_t>(terms, 1));
  return dt == DType::Float64 ? allclose(got, want, 1e-11, 1e-13 * t) : allclose(got, want, 1e-4, 3e-6 * t);
}

// All three kernels against the references, in dt, on contiguous inputs (or `layout` of them).
void check_cfg(const Cfg& c, DType dt, uint64_t seed, Tensor (*layout)(const Tensor&) = nullptr) {
  SCOPED_TRACE(c.str() + " " + dtype_name(dt));
  Tensor x = ct::randn(c.x(), seed, dt), w = ct::randn(c.w(), seed + 1, dt), gy = ct::randn(c.y(), seed + 2, dt);
  Tensor b = c.bias ? ct::randn({c.O}, seed + 3, dt) : Tensor();
  const int64_t Kg = (c.C / c.p.groups) * c.KH * c.KW, taps_w = c.N * c.OH() * c.OW();
  const Tensor y_ref = ref_conv(c, x, w, b), gx_ref = ref_input_grad(c, gy, w), gw_ref = ref_weight_grad(c, x, gy);
  if (layout) {
    x = layout(x), w = layout(w), gy = layout(gy);
    if (b.defined()) b = layout(b);
  }
  const Tensor y = K::conv2d(x, w, b, c.p);
  EXPECT_EQ(y.shape(), c.y());
  EXPECT_TRUE(close(y, y_ref, dt, Kg)) << "conv2d";
  EXPECT_TRUE(close(K::conv2d_input_grad(gy, w, c.x(), c.p), gx_ref, dt, c.O * c.KH * c.KW)) << "input grad";
  EXPECT_TRUE(close(K::conv2d_weight_grad(x, gy, c.w(), c.p), gw_ref, dt, taps_w)) << "weight grad";
}

// <conv2d(x, w), gy> == <x, conv2d_input_grad(gy, w)> == <w, conv2d_weight_grad(x, gy)>, float64.
void check_adjoint(const Cfg& c, uint64_t seed) {
  SCOPED_TRACE(c.str());
  const Tensor x = ct::randn(c.x(), seed), w = ct::randn(c.w(), seed + 1), gy = ct::randn(c.y(), seed + 2);
  const double lhs = dot(K::conv2d(x, w, Tensor(), c.p), gy);
  const double via_x = dot(x, K::conv2d_input_grad(gy, w, c.x(), c.p));
  const double via_w = dot(w, K::conv2d_weight_grad(x, gy, c.w(), c.p));
  // Scale of the sum of |terms|: the identity holds to rounding relative to it.
  const double scale = std::sqrt(static_cast<double>(std::max<int64_t>(shape_numel(c.y()), 1)) *
                                 std::max<int64_t>((c.C / c.p.groups) * c.KH * c.KW, 1));
  EXPECT_NEAR(lhs, via_x, 1e-10 * scale) << "input adjoint";
  EXPECT_NEAR(lhs, via_w, 1e-10 * scale) << "weight adjoint";
}

// A random valid config: odd sizes, stride 1-3, padding 0-2, dilation 1-2, groups 1/2/depthwise.
Cfg random_cfg(Draw& r, int trial) {
  for (;;) {
    Cfg c{};
    const int kind = trial % 3;  // 0: groups 1, 1: groups 2, 2: depthwise (groups == C)
    const int64_t G = kind == 0 ? 1 : kind == 1 ? 2 : r(1, 5);
    const int64_t Cg = kind == 2 ? 1 : r(1, 4), Og = kind == 2 ? r(1, 2) : r(1, 4);
    c.N = trial % 2 ? 3 : 1;
    c.C = G * Cg, c.O = G * Og;
    c.H = 2 * r(1, 6) + 1, c.W = 2 * r(1, 7) + 1;
    c.KH = r(1, 3), c.KW = r(1, 3) * 2 - 1;
    c.p.groups = G;
    c.p.stride_h = r(1, 3), c.p.stride_w = r(1, 2);
    c.p.pad_h = r(0, 2), c.p.pad_w = r(0, 1);
    c.p.dilation_h = r(1, 2), c.p.dilation_w = r(1, 2);
    c.bias = r(0, 1) == 1;
    if (c.H + 2 * c.p.pad_h >= c.p.dilation_h * (c.KH - 1) + 1 && c.W + 2 * c.p.pad_w >= c.p.dilation_w * (c.KW - 1) + 1)
      return c;
  }
}

Cfg make(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t KH, int64_t KW, int64_t stride, int64_t pad,
         int64_t dil, int64_t groups, bool bias) {
  Cfg c{N, C, H, W, O, KH, KW, {}, bias};
  c.p.stride_h = c.p.stride_w = stride;
  c.p.pad_h = c.p.pad_w = pad;
  c.p.dilation_h = c.p.dilation_w = dil;
  c.p.groups = groups;
  return c;
}

// Sets the Winograd switch (conv_winograd.h) for a scope and restores it after. Builds without
// the packed GEMM have no Winograd path: the guard does nothing there.
struct WinogradSwitch {
#ifdef CORTEX_CONV_GEMM
  bool saved = K::cpu::winograd::enabled();
  explicit WinogradSwitch(bool on) { K::cpu::winograd::set_enabled(on); }
  ~WinogradSwitch() { K::cpu::winograd::set_enabled(saved); }
#else
  explicit WinogradSwitch(bool) {}
#endif
};

// The kernel's paths: 1x1 (im2col is the image), several small images per GEMM, one image in
// row bands, banding for the buffer budget, channel blocks, batch segments of the weight grad.
std::vector<Cfg> path_cfgs() {
  return {
      make(1, 5, 19, 17, 4, 1, 1, 1, 0, 1, 1, true),    // 1x1, one big image: views of x
      make(3, 6, 5, 7, 4, 1, 1, 1, 0, 1, 2, false),     // 1x1, small images side by side
      make(1, 4, 23, 21, 3, 3, 3, 1, 1, 1, 1, true),    // one image: bands / channel blocks
      make(3, 3, 18, 18, 5, 3, 3, 1, 1, 1, 1, true),    // Cg = 3: weight-grad batch segments
      make(5, 4, 6, 6, 6, 3, 3, 2, 1, 1, 2, true),      // small images, groups
      make(2, 8, 17, 16, 8, 3, 3, 1, 1, 1, 8, true),    // depthwise
      make(3, 2, 9, 9, 2, 9, 9, 1, 0, 1, 1, false),     // kernel == image: 1x1 output
      make(3, 2, 1, 1, 3, 1, 1, 1, 0, 1, 1, true),      // 1x1 images
      make(2, 3, 12, 13, 4, 2, 3, 3, 0, 2, 1, true),    // stride 3, dilation 2, even kernel
  };
}

const DType kFloats[] = {DType::Float32, DType::Float64};

Tensor channels_last(const Tensor& t) {
  // The same values, stored (N, H, W, C) and viewed as NCHW.
  if (t.dim() != 4) return ct::noncontig(t);
  return t.permute({0, 2, 3, 1}).contiguous().permute({0, 3, 1, 2});
}

}  // namespace

TEST(Conv2d, RandomConfigsAgainstDirectLoops) {
  Draw r(21);
  for (int trial = 0; trial < 36; ++trial) {
    const Cfg c = random_cfg(r, trial);
    for (DType dt : kFloats) check_cfg(c, dt, 1000 + trial);
  }
}

TEST(Conv2d, KernelPaths) {
  int seed = 0;
  for (const Cfg& c : path_cfgs())
    for (DType dt : kFloats) check_cfg(c, dt, 2000 + 10 * seed++);
}

TEST(Conv2d, ThreadCounts) {
  // The work split depends on the thread count; every split must give the same numbers.
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    SCOPED_TRACE("threads " + std::to_string(threads));
    int seed = 0;
    for (const Cfg& c : path_cfgs()) check_cfg(c, DType::Float64, 3000 + 10 * seed++);
  }
  omp_set_num_threads(saved);
}

// conv2d, its input grad and its weight grad give the same bytes with 1, 2, 3 and 8 threads: the
// work is cut into pieces fixed by the geometry, each GEMM single-threaded, partial sums combined
// in a fixed order (docs/conv.md). Configs: one image (bands / channel blocks), a batch whose
// channels do not split evenly (weight-grad batch segments), 1x1, groups, AlexNet's first layer,
// 13x13 maps side by side, and the packed float path.
TEST(Conv2d, BitIdenticalAcrossThreadCounts) {
  const std::vector<Cfg> cfgs = {
      make(1, 16, 31, 29, 24, 3, 3, 1, 1, 1, 1, true),    // one image, Eigen (Og < 32)
      make(1, 24, 27, 27, 40, 3, 3, 1, 1, 1, 1, true),    // one image, packed float forward
      make(5, 3, 30, 30, 5, 3, 3, 1, 1, 1, 1, true),      // Cg = 3: weight-grad batch segments
      make(2, 32, 20, 20, 48, 1, 1, 1, 0, 1, 1, false),   // 1x1 (im2col is the image)
      make(3, 12, 17, 17, 36, 3, 3, 2, 1, 1, 2, true),    // groups 2, stride 2
      make(2, 3, 63, 63, 64, 11, 11, 4, 2, 1, 1, true),   // AlexNet conv1 geometry
      make(7, 32, 13, 13, 40, 3, 3, 1, 1, 1, 1, true),    // 13x13 maps side by side
      make(1, 64, 7, 7, 520, 1, 1, 1, 0, 1, 1, true),     // 1x1, >= 512 outputs
      make(1, 8, 50, 50, 20, 3, 3, 1, 1, 1, 1, true),     // packed input grad: channel sub-blocks
      make(2, 5, 9, 9, 400, 3, 3, 1, 1, 1, 1, false),     // packed input grad: two passes, 2 images
      make(1, 520, 5, 6, 16, 1, 1, 1, 0, 1, 1, false),    // packed input grad: 1x1 straight into gx
      make(1, 300, 30, 30, 20, 3, 3, 1, 1, 1, 1, true),   // Winograd: one image in two row bands
      make(7, 200, 14, 14, 17, 3, 3, 1, 1, 1, 1, false),  // Winograd: 2 pieces of 5 + 2 images
  };
  const int saved = omp_get_max_threads();
  int seed = 0;
  for (bool winograd : {true, false})
  for (const Cfg& c : cfgs)
    for (DType dt : kFloats) {
      const WinogradSwitch sw(winograd);
      SCOPED_TRACE(c.str() + " " + dtype_name(dt) + (winograd ? " (Winograd on)" : " (Winograd off)"));
      const uint64_t s = 11000 + 10 * seed++;
      const Tensor x = ct::randn(c.x(), s, dt), w = ct::randn(c.w(), s + 1, dt), gy = ct::randn(c.y(), s + 2, dt);
      const Tensor b = c.bias ? ct::randn({c.O}, s + 3, dt) : Tensor();
      std::vector<Tensor> first;
      for (int threads : {1, 2, 3, 8}) {
        omp_set_num_threads(threads);
        const std::vector<Tensor> got = {K::conv2d(x, w, b, c.p), K::conv2d_input_grad(gy, w, c.x(), c.p),
                                         K::conv2d_weight_grad(x, gy, c.w(), c.p)};
        if (first.empty()) {
          first = got;
          continue;
        }
        const char* names[] = {"conv2d", "input grad", "weight grad"};
        for (size_t i = 0; i < got.size(); ++i)
          EXPECT_EQ(std::memcmp(got[i].raw_data(), first[i].raw_data(), got[i].numel() * dtype_size(dt)), 0)
              << names[i] << ": threads " << threads << " differ from 1 thread";
      }
    }
  omp_set_num_threads(saved);
}

TEST(Conv2d, StridedInputs) {
  int seed = 0;
  for (const Cfg& c : {make(3, 4, 9, 8, 6, 3, 3, 2, 1, 1, 2, true), make(1, 3, 20, 20, 2, 3, 3, 1, 1, 2, 1, true)}) {
    for (DType dt : kFloats) {
      check_cfg(c, dt, 4000 + seed++, ct::noncontig);
      check_cfg(c, dt, 4000 + seed++, channels_last);
    }
  }
}

TEST(Conv2d, AdjointIdentity) {
  Draw r(22);
  for (int trial = 0; trial < 24; ++trial) check_adjoint(random_cfg(r, trial), 5000 + trial);
  int seed = 0;
  for (const Cfg& c : path_cfgs()) check_adjoint(c, 6000 + seed++);
}

TEST(Conv2d, LargeBandedForMemory) {
  // Kg * P = 576 * 8100 elements: over the im2col buffer budget, so rows are banded.
  const Cfg c = make(1, 64, 90, 90, 2, 3, 3, 1, 1, 1, 1, true);
  check_cfg(c, DType::Float32, 7000);
  check_adjoint(c, 7001);
}

// The packed float GEMM of the forward (kernels/cpu/conv_gemm.h, on AVX-512 builds): output
// channels not a multiple of its 8-row panels, depths over one 384-deep pass, outputs narrower than
// one 48-column strip, a narrow last strip (one image, and several small images side by side),
// AlexNet's first layer (11x11, stride 4, padding 2), groups, 1x1 convs wide enough to be packed,
// and each thread count. Convs with under 32 outputs per group (and 1x1 ones under 512) are
// Eigen's, as in KernelPaths and the random configs.
std::vector<Cfg> packed_cfgs() {
  return {
      make(1, 20, 13, 13, 33, 5, 5, 1, 2, 1, 1, true),   // Og 33, Kg 500: two passes, P 169
      make(3, 16, 13, 13, 41, 3, 3, 1, 1, 1, 1, true),   // small images side by side
      make(2, 3, 47, 47, 34, 11, 11, 4, 2, 1, 1, true),  // AlexNet conv1 geometry, OH 11
      make(2, 5, 6, 5, 35, 3, 3, 1, 1, 1, 1, false),     // P 30: one narrow strip
      make(1, 4, 9, 11, 32, 3, 3, 1, 1, 1, 1, true),     // P 99: a 3-column last strip
      make(2, 8, 12, 10, 70, 3, 3, 2, 1, 1, 2, true),    // groups 2 (35 outputs each), stride 2
      make(1, 40, 8, 8, 33, 3, 3, 1, 1, 1, 1, true),     // Kg 360: one pass, just under the depth
      make(1, 48, 9, 9, 37, 3, 3, 1, 1, 1, 1, false),    // Kg 432: a full and a 48-deep pass
      make(1, 3, 17, 16, 515, 1, 1, 1, 0, 1, 1, true),   // 1x1 with >= 512 outputs: packed too, bands
      make(2, 6, 5, 7, 513, 1, 1, 1, 0, 1, 1, false),    // the same with small images side by side
      // Strides 2 and 4 (their im2col compacts 2 or 4 masked loads per 16 outputs): rows wider than
      // 16 outputs with padding at both ends, a dilation, a strided 1x1, and batch 1 on a small map
      // (output-channel blocks instead of row bands when threads > 1).
      make(1, 3, 41, 75, 33, 7, 7, 2, 3, 1, 1, true),    // a ResNet stem at odd size: OW 38
      make(2, 2, 29, 93, 40, 5, 5, 4, 2, 2, 1, false),   // stride 4, dilation 2, OW 22
      make(1, 4, 18, 70, 36, 11, 11, 4, 5, 1, 1, true),  // stride 4, padding 5 over an 11-wide kernel
      make(1, 20, 14, 35, 64, 1, 1, 2, 0, 1, 1, true),   // 1x1 stride 2
      make(1, 24, 9, 9, 72, 3, 3, 1, 1, 1, 1, true),     // batch 1, P 81: channel blocks of 40 + 32
      make(3, 5, 20, 23, 40, 3, 4, 3, 1, 1, 1, true),    // stride 3 (element by element), OW 8
      // Up to 4096 output columns in all the weights are read in place (gemm_pass_direct), every
      // geometry above; beyond that they are packed once per call: two such geometries.
      make(2, 3, 66, 65, 33, 3, 3, 1, 1, 1, 1, true),    // 2 x 4290 columns, Og 33
      make(1, 5, 137, 131, 40, 7, 7, 2, 3, 1, 1, false), // one image, 69 x 66 = 4554 columns, stride 2
  };
}

TEST(Conv2d, PackedGemmPaths) {
  // The 3x3 stride-1 cases here would go to Winograd (WinogradPaths tests that); this test is
  // for the direct packed path.
  const WinogradSwitch direct(false);
  const int saved = omp_get_max_threads();
  int seed = 0;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    SCOPED_TRACE("threads " + std::to_string(threads));
    for (const Cfg& c : packed_cfgs()) check_cfg(c, DType::Float32, 9000 + 10 * seed++);
  }
  omp_set_num_threads(saved);
  check_cfg(packed_cfgs()[0], DType::Float32, 9500, ct::noncontig);
  check_cfg(packed_cfgs()[2], DType::Float32, 9501, channels_last);
}

#ifdef CORTEX_CONV_GEMM
// Winograd F(2x2, 3x3) (conv_winograd.h), through conv2d with the path checked taken, against the
// float64 loops at 1, 2 and 3 threads: a 7-tile row padded to 8, odd map sizes (the last tile's
// second row and column dropped), outputs not a multiple of 8 (a part panel of filters), 400
// input channels (two depth passes), padding 0 and 2, several images in one piece, several
// pieces (5 + 5 + 2 images), one image in row bands, and an output-column count that leaves a
// part last strip; the same bits for an image alone or in a batch. Then the geometries pays()
// refuses, through conv3x3 directly.
std::vector<Cfg> winograd_cfgs() {
  return {
      make(1, 16, 14, 14, 20, 3, 3, 1, 1, 1, 1, true),    // 7 x 7 tiles, rows padded to 8
      make(2, 17, 13, 13, 33, 3, 3, 1, 1, 1, 1, true),    // odd map: last tiles half outside
      make(1, 400, 16, 15, 24, 3, 3, 1, 1, 1, 1, false),  // two depth passes (384 + 16)
      make(3, 20, 30, 30, 18, 3, 3, 1, 0, 1, 1, true),    // padding 0: 28 x 28 outputs
      make(2, 24, 25, 27, 16, 3, 3, 1, 2, 1, 1, true),    // padding 2: 27 x 29 outputs
      make(7, 200, 14, 14, 16, 3, 3, 1, 1, 1, 1, true),   // 2 pieces of 5 and 2 images
      make(1, 300, 30, 31, 19, 3, 3, 1, 1, 1, 1, false),  // one image in two row bands
  };
}

TEST(Conv2d, WinogradPaths) {
  const WinogradSwitch on(true);
  const int saved = omp_get_max_threads();
  int seed = 0;
  for (const Cfg& c : winograd_cfgs()) {
    const K::cpu::winograd::Geometry g{c.N, c.C, c.H, c.W, c.O, c.OH(), c.OW(), c.p.pad_h, c.p.pad_w};
    EXPECT_TRUE(K::cpu::winograd::pays(g)) << c.str();
  }
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    SCOPED_TRACE("threads " + std::to_string(threads));
    for (const Cfg& c : winograd_cfgs()) check_cfg(c, DType::Float32, 9700 + 10 * seed++);
  }
  omp_set_num_threads(saved);
  // An image's outputs are the same bits in a batch of 5 as alone: the path is chosen per image
  // (a 6 x 14 map, 24 tiles, stays direct at any batch size; 13 x 13 takes Winograd at any).
  for (const Cfg& c : {make(5, 16, 13, 13, 20, 3, 3, 1, 1, 1, 1, true), make(5, 16, 6, 14, 40, 3, 3, 1, 1, 1, 1, true)}) {
    SCOPED_TRACE(c.str());
    const Tensor x = ct::randn(c.x(), 9800 + seed, DType::Float32), w = ct::randn(c.w(), 9801 + seed, DType::Float32);
    const Tensor b = ct::randn({c.O}, 9802 + seed++, DType::Float32);
    const Tensor y = K::conv2d(x, w, b, c.p);
    for (int64_t n = 0; n < c.N; ++n) {
      const Tensor yn = K::conv2d(x.narrow(0, n, 1).contiguous(), w, b, c.p);
      EXPECT_EQ(std::memcmp(yn.raw_data(), y.narrow(0, n, 1).contiguous().raw_data(), yn.numel() * sizeof(float)), 0)
          << "image " << n;
    }
  }
  // Geometries conv2d keeps on the direct path (rows padded by over an eighth, few tiles, few
  // channels) still compute the conv when called directly.
  for (const Cfg& c : {make(2, 3, 5, 4, 5, 3, 3, 1, 1, 1, 1, true), make(1, 1, 3, 3, 1, 3, 3, 1, 0, 1, 1, true),
                       make(1, 33, 9, 30, 9, 3, 3, 1, 1, 1, 1, true), make(2, 18, 7, 7, 40, 3, 3, 1, 1, 1, 1, true)}) {
    SCOPED_TRACE(c.str());
    const K::cpu::winograd::Geometry g{c.N, c.C, c.H, c.W, c.O, c.OH(), c.OW(), c.p.pad_h, c.p.pad_w};
    EXPECT_FALSE(K::cpu::winograd::pays(g));
    const Tensor x = ct::randn(c.x(), 9900 + seed, DType::Float32), w = ct::randn(c.w(), 9901 + seed, DType::Float32);
    const Tensor b = ct::randn({c.O}, 9902 + seed++, DType::Float32);
    Tensor y = empty(c.y());
    K::cpu::winograd::conv3x3(g, x.data<float>(), w.data<float>(), b.data<float>(), y.data<float>());
    EXPECT_TRUE(close(y, ref_conv(c, x, w, b).to(DType::Float32), DType::Float32, c.C * 9));
  }
}
#endif

// The float input grad on the packed GEMM (AVX-512 builds: Og >= 16 and Kg >= 32, or a 1x1
// stride-1 conv with >= 512 input channels per group): dcol = w_g^T gy_g with w_g^T packed as
// A and gy as B strips, then col2im. Every edge: channel sub-blocks (dcol over its 2^17 budget),
// two depth passes (Og > 384), rows not a multiple of 8, several small images side by side,
// groups with stride and dilation, padding wider than half the kernel, a strided 1x1, the 1x1
// stride-1 case written straight into gx (one image) or through col2im (several), batch 1 and > 1,
// each thread count; all against the float64 loops (check_cfg checks the three ops).
std::vector<Cfg> packed_input_grad_cfgs() {
  return {
      make(1, 8, 50, 50, 20, 3, 3, 1, 1, 1, 1, true),    // channel sub-blocks of 5 + 3, batch 1
      make(2, 5, 9, 9, 400, 3, 3, 1, 1, 1, 1, false),    // Og 400: two passes; Kg 45; 2 images side by side
      make(3, 6, 11, 10, 34, 4, 3, 2, 1, 2, 2, true),    // groups 2, stride 2, dilation 2, 4x3 kernel
      make(1, 3, 7, 7, 16, 5, 5, 1, 4, 1, 1, true),      // padding 4 on a 5x5 kernel, odd sizes
      make(5, 4, 7, 5, 16, 3, 3, 1, 1, 1, 1, true),      // 5 images of P 35 in one piece
      make(1, 40, 9, 9, 16, 1, 1, 2, 0, 1, 1, true),     // 1x1 stride 2: not the identity
      make(1, 520, 5, 6, 16, 1, 1, 1, 0, 1, 1, false),   // 1x1, 520 channels: gx written directly
      make(2, 520, 3, 3, 17, 1, 1, 1, 0, 1, 1, true),    // the same, 2 images side by side
  };
}

TEST(Conv2d, PackedInputGradPaths) {
  const int saved = omp_get_max_threads();
  int seed = 0;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    SCOPED_TRACE("threads " + std::to_string(threads));
    for (const Cfg& c : packed_input_grad_cfgs()) check_cfg(c, DType::Float32, 12000 + 10 * seed++);
  }
  omp_set_num_threads(saved);
  check_cfg(packed_input_grad_cfgs()[2], DType::Float32, 12500, channels_last);
}

#ifdef CORTEX_CONV_GEMM
TEST(ConvGemm, AgainstFloat64Sums) {
  // C (M, N) = A B + bias pass by pass on the packed operands, every edge of the tiling: M around the
  // 8-row panels, N around 16-float vectors and 48-column strips, K around the kKC-deep passes
  // (and K = 0: the bias alone).
  namespace cg = cortex::kernels::cpu::conv_gemm;
  uint64_t seed = 0;
  for (int64_t M : {1, 7, 8, 9, 17})
    for (int64_t N : {1, 15, 16, 17, 32, 33, 47, 48, 49, 80, 95, 97, 200})
      for (int64_t K : {int64_t{0}, int64_t{1}, int64_t{5}, cg::kKC, cg::kKC + 1, 2 * cg::kKC + 32}) {
        SCOPED_TRACE("M " + std::to_string(M) + " N " + std::to_string(N) + " K " + std::to_string(K));
        const auto a = ct::randn({M, K}, ++seed, DType::Float32).to_vector<float>();
        const auto b = ct::randn({K, N}, ++seed, DType::Float32).to_vector<float>();
        const auto bias = ct::randn({M}, ++seed, DType::Float32).to_vector<float>();
        std::vector<float> pa(cg::packed_a_size(M, K));
        cg::pack_a(a.data(), K, M, K, pa.data());
        const int64_t ldc = N + 3;  // a row stride wider than the row: the gap must stay untouched
        for (bool with_bias : {false, true}) {
          std::vector<float> c(M * ldc, 7.0f), cd(M * ldc, 7.0f);
          if (K == 0) cg::gemm_pass(M, N, K, 0, 0, pa.data(), nullptr, with_bias ? bias.data() : nullptr, c.data(), ldc);
          for (int64_t k0 = 0; k0 < K; k0 += cg::kKC) {  // pack each pass's rows of B, then run it
            const int64_t kc = std::min(cg::kKC, K - k0);
            std::vector<float> pb(cg::packed_b_size(kc, N), 0.0f);
            for (int64_t k = k0; k < k0 + kc; ++k)
              for (int64_t n = 0; n < N; ++n)
                pb[cg::b_strip_offset(n / cg::kNR, kc) + cg::strip_index(k - k0, n % cg::kNR, kc)] = b[k * N + n];
            cg::gemm_pass(M, N, K, k0, kc, pa.data(), pb.data(), with_bias ? bias.data() : nullptr, c.data(), ldc);
            // A read in place gives the same bits (the same sums in the same order).
            cg::gemm_pass_direct(M, N, k0, kc, a.data(), K, pb.data(), with_bias ? bias.data() : nullptr, cd.data(), ldc);
          }
          if (K > 0) {
            for (int64_t i = 0; i < M * ldc; ++i) ASSERT_EQ(cd[i], c[i]) << "gemm_pass_direct, element " << i;
          }
          for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) {
              double want = with_bias ? bias[m] : 0.0, mag = std::abs(want);
              for (int64_t k = 0; k < K; ++k) {
                want += double(a[m * K + k]) * b[k * N + n];
                mag += std::abs(double(a[m * K + k]) * b[k * N + n]);
              }
              ASSERT_NEAR(c[m * ldc + n], want, 1e-6 * mag + 1e-6) << "m " << m << " n " << n;
            }
            for (int64_t n = N; n < ldc; ++n) ASSERT_EQ(c[m * ldc + n], 7.0f);
          }
        }
      }
}
#endif

TEST(Conv2d, SizeZeroAndOne) {
  for (DType dt : kFloats) {
    K::Conv2dParams p;
    p.pad_h = p.pad_w = 1;
    const Tensor w = ct::randn({4, 3, 3, 3}, 1, dt), b = ct::randn({4}, 2, dt);
    // empty batch
    EXPECT_EQ(K::conv2d(ct::randn({0, 3, 5, 5}, 3, dt), w, b, p).shape(), (Shape{0, 4, 5, 5}));
    EXPECT_EQ(K::conv2d_input_grad(ct::randn({0, 4, 5, 5}, 3, dt), w, {0, 3, 5, 5}, p).shape(), (Shape{0, 3, 5, 5}));
    const Tensor gw0 = K::conv2d_weight_grad(ct::randn({0, 3, 5, 5}, 3, dt), ct::randn({0, 4, 5, 5}, 4, dt),
                                             {4, 3, 3, 3}, p);
    EXPECT_TRUE(allclose(gw0, zeros({4, 3, 3, 3}, DType::Float64)));
    // no output channels
    EXPECT_EQ(K::conv2d(ct::randn({2, 3, 5, 5}, 3, dt), ct::randn({0, 3, 3, 3}, 1, dt), Tensor(), p).shape(),
              (Shape{2, 0, 5, 5}));
    const Tensor gx0 = K::conv2d_input_grad(ct::randn({2, 0, 5, 5}, 3, dt), ct::randn({0, 3, 3, 3}, 1, dt),
                                            {2, 3, 5, 5}, p);
    EXPECT_TRUE(allclose(gx0, zeros({2, 3, 5, 5}, DType::Float64)));
    // no input channels: the output is the bias
    const Tensor yb = K::conv2d(ct::randn({2, 0, 5, 5}, 3, dt), ct::randn({4, 0, 3, 3}, 1, dt), b, p);
    EXPECT_TRUE(allclose(yb, b.view({1, 4, 1, 1}).expand({2, 4, 5, 5}).contiguous()));
    EXPECT_EQ(K::conv2d_weight_grad(ct::randn({2, 0, 5, 5}, 3, dt), ct::randn({2, 4, 5, 5}, 4, dt), {4, 0, 3, 3}, p)
                  .shape(),
              (Shape{4, 0, 3, 3}));
  }
  // size-1 everything
  check_cfg(make(1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, true), DType::Float64, 8000);
  check_cfg(make(1, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1, true), DType::Float64, 8001);
}

TEST(ConvOutSize, FormulaAndErrors) {
  // Values PyTorch gives (nn.Conv2d / nn.MaxPool2d).
  EXPECT_EQ(K::conv_out_size(224, 11, 4, 2, 1), 55);
  EXPECT_EQ(K::conv_out_size(27, 5, 1, 2, 1), 27);
  EXPECT_EQ(K::conv_out_size(55, 3, 2, 0, 1), 27);
  EXPECT_EQ(K::conv_out_size(28, 3, 2, 0, 1, false), 13);
  EXPECT_EQ(K::conv_out_size(28, 3, 2, 0, 1, true), 14);
  EXPECT_EQ(K::conv_out_size(5, 2, 2, 1, 1, true), 3);  // the 4th window would start in the right padding
  EXPECT_EQ(K::conv_out_size(7, 3, 1, 0, 2), 3);
  EXPECT_EQ(K::conv_out_size(2, 3, 1, 1, 1), 2);
  EXPECT_EQ(K::conv_out_size(1, 1, 5, 0, 1, true), 1);
  // Floor mode against counting the windows that fit.
  Draw r(23);
  for (int t = 0; t < 200; ++t) {
    const int64_t in = r(0, 20), k = r(1, 5), s = r(1, 4), p = r(0, 3), d = r(1, 3);
    int64_t count = 0;
    for (int64_t start = 0; start + d * (k - 1) <= in + 2 * p - 1; start += s) ++count;
    if (count == 0) {
      EXPECT_CORTEX_ERROR(K::conv_out_size(in, k, s, p, d), "output size < 1");
    } else {
      EXPECT_EQ(K::conv_out_size(in, k, s, p, d), count) << in << " " << k << " " << s << " " << p << " " << d;
      // ceil mode adds the partial window ceil() rounds up to, if it starts inside the input or
      // the left padding (checked where PyTorch's pooling allows the padding: 2 * pad <= k).
      if (2 * p > k) continue;
      const int64_t last = in + 2 * p - d * (k - 1) - 1, start = count * s;
      const int64_t ceil_count = count + (start <= last + s - 1 && start < in + p ? 1 : 0);
      EXPECT_EQ(K::conv_out_size(in, k, s, p, d, true), ceil_count) << in << " " << k << " " << s << " " << p << " " << d;
    }
  }
  EXPECT_CORTEX_ERROR(K::conv_out_size(2, 3, 1, 0, 1), "output size < 1");
  EXPECT_CORTEX_ERROR(K::conv_out_size(5, 0, 1, 0, 1), "kernel size >= 1");
  EXPECT_CORTEX_ERROR(K::conv_out_size(5, 3, 0, 0, 1), "stride >= 1");
  EXPECT_CORTEX_ERROR(K::conv_out_size(5, 3, 1, -1, 1), "padding >= 0");
  EXPECT_CORTEX_ERROR(K::conv_out_size(5, 3, 1, 0, 0), "dilation >= 1");
  EXPECT_CORTEX_ERROR(K::conv_out_size(-1, 3, 1, 0, 1), "input size >= 0");
}

TEST(Conv2d, Errors) {
  const Tensor x = ct::randn({2, 4, 6, 6}, 1), w = ct::randn({6, 4, 3, 3}, 2), b = ct::randn({6}, 3);
  const Tensor gy = ct::randn({2, 6, 4, 4}, 4);
  K::Conv2dParams p;
  EXPECT_CORTEX_ERROR(K::conv2d(ct::randn({4, 6, 6}, 1), w, b, p), "conv2d: expected x to be 4-D");
  EXPECT_CORTEX_ERROR(K::conv2d(x, ct::randn({6, 4, 3}, 1), b, p), "expected w to be 4-D");
  EXPECT_CORTEX_ERROR(K::conv2d(x, ct::randn({6, 3, 3, 3}, 1), b, p), "C/groups = 4");
  EXPECT_CORTEX_ERROR(K::conv2d(x, w, ct::randn({5}, 1), p), "bias of shape [6]");
  EXPECT_CORTEX_ERROR(K::conv2d(x, w, ct::randn({6}, 1, DType::Float32), p), "one dtype");
  EXPECT_CORTEX_ERROR(K::conv2d(x, w.to(DType::Float32), b, p), "one dtype");
  EXPECT_CORTEX_ERROR(K::conv2d(x.to(DType::Int32), w.to(DType::Int32), Tensor(), p), "float32 or float64");
  EXPECT_CORTEX_ERROR(K::conv2d(Tensor(), w, b, p), "undefined");
  EXPECT_CORTEX_ERROR(K::conv2d(x, ct::randn({6, 4, 7, 3}, 1), b, p), "output size < 1");
  {
    K::Conv2dParams q;
    q.groups = 3;
    EXPECT_CORTEX_ERROR(K::conv2d(x, w, b, q), "input channels (4) to be divisible by groups (3)");
    q.groups = 4;
    EXPECT_CORTEX_ERROR(K::conv2d(x, ct::randn({6, 1, 3, 3}, 1), b, q), "output channels (6) to be divisible");
    q = {};
    q.stride_w = 0;
    EXPECT_CORTEX_ERROR(K::conv2d(x, w, b, q), "strides >= 1");
    q = {};
    q.pad_h = -1;
    EXPECT_CORTEX_ERROR(K::conv2d(x, w, b, q), "paddings >= 0");
    q = {};
    q.dilation_h = 0;
    EXPECT_CORTEX_ERROR(K::conv2d(x, w, b, q), "dilations >= 1");
    q = {};
    q.groups = 0;
    EXPECT_CORTEX_ERROR(K::conv2d(x, w, b, q), "groups >= 1");
  }
  EXPECT_CORTEX_ERROR(K::conv2d_input_grad(ct::randn({2, 6, 5, 4}, 1), w, x.shape(), p), "gy of the output shape");
  EXPECT_CORTEX_ERROR(K::conv2d_input_grad(gy, w, {2, 4, 6}, p), "expected x to be 4-D");
  EXPECT_CORTEX_ERROR(K::conv2d_input_grad(gy, w, {2, 5, 6, 6}, p), "C/groups = 5");
  EXPECT_CORTEX_ERROR(K::conv2d_input_grad(gy, w.to(DType::Float32), x.shape(), p), "one dtype");
  EXPECT_CORTEX_ERROR(K::conv2d_input_grad(gy.to(DType::Int64), w, x.shape(), p), "float32 or float64");
  EXPECT_CORTEX_ERROR(K::conv2d_weight_grad(x, ct::randn({2, 5, 4, 4}, 1), w.shape(), p), "gy of the output shape");
  EXPECT_CORTEX_ERROR(K::conv2d_weight_grad(x, gy, {6, 4, -3, 3}, p), "non-negative sizes");
  EXPECT_CORTEX_ERROR(K::conv2d_weight_grad(x, gy, {6, 4, 3}, p), "expected w to be 4-D");
  EXPECT_CORTEX_ERROR(K::conv2d_weight_grad(x, gy.to(DType::Float32), w.shape(), p), "one dtype");
}
