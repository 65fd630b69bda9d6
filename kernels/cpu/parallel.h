// Deterministic, coarse-grained OpenMP loops for the CPU kernels and the analyses
// (docs/determinism.md has the rule and the list of ops it covers).
//
// The rule: work is cut into chunks whose size is fixed by the problem size only, never by the
// number of threads, and per-chunk partial results are combined in chunk order on one thread. Which
// thread runs a chunk then does not matter, so OMP_NUM_THREADS=1, 2, 3 or 8 give the same bytes.
//
// Graceful threading on shared cores: a loop runs on one thread (no parallel region at all) when
// its work is below a grain, and a region is one loop with no barrier inside whose chunks are handed
// out dynamically, so a thread descheduled by another process holds back one chunk, not a fixed
// share of the loop (which chunk a thread gets changes nothing in the result).
//
// Eigen runs on one thread inside every loop here and inside SerialEigen / serial(): Eigen's own
// threaded GEMM picks its blocking from the thread count, which changes the order of its sums. The
// setting is the calling task's own copy of OpenMP's nthreads-var, restored on exit, so it is safe
// with several host threads.
#pragma once
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <vector>

namespace cortex::parallel {

// Work (roughly: elements touched, or multiply-adds) below which a loop stays on the calling thread.
inline constexpr int64_t kGrain = 1 << 15;

inline int64_t num_chunks(int64_t n, int64_t chunk) { return n <= 0 ? 0 : (n + chunk - 1) / chunk; }

namespace detail {
// The thread count our loops use while a SerialEigen guard holds OpenMP's own setting at 1 on this
// thread (0: no guard is active).
inline thread_local int loop_threads = 0;
}  // namespace detail

// Threads for_chunks would use here.
inline int max_threads() { return detail::loop_threads > 0 ? detail::loop_threads : omp_get_max_threads(); }

// While alive, Eigen (and any plain `#pragma omp parallel`) started by this thread runs on one
// thread; for_chunks loops keep the thread count the caller had. Nests.
class SerialEigen {
 public:
  SerialEigen() : saved_(omp_get_max_threads()), saved_loop_(detail::loop_threads) {
    if (detail::loop_threads == 0) detail::loop_threads = saved_;
    omp_set_num_threads(1);
  }
  ~SerialEigen() {
    omp_set_num_threads(saved_);
    detail::loop_threads = saved_loop_;
  }
  SerialEigen(const SerialEigen&) = delete;
  SerialEigen& operator=(const SerialEigen&) = delete;

 private:
  int saved_, saved_loop_;
};

// While alive, undoes the SerialEigen guards active on this thread (for a callback, such as a
// user's operator, called from code that holds Eigen on one thread).
class AllThreads {
 public:
  AllThreads() : saved_(omp_get_max_threads()), saved_loop_(detail::loop_threads) {
    if (saved_loop_ > 0) omp_set_num_threads(saved_loop_);
    detail::loop_threads = 0;
  }
  ~AllThreads() {
    omp_set_num_threads(saved_);
    detail::loop_threads = saved_loop_;
  }
  AllThreads(const AllThreads&) = delete;
  AllThreads& operator=(const AllThreads&) = delete;

 private:
  int saved_, saved_loop_;
};

// Calls body(lo, hi) for every chunk [c * chunk, min(n, (c + 1) * chunk)) of [0, n). The chunks run
// in parallel when `work` (the whole loop's) reaches kGrain and there is more than one chunk; each
// chunk must write only its own outputs. Inside an active parallel region (a chunk of an outer
// loop) the loop runs serially. An exception thrown by a chunk is rethrown here (the first one; the
// remaining chunks are skipped).
template <class F>
void for_chunks(int64_t n, int64_t chunk, double work, F&& body) {
  if (chunk < 1) chunk = 1;
  const int64_t nc = num_chunks(n, chunk);
  if (nc == 0) return;
  const int nt = max_threads();
  SerialEigen serial_eigen;
  if (nc == 1 || work < static_cast<double>(kGrain) || nt <= 1 || omp_in_parallel()) {
    for (int64_t c = 0; c < nc; ++c) body(c * chunk, c + 1 == nc ? n : (c + 1) * chunk);
    return;
  }
  std::exception_ptr err;
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(static_cast<int>(std::min<int64_t>(nt, nc)))
  {
    omp_set_num_threads(1);  // this implicit task's own copy: Eigen runs serially in the chunks
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t c = 0; c < nc; ++c) {
      if (failed.load(std::memory_order_relaxed)) continue;
      try {
        body(c * chunk, c + 1 == nc ? n : (c + 1) * chunk);
      } catch (...) {
#pragma omp critical(cortex_parallel_error)
        if (!failed.exchange(true)) err = std::current_exception();
      }
    }
  }
  if (err) std::rethrow_exception(err);
}

// for_chunks with one item per call: body(i) for i in [0, n), `work` for the whole loop.
template <class F>
void for_each(int64_t n, double work, F&& body) {
  // Items are grouped so that a group holds about kGrain / 4 of work (fixed by the sizes).
  const double per = n > 0 ? work / static_cast<double>(n) : 0.0;
  const int64_t group =
      per > 0 ? static_cast<int64_t>(std::clamp(static_cast<double>(kGrain / 4) / per, 1.0, static_cast<double>(n))) : n;
  for_chunks(n, group, work, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) body(i);
  });
}

// Deterministic reduction: partial(lo, hi) -> A for each fixed chunk of [0, n), then
// combine(...combine(combine(id, p0), p1)..., pk) in chunk order on the calling thread.
template <class A, class F, class C>
A reduce_chunks(int64_t n, int64_t chunk, A id, F&& partial, C&& combine) {
  if (chunk < 1) chunk = 1;
  const int64_t nc = num_chunks(n, chunk);
  std::vector<A> parts(static_cast<size_t>(nc), id);
  for_chunks(n, chunk, static_cast<double>(n), [&](int64_t lo, int64_t hi) { parts[lo / chunk] = partial(lo, hi); });
  A acc = id;
  for (const A& p : parts) acc = combine(acc, p);
  return acc;
}

// Runs f with Eigen on one thread (for an Eigen decomposition or product whose blocking would
// otherwise follow the thread count); for_chunks loops inside f still use the caller's threads.
template <class F>
decltype(auto) serial(F&& f) {
  SerialEigen guard;
  return f();
}

}  // namespace cortex::parallel
