// The tensor layer's device work (tensor/device_ops.h, kernels/cuda/tensor_ops.cu) on the emulated
// CUDA device, in strict mode so that a host fallback fails: contiguous/clone of views, to(dtype)
// for every pair of dtypes, copy_ with broadcasting, fill_, full, arange, linspace, eye, rand and
// randn. Every result must equal the CPU's bit for bit (the kernels repeat the CPU's conversions
// and call its per-element value functions), in every schedule order of the emulator.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "tensor/device_ops.h"
#include "tensor/random.h"
#include "tests/cuda_test_util.h"
#include "tensor/tensor.h"

using namespace cortex;
namespace K = cortex::kernels;

namespace {

const Device kEmu = Device::emu();
const DType kAll[] = {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16,
                      DType::Int32,   DType::Int64,   DType::UInt8,    DType::Bool};

// Strict device mode on (a fallback throws) and no fallbacks counted; both undone at the end.
class TensorOps : public cortex::testing::StrictEmuTest {
 protected:
  void SetUp() override {
    K::reset_fallback_stats();
    StrictEmuTest::SetUp();
  }
  void TearDown() override {
    StrictEmuTest::TearDown();
    EXPECT_TRUE(K::fallback_stats().empty());
  }
};

// `got` is on emu and equals `want` (a CPU tensor) bit for bit: shape, dtype and every byte.
::testing::AssertionResult same_bits(const Tensor& got, const Tensor& want) {
  if (got.device() != kEmu) return ::testing::AssertionFailure() << "on " << got.device().str() << ", expected emu";
  if (want.device() != Device::cpu()) return ::testing::AssertionFailure() << "reference not on the CPU";
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "got " << shape_str(got.shape()) << " " << dtype_name(got.dtype())
                                         << ", expected " << shape_str(want.shape()) << " " << dtype_name(want.dtype());
  const Tensor g = got.to(Device::cpu()).contiguous(), w = want.contiguous();
  const size_t es = g.element_size();
  for (int64_t i = 0; i < g.numel(); ++i)
    if (std::memcmp(static_cast<const char*>(g.raw_data()) + i * es, static_cast<const char*>(w.raw_data()) + i * es,
                    es) != 0)
      return ::testing::AssertionFailure() << dtype_name(g.dtype()) << " element " << i << " of "
                                           << shape_str(g.shape()) << ": " << g.reshape({-1}).at({i}) << " vs "
                                           << w.reshape({-1}).at({i});
  return ::testing::AssertionSuccess();
}

// Float64 values with the cases conversions must get right: signed zeros, ties for bfloat16 and
// float16 rounding, float16 subnormals and overflow, infinities and NaN.
std::vector<double> special_values() {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> v = {0.0, -0.0, 1.0, -1.0, 0.5, 1.5, -2.5, 3.14159, 1e-3, -7e-6, 3e-8, 6e-8, 1e-9,
                           65504.0, 65520.0, 70000.0, -1e6, 1e30, 1e-30, 1e300, inf, -inf, std::nan(""),
                           1.00390625, 1.01171875, 1.0009765625, 1.0029296875, 255.0, 127.5, -128.25};
  for (int i = 0; i < 67; ++i) v.push_back(std::sin(i * 1.7) * std::pow(10.0, i % 9 - 4));
  return v;
}
// Values every dtype holds exactly enough to convert to integers without undefined behaviour.
std::vector<double> in_range_values(bool unsigned_target) {
  std::vector<double> v;
  for (int i = 0; i < 97; ++i) {
    const double x = std::fmod(i * 37.3, 250.0) + 0.25 * (i % 4);
    v.push_back(unsigned_target ? x : x - 125.0);
  }
  return v;
}

bool is_int(DType dt) { return dt == DType::Int32 || dt == DType::Int64 || dt == DType::UInt8; }

// A [rows, cols] CPU tensor of dtype `dt` holding `values` cyclically (converted on the CPU).
Tensor cpu_matrix(const std::vector<double>& values, int64_t rows, int64_t cols, DType dt) {
  std::vector<double> v(rows * cols);
  for (size_t i = 0; i < v.size(); ++i) v[i] = values[i % values.size()];
  return from_vector(v, {rows, cols}, DType::Float64).to(dt);
}

}  // namespace

TEST_F(TensorOps, ContiguousOfViews) {
  for (DType dt : kAll) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor c = cpu_matrix(special_values(), 7 * 9, 11, dt).reshape({7, 9, 11});  // 693 elements: 3 blocks
    const Tensor e = c.to(kEmu);
    EXPECT_TRUE(same_bits(e.permute({2, 0, 1}).contiguous(), c.permute({2, 0, 1}).contiguous()));
    EXPECT_TRUE(same_bits(e.transpose(0, 2).contiguous(), c.transpose(0, 2).contiguous()));
    EXPECT_TRUE(same_bits(e.slice(1, 1, 8, 3).slice(2, 2, 11, 2).contiguous(),
                          c.slice(1, 1, 8, 3).slice(2, 2, 11, 2).contiguous()));
    EXPECT_TRUE(same_bits(e.select(1, 4).unsqueeze(0).expand({5, 7, 11}).contiguous(),
                          c.select(1, 4).unsqueeze(0).expand({5, 7, 11}).contiguous()));
    EXPECT_TRUE(same_bits(e.select(0, 2).slice(1, 0, 9).diagonal().contiguous(),
                          c.select(0, 2).slice(1, 0, 9).diagonal().contiguous()));
    EXPECT_TRUE(same_bits(e.permute({1, 2, 0}).clone(), c.permute({1, 2, 0}).clone()));
    EXPECT_TRUE(same_bits(e.clone(), c));
    // empty, size-1 and 0-dim
    EXPECT_TRUE(same_bits(e.slice(1, 3, 3).transpose(0, 1).contiguous(), c.slice(1, 3, 3).transpose(0, 1).contiguous()));
    EXPECT_TRUE(same_bits(e.slice(0, 2, 3).permute({2, 1, 0}).contiguous(), c.slice(0, 2, 3).permute({2, 1, 0}).contiguous()));
    EXPECT_TRUE(same_bits(e.select(0, 6).select(0, 8).select(0, 10).clone(), c.select(0, 6).select(0, 8).select(0, 10).clone()));
  }
  // More dims than an Indexer holds (9, none mergeable after the permutation).
  const Tensor c9 = cpu_matrix(special_values(), 1, 2 * 3 * 2 * 2 * 3 * 2 * 2 * 2 * 3, DType::Float32)
                        .reshape({2, 3, 2, 2, 3, 2, 2, 2, 3});
  const Shape perm = {8, 0, 7, 1, 6, 2, 5, 3, 4};
  EXPECT_TRUE(same_bits(c9.to(kEmu).permute(perm).contiguous(), c9.permute(perm).contiguous()));
  Tensor f9c = c9.permute(perm).contiguous(), f9e = f9c.to(kEmu);
  f9c.permute(perm).fill_(0.25);
  f9e.permute(perm).fill_(0.25);
  EXPECT_TRUE(same_bits(f9e, f9c));
}

TEST_F(TensorOps, ToEveryPairOfDtypes) {
  for (DType to : kAll) {
    for (DType from : kAll) {
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + dtype_name(to));
      // Float -> integer conversions outside the target's range are undefined in C++: test those in range.
      const bool float_to_int = is_floating(from) && is_int(to);
      const std::vector<double> values = float_to_int ? in_range_values(to == DType::UInt8) : special_values();
      const Tensor c = cpu_matrix(values, 13, 37, from);  // 481 elements: two blocks, a partial warp
      const Tensor e = c.to(kEmu);
      EXPECT_TRUE(same_bits(e.to(to), c.to(to)));
      EXPECT_TRUE(same_bits(e.t().to(to), c.t().to(to)));  // a transposed source
      EXPECT_TRUE(same_bits(e.slice(0, 0, 0).to(to), c.slice(0, 0, 0).to(to)));
      EXPECT_TRUE(same_bits(e.select(0, 3).select(0, 5).to(to), c.select(0, 3).select(0, 5).to(to)));
    }
  }
}

TEST_F(TensorOps, CopyWithBroadcasting) {
  const Tensor src_c = cpu_matrix(special_values(), 5, 1, DType::Float64);
  for (DType dt : kAll) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor src = is_int(dt) ? cpu_matrix(in_range_values(dt == DType::UInt8), 5, 1, DType::Float64) : src_c;
    // A non-contiguous destination: every other column of a [4, 5, 13] buffer, from a [5, 1] source.
    Tensor buf_c = zeros({4, 5, 13}, dt), buf_e = zeros({4, 5, 13}, dt, kEmu);
    buf_c.slice(2, 0, 13, 2).copy_(src);
    buf_e.slice(2, 0, 13, 2).copy_(src.to(kEmu));
    EXPECT_TRUE(same_bits(buf_e, buf_c));
    // A CPU source into an emu destination runs on emu too, and a 0-dim source fills.
    buf_c.select(0, 1).copy_(src.to(DType::Float32));
    buf_e.select(0, 1).copy_(src.to(DType::Float32));
    EXPECT_TRUE(same_bits(buf_e, buf_c));
    buf_c.select(2, 12).copy_(scalar(-3.0, DType::Int64));
    buf_e.select(2, 12).copy_(scalar(-3.0, DType::Int64, kEmu));
    EXPECT_TRUE(same_bits(buf_e, buf_c));
    // An emu source into a CPU destination is the CPU's copy.
    Tensor back = empty({4, 5, 13}, dt);
    back.copy_(buf_e);
    EXPECT_TRUE(same_bits(buf_e, back));
    // Empty destinations do nothing.
    buf_e.slice(1, 2, 2).copy_(src.slice(0, 2, 2).to(kEmu));
  }
}

TEST_F(TensorOps, FillFullArangeLinspaceEye) {
  for (DType dt : kAll) {
    SCOPED_TRACE(dtype_name(dt));
    const std::vector<double> fills =
        is_int(dt) ? std::vector<double>{1.0, 7.9, 200.0} : std::vector<double>{1.5, -2.7, 1e-7, 70000.0, std::nan("")};
    for (double v : fills) {
      EXPECT_TRUE(same_bits(full({3, 301}, v, dt, kEmu), full({3, 301}, v, dt)));
      Tensor c = zeros({17, 19}, dt), e = zeros({17, 19}, dt, kEmu);
      c.diagonal().fill_(v);
      e.diagonal().fill_(v);
      c.slice(1, 1, 19, 3).fill_(v / 2 + 1);
      e.slice(1, 1, 19, 3).fill_(v / 2 + 1);
      EXPECT_TRUE(same_bits(e, c));
    }
    EXPECT_TRUE(same_bits(zeros({0, 5}, dt, kEmu), zeros({0, 5}, dt)));
    EXPECT_TRUE(same_bits(ones({}, dt, kEmu), ones({}, dt)));
    EXPECT_TRUE(same_bits(eye(5, 7, dt, kEmu), eye(5, 7, dt)));
    EXPECT_TRUE(same_bits(eye(1, -1, dt, kEmu), eye(1, -1, dt)));
    EXPECT_TRUE(same_bits(eye(0, 3, dt, kEmu), eye(0, 3, dt)));
    if (!is_floating(dt) && dt != DType::Bool) {
      EXPECT_TRUE(same_bits(arange(0, 250, 1, dt, kEmu), arange(0, 250, 1, dt)));
      EXPECT_TRUE(same_bits(arange(200, 0, -7, dt, kEmu), arange(200, 0, -7, dt)));
      continue;
    }
    EXPECT_TRUE(same_bits(arange(-1.3, 77.7, 0.1, dt, kEmu), arange(-1.3, 77.7, 0.1, dt)));
    EXPECT_TRUE(same_bits(arange(5, -5, -0.37, dt, kEmu), arange(5, -5, -0.37, dt)));
    EXPECT_TRUE(same_bits(arange(0, 0, 1, dt, kEmu), arange(0, 0, 1, dt)));
    EXPECT_TRUE(same_bits(arange(0, 1, 2, dt, kEmu), arange(0, 1, 2, dt)));
    for (int64_t steps : {0, 1, 2, 3, 1001})
      EXPECT_TRUE(same_bits(linspace(-2.5, 7.1, steps, dt, kEmu), linspace(-2.5, 7.1, steps, dt)));
  }
}

TEST_F(TensorOps, RandomNumbersEqualTheCpus) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dt));
    for (uint64_t seed : {0ull, 7ull, 0x123456789abcdefull}) {
      Generator gc(seed), ge(seed);
      // Several draws in a row: the generator's offset advances the same way on both devices.
      for (const Shape& s : std::vector<Shape>{{1}, {0}, {7}, {33, 31}, {0, 3}, {}, {257}}) {
        EXPECT_TRUE(same_bits(randn(s, ge, 0.5, 2.0, dt, kEmu), randn(s, gc, 0.5, 2.0, dt)));
        EXPECT_TRUE(same_bits(rand(s, ge, -1.0, 3.0, dt, kEmu), rand(s, gc, -1.0, 3.0, dt)));
        EXPECT_EQ(ge.offset(), gc.offset());
      }
      // rand's float32 results stay below high even where the double rounds up to it.
      Generator hc(seed), he(seed);
      const double high = 1.0 + 1e-7;
      EXPECT_TRUE(same_bits(rand({999}, he, 1.0, high, dt, kEmu), rand({999}, hc, 1.0, high, dt)));
    }
  }
}

// The kernels are one thread per element with no shared state, so any order of the emulator's
// threads gives the same bits.
TEST_F(TensorOps, EveryScheduleOrderGivesTheSameBits) {
  const Tensor c = cpu_matrix(special_values(), 23, 45, DType::Float32);
  for (cortex::simt::Order order : {cortex::simt::Order::forward, cortex::simt::Order::reverse, cortex::simt::Order::random}) {
    cortex::simt::set_schedule({order, 12345});
    const Tensor e = c.to(kEmu);
    EXPECT_TRUE(same_bits(e.t().to(DType::BFloat16), c.t().to(DType::BFloat16)));
    EXPECT_TRUE(same_bits(e.t().contiguous(), c.t().contiguous()));
    Generator gc(3), ge(3);
    EXPECT_TRUE(same_bits(randn({1031}, ge, 0.0, 1.0, DType::Float32, kEmu), randn({1031}, gc)));
    EXPECT_TRUE(same_bits(arange(0, 1031, 1, DType::Float16, kEmu), arange(0, 1031, 1, DType::Float16)));
  }
}

// Without the seam's ops (a program that links cortex_tensor alone, or a device nothing
// registered) the CPU is untouched, and the emulated device falls back to the host as before the
// seam: counted, and refused in strict mode.
TEST_F(TensorOps, WithoutTheSeamNothingChangesOnTheCpu) {
  const DeviceTensorOps& cpu_ops = device_tensor_ops(Device::Type::CPU);
  EXPECT_EQ(cpu_ops.copy, nullptr);
  EXPECT_EQ(cpu_ops.note_fallback, nullptr);
  const DeviceTensorOps saved = device_tensor_ops(Device::Type::EMU);
  ASSERT_NE(saved.copy, nullptr) << "kernels/cuda/tensor_ops.cu did not register the emulated device";

  const Tensor c = cpu_matrix(special_values(), 9, 31, DType::Float64);
  Generator g1(11);
  const Tensor with_seam[] = {c.t().contiguous(), c.to(DType::BFloat16), randn({99}, g1), arange(0, 3, 0.1),
                              linspace(0, 1, 9), eye(4, 6), full({5}, 2.5)};
  set_device_tensor_ops(Device::Type::EMU, DeviceTensorOps{});
  Generator g2(11);
  const Tensor without[] = {c.t().contiguous(), c.to(DType::BFloat16), randn({99}, g2), arange(0, 3, 0.1),
                            linspace(0, 1, 9), eye(4, 6), full({5}, 2.5)};
  for (size_t i = 0; i < std::size(without); ++i) EXPECT_TRUE(same_bits(with_seam[i].to(kEmu), without[i])) << i;
  EXPECT_TRUE(K::fallback_stats().empty());

  // emu without ops and without a fallback counter: the host code, uncounted, even in strict mode.
  const Tensor e = c.to(kEmu);
  EXPECT_TRUE(same_bits(e.t().contiguous(), c.t().contiguous()));
  // With only the counter registered: counted, and refused in strict mode.
  DeviceTensorOps counter_only;
  counter_only.note_fallback = saved.note_fallback;
  set_device_tensor_ops(Device::Type::EMU, counter_only);
  try {
    e.t().contiguous();
    ADD_FAILURE() << "strict mode let a host fallback run";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("clone: no emu kernel"), std::string::npos) << err.what();
  }
  K::set_strict_device(false);
  Generator g3(11);
  EXPECT_TRUE(same_bits(randn({99}, g3, 0.0, 1.0, DType::Float32, kEmu), with_seam[2]));
  EXPECT_TRUE(same_bits(e.t().contiguous(), c.t().contiguous()));
  EXPECT_EQ(K::fallback_stats()["randn"], 1);
  EXPECT_EQ(K::fallback_stats()["clone"], 1);
  set_device_tensor_ops(Device::Type::EMU, saved);
  K::reset_fallback_stats();
}
