// The resampling kernels of kernels/cuda/sample.cu on the emulated CUDA device, against the CPU
// kernels (kernels/cpu/sample.cpp) and float64 loops written here: grid_sample (bilinear and
// nearest, zeros and border padding, align_corners both ways) and its backward, bilinear resize
// and its backward, pad (constant, reflect, replicate; every dtype) and its backward. Odd sizes,
// grids outside [-1, 1] with infinite and NaN points, 1x1 planes, empty batches, strided views,
// float32 and float64 (the entries take batched (N, C, H, W) only; pad any rank).
//
// Forwards, the grid gradient, and the gather-form backwards of resize and pad do the CPU's
// arithmetic in the CPU's order: bit-identical to it, and in forward, reverse and random schedule
// order. grid_sample's input gradient adds with atomicAdd in schedule order, so it is compared
// within a tolerance: |got - cpu| <= 1e-5 (1 + |cpu|) in float32 and 1e-12 (1 + |cpu|) in float64
// (a reordered sum of at most Ho * Wo * 4 terms of size ~1). Strict device mode is on, so a
// fallback to the host fails the test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/sample.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::allclose;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::randu;
using cortex::testing::bytes_of;

namespace {

const Device kEmu = Device::emu();

class CudaSample : public cortex::testing::StrictEmuTest {};

// got (on emu) has want's shape, dtype and bytes.
::testing::AssertionResult same(const Tensor& got, const Tensor& want, const std::string& what) {
  if (got.device() != kEmu) return ::testing::AssertionFailure() << what << ": result on " << got.device().str();
  if (got.dtype() != want.dtype() || got.shape() != want.shape())
    return ::testing::AssertionFailure() << what << ": " << dtype_name(got.dtype()) << shape_str(got.shape())
                                         << " vs " << dtype_name(want.dtype()) << shape_str(want.shape());
  if (bytes_of(got) != bytes_of(want)) {
    ::testing::AssertionResult r = allclose(got.to(Device::cpu()), want, 0.0, 0.0);
    return ::testing::AssertionFailure() << what << ": not bit-identical to the CPU " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// got (on emu) within |got - want| <= tol (1 + |want|), NaNs in the same places.
::testing::AssertionResult near(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  if (got.device() != kEmu) return ::testing::AssertionFailure() << what << ": result on " << got.device().str();
  ::testing::AssertionResult r = allclose(got.to(Device::cpu()), want, tol, tol);
  if (!r) return ::testing::AssertionFailure() << what << ": " << r.message();
  return r;
}

// The tensor on emu in three layouts with the same values: contiguous, channels-last and gapped.
std::vector<std::pair<std::string, Tensor>> emu_views(const Tensor& x) {
  if (x.numel() == 0) return {{"empty", empty(x.shape(), x.dtype(), kEmu)}};
  const Tensor xe = x.to(kEmu);
  if (x.dim() < 3) return {{"contiguous", xe}, {"gapped", noncontig(xe)}};
  const int64_t d = x.dim();
  return {{"contiguous", xe},
          {"channels-last", xe.transpose(d - 3, d - 1).contiguous().transpose(d - 3, d - 1)},
          {"gapped", noncontig(xe)}};
}

std::vector<double> values(const Tensor& t) {
  return t.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>();
}

// ---------------------------------------------------------------- float64 references

double unnormalize(double g, int64_t size, bool align) {
  return align ? (g + 1) / 2 * static_cast<double>(size - 1) : ((g + 1) * static_cast<double>(size) - 1) / 2;
}
double tent(double t) { return std::max(0.0, 1.0 - std::abs(t)); }

// grid_sample from its definition: bilinear as a sum of tent weights over every pixel, nearest as
// the pixel equal to the rounded (half to even) source; NaN points give NaN.
std::vector<double> ref_grid_sample(const Tensor& xt, const Tensor& gt, bool align, K::GridPadding pad,
                                    K::GridMode mode) {
  const auto x = values(xt), grid = values(gt);
  const int64_t N = xt.size(0), C = xt.size(1), H = xt.size(2), W = xt.size(3), L = gt.size(1) * gt.size(2);
  std::vector<double> y(static_cast<size_t>(N * C * L), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t l = 0; l < L; ++l) {
      double sx = unnormalize(grid[(n * L + l) * 2], W, align), sy = unnormalize(grid[(n * L + l) * 2 + 1], H, align);
      const bool nan = std::isnan(sx) || std::isnan(sy);
      if (pad == K::GridPadding::Border) {
        sx = std::clamp(sx, 0.0, static_cast<double>(W - 1));
        sy = std::clamp(sy, 0.0, static_cast<double>(H - 1));
      }
      for (int64_t c = 0; c < C; ++c) {
        double v = 0;
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) {
            const double xv = x[((n * C + c) * H + h) * W + w];
            if (mode == K::GridMode::Nearest) {
              if (std::nearbyint(sx) == static_cast<double>(w) && std::nearbyint(sy) == static_cast<double>(h)) v = xv;
            } else if (std::abs(sx - w) < 1 && std::abs(sy - h) < 1) {
              v += xv * tent(sx - w) * tent(sy - h);
            }
          }
        y[(n * C + c) * L + l] = nan ? std::nan("") : v;
      }
    }
  return y;
}

// F.interpolate(mode="bilinear") from its definition, one axis at a time.
std::vector<double> ref_resize(const Tensor& xt, int64_t oh, int64_t ow, bool align) {
  const auto x = values(xt);
  const int64_t P = xt.size(0) * xt.size(1), H = xt.size(2), W = xt.size(3);
  auto src = [align](int64_t o, int64_t in, int64_t out) {
    if (align) return out > 1 ? static_cast<double>(o) * (in - 1) / (out - 1) : 0.0;
    return std::max((o + 0.5) * in / out - 0.5, 0.0);
  };
  std::vector<double> y(static_cast<size_t>(P * oh * ow));
  for (int64_t p = 0; p < P; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const double sy = std::min(src(i, H, oh), static_cast<double>(H - 1));
        const double sx = std::min(src(j, W, ow), static_cast<double>(W - 1));
        double v = 0;
        for (int64_t h = 0; h < H; ++h)
          for (int64_t w = 0; w < W; ++w) v += x[(p * H + h) * W + w] * tent(sy - h) * tent(sx - w);
        y[(p * oh + i) * ow + j] = v;
      }
  return y;
}

// Index arithmetic from the definition of F.pad for any rank.
std::vector<double> ref_pad(const Tensor& xt, const Shape& pads, K::PadMode mode, double value, Shape& os) {
  const auto x = values(xt);
  const Shape xs = xt.shape();
  const int64_t nd = static_cast<int64_t>(xs.size());
  os = xs;
  std::vector<int64_t> lo(nd, 0);
  for (size_t k = 0; 2 * k < pads.size(); ++k) {
    const int64_t d = nd - 1 - static_cast<int64_t>(k);
    lo[d] = pads[2 * k];
    os[d] += pads[2 * k] + pads[2 * k + 1];
  }
  int64_t total = 1;
  for (int64_t s : os) total *= s;
  std::vector<double> y(static_cast<size_t>(total));
  for (int64_t i = 0; i < total; ++i) {
    int64_t rem = i, src = 0, mul = 1;
    bool constant = false;
    for (int64_t d = nd - 1; d >= 0; --d) {
      int64_t j = rem % os[d] - lo[d];
      rem /= os[d];
      if (j < 0 || j >= xs[d]) {
        if (mode == K::PadMode::Constant) constant = true;
        else if (mode == K::PadMode::Replicate) j = j < 0 ? 0 : xs[d] - 1;
        else j = j < 0 ? -j : 2 * (xs[d] - 1) - j;
      }
      src += j * mul;
      mul *= xs[d];
    }
    y[i] = constant ? value : x[src];
  }
  return y;
}

Tensor f64(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, DType::Float64); }

// ---------------------------------------------------------------- cases

struct GridCase {
  Shape x;
  int64_t Ho, Wo;
};
const std::vector<GridCase>& grid_cases() {
  static const std::vector<GridCase> c = {
      {{2, 3, 7, 9}, 5, 6},    // odd sizes
      {{1, 2, 1, 1}, 3, 4},    // 1x1 planes
      {{2, 1, 1, 5}, 2, 3},    // one row
      {{1, 2, 6, 1}, 4, 1},    // one column
      {{1, 2, 9, 11}, 1, 300}, // output rows wider than a block
      {{0, 3, 4, 4}, 2, 2},    // empty batch
      {{2, 0, 4, 4}, 2, 2},    // no channels
  };
  return c;
}

// Grid points over [-1.5, 1.5] (so some read padding), with an infinite, a huge and a NaN point
// on request.
Tensor grid_values(int64_t N, int64_t Ho, int64_t Wo, uint64_t seed, DType dt, bool specials) {
  std::vector<double> v = randu({N, Ho, Wo, 2}, seed, -1.5, 1.5).to_vector<double>();
  for (size_t i = 0; specials && i < v.size(); ++i) {
    if (i % 29 == 5) v[i] = std::numeric_limits<double>::infinity();
    if (i % 31 == 8) v[i] = -1e30;
    if (i % 37 == 11) v[i] = std::nan("");
  }
  return from_vector(v, {N, Ho, Wo, 2}, dt);
}

// The grid on emu, contiguous and stored as (N, 2, Ho, Wo) permuted into place.
std::vector<std::pair<std::string, Tensor>> grid_views(const Tensor& g) {
  if (g.numel() == 0) return {{"empty grid", empty(g.shape(), g.dtype(), kEmu)}};
  const Tensor ge = g.to(kEmu);
  return {{"grid", ge}, {"permuted grid", ge.permute({0, 3, 1, 2}).contiguous().permute({0, 2, 3, 1})}};
}

const K::GridMode kModes[] = {K::GridMode::Bilinear, K::GridMode::Nearest};
const K::GridPadding kPads[] = {K::GridPadding::Zeros, K::GridPadding::Border};

std::string grid_what(const GridCase& c, bool align, K::GridPadding pad, K::GridMode mode, DType dt) {
  std::string s = shape_str(c.x);
  for (const std::string& part :
       {std::string(" -> "), std::to_string(c.Ho), std::string("x"), std::to_string(c.Wo),
        std::string(align ? " align" : " no-align"), std::string(pad == K::GridPadding::Border ? " border" : " zeros"),
        std::string(mode == K::GridMode::Nearest ? " nearest " : " bilinear "), std::string(dtype_name(dt))})
    s += part;
  return s;
}

}  // namespace

TEST_F(CudaSample, GridSampleMatchesCpuBitForBitAndReference) {
  uint64_t seed = 1;
  for (DType dt : {DType::Float32, DType::Float64})
    for (const GridCase& c : grid_cases())
      for (K::GridMode mode : kModes)
        for (K::GridPadding pad : kPads)
          for (bool align : {false, true}) {
            const Tensor x = randn(c.x, seed++, dt);
            const Tensor g = grid_values(c.x[0], c.Ho, c.Wo, seed++, dt, true);
            const std::string what = grid_what(c, align, pad, mode, dt);
            const Tensor want = K::grid_sample(x, g, align, pad, mode);
            const Tensor ref = f64(ref_grid_sample(x, g, align, pad, mode), want.shape());
            const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
            for (const auto& [xn, xe] : emu_views(x))
              for (const auto& [gn, ge] : grid_views(g)) {
                const Tensor got = K::grid_sample(xe, ge, align, pad, mode);
                EXPECT_TRUE(same(got, want, "grid_sample " + xn + " " + gn + " " + what));
                EXPECT_TRUE(near(got, ref, tol, "grid_sample vs float64 reference " + what));
              }
          }
}

TEST_F(CudaSample, GridSampleBackwardMatchesCpu) {
  uint64_t seed = 1000;
  for (DType dt : {DType::Float32, DType::Float64})
    for (const GridCase& c : grid_cases())
      for (K::GridMode mode : kModes)
        for (K::GridPadding pad : kPads)
          for (bool align : {false, true}) {
            const Tensor x = randn(c.x, seed++, dt);
            const Tensor g = grid_values(c.x[0], c.Ho, c.Wo, seed++, dt, true);
            const Tensor gy = randn({c.x[0], c.x[1], c.Ho, c.Wo}, seed++, dt);
            const std::string what = grid_what(c, align, pad, mode, dt);
            const K::GridSampleGrads want = K::grid_sample_backward(gy, x, g, align, pad, mode);
            const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
            const auto xv = emu_views(x), yv = emu_views(gy);
            const auto gv = grid_views(g);
            for (size_t k = 0; k < xv.size(); ++k) {
              // each layout of x with the matching layout of gy, and each grid layout
              const auto& [xn, xe] = xv[k];
              const Tensor& ge_y = yv[std::min(k, yv.size() - 1)].second;
              for (const auto& [gn, ge] : gv) {
                const K::GridSampleGrads got = K::grid_sample_backward(ge_y, xe, ge, align, pad, mode);
                EXPECT_TRUE(same(got.grid, want.grid, "grid gradient " + xn + " " + gn + " " + what));
                EXPECT_TRUE(
                    near(got.input, want.input, tol, "input gradient (atomics) " + xn + " " + gn + " " + what));
              }
            }
            // grid_grad false: the input gradient alone, no grid gradient
            const K::GridSampleGrads only = K::grid_sample_backward(yv[0].second, xv[0].second, gv[0].second, align,
                                                                    pad, mode, false);
            EXPECT_FALSE(only.grid.defined()) << what;
            EXPECT_TRUE(near(only.input, want.input, tol, "input gradient alone " + what));
          }
}

// Source coordinates exactly halfway between pixels round half to even (random grids never hit
// them): W = 4 without align_corners, g = -0.5, 0, 0.5 are x = 0.5, 1.5, 2.5 -> pixels 0, 2, 2;
// g = 1 is 3.5 -> 4: outside (0) with zero padding. Rows likewise with H = 4.
TEST_F(CudaSample, NearestRoundsHalfToEven) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = from_vector(std::vector<double>{10, 11, 12, 13}, {1, 1, 1, 4}, dt);
    const Tensor g = from_vector(std::vector<double>{-0.5, 0, 0, 0, 0.5, 0, 1, 0}, {1, 1, 4, 2}, dt);
    const Tensor y = K::grid_sample(x.to(kEmu), g.to(kEmu), false, K::GridPadding::Zeros, K::GridMode::Nearest);
    EXPECT_TRUE(near(y, f64({10, 12, 12, 0}, {1, 1, 1, 4}), 0.0, "nearest halfway points"));
    const Tensor gy = ones({1, 1, 1, 4}, dt, kEmu);
    const K::GridSampleGrads gr = K::grid_sample_backward(gy, x.to(kEmu), g.to(kEmu), false, K::GridPadding::Zeros,
                                                          K::GridMode::Nearest);
    EXPECT_TRUE(near(gr.input, f64({1, 0, 2, 0}, {1, 1, 1, 4}), 0.0, "nearest halfway input gradient"));
    EXPECT_TRUE(near(gr.grid, zeros({1, 1, 4, 2}, DType::Float64), 0.0, "nearest grid gradient"));
    const Tensor xt = from_vector(std::vector<double>{10, 11, 12, 13}, {1, 1, 4, 1}, dt);
    const Tensor gt = from_vector(std::vector<double>{0, -0.5, 0, 0, 0, 0.5, 0, 1}, {1, 4, 1, 2}, dt);
    EXPECT_TRUE(near(K::grid_sample(xt.to(kEmu), gt.to(kEmu), false, K::GridPadding::Border, K::GridMode::Nearest),
                     f64({10, 12, 12, 13}, {1, 1, 4, 1}), 0.0, "nearest halfway rows, border"));
  }
}

// The input gradient is the adjoint of the forward on emu, too (finite grids, so no NaN).
TEST_F(CudaSample, GridSampleInputGradientIsTheAdjoint) {
  for (K::GridMode mode : kModes)
    for (K::GridPadding pad : kPads)
      for (bool align : {false, true}) {
        const Tensor x = randn({2, 3, 7, 9}, 61).to(kEmu);
        const Tensor g = grid_values(2, 5, 6, 62, DType::Float64, false).to(kEmu);
        const Tensor gy = randn({2, 3, 5, 6}, 63).to(kEmu);
        const auto y = values(K::grid_sample(x, g, align, pad, mode)), gyv = values(gy);
        const auto xv = values(x), gx = values(K::grid_sample_backward(gy, x, g, align, pad, mode).input);
        double lhs = 0, rhs = 0;
        for (size_t i = 0; i < y.size(); ++i) lhs += y[i] * gyv[i];
        for (size_t i = 0; i < xv.size(); ++i) rhs += xv[i] * gx[i];
        EXPECT_NEAR(lhs, rhs, 1e-12 * (1 + std::abs(lhs)));
      }
}

TEST_F(CudaSample, ResizeAndBackwardMatchCpuBitForBitAndReference) {
  struct R {
    Shape x;
    int64_t oh, ow;
  };
  const std::vector<R> rs = {
      {{2, 3, 5, 7}, 9, 11},  {{2, 3, 9, 11}, 4, 5},   // up, down (odd sizes)
      {{1, 2, 5, 7}, 5, 7},   {{1, 2, 6, 5}, 1, 1},    // identity, to 1x1
      {{1, 2, 1, 1}, 3, 4},   {{1, 1, 1, 6}, 4, 13},   // from a 1x1 plane, from one row
      {{1, 2, 3, 4}, 2, 300},                          // a row wider than a block
      {{0, 2, 4, 4}, 3, 3},                            // empty batch
  };
  uint64_t seed = 2000;
  for (DType dt : {DType::Float32, DType::Float64})
    for (const R& r : rs)
      for (bool align : {false, true}) {
        const Tensor x = randn(r.x, seed++, dt);
        const Tensor want = K::resize_bilinear(x, r.oh, r.ow, align);
        const Tensor ref = f64(ref_resize(x, r.oh, r.ow, align), want.shape());
        const Tensor gy = randn(want.shape(), seed++, dt);
        const Tensor want_gx = K::resize_bilinear_backward(gy, r.x, align);
        std::string what = shape_str(r.x);
        for (const std::string& part : {std::string(" -> "), std::to_string(r.oh), std::string("x"),
                                        std::to_string(r.ow), std::string(align ? " align " : " no-align "),
                                        std::string(dtype_name(dt))})
          what += part;
        const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
        for (const auto& [name, xe] : emu_views(x)) {
          const Tensor got = K::resize_bilinear(xe, r.oh, r.ow, align);
          EXPECT_TRUE(same(got, want, "resize_bilinear " + name + " " + what));
          EXPECT_TRUE(near(got, ref, tol, "resize_bilinear vs float64 reference " + what));
        }
        for (const auto& [name, ge] : emu_views(gy))
          EXPECT_TRUE(same(K::resize_bilinear_backward(ge, r.x, align), want_gx,
                           "resize_bilinear_backward " + name + " " + what));
      }
}

TEST_F(CudaSample, PadAndBackwardMatchCpuBitForBitAndReference) {
  struct P {
    Shape x, pads;
    K::PadMode mode;
  };
  using M = K::PadMode;
  const std::vector<P> ps = {
      {{2, 3, 5, 7}, {1, 2, 3, 0}, M::Constant}, {{2, 3, 5, 7}, {2, 3, 4, 1}, M::Reflect},
      {{2, 3, 5, 7}, {3, 1, 0, 5}, M::Replicate},                                      // 4-d, every mode
      {{3, 4, 5}, {-1, 2, 1, -2, 1, 1}, M::Constant},                                  // crops, three dims
      {{3, 4, 5}, {-1, 2, 1, -1}, M::Replicate},  {{3, 4, 5}, {2, 0, 1, 3}, M::Reflect},
      {{9}, {4, 7}, M::Constant},                 {{9}, {8, 8}, M::Reflect},            // 1-d, full reflection
      {{1, 1, 1}, {2, 3, 1, 1}, M::Replicate},                                         // size-1 dims
      {{2, 1, 2, 3, 4}, {1, 1, 1, 1, 1, 1}, M::Reflect},                               // 5-d
      {{2, 2, 300}, {5, 6}, M::Replicate},                                             // rows wider than a block
      {{0, 3, 4}, {1, 1}, M::Constant},           {{}, {}, M::Constant},               // empty batch, 0-d
  };
  uint64_t seed = 3000;
  for (const P& p : ps) {
    std::string what = shape_str(p.x) + " pads " + shape_str(p.pads);
    what += p.mode == M::Constant ? " constant" : p.mode == M::Reflect ? " reflect" : " replicate";
    for (DType dt : {DType::Float32, DType::Float64, DType::Int32, DType::Int64, DType::UInt8, DType::BFloat16}) {
      const Tensor x = dt == DType::UInt8 ? randu(p.x, seed++, 0, 200).to(dt) : randn(p.x, seed++).to(dt);
      const Tensor want = K::pad(x, p.pads, p.mode, 2.75);
      Shape os;
      const Tensor ref = f64(ref_pad(x, p.pads, p.mode, scalar(2.75, dt).to(DType::Float64).item(), os), os);
      for (const auto& [name, xe] : emu_views(x)) {
        const Tensor got = K::pad(xe, p.pads, p.mode, 2.75);
        EXPECT_TRUE(same(got, want, "pad " + name + " " + what + " " + dtype_name(dt)));
        EXPECT_TRUE(near(got, ref, 0.0, "pad vs float64 reference " + what + " " + dtype_name(dt)));
      }
    }
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor gy = randn(K::pad(zeros(p.x, dt), p.pads, p.mode, 0.0).shape(), seed++, dt);
      const Tensor want = K::pad_backward(gy, p.x, p.pads, p.mode);
      for (const auto& [name, ge] : emu_views(gy))
        EXPECT_TRUE(same(K::pad_backward(ge, p.x, p.pads, p.mode), want,
                         "pad_backward " + name + " " + what + " " + dtype_name(dt)));
    }
  }
}

// More than kMaxDims dims: a clear error, not a wrong answer.
TEST_F(CudaSample, PadRefusesTooManyDims) {
  const Tensor x = zeros({1, 1, 1, 1, 1, 1, 1, 1, 2}, DType::Float32, kEmu);
  EXPECT_CORTEX_ERROR(K::pad(x, {1, 1}, K::PadMode::Constant, 0.0), "pad: the CUDA kernel takes at most 8 dims");
}

// Several blocks and partial warps: the deterministic kernels give the same bytes in every
// schedule order; the atomics-based input gradient stays within its tolerance of the CPU.
TEST_F(CudaSample, ScheduleOrders) {
  const Tensor x = randn({2, 3, 13, 29}, 71, DType::Float32).to(kEmu);
  const Tensor g = grid_values(2, 11, 17, 72, DType::Float32, true).to(kEmu);
  const Tensor gy = randn({2, 3, 11, 17}, 73, DType::Float32).to(kEmu);
  const Tensor ry = randn({2, 3, 31, 7}, 74, DType::Float32).to(kEmu);
  const Tensor py = randn({2, 3, 18, 33}, 75, DType::Float32).to(kEmu);
  const Shape pads{2, 2, 3, 2};
  using Fn = std::function<std::vector<unsigned char>()>;
  std::vector<std::pair<std::string, Fn>> fns;
  for (K::GridMode mode : kModes) {
    const std::string m = mode == K::GridMode::Nearest ? " nearest" : " bilinear";
    fns.push_back({"grid_sample" + m, [&, mode] {
                     return bytes_of(K::grid_sample(x, g, false, K::GridPadding::Zeros, mode));
                   }});
    fns.push_back({"grid gradient" + m, [&, mode] {
                     return bytes_of(K::grid_sample_backward(gy, x, g, true, K::GridPadding::Border, mode).grid);
                   }});
  }
  fns.push_back({"resize_bilinear", [&] { return bytes_of(K::resize_bilinear(x, 31, 7, false)); }});
  fns.push_back(
      {"resize_bilinear_backward", [&] { return bytes_of(K::resize_bilinear_backward(ry, x.shape(), true)); }});
  fns.push_back({"pad", [&] { return bytes_of(K::pad(x, pads, K::PadMode::Reflect, 0.0)); }});
  fns.push_back({"pad_backward", [&] { return bytes_of(K::pad_backward(py, x.shape(), pads, K::PadMode::Reflect)); }});
  const std::vector<cortex::simt::Schedule> others = {cortex::simt::Schedule{cortex::simt::Order::reverse, 0},
                                                      cortex::simt::Schedule{cortex::simt::Order::random, 7}};
  for (const auto& [name, f] : fns) {
    cortex::simt::set_schedule({cortex::simt::Order::forward, 0});
    const auto ref = f();
    for (const cortex::simt::Schedule& s : others) {
      cortex::simt::set_schedule(s);
      EXPECT_EQ(f(), ref) << name << ": results differ across schedule orders";
    }
    cortex::simt::clear_schedule();
  }
  const Tensor xc = x.to(Device::cpu()), gc = g.to(Device::cpu()), gyc = gy.to(Device::cpu());
  for (K::GridMode mode : kModes) {
    const Tensor want = K::grid_sample_backward(gyc, xc, gc, false, K::GridPadding::Zeros, mode).input;
    for (const cortex::simt::Schedule& s : {cortex::simt::Schedule{cortex::simt::Order::forward, 0}, others[0],
                                            others[1]}) {
      cortex::simt::set_schedule(s);
      EXPECT_TRUE(near(K::grid_sample_backward(gy, x, g, false, K::GridPadding::Zeros, mode).input, want, 1e-5,
                       "input gradient (atomics) in another schedule order"));
    }
    cortex::simt::clear_schedule();
  }
}
