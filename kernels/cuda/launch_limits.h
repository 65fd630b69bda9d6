// Launch limits of the CUDA devices this project targets, checked before every launch on both the
// real and the emulated device, so a bad configuration fails the same way in CI as on a GPU.
//
// Numbers are sm_90's (H100, compute capability 9.0): 1024 threads a block; block dimensions up to
// 1024 x 1024 x 64; grid dimensions up to 2^31-1 x 65535 x 65535; dynamic shared memory up to
// 227 KB a block. Above 48 KB a kernel needs the opt-in attribute
// (cudaFuncAttributeMaxDynamicSharedMemorySize); launch() in cuda_compat.h sets it for you, so the
// limit enforced here is the opt-in one. Static __shared__ arrays count against the same 227 KB
// on a GPU, but only nvcc knows their size: that part of the limit is checked by the driver alone.
#pragma once
#include <cstddef>
#include <cstdint>

#include "tensor/error.h"

namespace cortex {

inline constexpr unsigned kMaxThreadsPerBlock = 1024;
inline constexpr unsigned kMaxBlockDim[3] = {1024, 1024, 64};
inline constexpr std::uint64_t kMaxGridDim[3] = {2147483647u, 65535u, 65535u};
inline constexpr std::size_t kDefaultDynamicSmemBytes = 48 * 1024;   // without the opt-in
inline constexpr std::size_t kMaxDynamicSmemBytes = 227 * 1024;      // with it (sm_90)

// Throws cortex::Error naming `kernel` when the launch configuration breaks one of the limits.
inline void check_launch(const char* kernel, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                         unsigned bz, std::size_t smem_bytes) {
  CORTEX_CHECK(kernel != nullptr, "launch: expected a kernel name, found a null pointer");
  const unsigned g[3] = {gx, gy, gz};
  const unsigned b[3] = {bx, by, bz};
  const char* axis[3] = {"x", "y", "z"};
  for (int i = 0; i < 3; ++i) {
    CORTEX_CHECK(b[i] >= 1 && b[i] <= kMaxBlockDim[i], "launch of ", kernel, ": block dimension ", axis[i],
                 " must be in [1, ", kMaxBlockDim[i], "], found ", b[i]);
    CORTEX_CHECK(g[i] >= 1 && g[i] <= kMaxGridDim[i], "launch of ", kernel, ": grid dimension ", axis[i],
                 " must be in [1, ", kMaxGridDim[i], "], found ", g[i]);
  }
  const std::uint64_t threads = std::uint64_t{bx} * by * bz;
  CORTEX_CHECK(threads <= kMaxThreadsPerBlock, "launch of ", kernel, ": at most ", kMaxThreadsPerBlock,
               " threads a block, found ", bx, " x ", by, " x ", bz, " = ", threads);
  CORTEX_CHECK(smem_bytes <= kMaxDynamicSmemBytes, "launch of ", kernel, ": at most ", kMaxDynamicSmemBytes,
               " bytes of dynamic shared memory a block (227 KB, sm_90 with the opt-in), found ", smem_bytes);
}

}  // namespace cortex
