// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// Element i of a draw is a pure function of (seed, offset + i): no state is shared between
// elements, so the numbers for a seed are the same on every device and every thread count. A
// Generator only remembers how many counters it has used, so successive draws differ.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

#include "tensor/tensor.h"

namespace cortex {

// One Philox4x32-10 block: four 32-bit outputs for a 128-bit counter and a 64-bit key.
// Written with plain integer ops so the same source compiles for host and device.
#if defined(__CUDACC__)
#define CORTEX_HD __host__ __device__
#else
#define CORTEX_HD
#endif
struct Philox4x32 {
  static CORTEX_HD inline void round(uint32_t c[4], uint32_t k[2]) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c[0];
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c[1] ^ k[0], n2 = hi0 ^ c[3] ^ k[1];
    c[0] = n0; c[1] = lo1; c[2] = n2; c[3] = lo0;
  }
  // counter = (ctr_lo, ctr_hi) as a 128-bit number with the top 64 bits zero-extended.
  static CORTEX_HD inline void block(uint64_t ctr, uint64_t key, uint32_t out[4]) {
    uint32_t c[4] = {static_cast<uint32_t>(ctr), static_cast<uint32_t>(ctr >> 32), 0u, 0u};
    uint32_t k[2] = {static_cast<uint32_t>(key), static_cast<uint32_t>(key >> 32)};
    for (int r = 0; r < 10; ++r) {
      round(c, k);
      if (r < 9) { k[0] += 0x9E3779B9u; k[1] += 0xBB67AE85u; }
    }
    out[0] = c[0]; out[1] = c[1]; out[2] = c[2]; out[3] = c[3];
  }
};

// Element i of a draw, as a pure function of (seed, first block `base`, i). rand and randn on the
// CPU (random.cpp) and the device kernels (kernels/cuda/tensor_ops.cu) call these same functions,
// so every device computes the same counter per element, whatever its grid.

// 53 random bits from two words -> [0, 1).
CORTEX_HD inline double philox_unit_double(uint32_t a, uint32_t b) {
  const uint64_t x = (static_cast<uint64_t>(a) << 21) ^ (static_cast<uint64_t>(b) >> 11);
  return static_cast<double>(x & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// rand: element i uses two words of block base + i/2 (words 2*(i%2) and 2*(i%2)+1), mapped to
// [low, high). (rand then keeps float32 results below high; see random.cpp.)
CORTEX_HD inline double philox_uniform_value(uint64_t seed, uint64_t base, int64_t i, double low, double high) {
  uint32_t out[4];
  Philox4x32::block(base + static_cast<uint64_t>(i) / 2, seed, out);
  const int k = 2 * static_cast<int>(i % 2);
  double u = philox_unit_double(out[k], out[k + 1]);
  return low + (high - low) * u;
}

// randn: block base + i/2 gives two uniforms (from its four words) -> two normals by Box-Muller;
// even elements take the cosine, odd ones the sine.
CORTEX_HD inline double philox_normal_value(uint64_t seed, uint64_t base, int64_t i, double mean, double std) {
  uint32_t out[4];
  Philox4x32::block(base + static_cast<uint64_t>(i) / 2, seed, out);
  const double u1 = 1.0 - philox_unit_double(out[0], out[1]);  // (0, 1]
  const double u2 = philox_unit_double(out[2], out[3]);
  const double r = sqrt(-2.0 * log(u1));
  const double z = (i % 2 == 0) ? r * cos(2 * M_PI * u2) : r * sin(2 * M_PI * u2);
  return mean + std * z;
}

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t o) { offset_ = o; }
  // Reserves n Philox blocks and returns the first block index.
  uint64_t take(uint64_t nblocks) {
    const uint64_t o = offset_;
    offset_ += nblocks;
    return o;
  }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

// Uniform in [low, high): float32/float64.
Tensor rand(const Shape& shape, Generator& gen, double low = 0.0, double high = 1.0, DType dtype = DType::Float32,
            Device device = Device::cpu());
// Normal(mean, std) by Box-Muller on pairs of uniforms.
Tensor randn(const Shape& shape, Generator& gen, double mean = 0.0, double std = 1.0, DType dtype = DType::Float32,
             Device device = Device::cpu());
// Integers uniform in [low, high) (int64 unless dtype says otherwise).
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen, DType dtype = DType::Int64,
               Device device = Device::cpu());
// A random permutation of 0..n-1 (int64).
Tensor randperm(int64_t n, Generator& gen, Device device = Device::cpu());

}  // namespace cortex
