// The fused Adam / AdamW step (kernels/optim.h): the CPU kernel against the composed ops that
// autograd/optim.cpp used before it (bit for bit: the same roundings in the same order), and the
// kernel of kernels/cuda/optim.cu on the emulated CUDA device against the CPU kernel (bit for bit,
// in forward, reverse and random schedule order, strict device mode: a host fallback fails).
// Both variants, with and without weight decay, both lerp forms (beta1 above and below 0.5),
// float32 and float64, odd sizes spanning several blocks, a 0-dim and an empty parameter, a
// strided parameter, a broadcast gradient, several steps in a row; the entry's errors. (The
// Adam and AdamW optimizers on emu against the CPU: tests/test_optim.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/optim.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::randu;
using cortex::testing::bytes_of;

namespace {

const Device kEmu = Device::emu();

class CudaOptim : public cortex::testing::StrictEmuTest {};

::testing::AssertionResult same(const Tensor& got, const Tensor& want, const std::string& what) {
  if (got.dtype() != want.dtype() || got.shape() != want.shape())
    return ::testing::AssertionFailure() << what << ": " << dtype_name(got.dtype()) << shape_str(got.shape())
                                         << " vs " << dtype_name(want.dtype()) << shape_str(want.shape());
  if (bytes_of(got) != bytes_of(want)) {
    ::testing::AssertionResult r = cortex::testing::allclose(got.to(Device::cpu()), want.to(Device::cpu()), 0.0, 0.0);
    return ::testing::AssertionFailure() << what << ": not bit-identical " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// autograd/optim.cpp's Adam step as it was written with the ops before the fused kernel: each op
// one kernel call, scalars as 0-dim tensors of the operand's dtype (autograd's mul(t, double)).
Tensor mul(const Tensor& a, const Tensor& b) { return K::binary(K::Binary::Mul, a, b); }
Tensor add(const Tensor& a, const Tensor& b) { return K::binary(K::Binary::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return K::binary(K::Binary::Sub, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return K::binary(K::Binary::Div, a, b); }
Tensor like(double v, const Tensor& x) { return scalar(v, x.dtype(), x.device()); }

void composed_step(Tensor& p, const Tensor& g_in, Tensor& m, Tensor& v, const AdamStep& s) {
  Tensor g = g_in;
  Tensor q = p;
  const double b1 = s.beta1, b2 = s.beta2, wd = s.weight_decay, lr = s.lr;
  if (wd != 0) {
    if (s.decoupled) q = mul(q, like(1.0 - lr * wd, q));
    else g = add(g, mul(q, like(wd, q)));
  }
  const double w = 1.0 - b1;
  m = w < 0.5 ? add(m, mul(sub(g, m), like(w, m))) : sub(g, mul(sub(g, m), like(1.0 - w, m)));
  v = add(mul(v, like(b2, v)), mul(mul(g, g), like(1.0 - b2, g)));
  const double t = static_cast<double>(s.step);
  const double bc1 = 1.0 - std::pow(b1, t), bc2 = 1.0 - std::pow(b2, t);
  const double step_size = lr / bc1;
  Tensor denom = add(div(K::unary(K::Unary::Sqrt, v), like(std::sqrt(bc2), v)), like(s.eps, v));
  p = sub(q, mul(div(m, denom), like(step_size, m)));
}

std::vector<AdamStep> settings() {
  std::vector<AdamStep> out;
  for (bool dec : {false, true})
    for (double wd : {0.0, 0.05})
      for (double b1 : {0.9, 0.3}) {
        AdamStep s;
        s.lr = 0.01, s.beta1 = b1, s.beta2 = 0.999, s.eps = 1e-8, s.weight_decay = wd, s.decoupled = dec;
        out.push_back(s);
      }
  return out;
}

std::string describe(const AdamStep& s, DType dt) {
  std::string r = s.decoupled ? "AdamW" : "Adam";
  for (const std::string& part : {std::string(" wd="), std::to_string(s.weight_decay), std::string(" beta1="),
                                  std::to_string(s.beta1), std::string(" "), std::string(dtype_name(dt))})
    r += part;
  return r;
}

const std::vector<Shape> kShapes = {{1000}, {3, 257}, {}, {0, 4}, {7, 1, 5}};

}  // namespace

// The CPU kernel makes exactly the composed ops' roundings, step after step.
TEST_F(CudaOptim, CpuKernelEqualsComposedOpsBitForBit) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (const AdamStep& base : settings())
      for (const Shape& sh : kShapes) {
        Tensor p = randn(sh, 1, dt), m = zeros(sh, dt), v = zeros(sh, dt);
        Tensor pc = p.clone(), mc = m.clone(), vc = v.clone();
        for (int64_t t = 1; t <= 4; ++t) {
          AdamStep s = base;
          s.step = t;
          const Tensor g = randn(sh, 10 + static_cast<uint64_t>(t), dt);
          K::adam_step(p, g, m, v, s);
          composed_step(pc, g, mc, vc, s);
          const std::string what = describe(s, dt) + " " + shape_str(sh) + " step " + std::to_string(t);
          ASSERT_TRUE(same(p, pc, what + " param"));
          ASSERT_TRUE(same(m, mc, what + " exp_avg"));
          ASSERT_TRUE(same(v, vc, what + " exp_avg_sq"));
        }
      }
}

// The kernel on emu against the CPU kernel, in place, over several steps; a strided parameter and
// a broadcast gradient too.
TEST_F(CudaOptim, EmuMatchesCpuBitForBit) {
  for (DType dt : {DType::Float32, DType::Float64})
    for (const AdamStep& base : settings())
      for (const Shape& sh : kShapes) {
        Tensor p = randn(sh, 2, dt), m = randn(sh, 3, dt), v = randu(sh, 4, 0.0, 1.0, dt);
        Tensor pe = p.to(kEmu), me = m.to(kEmu), ve = v.to(kEmu);
        if (sh.size() == 2) pe = noncontig(pe);  // a strided parameter: written in place through its strides
        for (int64_t t = 1; t <= 3; ++t) {
          AdamStep s = base;
          s.step = t;
          const Tensor g = randn(sh, 20 + static_cast<uint64_t>(t), dt);
          K::adam_step(p, g, m, v, s);
          K::adam_step(pe, g.to(kEmu), me, ve, s);
          const std::string what = describe(s, dt) + " " + shape_str(sh) + " step " + std::to_string(t);
          ASSERT_TRUE(same(pe, p, what + " param"));
          ASSERT_TRUE(same(me, m, what + " exp_avg"));
          ASSERT_TRUE(same(ve, v, what + " exp_avg_sq"));
        }
      }
  // A gradient broadcast along dim 0 (stride 0), as the engine may hand back for .grad.
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Shape sh{6, 301};
    const Tensor row = randn({1, 301}, 5, dt);
    Tensor p = randn(sh, 6, dt), m = zeros(sh, dt), v = zeros(sh, dt);
    Tensor pe = p.to(kEmu), me = m.to(kEmu), ve = v.to(kEmu);
    AdamStep s;
    s.weight_decay = 0.1;
    K::adam_step(p, row.expand(sh), m, v, s);
    K::adam_step(pe, row.to(kEmu).expand(sh), me, ve, s);
    EXPECT_TRUE(same(pe, p, "broadcast grad param"));
    EXPECT_TRUE(same(me, m, "broadcast grad exp_avg"));
    EXPECT_TRUE(same(ve, v, "broadcast grad exp_avg_sq"));
  }
}

TEST_F(CudaOptim, BitIdenticalAcrossScheduleOrders) {
  const Shape sh{5, 333};
  auto run = [&] {
    Tensor p = randn(sh, 7, DType::Float32).to(kEmu), m = zeros(sh, DType::Float32, kEmu),
           v = zeros(sh, DType::Float32, kEmu);
    AdamStep s;
    s.weight_decay = 0.01, s.decoupled = true;
    for (int64_t t = 1; t <= 2; ++t) {
      s.step = t;
      K::adam_step(p, randn(sh, 8 + static_cast<uint64_t>(t), DType::Float32).to(kEmu), m, v, s);
    }
    std::vector<unsigned char> b = bytes_of(p), bm = bytes_of(m), bv = bytes_of(v);
    b.insert(b.end(), bm.begin(), bm.end());
    b.insert(b.end(), bv.begin(), bv.end());
    return b;
  };
  cortex::simt::set_schedule({cortex::simt::Order::forward, 0});
  const auto ref = run();
  for (const cortex::simt::Schedule s : {cortex::simt::Schedule{cortex::simt::Order::reverse, 0},
                                         cortex::simt::Schedule{cortex::simt::Order::random, 7}}) {
    cortex::simt::set_schedule(s);
    EXPECT_EQ(run(), ref) << "results differ across schedule orders";
  }
}

TEST_F(CudaOptim, EntryErrors) {
  Tensor p = zeros({3, 4}), g = zeros({3, 4}), m = zeros({3, 4}), v = zeros({3, 4});
  AdamStep s;
  Tensor bad_shape = zeros({4, 3}), bad_dtype = zeros({3, 4}, DType::Float64), ip = zeros({3, 4}, DType::Int64);
  EXPECT_THROW(K::adam_step(p, bad_shape, m, v, s), Error);
  EXPECT_THROW(K::adam_step(p, g, bad_dtype, v, s), Error);
  EXPECT_THROW(K::adam_step(ip, ip, ip, ip, s), Error);
  EXPECT_THROW(K::adam_step(p, g, m, m, s), Error);  // exp_avg and exp_avg_sq are one tensor
  Tensor rep = zeros({1, 4}).expand({3, 4});
  EXPECT_THROW(K::adam_step(rep, g, m, v, s), Error);  // a param with repeated elements
  Tensor ve = v.to(kEmu);
  EXPECT_THROW(K::adam_step(p, g, m, ve, s), Error);  // two devices
  AdamStep s0 = s;
  s0.step = 0;
  EXPECT_THROW(K::adam_step(p, g, m, v, s0), Error);
  try {
    K::adam_step(p, bad_shape, m, v, s);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adam_step: expected grad of param's shape [3, 4], found [4, 3]"),
              std::string::npos)
        << e.what();
  }
}
