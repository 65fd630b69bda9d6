// Memory-traffic profile of the emulated CUDA device (docs/profile.md): per kernel launch, the
// global loads and stores a GPU would issue, their 32-byte sectors per warp-level request
// (coalescing), the distinct bytes touched (compulsory DRAM traffic), shared-memory wavefronts and
// bank conflicts, barriers, shuffles and the FLOPs the launch declared; and a roofline estimate
// for a named GPU from those counts.
//
// Only a profiling build records anything: clang with CORTEX_SIMT_PROFILE=ON (its own build folder,
// scripts/simt-profile.sh), where the kernel sources are compiled with
// -fsanitize-coverage=trace-pc-guard,trace-loads,trace-stores and every load and store calls back
// into kernels/cuda/simt/profile.cpp with its address. In every other build this header's functions
// are not defined and the runtime has no hook (the normal build's code is unchanged).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/simt/types.h"

namespace cortex::simt::profile {

// Counts of one kind of access (global loads, global stores, shared loads, shared stores).
// A *request* is one warp-level access: the k-th execution of one load/store instruction by the
// lanes of one warp (lanes = linear thread index / 32 of the block), as Nsight Compute counts
// "requests". Lanes that did not execute it that k-th time are inactive in the request.
struct AccessCounts {
  std::uint64_t requests = 0;   // warp-level accesses
  std::uint64_t accesses = 0;   // lane-level accesses (one per thread per execution)
  std::uint64_t bytes = 0;      // bytes requested by the lanes
  std::uint64_t sectors = 0;    // global: distinct 32-byte sectors per request, summed
  std::uint64_t wavefronts = 0; // shared: wavefronts (passes through the 32 banks), summed
  std::uint64_t ideal_wavefronts = 0;  // shared: wavefronts with no conflict (one per phase)
  std::uint64_t max_ways = 0;          // shared: most wavefronts of one phase of one request
  std::uint64_t conflicts() const { return wavefronts - ideal_wavefronts; }
};

struct KernelProfile {
  std::string kernel;
  dim3 grid, block;
  std::size_t dynamic_smem_bytes = 0;
  std::uint64_t blocks = 0, threads = 0;
  AccessCounts global_load, global_store, shared_load, shared_store;
  // Distinct global bytes read, written, and touched at all (the union): what must cross DRAM at
  // least once, with an infinite cache.
  std::uint64_t distinct_read_bytes = 0, distinct_written_bytes = 0, distinct_bytes = 0;
  std::uint64_t barriers = 0;     // __syncthreads completed, per block, summed (block-level)
  std::uint64_t shuffles = 0;     // __shfl*_sync completed, per warp, summed (warp-level)
  std::uint64_t warp_votes = 0;   // __ballot/__any/__all_sync and __syncwarp completed (warp-level)
  double flops = 0;               // declared for the launch (declare_flops), 0 when none was
};

// Records every launch from start() until stop(), which returns them in launch order. Launches
// run on one OS thread while recording (CORTEX_SIMT_THREADS is ignored). Throws cortex::Error when
// recording is already on (start) or off (stop).
void start();
std::vector<KernelProfile> stop();
// The FLOPs of the next launch (the launch site or a kernel registry declares them; the emulator
// cannot tell an FMA from any other instruction).
void declare_flops(double flops);
// Whether the running program has instrumented kernel code: true once any load or store callback
// fired. A profile with zero loads from a kernel that loads means the kernel's source was not
// compiled with the coverage flags.
bool saw_instrumented_code();

// A GPU's published figures (sources in profile.cpp).
struct Gpu {
  std::string name;
  double fp32_flops;      // peak FP32 (non-tensor) FLOP/s
  double dram_bytes_s;    // HBM bandwidth, bytes/s
  double l2_bytes;        // L2 cache size
  int sms;                // streaming multiprocessors
  // The SM clock implied by the FP32 peak (128 FP32 lanes per SM, 2 FLOPs per FMA).
  double clock_hz() const { return fp32_flops / (static_cast<double>(sms) * 256.0); }
};
// Throws cortex::Error naming the known GPUs for any other name.
const Gpu& gpu(const std::string& name);
std::vector<std::string> gpu_names();

// The roofline estimate of one launch (an estimate: no latency, occupancy, cache-hit or
// instruction-issue model). Times of:
//   compute     the declared FLOPs at the FP32 peak;
//   dram        HBM traffic: the distinct bytes (compulsory, a perfect cache) when they fit L2, else
//               every sector (no reuse at all); both are shown;
//   shared      the shared-memory wavefronts at one per clock per SM (32 banks x 4 bytes);
//   l1          the global sectors at 4 per clock per SM (assumed: the 128-byte L1/shared data path);
// and `bound`, the largest of the four.
struct Roofline {
  double compute_s = 0, compulsory_s = 0, sectors_s = 0, dram_s = 0, shared_s = 0, l1_s = 0, bound_s = 0;
  const char* limiter = "";  // which of compute, dram, shared, l1 gives bound
  double intensity = 0;      // declared FLOPs per distinct byte
  double ridge = 0;          // the GPU's FLOPs per HBM byte where memory and compute times meet
  bool fits_l2 = false;
};
Roofline roofline(const KernelProfile& p, const Gpu& g);

// One table (counts beside the roofline estimate) for a launch.
std::string format(const KernelProfile& p, const Gpu& g);

namespace detail {
// Hooks the runtime calls in a profiling build (kernels/cuda/simt/runtime.cpp, fiber.cpp).
bool active();
void launch_begin(const char* kernel, dim3 grid, dim3 block, std::size_t smem_bytes);
void launch_end();
void kernel_args(const void* p, std::size_t bytes);
void block_begin(const void* threads, std::size_t thread_stride, unsigned nthreads, const void* block_view,
                 std::size_t block_view_bytes, const void* dynamic_smem, std::size_t dynamic_smem_bytes);
void block_end();
void fiber_stack(const void* lo, std::size_t bytes);
void barrier_completed();
void shuffle_completed();
void warp_vote_completed();
}  // namespace detail

}  // namespace cortex::simt::profile
