// The pooling kernels of kernels/cuda/pool.cu on the emulated CUDA device, against the CPU kernels
// (kernels/cpu/pool.cpp): max_pool2d (values and indices, with ties, NaNs and all -inf windows),
// avg_pool2d with and without count_include_pad, adaptive_avg_pool2d and both adjoints, over odd
// sizes, padding, ceil mode, stride above the kernel, overlapping windows, rows wider than a block,
// 1x1 planes, unbatched inputs, empty batches and strided views; float32 and float64. The kernels
// do the CPU's arithmetic in the CPU's order, so results must be bit-identical to it, and
// bit-identical in forward, reverse and random schedule order. Strict device mode is on, so a
// fallback to the host fails the test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/pool.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::bytes_of;

namespace {

const Device kEmu = Device::emu();

class CudaPool : public cortex::testing::StrictEmuTest {};

// got (on emu) has want's shape, dtype and bytes.
::testing::AssertionResult same(const Tensor& got, const Tensor& want, const std::string& what) {
  if (got.device() != kEmu) return ::testing::AssertionFailure() << what << ": result on " << got.device().str();
  if (got.dtype() != want.dtype() || got.shape() != want.shape())
    return ::testing::AssertionFailure() << what << ": " << dtype_name(got.dtype()) << shape_str(got.shape())
                                         << " vs " << dtype_name(want.dtype()) << shape_str(want.shape());
  if (bytes_of(got) != bytes_of(want)) {
    ::testing::AssertionResult r = cortex::testing::allclose(got.to(Device::cpu()), want, 0.0, 0.0);
    return ::testing::AssertionFailure() << what << ": not bit-identical to the CPU " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// The tensor on emu in three layouts with the same values: contiguous, channels-last (C innermost,
// as a transposed copy viewed back) and gapped along W (tests/test_util.h's noncontig).
std::vector<std::pair<std::string, Tensor>> emu_views(const Tensor& x) {
  if (x.numel() == 0) return {{"empty", empty(x.shape(), x.dtype(), kEmu)}};
  const Tensor xe = x.to(kEmu);
  const int64_t d = x.dim();
  return {{"contiguous", xe},
          {"channels-last", xe.transpose(d - 3, d - 1).contiguous().transpose(d - 3, d - 1)},
          {"gapped", noncontig(xe)}};
}

// Normal values rounded to quarters (many ties), with a few NaNs and -infs on request.
Tensor pool_input(const Shape& s, uint64_t seed, DType dt, bool specials) {
  std::vector<double> v = randn(s, seed).to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = std::round(v[i] * 4) / 4;
    if (specials && i % 53 == 7) v[i] = std::nan("");
    if (specials && i % 41 == 3) v[i] = -std::numeric_limits<double>::infinity();
  }
  return from_vector(v, s, dt);
}

K::Pool2dParams params(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, bool ceil,
                       bool include_pad) {
  K::Pool2dParams p;
  p.kernel_h = kh, p.kernel_w = kw, p.stride_h = sh, p.stride_w = sw, p.pad_h = ph, p.pad_w = pw;
  p.ceil_mode = ceil, p.count_include_pad = include_pad;
  return p;
}

struct Case {
  Shape x;
  K::Pool2dParams p;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {{2, 3, 7, 9}, params(3, 3, 2, 2, 1, 1, false, true)},     // overlapping, padded
      {{2, 3, 7, 9}, params(3, 3, 2, 2, 1, 1, true, false)},     // ceil mode, padding excluded
      {{1, 1, 1, 1}, params(1, 1, 1, 1, 0, 0, false, true)},     // 1x1
      {{2, 2, 5, 70}, params(2, 2, 3, 3, 0, 0, false, true)},    // stride above the kernel
      {{2, 2, 5, 70}, params(2, 2, 3, 3, 1, 1, true, false)},    // ... padded, ceil
      {{1, 2, 4, 300}, params(3, 3, 1, 1, 1, 1, false, false)},  // a row wider than a block
      {{3, 2, 11, 13}, params(4, 3, 3, 2, 2, 1, true, true)},    // rectangular everything
      {{3, 5, 6}, params(2, 3, 2, 1, 1, 0, false, true)},        // unbatched (C, H, W)
      {{0, 3, 5, 5}, params(2, 2, 2, 2, 0, 0, false, true)},     // empty batch
  };
  return c;
}

}  // namespace

TEST_F(CudaPool, MaxPoolMatchesCpuBitForBit) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : cases()) {
      const Tensor x = pool_input(c.x, 3, dt, true);
      const K::MaxPool want = K::max_pool2d(x, c.p);
      for (const auto& [name, xe] : emu_views(x)) {
        const K::MaxPool got = K::max_pool2d(xe, c.p);
        const std::string what = "max_pool2d " + name + " " + shape_str(c.x) + " " + dtype_name(dt);
        EXPECT_TRUE(same(got.y, want.y, what + " values"));
        EXPECT_TRUE(same(got.indices, want.indices, what + " indices"));
      }
    }
}

TEST_F(CudaPool, MaxPoolAllNegativeInfinityWindowsKeepTheFirstCell) {
  const Tensor x = full({1, 2, 5, 6}, -std::numeric_limits<double>::infinity(), DType::Float32);
  const K::Pool2dParams p = params(3, 2, 2, 3, 1, 1, true, true);
  const K::MaxPool want = K::max_pool2d(x, p), got = K::max_pool2d(x.to(kEmu), p);
  EXPECT_TRUE(same(got.y, want.y, "all -inf values"));
  EXPECT_TRUE(same(got.indices, want.indices, "all -inf indices"));
}

TEST_F(CudaPool, AvgPoolAndBackwardMatchCpuBitForBit) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : cases()) {
      const Tensor x = pool_input(c.x, 5, dt, false);
      const Tensor want = K::avg_pool2d(x, c.p);
      const Tensor gy = randn(want.shape(), 9, dt);
      const Tensor want_gx = K::avg_pool2d_backward(gy, c.x, c.p);
      for (const auto& [name, xe] : emu_views(x)) {
        const std::string what = name + " " + shape_str(c.x) + " " + dtype_name(dt);
        EXPECT_TRUE(same(K::avg_pool2d(xe, c.p), want, "avg_pool2d " + what));
      }
      for (const auto& [name, ge] : emu_views(gy))
        EXPECT_TRUE(same(K::avg_pool2d_backward(ge, c.x, c.p), want_gx,
                         "avg_pool2d_backward " + name + " " + shape_str(c.x) + " " + dtype_name(dt)));
    }
}

TEST_F(CudaPool, AdaptiveAvgPoolAndBackwardMatchCpuBitForBit) {
  struct A {
    Shape x;
    int64_t oh, ow;
  };
  const std::vector<A> as = {
      {{2, 3, 7, 9}, 3, 4},   {{2, 3, 7, 9}, 1, 1},   {{2, 3, 7, 9}, 7, 9},  // bins of mixed sizes, global, identity
      {{1, 2, 3, 5}, 7, 11},                                                 // more bins than cells
      {{1, 2, 5, 300}, 2, 37},                                               // a row wider than a block
      {{1, 1, 1, 1}, 1, 1},   {{4, 5, 6}, 3, 4},      {{0, 2, 4, 4}, 2, 2},  // 1x1, unbatched, empty batch
  };
  for (DType dt : {DType::Float32, DType::Float64})
    for (const A& a : as) {
      const Tensor x = pool_input(a.x, 7, dt, false);
      const Tensor want = K::adaptive_avg_pool2d(x, a.oh, a.ow);
      const Tensor gy = randn(want.shape(), 13, dt);
      const Tensor want_gx = K::adaptive_avg_pool2d_backward(gy, a.x);
      // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on one long chain of string +.
      std::string tail = " ";
      for (const std::string& part : {shape_str(a.x), std::string(" -> ("), std::to_string(a.oh), std::string(", "),
                                      std::to_string(a.ow), std::string(") "), std::string(dtype_name(dt))})
        tail += part;
      for (const auto& [name, xe] : emu_views(x))
        EXPECT_TRUE(same(K::adaptive_avg_pool2d(xe, a.oh, a.ow), want, "adaptive_avg_pool2d " + name + tail));
      for (const auto& [name, ge] : emu_views(gy))
        EXPECT_TRUE(same(K::adaptive_avg_pool2d_backward(ge, a.x), want_gx,
                         "adaptive_avg_pool2d_backward " + name + tail));
    }
}

// Several blocks, partial last warps, overlapping windows: the same bytes in every schedule order.
TEST_F(CudaPool, BitIdenticalAcrossScheduleOrders) {
  const Shape xs{2, 3, 13, 29};
  const K::Pool2dParams p = params(3, 3, 2, 2, 1, 1, true, false);
  const Tensor x = pool_input(xs, 17, DType::Float32, true).to(kEmu);
  const Tensor gy = randn(K::avg_pool2d(x, p).shape(), 19, DType::Float32).to(kEmu);
  const Tensor agy = randn({2, 3, 5, 7}, 23, DType::Float32).to(kEmu);
  using Fn = std::function<std::vector<unsigned char>()>;
  const std::vector<std::pair<std::string, Fn>> fns = {
      {"max_pool2d values", [&] { return bytes_of(K::max_pool2d(x, p).y); }},
      {"max_pool2d indices", [&] { return bytes_of(K::max_pool2d(x, p).indices); }},
      {"avg_pool2d", [&] { return bytes_of(K::avg_pool2d(x, p)); }},
      {"avg_pool2d_backward", [&] { return bytes_of(K::avg_pool2d_backward(gy, xs, p)); }},
      {"adaptive_avg_pool2d", [&] { return bytes_of(K::adaptive_avg_pool2d(x, 5, 7)); }},
      {"adaptive_avg_pool2d_backward", [&] { return bytes_of(K::adaptive_avg_pool2d_backward(agy, xs)); }},
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
