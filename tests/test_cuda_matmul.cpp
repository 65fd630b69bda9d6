// matmul and linear on the emulated CUDA device (kernels/cuda/matmul.cu), and every hand-written
// GEMM version (kernels/cuda/gemm/, docs/gemm.md) on its own: each against the CPU GEMM (Eigen) on
// odd sizes, transposed, sliced and misaligned operands, by normalised mean squared error; the ops
// through the dispatch table in strict mode (a fallback to the host fails the test); and bit-identical
// results in forward, reverse and random schedule order.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cuda/gemm.h"
#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/matmul.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::randn;
using K::GemmArgs;
using K::kGemmVersions;

namespace {

const Device kEmu = Device::emu();

// Strict device mode (a fallback to the host throws) for every test; the schedule order is
// CORTEX_SIMT_ORDER's (forward unless set), so the whole file can be rerun in another order.
class CudaMatmul : public cortex::testing::StrictEmuTest {
 protected:
  void SetUp() override {
    StrictEmuTest::SetUp();
    simt::clear_schedule();
  }
  void TearDown() override {
    StrictEmuTest::TearDown();
    K::emu::set_gemm_version(-1);
  }
};

// sum((got - want)^2) / sum(want^2) <= bound (ggml's NMSE), `got` on emu and `want` on the CPU.
::testing::AssertionResult nmse_le(const Tensor& got, const Tensor& want, double bound = 1e-7) {
  if (got.device() != kEmu) return ::testing::AssertionFailure() << "result on " << got.device().str();
  if (got.shape() != want.shape())
    return ::testing::AssertionFailure() << "shape " << shape_str(got.shape()) << ", expected " << shape_str(want.shape());
  const auto g = got.to(Device::cpu()).to(DType::Float64).to_vector<double>();
  const auto w = want.to(DType::Float64).to_vector<double>();
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!(g[i] == g[i])) return ::testing::AssertionFailure() << "NaN at flat index " << i;
    num += (g[i] - w[i]) * (g[i] - w[i]);
    den += w[i] * w[i];
  }
  const double e = den > 0 ? num / den : num;
  if (e <= bound) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "NMSE " << e << " > " << bound;
}

::testing::AssertionResult bit_equal(const Tensor& a, const Tensor& b) {
  return cortex::testing::allclose(a.to(Device::cpu()), b.to(Device::cpu()), 0, 0);
}

// The values of the CPU tensor t on emu, laid out non-contiguously: every other element of a
// (..., 2n + 1) buffer (as tests/test_util.h's noncontig), filled on the CPU and moved whole, since
// copy_ into a strided emu view is not supported.
Tensor emu_noncontig(const Tensor& t) {
  if (t.dim() == 0) return t.to(kEmu);
  const int64_t n = t.shape().back();
  Shape big = t.shape();
  big.back() = 2 * n + 1;
  Tensor whole = full(big, std::nan(""), t.dtype());
  whole.slice(-1, 1, 1 + 2 * n, 2).copy_(t);
  return whole.to(kEmu).slice(-1, 1, 1 + 2 * n, 2);
}

// C = A B with hand-written version v on emu, A and B given as (possibly strided) emu tensors.
template <class T>
Tensor run_version(int v, const Tensor& a, const Tensor& b, const Tensor& bias = Tensor()) {
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  Tensor c = full({m, n}, std::nan(""), a.dtype(), kEmu);  // every element must be written
  GemmArgs<T> g;
  g.M = m, g.N = n, g.K = k;
  g.A = a.data<T>(), g.a_rs = a.stride(0), g.a_cs = a.stride(1);
  g.B = b.data<T>(), g.b_rs = b.stride(0), g.b_cs = b.stride(1);
  g.C = c.data<T>(), g.ldc = n;
  if (bias.defined()) g.bias = bias.data<T>(), g.bias_s = bias.stride(0);
  K::emu::gemm(v, g);
  return c;
}

struct Mnk {
  int64_t m, n, k;
};
// Odd sizes: 1, partial warps, partial tiles of every version (32, 64, 128), more than one block.
const std::vector<Mnk> kOdd = {{1, 1, 1}, {7, 33, 65}, {33, 7, 1}, {65, 130, 33}, {130, 65, 7}, {1, 130, 65}, {129, 1, 130}};

}  // namespace

TEST_F(CudaMatmul, EveryVersionMatchesTheCpuOnOddSizesAndTransposedOperands) {
  uint64_t seed = 1;
  for (const Mnk& s : kOdd) {
    const Tensor a = randn({s.m, s.k}, seed++, DType::Float32), b = randn({s.k, s.n}, seed++, DType::Float32);
    const Tensor want = K::matmul(a, b);
    // Row-major, then each operand stored transposed (read through strides (1, ld)), then both.
    const Tensor at = a.t().contiguous().to(kEmu).t(), bt = b.t().contiguous().to(kEmu).t();
    const Tensor ae = a.to(kEmu), be = b.to(kEmu);
    for (int v = 1; v <= kGemmVersions; ++v) {
      SCOPED_TRACE("version " + std::to_string(v) + ", M N K " + std::to_string(s.m) + " " + std::to_string(s.n) + " " +
                   std::to_string(s.k));
      EXPECT_TRUE(nmse_le(run_version<float>(v, ae, be), want));
      EXPECT_TRUE(nmse_le(run_version<float>(v, at, be), want));
      EXPECT_TRUE(nmse_le(run_version<float>(v, ae, bt), want));
      EXPECT_TRUE(nmse_le(run_version<float>(v, at, bt), want));
    }
  }
}

TEST_F(CudaMatmul, VectorisedVersionsTakeBothPathsAndAgree) {
  // Multiples of 4 everywhere and 16-byte aligned: versions 6 and 7 read and write float4s.
  // The same values one float off alignment, or with a leading dim that is not a multiple of 4,
  // take the scalar path; every path gives the CPU's result.
  const Tensor a = randn({132, 68}, 11, DType::Float32), b = randn({68, 136}, 12, DType::Float32);
  const Tensor bias = randn({136}, 13, DType::Float32);
  const Tensor want = K::matmul(a, b), want_bias = K::linear(a, b.t(), bias);
  const Tensor ae = a.to(kEmu), be = b.to(kEmu), biase = bias.to(kEmu);
  ASSERT_EQ(reinterpret_cast<uintptr_t>(ae.raw_data()) % 16, 0u);
  // Misaligned: the data starts one float into a buffer.
  const Tensor abuf = zeros({132 * 68 + 1}, DType::Float32, kEmu), bbuf = zeros({68 * 136 + 1}, DType::Float32, kEmu);
  Tensor am = abuf.narrow(0, 1, 132 * 68).view({132, 68});
  Tensor bm = bbuf.narrow(0, 1, 68 * 136).view({68, 136});
  am.copy_(ae);
  bm.copy_(be);
  // Leading dim 69 (not a multiple of 4): a slice of a wider buffer.
  Tensor aw = zeros({132, 69}, DType::Float32, kEmu).narrow(1, 0, 68);
  aw.copy_(ae);
  for (int v = 1; v <= kGemmVersions; ++v) {
    SCOPED_TRACE("version " + std::to_string(v));
    const Tensor c = run_version<float>(v, ae, be);
    EXPECT_TRUE(nmse_le(c, want));
    EXPECT_TRUE(nmse_le(run_version<float>(v, am, bm), want));
    EXPECT_TRUE(nmse_le(run_version<float>(v, aw, be), want));
    EXPECT_TRUE(nmse_le(run_version<float>(v, ae, be, biase), want_bias));
    // The paths sum in the same order: bit-identical whatever the alignment.
    EXPECT_TRUE(bit_equal(run_version<float>(v, am, bm), c));
  }
}

TEST_F(CudaMatmul, Float64VersionsMatchTheCpu) {
  for (const Mnk& s : kOdd) {
    const Tensor a = randn({s.m, s.k}, 21), b = randn({s.k, s.n}, 22);
    const Tensor want = K::matmul(a, b);
    for (int v = 1; v <= 3; ++v) {
      SCOPED_TRACE("version " + std::to_string(v));
      EXPECT_TRUE(nmse_le(run_version<double>(v, a.to(kEmu), b.t().contiguous().to(kEmu).t()), want, 1e-24));
    }
  }
  const Tensor a = randn({3, 3}, 23);
  EXPECT_CORTEX_ERROR(run_version<double>(4, a.to(kEmu), a.to(kEmu)), "float64 has versions 1..3");
  EXPECT_CORTEX_ERROR(run_version<float>(8, a.to(DType::Float32).to(kEmu), a.to(DType::Float32).to(kEmu)),
                      "expected a version in 1..7");
}

TEST_F(CudaMatmul, DefaultIsTheFastestHandWrittenVersionAndCanBeChosen) {
  if (std::getenv("CORTEX_GEMM") == nullptr) {
    EXPECT_EQ(K::emu::gemm_version(), 7);
  }
  const Tensor a = randn({37, 29}, 31, DType::Float32), b = randn({29, 41}, 32, DType::Float32);
  const Tensor want = K::matmul(a, b);
  for (int v : {K::kGemmVendor, 1, 3, 5, 7}) {
    // kGemmVendor (cuBLAS) has no emulated twin: the emulated device runs version 7 instead.
    K::emu::set_gemm_version(v);
    EXPECT_EQ(K::emu::gemm_version(), v);
    const Tensor got = K::matmul(a.to(kEmu), b.to(kEmu));
    EXPECT_TRUE(nmse_le(got, want));
    EXPECT_TRUE(bit_equal(got, run_version<float>(v == K::kGemmVendor ? 7 : v, a.to(kEmu), b.to(kEmu))));
  }
  EXPECT_CORTEX_ERROR(K::emu::set_gemm_version(8), "set_gemm_version");
}

TEST_F(CudaMatmul, MatmulOpMatchesTheCpuInStrictMode) {
  struct Case {
    Shape a, b;
  };
  // 1-D operands, batch broadcasting (either side, size-1 dims), a shared right operand (folded into
  // one GEMM), an empty batch or row dim (a last dim of 0: EmptyInnerAndOutputDims).
  const std::vector<Case> cases = {
      {{5}, {5}},          {{5}, {5, 3}},          {{4, 5}, {5}},       {{7, 9}, {9, 33}},     {{3, 7, 9}, {9, 5}},
      {{2, 1, 5, 7}, {3, 7, 4}}, {{5, 7}, {2, 7, 3}}, {{2, 3, 1, 6}, {6, 1}}, {{1, 6}, {6, 1}},    {{0, 4, 5}, {5, 3}},
      {{0, 5}, {5, 3}},    {{2, 65, 33}, {2, 33, 130}}, {{3}, {2, 3, 4}}};
  uint64_t seed = 40;
  for (const Case& c : cases) {
    SCOPED_TRACE(shape_str(c.a) + " @ " + shape_str(c.b));
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor a = randn(c.a, seed++, dt), b = randn(c.b, seed++, dt);
      const Tensor want = K::matmul(a, b);
      EXPECT_TRUE(nmse_le(K::matmul(a.to(kEmu), b.to(kEmu)), want, dt == DType::Float32 ? 1e-7 : 1e-24));
      // Non-contiguous views (a gap between elements) read in place.
      EXPECT_TRUE(nmse_le(K::matmul(emu_noncontig(a), emu_noncontig(b)), want,
                          dt == DType::Float32 ? 1e-7 : 1e-24));
    }
  }
  // Transposed views of both operands, and a broadcast (expanded) operand.
  const Tensor a = randn({33, 65}, 60, DType::Float32), b = randn({130, 33}, 61, DType::Float32);
  EXPECT_TRUE(nmse_le(K::matmul(a.to(kEmu).t(), b.to(kEmu).t()), K::matmul(a.t(), b.t())));
  const Tensor x = randn({1, 9, 7}, 62, DType::Float32), w = randn({3, 7, 5}, 63, DType::Float32);
  EXPECT_TRUE(nmse_le(K::matmul(x.to(kEmu).expand({3, 9, 7}), w.to(kEmu)), K::matmul(x.expand({3, 9, 7}), w)));
}

TEST_F(CudaMatmul, LinearOpMatchesTheCpuInStrictMode) {
  struct Case {
    Shape x;
    int64_t out;
  };
  const std::vector<Case> cases = {{{5}, 3}, {{7, 9}, 33}, {{2, 3, 65}, 130}, {{1, 1}, 1}, {{0, 4}, 3}};
  uint64_t seed = 70;
  for (const Case& c : cases) {
    SCOPED_TRACE(shape_str(c.x) + " -> " + std::to_string(c.out));
    for (DType dt : {DType::Float32, DType::Float64}) {
      const double bound = dt == DType::Float32 ? 1e-7 : 1e-24;
      const int64_t in = c.x.back();
      const Tensor x = randn(c.x, seed++, dt), w = randn({c.out, in}, seed++, dt), b = randn({c.out}, seed++, dt);
      const Tensor xe = x.to(kEmu), we = w.to(kEmu), be = b.to(kEmu);
      EXPECT_TRUE(nmse_le(K::linear(xe, we, be), K::linear(x, w, b), bound));
      EXPECT_TRUE(nmse_le(K::linear(xe, we, Tensor()), K::linear(x, w, Tensor()), bound));
      // Strided x, w stored transposed (w.t() of an (in, out) tensor), a strided bias.
      EXPECT_TRUE(nmse_le(K::linear(emu_noncontig(x), w.t().contiguous().to(kEmu).t(), emu_noncontig(b)), K::linear(x, w, b),
                          bound));
    }
  }
}

TEST_F(CudaMatmul, BitIdenticalInEveryScheduleOrder) {
  const Tensor a = randn({65, 33}, 80, DType::Float32), b = randn({33, 130}, 81, DType::Float32);
  const Tensor bias = randn({130}, 82, DType::Float32);
  const Tensor ae = a.to(kEmu), be = b.to(kEmu), biase = bias.to(kEmu);
  const Tensor x = randn({2, 3, 33}, 83, DType::Float32).to(kEmu);
  const Tensor a64 = a.to(DType::Float64).to(kEmu), b64 = b.to(DType::Float64).to(kEmu);
  std::vector<Tensor> ref;
  for (const simt::Schedule s : {simt::Schedule{simt::Order::forward, 0}, simt::Schedule{simt::Order::reverse, 0},
                                 simt::Schedule{simt::Order::random, 7}}) {
    SCOPED_TRACE(simt::to_string(s));
    simt::set_schedule(s);
    std::vector<Tensor> got;
    for (int v = 1; v <= kGemmVersions; ++v) got.push_back(run_version<float>(v, ae, be, biase));
    got.push_back(K::matmul(x, be));
    got.push_back(K::linear(x, be.t(), biase));
    got.push_back(K::matmul(a64, b64));
    if (ref.empty()) {
      ref = got;
      continue;
    }
    for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(bit_equal(got[i], ref[i])) << "result " << i;
  }
}

TEST_F(CudaMatmul, EmptyInnerAndOutputDims) {
  // Tensors whose last dim is 0 are made on emu directly (moving one between devices is refused by
  // copy_bytes today). An empty sum is 0, so K = 0 gives zeros, or the bias for linear.
  const Tensor a0 = empty({4, 0}, DType::Float32, kEmu), b0 = empty({0, 3}, DType::Float32, kEmu);
  const Tensor c = K::matmul(a0, b0);
  EXPECT_EQ(c.shape(), (Shape{4, 3}));
  EXPECT_TRUE(bit_equal(c, zeros({4, 3}, DType::Float32)));
  const Tensor bias = randn({3}, 90, DType::Float32);
  const Tensor y = K::linear(a0, empty({3, 0}, DType::Float32, kEmu), bias.to(kEmu));
  EXPECT_TRUE(bit_equal(y, bias.unsqueeze(0).expand({4, 3}).contiguous()));
  EXPECT_EQ(K::matmul(randn({4, 5}, 91, DType::Float32).to(kEmu), empty({5, 0}, DType::Float32, kEmu)).shape(),
            (Shape{4, 0}));
  EXPECT_EQ(K::linear(randn({2, 4, 5}, 92, DType::Float32).to(kEmu), empty({0, 5}, DType::Float32, kEmu), Tensor())
                .shape(),
            (Shape{2, 4, 0}));
  EXPECT_EQ(K::matmul(empty({2, 0, 5}, DType::Float64, kEmu), randn({5, 7}, 93).to(kEmu)).shape(), (Shape{2, 0, 7}));
}
