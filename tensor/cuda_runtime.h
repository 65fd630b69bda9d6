// The tensor layer's view of a CUDA device: memory and copies. Implemented with the CUDA runtime
// when the build has the CUDA backend (tensor/cuda_runtime.cpp), and by functions that throw a
// clear cortex::Error otherwise (tensor/cuda_runtime_none.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

namespace cortex::cuda {

struct MemoryStats {
  int64_t bytes_in_use = 0;     // handed out to tensors
  int64_t peak_bytes_in_use = 0;
  int64_t bytes_reserved = 0;   // held by the caching allocator, in use or cached
  int64_t num_allocs = 0;       // requests served
  int64_t num_device_mallocs = 0;  // requests that had to call cudaMalloc
};

bool built_with_cuda();
int device_count();                          // 0 when no driver or no device
void* device_alloc(size_t nbytes, int device);  // from the caching allocator
void device_free(void* p, size_t nbytes, int device);
void copy_host_to_device(void* dst, const void* src, size_t nbytes, int device);
void copy_device_to_host(void* dst, const void* src, size_t nbytes, int device);
void copy_device_to_device(void* dst, const void* src, size_t nbytes, int device);
void synchronize(int device);
MemoryStats memory_stats(int device = 0);
void empty_cache();  // returns cached blocks to the driver

}  // namespace cortex::cuda
