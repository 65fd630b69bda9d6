// The one header CUDA kernel sources include. Each kernel is written once and built twice: by
// nvcc for real GPUs (this header then includes the CUDA runtime), and by the host compiler for
// the emulated CUDA device, where the same names map onto the project's SIMT runtime
// (kernels/cuda/simt/, design in ../shared/SIMT.md, guide in docs/simt.md).
//
// What kernel code uses from here, on both devices:
//   CORTEX_LAUNCH(kernel, grid, block, smem_bytes, stream, args...)
//       launches `kernel` (its name goes into error messages); same as
//       cortex::launch("kernel", kernel, grid, block, smem_bytes, stream, args...).
//       Limits (kernels/cuda/launch_limits.h) are checked first; errors throw cortex::Error.
//   CORTEX_DYNAMIC_SMEM(T, name)
//       inside a kernel: `name` points to the block's dynamic shared memory as T*. Raw
//       `extern __shared__` is refused by the lint outside this file.
//   cortex::Stream   the stream type (cudaStream_t under nvcc; ignored on the emulated device,
//                    which runs every launch synchronously).
// and, on the host, CUDA's own names: __global__, __device__, __host__, __forceinline__,
// __shared__, threadIdx/blockIdx/blockDim/gridDim, dim3/float4/..., __syncthreads (and its
// _count/_and/_or forms), the warp
// operations (__shfl_sync and its up/down/xor forms, __ballot_sync, __any_sync, __all_sync,
// __syncwarp), atomics and the common math intrinsics.
//
// This file is one of the few allowed to hold `<<<` and `extern __shared__`.
#pragma once
#include <cstddef>
#include <utility>

#include "kernels/cuda/launch_limits.h"
#include "tensor/error.h"

#ifdef __CUDACC__

#include <cuda_runtime.h>

namespace cortex {

using Stream = cudaStream_t;

template <class... P, class... A>
void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem_bytes, Stream stream,
            A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: the number of arguments differs from the kernel's parameters");
  check_launch(name, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem_bytes);
  if (smem_bytes > kDefaultDynamicSmemBytes) {
    // Above 48 KB a kernel must opt in before its launch (sm_70+).
    const cudaError_t e =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem_bytes));
    CORTEX_CHECK(e == cudaSuccess, "launch of ", name, ": could not opt in to ", smem_bytes,
                 " bytes of dynamic shared memory: ", cudaGetErrorString(e));
  }
  kernel<<<grid, block, smem_bytes, stream>>>(std::forward<A>(args)...);
  const cudaError_t e = cudaGetLastError();
  CORTEX_CHECK(e == cudaSuccess, "launch of ", name, " failed: ", cudaGetErrorString(e));
}

}  // namespace cortex

// One byte array for every kernel of a translation unit (nvcc refuses the same extern name with
// different types), viewed as T*.
#define CORTEX_DYNAMIC_SMEM(T, name)                                  \
  extern __shared__ __align__(16) unsigned char cortex_dynamic_smem_[]; \
  T* const name = reinterpret_cast<T*>(cortex_dynamic_smem_)

#else  // the emulated CUDA device

#include "kernels/cuda/simt/device_functions.h"
#include "kernels/cuda/simt/runtime.h"
#include "kernels/cuda/simt/types.h"

namespace cortex {

// Streams do nothing on the emulated device: each launch has finished when launch returns.
using Stream = struct cortex_simt_stream*;

template <class... P, class... A>
void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem_bytes, Stream stream,
            A&&... args) {
  (void)stream;
  check_launch(name, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem_bytes);
  simt::run(name, kernel, grid, block, smem_bytes, std::forward<A>(args)...);
}

}  // namespace cortex

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// All fibers of a block run on one OS thread, so thread_local storage is the block's shared
// memory (at block scope thread_local implies static).
#define __shared__ thread_local

#define threadIdx (::cortex::simt::detail::tl_thread->thread_idx)
#define blockIdx (::cortex::simt::detail::tl_block->block_idx)
#define blockDim (::cortex::simt::detail::tl_block->block_dim)
#define gridDim (::cortex::simt::detail::tl_block->grid_dim)

// Sync points carry their call site, for the runtime's divergence, deadlock and mask errors.
#define CORTEX_SIMT_SITE (::cortex::simt::Site{__FILE__, __LINE__})
#define __syncthreads() ::cortex::simt::detail::syncthreads(CORTEX_SIMT_SITE)
#define __syncthreads_count(pred) (::cortex::simt::detail::syncthreads_vote(CORTEX_SIMT_SITE, (pred)).count)
#define __syncthreads_or(pred) (::cortex::simt::detail::syncthreads_vote(CORTEX_SIMT_SITE, (pred)).count != 0)
#define __syncthreads_and(pred)                                                       \
  ([](::cortex::simt::detail::BarrierVote v) { return v.count == v.arrived; }(         \
      ::cortex::simt::detail::syncthreads_vote(CORTEX_SIMT_SITE, (pred))))
#define __syncwarp(...) ::cortex::simt::syncwarp(CORTEX_SIMT_SITE __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_sync(...) ::cortex::simt::shfl_sync(CORTEX_SIMT_SITE, __VA_ARGS__)
#define __shfl_up_sync(...) ::cortex::simt::shfl_up_sync(CORTEX_SIMT_SITE, __VA_ARGS__)
#define __shfl_down_sync(...) ::cortex::simt::shfl_down_sync(CORTEX_SIMT_SITE, __VA_ARGS__)
#define __shfl_xor_sync(...) ::cortex::simt::shfl_xor_sync(CORTEX_SIMT_SITE, __VA_ARGS__)
#define __ballot_sync(...) ::cortex::simt::ballot_sync(CORTEX_SIMT_SITE, __VA_ARGS__)
#define __any_sync(...) ::cortex::simt::any_sync(CORTEX_SIMT_SITE, __VA_ARGS__)
#define __all_sync(...) ::cortex::simt::all_sync(CORTEX_SIMT_SITE, __VA_ARGS__)

#define CORTEX_DYNAMIC_SMEM(T, name) T* const name = reinterpret_cast<T*>(::cortex::simt::dynamic_smem())

#endif  // __CUDACC__

#define CORTEX_LAUNCH(kernel, grid, block, smem_bytes, stream, ...) \
  ::cortex::launch(#kernel, kernel, grid, block, smem_bytes, stream __VA_OPT__(, ) __VA_ARGS__)
