// The SIMT runtime: runs CUDA kernel source, compiled by the host compiler, on the CPU (the
// emulated CUDA device; design and measured costs in ../shared/SIMT.md, guide in docs/simt.md).
//
// Kernel sources do not include this header directly: they include kernels/cuda/cuda_compat.h,
// which maps CUDA's names (threadIdx, __syncthreads, __shfl_sync, launch, ...) onto it on the host
// and onto the real CUDA toolkit under nvcc. Tests and tools use the schedule functions below.
#pragma once
#ifdef __CUDACC__
#error "kernels/cuda/simt/runtime.h is the host (emulated device) runtime; nvcc builds use CUDA itself"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/cuda/simt/types.h"
#ifdef CORTEX_SIMT_PROFILE
#include "kernels/cuda/simt/profile.h"
#endif

namespace cortex::simt {

// The order in which the emulated device runs the threads of a block between two sync points,
// and the blocks of a grid. A deterministic kernel gives bit-identical output in every order; a
// kernel with a missing barrier usually does not.
enum class Order { forward, reverse, random };
struct Schedule {
  Order order = Order::forward;
  std::uint64_t seed = 0;  // for Order::random
};

// Parses "forward", "reverse", "random" or "random:SEED" (the syntax of CORTEX_SIMT_ORDER).
// Throws cortex::Error naming the accepted forms otherwise.
Schedule parse_schedule(const std::string& text);
std::string to_string(const Schedule& s);

// The schedule launches use: set_schedule's, else CORTEX_SIMT_ORDER's (read when first needed),
// else forward. Throws cortex::Error when CORTEX_SIMT_ORDER is malformed.
Schedule schedule();
void set_schedule(const Schedule& s);
// Forgets set_schedule: launches follow CORTEX_SIMT_ORDER again.
void clear_schedule();

// How many OS threads run the blocks of a launch, each one block at a time: set_os_threads's,
// else CORTEX_SIMT_THREADS's (read when first needed), else 1. More than one starts helper
// threads for each launch (blocks then run concurrently, so TSan also sees races between
// blocks); on 2 cores one is faster. set_os_threads(0) follows CORTEX_SIMT_THREADS again.
// Both throw cortex::Error outside [1, kMaxOsThreads].
inline constexpr unsigned kMaxOsThreads = 256;
unsigned parse_os_threads(const std::string& text);
unsigned os_threads();
void set_os_threads(unsigned n);

// Counters since the process started, for tests and benchmarks.
struct Stats {
  std::uint64_t launches = 0;
  std::uint64_t blocks = 0;
  std::uint64_t fast_blocks = 0;  // blocks that ran on the no-barrier fast path
  std::uint64_t switches = 0;     // fiber switches (both directions)
};
Stats stats();

// A call site in kernel source, for error messages.
struct Site {
  const char* file;
  int line;
};

namespace detail {

// What kernel code reads through threadIdx / blockIdx / blockDim / gridDim and the dynamic shared
// memory helper. Set by the runtime before each fiber switch; all fibers of a block share the OS
// thread, so a thread_local pointer is the current fiber's.
struct ThreadView {
  uint3 thread_idx;
};
struct BlockView {
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  unsigned char* dynamic_smem;
  std::size_t dynamic_smem_bytes;
};
// initial-exec: a plain %fs-relative load even from a shared library (the default model calls
// __tls_get_addr on every threadIdx read: 10% of a barrier's cost). The runtime's library is
// linked, not dlopen'ed, so the static TLS block has room for these two pointers.
extern thread_local const ThreadView* tl_thread __attribute__((tls_model("initial-exec")));
extern thread_local const BlockView* tl_block __attribute__((tls_model("initial-exec")));

// Runs body(args) once per thread of every block of the grid. Limits were checked by the caller
// (cortex::launch); this checks them again and throws cortex::Error naming `kernel`.
void run_grid(const char* kernel, dim3 grid, dim3 block, std::size_t smem_bytes, void (*body)(const void*),
              const void* args);

// Block barrier: all threads of the block that have not exited must arrive, at the same site.
// Returns how many arrived with a non-zero predicate, and how many arrived (for
// __syncthreads_count/_and/_or).
struct BarrierVote {
  int count;
  int arrived;
};
BarrierVote syncthreads_vote(Site site, int predicate);
inline void syncthreads(Site site) { syncthreads_vote(site, 0); }

enum class WarpOp : int { shfl, shfl_up, shfl_down, shfl_xor, ballot, any, all, sync };
// One warp operation of the calling lane: `value` is its contribution (raw bits), `arg` the source
// lane / delta / lane mask of a shuffle, `width` the shuffle segment. Returns the raw result.
std::uint64_t warp_op(Site site, WarpOp op, unsigned mask, std::uint64_t value, int arg, int width);

template <class T>
std::uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp shuffles move values of at most 8 bytes");
  std::uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
T from_bits(std::uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

// Calls kernel(args...) from a tuple of the kernel's own parameter types: each CUDA thread gets
// its own copy of the parameters, as on a GPU.
template <class Tuple, class... P>
void call_kernel(const void* packed) {
  const auto& p = *static_cast<const std::pair<void (*)(P...), Tuple>*>(packed);
  std::apply(p.first, p.second);
}

}  // namespace detail

// Runs `kernel` on the emulated device (synchronously, on the calling OS thread). Arguments are
// converted to the kernel's parameter types first, as a <<<>>> launch does.
template <class... P, class... A>
void run(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem_bytes, A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "launch: the number of arguments differs from the kernel's parameters");
  using Tuple = std::tuple<std::decay_t<P>...>;
  const std::pair<void (*)(P...), Tuple> packed{kernel, Tuple(std::forward<A>(args)...)};
#ifdef CORTEX_SIMT_PROFILE
  // CUDA's parameter space: reading the packed arguments is not a global load.
  profile::detail::kernel_args(&packed, sizeof packed);
#endif
  detail::run_grid(name, grid, block, smem_bytes, &detail::call_kernel<Tuple, P...>, &packed);
}

// Warp operations, called through cuda_compat.h's macros (which add the call site).
template <class T>
T shfl_sync(Site s, unsigned mask, T v, int src_lane, int width = 32) {
  return detail::from_bits<T>(detail::warp_op(s, detail::WarpOp::shfl, mask, detail::to_bits(v), src_lane, width));
}
template <class T>
T shfl_up_sync(Site s, unsigned mask, T v, unsigned delta, int width = 32) {
  return detail::from_bits<T>(
      detail::warp_op(s, detail::WarpOp::shfl_up, mask, detail::to_bits(v), static_cast<int>(delta), width));
}
template <class T>
T shfl_down_sync(Site s, unsigned mask, T v, unsigned delta, int width = 32) {
  return detail::from_bits<T>(
      detail::warp_op(s, detail::WarpOp::shfl_down, mask, detail::to_bits(v), static_cast<int>(delta), width));
}
template <class T>
T shfl_xor_sync(Site s, unsigned mask, T v, int lane_mask, int width = 32) {
  return detail::from_bits<T>(detail::warp_op(s, detail::WarpOp::shfl_xor, mask, detail::to_bits(v), lane_mask, width));
}
inline unsigned ballot_sync(Site s, unsigned mask, int pred) {
  return static_cast<unsigned>(detail::warp_op(s, detail::WarpOp::ballot, mask, pred != 0, 0, 32));
}
inline int any_sync(Site s, unsigned mask, int pred) {
  return static_cast<int>(detail::warp_op(s, detail::WarpOp::any, mask, pred != 0, 0, 32));
}
inline int all_sync(Site s, unsigned mask, int pred) {
  return static_cast<int>(detail::warp_op(s, detail::WarpOp::all, mask, pred != 0, 0, 32));
}
inline void syncwarp(Site s, unsigned mask = 0xFFFFFFFFu) { detail::warp_op(s, detail::WarpOp::sync, mask, 0, 0, 32); }

// The block's dynamic shared memory (exactly the launch's byte count, filled with 0xFF at block
// start so a read before any write shows up as NaN).
inline unsigned char* dynamic_smem() { return detail::tl_block->dynamic_smem; }

}  // namespace cortex::simt
