// softmax, log_softmax, layer_norm and inference batch_norm against naive float64 loops written
// here, on Philox-drawn odd shapes, strided views, empty and size-1 dims, special values, and
// every input error.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/attention.h"
#include "kernels/nn.h"
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


std::vector<int64_t> draw(int64_t lo, int64_t hi, int64_t n, uint64_t seed) {
  Generator g(seed);
  return randint(lo, hi, {n}, g).to_vector<int64_t>();
}
Tensor f64(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, DType::Float64); }

struct Tol { double rtol, atol; };
Tol tol(DType dt, bool log) {
  if (dt == DType::Float64) return {1e-12, 1e-14};
  return log ? Tol{2e-6, 2e-5} : Tol{2e-5, 1e-7};
}

void check_softmax(const Tensor& x, int64_t dim, const char* what) {
  const int64_t wd = dim < 0 ? dim + std::max<int64_t>(x.dim(), 1) : dim;
  for (bool log : {false, true}) {
    const Tensor y = log ? K::log_softmax(x, dim) : K::softmax(x, dim);
    EXPECT_EQ(y.dtype(), x.dtype());
    EXPECT_TRUE(y.is_contiguous());
    const Tol t = tol(x.dtype(), log);
    EXPECT_TRUE(allclose(y, f64(ref_softmax(values(x), x.shape(), wd, log), x.shape()), t.rtol, t.atol))
        << what << " log=" << log << " shape " << shape_str(x.shape()) << " dim " << dim << " "
        << dtype_name(x.dtype());
  }
}

}  // namespace

TEST(Softmax, RandomShapesEveryDim) {
  uint64_t seed = 1;
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t nd = 1 + trial % 4;
    const auto sz = draw(1, 10, nd, 100 + trial);
    const Shape s(sz.begin(), sz.end());
    for (DType dt : {DType::Float32, DType::Float64}) {
      const Tensor x = ct::randn(s, seed++, dt);
      for (int64_t d = -nd; d < nd; ++d) {
        check_softmax(x, d, "contiguous");
        check_softmax(ct::noncontig(x), d, "noncontig");
      }
      if (nd >= 2) {
        Shape perm(nd);
        for (int64_t i = 0; i < nd; ++i) perm[i] = nd - 1 - i;
        const Tensor p = x.permute(perm);
        for (int64_t d = 0; d < nd; ++d) check_softmax(p, d, "permuted");
      }
    }
  }
}

TEST(Softmax, LargeRowsThreadsAndScale) {
  // Large enough for the OpenMP paths, values spread enough to need the max shift.
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = ct::randu({37, 1001}, 7, -40, 40, dt);
    check_softmax(x, 1, "rows");
    check_softmax(x, 0, "columns");
    const Tensor z = ct::randn({5, 300, 29}, 8, dt);
    check_softmax(z, 1, "middle");
    check_softmax(z.slice(2, 1, 29, 3), 1, "middle sliced");
    // a broadcast view (stride 0)
    const Tensor b = ct::randn({1, 513}, 9, dt).expand({70, 513});
    check_softmax(b, 1, "broadcast rows");
    check_softmax(b, 0, "broadcast columns");
  }
  // values near float's overflow stay finite thanks to the shift
  const Tensor big = from_vector(std::vector<double>{1000, 1001, 1002}, {1, 3}, DType::Float32);
  EXPECT_TRUE(allclose(K::softmax(big, 1), f64(ref_softmax({1000, 1001, 1002}, {1, 3}, 1, false), {1, 3}), 1e-6));
}

TEST(Softmax, EmptyScalarAndSizeOne) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    EXPECT_EQ(K::softmax(zeros({0, 5}, dt), 1).shape(), (Shape{0, 5}));
    EXPECT_EQ(K::softmax(zeros({3, 0}, dt), 1).shape(), (Shape{3, 0}));
    EXPECT_EQ(K::log_softmax(zeros({3, 0, 2}, dt), 0).shape(), (Shape{3, 0, 2}));
    // a 0-dim tensor is a softmax over one element (dim 0 or -1, as PyTorch)
    EXPECT_EQ(K::softmax(scalar(3.5, dt), 0).item(), 1.0);
    EXPECT_EQ(K::log_softmax(scalar(3.5, dt), -1).item(), 0.0);
    EXPECT_EQ(K::softmax(scalar(3.5, dt), 0).dim(), 0);
    // a size-1 softmax dim gives exactly 1 / 0
    const Tensor x = ct::randn({4, 1, 3}, 3, dt);
    EXPECT_TRUE(allclose(K::softmax(x, 1), ones({4, 1, 3}, DType::Float64), 0, 0));
    EXPECT_TRUE(allclose(K::log_softmax(x, 1), zeros({4, 1, 3}, DType::Float64), 0, 0));
  }
}

TEST(Softmax, InfinitiesAndNaNLikePyTorch) {
  const double nan = std::nan("");
  for (DType dt : {DType::Float32, DType::Float64}) {
    // rows: some -inf (masked), all -inf, a NaN, a +inf
    const std::vector<double> v{0.5, -kInf, 1.5, -kInf,  //
                                -kInf, -kInf, -kInf, -kInf,  //
                                1.0, nan, 2.0, 3.0,  //
                                1.0, kInf, 2.0, 3.0};
    const Tensor x = from_vector(v, {4, 4}, dt);
    const double e = std::exp(-1.0), s = 1 + e;
    const std::vector<double> sm{e / s, 0, 1 / s, 0, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, nan};
    const std::vector<double> ls{-1 - std::log(s), -kInf, -std::log(s), -kInf, nan, nan, nan, nan,
                                 nan, nan, nan, nan, nan, nan, nan, nan};
    EXPECT_TRUE(allclose(K::softmax(x, 1), f64(sm, {4, 4}), 1e-6, 0));
    EXPECT_TRUE(allclose(K::log_softmax(x, 1), f64(ls, {4, 4}), 1e-6, 0));
    // masked entries are exactly 0, not a tiny clamp value
    EXPECT_EQ(K::softmax(x, 1).at({0, 1}), 0.0);
    // the same along dim 0 (the strided path)
    EXPECT_TRUE(allclose(K::softmax(x.t(), 0), f64(sm, {4, 4}).t(), 1e-6, 0));
    EXPECT_TRUE(allclose(K::log_softmax(x.t(), 0), f64(ls, {4, 4}).t(), 1e-6, 0));
    // shifts below float's exp underflow give 0 / the exact difference
    const Tensor u = from_vector(std::vector<double>{0, -100, -800}, {3}, dt);
    EXPECT_EQ(K::softmax(u, 0).at({2}), 0.0);
    EXPECT_NEAR(K::log_softmax(u, 0).at({1}), -100.0, 1e-4);
  }
}

TEST(Softmax, Errors) {
  EXPECT_CORTEX_ERROR(K::softmax(zeros({2, 3}, DType::Int64), 1), "softmax: expected x to be float32 or float64");
  EXPECT_CORTEX_ERROR(K::log_softmax(zeros({2, 3}, DType::BFloat16), 1), "log_softmax: expected x");
  EXPECT_CORTEX_ERROR(K::softmax(zeros({2, 3}), 2), "out of range");
  EXPECT_CORTEX_ERROR(K::log_softmax(zeros({2, 3}), -3), "log_softmax: dim -3 is out of range");
  EXPECT_CORTEX_ERROR(K::softmax(scalar(1.0), 1), "out of range");
}

// ---------------------------------------------------------------- layer_norm

namespace {

}  // namespace

TEST(LayerNorm, RandomShapesWeightsAndViews) {
  uint64_t seed = 50;
  for (int trial = 0; trial < 10; ++trial) {
    const int64_t nd = 1 + trial % 4;
    const auto sz = draw(1, 9, nd, 200 + trial);
    const Shape s(sz.begin(), sz.end());
    for (DType dt : {DType::Float32, DType::Float64}) {
      // an offset mean checks that the variance does not cancel
      Tensor x = ct::randn(s, seed++, DType::Float64);
      x = f64([&] { auto v = values(x); for (auto& e : v) e = 0.5 * e + (trial % 2 ? 300.0 : 0.0); return v; }(), s)
              .to(dt);
      for (int64_t k = 1; k <= nd; ++k) {
        const Shape norm(s.end() - k, s.end());
        const int64_t D = shape_numel(norm), rows = x.numel() / D;
        const Tensor w = ct::randn(norm, seed++, dt), b = ct::randn(norm, seed++, dt);
        const auto xv = values(x), wv = values(w), bv = values(b);
        for (int mask = 0; mask < 4; ++mask) {
          const Tensor wt = mask & 1 ? ct::noncontig(w) : Tensor();
          const Tensor bt = mask & 2 ? b : Tensor();
          const RefLN ref = ref_layer_norm(xv, rows, D, mask & 1 ? &wv : nullptr, mask & 2 ? &bv : nullptr, 1e-5);
          for (const Tensor& in : {x, ct::noncontig(x)}) {
            const K::LayerNorm r = K::layer_norm(in, k, wt, bt);
            const Shape batch(s.begin(), s.end() - k);
            const double rt = dt == DType::Float64 ? 1e-11 : 2e-5, at = dt == DType::Float64 ? 1e-11 : 3e-5;
            EXPECT_TRUE(allclose(r.y, f64(ref.y, s), rt, at)) << shape_str(s) << " k=" << k << " mask=" << mask;
            EXPECT_TRUE(allclose(r.mean, f64(ref.mean, batch), rt, at));
            // rstd of an offset float32 row: the float input is exact, the float64 sums are nearly so
            EXPECT_TRUE(allclose(r.rstd, f64(ref.rstd, batch), dt == DType::Float64 ? 1e-9 : 1e-5, 0));
            EXPECT_EQ(r.y.dtype(), dt);
            EXPECT_EQ(r.mean.dtype(), dt);
          }
        }
      }
    }
  }
}

TEST(LayerNorm, BigRowsEpsAndEmpty) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = ct::randn({64, 769}, 31, dt);
    const Tensor w = ct::randn({769}, 32, dt), b = ct::randn({769}, 33, dt);
    const auto wv = values(w), bv = values(b);
    const RefLN ref = ref_layer_norm(values(x), 64, 769, &wv, &bv, 0.1);
    const K::LayerNorm r = K::layer_norm(x, 1, w, b, 0.1);
    EXPECT_TRUE(allclose(r.y, f64(ref.y, {64, 769}), 1e-5, 1e-5));
    EXPECT_TRUE(allclose(r.rstd, f64(ref.rstd, {64}), 1e-6));
    // a constant row normalises to 0 (rstd = 1 / sqrt(eps))
    const K::LayerNorm c = K::layer_norm(full({2, 5}, 3.0, dt), 1, Tensor(), Tensor(), 1e-4);
    EXPECT_TRUE(allclose(c.y, zeros({2, 5}, DType::Float64), 0, 1e-12));
    EXPECT_NEAR(c.rstd.at({1}), 100.0, 1e-4);
    // empty batch
    const K::LayerNorm e = K::layer_norm(zeros({0, 4}, dt), 1, Tensor(), Tensor());
    EXPECT_EQ(e.y.shape(), (Shape{0, 4}));
    EXPECT_EQ(e.mean.shape(), (Shape{0}));
    // normalising every dim: mean/rstd are 0-dim
    const K::LayerNorm all = K::layer_norm(ct::randn({3, 4}, 34, dt), 2, Tensor(), Tensor());
    EXPECT_EQ(all.mean.dim(), 0);
  }
}

TEST(LayerNorm, Errors) {
  const Tensor x = zeros({2, 3});
  EXPECT_CORTEX_ERROR(K::layer_norm(zeros({2, 3}, DType::Int32), 1, Tensor(), Tensor()), "layer_norm: expected x");
  EXPECT_CORTEX_ERROR(K::layer_norm(x, 0, Tensor(), Tensor()), "normalized_ndim in [1, 2]");
  EXPECT_CORTEX_ERROR(K::layer_norm(x, 3, Tensor(), Tensor()), "found 3");
  EXPECT_CORTEX_ERROR(K::layer_norm(x, 1, zeros({2}), Tensor()), "expected weight of shape [3], found [2]");
  EXPECT_CORTEX_ERROR(K::layer_norm(x, 1, Tensor(), zeros({3}, DType::Float64)), "bias of dtype float32");
  EXPECT_CORTEX_ERROR(K::layer_norm(x, 1, Tensor(), Tensor(), -1.0), "eps >= 0");
}

// ---------------------------------------------------------------- batch_norm

TEST(BatchNorm, ShapesWeightsAndViews) {
  uint64_t seed = 400;
  const std::vector<Shape> shapes{{5, 3}, {2, 7, 9}, {3, 4, 5, 6}, {1, 1, 1, 1}, {1, 5, 1, 3}, {40, 33, 31}};
  for (const Shape& s : shapes)
    for (DType dt : {DType::Float32, DType::Float64}) {
      const int64_t N = s[0], C = s[1], L = shape_numel(s) / (N * C);
      const Tensor x = ct::randn(s, seed++, dt);
      const Tensor mean = ct::randn({C}, seed++, dt), var = ct::randu({C}, seed++, 0.2, 3.0, dt);
      const Tensor w = ct::randn({C}, seed++, dt), b = ct::randn({C}, seed++, dt);
      const auto xv = values(x), mv = values(mean), vv = values(var), wv = values(w), bv = values(b);
      for (int mask = 0; mask < 4; ++mask) {
        std::vector<double> ref(xv.size());
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = 0; c < C; ++c)
            for (int64_t l = 0; l < L; ++l) {
              const int64_t i = (n * C + c) * L + l;
              ref[i] = (xv[i] - mv[c]) / std::sqrt(vv[c] + 1e-3) * (mask & 1 ? wv[c] : 1.0) + (mask & 2 ? bv[c] : 0.0);
            }
        const Tensor wt = mask & 1 ? w : Tensor(), bt = mask & 2 ? ct::noncontig(b) : Tensor();
        for (const Tensor& in : {x, ct::noncontig(x)}) {
          const Tensor y = K::batch_norm(in, mean, ct::noncontig(var), wt, bt, 1e-3);
          EXPECT_TRUE(allclose(y, f64(ref, s), dt == DType::Float64 ? 1e-12 : 1e-5, dt == DType::Float64 ? 1e-12 : 1e-5))
              << shape_str(s) << " mask " << mask;
        }
      }
    }
  // channels-last memory (a permuted view) and an empty batch
  const Tensor xl = ct::randn({2, 5, 6, 3}, 77).permute({0, 3, 1, 2});  // (2, 3, 5, 6)
  const Tensor mean = ct::randn({3}, 78), var = ct::randu({3}, 79, 0.5, 2);
  const Tensor y = K::batch_norm(xl, mean, var, Tensor(), Tensor());
  for (int64_t c = 0; c < 3; ++c)
    EXPECT_NEAR(y.at({1, c, 4, 2}), (xl.at({1, c, 4, 2}) - mean.at({c})) / std::sqrt(var.at({c}) + 1e-5), 1e-12);
  EXPECT_EQ(K::batch_norm(zeros({0, 3, 2}), zeros({3}), ones({3}), Tensor(), Tensor()).shape(), (Shape{0, 3, 2}));
}

TEST(BatchNorm, Errors) {
  const Tensor x = zeros({2, 3, 4}), c = zeros({3});
  EXPECT_CORTEX_ERROR(K::batch_norm(zeros({3}), c, c, Tensor(), Tensor()), "batch_norm: expected x of shape (N, C, ...)");
  EXPECT_CORTEX_ERROR(K::batch_norm(zeros({2, 3}, DType::UInt8), c, c, Tensor(), Tensor()), "float32 or float64");
  EXPECT_CORTEX_ERROR(K::batch_norm(x, zeros({4}), c, Tensor(), Tensor()), "running_mean of shape [3], found [4]");
  EXPECT_CORTEX_ERROR(K::batch_norm(x, c, zeros({3}, DType::Float64), Tensor(), Tensor()), "running_var of dtype");
  EXPECT_CORTEX_ERROR(K::batch_norm(x, Tensor(), c, Tensor(), Tensor()), "expected running_mean and running_var");
  EXPECT_CORTEX_ERROR(K::batch_norm(x, c, c, zeros({3, 1}), Tensor()), "weight of shape [3]");
  EXPECT_CORTEX_ERROR(K::batch_norm(x, c, c, Tensor(), zeros({2})), "bias of shape [3]");
}

// The fused attention forward in float32 (on AVX-512 builds both products run on the packed
// kernel, in blocks of query rows chosen from Lk, with a masked softmax) against float64 loops:
// q, k, v as the strided views MultiheadAttention makes from one qkv projection, ViT's 197 tokens,
// key counts that leave 1..15-wide tails, D != Dv, and more keys than one 16-row block holds;
// the log-sum-exp too.
TEST(Attention, ForwardFloat32AgainstFloat64) {
  struct Case { int64_t B, H, Lq, Lk, D, Dv; double scale; };
  for (const Case c : {Case{1, 3, 197, 197, 64, 64, 0.125}, {2, 2, 37, 300, 40, 24, 0.2}, {1, 1, 20, 5000, 16, 8, 0.25},
                       {1, 2, 1, 1, 8, 8, -0.5}, {1, 1, 300, 17, 33, 5, 0.3}, {1, 2, 9, 31, 16, 16, 0.25}}) {
    SCOPED_TRACE("B " + std::to_string(c.B) + " H " + std::to_string(c.H) + " Lq " + std::to_string(c.Lq) + " Lk " +
                 std::to_string(c.Lk) + " D " + std::to_string(c.D) + " Dv " + std::to_string(c.Dv));
    Tensor q, k, v;
    if (c.Lq == c.Lk && c.D == c.Dv) {  // (B, L, 3, H, D) permuted to (3, B, H, L, D), as in MultiheadAttention
      const Tensor qkv = ct::randn({c.B, c.Lq, 3, c.H, c.D}, 7, DType::Float32).permute({2, 0, 3, 1, 4});
      q = qkv.select(0, 0), k = qkv.select(0, 1), v = qkv.select(0, 2);
    } else {
      q = ct::randn({c.B, c.H, c.Lq, c.D}, 8, DType::Float32), k = ct::randn({c.B, c.H, c.Lk, c.D}, 9, DType::Float32),
      v = ct::randn({c.B, c.H, c.Lk, c.Dv}, 10, DType::Float32);
    }
    const auto r = K::attention_forward(q, k, v, c.scale);
    const std::vector<double> Q = q.to_vector<double>(), Kv = k.to_vector<double>(), V = v.to_vector<double>();
    const std::vector<double> O = r.out.to_vector<double>(), L = r.lse.to_vector<double>();
    double worst = 0, worst_lse = 0;
    for (int64_t b = 0; b < c.B * c.H; ++b)
      for (int64_t i = 0; i < c.Lq; ++i) {
        std::vector<double> s(c.Lk);
        double m = -1e300, l = 0;
        for (int64_t j = 0; j < c.Lk; ++j) {
          double d = 0;
          for (int64_t e = 0; e < c.D; ++e) d += Q[(b * c.Lq + i) * c.D + e] * Kv[(b * c.Lk + j) * c.D + e];
          s[j] = c.scale * d, m = std::max(m, s[j]);
        }
        for (double& x : s) l += (x = std::exp(x - m));
        worst_lse = std::max(worst_lse, std::abs(L[b * c.Lq + i] - (m + std::log(l))) / (1 + std::abs(m)));
        for (int64_t e = 0; e < c.Dv; ++e) {
          double o = 0;
          for (int64_t j = 0; j < c.Lk; ++j) o += s[j] / l * V[(b * c.Lk + j) * c.Dv + e];
          worst = std::max(worst, std::abs(O[(b * c.Lq + i) * c.Dv + e] - o));
        }
      }
    EXPECT_LT(worst, 2e-5);
    EXPECT_LT(worst_lse, 2e-5);
  }
}
