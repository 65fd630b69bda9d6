// The index kernels of kernels/cuda/index.cu on the emulated CUDA device, against the CPU kernels
// (kernels/cpu/index.cpp), bit for bit: concat, gather, index_select, flip, tril, triu, cumsum and
// index_add and scatter_add over odd shapes, every dim, transposed and gapped views of inputs and index tensors,
// int32 and int64 indices, repeated indices, empty and size-1 dims, several blocks, every dtype
// the CPU accepts; and identical bytes in forward, reverse and random schedule order. Strict
// device mode is on, so a fallback to the host fails the test.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
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

class CudaIndex : public cortex::testing::StrictEmuTest {};

// The op receives its inputs on one device and makes its views of them there.
using Op = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor on(const Tensor& t, Device d) { return t.numel() == 0 ? empty(t.shape(), t.dtype(), d) : t.to(d); }

// The op on emu gives the CPU's bytes, in forward, reverse and random schedule order.
::testing::AssertionResult same(const Op& f, const std::vector<Tensor>& xs, const std::string& what) {
  const Tensor want = f(xs);
  std::vector<Tensor> es;
  for (const Tensor& x : xs) es.push_back(on(x, kEmu));
  const cortex::simt::Schedule orders[] = {
      {cortex::simt::Order::forward, 0}, {cortex::simt::Order::reverse, 0}, {cortex::simt::Order::random, 7}};
  for (const auto& s : orders) {
    cortex::simt::set_schedule(s);
    const Tensor got = f(es);
    cortex::simt::clear_schedule();
    if (got.device() != kEmu) return ::testing::AssertionFailure() << what << ": result on " << got.device().str();
    if (got.dtype() != want.dtype() || got.shape() != want.shape())
      return ::testing::AssertionFailure() << what << ": " << dtype_name(got.dtype()) << shape_str(got.shape())
                                           << " vs " << dtype_name(want.dtype()) << shape_str(want.shape());
    if (bytes_of(got) != bytes_of(want))
      return ::testing::AssertionFailure() << what << ": bytes differ from the CPU's (order "
                                           << static_cast<int>(s.order) << ")";
  }
  return ::testing::AssertionSuccess();
}

// Values of dt: normal values converted (bool: nonzero; integers: scaled first).
Tensor values(const Shape& s, uint64_t seed, DType dt) {
  std::vector<double> v = randn(s, seed).to_vector<double>();
  if (dt == DType::Int32 || dt == DType::Int64 || dt == DType::UInt8)
    for (double& e : v) e = static_cast<double>(static_cast<int64_t>(e * 40.0 + 50.0));
  return from_vector(v, s, DType::Float64).to(dt);
}

Tensor indices(int64_t lo, int64_t hi, const Shape& s, uint64_t seed, DType dt) {
  Generator g(seed);
  return randint(lo, hi, s, g, dt);
}

// The three layouts of one tensor's values, made on its device.
Tensor view_of(const Tensor& t, int v) {
  if (v == 1 && t.dim() >= 2) return t.transpose(0, t.dim() - 1).contiguous().transpose(0, t.dim() - 1);
  if (v == 2 && t.dim() >= 1 && t.numel() > 0) return noncontig(t);
  return t;
}

const DType kAll[] = {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16,
                      DType::Int32,   DType::Int64,   DType::UInt8,    DType::Bool};
const DType kNum[] = {DType::Float32, DType::Float64, DType::Int32, DType::Int64};
const Shape kShapes[] = {{7}, {3, 5}, {2, 1, 9}, {4, 3, 2, 5}, {300, 7}, {0, 4}, {3, 0, 2}};

}  // namespace

TEST_F(CudaIndex, ConcatEveryDimViewAndDtype) {
  for (DType dt : kAll)
    for (const Shape& s : kShapes)
      for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
        Shape s2 = s, s3 = s;
        s2[d] = 2;
        s3[d] = 0;
        for (int v = 0; v < 3; ++v) {
          const Op f = [&](const std::vector<Tensor>& t) {
            return K::concat({view_of(t[0], v), t[1], view_of(t[2], 2 - v), t[3]}, d - static_cast<int64_t>(s.size()));
          };
          EXPECT_TRUE(same(f, {values(s, 1, dt), values(s2, 2, dt), values(s, 3, dt), values(s3, 4, dt)},
                           "concat " + shape_str(s) + " dim " + std::to_string(d) + " " + dtype_name(dt) + " view " +
                               std::to_string(v)));
        }
      }
}

TEST_F(CudaIndex, GatherEveryDimViewsAndIndexDtypes) {
  for (DType dt : kAll)
    for (const Shape& s : kShapes)
      for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
        if (s[d] == 0) continue;
        Shape is = s;  // an index smaller in the other dims, longer along d
        for (size_t k = 0; k < s.size(); ++k) is[k] = static_cast<int64_t>(k) == d ? s[d] + 3 : (s[k] + 1) / 2;
        for (DType it : {DType::Int64, DType::Int32})
          for (int v = 0; v < 3; ++v) {
            const Op f = [&](const std::vector<Tensor>& t) { return K::gather(view_of(t[0], v), d, view_of(t[1], 2 - v)); };
            EXPECT_TRUE(same(f, {values(s, 5, dt), indices(0, s[d], is, 6, it)},
                             "gather " + shape_str(s) + " dim " + std::to_string(d) + " " + dtype_name(dt)));
          }
      }
}

TEST_F(CudaIndex, IndexSelectRepeatsViewsAndEmptyIndex) {
  for (DType dt : kAll)
    for (const Shape& s : kShapes)
      for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
        if (s[d] == 0) continue;
        for (DType it : {DType::Int64, DType::Int32})
          for (int64_t m : {int64_t{0}, int64_t{1}, s[d] * 2 + 1})
            for (int v = 0; v < 3; ++v) {
              // a strided index: every other element of a longer one
              const Op f = [&](const std::vector<Tensor>& t) {
                return K::index_select(view_of(t[0], v), d, v == 2 ? t[1].slice(0, 0, 2 * m, 2) : t[1].slice(0, 0, m));
              };
              EXPECT_TRUE(same(f, {values(s, 7, dt), indices(0, s[d], {2 * m + 1}, 8, it)},
                               "index_select " + shape_str(s) + " dim " + std::to_string(d) + " m " + std::to_string(m)));
            }
      }
}

TEST_F(CudaIndex, FlipEveryDimAndView) {
  for (DType dt : kAll)
    for (const Shape& s : kShapes)
      for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d)
        for (int v = 0; v < 3; ++v) {
          const Op f = [&](const std::vector<Tensor>& t) { return K::flip(view_of(t[0], v), d); };
          EXPECT_TRUE(same(f, {values(s, 9, dt)}, "flip " + shape_str(s) + " dim " + std::to_string(d)));
        }
  const Op f0 = [](const std::vector<Tensor>& t) { return K::flip(t[0], 0); };
  EXPECT_TRUE(same(f0, {values({}, 10, DType::Float32)}, "flip 0-dim"));
}

TEST_F(CudaIndex, TrilTriuDiagonalsBatchesAndViews) {
  const Shape shapes[] = {{1, 1}, {5, 3}, {3, 7}, {2, 4, 4}, {3, 2, 33, 17}, {0, 3}, {2, 3, 0}};
  for (DType dt : kAll)
    for (const Shape& s : shapes)
      for (int64_t k : {int64_t{-100}, int64_t{-2}, int64_t{0}, int64_t{1}, int64_t{4}, int64_t{1} << 62})
        for (int v = 0; v < 3; ++v) {
          const Op lo = [&](const std::vector<Tensor>& t) { return K::tril(view_of(t[0], v), k); };
          const Op up = [&](const std::vector<Tensor>& t) { return K::triu(view_of(t[0], v), k); };
          const Tensor x = values(s, 11, dt);
          EXPECT_TRUE(same(lo, {x}, "tril " + shape_str(s) + " k " + std::to_string(k)));
          EXPECT_TRUE(same(up, {x}, "triu " + shape_str(s) + " k " + std::to_string(k)));
        }
}

TEST_F(CudaIndex, CumsumEveryDimViewAndDtype) {
  for (DType dt : kNum)
    for (const Shape& s : kShapes)
      for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d)
        for (int v = 0; v < 3; ++v) {
          const Op f = [&](const std::vector<Tensor>& t) { return K::cumsum(view_of(t[0], v), d); };
          EXPECT_TRUE(same(f, {values(s, 12, dt)}, "cumsum " + shape_str(s) + " dim " + std::to_string(d)));
        }
  // a line longer than a block, many lines (several blocks), and a 0-dim input
  const Op f = [](const std::vector<Tensor>& t) { return K::cumsum(t[0], -1); };
  EXPECT_TRUE(same(f, {values({3, 1000}, 13, DType::Float32)}, "cumsum long rows"));
  EXPECT_TRUE(same(f, {values({700, 3}, 14, DType::Float32)}, "cumsum many rows"));
  EXPECT_TRUE(same(f, {values({}, 15, DType::Float64)}, "cumsum 0-dim"));
  // int64 wraps around as the CPU's does
  EXPECT_TRUE(same(f, {from_vector<int64_t>({INT64_MAX, 1, 5}, {3}, DType::Int64)}, "cumsum wrap"));
  EXPECT_THROW(K::cumsum(empty({3}, DType::Bool, kEmu), 0), Error);
}

TEST_F(CudaIndex, IndexAddRepeatedIndicesViewsAndDtypes) {
  for (DType dt : kNum)
    for (const Shape& s : kShapes)
      for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
        if (s[d] == 0) continue;
        for (DType it : {DType::Int64, DType::Int32})
          for (int64_t m : {int64_t{0}, int64_t{1}, s[d] * 3 + 2}) {
            Shape ss = s;
            ss[d] = m;
            for (int v = 0; v < 3; ++v) {
              const Op f = [&](const std::vector<Tensor>& t) {
                return K::index_add(view_of(t[0], v), d, v == 1 ? t[1].slice(0, 0, 2 * m, 2) : t[1].slice(0, 0, m),
                                    view_of(t[2], 2 - v));
              };
              EXPECT_TRUE(same(f, {values(s, 16, dt), indices(0, s[d], {2 * m + 1}, 17, it), values(ss, 18, dt)},
                               "index_add " + shape_str(s) + " dim " + std::to_string(d) + " m " + std::to_string(m) +
                                   " " + dtype_name(dt)));
            }
          }
      }
}

TEST_F(CudaIndex, ScatterAddRepeatedIndicesSmallerIndexAndViews) {
  for (DType dt : kNum)
    for (const Shape& s : kShapes)
      for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d) {
        if (s[d] == 0) continue;
        Shape is = s, ss = s;  // index smaller in the other dims and longer along d; src larger still
        for (size_t k = 0; k < s.size(); ++k) {
          is[k] = static_cast<int64_t>(k) == d ? s[d] * 2 + 1 : (s[k] + 1) / 2;
          ss[k] = is[k] + 1;
        }
        for (DType it : {DType::Int64, DType::Int32})
          for (int v = 0; v < 3; ++v) {
            const Op f = [&](const std::vector<Tensor>& t) {
              return K::scatter_add(view_of(t[0], v), d, view_of(t[1], 2 - v), view_of(t[2], v));
            };
            EXPECT_TRUE(same(f, {values(s, 21, dt), indices(0, s[d], is, 22, it), values(ss, 23, dt)},
                             "scatter_add " + shape_str(s) + " dim " + std::to_string(d) + " " + dtype_name(dt)));
          }
      }
  // an empty index along dim leaves x as it is; a 0-dim x
  const Op f = [](const std::vector<Tensor>& t) { return K::scatter_add(t[0], 0, t[1], t[2]); };
  EXPECT_TRUE(same(f, {values({5, 3}, 24, DType::Float32), empty({0, 3}, DType::Int64), values({0, 3}, 25, DType::Float32)},
                   "scatter_add empty index"));
  EXPECT_TRUE(same(f, {values({}, 26, DType::Float64), from_vector<int64_t>({0}, {}, DType::Int64), values({}, 27, DType::Float64)},
                   "scatter_add 0-dim"));
}

TEST_F(CudaIndex, BadIndicesThrowTheCpuMessage) {
  const Tensor x = values({4, 5}, 19, DType::Float32);
  const Tensor bad = from_vector<int64_t>({1, 7, -1}, {3}, DType::Int64);
  const Tensor bad2 = from_vector<int64_t>({0, 1, 2, -3}, {1, 4}, DType::Int64);
  auto msg = [](const std::function<void()>& g) {
    try {
      g();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const Tensor xe = x.to(kEmu), be = bad.to(kEmu), b2 = bad2.to(kEmu);
  const Tensor src = values({4, 3}, 20, DType::Float32);
  EXPECT_EQ(msg([&] { K::index_select(x, 0, bad); }), msg([&] { K::index_select(xe, 0, be); }));
  EXPECT_EQ(msg([&] { K::index_add(x, 1, bad, src); }), msg([&] { K::index_add(xe, 1, be, src.to(kEmu)); }));
  EXPECT_EQ(msg([&] { K::gather(x, 1, bad2); }), msg([&] { K::gather(xe, 1, b2); }));
  EXPECT_EQ(msg([&] { K::scatter_add(x, 1, bad2, src); }), msg([&] { K::scatter_add(xe, 1, b2, src.to(kEmu)); }));
  EXPECT_NE(msg([&] { K::gather(xe, 1, b2); }), "no error");
}
