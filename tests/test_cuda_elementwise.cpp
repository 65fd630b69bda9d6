// The elementwise CUDA kernels (kernels/cuda/elementwise.cu) on the emulated CUDA device, against
// the CPU kernels (kernels/cpu/elementwise.cpp), in strict device mode so that a host fallback
// fails the test. Inputs mix special values (NaN, +-inf, +-0, halves for round-half-even, large
// magnitudes for overflow) with random ones; layouts are contiguous, sliced with a gap,
// transposed, broadcast, 0-dim, empty and size-1, at sizes that span several 256-thread blocks
// and end in a partial warp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::noncontig;

namespace {

const Device kEmu = Device::emu();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

class CudaElementwise : public cortex::testing::StrictEmuTest {
 protected:
  void SetUp() override {
    K::reset_fallback_stats();
    StrictEmuTest::SetUp();
  }
};

// Values of `shape`: the special values first, then normal values of scale 3 (float64, CPU).
Tensor values(const Shape& shape, uint64_t seed, DType dt = DType::Float64) {
  static const std::vector<double> special = {kNaN, kInf, -kInf, 0.0, -0.0, 0.5, 1.5, 2.5, -2.5, -0.5, 1e-30,
                                              -1000, 1000, 88.0, -90.0, 25.0, -3.0, 3.0, 2.0, -1.0};
  const int64_t n = shape_numel(shape);
  std::vector<double> v = cortex::testing::randn({n}, seed).to_vector<double>();
  for (int64_t i = 0; i < n; ++i) {
    if (i % 3 == 0) v[i] = special[(i / 3) % special.size()];
    else v[i] *= 3;
  }
  return from_vector(v, shape).to(dt);
}

// Integers of `shape` in [-50, 50] with the type's extremes mixed in.
Tensor ints(const Shape& shape, uint64_t seed, DType dt) {
  const int64_t n = shape_numel(shape);
  std::vector<double> u = cortex::testing::randu({n}, seed, -50, 50).to_vector<double>();
  std::vector<int64_t> v(n);
  const int64_t lo = dt == DType::Int32 ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min();
  const int64_t hi = dt == DType::Int32 ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int64_t>::max();
  for (int64_t i = 0; i < n; ++i) v[i] = i % 7 == 0 ? lo : (i % 7 == 1 ? hi : static_cast<int64_t>(std::floor(u[i])));
  Tensor t = from_vector(v, shape);
  return dt == DType::Int32 ? t.to(DType::Int32) : t;
}

// The same values on the emulated device, laid out like `t` is described by `layout`:
// 0 contiguous, 1 sliced with a gap (noncontig), 2 a transposed view of a contiguous buffer.
Tensor on_emu(const Tensor& t, int layout = 0) {
  // Empty tensors are made on emu: Tensor::to(Device) refuses some of them (an empty tensor's
  // strides can fail is_contiguous, e.g. [4, 4, 1] for shape [3, 0, 4]).
  if (t.numel() == 0) return empty(t.shape(), t.dtype(), kEmu);
  Tensor e = t.to(kEmu);
  if (layout == 1) return noncontig(e);
  if (layout == 2 && t.dim() >= 2) return e.transpose(0, 1).contiguous().transpose(0, 1);
  return e;
}

// Equal values (NaN matches NaN; +0 and -0 told apart), same shape and dtype; `got` is on emu.
::testing::AssertionResult exact(const Tensor& got, const Tensor& want) {
  if (got.device() != kEmu) return ::testing::AssertionFailure() << "result on " << got.device().str();
  if (got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "dtype " << dtype_name(got.dtype()) << " vs " << dtype_name(want.dtype());
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(got.shape()) << " vs " << shape_str(want.shape());
  if (want.numel() == 0) return ::testing::AssertionSuccess();  // (and see on_emu)
  const auto a = got.to(Device::cpu()).to(DType::Float64).to_vector<double>();
  const auto b = want.to(DType::Float64).to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    const bool same = (std::isnan(a[i]) && std::isnan(b[i])) ||
                      (a[i] == b[i] && std::signbit(a[i]) == std::signbit(b[i]));
    if (!same) return ::testing::AssertionFailure() << "at flat index " << i << ": " << a[i] << " vs " << b[i];
  }
  return ::testing::AssertionSuccess();
}

// Close values (the transcendental ops: the device's libm against the CPU's Eigen): NaN and inf
// where the CPU has them, elementwise |a - b| <= atol + rtol |b|, and a normalised MSE within the
// brief's 1e-7 for float32.
::testing::AssertionResult close(const Tensor& got, const Tensor& want) {
  if (got.device() != kEmu) return ::testing::AssertionFailure() << "result on " << got.device().str();
  if (got.dtype() != want.dtype() || got.shape() != want.shape())
    return ::testing::AssertionFailure() << "dtype or shape differ";
  if (want.numel() == 0) return ::testing::AssertionSuccess();  // (and see on_emu)
  const bool f32 = want.dtype() == DType::Float32;
  const double rtol = f32 ? 2e-6 : 1e-13, atol = f32 ? 1e-6 : 1e-15;
  const auto a = got.to(Device::cpu()).to(DType::Float64).to_vector<double>();
  const auto b = want.to(DType::Float64).to_vector<double>();
  double err = 0, ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i]) || std::isinf(b[i])) {
      if (!(std::isnan(a[i]) && std::isnan(b[i])) && a[i] != b[i])
        return ::testing::AssertionFailure() << "at flat index " << i << ": " << a[i] << " vs " << b[i];
      continue;
    }
    if (!(std::abs(a[i] - b[i]) <= atol + rtol * std::abs(b[i])))
      return ::testing::AssertionFailure() << "at flat index " << i << ": " << a[i] << " vs " << b[i];
    err += (a[i] - b[i]) * (a[i] - b[i]);
    ref += b[i] * b[i];
  }
  if (ref > 0 && err / ref > 1e-7) return ::testing::AssertionFailure() << "normalised MSE " << err / ref;
  return ::testing::AssertionSuccess();
}

// Output of `shape` on one thread per element: several blocks of 256, the last warp partial.
const Shape kBig = {33, 67};
const std::vector<Shape> kShapes = {{}, {0}, {1}, {37}, {3, 0, 4}, {1, 1, 5}, kBig};

bool is_exact(K::Unary op) {
  using U = K::Unary;
  for (U e : {U::Neg, U::Sqrt, U::Rsqrt, U::Reciprocal, U::Square, U::Abs, U::Sign, U::Relu, U::PowScalar, U::Floor,
              U::Ceil, U::Round})
    if (op == e) return true;
  return false;
}

const std::vector<K::Unary> kUnary = {
    K::Unary::Neg,      K::Unary::Exp,     K::Unary::Log,       K::Unary::Log1p,     K::Unary::Expm1,
    K::Unary::Sqrt,     K::Unary::Rsqrt,   K::Unary::Reciprocal, K::Unary::Square,   K::Unary::Abs,
    K::Unary::Sign,     K::Unary::Sin,     K::Unary::Cos,       K::Unary::Tanh,      K::Unary::Erf,
    K::Unary::Sigmoid,  K::Unary::Relu,    K::Unary::GeluErf,   K::Unary::GeluTanh,  K::Unary::QuickGelu,
    K::Unary::Elu,      K::Unary::Softplus, K::Unary::PowScalar, K::Unary::Floor,    K::Unary::Ceil,
    K::Unary::Round};

// The parameters each op is tried with (elu's alpha, softplus's beta, pow's exponent).
std::vector<double> params(K::Unary op) {
  if (op == K::Unary::Elu) return {1.0, 0.3};
  if (op == K::Unary::Softplus) return {1.0, 2.5, -0.7};
  if (op == K::Unary::PowScalar) return {2.0, 1.0, 3.0, 0.5, -1.5};
  return {0.0};
}

}  // namespace

TEST_F(CudaElementwise, UnaryFloatEveryOpShapeAndLayout) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (K::Unary op : kUnary)
      for (double p : params(op))
        for (const Shape& s : kShapes)
          for (int layout : {0, 1, 2}) {
            if (layout > 0 && s != kBig && s != Shape{37}) continue;
            const Tensor x = values(s, 7, dt);
            const Tensor want = K::unary(op, x, p);
            const Tensor got = K::unary(op, on_emu(x, layout), p);
            const std::string what = std::string(K::unary_name(op)) + " p=" + std::to_string(p) + " " +
                                     dtype_name(dt) + " " + shape_str(s) + " layout " + std::to_string(layout);
            if (is_exact(op))
              EXPECT_TRUE(exact(got, want)) << what;
            else
              EXPECT_TRUE(close(got, want)) << what;
          }
}

TEST_F(CudaElementwise, UnaryIntWrapsLikeTheCpu) {
  for (DType dt : {DType::Int32, DType::Int64})
    for (K::Unary op : {K::Unary::Neg, K::Unary::Abs, K::Unary::Sign})
      for (int layout : {0, 1, 2}) {
        const Tensor x = ints(kBig, 3, dt);
        EXPECT_TRUE(exact(K::unary(op, on_emu(x, layout)), K::unary(op, x))) << K::unary_name(op);
      }
  EXPECT_CORTEX_ERROR(K::unary(K::Unary::Exp, ints({3}, 1, DType::Int32).to(kEmu)), "exp: expected a float32");
}

TEST_F(CudaElementwise, BinaryBroadcastsAndReadsStrides) {
  const std::vector<K::Binary> ops = {K::Binary::Add,     K::Binary::Sub,     K::Binary::Mul,  K::Binary::Div,
                                      K::Binary::Pow,     K::Binary::Maximum, K::Binary::Minimum, K::Binary::Atan2};
  // (a's shape, b's shape): equal, both broadcast, 0-dim, trailing 1, empty.
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {kBig, kBig}, {{4, 1, 33}, {5, 1}}, {{}, {7, 3}}, {{7, 3}, {1}}, {{0, 3}, {1, 3}}, {{1}, {}}};
  for (DType dt : {DType::Float32, DType::Float64})
    for (K::Binary op : ops) {
      for (const auto& [sa, sb] : pairs) {
        const Tensor a = values(sa, 1, dt), b = values(sb, 2, dt);
        const Tensor want = K::binary(op, a, b);
        const Tensor got = K::binary(op, on_emu(a), on_emu(b));
        const std::string what = std::string(K::binary_name(op)) + " " + dtype_name(dt) + " " + shape_str(sa) + " " +
                                 shape_str(sb);
        if (op == K::Binary::Atan2)
          EXPECT_TRUE(close(got, want)) << what;
        else
          EXPECT_TRUE(exact(got, want)) << what;
      }
      // a sliced with a gap, b a transposed view
      const Tensor a = values(kBig, 3, dt), b = values(kBig, 4, dt);
      const Tensor got = K::binary(op, on_emu(a, 1), on_emu(b, 2));
      if (op == K::Binary::Atan2)
        EXPECT_TRUE(close(got, K::binary(op, a, b))) << K::binary_name(op);
      else
        EXPECT_TRUE(exact(got, K::binary(op, a, b))) << K::binary_name(op);
    }
  for (DType dt : {DType::Int32, DType::Int64})
    for (K::Binary op : {K::Binary::Add, K::Binary::Sub, K::Binary::Mul, K::Binary::Maximum, K::Binary::Minimum}) {
      const Tensor a = ints(kBig, 5, dt), b = ints({67}, 6, dt);
      EXPECT_TRUE(exact(K::binary(op, on_emu(a, 2), on_emu(b)), K::binary(op, a, b))) << K::binary_name(op);
    }
}

TEST_F(CudaElementwise, CompareEveryDtype) {
  const std::vector<K::Compare> ops = {K::Compare::Eq, K::Compare::Ne, K::Compare::Lt,
                                       K::Compare::Le, K::Compare::Gt, K::Compare::Ge};
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32, DType::Int64,
                   DType::UInt8}) {
    // Rounded so that equal pairs occur; NaNs stay in the float dtypes.
    Tensor a = values(kBig, 8), b = values({67}, 9);
    if (dt == DType::UInt8 || dt == DType::Int32 || dt == DType::Int64) {
      a = K::clamp(K::unary(K::Unary::Round, a), 0, 200).to(dt);
      b = K::clamp(K::unary(K::Unary::Round, b), 0, 200).to(dt);
    } else {
      a = K::unary(K::Unary::Round, a).to(dt);
      b = K::unary(K::Unary::Round, b).to(dt);
    }
    for (K::Compare op : ops) {
      const Tensor want = K::compare(op, a, b), want_t = K::compare(op, b, a.t().contiguous().t());
        EXPECT_TRUE(exact(K::compare(op, on_emu(a, 1), on_emu(b)), want)) << dtype_name(dt);
      EXPECT_TRUE(exact(K::compare(op, on_emu(b), on_emu(a, 2)), want_t)) << dtype_name(dt);
      EXPECT_TRUE(exact(K::compare(op, on_emu(a.narrow(0, 0, 0)), on_emu(b)), K::compare(op, a.narrow(0, 0, 0), b)));
    }
  }
  // bfloat16 and float16 values that only compare right when widened exactly: subnormals next to the smallest normals, +-0.
  for (DType dt : {DType::BFloat16, DType::Float16}) {
    const Tensor a = from_vector(std::vector<double>{6e-8, -0.0, 1e-7, kInf, kNaN, 65504, 6.104e-5, -6.104e-5}).to(dt);
    const Tensor b = from_vector(std::vector<double>{1.2e-7, 0.0, 1e-7, kInf, kNaN, 65504, 6.0e-5, -6.0e-5}).to(dt);
    for (K::Compare op : ops) EXPECT_TRUE(exact(K::compare(op, on_emu(a), on_emu(b)), K::compare(op, a, b)));
  }
}

TEST_F(CudaElementwise, WhereBroadcastsThreeWaysEveryDtype) {
  const Tensor cond = K::compare(K::Compare::Gt, values({33, 1}, 10), scalar(0.0, DType::Float64));
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32, DType::Int64,
                   DType::UInt8, DType::Bool}) {
    const Tensor a = K::clamp(values({1, 67}, 11), -100, 100).to(dt);
    const Tensor b = K::clamp(values({}, 12), 1, 100).to(dt);
    EXPECT_TRUE(exact(K::where(on_emu(cond), on_emu(a), on_emu(b)), K::where(cond, a, b))) << dtype_name(dt);
    const Tensor c2 = K::compare(K::Compare::Lt, values(kBig, 13), scalar(0.0, DType::Float64));
    const Tensor a2 = K::clamp(values(kBig, 14), -100, 100).to(dt);
    const Tensor b2 = K::clamp(values(kBig, 15), -100, 100).to(dt);
    EXPECT_TRUE(exact(K::where(on_emu(c2, 2), on_emu(a2, 1), on_emu(b2, 2)), K::where(c2, a2, b2))) << dtype_name(dt);
  }
  // NaN payloads move untouched; empty and size-1 outputs.
  const Tensor x = values({37}, 16, DType::Float32);
  EXPECT_TRUE(exact(K::where(on_emu(cond.narrow(0, 0, 1)), on_emu(x), on_emu(x)), K::where(cond.narrow(0, 0, 1), x, x)));
  EXPECT_TRUE(exact(K::where(on_emu(cond.narrow(0, 0, 0)), on_emu(x), on_emu(x)), K::where(cond.narrow(0, 0, 0), x, x)));
}

TEST_F(CudaElementwise, ClampBoundsAndNaN) {
  const std::vector<std::pair<double, double>> bounds = {{-1.5, 2.5}, {kNaN, 0.0}, {0.0, kNaN}, {kNaN, kNaN},
                                                         {-1e300, 1e300}, {3.0, 3.0}};
  for (DType dt : {DType::Float32, DType::Float64})
    for (const auto& [lo, hi] : bounds)
      for (int layout : {0, 1, 2}) {
        const Tensor x = values(kBig, 17, dt);
        EXPECT_TRUE(exact(K::clamp(on_emu(x, layout), lo, hi), K::clamp(x, lo, hi))) << lo << " " << hi;
      }
  for (DType dt : {DType::Int32, DType::Int64})
    for (const auto& [lo, hi] : bounds) {
      const Tensor x = ints(kBig, 18, dt);
      EXPECT_TRUE(exact(K::clamp(on_emu(x, 2), lo, hi), K::clamp(x, lo, hi))) << lo << " " << hi;
    }
  EXPECT_TRUE(exact(K::clamp(on_emu(values({0, 3}, 1)), 0, 1), K::clamp(values({0, 3}, 1), 0, 1)));
}

TEST_F(CudaElementwise, AxpyBroadcasts) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor a = values(kBig, 19, dt), b = values({67}, 20, dt);
    for (double alpha : {0.3, -2.0, 0.0})
      EXPECT_TRUE(close(K::axpy(on_emu(a, 1), alpha, on_emu(b)), K::axpy(a, alpha, b))) << alpha;
    EXPECT_TRUE(close(K::axpy(on_emu(b), 0.7, on_emu(a, 2)), K::axpy(b, 0.7, a)));
    EXPECT_TRUE(close(K::axpy(on_emu(values({}, 1, dt)), 0.7, on_emu(a)), K::axpy(values({}, 1, dt), 0.7, a)));
  }
}

TEST_F(CudaElementwise, LogicalOpsTakeAnyDtypes) {
  const std::vector<DType> dts = {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16,
                                  DType::Int32,   DType::Int64,   DType::UInt8,    DType::Bool};
  auto make = [](DType dt, const Shape& s, uint64_t seed) {
    // zeros (+ and -), NaN and small integers, in every dtype
    Tensor v = K::unary(K::Unary::Round, K::clamp(values(s, seed), -2, 2));
    if (dt == DType::UInt8 || dt == DType::Bool) v = K::unary(K::Unary::Abs, v);
    if (!is_floating(dt)) v = K::where(K::isnan(v), zeros(s, DType::Float64), v);
    return v.to(dt);
  };
  for (DType da : dts) {
    const Tensor a = make(da, kBig, 21);
    const Tensor want_not = K::logical_not(a);
    EXPECT_TRUE(exact(K::logical_not(on_emu(a, 1)), want_not)) << dtype_name(da);
    for (DType db : dts) {
      const Tensor b = make(db, {67}, 22);
        const Tensor want_and = K::logical_and(a, b), want_or = K::logical_or(b, a);
        EXPECT_TRUE(exact(K::logical_and(on_emu(a, 2), on_emu(b)), want_and)) << dtype_name(da) << " " << dtype_name(db);
      EXPECT_TRUE(exact(K::logical_or(on_emu(b), on_emu(a, 1)), want_or)) << dtype_name(da) << " " << dtype_name(db);
    }
  }
  EXPECT_TRUE(exact(K::logical_not(on_emu(zeros({0}))), K::logical_not(zeros({0}))));
}

TEST_F(CudaElementwise, IsnanEveryDtype) {
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int32, DType::Int64,
                   DType::UInt8, DType::Bool}) {
    Tensor x = values(kBig, 23);
    if (!is_floating(dt)) x = K::where(K::isnan(x), zeros(kBig, DType::Float64), K::clamp(x, 0, 100));
    x = x.to(dt);
    const Tensor want = K::isnan(x);
    for (int layout : {0, 1, 2}) EXPECT_TRUE(exact(K::isnan(on_emu(x, layout)), want)) << dtype_name(dt);
  }
}

// One thread per element writes only its own output: the schedule order cannot change a bit.
TEST_F(CudaElementwise, BitIdenticalInEveryScheduleOrder) {
  const Tensor x = on_emu(values(kBig, 24, DType::Float32), 1);
  const Tensor y = on_emu(values({67}, 25, DType::Float32));
  const Tensor c = on_emu(K::compare(K::Compare::Gt, values({33, 1}, 26), scalar(0.0, DType::Float64)));
  auto run = [&] {
    return std::vector<Tensor>{K::unary(K::Unary::GeluErf, x), K::binary(K::Binary::Pow, x, y), K::where(c, x, y),
                               K::axpy(x, 0.3, y), K::compare(K::Compare::Le, x, y)};
  };
  simt::set_schedule({simt::Order::forward, 0});
  const std::vector<Tensor> ref = run();
  for (simt::Schedule s : {simt::Schedule{simt::Order::reverse, 0}, simt::Schedule{simt::Order::random, 12345}}) {
    simt::set_schedule(s);
    const std::vector<Tensor> got = run();
    for (size_t k = 0; k < ref.size(); ++k) {
      const Tensor a = got[k].to(Device::cpu()), b = ref[k].to(Device::cpu());
      ASSERT_EQ(a.numel(), b.numel());
      EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.numel() * dtype_size(a.dtype())), 0) << "result " << k;
    }
  }
}
