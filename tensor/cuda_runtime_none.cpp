// Built when the CUDA backend is not: every device request fails with one clear message.
#include "tensor/cuda_runtime.h"
#include "tensor/error.h"

namespace cortex::cuda {
namespace {
[[noreturn]] void no_cuda() {
  throw Error("CUDA device requested, but cortexgrad was built without the CUDA backend "
              "(configure with -DCORTEX_CUDA=ON on a machine with the CUDA toolkit)");
}
}  // namespace
bool built_with_cuda() { return false; }
int device_count() { return 0; }
void* device_alloc(size_t, int) { no_cuda(); }
void device_free(void*, size_t, int) {}
void copy_host_to_device(void*, const void*, size_t, int) { no_cuda(); }
void copy_device_to_host(void*, const void*, size_t, int) { no_cuda(); }
void copy_device_to_device(void*, const void*, size_t, int) { no_cuda(); }
void synchronize(int) {}
MemoryStats memory_stats(int) { return {}; }
void empty_cache() {}
}  // namespace cortex::cuda
