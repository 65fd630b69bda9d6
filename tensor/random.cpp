#include "tensor/random.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace cortex {
namespace {

// 53 random bits from two words -> [0, 1).
inline double unit_double(uint32_t a, uint32_t b) {
  const uint64_t x = (static_cast<uint64_t>(a) << 21) ^ (static_cast<uint64_t>(b) >> 11);
  return static_cast<double>(x & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

template <class F>
Tensor fill_host(const Shape& shape, DType dtype, F&& value_of) {
  Tensor host = empty(shape, DType::Float64);
  double* p = host.data<double>();
  const int64_t n = host.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = value_of(i);
  return host.to(dtype);
}

}  // namespace

Tensor rand(const Shape& shape, Generator& gen, double low, double high, DType dtype, Device device) {
  CORTEX_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "rand: expected float32 or float64, found ",
               dtype_name(dtype));
  CORTEX_CHECK(low < high, "rand: expected low < high, found ", low, " and ", high);
  const int64_t n = shape_numel(shape);
  const uint64_t seed = gen.seed(), base = gen.take(static_cast<uint64_t>(n + 1) / 2);
  // Each element consumes two words (block i/2, words 2*(i%2) and 2*(i%2)+1).
  return fill_host(shape, dtype, [&](int64_t i) {
    uint32_t out[4];
    Philox4x32::block(base + static_cast<uint64_t>(i) / 2, seed, out);
    const int k = 2 * static_cast<int>(i % 2);
    double u = unit_double(out[k], out[k + 1]);
    double v = low + (high - low) * u;
    if (dtype == DType::Float32 && static_cast<float>(v) >= static_cast<float>(high))
      v = std::nextafter(static_cast<float>(high), static_cast<float>(low));  // keep [low, high) after rounding
    return v;
  }).to(device);
}

Tensor randn(const Shape& shape, Generator& gen, double mean, double std, DType dtype, Device device) {
  CORTEX_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "randn: expected float32 or float64, found ",
               dtype_name(dtype));
  CORTEX_CHECK(std >= 0, "randn: std must be >= 0, found ", std);
  const int64_t n = shape_numel(shape);
  const uint64_t seed = gen.seed(), base = gen.take(static_cast<uint64_t>(n + 1) / 2);
  // Block i/2 gives two uniforms (from its four words) -> two normals by Box-Muller.
  return fill_host(shape, dtype, [&](int64_t i) {
    uint32_t out[4];
    Philox4x32::block(base + static_cast<uint64_t>(i) / 2, seed, out);
    const double u1 = 1.0 - unit_double(out[0], out[1]);  // (0, 1]
    const double u2 = unit_double(out[2], out[3]);
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double z = (i % 2 == 0) ? r * std::cos(2 * M_PI * u2) : r * std::sin(2 * M_PI * u2);
    return mean + std * z;
  }).to(device);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen, DType dtype, Device device) {
  CORTEX_CHECK(low < high, "randint: expected low < high, found ", low, " and ", high);
  CORTEX_CHECK(dtype == DType::Int32 || dtype == DType::Int64, "randint: expected int32 or int64, found ",
               dtype_name(dtype));
  const int64_t n = shape_numel(shape);
  const uint64_t range = static_cast<uint64_t>(high - low);
  const uint64_t seed = gen.seed(), base = gen.take(static_cast<uint64_t>(n + 1) / 2);
  Tensor host = empty(shape, DType::Int64);
  int64_t* p = host.data<int64_t>();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t out[4];
    Philox4x32::block(base + static_cast<uint64_t>(i) / 2, seed, out);
    const int k = 2 * static_cast<int>(i % 2);
    const uint64_t x = (static_cast<uint64_t>(out[k]) << 32) | out[k + 1];
    // Multiply-high maps 64 random bits to [0, range) with bias below 2^-32 for any int64 range.
    const uint64_t r = static_cast<uint64_t>((static_cast<unsigned __int128>(x) * range) >> 64);
    p[i] = low + static_cast<int64_t>(r);
  }
  return host.to(dtype).to(device);
}

Tensor randperm(int64_t n, Generator& gen, Device device) {
  CORTEX_CHECK(n >= 0, "randperm: n must be >= 0, found ", n);
  // Sort indices by 64-bit random keys (ties broken by index): deterministic for a seed.
  const uint64_t seed = gen.seed(), base = gen.take(static_cast<uint64_t>(n + 1) / 2);
  std::vector<std::pair<uint64_t, int64_t>> keys(n);
  for (int64_t i = 0; i < n; ++i) {
    uint32_t out[4];
    Philox4x32::block(base + static_cast<uint64_t>(i) / 2, seed, out);
    const int k = 2 * static_cast<int>(i % 2);
    keys[i] = {(static_cast<uint64_t>(out[k]) << 32) | out[k + 1], i};
  }
  std::sort(keys.begin(), keys.end());
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = keys[i].second;
  return from_vector(perm, {n}, DType::Int64, device);
}

}  // namespace cortex
