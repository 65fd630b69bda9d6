// Fiber switch and fiber stacks of the SIMT runtime (see fiber.h). This is the one runtime file
// that holds assembly.
#include "kernels/cuda/simt/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>


#if defined(__SANITIZE_ADDRESS__)
#define CORTEX_SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORTEX_SIMT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CORTEX_SIMT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORTEX_SIMT_TSAN 1
#endif
#endif
#ifdef CORTEX_SIMT_PROFILE
#include "kernels/cuda/simt/profile.h"
#endif
#ifdef CORTEX_SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CORTEX_SIMT_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#ifdef CORTEX_SIMT_ASM_SWITCH
// void cortex_simt_switch(void** save_sp, void* new_sp)
// Pushes the callee-saved registers and the FP control state (MXCSR, x87 control word: the SysV
// ABI makes both callee-saved) on the current stack, stores the stack pointer in *save_sp, loads
// new_sp and pops the same frame from there. Caller-saved registers need no saving: the compiler
// already spilled them around this call.
//
// cortex_simt_trampoline is where a new fiber's first switch "returns" to: fiber_start lays out
// a frame whose r12 is the argument, r13 the entry and whose return address is the trampoline.
// The entry never returns (it switches away for the last time), so ud2 is unreachable.
asm(R"(
    .text
    .globl cortex_simt_switch
    .hidden cortex_simt_switch
    .type cortex_simt_switch, @function
cortex_simt_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cortex_simt_switch, .-cortex_simt_switch

    .globl cortex_simt_trampoline
    .hidden cortex_simt_trampoline
    .type cortex_simt_trampoline, @function
cortex_simt_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size cortex_simt_trampoline, .-cortex_simt_trampoline
)");
extern "C" void cortex_simt_switch(void** save_sp, void* new_sp);
extern "C" void cortex_simt_trampoline();
#endif

namespace cortex::simt::detail {
namespace {

std::size_t page_bytes() {
  static const std::size_t p = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "cortex simt: %s\n", what);
  std::abort();
}

char* map_stack() {
  const std::size_t bytes = kStackBytes + page_bytes();
  void* m = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) die("mmap of a fiber stack failed (out of address space?)");
  // The lowest page is the guard: a kernel that overflows its stack faults there instead of
  // silently writing into the neighbouring fiber's stack.
  if (mprotect(m, page_bytes(), PROT_NONE) != 0) die("mprotect of a fiber stack's guard page failed");
  return static_cast<char*>(m);
}

#ifndef CORTEX_SIMT_ASM_SWITCH
// makecontext passes int arguments only: the Fiber pointer travels as two halves.
void ucontext_entry(unsigned hi, unsigned lo) {
  auto* f = reinterpret_cast<Fiber*>((static_cast<std::uintptr_t>(hi) << 32) | lo);
  f->entry(f->arg);
  die("a fiber's entry returned");
}
#endif

}  // namespace

Fiber::~Fiber() {
  if (map) munmap(map, map_bytes);
#ifdef CORTEX_SIMT_TSAN
  if (tsan_fiber && map_bytes) __tsan_destroy_fiber(tsan_fiber);
#endif
}

void fiber_bind_scheduler(Fiber& f) {
  f.map = nullptr;
#ifdef CORTEX_SIMT_TSAN
  f.tsan_fiber = __tsan_get_current_fiber();
#endif
}

void fiber_start(Fiber& f, void (*entry)(void*), void* arg) {
  if (!f.map) {
    f.map = map_stack();
#ifdef CORTEX_SIMT_PROFILE
    // A CUDA thread's locals (registers, local memory) are not memory traffic to the profiler.
    profile::detail::fiber_stack(f.map, kStackBytes + page_bytes());
#endif
  }
  f.map_bytes = kStackBytes + page_bytes();
  f.stack_bottom = f.map + page_bytes();
  f.stack_size = kStackBytes;
  f.entry = entry;
  f.arg = arg;
  f.asan_fake_stack = nullptr;
#ifdef CORTEX_SIMT_ASAN
  // A restarted stack still carries the poisoned redzones of the frames that lived on it before.
  __asan_unpoison_memory_region(const_cast<void*>(f.stack_bottom), f.stack_size);
#endif
#ifdef CORTEX_SIMT_TSAN
  // One TSan context per fiber, created once (about 0.5 ms each). A fiber that runs several CUDA
  // threads orders them, which hides nothing: the runtime hands a fiber to another thread only
  // at a block boundary (blocks are ordered by their start and end annotations anyway), so the
  // threads of one block always have distinct fibers.
  if (!f.tsan_fiber) f.tsan_fiber = __tsan_create_fiber(0);
#endif
#ifdef CORTEX_SIMT_ASM_SWITCH
  // Stack colouring: the stacks are a page-multiple apart, so without an offset every fiber's
  // hot top-of-stack lines fall into the same L1 set and a block of 1024 fibers thrashes it.
  thread_local unsigned colour = 0;
  char* top = f.map + f.map_bytes - 64 * (colour++ % 64);
  auto* frame = reinterpret_cast<std::uint64_t*>(reinterpret_cast<std::uintptr_t>(top - 64) & ~std::uintptr_t{15});
  // FP state: the defaults (MXCSR 0x1F80: round to nearest, no flush-to-zero, exceptions masked;
  // x87 0x037F), like CUDA's default float arithmetic, whatever the launching thread has set.
  // A fiber keeps its own state from then on: the switch saves and restores it.
  frame[0] = std::uint64_t{0x1F80} | (std::uint64_t{0x037F} << 32);
  frame[1] = 0;                                            // r15
  frame[2] = 0;                                            // r14
  frame[3] = reinterpret_cast<std::uint64_t>(entry);       // r13
  frame[4] = reinterpret_cast<std::uint64_t>(arg);         // r12
  frame[5] = 0;                                            // rbx
  frame[6] = 0;                                            // rbp
  frame[7] = reinterpret_cast<std::uint64_t>(&cortex_simt_trampoline);  // return address
  f.sp = frame;
#else
  if (getcontext(&f.uc) != 0) die("getcontext failed");
  f.uc.uc_stack.ss_sp = const_cast<void*>(f.stack_bottom);
  f.uc.uc_stack.ss_size = f.stack_size;
  f.uc.uc_link = nullptr;
  const auto p = reinterpret_cast<std::uintptr_t>(&f);
  makecontext(&f.uc, reinterpret_cast<void (*)()>(&ucontext_entry), 2, static_cast<unsigned>(p >> 32),
              static_cast<unsigned>(p & 0xFFFFFFFFu));
#endif
}

void fiber_switch(Fiber& from, Fiber& to) {
#ifdef CORTEX_SIMT_ASAN
  __sanitizer_start_switch_fiber(&from.asan_fake_stack, to.stack_bottom, to.stack_size);
#endif
#ifdef CORTEX_SIMT_TSAN
  // No implied synchronisation: the runtime adds exactly CUDA's ordering (barriers, warp
  // operations, block start and end) with explicit release/acquire, so TSan reports the rest.
  __tsan_switch_to_fiber(to.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef CORTEX_SIMT_ASM_SWITCH
  cortex_simt_switch(&from.sp, to.sp);
#else
  if (swapcontext(&from.uc, &to.uc) != 0) die("swapcontext failed");
#endif
#ifdef CORTEX_SIMT_ASAN
  __sanitizer_finish_switch_fiber(from.asan_fake_stack, nullptr, nullptr);
#endif
}

void fiber_entered(Fiber& scheduler) {
#ifdef CORTEX_SIMT_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &scheduler.stack_bottom, &scheduler.stack_size);
#else
  (void)scheduler;
#endif
}

}  // namespace cortex::simt::detail
