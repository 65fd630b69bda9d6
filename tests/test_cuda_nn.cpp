// The softmax and normalisation kernels of kernels/cuda/nn.cu on the emulated CUDA device, against
// the CPU kernels (kernels/cpu/nn.cpp): softmax and log_softmax over any dim, layer_norm (y, mean,
// rstd) and inference batch_norm, on odd shapes, strided/transposed/broadcast views, empty and
// size-1 dims, rows that take a warp, a block or one thread, masked (-inf) and non-finite rows;
// and bit-identical results in forward, reverse and random schedule order. Strict device mode is
// on, so a fallback to the host fails the test.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/nn.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::allclose;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::bytes_of;

namespace {

const Device kEmu = Device::emu();

class CudaNn : public cortex::testing::StrictEmuTest {};

// Tensors in, tensors out: every result on emu equals the CPU's within the dtype's tolerance.
using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

Tensor to_emu(const Tensor& t) {
  if (!t.defined()) return t;
  // to(Device) refuses some empty shapes (a tensor-layer matter): make those on emu directly.
  return t.numel() == 0 ? empty(t.shape(), t.dtype(), kEmu) : t.to(kEmu);
}

::testing::AssertionResult matches(const Fn& f, const std::vector<Tensor>& in, const std::string& what) {
  const std::vector<Tensor> want = f(in);
  std::vector<Tensor> ine;
  for (const Tensor& t : in) ine.push_back(to_emu(t));
  const std::vector<Tensor> got = f(ine);
  for (size_t i = 0; i < want.size(); ++i) {
    if (got[i].device() != kEmu) return ::testing::AssertionFailure() << what << ": result on " << got[i].device().str();
    if (got[i].shape() != want[i].shape() || got[i].dtype() != want[i].dtype())
      return ::testing::AssertionFailure() << what << ": result " << i << " has shape " << shape_str(got[i].shape());
    if (got[i].numel() == 0) continue;
    const bool f32 = want[i].dtype() == DType::Float32;
    ::testing::AssertionResult r = allclose(got[i].to(Device::cpu()), want[i], f32 ? 2e-6 : 1e-12, f32 ? 2e-6 : 1e-13);
    if (!r) return r << " (" << what << ", result " << i << ", x " << shape_str(in[0].shape()) << ")";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult deterministic(const Fn& f, const std::vector<Tensor>& in, const std::string& what) {
  std::vector<Tensor> ine;
  for (const Tensor& t : in) ine.push_back(to_emu(t));
  auto run = [&](cortex::simt::Schedule s) {
    cortex::simt::set_schedule(s);
    std::vector<std::vector<unsigned char>> out;
    for (const Tensor& t : f(ine)) out.push_back(bytes_of(t));
    return out;
  };
  const auto ref = run({cortex::simt::Order::forward, 0});
  const bool same = run({cortex::simt::Order::reverse, 0}) == ref && run({cortex::simt::Order::random, 3}) == ref;
  cortex::simt::clear_schedule();
  if (!same) return ::testing::AssertionFailure() << what << ": results differ across schedule orders";
  return ::testing::AssertionSuccess();
}

Fn softmax_fn(int64_t dim, bool log) {
  return [=](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{log ? K::log_softmax(t[0], dim) : K::softmax(t[0], dim)};
  };
}

Fn layer_norm_fn(int64_t nd, double eps = 1e-5) {
  return [=](const std::vector<Tensor>& t) {
    const K::LayerNorm r = K::layer_norm(t[0], nd, t[1], t[2], eps);
    return std::vector<Tensor>{r.y, r.mean, r.rstd};
  };
}

Fn batch_norm_fn(double eps = 1e-5) {
  return [=](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{K::batch_norm(t[0], t[1], t[2], t[3], t[4], eps)};
  };
}

std::vector<std::pair<std::string, Tensor>> views(const Tensor& x) {
  std::vector<std::pair<std::string, Tensor>> v{{"contiguous", x}};
  if (x.dim() >= 2) v.emplace_back("transposed", x.transpose(0, x.dim() - 1).contiguous().transpose(0, x.dim() - 1));
  if (x.dim() >= 1) v.emplace_back("gapped", noncontig(x));
  return v;
}

Tensor affine(const Tensor& t, double a, double b) {
  std::vector<double> v = t.to_vector<double>();
  for (double& e : v) e = a * e + b;
  return from_vector(v, t.shape(), t.dtype());
}

}  // namespace

TEST_F(CudaNn, SoftmaxAnyDimAndView) {
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  const std::vector<Case> cases = {{{7, 33}, {0, 1, -1}},  {{2, 5, 40}, {0, 1, 2}}, {{3, 1500}, {1, 0}},
                                   {{37}, {0}},             {{}, {0}},                {{4, 1, 3}, {1, 2}},
                                   {{0, 4}, {0, 1}}};
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : cases) {
      const Tensor x = affine(randn(c.shape, 21, dt), 3.0, 0.0);
      for (const auto& [vname, v] : views(x))
        for (int64_t d : c.dims)
          for (bool log : {false, true})
            EXPECT_TRUE(matches(softmax_fn(d, log), {v}, std::string(log ? "log_softmax " : "softmax ") + vname +
                                                              " dim " + std::to_string(d)));
    }
  // A broadcast view (stride 0 along the softmax dim and along another).
  const Tensor b = randn({5, 1, 1}, 22, DType::Float32).expand({5, 6, 70});
  for (int64_t d : {0, 1, 2}) EXPECT_TRUE(matches(softmax_fn(d, false), {b}, "softmax broadcast"));
}

TEST_F(CudaNn, SoftmaxMaskedAndNonFiniteRows) {
  const double inf = std::numeric_limits<double>::infinity();
  Tensor x = randn({6, 45}, 23, DType::Float32);
  x.narrow(0, 0, 1).narrow(1, 3, 20).fill_(-inf);  // masked entries: exactly 0
  x.narrow(0, 1, 1).fill_(-inf);                   // all masked: NaN
  x.narrow(0, 2, 1).narrow(1, 4, 1).fill_(inf);
  x.narrow(0, 3, 1).narrow(1, 8, 1).fill_(std::nan(""));
  x.narrow(0, 4, 1).narrow(1, 0, 1).fill_(-200.0);  // underflows to 0
  for (bool log : {false, true})
    for (int64_t d : {0, 1}) EXPECT_TRUE(matches(softmax_fn(d, log), {x}, "non-finite rows"));
}

TEST_F(CudaNn, LayerNorm) {
  struct Case {
    Shape shape;
    int64_t nd;
  };
  const std::vector<Case> cases = {{{6, 50}, 1}, {{2, 3, 4, 5}, 2}, {{3, 1100}, 1}, {{2, 3, 700}, 2},
                                   {{37}, 1},    {{4, 1}, 1},       {{0, 8}, 1}};
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : cases) {
      // An offset mean: the two-pass variance and the split mean keep their accuracy.
      const Tensor x = affine(randn(c.shape, 24, dt), 2.0, 50.0);
      const Shape norm(c.shape.end() - c.nd, c.shape.end());
      const Tensor w = randn(norm, 25, dt), b = randn(norm, 26, dt);
      for (const auto& [vname, v] : views(x)) {
        const std::string what = "layer_norm " + vname + " " + shape_str(c.shape);
        EXPECT_TRUE(matches(layer_norm_fn(c.nd), {v, w, b}, what + " w b"));
        EXPECT_TRUE(matches(layer_norm_fn(c.nd), {v, Tensor(), Tensor()}, what));
        EXPECT_TRUE(matches(layer_norm_fn(c.nd, 0.1), {v, w, Tensor()}, what + " w"));
        EXPECT_TRUE(matches(layer_norm_fn(c.nd), {v, Tensor(), b}, what + " b"));
      }
      if (norm.size() == 1 && norm[0] > 1) {
        // Strided weight and bias.
        const Tensor ws = noncontig(w), bs = noncontig(b);
        EXPECT_TRUE(matches(layer_norm_fn(c.nd), {x, ws, bs}, "layer_norm strided w, b"));
      }
    }
}

TEST_F(CudaNn, BatchNorm) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Shape& shape : std::vector<Shape>{{4, 3}, {2, 5, 7, 3}, {3, 6, 40}, {1, 1}, {0, 4, 2}}) {
      const int64_t C = shape[1];
      const Tensor x = randn(shape, 27, dt);
      const Tensor rm = randn({C}, 28, dt), w = randn({C}, 30, dt), b = randn({C}, 31, dt);
      const Tensor rv = affine(cortex::testing::randu({C}, 29, 0, 1, dt), 1.0, 0.5);
      for (const auto& [vname, v] : views(x)) {
        EXPECT_TRUE(matches(batch_norm_fn(), {v, rm, rv, w, b}, "batch_norm " + vname));
        EXPECT_TRUE(matches(batch_norm_fn(1e-3), {v, rm, rv, Tensor(), Tensor()}, "batch_norm no affine " + vname));
      }
      if (C > 1) {
        EXPECT_TRUE(matches(batch_norm_fn(), {x, noncontig(rm), noncontig(rv), noncontig(w), Tensor()},
                            "batch_norm strided params"));
      }
    }
}

TEST_F(CudaNn, BitIdenticalAcrossScheduleOrders) {
  const Tensor warp = randn({9, 70}, 32, DType::Float32);
  const Tensor block = randn({3, 1300}, 33, DType::Float32);
  const Tensor cols = randn({300, 6}, 34, DType::Float64);
  for (const Tensor& x : {warp, block, cols})
    for (int64_t d : {0, 1})
      for (bool log : {false, true}) EXPECT_TRUE(deterministic(softmax_fn(d, log), {x}, "softmax"));
  const Tensor w = randn({1300}, 35, DType::Float32);
  EXPECT_TRUE(deterministic(layer_norm_fn(1), {block, w, w}, "layer_norm block"));
  EXPECT_TRUE(deterministic(layer_norm_fn(1), {warp, Tensor(), Tensor()}, "layer_norm warp"));
  EXPECT_TRUE(deterministic(layer_norm_fn(2), {cols, Tensor(), Tensor()}, "layer_norm 2 dims"));
}
