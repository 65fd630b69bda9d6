// CUDA memory for tensors: a caching allocator and checked copies.
//
// The allocator rounds requests up to a size class (multiples of 512 B below 1 MiB, of 2 MiB
// above), keeps freed blocks in per-class free lists and reuses them, so a training loop does
// not call cudaMalloc/cudaFree every step. One mutex guards it: tensors are freed from any thread.
#include "tensor/cuda_runtime.h"

#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <vector>

#include "tensor/error.h"

#define CORTEX_CUDA_CHECK(expr)                                                              \
  do {                                                                                       \
    cudaError_t err_ = (expr);                                                               \
    if (err_ != cudaSuccess)                                                                 \
      throw ::cortex::Error(::cortex::detail::cat(__FILE__, ":", __LINE__, ": ", #expr, ": ", \
                                                  cudaGetErrorString(err_)));                \
  } while (0)

namespace cortex::cuda {
namespace {

size_t size_class(size_t n) {
  if (n == 0) n = 1;
  const size_t small = 512, large = size_t(2) << 20;
  return n < (size_t(1) << 20) ? (n + small - 1) / small * small : (n + large - 1) / large * large;
}

struct Allocator {
  std::mutex mu;
  std::map<int, std::multimap<size_t, void*>> free_blocks;  // device -> size class -> block
  std::map<int, MemoryStats> stats;

  void* alloc(size_t n, int dev) {
    const size_t sz = size_class(n);
    std::lock_guard<std::mutex> lock(mu);
    MemoryStats& st = stats[dev];
    st.num_allocs++;
    auto& fl = free_blocks[dev];
    auto it = fl.find(sz);
    void* p = nullptr;
    if (it != fl.end()) {
      p = it->second;
      fl.erase(it);
    } else {
      CORTEX_CUDA_CHECK(cudaSetDevice(dev));
      cudaError_t err = cudaMalloc(&p, sz);
      if (err == cudaErrorMemoryAllocation) {  // give the cache back and try once more
        cudaGetLastError();
        release_locked();
        err = cudaMalloc(&p, sz);
      }
      if (err != cudaSuccess)
        throw Error(detail::cat("cudaMalloc of ", sz, " bytes on cuda:", dev, " failed: ",
                                cudaGetErrorString(err)));
      st.bytes_reserved += static_cast<int64_t>(sz);
      st.num_device_mallocs++;
    }
    st.bytes_in_use += static_cast<int64_t>(sz);
    if (st.bytes_in_use > st.peak_bytes_in_use) st.peak_bytes_in_use = st.bytes_in_use;
    return p;
  }
  void free(void* p, size_t n, int dev) {
    std::lock_guard<std::mutex> lock(mu);
    const size_t sz = size_class(n);
    stats[dev].bytes_in_use -= static_cast<int64_t>(sz);
    free_blocks[dev].emplace(sz, p);
  }
  void release_locked() {
    for (auto& [dev, fl] : free_blocks) {
      cudaSetDevice(dev);
      for (auto& [sz, p] : fl) {
        cudaFree(p);
        stats[dev].bytes_reserved -= static_cast<int64_t>(sz);
      }
      fl.clear();
    }
  }
};

Allocator& allocator() {
  static Allocator* a = new Allocator();  // never destroyed: tensors may outlive static teardown
  return *a;
}

}  // namespace

bool built_with_cuda() { return true; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void* device_alloc(size_t nbytes, int device) { return allocator().alloc(nbytes, device); }
void device_free(void* p, size_t nbytes, int device) { allocator().free(p, nbytes, device); }

void copy_host_to_device(void* dst, const void* src, size_t n, int device) {
  CORTEX_CUDA_CHECK(cudaSetDevice(device));
  CORTEX_CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice));
}
void copy_device_to_host(void* dst, const void* src, size_t n, int device) {
  CORTEX_CUDA_CHECK(cudaSetDevice(device));
  CORTEX_CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost));
}
void copy_device_to_device(void* dst, const void* src, size_t n, int device) {
  CORTEX_CUDA_CHECK(cudaSetDevice(device));
  CORTEX_CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToDevice));
}
void synchronize(int device) {
  CORTEX_CUDA_CHECK(cudaSetDevice(device));
  CORTEX_CUDA_CHECK(cudaDeviceSynchronize());
}
MemoryStats memory_stats(int device) {
  std::lock_guard<std::mutex> lock(allocator().mu);
  return allocator().stats[device];
}
void empty_cache() {
  std::lock_guard<std::mutex> lock(allocator().mu);
  allocator().release_locked();
}

}  // namespace cortex::cuda
