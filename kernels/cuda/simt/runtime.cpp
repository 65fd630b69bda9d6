// The SIMT runtime's scheduler: blocks, barriers, warp operations, schedule orders, sanitizer
// annotations. Design: ../shared/SIMT.md; the fiber switch is in fiber.cpp.
#include "kernels/cuda/simt/runtime.h"

#include <algorithm>
#include <exception>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "kernels/cuda/launch_limits.h"
#include "kernels/cuda/simt/fiber.h"
#ifdef CORTEX_SIMT_PROFILE
#include "kernels/cuda/simt/profile.h"
#endif
#include "tensor/error.h"

#if defined(__SANITIZE_THREAD__)
#define CORTEX_SIMT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CORTEX_SIMT_TSAN 1
#endif
#endif

#ifdef CORTEX_SIMT_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace cortex::simt {
namespace detail {

// The profiling build's hooks (kernels/cuda/simt/profile.h); nothing in every other build.
#ifdef CORTEX_SIMT_PROFILE
#define CORTEX_SIMT_PROFILE_HOOK(...) ::cortex::simt::profile::detail::__VA_ARGS__
#else
#define CORTEX_SIMT_PROFILE_HOOK(...) ((void)0)
#endif

thread_local const ThreadView* tl_thread __attribute__((tls_model("initial-exec"))) = nullptr;
thread_local const BlockView* tl_block __attribute__((tls_model("initial-exec"))) = nullptr;

namespace {

// ---- TSan: the runtime's own bookkeeping is shared by all fibers without synchronisation (they
// take turns on one OS thread), so its memory accesses are hidden from TSan; kernel code is not.
// CUDA's ordering is then added explicitly: release when arriving at a barrier or warp operation,
// acquire when leaving it, on an object per generation, and the same at block start and end.
#ifdef CORTEX_SIMT_TSAN
void hide_begin() {
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
}
void hide_end() {
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
}
void tsan_release(void* p) { __tsan_release(p); }
void tsan_acquire(void* p) { __tsan_acquire(p); }
constexpr bool kTsan = true;
#else
void hide_begin() {}
void hide_end() {}
void tsan_release(void*) {}
void tsan_acquire(void*) {}
constexpr bool kTsan = false;
#endif

enum class State : unsigned char { fresh, ready, running, waiting, exited };
enum class WaitFor : unsigned char { none, barrier, warp, warp_idle };

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::shfl: return "__shfl_sync";
    case WarpOp::shfl_up: return "__shfl_up_sync";
    case WarpOp::shfl_down: return "__shfl_down_sync";
    case WarpOp::shfl_xor: return "__shfl_xor_sync";
    case WarpOp::ballot: return "__ballot_sync";
    case WarpOp::any: return "__any_sync";
    case WarpOp::all: return "__all_sync";
    case WarpOp::sync: return "__syncwarp";
  }
  return "?";
}

bool same_site(Site a, Site b) {
  return a.line == b.line && (a.file == b.file || std::strcmp(a.file, b.file) == 0);
}

struct Thread {
  ThreadView view{};
  unsigned linear = 0, warp = 0, lane = 0;
  State state = State::fresh;
  WaitFor wait = WaitFor::none;
  Site site{"", 0};   // where it waits
  Fiber* fiber = nullptr;   // the fiber it runs on
};

// A fiber that runs CUDA threads one after another: when its thread exits it parks (switches to
// the scheduler) and the scheduler later hands it a fresh thread of this or a later block. Its
// stack and frames stay live between threads, so nothing is rebuilt per thread and the
// sanitizers' view of the stack stays balanced.
struct Worker {
  Fiber fiber;
  Thread* thread = nullptr;  // the thread to run when next resumed
  bool started = false;
};

// One warp's operation in progress. Each lane writes its value into slot[gen & 1][lane]; the
// slots are double-buffered because a fast lane may start the next operation (writing the other
// buffer) while slow lanes still read this one. It cannot get two ahead: the operation after
// next needs the slow lanes to arrive, which they do only after reading.
struct Warp {
  unsigned gen = 0;        // operations completed
  unsigned mask = 0;       // mask of the open operation (0: none open)
  unsigned arrived = 0;    // lanes of the open operation that arrived
  unsigned exists = 0;     // lanes that exist (the last warp of a block may be partial)
  unsigned exited = 0;
  WarpOp op = WarpOp::sync;
  Site site{"", 0};
  std::uint64_t slot[2][32] = {};
  char tsan_sync[2] = {};  // per-generation objects for TSan's release/acquire
};

// Per-OS-thread state of the launch being run.
struct Run {
  const char* kernel = "";
  Schedule sched;
  std::uint64_t rng = 0;
  void (*body)(const void*) = nullptr;
  const void* args = nullptr;
  BlockView block{};
  std::vector<Thread> threads;
  std::vector<unsigned> order;  // thread indices in schedule order
  std::vector<Warp> warps;
  unsigned live = 0;           // threads not exited
  unsigned exited = 0;
  // The block barrier's open phase.
  unsigned bar_gen = 0, bar_arrived = 0;
  // __syncthreads_count/_and/_or: true predicates and arrivals of a phase, by generation parity
  // (a fast thread can open the next phase while slow ones still read this one's result).
  unsigned bar_votes[2] = {}, bar_voters[2] = {};
  Site bar_site{"", 0};
  char tsan_bar[2] = {};
  char tsan_block_start = 0, tsan_block_end = 0;
  // Fast path: while true, a thread that finishes lets the same fiber run the next thread.
  bool fast = false;
  unsigned next_fast = 0;
  Thread* current = nullptr;
  std::uint64_t switches = 0;   // added to g_counters once per launch (an atomic per switch costs)
  Fiber scheduler;
  std::vector<std::unique_ptr<Worker>> free_workers;  // pooled per OS thread, each with its stack
  std::vector<std::unique_ptr<Worker>> used_workers;  // handed to threads of this block
};
thread_local Run* tl_run __attribute__((tls_model("initial-exec"))) = nullptr;

struct Counters {
  std::atomic<std::uint64_t> launches{0}, blocks{0}, fast_blocks{0}, switches{0};
};
Counters g_counters;

std::mutex g_sched_mutex;
bool g_sched_set = false;   // set_schedule was called
Schedule g_set_sched;       // its schedule
bool g_env_read = false;    // CORTEX_SIMT_ORDER was read
Schedule g_env_sched;       // its schedule
bool g_threads_set = false;     // set_os_threads was called with n > 0
unsigned g_set_threads = 1;
bool g_env_threads_read = false;  // CORTEX_SIMT_THREADS was read
unsigned g_env_threads = 1;

std::uint64_t splitmix(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void shuffle(std::vector<unsigned>& v, std::uint64_t& rng) {
  for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[splitmix(rng) % i]);
}

void arrange(std::vector<unsigned>& v, unsigned n, const Schedule& s, std::uint64_t& rng) {
  v.resize(n);
  for (unsigned i = 0; i < n; ++i) v[i] = s.order == Order::reverse ? n - 1 - i : i;
  if (s.order == Order::random) shuffle(v, rng);
}

[[noreturn]] void fail(const char* what, const Thread* t, Site site, const std::string& detail) {
  const Run& r = *tl_run;
  const uint3 b = r.block.block_idx;
  std::fprintf(stderr, "cortex simt: %s in kernel %s, block (%u,%u,%u)", what, r.kernel, b.x, b.y, b.z);
  if (t) std::fprintf(stderr, ", thread (%u,%u,%u)", t->view.thread_idx.x, t->view.thread_idx.y, t->view.thread_idx.z);
  std::fprintf(stderr, " at %s:%d: %s\n", site.file, site.line, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

// A block never hands a worker to a second thread: TSan would see the second thread ordered after
// the first. Workers return to the pool at block end.
Worker& take_worker(Run& r) {
  if (r.free_workers.empty()) r.free_workers.push_back(std::make_unique<Worker>());
  r.used_workers.push_back(std::move(r.free_workers.back()));
  r.free_workers.pop_back();
  return *r.used_workers.back();
}

void switch_to_scheduler(Run& r, Thread& t) {
  ++r.switches;
  fiber_switch(*t.fiber, r.scheduler);
}

// Suspends the calling thread until the scheduler resumes it (its state set back to ready).
void wait_here(Run& r, Thread& t, WaitFor w, Site s) {
  t.state = State::waiting;
  t.wait = w;
  t.site = s;
  // Waiting ends the fast path: from here on every thread needs its own fiber.
  r.fast = false;
  switch_to_scheduler(r, t);
  tl_thread = &t.view;
  r.current = &t;
}

void wake(Thread& t) {
  t.state = State::ready;
  t.wait = WaitFor::none;
}

void release_barrier(Run& r) {
  CORTEX_SIMT_PROFILE_HOOK(barrier_completed());
  r.bar_voters[r.bar_gen & 1] = r.bar_arrived;
  ++r.bar_gen;
  r.bar_arrived = 0;
  for (Thread& t : r.threads)
    if (t.state == State::waiting && t.wait == WaitFor::barrier) wake(t);
}

void complete_warp(Run& r, Warp& w, unsigned warp_index) {
#ifdef CORTEX_SIMT_PROFILE
  if (w.op == WarpOp::shfl || w.op == WarpOp::shfl_up || w.op == WarpOp::shfl_down || w.op == WarpOp::shfl_xor)
    CORTEX_SIMT_PROFILE_HOOK(shuffle_completed());
  else
    CORTEX_SIMT_PROFILE_HOOK(warp_vote_completed());
#endif
  ++w.gen;
  w.mask = 0;
  w.arrived = 0;
  const unsigned first = warp_index * 32;
  const unsigned end = std::min<unsigned>(first + 32, static_cast<unsigned>(r.threads.size()));
  for (unsigned i = first; i < end; ++i) {
    Thread& t = r.threads[i];
    if (t.state == State::waiting && (t.wait == WaitFor::warp || t.wait == WaitFor::warp_idle)) wake(t);
  }
}

// Bookkeeping when thread t's kernel body returns: it counts as arrived at the block barrier
// (sm_70+), and must not be named by a warp operation still waiting for it.
void thread_exited(Run& r, Thread& t) {
  t.state = State::exited;
  --r.live;
  ++r.exited;
  Warp& w = r.warps[t.warp];
  const unsigned bit = 1u << t.lane;
  w.exited |= bit;
  if ((w.mask & bit) && !(w.arrived & bit))
    fail("exited lane named in a warp mask", &t, w.site,
         std::string("lane ") + std::to_string(t.lane) + " exited while " + op_name(w.op) +
             " at this line waits for it (mask 0x" + [&] {
               char buf[16];
               std::snprintf(buf, sizeof buf, "%08x", w.mask);
               return std::string(buf);
             }() + ")");
  if (r.bar_arrived > 0 && r.bar_arrived + r.exited == r.threads.size()) release_barrier(r);
}

void fiber_main(void* p) {
  hide_begin();  // before touching anything the scheduler wrote (TSan)
  Worker& w = *static_cast<Worker*>(p);
  Run& r = *tl_run;
  fiber_entered(r.scheduler);
  for (;;) {
    Thread* t = w.thread;
    for (;;) {
      tsan_acquire(&r.tsan_block_start);
      hide_end();
      try {
        r.body(r.args);
      } catch (const std::exception& e) {
        // Unwinding cannot cross the fiber's first frame; device code does not throw on a GPU either.
        fail("exception thrown by device code", t, Site{"(kernel body)", 0}, e.what());
      }
      hide_begin();
      tsan_release(&r.tsan_block_end);
      thread_exited(r, *t);
      if (!r.fast || r.next_fast >= r.order.size()) break;
      // Fast path: no thread has met a barrier or a warp operation so far, so the next thread
      // runs right here on the same stack, with no switch.
      t = &r.threads[r.order[r.next_fast++]];
      t->fiber = &w.fiber;
      t->state = State::running;
      tl_thread = &t->view;
      r.current = t;
    }
    // Park until the scheduler hands this worker another thread. TSan refuses to retire a fiber
    // whose ignores are on (the pool is destroyed with the OS thread), so they are off while parked;
    // the switch touches only what the scheduler wrote before, read-only.
    r.current = nullptr;
    ++r.switches;
    hide_end();
    fiber_switch(w.fiber, r.scheduler);
    hide_begin();
  }
}

void resume(Run& r, Thread& t) {
  if (t.state == State::fresh) {
    Worker& w = take_worker(r);
    w.thread = &t;
    t.fiber = &w.fiber;
    if (!w.started) {
      fiber_start(w.fiber, &fiber_main, &w);
      w.started = true;
    }
  }
  t.state = State::running;
  tl_thread = &t.view;
  r.current = &t;
  ++r.switches;
  fiber_switch(r.scheduler, *t.fiber);
  r.current = nullptr;
}

void run_block(Run& r, uint3 block_idx) {
  const dim3 bd = r.block.block_dim;
  const unsigned n = bd.x * bd.y * bd.z;
  r.block.block_idx = block_idx;
  tl_block = &r.block;
  if (r.block.dynamic_smem_bytes) std::memset(r.block.dynamic_smem, 0xFF, r.block.dynamic_smem_bytes);
  r.threads.assign(n, Thread{});
  for (unsigned i = 0; i < n; ++i) {
    Thread& t = r.threads[i];
    t.linear = i;
    t.view.thread_idx = uint3{i % bd.x, (i / bd.x) % bd.y, i / (bd.x * bd.y)};
    t.warp = i / 32;
    t.lane = i % 32;
  }
  r.warps.assign((n + 31) / 32, Warp{});
  for (unsigned w = 0; w < r.warps.size(); ++w) {
    const unsigned lanes = std::min(32u, n - w * 32);
    r.warps[w].exists = lanes == 32 ? 0xFFFFFFFFu : (1u << lanes) - 1;
  }
  arrange(r.order, n, r.sched, r.rng);
  r.live = n;
  r.exited = 0;
  r.bar_gen = r.bar_arrived = 0;
  // TSan is told every fiber runs alone; the fast path would run a block's threads in one TSan
  // context and hide races between them, so it is off under TSan.
  r.fast = !kTsan;
  r.next_fast = 1;
  tsan_release(&r.tsan_block_start);
  CORTEX_SIMT_PROFILE_HOOK(block_begin(r.threads.data(), sizeof(Thread), n, &r.block, sizeof(r.block),
                                       r.block.dynamic_smem, r.block.dynamic_smem_bytes));

  resume(r, r.threads[r.order[0]]);
  const bool ran_fast = r.live == 0;
  while (r.live > 0) {
    if (r.sched.order == Order::random) shuffle(r.order, r.rng);
    bool progressed = false;
    for (unsigned i : r.order) {
      Thread& t = r.threads[i];
      if (t.state == State::fresh || t.state == State::ready) {
        resume(r, t);
        progressed = true;
      }
    }
    if (!progressed) {
      // Every live thread waits and none can be released: name the first in thread order.
      const Thread* w = nullptr;
      for (const Thread& t : r.threads)
        if (t.state == State::waiting) {
          w = &t;
          break;
        }
      std::string what = w->wait == WaitFor::barrier ? "__syncthreads" : op_name(r.warps[w->warp].op);
      fail("deadlock", w, w->site,
           "no thread can proceed; this thread waits in " + what + ", " + std::to_string(r.bar_arrived) +
               " threads wait at __syncthreads, " + std::to_string(r.exited) + " of " + std::to_string(n) +
               " exited");
    }
  }
  tsan_acquire(&r.tsan_block_end);
  CORTEX_SIMT_PROFILE_HOOK(block_end());
  for (auto& w : r.used_workers) r.free_workers.push_back(std::move(w));
  r.used_workers.clear();
  ++g_counters.blocks;
  if (ran_fast) ++g_counters.fast_blocks;
}

}  // namespace

namespace {

// What the OS threads running one launch share: read-only, but for the block counter.
struct Launch {
  const char* kernel = "";
  Schedule sched;
  dim3 grid, block;
  std::size_t smem_bytes = 0;
  void (*body)(const void*) = nullptr;
  const void* args = nullptr;
  std::uint64_t seed = 0;
  std::uint64_t nblocks = 0;
  std::uint64_t a = 1, c = 0;  // random order: k -> (a k + c) mod nblocks
  std::atomic<std::uint64_t> next{0};
};

// Linear index of the k-th block to run, in schedule order.
std::uint64_t block_at(const Launch& L, std::uint64_t k) {
  switch (L.sched.order) {
    case Order::forward: return k;
    case Order::reverse: return L.nblocks - 1 - k;
    case Order::random: break;
  }
  return static_cast<std::uint64_t>((static_cast<unsigned __int128>(L.a) * k + L.c) % L.nblocks);
}

// Runs blocks of L on the calling OS thread, one at a time, until none is left.
void run_blocks(Launch& L, unsigned os_thread) {
  // The Run (and its pooled fibers) lives as long as the OS thread.
  thread_local Run run;
  Run& r = run;
  hide_begin();
  tl_run = &r;
  r.kernel = L.kernel;
  r.sched = L.sched;
  r.rng = L.seed ^ (0xA24BAED4963EE407ull * (os_thread + 1));
  r.body = L.body;
  r.args = L.args;
  fiber_bind_scheduler(r.scheduler);
  // Exactly the launch's byte count, so ASan reports a read one past the end.
  std::unique_ptr<unsigned char[]> smem(new unsigned char[L.smem_bytes]);
  r.block.block_dim = L.block;
  r.block.grid_dim = L.grid;
  r.block.dynamic_smem = smem.get();
  r.block.dynamic_smem_bytes = L.smem_bytes;
  const dim3 g = L.grid;
  for (std::uint64_t k = L.next.fetch_add(1, std::memory_order_relaxed); k < L.nblocks;
       k = L.next.fetch_add(1, std::memory_order_relaxed)) {
    const std::uint64_t b = block_at(L, k);
    run_block(r, uint3{static_cast<unsigned>(b % g.x), static_cast<unsigned>((b / g.x) % g.y),
                       static_cast<unsigned>(b / (std::uint64_t{g.x} * g.y))});
  }
  g_counters.switches += r.switches;
  r.switches = 0;
  tl_block = nullptr;
  tl_thread = nullptr;
  r.block.dynamic_smem = nullptr;
  hide_end();
}

}  // namespace

void run_grid(const char* kernel, dim3 grid, dim3 block, std::size_t smem_bytes, void (*body)(const void*),
              const void* args) {
  check_launch(kernel, grid.x, grid.y, grid.z, block.x, block.y, block.z, smem_bytes);
  CORTEX_CHECK(body != nullptr, "launch of ", kernel, ": expected a kernel body, found a null pointer");
  if (tl_run != nullptr && tl_run->current != nullptr) {
    std::fprintf(stderr, "cortex simt: kernel %s launched %s from device code; the emulated device has no "
                 "dynamic parallelism\n", kernel, tl_run->kernel);
    std::abort();
  }
  const Schedule sched = schedule();
#ifdef CORTEX_SIMT_PROFILE
  // The profiler's counters are per OS thread: a recorded launch runs on this one.
  const unsigned threads = profile::detail::active() ? 1 : os_threads();
  profile::detail::launch_begin(kernel, grid, block, smem_bytes);
#else
  const unsigned threads = os_threads();
#endif
  const std::uint64_t launch_index = ++g_counters.launches;

  Launch L;
  L.kernel = kernel;
  L.sched = sched;
  L.grid = grid;
  L.block = block;
  L.smem_bytes = smem_bytes;
  L.body = body;
  L.args = args;
  L.seed = sched.seed ^ (0x51D7ull * launch_index);
  L.nblocks = std::uint64_t{grid.x} * grid.y * grid.z;
  // Random block order without a table (a grid may have 2^62 blocks): k -> (a k + c) mod n is a
  // permutation when gcd(a, n) = 1, with a and c drawn from the seed.
  if (sched.order == Order::random && L.nblocks > 1) {
    std::uint64_t rng = L.seed;
    do {
      L.a = splitmix(rng) % L.nblocks;
    } while (std::gcd(L.a, L.nblocks) != 1);
    L.c = splitmix(rng) % L.nblocks;
  }

  // Helper OS threads (CORTEX_SIMT_THREADS > 1) live for one launch: blocks then really run
  // concurrently, which is what lets TSan see races between blocks.
  const std::uint64_t helpers = std::min<std::uint64_t>(threads, L.nblocks) - 1;
  std::vector<std::thread> pool;
  for (std::uint64_t i = 0; i < helpers; ++i) pool.emplace_back(run_blocks, std::ref(L), static_cast<unsigned>(i + 1));
  run_blocks(L, 0);
  for (std::thread& t : pool) t.join();
  CORTEX_SIMT_PROFILE_HOOK(launch_end());
}

BarrierVote syncthreads_vote(Site site, int predicate) {
  Run& r = *tl_run;
  Thread& t = *r.current;
  hide_begin();
  if (r.bar_arrived == 0) {
    r.bar_site = site;
    r.bar_votes[r.bar_gen & 1] = 0;
  } else if (!same_site(site, r.bar_site)) {
    fail("divergent barrier", &t, site,
         std::string("__syncthreads here while other threads of the block wait at ") + r.bar_site.file + ":" +
             std::to_string(r.bar_site.line));
  }
  const unsigned gen = r.bar_gen;
  ++r.bar_arrived;
  if (predicate) ++r.bar_votes[gen & 1];
  tsan_release(&r.tsan_bar[gen & 1]);
  if (r.bar_arrived + r.exited == r.threads.size()) {
    release_barrier(r);
    // Yield anyway, so that after the barrier threads start again in schedule order.
    t.state = State::ready;
    r.fast = false;
    switch_to_scheduler(r, t);
    tl_thread = &t.view;
    r.current = &t;
  } else {
    wait_here(r, t, WaitFor::barrier, site);
  }
  tsan_acquire(&r.tsan_bar[gen & 1]);
  const BarrierVote vote{static_cast<int>(r.bar_votes[gen & 1]), static_cast<int>(r.bar_voters[gen & 1])};
  hide_end();
  return vote;
}

std::uint64_t warp_op(Site site, WarpOp op, unsigned mask, std::uint64_t value, int arg, int width) {
  Run& r = *tl_run;
  Thread& t = *r.current;
  hide_begin();
  Warp& w = r.warps[t.warp];
  const unsigned bit = 1u << t.lane;
  auto hex = [](unsigned m) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", m);
    return std::string(buf);
  };
  if (!(mask & bit))
    fail("bad warp mask", &t, site, std::string(op_name(op)) + " with mask " + hex(mask) + " that does not name the calling lane " + std::to_string(t.lane));
  if (mask & ~w.exists)
    fail("bad warp mask", &t, site, std::string(op_name(op)) + " with mask " + hex(mask) + " naming lanes that do not exist (this warp has lanes " + hex(w.exists) + ")");
  if (mask & w.exited)
    fail("bad warp mask", &t, site, std::string(op_name(op)) + " with mask " + hex(mask) + " naming lanes that have exited " + hex(mask & w.exited));
  const bool shuffle_op = op == WarpOp::shfl || op == WarpOp::shfl_up || op == WarpOp::shfl_down || op == WarpOp::shfl_xor;
  if (shuffle_op && (width < 1 || width > 32 || (width & (width - 1)) != 0))
    fail("bad shuffle width", &t, site, std::string(op_name(op)) + " width must be a power of 2 in [1, 32], found " + std::to_string(width));

  // Another group of lanes (a disjoint mask) has an operation open: wait for it to finish. An
  // overlapping but different mask means the lanes disagree about who takes part: a bug.
  while (w.mask != 0 && w.mask != mask) {
    if (w.mask & mask)
      fail("warp mask mismatch", &t, site, std::string(op_name(op)) + " with mask " + hex(mask) + " while " + op_name(w.op) + " at " + w.site.file + ":" + std::to_string(w.site.line) + " has mask " + hex(w.mask));
    wait_here(r, t, WaitFor::warp_idle, site);
  }
  if (w.mask == 0) {
    w.mask = mask;
    w.op = op;
    w.site = site;
    w.arrived = 0;
  } else if (w.op != op) {
    fail("divergent warp operation", &t, site, std::string(op_name(op)) + " here while lanes of the same mask wait in " + op_name(w.op) + " at " + w.site.file + ":" + std::to_string(w.site.line));
  }
  const unsigned gen = w.gen;
  const unsigned buf = gen & 1;
  w.slot[buf][t.lane] = value;
  w.arrived |= bit;
  tsan_release(&w.tsan_sync[buf]);
  if (w.arrived == mask) {
    complete_warp(r, w, t.warp);
    t.state = State::ready;
    r.fast = false;
    switch_to_scheduler(r, t);
    tl_thread = &t.view;
    r.current = &t;
  } else {
    wait_here(r, t, WaitFor::warp, site);
  }
  tsan_acquire(&w.tsan_sync[buf]);

  std::uint64_t result = 0;
  const std::uint64_t* s = w.slot[buf];
  const int lane = static_cast<int>(t.lane);
  const int seg = lane & ~(width - 1);  // first lane of this lane's shuffle segment
  int src = lane;
  switch (op) {
    case WarpOp::shfl: src = seg + (arg & (width - 1)); break;
    // Out-of-range sources return the caller's own value (CUDA's rule).
    case WarpOp::shfl_up: src = (lane - seg) >= arg ? lane - arg : lane; break;
    case WarpOp::shfl_down: src = (lane - seg) + arg < width ? lane + arg : lane; break;
    case WarpOp::shfl_xor: src = lane ^ (arg & 31); if (src >= seg + width) src = lane; break;
    case WarpOp::ballot:
    case WarpOp::any:
    case WarpOp::all: {
      unsigned votes = 0;
      for (int i = 0; i < 32; ++i)
        if ((mask >> i & 1u) && s[i]) votes |= 1u << i;
      result = op == WarpOp::ballot ? votes : op == WarpOp::any ? (votes != 0) : (votes == mask);
      break;
    }
    case WarpOp::sync: break;
  }
  if (shuffle_op) {
    if (src < 0 || src > 31 || !(mask >> src & 1u))
      fail("shuffle reads a lane outside the mask", &t, site, std::string(op_name(op)) + " reads lane " + std::to_string(src) + ", which mask " + hex(mask) + " does not name");
    result = s[src];
  }
  hide_end();
  return result;
}

}  // namespace detail

Schedule parse_schedule(const std::string& text) {
  if (text == "forward") return Schedule{Order::forward, 0};
  if (text == "reverse") return Schedule{Order::reverse, 0};
  if (text == "random") return Schedule{Order::random, 0};
  if (text.rfind("random:", 0) == 0) {
    const std::string digits = text.substr(7);
    const bool ok = !digits.empty() && digits.size() <= 19 &&
                    std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
    CORTEX_CHECK(ok, "SIMT schedule: expected random:SEED with a decimal seed, found \"", text, "\"");
    return Schedule{Order::random, std::stoull(digits)};
  }
  throw Error("SIMT schedule: expected forward, reverse, random or random:SEED, found \"" + text + "\"");
}

std::string to_string(const Schedule& s) {
  switch (s.order) {
    case Order::forward: return "forward";
    case Order::reverse: return "reverse";
    case Order::random: return "random:" + std::to_string(s.seed);
  }
  return "?";
}

Schedule schedule() {
  std::lock_guard<std::mutex> lock(detail::g_sched_mutex);
  if (detail::g_sched_set) return detail::g_set_sched;
  if (!detail::g_env_read) {
    const char* env = std::getenv("CORTEX_SIMT_ORDER");
    const Schedule s = env && *env ? parse_schedule(env) : Schedule{};
    detail::g_env_sched = s;
    detail::g_env_read = true;
  }
  return detail::g_env_sched;
}

void set_schedule(const Schedule& s) {
  CORTEX_CHECK(s.order == Order::forward || s.order == Order::reverse || s.order == Order::random,
               "set_schedule: expected forward, reverse or random, found order ", static_cast<int>(s.order));
  std::lock_guard<std::mutex> lock(detail::g_sched_mutex);
  detail::g_sched_set = true;
  detail::g_set_sched = s;
}

void clear_schedule() {
  std::lock_guard<std::mutex> lock(detail::g_sched_mutex);
  detail::g_sched_set = false;
  detail::g_env_read = false;
}

unsigned parse_os_threads(const std::string& text) {
  const bool digits = !text.empty() && text.size() <= 4 &&
                      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  const unsigned n = digits ? static_cast<unsigned>(std::stoul(text)) : 0;
  CORTEX_CHECK(n >= 1 && n <= kMaxOsThreads, "CORTEX_SIMT_THREADS: expected an integer in [1, ", kMaxOsThreads,
               "], found \"", text, "\"");
  return n;
}

unsigned os_threads() {
  std::lock_guard<std::mutex> lock(detail::g_sched_mutex);
  if (detail::g_threads_set) return detail::g_set_threads;
  if (!detail::g_env_threads_read) {
    const char* env = std::getenv("CORTEX_SIMT_THREADS");
    detail::g_env_threads = env && *env ? parse_os_threads(env) : 1;
    detail::g_env_threads_read = true;
  }
  return detail::g_env_threads;
}

void set_os_threads(unsigned n) {
  CORTEX_CHECK(n <= kMaxOsThreads, "set_os_threads: expected 0 (follow CORTEX_SIMT_THREADS) or [1, ",
               kMaxOsThreads, "], found ", n);
  std::lock_guard<std::mutex> lock(detail::g_sched_mutex);
  detail::g_threads_set = n != 0;
  detail::g_set_threads = n;
  detail::g_env_threads_read = false;
}

Stats stats() {
  Stats s;
  s.launches = detail::g_counters.launches.load();
  s.blocks = detail::g_counters.blocks.load();
  s.fast_blocks = detail::g_counters.fast_blocks.load();
  s.switches = detail::g_counters.switches.load();
  return s;
}

}  // namespace cortex::simt
