// dist/comm.h without MPI ranks: the unit split, the ordered sum, tensor packing, and the one-rank
// behaviour of the collectives. The sharded jobs themselves are checked end to end with 1, 2 and 3
// ranks by tests/mpi_jobs.sh (ctest label mpi).
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "dist/comm.h"

namespace cortex {
namespace {

TEST(Dist, BlocksCoverEveryUnitOnceInRankOrder) {
  for (int64_t count : {0, 1, 2, 5, 7, 64, 1000})
    for (int size : {1, 2, 3, 4, 7, 64}) {
      int64_t next = 0, smallest = count, largest = 0;
      for (int r = 0; r < size; ++r) {
        const dist::Range b = dist::block(count, size, r);
        EXPECT_EQ(b.lo, next) << "count " << count << " size " << size << " rank " << r;
        EXPECT_GE(b.hi, b.lo);
        next = b.hi;
        smallest = std::min(smallest, b.size());
        largest = std::max(largest, b.size());
      }
      EXPECT_EQ(next, count) << "count " << count << " size " << size;
      EXPECT_LE(largest - smallest, 1) << "count " << count << " size " << size;
    }
  // Fewer units than ranks: some ranks get none, none gets two.
  EXPECT_EQ(dist::block(2, 3, 0).size(), 0);
  EXPECT_EQ(dist::block(2, 3, 1).size(), 1);
  EXPECT_EQ(dist::block(2, 3, 2).size(), 1);
  EXPECT_THROW(dist::block(5, 2, 2), Error);
  EXPECT_THROW(dist::block(-1, 2, 0), Error);
  EXPECT_THROW(dist::block(5, 0, 0), Error);
}

TEST(Dist, OrderedSumIsTheLeftFoldWhateverTheSplit) {
  // Values whose sum depends on the order: a reduction tree or a different order gives other bits.
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const size_t n = 17, parts = 23;
  std::vector<std::vector<double>> p(parts, std::vector<double>(n));
  for (size_t k = 0; k < parts; ++k)
    for (size_t i = 0; i < n; ++i) p[k][i] = u(rng) * std::pow(10.0, double(k % 7) * 3.0);
  std::vector<double> ref(n, 0.0);
  for (size_t k = 0; k < parts; ++k)
    for (size_t i = 0; i < n; ++i) ref[i] += p[k][i];
  const std::vector<double> got = dist::ordered_sum(p, n);
  ASSERT_EQ(got.size(), n);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(std::memcmp(&got[i], &ref[i], sizeof(double)), 0) << i;
  // The sum of rank partials (each rank summing its own block first) is not the same bits in
  // general: this is why the jobs gather unit partials and sum them in unit order.
  bool any_differs = false;
  for (int size : {2, 3}) {
    std::vector<std::vector<double>> rank_partials;
    for (int r = 0; r < size; ++r) {
      const dist::Range b = dist::block(int64_t(parts), size, r);
      rank_partials.push_back(dist::ordered_sum({p.begin() + b.lo, p.begin() + b.hi}, n));
    }
    const std::vector<double> tree = dist::ordered_sum(rank_partials, n);
    for (size_t i = 0; i < n; ++i) any_differs |= tree[i] != ref[i];
  }
  EXPECT_TRUE(any_differs) << "the test values do not exercise the summation order";
  // 1e16 + 1 - 1e16: the left fold gives 0, another order 1.
  EXPECT_EQ(dist::ordered_sum({{1e16}, {1.0}, {-1e16}}, 1)[0], 0.0);
  EXPECT_EQ(dist::ordered_sum({{1e16}, {-1e16}, {1.0}}, 1)[0], 1.0);
  EXPECT_EQ(dist::ordered_sum({}, 3), std::vector<double>(3, 0.0));
  EXPECT_THROW(dist::ordered_sum({{1.0, 2.0}, {1.0}}, 2), Error);
}

TEST(Dist, PackRoundTripsDtypesShapesAndEmptyDims) {
  std::vector<Tensor> ts;
  ts.push_back(from_vector(std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.0f}, {2, 3}));
  ts.push_back(from_vector(std::vector<double>{1e300, -1e-300}, {2, 1}));
  ts.push_back(from_vector(std::vector<int64_t>{-5, 1LL << 40, 3}, {3}));
  ts.push_back(empty({0, 4}, DType::Float32));
  ts.push_back(from_vector(std::vector<uint8_t>{9}, {1, 1, 1}, DType::UInt8));
  ts.push_back(from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3}).t());  // not contiguous
  std::vector<Tensor> back;
  dist::unpack(dist::pack(ts), back);
  ASSERT_EQ(back.size(), ts.size());
  for (size_t k = 0; k < ts.size(); ++k) {
    const Tensor a = ts[k].contiguous();
    EXPECT_EQ(back[k].shape(), a.shape()) << k;
    EXPECT_EQ(back[k].dtype(), a.dtype()) << k;
    const size_t nb = size_t(a.numel()) * a.element_size();
    EXPECT_EQ(std::memcmp(back[k].raw_data(), a.raw_data(), nb), 0) << k;
  }
  EXPECT_EQ(back[5].data<float>()[1], 4.0f);  // row 0 of the transpose: 1, 4
  // Truncated and padded buffers are refused.
  std::vector<char> b = dist::pack(ts);
  std::vector<Tensor> junk;
  EXPECT_THROW(dist::unpack(std::vector<char>(b.begin(), b.end() - 1), junk), Error);
  b.push_back(0);
  EXPECT_THROW(dist::unpack(b, junk), Error);
  EXPECT_THROW(dist::unpack(std::vector<char>(3, 0), junk), Error);
}

TEST(Dist, OneRankRunsEveryUnitInOrder) {
  // This test binary is not started by a launcher, so there is one rank.
  dist::init(0, nullptr);
  EXPECT_EQ(dist::size(), 1);
  EXPECT_EQ(dist::rank(), 0);
  std::vector<int64_t> seen;
  const auto units = dist::run_units(5, [&](int64_t u) {
    seen.push_back(u);
    return std::vector<Tensor>{full({u + 1}, double(u), DType::Float64)};
  });
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  ASSERT_EQ(units.size(), 5u);
  for (int64_t u = 0; u < 5; ++u) {
    EXPECT_EQ(units[u][0].numel(), u + 1);
    EXPECT_EQ(units[u][0].data<double>()[0], double(u));
  }
  const std::vector<Tensor> mine{full({2}, 1.0)};
  EXPECT_EQ(dist::gather(mine, true).size(), 1u);
  EXPECT_EQ(dist::gather(mine, false).size(), 1u);
  std::vector<char> bytes{'a', 'b'};
  dist::broadcast(bytes);
  EXPECT_EQ(bytes, (std::vector<char>{'a', 'b'}));
  EXPECT_NO_THROW(dist::check_same_job(0, nullptr));
  EXPECT_EQ(dist::bytes_sent(), 0);
  EXPECT_EQ(dist::bytes_received(), 0);
}

TEST(Dist, Fnv1aKnownValues) {
  // FNV-1a 64 reference values (the empty string is the offset basis).
  EXPECT_EQ(dist::fnv1a("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(dist::fnv1a("a", 1), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(dist::fnv1a("foobar", 6), 0x85944171f73967e8ULL);
}

}  // namespace
}  // namespace cortex
