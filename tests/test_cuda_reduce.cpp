// The reduction kernels of kernels/cuda/reduce.cu on the emulated CUDA device, against the CPU
// kernels (kernels/cpu/reduce.cpp): every Reduce op, argmax/argmin, var/std and norm, over odd
// shapes, any set of axes, keepdim, strided/transposed/broadcast views, empty and size-1 dims,
// rows that take a warp, a block or two passes, every dtype the CPU accepts; and bit-identical
// results in forward, reverse and random schedule order. Strict device mode is on, so a fallback
// to the host fails the test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/reduce.h"
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

class CudaReduce : public cortex::testing::StrictEmuTest {};

using Fn = std::function<Tensor(const Tensor&)>;

// The op on emu equals the op on the CPU: same shape and dtype, values within the dtype's
// tolerance (exact for integer and bool results).
::testing::AssertionResult matches(const Fn& f, const Tensor& x, const std::string& what) {
  const Tensor want = f(x);
  // An empty x is made on emu directly: to(Device) and full() refuse some empty shapes ((3, 0) has
  // strides that is_contiguous rejects), a tensor-layer matter outside these kernels.
  const Tensor xe = x.numel() == 0 ? empty(x.shape(), x.dtype(), kEmu) : x.to(kEmu);
  const Tensor got = f(xe);
  if (got.device() != kEmu) return ::testing::AssertionFailure() << what << ": result on " << got.device().str();
  if (got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << what << ": dtype " << dtype_name(got.dtype()) << " vs "
                                         << dtype_name(want.dtype());
  if (got.numel() == 0) {
    if (got.shape() == want.shape()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << what << ": shape " << shape_str(got.shape()) << " vs " << shape_str(want.shape());
  }
  const Tensor g = got.to(Device::cpu());
  const bool fl = want.dtype() == DType::Float32 || want.dtype() == DType::Float64;
  const double rtol = !fl ? 0.0 : want.dtype() == DType::Float32 ? 2e-6 : 1e-12;
  const double atol = !fl ? 0.0 : want.dtype() == DType::Float32 ? 1e-6 : 1e-13;
  ::testing::AssertionResult r = allclose(g, want, rtol, atol);
  if (!r) r << " (" << what << ", x " << shape_str(x.shape()) << " " << dtype_name(x.dtype()) << ")";
  return r;
}

// The op on emu gives the same bytes in forward, reverse and random schedule order.
::testing::AssertionResult deterministic(const Fn& f, const Tensor& x, const std::string& what) {
  const Tensor xe = x.to(kEmu);
  cortex::simt::set_schedule({cortex::simt::Order::forward, 0});
  const auto ref = bytes_of(f(xe));
  const cortex::simt::Schedule others[] = {{cortex::simt::Order::reverse, 0}, {cortex::simt::Order::random, 7}};
  for (const auto& s : others) {
    cortex::simt::set_schedule(s);
    if (bytes_of(f(xe)) != ref) {
      cortex::simt::clear_schedule();
      return ::testing::AssertionFailure() << what << ": results differ across schedule orders";
    }
  }
  cortex::simt::clear_schedule();
  return ::testing::AssertionSuccess();
}

// a * t + b elementwise (on the host, in float64), in t's dtype.
Tensor affine(const Tensor& t, double a, double b) {
  std::vector<double> v = t.to_vector<double>();
  for (double& e : v) e = a * e + b;
  return from_vector(v, t.shape(), t.dtype());
}

Fn red(K::Reduce op, Shape dims, bool keepdim = false) {
  return [=](const Tensor& t) { return K::reduce(op, t, dims, keepdim); };
}

const K::Reduce kFloatOps[] = {K::Reduce::Sum, K::Reduce::Mean, K::Reduce::Max, K::Reduce::Min,
                               K::Reduce::Prod, K::Reduce::LogSumExp, K::Reduce::Any, K::Reduce::All};

// Views of x with the same values: itself, a transposed copy viewed back, a gapped layout.
std::vector<std::pair<std::string, Tensor>> views(const Tensor& x) {
  std::vector<std::pair<std::string, Tensor>> v{{"contiguous", x}};
  if (x.dim() >= 2) v.emplace_back("transposed", x.transpose(0, x.dim() - 1).contiguous().transpose(0, x.dim() - 1));
  if (x.dim() >= 1) v.emplace_back("gapped", noncontig(x));
  return v;
}

}  // namespace

TEST_F(CudaReduce, EveryOpOverAxesAndViews) {
  struct Case {
    Shape shape;
    std::vector<Shape> dims;
  };
  const std::vector<Case> cases = {
      {{37}, {{}, {0}}},
      {{5, 70}, {{}, {0}, {1}, {-1}}},
      {{3, 4, 33}, {{0}, {1}, {2}, {0, 2}, {1, 2}}},
      {{2, 1, 45, 3}, {{1}, {2}, {0, 3}, {1, 2}, {0, 1, 2, 3}}},
      {{}, {{}, {0}}},
  };
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Case& c : cases) {
      const Tensor x = randn(c.shape, 11, dt);
      // Products of many normals under- or overflow; keep the factors near 1.
      const auto vs = views(x), vp = views(affine(x, 0.25, 1.0));
      for (size_t i = 0; i < vs.size(); ++i)
        for (const Shape& dims : c.dims)
          for (bool keepdim : {false, true})
            for (K::Reduce op : kFloatOps) {
              const Tensor& in = op == K::Reduce::Prod ? vp[i].second : vs[i].second;
              EXPECT_TRUE(matches(red(op, dims, keepdim), in,
                                  std::string(K::reduce_name(op)) + " " + vs[i].first + " dims " + shape_str(dims)));
            }
    }
  }
}

TEST_F(CudaReduce, BroadcastAndSlicedViews) {
  const Tensor x = randn({6, 1, 50}, 3, DType::Float32);
  const Tensor b = x.expand({6, 7, 50});  // stride 0 along dim 1
  const Tensor s = randn({9, 80}, 4, DType::Float32).slice(1, 3, 75, 2).slice(0, 1, 9, 3);
  for (K::Reduce op : {K::Reduce::Sum, K::Reduce::Max, K::Reduce::LogSumExp, K::Reduce::Any}) {
    for (const Shape& dims : std::vector<Shape>{{1}, {0, 1}, {2}, {}})
      EXPECT_TRUE(matches(red(op, dims), b, std::string("broadcast ") + K::reduce_name(op)));
    for (const Shape& dims : std::vector<Shape>{{0}, {1}, {}})
      EXPECT_TRUE(matches(red(op, dims), s, std::string("sliced ") + K::reduce_name(op)));
  }
}

// Rows long enough for a block (K > 1024), for two passes over rows (K >= 32768, few outputs) and
// over columns (the kept dim inner, K >= 512), and many outputs in partial warps and blocks.
TEST_F(CudaReduce, LongRowsBlocksAndTwoPasses) {
  const Tensor row = randn({2, 40000}, 5, DType::Float32);
  const Tensor block = randn({3, 1500}, 6, DType::Float64);
  const Tensor cols = randn({1300, 5}, 7, DType::Float32);
  const Tensor many = randn({1000, 7}, 8, DType::Float32);
  for (K::Reduce op : {K::Reduce::Sum, K::Reduce::Mean, K::Reduce::Max, K::Reduce::Min, K::Reduce::LogSumExp}) {
    const std::string n = K::reduce_name(op);
    EXPECT_TRUE(matches(red(op, {1}), row, n + " two-pass rows"));
    EXPECT_TRUE(matches(red(op, {}), row, n + " two-pass, all"));
    EXPECT_TRUE(matches(red(op, {1}), block, n + " block rows"));
    EXPECT_TRUE(matches(red(op, {0}), cols, n + " two-pass cols"));
    EXPECT_TRUE(matches(red(op, {1}), many, n + " many warps"));
    EXPECT_TRUE(matches(red(op, {0}), many, n + " cols"));
  }
  EXPECT_TRUE(matches([](const Tensor& t) { return K::argmax(t, 1); }, row, "argmax two-pass"));
  EXPECT_TRUE(matches([](const Tensor& t) { return K::argmin(t, 0); }, cols, "argmin two-pass cols"));
  EXPECT_TRUE(matches([](const Tensor& t) { return K::var(t, {0}, 1); }, cols, "var two-pass cols"));
  EXPECT_TRUE(matches([](const Tensor& t) { return K::norm(t, 2.0, {1}); }, row, "norm two-pass"));
}

TEST_F(CudaReduce, BitIdenticalAcrossScheduleOrders) {
  const Tensor row = randn({2, 40000}, 5, DType::Float32);
  const Tensor block = randn({3, 1500}, 6, DType::Float32);
  const Tensor cols = randn({1300, 5}, 7, DType::Float64);
  const Tensor small = randn({9, 37}, 8, DType::Float32);
  for (const Tensor& x : {row, block, cols, small}) {
    for (K::Reduce op : {K::Reduce::Sum, K::Reduce::Max, K::Reduce::LogSumExp})
      for (const Shape& dims : std::vector<Shape>{{0}, {1}, {}})
        EXPECT_TRUE(deterministic(red(op, dims), x, K::reduce_name(op)));
    EXPECT_TRUE(deterministic([](const Tensor& t) { return K::argmax(t, 1); }, x, "argmax"));
    EXPECT_TRUE(deterministic([](const Tensor& t) { return K::var(t, {1}, 1); }, x, "var"));
    EXPECT_TRUE(deterministic([](const Tensor& t) { return K::norm(t, 3.0, {0}); }, x, "norm"));
  }
}

TEST_F(CudaReduce, IntegerBoolAndHalfInputs) {
  const Tensor base = randu({4, 3, 37}, 9, -50, 50, DType::Float64);
  for (DType dt : {DType::Int32, DType::Int64, DType::UInt8}) {
    const Tensor x = (dt == DType::UInt8 ? affine(base, 1.0, 50.0) : base).to(dt);
    for (const auto& [vname, v] : views(x))
      for (const Shape& dims : std::vector<Shape>{{}, {0}, {2}, {0, 2}})
        for (K::Reduce op : {K::Reduce::Sum, K::Reduce::Prod, K::Reduce::Max, K::Reduce::Min, K::Reduce::Any,
                             K::Reduce::All})
          EXPECT_TRUE(matches(red(op, dims, true), v, std::string(K::reduce_name(op)) + " " + vname));
    for (int64_t d : {0, 1, 2, -1}) {
      EXPECT_TRUE(matches([d](const Tensor& t) { return K::argmax(t, d); }, x, "argmax int"));
      EXPECT_TRUE(matches([d](const Tensor& t) { return K::argmin(t, d, true); }, x, "argmin int"));
    }
  }
  // int64 sums and products wrap as the CPU's.
  const Tensor big = full({40}, 3.0e17, DType::Float64).to(DType::Int64);
  EXPECT_TRUE(matches(red(K::Reduce::Sum, {}), big, "wrapping sum"));
  EXPECT_TRUE(matches(red(K::Reduce::Prod, {}), big, "wrapping prod"));
  // bool: sums count, any/all.
  const Tensor mask = affine(base, 1.0, -10.0).to(DType::Int32).to(DType::Bool);
  for (K::Reduce op : {K::Reduce::Sum, K::Reduce::Prod, K::Reduce::Any, K::Reduce::All})
    for (const Shape& dims : std::vector<Shape>{{}, {1}, {0, 2}})
      EXPECT_TRUE(matches(red(op, dims), mask, std::string("bool ") + K::reduce_name(op)));
  // bfloat16 and float16: any/all (the only reductions the entry accepts), with -0 false and NaN true.
  Tensor h = randn({5, 40}, 10, DType::Float32);
  h.narrow(0, 1, 1).fill_(0.0);
  h.narrow(0, 2, 1).fill_(-0.0);
  h.narrow(0, 3, 1).fill_(0.0);
  h.narrow(0, 3, 1).narrow(1, 7, 1).fill_(std::nan(""));
  for (DType dt : {DType::BFloat16, DType::Float16})
    for (K::Reduce op : {K::Reduce::Any, K::Reduce::All})
      for (const Shape& dims : std::vector<Shape>{{}, {0}, {1}})
        EXPECT_TRUE(matches(red(op, dims), h.to(dt), std::string("half ") + K::reduce_name(op)));
}

TEST_F(CudaReduce, EmptyAndSizeOneDims) {
  for (DType dt : {DType::Float32, DType::Int64, DType::Bool}) {
    const Tensor e = empty({0, 5}, dt);
    for (K::Reduce op : kFloatOps) {
      const bool fl_only = op == K::Reduce::Mean || op == K::Reduce::LogSumExp;
      const bool num_only = op == K::Reduce::Max || op == K::Reduce::Min;
      if ((fl_only && dt != DType::Float32) || (num_only && dt == DType::Bool)) continue;
      // Max/Min refuse a reduction over the empty axis; over the other axis the result is empty.
      if (!num_only) {
        EXPECT_TRUE(matches(red(op, {0}, true), e, std::string("empty ") + K::reduce_name(op)));
      }
      EXPECT_TRUE(matches(red(op, {1}), e, std::string("empty kept ") + K::reduce_name(op)));
    }
  }
  const Tensor e = empty({3, 0}, DType::Float64);
  EXPECT_TRUE(matches([](const Tensor& t) { return K::var(t, {1}, 1); }, e, "var empty"));
  EXPECT_TRUE(matches([](const Tensor& t) { return K::norm(t, 2.0, {1}, true); }, e, "norm empty"));
  EXPECT_TRUE(matches([](const Tensor& t) { return K::argmax(t, 0); }, e, "argmax empty kept"));
  const Tensor e3 = empty({2, 0, 4}, DType::Float32);
  EXPECT_TRUE(matches(red(K::Reduce::Sum, {2}), e3, "sum to an empty output"));
  const Tensor one = randn({1, 1, 1}, 12, DType::Float32);
  for (K::Reduce op : kFloatOps) EXPECT_TRUE(matches(red(op, {1}, true), one, "size-1"));
  EXPECT_TRUE(matches([](const Tensor& t) { return K::argmin(t, 2); }, one, "argmin size-1"));
  const Tensor scalar = full({}, 2.5, DType::Float64);
  EXPECT_TRUE(matches([](const Tensor& t) { return K::argmax(t, 0); }, scalar, "argmax 0-dim"));
  EXPECT_TRUE(matches([](const Tensor& t) { return K::var(t, {}, 0); }, scalar, "var 0-dim"));
}

TEST_F(CudaReduce, NanAndInfinity) {
  Tensor x = randn({6, 40}, 13, DType::Float32);
  x.narrow(0, 1, 1).narrow(1, 5, 1).fill_(std::nan(""));
  x.narrow(0, 2, 1).narrow(1, 9, 1).fill_(std::numeric_limits<double>::infinity());
  x.narrow(0, 3, 1).fill_(-std::numeric_limits<double>::infinity());
  x.narrow(0, 4, 1).narrow(1, 30, 1).fill_(-std::numeric_limits<double>::infinity());
  x.narrow(0, 5, 1).fill_(std::nan(""));
  for (K::Reduce op : {K::Reduce::Sum, K::Reduce::Max, K::Reduce::Min, K::Reduce::LogSumExp, K::Reduce::Any,
                       K::Reduce::All})
    for (const Shape& dims : std::vector<Shape>{{1}, {0}})
      EXPECT_TRUE(matches(red(op, dims), x, std::string("nan/inf ") + K::reduce_name(op)));
  for (int64_t d : {0, 1}) {
    EXPECT_TRUE(matches([d](const Tensor& t) { return K::argmax(t, d); }, x, "argmax nan"));
    EXPECT_TRUE(matches([d](const Tensor& t) { return K::argmin(t, d); }, x, "argmin nan"));
  }
  EXPECT_TRUE(matches([](const Tensor& t) { return K::norm(t, INFINITY, {1}); }, x, "inf-norm nan"));
}

TEST_F(CudaReduce, ArgmaxTiesGoToTheFirstIndex) {
  // Few distinct values: many ties, in rows of a warp, of a block and in columns.
  for (DType dt : {DType::Float32, DType::Float64, DType::Int32}) {
    for (const Shape& shape : std::vector<Shape>{{7, 45}, {3, 1200}, {600, 4}}) {
      const Tensor x = randu(shape, 14, 0, 4, DType::Float64).to(DType::Int32).to(dt);
      for (const auto& [vname, v] : views(x))
        for (int64_t d : {0, 1})
          for (bool keepdim : {false, true}) {
            EXPECT_TRUE(matches([=](const Tensor& t) { return K::argmax(t, d, keepdim); }, v, "argmax ties " + vname));
            EXPECT_TRUE(matches([=](const Tensor& t) { return K::argmin(t, d, keepdim); }, v, "argmin ties " + vname));
          }
    }
  }
}

TEST_F(CudaReduce, VarStdAndNorms) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    // An offset mean for var: the two-pass variance keeps its accuracy.
    const Tensor x = randn({4, 5, 37}, 15, dt);
    const auto vs = views(x), vo = views(affine(x, 1.0, 100.0));
    for (size_t i = 0; i < vs.size(); ++i)
      for (const Shape& dims : std::vector<Shape>{{}, {0}, {2}, {0, 2}, {1, 2}})
        for (bool keepdim : {false, true}) {
          const std::string vname = vs[i].first;
          for (int64_t corr : {0, 1, 200}) {
            EXPECT_TRUE(matches([=](const Tensor& t) { return K::var(t, dims, corr, keepdim); }, vo[i].second,
                                "var " + vname));
            EXPECT_TRUE(matches([=](const Tensor& t) { return K::std(t, dims, corr, keepdim); }, vo[i].second,
                                "std " + vname));
          }
          for (double p : {1.0, 2.0, 3.0, 0.5, static_cast<double>(INFINITY)})
            EXPECT_TRUE(matches([=](const Tensor& t) { return K::norm(t, p, dims, keepdim); }, vs[i].second,
                                "norm p=" + std::to_string(p) + " " + vname));
        }
  }
}
