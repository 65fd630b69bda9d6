// conv2d and its adjoints on a real GPU (label gpu; skips without a device, and builds to an empty
// test without the CUDA backend): the hand-written implicit GEMM (CORTEX_CONV unset) and cuDNN
// (CORTEX_CONV=cudnn; skipped, saying so, in a build without cuDNN) against the CPU kernels, float32
// NMSE <= 1e-10 and float64 <= 1e-24, over groups, stride, padding, dilation, depthwise, 1x1 and
// 7x7 kernels; and one timing line of AlexNet conv1 at batch 64 for each path (a GPU figure).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/conv.h"
#include "tensor/device.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/gpu/gpu_test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::nmse_le;

namespace {

Tensor rn(const Shape& s, uint64_t seed, DType dt) {
  Generator g(seed);
  return randn(s, g, 0.0, 1.0, dt);
}

struct Case {
  Shape x, w;
  Conv2dParams p;
};

Conv2dParams params(int64_t s, int64_t pad, int64_t dil, int64_t groups) {
  Conv2dParams p;
  p.stride_h = p.stride_w = s, p.pad_h = p.pad_w = pad, p.dilation_h = p.dilation_w = dil, p.groups = groups;
  return p;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {{2, 3, 17, 19}, {8, 3, 3, 3}, params(1, 1, 1, 1)},        {{4, 8, 13, 11}, {70, 4, 3, 3}, params(2, 1, 1, 2)},
      {{2, 6, 20, 21}, {6, 1, 3, 3}, params(2, 1, 2, 6)},        {{3, 16, 9, 9}, {32, 16, 1, 1}, params(1, 0, 1, 1)},
      {{2, 3, 33, 31}, {16, 3, 7, 7}, params(3, 3, 1, 1)},       {{8, 64, 13, 13}, {96, 64, 3, 3}, params(1, 1, 1, 1)},
  };
  return c;
}

class CudaConvGpu : public cortex::testing::GpuTest {
 protected:
  void TearDown() override { unsetenv("CORTEX_CONV"); }
};

// Runs the three ops on the GPU with CORTEX_CONV=path against the CPU; false when the path is
// missing from this build (cuDNN not found at configure time).
bool check_path(const char* path) {
  setenv("CORTEX_CONV", path, 1);
  const Device gpu = Device::cuda(0);
  uint64_t seed = 1;
  for (const Case& c : cases())
    for (DType dt : {DType::Float32, DType::Float64}) {
      SCOPED_TRACE(std::string(path) + " x " + shape_str(c.x) + " w " + shape_str(c.w) + " " + dtype_name(dt));
      const Tensor x = rn(c.x, seed++, dt), w = rn(c.w, seed++, dt), b = rn({c.w[0]}, seed++, dt);
      const Tensor y = K::conv2d(x, w, b, c.p), gy = rn(y.shape(), seed++, dt);
      Tensor yg;
      try {
        yg = K::conv2d(x.to(gpu), w.to(gpu), b.to(gpu), c.p);
      } catch (const Error& e) {
        if (std::string(e.what()).find("has no cuDNN") != std::string::npos) return false;
        throw;
      }
      const double bound = dt == DType::Float32 ? 1e-10 : 1e-24;
      EXPECT_TRUE(nmse_le(yg, y, bound)) << "conv2d";
      EXPECT_TRUE(nmse_le(K::conv2d_input_grad(gy.to(gpu), w.to(gpu), c.x, c.p), K::conv2d_input_grad(gy, w, c.x, c.p),
                          bound))
          << "input grad";
      EXPECT_TRUE(nmse_le(K::conv2d_weight_grad(x.to(gpu), gy.to(gpu), c.w, c.p),
                          K::conv2d_weight_grad(x, gy, c.w, c.p), bound))
          << "weight grad";
    }
  return true;
}

}  // namespace

TEST_F(CudaConvGpu, ImplicitGemmMatchesTheCpu) { EXPECT_TRUE(check_path("igemm")); }

TEST_F(CudaConvGpu, CudnnMatchesTheCpu) {
  if (!check_path("cudnn")) GTEST_SKIP() << "this build has no cuDNN";
}

// A GPU figure: AlexNet conv1 at batch 64, forward and both adjoints, each path (mean of 5 runs
// after one warm-up; the copy to the host synchronises).
TEST_F(CudaConvGpu, AlexNetConv1Timing) {
  const Device gpu = Device::cuda(0);
  const Conv2dParams p = params(4, 2, 1, 1);
  const Tensor x = rn({64, 3, 224, 224}, 1, DType::Float32).to(gpu), w = rn({64, 3, 11, 11}, 2, DType::Float32).to(gpu);
  const Tensor gy = rn({64, 64, 55, 55}, 3, DType::Float32).to(gpu);
  for (const char* path : {"igemm", "cudnn"}) {
    setenv("CORTEX_CONV", path, 1);
    double ms[3] = {0, 0, 0};
    try {
      for (int rep = 0; rep < 6; ++rep)
        for (int op = 0; op < 3; ++op) {
          const auto t0 = std::chrono::steady_clock::now();
          const Tensor r = op == 0   ? K::conv2d(x, w, Tensor(), p)
                           : op == 1 ? K::conv2d_input_grad(gy, w, x.shape(), p)
                                     : K::conv2d_weight_grad(x, gy, w.shape(), p);
          (void)r.select(0, 0).select(0, 0).to(Device::cpu());  // waits for the kernels
          if (rep > 0) ms[op] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 5;
        }
    } catch (const Error& e) {
      std::printf("[ conv gpu ] %s: %s\n", path, e.what());
      continue;
    }
    std::printf("[ conv gpu ] AlexNet conv1 batch 64, %s: forward %.2f ms, input grad %.2f ms, weight grad %.2f ms\n", path,
                ms[0], ms[1], ms[2]);
  }
}
