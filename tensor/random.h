// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// Element i of a draw is a pure function of (seed, offset + i): no state is shared between
// elements, so the numbers for a seed are the same on every device and every thread count. A
// Generator only remembers how many counters it has used, so successive draws differ.
#pragma once
#include <array>
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
