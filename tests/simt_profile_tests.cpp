// Known answers of the emulated device's memory-traffic profiler (kernels/cuda/simt/profile.h,
// docs/profile.md). Built and run only by the profiling build (scripts/simt-profile.sh: clang,
// CORTEX_SIMT_PROFILE=ON), where the kernels of kernels/cuda/simt/profile/cases.cpp are instrumented.
// Every expected figure is worked out by hand from the kernel's index arithmetic.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/cuda/simt/profile/cases.h"
#include "kernels/cuda/simt/runtime.h"
#include "tensor/error.h"

namespace prof = cortex::simt::profile;

namespace {

prof::KernelProfile one(const std::string& name, std::vector<int64_t> shape) {
  std::vector<prof::KernelProfile> v = prof::run_case(name, std::move(shape));
  EXPECT_EQ(v.size(), 1u);
  EXPECT_TRUE(prof::saw_instrumented_code()) << "cases.cpp was not built with the coverage flags";
  return v.empty() ? prof::KernelProfile{} : v[0];
}

double per_request(const prof::AccessCounts& c) {
  return c.requests ? static_cast<double>(c.sectors) / static_cast<double>(c.requests) : -1;
}

}  // namespace

TEST(SimtProfile, CoalescedFloatCopyIsFourSectorsPerRequest) {
  const int64_t n = 8192;  // 32 blocks of 256: every warp full
  const prof::KernelProfile p = one("copy", {n});
  EXPECT_EQ(p.kernel, "prof_copy");
  EXPECT_EQ(p.blocks, 32u);
  EXPECT_EQ(p.global_load.requests, static_cast<uint64_t>(n / 32));
  EXPECT_EQ(p.global_load.accesses, static_cast<uint64_t>(n));
  EXPECT_EQ(p.global_load.bytes, static_cast<uint64_t>(4 * n));
  EXPECT_EQ(per_request(p.global_load), 4.0);
  EXPECT_EQ(per_request(p.global_store), 4.0);
  EXPECT_EQ(p.global_store.requests, static_cast<uint64_t>(n / 32));
  // Kernel arguments, threadIdx/blockIdx and the threads' locals are not memory traffic.
  EXPECT_EQ(p.shared_load.requests + p.shared_store.requests, 0u);
  EXPECT_EQ(p.distinct_read_bytes, static_cast<uint64_t>(4 * n));
  EXPECT_EQ(p.distinct_written_bytes, static_cast<uint64_t>(4 * n));
  EXPECT_EQ(p.distinct_bytes, static_cast<uint64_t>(8 * n));
  EXPECT_EQ(p.barriers + p.shuffles + p.warp_votes, 0u);
}

TEST(SimtProfile, PartialLastWarpCountsItsActiveLanesOnly) {
  const int64_t n = 8192 + 40;  // the last block has one full warp and one of 8 active lanes
  const prof::KernelProfile p = one("copy", {n});
  EXPECT_EQ(p.global_load.requests, static_cast<uint64_t>(8192 / 32 + 2));
  EXPECT_EQ(p.global_load.accesses, static_cast<uint64_t>(n));
  EXPECT_EQ(p.global_load.sectors, static_cast<uint64_t>(4 * (8192 / 32 + 1) + 1));
}

TEST(SimtProfile, StrideThirtyTwoFloatReadIsThirtyTwoSectorsPerRequest) {
  const int64_t n = 4096;
  const prof::KernelProfile p = one("stride32", {n});
  EXPECT_EQ(p.global_load.requests, static_cast<uint64_t>(n / 32));
  EXPECT_EQ(per_request(p.global_load), 32.0);
  EXPECT_EQ(per_request(p.global_store), 4.0);
  // Only the floats read count as compulsory traffic, not the rest of their sectors.
  EXPECT_EQ(p.distinct_read_bytes, static_cast<uint64_t>(4 * n));
}

TEST(SimtProfile, UnpaddedSharedTransposeHasThirtyTwoWayConflictsAndPaddedNone) {
  const int64_t n = 64;  // 2 x 2 blocks of 32 x 32 threads, 32 warps each
  const uint64_t warps = 4 * 32;
  const prof::KernelProfile bad = one("transpose", {n});
  // The tile is written along rows: one wavefront a request.
  EXPECT_EQ(bad.shared_store.requests, warps);
  EXPECT_EQ(bad.shared_store.wavefronts, warps);
  EXPECT_EQ(bad.shared_store.conflicts(), 0u);
  // ... and read down a column: the 32 lanes' words all sit in one bank.
  EXPECT_EQ(bad.shared_load.requests, warps);
  EXPECT_EQ(bad.shared_load.wavefronts, 32 * warps);
  EXPECT_EQ(bad.shared_load.conflicts(), 31 * warps);
  EXPECT_EQ(bad.shared_load.max_ways, 32u);
  EXPECT_EQ(bad.barriers, 4u);  // one __syncthreads per block
  EXPECT_EQ(per_request(bad.global_load), 4.0);
  EXPECT_EQ(per_request(bad.global_store), 4.0);

  const prof::KernelProfile good = one("transpose_padded", {n});
  EXPECT_EQ(good.shared_load.requests, warps);
  EXPECT_EQ(good.shared_load.wavefronts, warps);
  EXPECT_EQ(good.shared_load.conflicts(), 0u);
  EXPECT_EQ(good.shared_load.max_ways, 1u);
  EXPECT_EQ(good.shared_store.conflicts(), 0u);
}

TEST(SimtProfile, GemmDistinctBytesAreTheSizesOfABAndC) {
  for (int v = 1; v <= 7; ++v)
    for (const std::vector<int64_t>& s : {std::vector<int64_t>{64, 64, 64}, std::vector<int64_t>{33, 65, 17}}) {
      SCOPED_TRACE("gemm" + std::to_string(v) + " " + std::to_string(s[0]) + "," + std::to_string(s[1]) + "," +
                   std::to_string(s[2]));
      const int64_t M = s[0], N = s[1], K = s[2];
      const prof::KernelProfile p = one("gemm" + std::to_string(v), s);
      EXPECT_EQ(p.distinct_read_bytes, static_cast<uint64_t>(4 * (M * K + K * N)));
      EXPECT_EQ(p.distinct_written_bytes, static_cast<uint64_t>(4 * M * N));
      EXPECT_EQ(p.distinct_bytes, static_cast<uint64_t>(4 * (M * K + K * N + M * N)));
      EXPECT_EQ(p.flops, 2.0 * M * N * K);
      EXPECT_EQ(p.global_store.accesses > 0, true);
    }
}

TEST(SimtProfile, GemmCoalescingTakesSectorsPerRequestFromSixteenAndAHalfToTwoAndAHalf) {
  // Version 1: a warp's lanes take 32 rows of A (32 sectors) and one B(k, j) (1 sector) per k.
  const prof::KernelProfile v1 = one("gemm1", {64, 64, 64});
  EXPECT_EQ(v1.global_load.requests, static_cast<uint64_t>(64 * 64 / 32 * 2 * 64));
  EXPECT_EQ(per_request(v1.global_load), 16.5);
  EXPECT_EQ(per_request(v1.global_store), 32.0);
  // Version 2: one A(i, k) (a broadcast, 1 sector) and 32 consecutive B(k, j) (4 sectors).
  const prof::KernelProfile v2 = one("gemm2", {64, 64, 64});
  EXPECT_EQ(per_request(v2.global_load), 2.5);
  EXPECT_EQ(per_request(v2.global_store), 4.0);
  // Version 3: 32 x 32 tiles; every global element is loaded once per block row/column of tiles.
  const prof::KernelProfile v3 = one("gemm3", {64, 64, 64});
  EXPECT_EQ(v3.global_load.accesses, static_cast<uint64_t>(2 * 64 * 64 * 64 / 32));
  EXPECT_EQ(v3.shared_load.conflicts(), 0u);
  EXPECT_EQ(v3.barriers, static_cast<uint64_t>(4 * 2 * 2));  // 4 blocks, 2 steps of K, 2 barriers each
}

TEST(SimtProfile, AttentionTouchesQKVOutAndLseOnce) {
  const int64_t nb = 2, L = 40, D = 16;
  for (int v = 1; v <= 3; ++v) {
    SCOPED_TRACE("attn" + std::to_string(v));
    const prof::KernelProfile p = one("attn" + std::to_string(v), {nb, L, D});
    EXPECT_EQ(p.distinct_bytes, static_cast<uint64_t>(4 * (4 * nb * L * D + nb * L)));
    EXPECT_EQ(p.distinct_written_bytes, static_cast<uint64_t>(4 * (nb * L * D + nb * L)));
    EXPECT_EQ(p.flops, 4.0 * nb * L * L * D);
  }
}

// Version 3's K tile rows are padded to D + 1 floats (kernels/cuda/attention/3_tiled.cuh): in the
// score loop lanes cc = 0..31 read Ks[cc * 65 + c], banks (cc + c) mod 32, all different (with
// rows of D = 64 floats all 32 lanes would share one bank: 32-way). What remains is 4-way: a warp
// holds 4 rows of 8 lanes, and the rows of the score and output tiles (32 and 64 floats) start in
// the same bank.
TEST(SimtProfile, TiledAttentionHasNoThirtyTwoWayConflict) {
  const prof::KernelProfile p = one("attn3", {1, 64, 64});
  EXPECT_EQ(p.shared_load.max_ways, 4u);
  EXPECT_EQ(p.shared_store.max_ways, 4u);
  EXPECT_EQ(per_request(p.global_load), 4.0);
}

TEST(SimtProfile, RooflineOfACopyIsMemoryBound) {
  const prof::KernelProfile p = one("copy", {1 << 16});
  const prof::Roofline r = prof::roofline(p, prof::gpu("h200"));
  EXPECT_EQ(r.compute_s, 0.0);
  EXPECT_NEAR(r.compulsory_s, 8.0 * (1 << 16) / 4.8e12, 1e-18);
  EXPECT_EQ(r.bound_s, r.compulsory_s);
  EXPECT_STREQ(r.limiter, "dram");
  EXPECT_NE(prof::format(p, prof::gpu("h100")).find("ESTIMATE for h100"), std::string::npos);
  // GEMM version 3: two shared wavefronts per warp FMA against four warp FMAs per clock.
  const prof::KernelProfile g3 = one("gemm3", {64, 64, 64});
  const prof::Gpu& h = prof::gpu("h100");
  const prof::Roofline r3 = prof::roofline(g3, h);
  EXPECT_STREQ(r3.limiter, "shared");
  EXPECT_NEAR(r3.shared_s, static_cast<double>(g3.shared_load.wavefronts + g3.shared_store.wavefronts) / (132 * h.clock_hz()), 1e-15);
  EXPECT_NEAR(h.clock_hz(), 1.983e9, 1e6);
}

TEST(SimtProfile, RefusesUnknownKernelsShapesAndGpus) {
  EXPECT_THROW(prof::run_case("gemm9", {}), cortex::Error);
  EXPECT_THROW(prof::run_case("gemm1", {4, 4}), cortex::Error);
  EXPECT_THROW(prof::run_case("copy", {0}), cortex::Error);
  EXPECT_THROW(prof::run_case("transpose", {33}), cortex::Error);
  EXPECT_THROW(prof::gpu("a100"), cortex::Error);
  EXPECT_THROW(prof::stop(), cortex::Error);
}

TEST(SimtProfile, CountsDoNotDependOnTheScheduleOrder) {
  // Requests are formed from each thread's own sequence of accesses, so the order in which the
  // emulator runs threads and blocks changes nothing (and CORTEX_SIMT_THREADS is ignored).
  auto key = [](const prof::KernelProfile& p) {
    std::vector<uint64_t> k;
    for (const prof::AccessCounts* c : {&p.global_load, &p.global_store, &p.shared_load, &p.shared_store})
      k.insert(k.end(), {c->requests, c->accesses, c->bytes, c->sectors, c->wavefronts, c->ideal_wavefronts, c->max_ways});
    k.insert(k.end(), {p.distinct_bytes, p.barriers, p.shuffles, p.blocks});
    return k;
  };
  for (const char* name : {"gemm5", "attn3"}) {
    SCOPED_TRACE(name);
    const std::vector<int64_t> shape = name[0] == 'g' ? std::vector<int64_t>{65, 130, 24} : std::vector<int64_t>{2, 33, 8};
    cortex::simt::set_schedule({cortex::simt::Order::forward, 0});
    const auto forward = key(one(name, shape));
    cortex::simt::set_schedule({cortex::simt::Order::reverse, 0});
    EXPECT_EQ(key(one(name, shape)), forward);
    cortex::simt::set_schedule({cortex::simt::Order::random, 99});
    cortex::simt::set_os_threads(2);
    EXPECT_EQ(key(one(name, shape)), forward);
    cortex::simt::set_os_threads(0);
    cortex::simt::clear_schedule();
  }
}
