// The SIMT runtime of the emulated CUDA device (kernels/cuda/simt/, ../shared/SIMT.md): real
// kernels against float64 references on odd sizes, bit-identical results across schedule orders,
// warp operations at their edges, launch limits, and the broken kernels the runtime or a
// sanitizer must catch (scripts/simt-sanitize.sh runs this file under ASan+UBSan and TSan).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "simt_kernels.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_TSAN 1
#endif
#endif

using cortex::simt::Order;
using cortex::simt::Schedule;

namespace {

const Schedule kOrders[] = {{Order::forward, 0}, {Order::reverse, 0}, {Order::random, 1}, {Order::random, 2}};

// Sizes shrink under TSan, which costs about 3 MB and a few microseconds per fiber.
#ifdef TEST_TSAN
constexpr int kScale = 8;
#else
constexpr int kScale = 1;
#endif

// Restores the schedule the environment asks for when a test ends.
struct ScheduleGuard {
  ~ScheduleGuard() { cortex::simt::clear_schedule(); }
};

std::vector<float> random_floats(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::string order_name(const Schedule& s) { return cortex::simt::to_string(s); }

// ---- schedules

TEST(SimtSchedule, ParsesTheEnvironmentSyntax) {
  EXPECT_EQ(cortex::simt::parse_schedule("forward").order, Order::forward);
  EXPECT_EQ(cortex::simt::parse_schedule("reverse").order, Order::reverse);
  const Schedule r = cortex::simt::parse_schedule("random:42");
  EXPECT_EQ(r.order, Order::random);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(cortex::simt::to_string(r), "random:42");
  EXPECT_THROW(cortex::simt::parse_schedule("backwards"), cortex::Error);
  EXPECT_THROW(cortex::simt::parse_schedule("random:x1"), cortex::Error);
  EXPECT_THROW(cortex::simt::parse_schedule("random:"), cortex::Error);
}

TEST(SimtSchedule, EnvironmentVariableIsReadAndCheckedAndCodeOverridesIt) {
  ScheduleGuard guard;
  const char* old = std::getenv("CORTEX_SIMT_ORDER");
  const std::string saved = old ? old : "";
  setenv("CORTEX_SIMT_ORDER", "random:7", 1);
  cortex::simt::clear_schedule();
  EXPECT_EQ(cortex::simt::to_string(cortex::simt::schedule()), "random:7");
  cortex::simt::set_schedule({Order::reverse, 0});
  EXPECT_EQ(cortex::simt::schedule().order, Order::reverse);
  setenv("CORTEX_SIMT_ORDER", "sideways", 1);
  cortex::simt::clear_schedule();
  try {
    cortex::simt::schedule();
    ADD_FAILURE() << "a malformed CORTEX_SIMT_ORDER was accepted";
  } catch (const cortex::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sideways"), std::string::npos) << e.what();
  }
  if (old) setenv("CORTEX_SIMT_ORDER", saved.c_str(), 1);
  else unsetenv("CORTEX_SIMT_ORDER");
  cortex::simt::clear_schedule();
}

// ---- real kernels

TEST(SimtKernels, BlockReductionMatchesFloat64AndIsBitIdenticalAcrossOrders) {
  ScheduleGuard guard;
  const int n = 100003 / kScale, blocks = 13, threads = 256;
  const std::vector<float> x = random_floats(n, 1);
  double ref = 0.0;
  for (float v : x) ref += v;
  std::vector<float> first;
  for (const Schedule& s : kOrders) {
    cortex::simt::set_schedule(s);
    std::vector<float> partial(blocks, 0.0f);
    float total = 0.0f;
    CORTEX_LAUNCH(simt_test::reduce_sum, dim3(blocks), dim3(threads), 0, nullptr, x.data(), n, partial.data(), &total);
    double sum = 0.0;
    for (float p : partial) sum += p;
    EXPECT_NEAR(sum, ref, 1e-5 * n) << order_name(s);
    EXPECT_NEAR(total, ref, 1e-5 * n) << order_name(s);
    if (first.empty()) first = partial;
    else EXPECT_TRUE(bit_equal(first, partial)) << "block sums differ in order " << order_name(s);
  }
}

TEST(SimtKernels, BlocksOnSeveralOsThreadsGiveTheSameResults) {
  ScheduleGuard guard;
  struct ThreadsGuard {
    ~ThreadsGuard() { cortex::simt::set_os_threads(0); }
  } threads_guard;
  const int n = 50001 / kScale, blocks = 13, threads = 128;
  const std::vector<float> x = random_floats(n, 11);
  double ref = 0.0;
  for (float v : x) ref += v;
  std::vector<float> first;
  for (const unsigned os_threads : {1u, 2u, 3u}) {
    cortex::simt::set_os_threads(os_threads);
    EXPECT_EQ(cortex::simt::os_threads(), os_threads);
    for (const Schedule& s : kOrders) {
      cortex::simt::set_schedule(s);
      std::vector<float> partial(blocks, 0.0f);
      float total = 0.0f;
      const cortex::simt::Stats before = cortex::simt::stats();
      CORTEX_LAUNCH(simt_test::reduce_sum, dim3(blocks), dim3(threads), 0, nullptr, x.data(), n, partial.data(), &total);
      EXPECT_EQ(cortex::simt::stats().blocks - before.blocks, static_cast<std::uint64_t>(blocks));
      EXPECT_NEAR(total, ref, 1e-5 * n) << os_threads << " OS threads, " << order_name(s);
      if (first.empty()) first = partial;
      else EXPECT_TRUE(bit_equal(first, partial)) << os_threads << " OS threads, " << order_name(s);
    }
  }
  EXPECT_EQ(cortex::simt::parse_os_threads("4"), 4u);
  EXPECT_THROW(cortex::simt::parse_os_threads("0"), cortex::Error);
  EXPECT_THROW(cortex::simt::parse_os_threads("many"), cortex::Error);
  EXPECT_THROW(cortex::simt::parse_os_threads("1000"), cortex::Error);
  EXPECT_THROW(cortex::simt::set_os_threads(1000), cortex::Error);
}

void sgemm_case(int M, int N, int K) {
  ScheduleGuard guard;
  const std::vector<float> A = random_floats(static_cast<std::size_t>(M) * K, 2), B = random_floats(static_cast<std::size_t>(K) * N, 3);
  std::vector<double> ref(static_cast<std::size_t>(M) * N, 0.0);
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < N; ++j) ref[i * N + j] += static_cast<double>(A[i * K + k]) * B[k * N + j];
  std::vector<float> first;
  for (const Schedule& s : kOrders) {
    cortex::simt::set_schedule(s);
    std::vector<float> C(static_cast<std::size_t>(M) * N, -7.0f);
    const dim3 grid((N + simt_test::kTile - 1) / simt_test::kTile, (M + simt_test::kTile - 1) / simt_test::kTile);
    CORTEX_LAUNCH(simt_test::sgemm_tiled, grid, dim3(8, 32), 0, nullptr, A.data(), B.data(), C.data(), M, N, K);
    double worst = 0.0;
    for (std::size_t i = 0; i < C.size(); ++i) worst = std::max(worst, std::abs(C[i] - ref[i]));
    EXPECT_LT(worst, 1e-5 * K) << M << "x" << N << "x" << K << " " << order_name(s);
    if (first.empty()) first = C;
    else EXPECT_TRUE(bit_equal(first, C)) << "SGEMM differs in order " << order_name(s);
  }
}

TEST(SimtKernels, TiledSgemmOddSizesScalarLoads) { sgemm_case(67, 45, 53); }
TEST(SimtKernels, TiledSgemmAlignedRowsFloat4Loads) { sgemm_case(67, 36, 64); }

TEST(SimtKernels, SoftmaxWithDynamicSharedMemoryMatchesFloat64) {
  ScheduleGuard guard;
  const int rows = 7, cols = 301, threads = 128;
  std::vector<float> x = random_floats(static_cast<std::size_t>(rows) * cols, 4);
  for (float& v : x) v *= 8.0f;
  std::vector<float> first;
  for (const Schedule& s : kOrders) {
    cortex::simt::set_schedule(s);
    std::vector<float> y(x.size(), -1.0f);
    const std::size_t smem = (cols + threads / 32) * sizeof(float);
    CORTEX_LAUNCH(simt_test::softmax_rows, dim3(rows), dim3(threads), smem, nullptr, x.data(), y.data(), cols);
    for (int r = 0; r < rows; ++r) {
      double mx = -INFINITY, sum = 0.0;
      for (int c = 0; c < cols; ++c) mx = std::max(mx, static_cast<double>(x[r * cols + c]));
      for (int c = 0; c < cols; ++c) sum += std::exp(x[r * cols + c] - mx);
      for (int c = 0; c < cols; ++c) {
        const double ref = std::exp(x[r * cols + c] - mx) / sum;
        ASSERT_NEAR(y[r * cols + c], ref, 2e-6 + 2e-6 * ref) << "row " << r << " col " << c << " " << order_name(s);
      }
    }
    if (first.empty()) first = y;
    else EXPECT_TRUE(bit_equal(first, y)) << "softmax differs in order " << order_name(s);
  }
}

TEST(SimtKernels, AtomicsFromEveryThread) {
  ScheduleGuard guard;
  const int blocks = 5, threads = 96, n = blocks * threads;
  for (const Schedule& s : kOrders) {
    cortex::simt::set_schedule(s);
    int out[5] = {0, -1, 1 << 30, 0, -1};
    float fsum = 0.0f;
    double dsum = 0.0;
    CORTEX_LAUNCH(simt_test::atomics_mix, dim3(blocks), dim3(threads), 0, nullptr, out, &fsum, &dsum);
    int max_ref = 0;
    for (int id = 0; id < n; ++id) max_ref = std::max(max_ref, id * 7 % 1000);
    EXPECT_EQ(out[0], n) << order_name(s);
    EXPECT_EQ(out[1], max_ref) << order_name(s);
    EXPECT_EQ(out[2], 1000 - (n - 1)) << order_name(s);
    EXPECT_EQ(out[3], n) << order_name(s);
    EXPECT_TRUE(out[4] >= 0 && out[4] < n) << order_name(s);
    EXPECT_EQ(fsum, 0.5f * n) << order_name(s);
    EXPECT_EQ(dsum, static_cast<double>(n) * (n - 1) / 2) << order_name(s);
  }
}

TEST(SimtKernels, ElementwiseKernelRunsOnTheFastPath) {
  const int n = 1000;
  std::vector<float> x = random_floats(n, 5), y = random_floats(n, 6), expect(n);
  for (int i = 0; i < n; ++i) expect[i] = std::fma(2.5f, x[i], y[i]);
  const cortex::simt::Stats before = cortex::simt::stats();
  CORTEX_LAUNCH(simt_test::axpy, dim3((n + 127) / 128), dim3(128), 0, nullptr, 2.5f, x.data(), y.data(), n);
  const cortex::simt::Stats after = cortex::simt::stats();
  EXPECT_TRUE(bit_equal(y, expect));
  EXPECT_EQ(after.launches - before.launches, 1u);
  EXPECT_EQ(after.blocks - before.blocks, 8u);
#ifndef TEST_TSAN  // TSan needs one fiber per thread to see races, so the fast path is off there
  EXPECT_EQ(after.fast_blocks - before.fast_blocks, 8u);
  EXPECT_EQ(after.switches - before.switches, 16u) << "one switch in and one out per block";
#endif
}

TEST(SimtKernels, ExitedThreadsCountAsArrivedAtTheBarrier) {
  ScheduleGuard guard;
  const int n = 300;  // the last block of 256 has 44 live threads
  const std::vector<float> x = random_floats(n, 7);
  for (const Schedule& s : kOrders) {
    cortex::simt::set_schedule(s);
    std::vector<float> y(n, 0.0f);
    CORTEX_LAUNCH(simt_test::early_exit_barrier, dim3(2), dim3(256), 0, nullptr, x.data(), n, y.data());
    for (int i = 0; i < n; ++i) {
      const int j = i ^ 1;
      ASSERT_EQ(y[i], x[i] + (j < n ? x[j] : 0.0f)) << i << " " << order_name(s);
    }
  }
}

TEST(SimtKernels, BarrierVotesCountTheBlock) {
  ScheduleGuard guard;
  const int threads = 100;
  for (const Schedule& s : kOrders) {
    cortex::simt::set_schedule(s);
    for (const bool every : {false, true}) {
      std::vector<int> flags(threads), out(4 * threads, -1);
      int expect = 0;
      for (int t = 0; t < threads; ++t) expect += flags[t] = every || t % 3 == 0 ? 7 : 0;
      expect /= 7;
      CORTEX_LAUNCH(simt_test::barrier_votes, dim3(1), dim3(threads), 0, nullptr, flags.data(), out.data());
      for (int t = 0; t < threads; ++t) {
        ASSERT_EQ(out[4 * t + 0], expect) << t << " " << order_name(s);
        ASSERT_EQ(out[4 * t + 1], every ? 1 : 0) << t << " " << order_name(s);
        ASSERT_EQ(out[4 * t + 2], 1) << t << " " << order_name(s);
        ASSERT_EQ(out[4 * t + 3], 0) << t << " " << order_name(s);
      }
    }
  }
}

TEST(SimtKernels, FastPathFallsBackWhenALaterThreadMeetsABarrier) {
  ScheduleGuard guard;
  const int threads = 64;
  const std::vector<float> x = random_floats(threads, 10);
  for (const Schedule& s : kOrders) {
    cortex::simt::set_schedule(s);
    std::vector<float> y(threads, 0.0f);
    CORTEX_LAUNCH(simt_test::late_barrier, dim3(1), dim3(threads), 0, nullptr, x.data(), y.data());
    EXPECT_EQ(y[0], -1.0f) << order_name(s);
    for (int t = 1; t < threads; ++t) ASSERT_EQ(y[t], x[t] + x[t % (threads - 1) + 1]) << t << " " << order_name(s);
  }
}

#if defined(__x86_64__) && !defined(CORTEX_SIMT_UCONTEXT)
// Fibers run with the default MXCSR (no flush-to-zero), like CUDA's default float arithmetic,
// even when the launching thread flushes denormals.
TEST(SimtKernels, KernelsKeepDenormalsWhenTheHostFlushesThem) {
  const unsigned saved = _mm_getcsr();
  _mm_setcsr(saved | 0x8040u);  // FTZ | DAZ on the host thread
  float x = 1e-38f, y = 0.0f;
  CORTEX_LAUNCH(simt_test::axpy, dim3(1), dim3(1), 0, nullptr, 0.5f, &x, &y, 1);
  _mm_setcsr(saved);
  EXPECT_EQ(y, 0.5f * 1e-38f);
  EXPECT_NE(y, 0.0f);
}
#endif

TEST(SimtKernels, DynamicSharedMemoryStartsAsNaN) {
  std::vector<float> out(32, 0.0f);
  CORTEX_LAUNCH(simt_test::read_uninitialised_smem, dim3(1), dim3(32), 32 * sizeof(float), nullptr, out.data());
  for (float v : out) EXPECT_TRUE(std::isnan(v));
}

// ---- warp operations

TEST(SimtWarp, ShuffleVoteEdgesInTwoWarps) {
  ScheduleGuard guard;
  const int threads = 64;
  for (const Schedule& s : kOrders) {
    cortex::simt::set_schedule(s);
    std::vector<int> out(11 * threads, -1);
    CORTEX_LAUNCH(simt_test::shuffle_edges, dim3(1), dim3(threads), 0, nullptr, out.data());
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
    for (int t = 0; t < threads; ++t) {
      const int lane = t % 32, base = t - lane, seg = lane & ~7;
      auto value = [&](int l) { return 100 + base + l; };
      const int* o = &out[11 * t];
      EXPECT_EQ(o[0], lane >= 3 ? value(lane - 3) : value(lane)) << "up, thread " << t;
      EXPECT_EQ(o[1], lane + 5 < 32 ? value(lane + 5) : value(lane)) << "down, thread " << t;
      EXPECT_EQ(o[2], value(lane ^ 7)) << "xor, thread " << t;
      EXPECT_EQ(o[3], value((lane * 7) % 32)) << "indexed, thread " << t;
      EXPECT_EQ(o[4], value(seg + 3)) << "width 8, thread " << t;
      EXPECT_EQ(o[5], lane - seg >= 2 ? value(lane - 2) : value(lane)) << "up width 8, thread " << t;
      EXPECT_EQ(o[6], lane - seg + 2 < 8 ? value(lane + 2) : value(lane)) << "down width 8, thread " << t;
      EXPECT_EQ(static_cast<unsigned>(o[7]), ballot) << "ballot, thread " << t;
      EXPECT_EQ(o[8], 1) << "any, thread " << t;
      EXPECT_EQ(o[9], 0) << "all, thread " << t;
      EXPECT_EQ(o[10], value(lane ^ 1)) << "half-warp masks, thread " << t;
    }
  }
}

// ---- launch limits

void expect_launch_error(dim3 grid, dim3 block, std::size_t smem, const std::string& needle) {
  std::vector<float> y(4, 0.0f), x(4, 0.0f);
  try {
    CORTEX_LAUNCH(simt_test::axpy, grid, block, smem, nullptr, 1.0f, x.data(), y.data(), 0);
    ADD_FAILURE() << "launch was accepted, expected an error about " << needle;
  } catch (const cortex::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("simt_test::axpy"), std::string::npos) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << what;
  }
}

TEST(SimtLaunch, LimitsGiveErrorsNamingTheKernel) {
  expect_launch_error(dim3(1), dim3(1025), 0, "block dimension x");
  expect_launch_error(dim3(1), dim3(32, 32, 2), 0, "at most 1024 threads");
  expect_launch_error(dim3(1), dim3(1, 1, 65), 0, "block dimension z");
  expect_launch_error(dim3(1), dim3(0), 0, "block dimension x");
  expect_launch_error(dim3(0), dim3(32), 0, "grid dimension x");
  expect_launch_error(dim3(1, 65536), dim3(32), 0, "grid dimension y");
  expect_launch_error(dim3(1), dim3(32), 227 * 1024 + 1, "dynamic shared memory");
  // The opt-in maximum itself is accepted.
  std::vector<float> y(4, 0.0f), x(4, 0.0f);
  EXPECT_NO_THROW(CORTEX_LAUNCH(simt_test::axpy, dim3(1), dim3(32), 227 * 1024, nullptr, 1.0f, x.data(), y.data(), 0));
}

// ---- broken kernels

// Death tests re-execute the binary rather than fork a process that has TSan's background thread
// (set per test: gtest's flag may not be constructed yet during static initialisation).
class SimtBrokenDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
  ScheduleGuard guard;
};

TEST(SimtBroken, MissingBarrierGivesDifferentResultsAcrossOrders) {
#ifdef TEST_TSAN
  GTEST_SKIP() << "under TSan the race halts the process: MissingBarrierIsReportedByTsan checks it there";
#endif
  ScheduleGuard guard;
  const int threads = 256 / kScale;
  const std::vector<float> x = random_floats(threads, 8);
  double ref = 0.0;
  for (float v : x) ref += v;
  std::vector<float> results;
  for (const Schedule& s : {Schedule{Order::forward, 0}, Schedule{Order::reverse, 0}}) {
    cortex::simt::set_schedule(s);
    float out = 0.0f;
    CORTEX_LAUNCH(simt_test::broken_tree_sum_missing_barrier, dim3(1), dim3(threads), 0, nullptr, x.data(), &out);
    results.push_back(out);
  }
  // Reverse order happens to let every writer finish before its reader; forward does not.
  EXPECT_NE(results[0], results[1]) << "the missing __syncthreads went unnoticed";
  EXPECT_NEAR(results[1], ref, 1e-4);
  EXPECT_GT(std::abs(results[0] - ref), 1e-3);
}

TEST_F(SimtBrokenDeathTest, DivergentBarrierAbortsNamingBothLines) {
  cortex::simt::set_schedule({Order::forward, 0});
  std::vector<float> out(32, 0.0f);
  const std::string re = "divergent barrier.*simt_kernels\\.h:" + std::to_string(simt_test::kDivergentBarrierLine + 3) +
                         ".*simt_kernels\\.h:" + std::to_string(simt_test::kDivergentBarrierLine);
  EXPECT_DEATH(CORTEX_LAUNCH(simt_test::broken_divergent_barrier, dim3(1), dim3(32), 0, nullptr, out.data()), re);
}

TEST_F(SimtBrokenDeathTest, DeadlockAbortsNamingTheFirstWaiter) {
  std::vector<float> out(32, 0.0f);
  const std::string re = "deadlock.*thread \\(0,0,0\\) at .*simt_kernels\\.h:" + std::to_string(simt_test::kDeadlockBarrierLine);
  EXPECT_DEATH(CORTEX_LAUNCH(simt_test::broken_deadlock, dim3(1), dim3(32), 0, nullptr, out.data()), re);
}

TEST_F(SimtBrokenDeathTest, MaskNamingExitedLanesAborts) {
  std::vector<int> out(32, 0);
  for (const Schedule& s : {Schedule{Order::forward, 0}, Schedule{Order::reverse, 0}}) {
    cortex::simt::set_schedule(s);
    EXPECT_DEATH(CORTEX_LAUNCH(simt_test::broken_mask_names_exited_lane, dim3(1), dim3(32), 0, nullptr, out.data()),
                 "exited.*simt_kernels\\.h:")
        << order_name(s);
  }
}

TEST_F(SimtBrokenDeathTest, ShuffleOutsideTheMaskAborts) {
  std::vector<int> out(32, 0);
  EXPECT_DEATH(CORTEX_LAUNCH(simt_test::broken_shuffle_outside_mask, dim3(1), dim3(32), 0, nullptr, out.data()),
               "outside the mask.*simt_kernels\\.h:" + std::to_string(simt_test::kOutsideMaskLine) + ".*lane 20");
}

TEST_F(SimtBrokenDeathTest, FullMaskOnAPartialWarpAborts) {
  std::vector<int> out(11 * 48, 0);
  EXPECT_DEATH(CORTEX_LAUNCH(simt_test::shuffle_edges, dim3(1), dim3(48), 0, nullptr, out.data()),
               "lanes that do not exist");
}

// Out-of-bounds shared memory reads are undefined behaviour the runtime cannot see; a sanitizer
// build must. scripts/simt-sanitize.sh asan builds this file with ASan+UBSan.
TEST_F(SimtBrokenDeathTest, DynamicSharedMemoryOverflowIsReportedByAsan) {
#ifdef TEST_ASAN
  std::vector<float> out(64, 0.0f);
  EXPECT_DEATH(CORTEX_LAUNCH(simt_test::broken_smem_out_of_bounds, dim3(1), dim3(64), 64 * sizeof(float), nullptr,
                             out.data()),
               "AddressSanitizer: heap-buffer-overflow");
#else
  GTEST_SKIP() << "needs an AddressSanitizer build (scripts/simt-sanitize.sh asan)";
#endif
}

TEST_F(SimtBrokenDeathTest, StaticSharedMemoryOverflowIsReportedByUbsan) {
#ifdef CORTEX_SIMT_UBSAN
  std::vector<float> out(64, 0.0f);
  EXPECT_DEATH(CORTEX_LAUNCH(simt_test::broken_static_smem_out_of_bounds, dim3(1), dim3(64), 0, nullptr, out.data()),
               "index 64 out of bounds");
#else
  GTEST_SKIP() << "needs an UndefinedBehaviorSanitizer build (scripts/simt-sanitize.sh asan)";
#endif
}

// Under TSan the missing barrier must be reported as a data race in the kernel.
TEST_F(SimtBrokenDeathTest, MissingBarrierIsReportedByTsan) {
#ifdef TEST_TSAN
  const int threads = 64;
  const std::vector<float> x = random_floats(threads, 9);
  float out = 0.0f;
  EXPECT_DEATH(CORTEX_LAUNCH(simt_test::broken_tree_sum_missing_barrier, dim3(1), dim3(threads), 0, nullptr, x.data(), &out),
               "ThreadSanitizer: data race.*broken_tree_sum_missing_barrier");
#else
  GTEST_SKIP() << "needs a ThreadSanitizer build (scripts/simt-sanitize.sh tsan)";
#endif
}

}  // namespace
