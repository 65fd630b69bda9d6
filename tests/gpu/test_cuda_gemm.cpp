// The GEMM of the CUDA backend on a real GPU (label gpu; skips without a device, and builds to an
// empty test without the CUDA backend): every hand-written version against the CPU GEMM on odd
// sizes and transposed operands, and matmul/linear through cuBLAS (strided batched, broadcast
// batches, transposed operands, bias) with TF32 off (float32 NMSE <= 1e-7) and on (<= 1e-5).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kernels/cuda/gemm.h"
#include "kernels/matmul.h"
#include "tensor/device.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/gpu/gpu_test_util.h"
#ifdef CORTEX_WITH_CUDA
#include "kernels/cuda/vendor/cublas.h"
#endif

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::nmse_le;

namespace {

[[maybe_unused]] Tensor rn(const Shape& s, uint64_t seed) {  // used only by the CUDA build's tests
  Generator g(seed);
  return randn(s, g, 0.0, 1.0, DType::Float32);
}

class CudaGemm : public cortex::testing::GpuTest {
 protected:
#ifdef CORTEX_WITH_CUDA
  void TearDown() override {
    K::cuda::set_gemm_version(-1);
    K::cuda::vendor::set_tf32(false);
  }
#endif
};

}  // namespace

#ifdef CORTEX_WITH_CUDA
TEST_F(CudaGemm, EveryVersionMatchesTheCpu) {
  const Device gpu = Device::cuda(0);
  struct Mnk {
    int64_t m, n, k;
  };
  uint64_t seed = 1;
  for (const Mnk s : {Mnk{1, 1, 1}, Mnk{7, 33, 65}, Mnk{130, 65, 7}, Mnk{257, 129, 300}, Mnk{1024, 1024, 1024}}) {
    const Tensor a = rn({s.m, s.k}, seed++), b = rn({s.k, s.n}, seed++);
    const Tensor want = K::matmul(a, b);
    const Tensor ag = a.to(gpu), bt = b.t().contiguous().to(gpu).t();
    for (int v = 1; v <= K::kGemmVersions; ++v) {
      SCOPED_TRACE("version " + std::to_string(v) + ", M " + std::to_string(s.m));
      Tensor c = empty({s.m, s.n}, DType::Float32, gpu);
      K::GemmArgs<float> g;
      g.M = s.m, g.N = s.n, g.K = s.k;
      g.A = ag.data<float>(), g.a_rs = ag.stride(0), g.a_cs = ag.stride(1);
      g.B = bt.data<float>(), g.b_rs = bt.stride(0), g.b_cs = bt.stride(1);
      g.C = c.data<float>(), g.ldc = s.n;
      K::cuda::gemm(v, g);
      EXPECT_TRUE(nmse_le(c, want, 1e-7));
    }
  }
}

TEST_F(CudaGemm, MatmulAndLinearThroughCublas) {
  const Device gpu = Device::cuda(0);
  K::cuda::set_gemm_version(K::kGemmVendor);
  for (bool tf32 : {false, true}) {
    SCOPED_TRACE(tf32 ? "tf32" : "fp32");
    K::cuda::vendor::set_tf32(tf32);
    const double bound = tf32 ? 1e-5 : 1e-7;
    const Tensor a = rn({4, 65, 33}, 10), b = rn({4, 33, 130}, 11), w = rn({130, 33}, 12), bias = rn({130}, 13);
    EXPECT_TRUE(nmse_le(K::matmul(a.to(gpu), b.to(gpu)), K::matmul(a, b), bound));              // strided batched
    EXPECT_TRUE(nmse_le(K::matmul(a.to(gpu), w.to(gpu).t()), K::matmul(a, w.t()), bound));      // folded, B^T
    const Tensor x = rn({2, 1, 9, 7}, 14), y = rn({3, 7, 5}, 15);
    EXPECT_TRUE(nmse_le(K::matmul(x.to(gpu), y.to(gpu)), K::matmul(x, y), bound));              // broadcast
    EXPECT_TRUE(nmse_le(K::matmul(a.to(gpu).transpose(1, 2), a.to(gpu)), K::matmul(a.transpose(1, 2), a), bound));
    EXPECT_TRUE(nmse_le(K::linear(a.to(gpu), w.to(gpu), bias.to(gpu)), K::linear(a, w, bias), bound));
    EXPECT_TRUE(nmse_le(K::linear(a.to(gpu), w.to(gpu), Tensor()), K::linear(a, w, Tensor()), bound));
  }
}
#endif
