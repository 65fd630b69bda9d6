#include "tensor/host_allocator.h"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor/error.h"

namespace cortex::host {
namespace {

// Blocks from 32 MiB up (glibc's largest mmap threshold: it would mmap every one of them afresh)
// are cached here, in 1 MiB steps; smaller ones come from glibc's heap, told below to keep them.
constexpr size_t kStep = size_t(1) << 20;
constexpr size_t kLarge = size_t(32) << 20;

size_t rounded(size_t nbytes) {
  const size_t n = std::max<size_t>(64, (nbytes + 63) / 64 * 64);
  return n < kLarge ? n : (n + kStep - 1) / kStep * kStep;
}

#ifdef __GLIBC__
// glibc's defaults mmap a block from 128 KiB up (the threshold then adapts, up to 32 MiB) and hand
// the heap's top back to the system beyond 128 KiB free, so a pass whose temporaries change size
// page-faults and zeroes fresh memory again and again: integrated gradients of one image (the
// first, unwarmed pass: 51 path points through AlexNet) took 1.42 s this way, 0.62 s with the
// heap kept (bench/NOTES.md, "Host memory").
// Fixed thresholds: every block below 32 MiB from the heap, whose freed space glibc reuses for
// any size, and the heap kept up to 1 GiB of free space at its top.
const bool kHeapKept = [] {
  mallopt(M_MMAP_THRESHOLD, int(kLarge));
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();
#endif

size_t cache_limit() {
  const char* e = std::getenv("CORTEX_HOST_CACHE_MB");
  if (!e || !*e) return size_t(4096) << 20;
  char* end = nullptr;
  const unsigned long long mb = std::strtoull(e, &end, 10);
  CORTEX_CHECK(end && *end == '\0', "CORTEX_HOST_CACHE_MB: expected a number of megabytes, found '", e, "'");
  return static_cast<size_t>(mb) << 20;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;  // rounded size -> blocks
  size_t bytes = 0;
  size_t limit = cache_limit();
};

// Never destroyed: tensors that outlive static destruction (globals) may still free into it.
Cache& cache() {
  static Cache* c = new Cache;
  return *c;
}

}  // namespace

void* allocate(size_t nbytes) {
  const size_t n = rounded(nbytes);
  if (n >= kLarge) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free.find(n);
    if (it != c.free.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.bytes -= n;
      return p;
    }
  }
  void* p = std::aligned_alloc(64, n);
  if (!p && n >= kLarge) {  // the cache may be what holds the memory
    empty_cache();
    p = std::aligned_alloc(64, n);
  }
  CORTEX_CHECK(p != nullptr, "out of host memory allocating ", nbytes, " bytes");
  return p;
}

void deallocate(void* p, size_t nbytes) {
  if (!p) return;
  const size_t n = rounded(nbytes);
  if (n >= kLarge) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    if (c.bytes + n <= c.limit) {
      c.free[n].push_back(p);
      c.bytes += n;
      return;
    }
  }
  std::free(p);
}

size_t cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.bytes;
}

void empty_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [n, blocks] : c.free)
    for (void* p : blocks) std::free(p);
  c.free.clear();
  c.bytes = 0;
}

}  // namespace cortex::host
