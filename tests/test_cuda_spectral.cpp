// The spectral kernels of kernels/cuda/spectral.cu on the emulated CUDA device and the CPU kernels
// (kernels/cpu/spectral.cpp), both against a float64 brute force: knn_affinity (the K nearest
// samples by cosine or rbf affinity, log values, ties to the lower index) over odd N, m and d that
// cross the kernel's tiles, k = 1 and k = m, d = 0, one row, strided views, float32 and float64;
// exact ties (integer data whose scores are exact in both dtypes) where the indices must match the
// reference exactly; knn_propagate against a float64 loop. The dot products add in a different
// order than the CPU's GEMM, so values agree within a rounding bound (stated per test), not bit for
// bit; the emulated kernels must give the same bytes in forward, reverse and random schedule order.
// Strict device mode is on, so a fallback to the host fails the test. Kernels layer only (the
// sanitizer build, scripts/simt-sanitize.sh, compiles no analysis/).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/cuda/simt/runtime.h"
#include "kernels/dispatch.h"
#include "kernels/spectral.h"
#include "tests/cuda_test_util.h"
#include "tests/test_util.h"

using namespace cortex;
namespace K = cortex::kernels;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::bytes_of;

namespace {

const Device kEmu = Device::emu();

class CudaSpectral : public cortex::testing::StrictEmuTest {};

std::vector<double> host64(const Tensor& t) { return t.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>(); }
std::vector<int64_t> host_i64(const Tensor& t) { return t.to(Device::cpu()).contiguous().to_vector<int64_t>(); }

// log W (N, m) in float64 straight from the definitions of kernels/spectral.h.
std::vector<double> ref_log_w(const Tensor& x, const Tensor& s, const KnnAffinityParams& p) {
  const int64_t N = x.size(0), m = s.size(0), d = x.size(1);
  const std::vector<double> xv = host64(x), sv = host64(s);
  std::vector<double> out(N * m);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double dot = 0, nx = 0, ny = 0, d2 = 0;
      for (int64_t e = 0; e < d; ++e) {
        const double a = xv[i * d + e], b = sv[j * d + e];
        dot += a * b, nx += a * a, ny += b * b, d2 += (a - b) * (a - b);
      }
      out[i * m + j] = p.kind == KnnKernel::Cosine
                           ? (std::min(dot / (std::max(std::sqrt(nx), 1e-12) * std::max(std::sqrt(ny), 1e-12)), 1.0) - 1) / p.t
                           : -d2 / (2 * p.t * p.t);
    }
  return out;
}

// got (values, indices) is a top-k of the reference: every value matches the k-th largest
// reference value of its rank within tol(ref), every index names a sample whose reference value
// matches, indices in a row are distinct, and exactly equal values keep ascending indices.
// With exact = true the indices must be the reference's (ties: lower index first).
::testing::AssertionResult check_topk(const K::KnnAffinity& got, const std::vector<double>& ref, int64_t N, int64_t m,
                                      int64_t k, double rtol, double atol, bool exact, const std::string& what) {
  if (got.values.shape() != Shape{N, k} || got.indices.shape() != Shape{N, k} || got.indices.dtype() != DType::Int64)
    return ::testing::AssertionFailure() << what << ": shapes " << shape_str(got.values.shape());
  const std::vector<double> v = host64(got.values);
  const std::vector<int64_t> ix = host_i64(got.indices);
  for (int64_t i = 0; i < N; ++i) {
    std::vector<int64_t> order(m);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ref[i * m + a] > ref[i * m + b]; });
    std::vector<char> seen(m, 0);
    for (int64_t q = 0; q < k; ++q) {
      const int64_t j = ix[i * k + q];
      const double want = ref[i * m + order[q]];
      const double tol = atol + rtol * std::abs(want);
      if (j < 0 || j >= m || seen[j]) return ::testing::AssertionFailure() << what << ": row " << i << " index " << j;
      seen[j] = 1;
      if (exact && j != order[q])
        return ::testing::AssertionFailure() << what << ": row " << i << " rank " << q << " index " << j << ", want "
                                             << order[q];
      if (!(std::abs(v[i * k + q] - want) <= tol) || !(std::abs(ref[i * m + j] - want) <= 2 * tol))
        return ::testing::AssertionFailure() << what << ": row " << i << " rank " << q << " value " << v[i * k + q]
                                             << " (index " << j << ", ref " << ref[i * m + j] << "), want " << want;
      if (q > 0 && v[i * k + q] == v[i * k + q - 1] && j < ix[i * k + q - 1])
        return ::testing::AssertionFailure() << what << ": row " << i << " tie out of index order at rank " << q;
    }
  }
  return ::testing::AssertionSuccess();
}

// Rounding bound of the log values: scores are sums of d products of prepared rows (norm <= 1 for
// cosine, |x||y| for rbf), in any order: |error| <= ~d eps (scale), divided by t (t^2 for rbf).
double rtol_of(DType dt) { return dt == DType::Float32 ? 2e-5 : 1e-12; }
double atol_of(DType dt, int64_t d, double scale) {
  const double eps = dt == DType::Float32 ? 1.2e-7 : 2.3e-16;
  return 4.0 * (d + 1) * eps * scale;
}

struct Case {
  int64_t N, m, d;
};

}  // namespace

TEST_F(CudaSpectral, KnnAffinityMatchesFloat64BruteForceOnCpuAndEmu) {
  // 1 x 1, rows and samples that fill partial tiles (tiles: 32 rows, 64 samples, 16 features), d = 0
  const std::vector<Case> cases = {{1, 1, 1}, {37, 29, 13}, {70, 65, 17}, {33, 130, 5}, {5, 7, 0}, {3, 64, 33}};
  uint64_t seed = 1;
  for (const DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : cases)
      for (const KnnKernel kind : {KnnKernel::Cosine, KnnKernel::Rbf}) {
        const Tensor x = randn({c.N, c.d}, seed++, dt), s = randn({c.m, c.d}, seed++, dt);
        const KnnAffinityParams p{kind, kind == KnnKernel::Cosine ? 0.3 : 2.5};
        const std::vector<double> ref = ref_log_w(x, s, p);
        // the scale of a score: 1 (cosine) or |x||y| ~ d + a few (rbf), over t or t^2
        const double scale = kind == KnnKernel::Cosine ? 1 / p.t : (c.d + 4.0 * std::sqrt(c.d + 1.0) + 4) / (p.t * p.t);
        for (const int64_t k : {int64_t(1), std::min<int64_t>(3, c.m), c.m}) {
          const std::string what = std::string(dtype_name(dt)) + " N=" + std::to_string(c.N) + " m=" +
                                   std::to_string(c.m) + " d=" + std::to_string(c.d) + " k=" + std::to_string(k) +
                                   (kind == KnnKernel::Cosine ? " cosine" : " rbf");
          const K::KnnAffinity cpu = K::knn_affinity(x, s, k, p);
          EXPECT_TRUE(check_topk(cpu, ref, c.N, c.m, k, rtol_of(dt), atol_of(dt, c.d, scale), false, "cpu " + what));
          const K::KnnAffinity emu = K::knn_affinity(x.to(kEmu), s.to(kEmu), k, p);
          EXPECT_EQ(emu.values.device(), kEmu);
          EXPECT_EQ(emu.indices.device(), kEmu);
          EXPECT_TRUE(check_topk(emu, ref, c.N, c.m, k, rtol_of(dt), atol_of(dt, c.d, scale), false, "emu " + what));
        }
      }
}

TEST_F(CudaSpectral, KnnAffinityReadsStridedViews) {
  for (const DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = randn({41, 9}, 3, dt), s = randn({23, 9}, 4, dt);
    const KnnAffinityParams p{KnnKernel::Rbf, 1.7};
    const K::KnnAffinity want = K::knn_affinity(x.to(kEmu), s.to(kEmu), 5, p);
    const Tensor xt = x.to(kEmu).t().contiguous().t();  // column-major view
    const K::KnnAffinity got = K::knn_affinity(xt, noncontig(s.to(kEmu)), 5, p);
    EXPECT_EQ(bytes_of(got.values), bytes_of(want.values)) << dtype_name(dt);
    EXPECT_EQ(bytes_of(got.indices), bytes_of(want.indices)) << dtype_name(dt);
    const K::KnnAffinity cpu = K::knn_affinity(x.t().contiguous().t(), noncontig(s), 5, p);
    EXPECT_EQ(bytes_of(cpu.indices), bytes_of(K::knn_affinity(x, s, 5, p).indices));
  }
}

// Scores that are exact in both dtypes, so the ranking has exact ties and must equal the
// reference's (lower index first) on both backends: rbf on small integers (every product and sum
// is an integer below 2^24), and cosine on axis-aligned rows (unit rows after normalisation, dot
// products 0 or 1) with duplicated samples.
TEST_F(CudaSpectral, ExactTiesKeepTheLowerIndexFirst) {
  for (const DType dt : {DType::Float32, DType::Float64}) {
    std::vector<double> xv, sv;
    const int64_t N = 35, m = 70, d = 3;
    for (int64_t i = 0; i < N * d; ++i) xv.push_back(double((i * 7) % 5) - 2);
    for (int64_t i = 0; i < m * d; ++i) sv.push_back(double((i * 3) % 4) - 1);  // many duplicate rows
    const Tensor x = from_vector(xv, {N, d}).to(dt), s = from_vector(sv, {m, d}).to(dt);
    const KnnAffinityParams p{KnnKernel::Rbf, 1.0};
    const std::vector<double> ref = ref_log_w(x, s, p);
    for (const int64_t k : {int64_t(1), int64_t(9), m}) {
      EXPECT_TRUE(check_topk(K::knn_affinity(x, s, k, p), ref, N, m, k, 0, 0, true, "cpu rbf ties"));
      EXPECT_TRUE(check_topk(K::knn_affinity(x.to(kEmu), s.to(kEmu), k, p), ref, N, m, k, 0, 0, true, "emu rbf ties"));
    }
    std::vector<double> ca(N * 4, 0.0), cb(m * 4, 0.0);
    for (int64_t i = 0; i < N; ++i) ca[i * 4 + i % 4] = double(1 + i % 3);   // positive multiples of axes
    for (int64_t j = 0; j < m; ++j) cb[j * 4 + (j / 2) % 4] = double(2 - j % 2 * 3);  // +2 or -1 along an axis
    const Tensor cx = from_vector(ca, {N, 4}).to(dt), cs = from_vector(cb, {m, 4}).to(dt);
    const KnnAffinityParams pc{KnnKernel::Cosine, 0.5};
    const std::vector<double> cref = ref_log_w(cx, cs, pc);
    for (const int64_t k : {int64_t(1), int64_t(20), m}) {
      EXPECT_TRUE(check_topk(K::knn_affinity(cx, cs, k, pc), cref, N, m, k, 0, 0, true, "cpu cosine ties"));
      EXPECT_TRUE(
          check_topk(K::knn_affinity(cx.to(kEmu), cs.to(kEmu), k, pc), cref, N, m, k, 0, 0, true, "emu cosine ties"));
    }
  }
}

TEST_F(CudaSpectral, KnnPropagateMatchesFloat64Loop) {
  for (const DType dt : {DType::Float32, DType::Float64}) {
    const int64_t N = 45, m = 19, c = 7;
    for (const int64_t k : {int64_t(1), int64_t(4), m}) {
      const Tensor x = randn({N, 6}, 11, dt), s = randn({m, 6}, 12, dt), v = randn({m, c}, 13, dt);
      const K::KnnAffinity nn = K::knn_affinity(x, s, k, {KnnKernel::Rbf, 0.4});  // small sigma: tiny weights
      const std::vector<double> lw = host64(nn.values), vv = host64(v);
      const std::vector<int64_t> ix = host_i64(nn.indices);
      std::vector<double> want(N * c);
      for (int64_t i = 0; i < N; ++i) {
        double ws = 0;
        for (int64_t q = 0; q < k; ++q) ws += std::exp(lw[i * k + q] - lw[i * k]);
        for (int64_t e = 0; e < c; ++e) {
          double a = 0;
          for (int64_t q = 0; q < k; ++q) a += std::exp(lw[i * k + q] - lw[i * k]) * vv[ix[i * k + q] * c + e];
          want[i * c + e] = a / ws;
        }
      }
      const Tensor ref = from_vector(want, {N, c});
      const double tol = dt == DType::Float32 ? 1e-6 : 1e-13;
      const Tensor cpu = K::knn_propagate(nn.values, nn.indices, v);
      EXPECT_TRUE(cortex::testing::allclose(cpu, ref, tol, tol)) << dtype_name(dt) << " k=" << k;
      const Tensor emu = K::knn_propagate(nn.values.to(kEmu), nn.indices.to(kEmu), noncontig(v.to(kEmu)));
      EXPECT_EQ(emu.device(), kEmu);
      EXPECT_TRUE(cortex::testing::allclose(emu.to(Device::cpu()), ref, tol, tol)) << dtype_name(dt) << " k=" << k;
      // The same terms summed in the same order, but the compiler contracts a*b+c into FMAs differently
      // in the two kernels where -march=native has FMA (seen: 4 ulp on an AMD EPYC): a few roundings.
      EXPECT_TRUE(cortex::testing::allclose(emu.to(Device::cpu()), cpu, dt == DType::Float32 ? 5e-7 : 2e-15, 0));
    }
  }
}

TEST_F(CudaSpectral, BitIdenticalAcrossScheduleOrders) {
  const Tensor x = randn({67, 21}, 31, DType::Float32).to(kEmu), s = randn({131, 21}, 32, DType::Float32).to(kEmu);
  const Tensor v = randn({131, 5}, 33, DType::Float32).to(kEmu);
  using Fn = std::function<std::vector<unsigned char>()>;
  const std::vector<std::pair<std::string, Fn>> fns = {
      {"knn_affinity cosine values", [&] { return bytes_of(K::knn_affinity(x, s, 7, {KnnKernel::Cosine, 0.5}).values); }},
      {"knn_affinity cosine indices", [&] { return bytes_of(K::knn_affinity(x, s, 131, {KnnKernel::Cosine, 0.5}).indices); }},
      {"knn_affinity rbf values", [&] { return bytes_of(K::knn_affinity(x, s, 10, {KnnKernel::Rbf, 3.0}).values); }},
      {"knn_propagate", [&] {
         const K::KnnAffinity nn = K::knn_affinity(x, s, 10, {KnnKernel::Rbf, 3.0});
         return bytes_of(K::knn_propagate(nn.values, nn.indices, v));
       }},
  };
  for (const auto& [name, f] : fns) {
    cortex::simt::set_schedule({cortex::simt::Order::forward, 0});
    const auto ref = f();
    for (const cortex::simt::Schedule sch : {cortex::simt::Schedule{cortex::simt::Order::reverse, 0},
                                             cortex::simt::Schedule{cortex::simt::Order::random, 7}}) {
      cortex::simt::set_schedule(sch);
      EXPECT_EQ(f(), ref) << name << ": results differ across schedule orders";
    }
    cortex::simt::clear_schedule();
  }
}

TEST_F(CudaSpectral, EntriesRefuseBadArguments) {
  const Tensor x = randn({4, 3}, 1).to(kEmu), s = randn({5, 3}, 2).to(kEmu);
  EXPECT_CORTEX_ERROR(K::knn_affinity(x, s, 0, {}), "expected k in [1, m = 5], found k = 0");
  EXPECT_CORTEX_ERROR(K::knn_affinity(x, s, 6, {}), "expected k in [1, m = 5], found k = 6");
  EXPECT_CORTEX_ERROR(K::knn_affinity(x, randn({5, 2}, 2).to(kEmu), 1, {}), "with one d");
  EXPECT_CORTEX_ERROR(K::knn_affinity(x, s.to(DType::Float32), 1, {}), "one dtype");
  EXPECT_CORTEX_ERROR(K::knn_affinity(x, s, 1, {KnnKernel::Rbf, 0.0}), "expected a sigma > 0");
  EXPECT_CORTEX_ERROR(K::knn_affinity(x, s.to(Device::cpu()), 1, {}), "one device");
  const K::KnnAffinity nn = K::knn_affinity(x, s, 2, {});
  const Tensor v = randn({5, 2}, 3).to(kEmu);
  const Tensor bad = from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 1, 0}, {4, 2}).to(kEmu);
  EXPECT_CORTEX_ERROR(K::knn_propagate(nn.values, bad, v), "expected indices in [0, 5), found 5 in row 2");
  EXPECT_CORTEX_ERROR(K::knn_propagate(nn.values, nn.indices.to(DType::Int32), v), "expected int64 indices");
  EXPECT_CORTEX_ERROR(K::knn_propagate(nn.values, nn.indices, v.to(DType::Float32)), "one dtype");
}
