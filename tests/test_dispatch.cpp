// Dispatch by table (kernels/dispatch.h): every op has a CPU kernel, ops on the emulated device
// fall back to the host CPU kernel on the same memory and are counted, strict mode refuses the
// fallback naming the op and the device, and tensors on two devices are refused.
#include <gtest/gtest.h>

#include <cstdio>

#include <set>
#include <string>

#include "autograd/ops.h"
#include "kernels/conv.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/index.h"
#include "kernels/matmul.h"
#include "kernels/nn.h"
#include "kernels/pool.h"
#include "kernels/reduce.h"
#include "tests/model_fixtures.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::allclose;

namespace {

const Device kEmu = Device::emu();

// Strict mode off and no fallbacks counted at the start of a test; strict mode off at its end.
class Dispatch : public ::testing::Test {
 protected:
  void SetUp() override {
    K::set_strict_device(false);
    K::reset_fallback_stats();
  }
  void TearDown() override { K::set_strict_device(false); }
};

// Bit-for-bit equal values on the host (within rtol when given), and `got` on `dev`.
constexpr double kUlp = 2.5e-7;  // a float32 ulp relative to the value, with room for rounding

::testing::AssertionResult same(const Tensor& got, const Tensor& want, Device dev, double rtol = 0) {
  if (got.device() != dev) return ::testing::AssertionFailure() << "on " << got.device().str() << ", expected " << dev.str();
  return allclose(got.to(Device::cpu()), want, rtol, 0);
}

}  // namespace

TEST_F(Dispatch, EveryOpHasACpuKernel) {
  const std::vector<K::OpInfo> ops = K::op_list();
  EXPECT_GE(ops.size(), 50u);
  std::set<std::string> names;
  for (const K::OpInfo& op : ops) {
    EXPECT_TRUE(op.cpu) << op.family << "/" << op.name << " has no CPU kernel";
    EXPECT_TRUE(names.insert(op.name).second) << op.name << " is listed twice";
  }
  for (const char* name : {"unary", "conv2d", "max_pool2d", "matmul", "eigh", "concat", "pad_backward"})
    EXPECT_EQ(names.count(name), 1u) << name;
  // This build has no CUDA tensors without a GPU, but its tables exist and answer for every device.
  EXPECT_EQ(&K::table_for(Device::cpu()), &K::cpu_table());
  EXPECT_EQ(&K::table_for(kEmu), &K::emu_table());
  EXPECT_EQ(&K::table_for(Device::cuda(1)), &K::cuda_table());
}

TEST_F(Dispatch, EmuFallsBackToTheHostAndCounts) {
  const Tensor a = cortex::testing::randn({3, 4}, 1, DType::Float32);
  const Tensor b = cortex::testing::randn({4, 5}, 2, DType::Float32);
  const Tensor ae = a.to(kEmu), be = b.to(kEmu);

  // Ops with the emu slot empty fall back, once each call; results are emu tensors, equal to the CPU's.
  int64_t want_exp = 0, want_add = 0, want_matmul = 0;
  for (const K::OpInfo& op : K::op_list()) {
    if (op.name == std::string("unary")) want_exp = op.emu ? 0 : 2;
    if (op.name == std::string("binary")) want_add = op.emu ? 0 : 1;
    if (op.name == std::string("matmul")) want_matmul = op.emu ? 0 : 1;
  }
  // exp to an ulp: the emulated kernel's expf and the host's vectorised exp may round differently
  // (on an AVX2 build they differed by one ulp in one of these 12 values).
  EXPECT_TRUE(same(K::unary(K::Unary::Exp, ae), K::unary(K::Unary::Exp, a), kEmu, kUlp));
  EXPECT_TRUE(same(K::unary(K::Unary::Exp, ae.t()), K::unary(K::Unary::Exp, a.t()), kEmu, kUlp));  // a strided view
  EXPECT_TRUE(same(K::binary(K::Binary::Add, ae, ae.narrow(0, 0, 1)), K::binary(K::Binary::Add, a, a.narrow(0, 0, 1)),
                   kEmu));
  {
    // matmul has an emu kernel (the GEMM of kernels/cuda/gemm/): its sums are in k order with the
    // compiler's FMA contraction, Eigen's small product vectorises with the host's SIMD width (seen:
    // 1 ulp apart on an AVX-512 AMD EPYC), so it is compared within a tolerance.
    const Tensor mm = K::matmul(ae, be);
    EXPECT_EQ(mm.device(), kEmu);
    EXPECT_TRUE(allclose(mm.to(Device::cpu()), K::matmul(a, b), 1e-6, 1e-7));
  }
  EXPECT_TRUE(same(K::reduce(K::Reduce::Sum, ae, {1}), K::reduce(K::Reduce::Sum, a, {1}), kEmu));
  {
    // softmax has an emu kernel (kernels/cuda/nn.cu): its exp may differ from the CPU's vectorised
    // exp in the last ulp, so it is compared within a tolerance instead of bit for bit.
    const Tensor sm = K::softmax(ae, -1);
    EXPECT_EQ(sm.device(), kEmu);
    EXPECT_TRUE(allclose(sm.to(Device::cpu()), K::softmax(a, -1), 1e-6, 1e-7));
  }
  EXPECT_TRUE(same(K::concat({ae, ae}, 0), K::concat({a, a}, 0), kEmu));  // a list of tensors

  // Results that are structs of tensors: every member comes back on emu.
  const Tensor x = cortex::testing::randn({2, 3, 6, 6}, 3, DType::Float32);
  const Tensor w = cortex::testing::randn({4, 3, 3, 3}, 4, DType::Float32);
  const Tensor xe = x.to(kEmu), we = w.to(kEmu);
  Conv2dParams cp;
  cp.pad_h = cp.pad_w = 1;
  {
    // conv2d has an emu kernel (kernels/cuda/conv.cu, an implicit GEMM): it sums in another order
    // than the CPU's GEMM, so it is compared within a tolerance (sums of 27 O(1) products).
    const Tensor y = K::conv2d(xe, we, Tensor(), cp);
    EXPECT_EQ(y.device(), kEmu);
    EXPECT_TRUE(allclose(y.to(Device::cpu()), K::conv2d(x, w, Tensor(), cp), 1e-5, 1e-5));
  }
  Pool2dParams pp;
  pp.kernel_h = pp.kernel_w = pp.stride_h = pp.stride_w = 2;
  const K::MaxPool mp = K::max_pool2d(xe, pp), mp_cpu = K::max_pool2d(x, pp);
  EXPECT_TRUE(same(mp.y, mp_cpu.y, kEmu));
  EXPECT_TRUE(same(mp.indices, mp_cpu.indices, kEmu));
  const K::MaxPool mp3 = K::max_pool2d(xe.select(0, 1), pp);  // unbatched input: the entry adds N = 1
  EXPECT_TRUE(same(mp3.y, mp_cpu.y.select(0, 1), kEmu));
  const K::TopK tk = K::topk(ae, 2, 1), tk_cpu = K::topk(a, 2, 1);
  EXPECT_TRUE(same(tk.values, tk_cpu.values, kEmu));
  EXPECT_TRUE(same(tk.indices, tk_cpu.indices, kEmu));
  const K::LayerNorm ln = K::layer_norm(ae, 1, Tensor(), Tensor()), ln_cpu = K::layer_norm(a, 1, Tensor(), Tensor());
  EXPECT_TRUE(same(ln.y, ln_cpu.y, kEmu));
  EXPECT_TRUE(same(ln.rstd, ln_cpu.rstd, kEmu));
  // argsort leaves sort's values undefined: undefined results stay undefined.
  EXPECT_TRUE(same(K::argsort(ae, 1), K::argsort(a, 1), kEmu));

  // How the fallback sees emu memory: arguments become CPU views of the same bytes (one alias per
  // storage), a result that is a view of an argument gets the argument's emu storage back, and a
  // new result becomes an emu tensor over the CPU kernel's memory.
  {
    K::detail::EmuOnHost move;
    const Tensor h = move.arg(ae), h2 = move.arg(ae.t());
    EXPECT_EQ(h.device(), Device::cpu());
    EXPECT_EQ(h.raw_data(), ae.raw_data());
    EXPECT_EQ(h.storage(), h2.storage());
    EXPECT_EQ(move.result(h.narrow(0, 1, 1)).storage(), ae.storage());
    const Tensor fresh = zeros({2});
    const Tensor r = move.result(fresh);
    EXPECT_EQ(r.device(), kEmu);
    EXPECT_EQ(r.raw_data(), fresh.raw_data());
  }
  // The same storage twice: one alias, and the result equals the CPU's.
  EXPECT_TRUE(same(K::binary(K::Binary::Mul, ae, ae.t().t()), K::binary(K::Binary::Mul, a, a), kEmu));

  // The inputs are untouched and still on emu.
  EXPECT_EQ(ae.device(), kEmu);
  EXPECT_TRUE(same(ae, a, kEmu));

  const auto stats = K::fallback_stats();
  auto count = [&](const char* op) { return stats.count(op) ? stats.at(op) : 0; };
  EXPECT_EQ(count("exp"), want_exp);
  EXPECT_EQ(count("add"), want_add);
  EXPECT_EQ(count("matmul"), want_matmul);
  for (const auto& [op, n] : stats) EXPECT_GE(n, 1) << op;
  // CPU ops never count.
  K::reset_fallback_stats();
  K::unary(K::Unary::Exp, a);
  K::matmul(a, b);
  EXPECT_TRUE(K::fallback_stats().empty());
}

TEST_F(Dispatch, StrictModeRefusesAFallbackNamingTheOpAndDevice) {
  const Tensor a = cortex::testing::randn({3, 4}, 1, DType::Float32);
  const Tensor ae = a.to(kEmu);
  K::set_strict_device(true);
  EXPECT_TRUE(K::strict_device());
  bool exp_on_emu = false;
  for (const K::OpInfo& op : K::op_list())
    if (op.name == std::string("unary")) exp_on_emu = op.emu;
  if (!exp_on_emu) {
    EXPECT_CORTEX_ERROR(K::unary(K::Unary::Exp, ae), "exp: no emu kernel");
    EXPECT_CORTEX_ERROR(K::unary(K::Unary::Exp, ae), "CORTEX_STRICT_DEVICE=1");
  }
  bool eigh_on_emu = false;
  for (const K::OpInfo& op : K::op_list())
    if (op.name == std::string("eigh")) eigh_on_emu = op.emu;
  if (!eigh_on_emu) {
    EXPECT_CORTEX_ERROR(K::eigh(ae.narrow(1, 0, 3)), "eigh: no emu kernel");
  }
  EXPECT_TRUE(K::fallback_stats().empty());  // a refused fallback did not run
  // The CPU is never a fallback: strict mode changes nothing there.
  EXPECT_TRUE(allclose(K::unary(K::Unary::Exp, a), K::unary(K::Unary::Exp, a)));
  K::set_strict_device(false);
  EXPECT_TRUE(same(K::unary(K::Unary::Exp, ae), K::unary(K::Unary::Exp, a), kEmu, kUlp));
}

TEST_F(Dispatch, TensorsOnTwoDevicesAreRefused) {
  const Tensor a = cortex::testing::randn({3, 4}, 1, DType::Float32);
  EXPECT_CORTEX_ERROR(K::binary(K::Binary::Add, a, a.to(kEmu)), "add: expected all tensors on one device, found cpu and emu");
  EXPECT_CORTEX_ERROR(K::matmul(a.to(kEmu), a.t()), "matmul: expected all tensors on one device, found emu and cpu");
  EXPECT_CORTEX_ERROR(K::concat({a, a.to(kEmu)}, 0), "one device");
  const Tensor w = cortex::testing::randn({2, 4}, 2, DType::Float32);
  EXPECT_CORTEX_ERROR(K::linear(a, w, zeros({2}, DType::Float32, kEmu)), "linear: expected all tensors on one device");
  EXPECT_TRUE(K::fallback_stats().empty());
}

// The differentiable ops (autograd/) follow their inputs onto emu: forward and backward there
// equal the CPU's.
TEST_F(Dispatch, AutogradRunsOnEmu) {
  const Tensor x = cortex::testing::randn({3, 4}, 5, DType::Float32);
  const Tensor w0 = cortex::testing::randn({4, 2}, 6, DType::Float32);
  auto run = [&](Device dev) {
    Tensor w = with_grad(w0.to(dev));
    Tensor loss = mean(square(tanh(matmul(x.to(dev), w))));
    backward(loss);
    return std::make_pair(loss, grad_of(w));
  };
  const auto [loss_cpu, g_cpu] = run(Device::cpu());
  const auto [loss_emu, g_emu] = run(kEmu);
  // Ops with an emu kernel compute transcendentals with the device's math functions (tanhf), which
  // may differ from the CPU's vectorised ones in the last ulp: equal within float32 rounding.
  EXPECT_TRUE(same(loss_emu, loss_cpu, kEmu, 1e-6));
  EXPECT_TRUE(same(g_emu, g_cpu, kEmu, 1e-6));
  // matmul, tanh, square, mean and their VJPs all have emu kernels: nothing fell back.
  EXPECT_TRUE(K::fallback_stats().empty());
}

// The backbones follow their inputs onto emu: every tap equals PyTorch's as on the CPU (issue 12:
// AlexNet on emu within 1e-4 of the CPU), with the ops that lack an emu kernel counted.
TEST_F(Dispatch, BackbonesRunOnEmu) {
  for (const char* name : {"alexnet", "resnet_bottleneck", "clip"}) {
    K::reset_fallback_stats();
    cortex::testing::check_all_taps(name, kEmu);
    std::string listed;
    for (const auto& [op, n] : K::fallback_stats()) listed += " " + op + "=" + std::to_string(n);
    std::printf("[ emu ] %s: ops that fell back to the host:%s\n", name, listed.empty() ? " none" : listed.c_str());
    bool conv_on_emu = false;
    for (const K::OpInfo& op : K::op_list())
      if (op.name == std::string("conv2d")) conv_on_emu = op.emu;
    if (!conv_on_emu) {
      EXPECT_GE(K::fallback_stats()["conv2d"], 1) << name;
    }
  }
}
