// topk and sort of kernels/cuda/sort.cu on the emulated CUDA device, against the CPU kernels
// (kernels/cpu/index.cpp): values and indices bit-identical, over rows shorter than a block, one
// tile exactly (2048), and several tiles merged through global memory (odd tile counts), k = 1,
// k = 1024, k = n and k = 0, both directions, every dim, ties, NaNs (both signs), +-inf, -0 and +0,
// all-equal and all-NaN rows, empty tensors, 0-dim inputs, non-contiguous and transposed views;
// float32, float64, int32 and int64 (with their extremes). The kernels only compare and copy, so
// every result must be the CPU's bit for bit, and identical in forward, reverse and random
// schedule order. Strict device mode is on, so a fallback to the host fails the test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/index.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::bytes_of;

namespace {

const Device kEmu = Device::emu();

class CudaSort : public cortex::testing::StrictEmuTest {};

// got (on emu) has want's shape, dtype and bytes.
::testing::AssertionResult same(const Tensor& got, const Tensor& want, const std::string& what) {
  if (got.defined() != want.defined()) return ::testing::AssertionFailure() << what << ": defined differs";
  if (!want.defined()) return ::testing::AssertionSuccess();
  if (got.device() != kEmu) return ::testing::AssertionFailure() << what << ": result on " << got.device().str();
  if (got.dtype() != want.dtype() || got.shape() != want.shape())
    return ::testing::AssertionFailure() << what << ": " << dtype_name(got.dtype()) << shape_str(got.shape())
                                         << " vs " << dtype_name(want.dtype()) << shape_str(want.shape());
  if (bytes_of(got) != bytes_of(want)) {
    ::testing::AssertionResult r = cortex::testing::allclose(got.to(Device::cpu()).to(DType::Float64),
                                                             want.to(DType::Float64), 0.0, 0.0);
    return ::testing::AssertionFailure() << what << ": not bit-identical to the CPU " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// Values with many ties (normals rounded to halves), and with specials: NaN of both signs, +-inf,
// -0 and +0 for floats; the type's extremes for integers.
Tensor sort_input(const Shape& s, uint64_t seed, DType dt) {
  std::vector<double> v = randn(s, seed).to_vector<double>();
  const bool fl = dt == DType::Float32 || dt == DType::Float64;
  const double inf = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = std::round(v[i] * 2) / 2;
    if (fl) {
      if (i % 13 == 5) v[i] = std::nan("");
      if (i % 37 == 11) v[i] = -std::nan("");
      if (i % 29 == 3) v[i] = inf;
      if (i % 31 == 7) v[i] = -inf;
      if (i % 17 == 2) v[i] = -0.0;
    }
  }
  Tensor t = from_vector(v, s, dt);
  if (dt == DType::Int64 && t.numel() > 40) {  // extremes beyond double's reach
    int64_t* p = t.data<int64_t>();
    p[3] = std::numeric_limits<int64_t>::min();
    p[19] = std::numeric_limits<int64_t>::max();
    p[23] = std::numeric_limits<int64_t>::min();
  }
  if (dt == DType::Int32 && t.numel() > 40) {
    int32_t* p = t.data<int32_t>();
    p[3] = std::numeric_limits<int32_t>::min();
    p[19] = std::numeric_limits<int32_t>::max();
  }
  return t;
}

const DType kDtypes[] = {DType::Float32, DType::Float64, DType::Int32, DType::Int64};
constexpr int64_t kTile = 2048;  // elements one block sorts (kernels/cuda/sort.cu)

// x on emu: contiguous, and non-contiguous (gapped innermost dim) when it has elements.
std::vector<std::pair<std::string, Tensor>> emu_views(const Tensor& x) {
  const Tensor xe = x.to(kEmu);
  if (x.numel() <= 1) return {{"contiguous", xe}};
  return {{"contiguous", xe}, {"gapped", noncontig(xe)}};
}

void check_topk(const Tensor& x, int64_t k, int64_t dim, bool largest, const std::string& what) {
  const K::TopK want = K::topk(x, k, dim, largest);
  for (const auto& [name, xe] : emu_views(x)) {
    const K::TopK got = K::topk(xe, k, dim, largest);
    const std::string w = what + " " + name + " k=" + std::to_string(k) + " dim=" + std::to_string(dim) +
                          (largest ? " largest" : " smallest");
    EXPECT_TRUE(same(got.values, want.values, w + " values"));
    EXPECT_TRUE(same(got.indices, want.indices, w + " indices"));
  }
}

void check_sort(const Tensor& x, int64_t dim, bool desc, const std::string& what) {
  const K::TopK want = K::sort(x, dim, desc);
  const Tensor want_arg = K::argsort(x, dim, desc);
  for (const auto& [name, xe] : emu_views(x)) {
    const std::string w = what + " " + name + " dim=" + std::to_string(dim) + (desc ? " descending" : " ascending");
    const K::TopK got = K::sort(xe, dim, desc);
    EXPECT_TRUE(same(got.values, want.values, w + " values"));
    EXPECT_TRUE(same(got.indices, want.indices, w + " indices"));
    EXPECT_TRUE(same(K::argsort(xe, dim, desc), want_arg, w + " argsort"));
  }
}

}  // namespace

// Rows shorter than a block, one tile exactly, and several tiles (2 and an odd 3 and 5).
TEST_F(CudaSort, TopkMatchesCpuBitForBit) {
  struct C {
    Shape s;
    std::vector<int64_t> ks;
  };
  const std::vector<C> cs = {
      {{5, 37}, {1, 5, 36, 37}},          // short rows
      {{3, 1}, {1}},                      // rows of one
      {{2, 2048}, {1, 1024, 2048}},       // one full tile
      {{2, 4096}, {1024}},                // two tiles
      {{2, 5000}, {1, 1024, 5000}},       // three tiles, the last partial
      {{1, 9001}, {7, 1024}},             // five tiles
  };
  for (DType dt : kDtypes)
    for (const C& c : cs) {
      // Rows of several tiles cost the emulator most: there, one dtype of each key width.
      if (c.s[1] > kTile && dt != DType::Float32 && dt != DType::Int64) continue;
      const Tensor x = sort_input(c.s, 3 + c.s[1], dt);
      for (int64_t k : c.ks)
        for (bool largest : {true, false}) check_topk(x, k, 1, largest, shape_str(c.s) + " " + dtype_name(dt));
    }
}

TEST_F(CudaSort, SortMatchesCpuBitForBit) {
  const std::vector<Shape> ss = {{5, 37}, {3, 1}, {2, 2048}, {2, 5000}, {1, 9001}};
  for (DType dt : kDtypes)
    for (const Shape& s : ss) {
      if (s[1] > kTile && dt != DType::Float64 && dt != DType::Int32) continue;
      const Tensor x = sort_input(s, 5 + s[1], dt);
      for (bool desc : {false, true}) check_sort(x, 1, desc, shape_str(s) + " " + dtype_name(dt));
    }
}

// Every dim of a 3-D tensor (the sorted dim strided, the others around it), negative dims,
// and a transposed view.
TEST_F(CudaSort, AnyDimAndTransposedViews) {
  for (DType dt : {DType::Float32, DType::Int64}) {
    const Tensor x = sort_input({4, 6, 9}, 11, dt);
    for (int64_t d : {0, 1, 2, -1}) {
      for (bool b : {false, true}) {
        check_sort(x, d, b, "3-D " + std::string(dtype_name(dt)));
        check_topk(x, 3, d, b, "3-D " + std::string(dtype_name(dt)));
        check_topk(x, x.size(d < 0 ? d + 3 : d), d, b, "3-D k=n " + std::string(dtype_name(dt)));
      }
    }
    // A long sorted dim that is not the innermost: several tiles read with a stride.
    const Tensor y = sort_input({2500, 3}, 13, dt);
    for (bool b : {false, true}) {
      check_sort(y, 0, b, "[2500, 3] dim 0");
      check_topk(y, 1024, 0, b, "[2500, 3] dim 0");
    }
    const Tensor t = x.transpose(0, 2);  // [9, 6, 4] viewed over [4, 6, 9]
    const Tensor te = x.to(kEmu).transpose(0, 2);
    for (int64_t d : {0, 2}) {
      EXPECT_TRUE(same(K::sort(te, d, true).indices, K::sort(t, d, true).indices, "transposed sort"));
      EXPECT_TRUE(same(K::topk(te, 2, d, false).values, K::topk(t, 2, d, false).values, "transposed topk"));
    }
  }
}

// All ties and all NaNs: the order comes from the indices alone, over several tiles.
TEST_F(CudaSort, AllTiesAndAllNanRowsKeepIndexOrder) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (double v : {1.5, std::nan("")}) {
      const Tensor x = full({1, 4500}, v, dt);
      for (bool b : {false, true}) {
        check_sort(x, 1, b, "constant " + std::to_string(v));
        check_topk(x, 1024, 1, b, "constant " + std::to_string(v));
      }
    }
    // Zeros of both signs alternate: equal, so index order, and each value keeps its sign bit.
    std::vector<double> z(3000);
    for (size_t i = 0; i < z.size(); ++i) z[i] = i % 2 ? -0.0 : 0.0;
    const Tensor zx = from_vector(z, {1, 3000}, dt);
    for (bool b : {false, true}) check_sort(zx, 1, b, "signed zeros");
  }
  // The indices of a constant row sort in index order, checked directly too.
  const K::TopK got = K::sort(full({3000}, 2.0, DType::Float32, kEmu), 0, true);
  const std::vector<int64_t> idx = got.indices.to(Device::cpu()).to_vector<int64_t>();
  for (int64_t i = 0; i < 3000; ++i) ASSERT_EQ(idx[static_cast<size_t>(i)], i);
}

TEST_F(CudaSort, EmptyAndZeroDim) {
  for (const Shape& s : {Shape{0, 5}, Shape{4, 0}, Shape{0}}) {
    const Tensor x = sort_input(s, 1, DType::Float32);
    check_sort(x, -1, false, "empty " + shape_str(s));
    check_topk(x, 0, -1, true, "empty " + shape_str(s));
  }
  check_topk(sort_input({3, 5}, 2, DType::Float64), 0, 1, true, "k = 0");
  check_topk(sort_input({0, 5}, 2, DType::Float64), 3, 1, true, "no rows");
  const Tensor s = scalar(7.0, DType::Float32);
  check_topk(s, 1, -1, true, "0-dim");
  check_sort(s, 0, false, "0-dim");
  EXPECT_EQ(K::topk(s.to(kEmu), 1).values.shape(), Shape{});
}

// The topk result is the CPU's whatever the scan order of the threads.
TEST_F(CudaSort, BitIdenticalAcrossScheduleOrders) {
  const Tensor x = sort_input({2, 5000}, 17, DType::Float32).to(kEmu);
  const Tensor y = sort_input({6, 300}, 19, DType::Float64).to(kEmu);
  using Fn = std::function<std::vector<unsigned char>()>;
  const std::vector<std::pair<std::string, Fn>> fns = {
      {"topk long values", [&] { return bytes_of(K::topk(x, 1024, 1, true).values); }},
      {"topk long indices", [&] { return bytes_of(K::topk(x, 1024, 1, true).indices); }},
      {"sort long indices", [&] { return bytes_of(K::sort(x, 1, false).indices); }},
      {"topk short indices", [&] { return bytes_of(K::topk(y, 5, 1, false).indices); }},
      {"sort short values", [&] { return bytes_of(K::sort(y, 1, true).values); }},
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

TEST_F(CudaSort, RunsOnTheDeviceAndRefusesBadDtypes) {
  K::reset_fallback_stats();
  const Tensor x = sort_input({3, 40}, 23, DType::Float32).to(kEmu);
  (void)K::topk(x, 4);
  (void)K::sort(x);
  (void)K::argsort(x);
  EXPECT_TRUE(K::fallback_stats().empty());
  for (const K::OpInfo& op : K::op_list())
    if (std::string(op.name) == "topk" || std::string(op.name) == "sort") {
      EXPECT_TRUE(op.emu) << op.name;
    }
  EXPECT_THROW(K::topk(x.to(DType::Float16), 1), Error);
}
