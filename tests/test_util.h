// Helpers shared by the tests: random inputs, non-contiguous copies, float64 comparison.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace cortex::testing {

// Standard normal values of `shape` (float64 unless told).
inline Tensor randn(const Shape& shape, uint64_t seed, DType dt = DType::Float64) {
  Generator g(seed);
  return cortex::randn(shape, g, 0.0, 1.0, dt);
}
inline Tensor randu(const Shape& shape, uint64_t seed, double lo, double hi, DType dt = DType::Float64) {
  Generator g(seed);
  return cortex::rand(shape, g, lo, hi, dt);
}

// The same values as `t`, but laid out non-contiguously: stored transposed in a buffer with a
// gap between rows, then viewed back. Kernels must give identical results on it.
inline Tensor noncontig(const Tensor& t) {
  if (t.dim() == 0) return t;
  Shape big = t.shape();
  big.back() = big.back() * 2 + 1;
  Tensor buf = full(big, std::nan(""), t.dtype(), t.device());
  Tensor v = buf.slice(-1, 1, 1 + 2 * t.shape().back(), 2);
  v.copy_(t);
  EXPECT_TRUE(t.numel() <= 1 || !v.is_contiguous());
  return v;
}

// Asserts |a - b| <= atol + rtol * |b| elementwise (NaNs must match), comparing in float64.
inline ::testing::AssertionResult allclose(const Tensor& a, const Tensor& b, double rtol = 1e-6, double atol = 1e-9) {
  if (a.shape() != b.shape())
    return ::testing::AssertionFailure() << "shapes differ: " << shape_str(a.shape()) << " vs " << shape_str(b.shape());
  auto va = a.to(DType::Float64).to_vector<double>();
  auto vb = b.to(DType::Float64).to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) {
    if (std::isnan(va[i]) || std::isnan(vb[i])) {
      if (std::isnan(va[i]) != std::isnan(vb[i]))
        return ::testing::AssertionFailure() << "NaN mismatch at flat index " << i << ": " << va[i] << " vs " << vb[i];
      continue;
    }
    if (std::isinf(vb[i]) && va[i] == vb[i]) continue;
    if (!(std::abs(va[i] - vb[i]) <= atol + rtol * std::abs(vb[i])))
      return ::testing::AssertionFailure() << "mismatch at flat index " << i << ": " << va[i] << " vs " << vb[i]
                                           << " (|diff| " << std::abs(va[i] - vb[i]) << ")";
  }
  return ::testing::AssertionSuccess();
}

// Expects `stmt` to throw cortex::Error whose message contains `needle`.
#define EXPECT_CORTEX_ERROR(stmt, needle)                                                     \
  do {                                                                                       \
    try {                                                                                    \
      stmt;                                                                                  \
      ADD_FAILURE() << "expected cortex::Error containing '" << (needle) << "'";             \
    } catch (const ::cortex::Error& e) {                                                     \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what(); \
    }                                                                                        \
  } while (0)

}  // namespace cortex::testing
