// matmul and linear against a naive float64 triple loop written here: NumPy 1-D promotion,
// broadcast batch dims, transposed / row-strided / fully strided / stride-0 views, size-0 and
// size-1 dims, the small-batch and big-GEMM paths, float32 and float64, and every input error.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "kernels/cpu/conv_gemm.h"
#include "kernels/matmul.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/reference.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
namespace K = cortex::kernels;
namespace ct = cortex::testing;

using namespace cortex::testing::ref;

namespace {

// Random integers in [lo, hi] from the Philox generator.
struct Draw {
  Generator g;
  explicit Draw(uint64_t seed) : g(seed) {}
  int64_t operator()(int64_t lo, int64_t hi) { return randint(lo, hi + 1, {1}, g).to_vector<int64_t>()[0]; }
};


// Tolerance for a sum of k products of O(1) values.
::testing::AssertionResult close(const Tensor& got, const Tensor& want, DType dt, int64_t k) {
  if (got.dtype() != dt) return ::testing::AssertionFailure() << "dtype " << dtype_name(got.dtype());
  if (!got.is_contiguous()) return ::testing::AssertionFailure() << "result not contiguous";
  const double kk = static_cast<double>(std::max<int64_t>(k, 1));
  return dt == DType::Float64 ? allclose(got, want, 1e-11, 1e-13 * kk) : allclose(got, want, 1e-4, 2e-6 * kk);
}

void check(const Tensor& a, const Tensor& b, const std::string& what) {
  SCOPED_TRACE(what + " a " + shape_str(a.shape()) + " b " + shape_str(b.shape()));
  const Tensor want = ref_matmul(a, b);
  EXPECT_TRUE(close(K::matmul(a, b), want, a.dtype(), a.size(-1)));
}

const DType kFloats[] = {DType::Float32, DType::Float64};

}  // namespace

TEST(Matmul, Random2DOddShapes) {
  Draw r(11);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t m = r(1, 37), k = r(1, 41), n = r(1, 33);
    for (DType dt : kFloats) {
      const Tensor a = ct::randn({m, k}, 100 + trial, dt), b = ct::randn({k, n}, 200 + trial, dt);
      check(a, b, "contiguous");
      check(ct::noncontig(a), ct::noncontig(b), "noncontig");
      // transposed views: a stored (k, m), b stored (n, k)
      const Tensor at = ct::randn({k, m}, 300 + trial, dt).t(), bt = ct::randn({n, k}, 400 + trial, dt).t();
      check(at, b, "a transposed");
      check(a, bt, "b transposed");
      check(at, bt, "both transposed");
    }
  }
}

TEST(Matmul, OneDimensionalPromotion) {
  Draw r(12);
  for (int trial = 0; trial < 10; ++trial) {
    const int64_t k = r(1, 50), m = r(1, 9), n = r(1, 9), bt = r(1, 4);
    for (DType dt : kFloats) {
      const Tensor v = ct::randn({k}, 10 + trial, dt), w = ct::randn({k}, 20 + trial, dt);
      const Tensor d = K::matmul(v, w);
      EXPECT_EQ(d.dim(), 0);  // dot product: a 0-dim tensor
      check(v, w, "dot");
      check(ct::noncontig(v), ct::noncontig(w), "dot strided");
      check(v, ct::randn({k, n}, 30 + trial, dt), "vec @ mat");
      check(ct::randn({m, k}, 40 + trial, dt), v, "mat @ vec");
      check(v, ct::randn({bt, 3, k, n}, 50 + trial, dt), "vec @ batched");
      check(ct::randn({bt, 2, m, k}, 60 + trial, dt), w, "batched @ vec");
      check(ct::randn({m, k}, 70 + trial, dt).t().slice(0, 0, k), ct::randn({m}, 80 + trial, dt), "t @ vec");
    }
  }
  EXPECT_EQ(K::matmul(ct::randn({4}, 1), ct::randn({2, 4, 3}, 2)).shape(), (Shape{2, 3}));
  EXPECT_EQ(K::matmul(ct::randn({2, 3, 4}, 1), ct::randn({4}, 2)).shape(), (Shape{2, 3}));
}

TEST(Matmul, BroadcastBatches) {
  Draw r(13);
  const std::vector<std::pair<Shape, Shape>> batches = {
      {{3}, {3}}, {{1}, {4}}, {{5}, {1}}, {{2, 1}, {3}}, {{}, {2, 3}}, {{4, 1, 2}, {3, 1}}, {{2, 3}, {}}, {{1, 1}, {1}}};
  int trial = 0;
  for (const auto& [ba, bb] : batches) {
    ++trial;
    const int64_t m = r(1, 13), k = r(1, 17), n = r(1, 11);
    Shape as = ba, bs = bb;
    as.insert(as.end(), {m, k});
    bs.insert(bs.end(), {k, n});
    for (DType dt : kFloats) {
      const Tensor a = ct::randn(as, 500 + trial, dt), b = ct::randn(bs, 600 + trial, dt);
      check(a, b, "broadcast");
      check(ct::noncontig(a), b, "broadcast, a strided");
      check(a.transpose(-1, -2).contiguous().transpose(-1, -2), ct::noncontig(b), "broadcast, a col-major");
    }
  }
  // Batch dims given by expand (stride 0) and by a permuted batch layout.
  const Tensor a = ct::randn({1, 5, 7}, 1).expand({4, 5, 7}), b = ct::randn({4, 7, 3}, 2);
  check(a, b, "expanded batch");
  const Tensor p = ct::randn({5, 3, 7}, 3).permute({1, 0, 2});  // (3, 5, 7), batch stride 7
  check(p, ct::randn({3, 7, 6}, 4), "permuted batch");
  check(p, ct::randn({7, 6}, 4), "permuted batch, shared b");
}

TEST(Matmul, StridedMatrices) {
  for (DType dt : kFloats) {
    const Tensor big = ct::randn({30, 40}, 7, dt);
    const Tensor rows = big.slice(0, 1, 30, 2);           // (15, 40), row stride 80: maps as row-major
    const Tensor cols = big.slice(1, 3, 40, 3);           // (30, 13), no unit stride: copied
    const Tensor tcols = big.t().slice(0, 0, 40, 2);      // (20, 30), column-major with gaps
    check(rows, ct::randn({40, 9}, 8, dt), "row-strided");
    check(cols.t(), ct::randn({30, 5}, 9, dt), "no unit stride");
    check(ct::randn({6, 20}, 10, dt), tcols, "col-major strided");
    // stride-0 rows and columns (broadcast views of a row / column)
    const Tensor row = ct::randn({1, 9}, 11, dt).expand({6, 9});
    const Tensor col = ct::randn({9, 1}, 12, dt).expand({9, 4});
    check(row, col, "stride-0 operands");
    check(row, ct::randn({9, 4}, 13, dt).t().contiguous().t(), "stride-0 rows, col-major b");
  }
}

TEST(Matmul, SizeZeroAndOne) {
  for (DType dt : kFloats) {
    const Tensor z = K::matmul(ct::randn({3, 0}, 1, dt), ct::randn({0, 4}, 2, dt));
    EXPECT_EQ(z.shape(), (Shape{3, 4}));
    EXPECT_TRUE(allclose(z, zeros({3, 4}, DType::Float64)));
    EXPECT_EQ(K::matmul(ct::randn({0, 5}, 1, dt), ct::randn({5, 4}, 2, dt)).shape(), (Shape{0, 4}));
    EXPECT_EQ(K::matmul(ct::randn({3, 5}, 1, dt), ct::randn({5, 0}, 2, dt)).shape(), (Shape{3, 0}));
    EXPECT_EQ(K::matmul(ct::randn({0, 3, 5}, 1, dt), ct::randn({5, 2}, 2, dt)).shape(), (Shape{0, 3, 2}));
    EXPECT_EQ(K::matmul(ct::randn({2, 1, 3, 5}, 1, dt), ct::randn({0, 5, 2}, 2, dt)).shape(), (Shape{2, 0, 3, 2}));
    const Tensor zb = K::matmul(ct::randn({2, 3, 0}, 1, dt), ct::randn({2, 0, 2}, 2, dt));
    EXPECT_TRUE(allclose(zb, zeros({2, 3, 2}, DType::Float64)));
    const Tensor d0 = K::matmul(ct::randn({0}, 1, dt), ct::randn({0}, 2, dt));
    EXPECT_EQ(d0.dim(), 0);
    EXPECT_EQ(d0.item(), 0.0);
    check(ct::randn({1, 1}, 3, dt), ct::randn({1, 1}, 4, dt), "1x1");
    check(ct::randn({7, 1}, 5, dt), ct::randn({1, 6}, 6, dt), "outer product");
    check(ct::randn({1, 7}, 5, dt), ct::randn({7, 1}, 6, dt), "row @ col");
    check(ct::randn({1}, 5, dt), ct::randn({1}, 6, dt), "dot of 1");
  }
}

TEST(Matmul, LargeAndBatchedPaths) {
  for (DType dt : kFloats) {
    // Big GEMM (threaded by Eigen), also with the left operand transposed.
    const Tensor a = ct::randn({131, 257}, 21, dt), b = ct::randn({257, 97}, 22, dt);
    check(a, b, "big");
    check(ct::randn({257, 131}, 23, dt).t(), b, "big, a transposed");
    // Many small matrices (one per thread), and batched big ones.
    check(ct::randn({67, 5, 6}, 24, dt), ct::randn({67, 6, 7}, 25, dt), "many small");
    check(ct::randn({3, 70, 80}, 26, dt), ct::randn({3, 80, 66}, 27, dt).transpose(-1, -2).contiguous().transpose(-1, -2),
          "batched big");
    // Folded path: (B, m, k) @ (k, n) as one (B*m, k) GEMM, shared b transposed.
    check(ct::randn({5, 33, 40}, 28, dt), ct::randn({21, 40}, 29, dt).t(), "folded");
    check(ct::randn({2, 3, 33, 40}, 30, dt), ct::randn({1, 40, 21}, 31, dt), "folded, b batch of 1");
    check(ct::noncontig(ct::randn({5, 33, 40}, 28, dt)), ct::randn({40, 21}, 29, dt), "folded, rows strided");
  }
}

TEST(Linear, AgainstReference) {
  Draw r(14);
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t in = r(1, 40), out = r(1, 30), n0 = r(1, 5), n1 = r(1, 6);
    for (DType dt : kFloats) {
      const Tensor w = ct::randn({out, in}, 700 + trial, dt), bias = ct::randn({out}, 800 + trial, dt);
      for (const Shape& xs : {Shape{in}, Shape{n0, in}, Shape{n0, n1, in}}) {
        const Tensor x = ct::randn(xs, 900 + trial, dt);
        SCOPED_TRACE("x " + shape_str(xs) + " w " + shape_str(w.shape()));
        // reference: x w^T (+ b) through the reference matmul and explicit broadcasting
        const Tensor xw = ref_matmul(x, w.t().contiguous());
        const auto vxw = values(xw), vb = values(bias);
        std::vector<double> withb(vxw.size());
        for (size_t i = 0; i < vxw.size(); ++i) withb[i] = vxw[i] + vb[i % out];
        const Tensor want_b = from_vector(withb, xw.shape(), DType::Float64);
        EXPECT_TRUE(close(K::linear(x, w, Tensor()), xw, dt, in));
        EXPECT_TRUE(close(K::linear(x, w, bias), want_b, dt, in));
        EXPECT_TRUE(close(K::linear(ct::noncontig(x), ct::noncontig(w), ct::noncontig(bias)), want_b, dt, in));
        // w given as the transposed view of a stored (in, out) matrix
        const Tensor wt = w.t().contiguous().t();
        EXPECT_TRUE(close(K::linear(x, wt, bias), want_b, dt, in));
      }
    }
  }
  // Permuted x whose leading dims cannot be viewed flat (copied), size-0 dims.
  const Tensor w = ct::randn({4, 6}, 1), bias = ct::randn({4}, 2);
  const Tensor xp = ct::randn({6, 3, 5}, 3).permute({1, 2, 0});  // (3, 5, 6)
  EXPECT_TRUE(allclose(K::linear(xp, w, Tensor()), ref_matmul(xp, w.t()), 1e-12, 1e-12));
  EXPECT_EQ(K::linear(ct::randn({0, 6}, 4), w, bias).shape(), (Shape{0, 4}));
  const Tensor only_b = K::linear(ct::randn({3, 0}, 4), ct::randn({4, 0}, 5), bias);
  EXPECT_TRUE(allclose(only_b, bias.unsqueeze(0).expand({3, 4}).contiguous()));
  EXPECT_TRUE(allclose(K::linear(ct::randn({3, 0}, 4), ct::randn({4, 0}, 5), Tensor()), zeros({3, 4}, DType::Float64)));
  EXPECT_EQ(K::linear(ct::randn({3, 6}, 4), ct::randn({0, 6}, 5), Tensor()).shape(), (Shape{3, 0}));
  // A big one (threaded GEMM), float32.
  const Tensor xb = ct::randn({300, 200}, 6, DType::Float32), wb = ct::randn({150, 200}, 7, DType::Float32);
  EXPECT_TRUE(close(K::linear(xb, wb, Tensor()), ref_matmul(xb, wb.t()), DType::Float32, 200));
}

namespace {

// The bytes of f() with 1, 2, 3 and 8 threads must be identical: the GEMM's tiles (and so every
// sum's order) depend on the problem only, never on the thread count (docs/gemm.md).
void expect_same_bytes_across_threads(const std::function<Tensor()>& f, const std::string& what) {
  SCOPED_TRACE(what);
  const int saved = omp_get_max_threads();
  Tensor first;
  for (int threads : {1, 2, 3, 8}) {
    omp_set_num_threads(threads);
    const Tensor got = f().contiguous();
    if (!first.defined()) {
      first = got;
      continue;
    }
    ASSERT_EQ(got.shape(), first.shape());
    EXPECT_EQ(std::memcmp(got.raw_data(), first.raw_data(), got.numel() * dtype_size(got.dtype())), 0)
        << "threads " << threads << " differ from 1 thread";
  }
  omp_set_num_threads(saved);
}

}  // namespace

TEST(Matmul, BitIdenticalAcrossThreadCounts) {
  for (DType dt : kFloats) {
    const std::string d = std::string(" ") + dtype_name(dt);
    const Tensor a = ct::randn({517, 611}, 41, dt), b = ct::randn({611, 389}, 42, dt);
    expect_same_bytes_across_threads([&] { return K::matmul(a, b); }, "big odd" + d);
    const Tensor at = ct::randn({611, 517}, 43, dt).t(), bt = ct::randn({389, 611}, 44, dt).t();
    expect_same_bytes_across_threads([&] { return K::matmul(at, bt); }, "both transposed" + d);
    expect_same_bytes_across_threads([&] { return K::matmul(ct::noncontig(a), b); }, "a strided" + d);
    // Tall-skinny and short-wide: tiles along one dim only; a matrix-vector row.
    const Tensor tall = ct::randn({2000, 300}, 45, dt), skinny = ct::randn({300, 7}, 46, dt);
    expect_same_bytes_across_threads([&] { return K::matmul(tall, skinny); }, "tall skinny" + d);
    const Tensor row = ct::randn({1, 3001}, 47, dt), wide = ct::randn({3001, 1300}, 48, dt);
    expect_same_bytes_across_threads([&] { return K::matmul(row, wide); }, "one row" + d);
    // Batched big, batched small, and the folded (B m, k) @ (k, n) path.
    const Tensor ab = ct::randn({3, 300, 257}, 49, dt), bb = ct::randn({3, 257, 301}, 50, dt);
    expect_same_bytes_across_threads([&] { return K::matmul(ab, bb); }, "batched big" + d);
    const Tensor as = ct::randn({97, 19, 33}, 51, dt), bs = ct::randn({97, 33, 21}, 52, dt);
    expect_same_bytes_across_threads([&] { return K::matmul(as, bs); }, "batched small" + d);
    const Tensor af = ct::randn({6, 130, 300}, 53, dt), wf = ct::randn({200, 300}, 54, dt);
    expect_same_bytes_across_threads([&] { return K::matmul(af, wf.t()); }, "folded" + d);
    // linear: bias then the accumulating GEMM, rows of a batch and one row.
    const Tensor x = ct::randn({700, 513}, 55, dt), w = ct::randn({333, 513}, 56, dt), bias = ct::randn({333}, 57, dt);
    expect_same_bytes_across_threads([&] { return K::linear(x, w, bias); }, "linear" + d);
    const Tensor x1 = ct::randn({1, 2049}, 58, dt), w1 = ct::randn({1500, 2049}, 59, dt), b1 = ct::randn({1500}, 60, dt);
    expect_same_bytes_across_threads([&] { return K::linear(x1, w1, b1); }, "linear one row" + d);
  }
  // And the values are still right.
  const Tensor a = ct::randn({517, 611}, 41), b = ct::randn({611, 389}, 42);
  check(a, b, "big odd, float64");
  check(ct::randn({1, 3001}, 47), ct::randn({3001, 1300}, 48), "one row, float64");
}

#ifdef CORTEX_CONV_GEMM
// The packed float GEMM that float32 matmul/linear run on AVX-512 and AVX2 builds (conv_gemm::gemm), called
// directly on every operand layout it packs differently (row-major, column-major, neither), with
// M not a multiple of its 8-row panels or of the 16-row transposes, N not a multiple of 48 or 16,
// K over one 384-deep pass and not a multiple of 16, accumulating and not, K = 0, against a
// float64 loop; and in tiles (how gemm_tiles.h calls it) bit for bit equal to one call. Both of
// its ways (packing both operands, or a column-major B's columns read in place as weight rows with
// C stored transposed) give the same bits wherever both apply.
TEST(Matmul, PackedGemmLayouts) {
  namespace cg = cortex::kernels::cpu::conv_gemm;
  std::mt19937 rng(77);
  std::normal_distribution<float> nd;
  struct Shape3 { int64_t M, N, K; };
  for (const Shape3 s : {Shape3{1, 1, 1}, {8, 48, 16}, {13, 50, 17}, {33, 97, 401}, {40, 16, 800}, {17, 130, 0}, {57, 200, 1000}, {37, 100, 50}, {70, 147, 390}, {197, 75, 1600}, {50, 40, 768}, {257, 33, 100}, {300, 53, 800}, {321, 20, 40}, {60, 50, 3100}}) {
    for (int la = 0; la < 3; ++la)
      for (int lb = 0; lb < 3; ++lb)
        for (int mode : {0, 1, 2, 3}) {  // 0: C = A B, 1: C += A B, 2: + a bias per row, 3: per column
          const bool acc = mode == 1;
          const int64_t M = s.M, N = s.N, K = s.K, pad = 3;
          // Layout 0: row-major, 1: column-major, 2: neither (both strides > 1), each with padding.
          auto strides = [&](int l, int64_t r, int64_t c) -> std::pair<int64_t, int64_t> {
            if (l == 0) return {c + pad, 1};
            if (l == 1) return {1, r + pad};
            return {2 * (c + pad), 2};
          };
          const auto [ars, acs] = strides(la, M, K);
          const auto [brs, bcs] = strides(lb, K, N);
          std::vector<float> a((M + 1) * ars + (K + 1) * acs + 64), b((K + 1) * brs + (N + 1) * bcs + 64);
          for (float& v : a) v = nd(rng);
          for (float& v : b) v = nd(rng);
          const int64_t ldc = N + 5;
          std::vector<float> c(M * ldc + 8), c0;
          for (float& v : c) v = nd(rng);
          c0 = c;
          std::vector<float> rb(M), cb(N);
          for (float& v : rb) v = nd(rng);
          for (float& v : cb) v = nd(rng);
          const float* row_bias = mode == 2 ? rb.data() : nullptr;
          const float* col_bias = mode == 3 ? cb.data() : nullptr;
          cg::gemm(M, N, K, a.data(), ars, acs, b.data(), brs, bcs, c.data(), ldc, acc, row_bias, col_bias);
          SCOPED_TRACE("M " + std::to_string(M) + " N " + std::to_string(N) + " K " + std::to_string(K) + " layouts " +
                       std::to_string(la) + std::to_string(lb) + " mode " + std::to_string(mode));
          double worst = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < ldc; ++j) {
              if (j >= N) {  // padding between rows: untouched
                ASSERT_EQ(c[i * ldc + j], c0[i * ldc + j]);
                continue;
              }
              double ref = acc ? c0[i * ldc + j] : row_bias ? rb[i] : col_bias ? cb[j] : 0.0, mag = std::abs(ref);
              for (int64_t k = 0; k < K; ++k) {
                const double p = static_cast<double>(a[i * ars + k * acs]) * b[k * brs + j * bcs];
                ref += p, mag += std::abs(p);
              }
              worst = std::max(worst, std::abs(c[i * ldc + j] - ref) / (mag + 1e-30));
            }
          EXPECT_LT(worst, 4e-7 * std::sqrt(static_cast<double>(K) + 1));
          // The other way gives the same bits (packing both where gemm read B's columns in place,
          // and the other way round where B is column-major).
          {
            std::vector<float> t = c0;
            if (cg::weight_rows_pays(M, brs, bcs, ldc))
              cg::gemm_pack_both(M, N, K, a.data(), ars, acs, b.data(), brs, bcs, t.data(), ldc, acc, row_bias, col_bias);
            else if (lb == 1)
              cg::gemm_weight_rows(M, N, K, a.data(), ars, acs, b.data(), bcs, t.data(), ldc, acc, row_bias, col_bias);
            if (lb == 1) {
              EXPECT_EQ(std::memcmp(t.data(), c.data(), c.size() * sizeof(float)), 0);
            }
          }
          // A column-major B with few rows of A runs passes of kDeepKC, a row-major one of kKC:
          // the same sums in the same order, so the same bits.
          if (lb == 1) {
            std::vector<float> t = c0, br(static_cast<size_t>(K * N) + 1);
            for (int64_t k = 0; k < K; ++k)
              for (int64_t j = 0; j < N; ++j) br[k * N + j] = b[k * brs + j * bcs];
            cg::gemm(M, N, K, a.data(), ars, acs, br.data(), N, 1, t.data(), ldc, acc, row_bias, col_bias);
            EXPECT_EQ(std::memcmp(t.data(), c.data(), c.size() * sizeof(float)), 0) << "row-major B differs";
          }
          for (int64_t j = 0; j < 8; ++j) ASSERT_EQ(c[M * ldc + j], c0[M * ldc + j]);  // nothing past C
          // Tiles of rows and columns, each its own call, give the same bits as the whole call.
          if (M > 8 && N > 48) {
            std::vector<float> t = c0;
            for (int64_t i0 = 0; i0 < M; i0 += 16)
              for (int64_t j0 = 0; j0 < N; j0 += 48)
                cg::gemm(std::min<int64_t>(16, M - i0), std::min<int64_t>(48, N - j0), K, a.data() + i0 * ars, ars, acs,
                         b.data() + j0 * bcs, brs, bcs, t.data() + i0 * ldc + j0, ldc, acc,
                         row_bias ? row_bias + i0 : nullptr, col_bias ? col_bias + j0 : nullptr);
            EXPECT_EQ(std::memcmp(t.data(), c.data(), c.size() * sizeof(float)), 0);
          }
        }
  }
}
#endif

TEST(Matmul, Errors) {
  const Tensor a = ct::randn({2, 3}, 1), b = ct::randn({4, 5}, 2);
  EXPECT_CORTEX_ERROR(K::matmul(a, b), "matmul: expected the last dim of a");
  EXPECT_CORTEX_ERROR(K::matmul(scalar(1.0, DType::Float64), a), "at least 1 dim");
  EXPECT_CORTEX_ERROR(K::matmul(a, ct::randn({4}, 3)), "size of b");
  EXPECT_CORTEX_ERROR(K::matmul(ct::randn({2, 2, 3}, 1), ct::randn({3, 3, 4}, 2)), "cannot be broadcast");
  EXPECT_CORTEX_ERROR(K::matmul(a, ct::randn({3, 2}, 2, DType::Float32)), "one dtype");
  EXPECT_CORTEX_ERROR(K::matmul(a.to(DType::Int64), ct::randn({3, 2}, 2).to(DType::Int64)), "float32 or float64");
  EXPECT_CORTEX_ERROR(K::matmul(Tensor(), a), "defined");
  const Tensor w = ct::randn({4, 3}, 3), bias = ct::randn({4}, 4);
  EXPECT_CORTEX_ERROR(K::linear(ct::randn({2, 5}, 1), w, bias), "linear: expected x (..., 3)");
  EXPECT_CORTEX_ERROR(K::linear(a, ct::randn({4, 3, 1}, 2), bias), "w of shape (out, in)");
  EXPECT_CORTEX_ERROR(K::linear(a, w, ct::randn({5}, 2)), "bias of shape [4]");
  EXPECT_CORTEX_ERROR(K::linear(a, w, ct::randn({1, 4}, 2)), "bias of shape [4]");
  EXPECT_CORTEX_ERROR(K::linear(a, w.to(DType::Float32), bias), "one dtype");
  EXPECT_CORTEX_ERROR(K::linear(a, w, bias.to(DType::Float32)), "one dtype");
  EXPECT_CORTEX_ERROR(K::linear(scalar(1.0, DType::Float64), w, bias), "0-dim");
  EXPECT_CORTEX_ERROR(K::linear(a.to(DType::Int32), w.to(DType::Int32), Tensor()), "float32 or float64");
}
