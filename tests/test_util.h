// Helpers shared by the tests: random inputs, non-contiguous copies, float64 comparison.
#pragma once
#include <gtest/gtest.h>

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

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

// Expects cortex::gradcheck(...) (autograd/gradcheck.h, included by the test) to pass; on failure
// the message names the first check that failed.
#define EXPECT_GRADCHECK(...)                           \
  do {                                                  \
    std::string err_ = ::cortex::gradcheck(__VA_ARGS__); \
    EXPECT_EQ(err_, "");                                \
  } while (0)

// Expects f() to throw cortex::Error whose message contains every needle.
inline void expect_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "expected cortex::Error containing '" << needles.front() << "'";
  } catch (const ::cortex::Error& e) {
    const std::string m = e.what();
    for (const auto& n : needles) EXPECT_NE(m.find(n), std::string::npos) << "missing '" << n << "' in: " << m;
  }
}

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "cortex_test_XXXXXX").string();
    EXPECT_NE(mkdtemp(t.data()), nullptr);
    path_ = t;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // Names in the directory, sorted: a writer must leave no temporary files behind.
  std::vector<std::string> list() const {
    std::vector<std::string> v;
    for (const auto& e : std::filesystem::directory_iterator(path_)) v.push_back(e.path().filename().string());
    std::sort(v.begin(), v.end());
    return v;
  }
  size_t count() const { return list().size(); }

 private:
  std::filesystem::path path_;
};

// Writes bytes to a file, replacing it.
inline void put_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace cortex::testing
