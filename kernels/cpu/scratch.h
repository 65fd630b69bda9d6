// A growable uninitialised scratch array for the CPU kernels' per-thread buffers (std::vector
// would zero it on every growth). It keeps the largest size asked for.
#pragma once
#include <cstdint>
#include <memory>

namespace cortex::kernels::cpu {

template <class T>
struct Scratch {
  std::unique_ptr<T[]> p;
  int64_t n = 0;
  T* get(int64_t want) {
    if (want > n) {
      p.reset(new T[want]);
      n = want;
    }
    return p.get();
  }
};

}  // namespace cortex::kernels::cpu
