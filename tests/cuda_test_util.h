// What the emulated-device tests (tests/test_cuda_*.cpp) share: a fixture that turns strict device
// mode on (a kernel that falls back to the host fails the test) and resets the schedule order after
// each test, and the raw bytes of a tensor, for the bit-identity checks against the CPU kernels.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "tensor/tensor.h"

namespace cortex::testing {

class StrictEmuTest : public ::testing::Test {
 protected:
  void SetUp() override { kernels::set_strict_device(true); }
  void TearDown() override {
    kernels::set_strict_device(false);
    cortex::simt::clear_schedule();
  }
};

// Raw bytes of a tensor (a contiguous copy on the host).
inline std::vector<unsigned char> bytes_of(const Tensor& t) {
  const Tensor c = t.to(Device::cpu()).contiguous();
  std::vector<unsigned char> b(static_cast<size_t>(c.numel()) * dtype_size(c.dtype()));
  if (!b.empty()) std::memcpy(b.data(), c.raw_data(), b.size());
  return b;
}

}  // namespace cortex::testing
