#include "tensor/random.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tensor/device_ops.h"

namespace cortex {
namespace {

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
  if (!device.is_cpu()) {
    const DeviceTensorOps& ops = device_tensor_ops(device.type);
    if (ops.philox_uniform) {
      Tensor out = empty(shape, dtype, device);
      if (n > 0) ops.philox_uniform(out, seed, base, low, high);
      return out;
    }
    if (ops.note_fallback) ops.note_fallback("rand", device);
  }
  return fill_host(shape, dtype, [&](int64_t i) {
    double v = philox_uniform_value(seed, base, i, low, high);
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
  if (!device.is_cpu()) {
    const DeviceTensorOps& ops = device_tensor_ops(device.type);
    if (ops.philox_normal) {
      Tensor out = empty(shape, dtype, device);
      if (n > 0) ops.philox_normal(out, seed, base, mean, std);
      return out;
    }
    if (ops.note_fallback) ops.note_fallback("randn", device);
  }
  return fill_host(shape, dtype, [&](int64_t i) { return philox_normal_value(seed, base, i, mean, std); })
      .to(device);
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
