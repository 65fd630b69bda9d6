// What the real-GPU tests (tests/gpu/test_*.cpp, label gpu) share: a fixture that skips, saying why,
// in a build without the CUDA backend or on a machine without a device, and the normalised
// mean-squared error check against the CPU kernels.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "tensor/device.h"
#include "tensor/tensor.h"

namespace cortex::testing {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef CORTEX_WITH_CUDA
    GTEST_SKIP() << "built without the CUDA backend";
#else
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
#endif
  }
};

// sum (got - want)^2 / sum want^2 <= bound, computed in float64 on the host; NaN fails.
inline ::testing::AssertionResult nmse_le(const Tensor& got, const Tensor& want, double bound) {
  if (got.shape() != want.shape()) return ::testing::AssertionFailure() << "shape " << shape_str(got.shape());
  const auto g = got.to(Device::cpu()).to(DType::Float64).to_vector<double>();
  const auto w = want.to(Device::cpu()).to(DType::Float64).to_vector<double>();
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

}  // namespace cortex::testing
