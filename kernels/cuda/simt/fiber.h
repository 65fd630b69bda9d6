// Fibers for the SIMT runtime: one per emulated CUDA thread, switched by hand.
//
// Internal to kernels/cuda/simt/. The switch itself lives in fiber.cpp, the one runtime file
// allowed to hold assembly: about 20 lines of x86-64 that save the callee-saved registers, MXCSR
// and the x87 control word (12-16 ns a switch here, against 300-425 ns for swapcontext, which
// makes a signal-mask system call each time). Other CPUs, or -DCORTEX_SIMT_UCONTEXT, use
// <ucontext.h> instead; the choice is made at compile time.
//
// The topology is a star: the OS thread's own stack (the scheduler) switches to a fiber, and a
// fiber only ever switches back to the scheduler. The sanitizer annotations rely on that.
#pragma once
#include <cstddef>
#include <vector>

#if defined(__x86_64__) && !defined(CORTEX_SIMT_UCONTEXT)
#define CORTEX_SIMT_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace cortex::simt::detail {

// Stack bytes per fiber. Sanitizers inflate frames (redzones, TSan's shadow calls), so they get
// four times as much.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr std::size_t kStackBytes = 512 * 1024;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr std::size_t kStackBytes = 512 * 1024;
#else
inline constexpr std::size_t kStackBytes = 128 * 1024;
#endif
#else
inline constexpr std::size_t kStackBytes = 128 * 1024;
#endif

// One execution context: a fiber with its own mmap'ed stack, or the scheduler (the OS thread's
// stack, which owns nothing).
struct Fiber {
  Fiber() = default;
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  ~Fiber();

#ifdef CORTEX_SIMT_ASM_SWITCH
  void* sp = nullptr;  // saved stack pointer while switched out
#else
  ucontext_t uc{};
#endif
  char* map = nullptr;          // the whole mapping, guard page first (null for the scheduler)
  std::size_t map_bytes = 0;
  const void* stack_bottom = nullptr;  // usable stack (above the guard page), for ASan
  std::size_t stack_size = 0;
  void* asan_fake_stack = nullptr;     // ASan's fake-stack handle while switched out
  void* tsan_fiber = nullptr;          // TSan's context for this fiber (null for the scheduler)
  void (*entry)(void*) = nullptr;      // what the fiber runs, and its argument
  void* arg = nullptr;
};

// Makes `f` a fiber that will call entry(arg) on the first switch to it. The stack is mapped on
// the first start and kept by `f` (the runtime pools fibers per OS thread, so a stack is mapped
// once, not per CUDA thread); ~Fiber unmaps it. entry must never return: it runs CUDA threads
// and parks (switches back to the scheduler) in between.
void fiber_start(Fiber& f, void (*entry)(void*), void* arg);

// Binds `f` to the calling OS thread's own stack so fibers can switch back to it.
void fiber_bind_scheduler(Fiber& f);

// Saves the current context in `from` and resumes `to`.
void fiber_switch(Fiber& from, Fiber& to);

// Called first thing on a new fiber's stack: completes the sanitizers' side of the switch that
// started it, and records the scheduler's stack bounds in `scheduler` for later switches back.
void fiber_entered(Fiber& scheduler);

}  // namespace cortex::simt::detail
