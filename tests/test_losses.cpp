// Losses (autograd/losses.h): values against naive float64 loops written here, every reduction,
// float32 and float64, non-contiguous inputs; derivatives through gradcheck (VJP, JVP, batched,
// some second order); neg_pearson on constant columns (no NaN in values or derivatives); errors.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/losses.h"
#include "tests/test_util.h"

using namespace cortex;
using cortex::testing::allclose;
using cortex::testing::noncontig;
using cortex::testing::randn;
using cortex::testing::randu;

namespace {

std::vector<double> vals(const Tensor& t) { return t.to(DType::Float64).to_vector<double>(); }
Tensor t64(const std::vector<double>& v, const Shape& s) { return from_vector(v, s, DType::Float64); }

// Reduces per-element losses `l` of shape `s` as the loss would.
Tensor reduce_ref(const std::vector<double>& l, const Shape& s, Reduction r) {
  if (r == Reduction::None) return t64(l, s);
  double acc = 0;
  for (double v : l) acc += v;
  if (r == Reduction::Mean) acc /= static_cast<double>(l.size());
  return t64({acc}, {});
}

const Reduction kAll[] = {Reduction::None, Reduction::Mean, Reduction::Sum};

// A loss of (pred, target) as a gradcheck function of both.
Fn pair_fn(std::function<Tensor(const Tensor&, const Tensor&)> loss) {
  return [loss](const std::vector<Tensor>& in) { return std::vector<Tensor>{loss(in[0], in[1])}; };
}

}  // namespace

// ---------------------------------------------------------------- mse, l1

TEST(Losses, MseAndL1Values) {
  uint64_t seed = 10;
  for (const Shape& s : {Shape{7}, Shape{3, 5}, Shape{2, 3, 4}, Shape{}, Shape{1, 1}}) {
    for (DType dt : {DType::Float64, DType::Float32}) {
      Tensor p = randn(s, seed++, dt), t = randn(s, seed++, dt);
      auto pv = vals(p), tv = vals(t);
      std::vector<double> sq(pv.size()), ab(pv.size());
      for (size_t i = 0; i < pv.size(); ++i) {
        sq[i] = (pv[i] - tv[i]) * (pv[i] - tv[i]);
        ab[i] = std::abs(pv[i] - tv[i]);
      }
      const double rtol = dt == DType::Float64 ? 1e-12 : 1e-5;
      for (Reduction r : kAll) {
        EXPECT_TRUE(allclose(mse_loss(noncontig(p), t, r), reduce_ref(sq, s, r), rtol, 1e-12));
        EXPECT_TRUE(allclose(l1_loss(p, noncontig(t), r), reduce_ref(ab, s, r), rtol, 1e-12));
        EXPECT_EQ(mse_loss(p, t, r).dtype(), dt);
      }
    }
  }
  // Default reduction is the mean.
  EXPECT_NEAR(mse_loss(t64({1, 2}, {2}), t64({0, 0}, {2})).item(), 2.5, 1e-15);
}

TEST(Losses, MseAndL1Gradcheck) {
  Tensor p = randn({3, 4}, 20), t = randn({3, 4}, 21);
  for (Reduction r : kAll) {
    EXPECT_GRADCHECK(pair_fn([r](const Tensor& a, const Tensor& b) { return mse_loss(a, b, r); }), {noncontig(p), t},
                     {.check_second_order = true});
    // l1 is not differentiable where pred == target: random normals keep away from that.
    EXPECT_GRADCHECK(pair_fn([r](const Tensor& a, const Tensor& b) { return l1_loss(a, b, r); }), {p, noncontig(t)});
  }
}

// ---------------------------------------------------------------- poisson

TEST(Losses, PoissonNllValues) {
  // Counts 0, 1 and larger (the Stirling term applies only where target > 1).
  std::vector<double> counts{0, 1, 2, 5, 0, 3, 1, 7, 4, 0, 2, 1};
  for (DType dt : {DType::Float64, DType::Float32}) {
    Tensor rate = randu({3, 4}, 30, 0.05, 4.0, dt);
    Tensor target = from_vector(counts, {3, 4}, dt);
    auto rv = vals(rate);
    for (bool full : {false, true}) {
      for (double eps : {1e-8, 0.5}) {
        std::vector<double> l(12);
        for (size_t i = 0; i < 12; ++i) {
          const double y = counts[i];
          l[i] = rv[i] - y * std::log(rv[i] + eps);
          if (full && y > 1) l[i] += y * std::log(y) - y + 0.5 * std::log(2 * M_PI * y);
        }
        const double rtol = dt == DType::Float64 ? 1e-12 : 2e-5;
        for (Reduction r : kAll)
          EXPECT_TRUE(allclose(poisson_nll_loss(noncontig(rate), target, eps, full, r), reduce_ref(l, {3, 4}, r), rtol,
                               1e-6))
              << "full " << full << " eps " << eps;
      }
    }
  }
  // A zero rate with a zero count is finite (eps guards the log).
  Tensor z = poisson_nll_loss(t64({0.0}, {1}), t64({0.0}, {1}));
  EXPECT_TRUE(std::isfinite(z.item()));
}

TEST(Losses, PoissonNllGradcheck) {
  Tensor rate = randu({2, 5}, 31, 0.2, 3.0);
  // Targets away from the full-term switch at 1, so finite differences stay on one side.
  Tensor target = t64({0, 0.4, 2.5, 3, 6, 1.6, 0.2, 4, 9, 0}, {2, 5});
  for (bool full : {false, true})
    for (Reduction r : kAll)
      EXPECT_GRADCHECK(pair_fn([full, r](const Tensor& a, const Tensor& b) { return poisson_nll_loss(a, b, 1e-8, full, r); }),
                       {noncontig(rate), target}, {.check_second_order = full});
  // With full, targets at 0 and 1 (where the Stirling term is masked) still give finite gradients.
  Tensor pr = with_grad(randu({4}, 32, 0.5, 2.0));
  Tensor tg = with_grad(t64({0, 1, 0, 1}, {4}));
  backward(poisson_nll_loss(pr, tg, 1e-8, true, Reduction::Sum));
  for (double v : vals(grad_of(tg))) EXPECT_TRUE(std::isfinite(v));
  for (double v : vals(grad_of(pr))) EXPECT_TRUE(std::isfinite(v));
}

// ---------------------------------------------------------------- neg_pearson

namespace {
// -r per target for x of shape (A, N, B) with the samples along the middle dim.
std::vector<double> neg_pearson_ref(const std::vector<double>& p, const std::vector<double>& t, int64_t A, int64_t N,
                                    int64_t B, double eps) {
  std::vector<double> out;
  for (int64_t a = 0; a < A; ++a)
    for (int64_t b = 0; b < B; ++b) {
      auto at = [&](const std::vector<double>& x, int64_t n) { return x[(a * N + n) * B + b]; };
      double mp = 0, mt = 0;
      for (int64_t n = 0; n < N; ++n) mp += at(p, n), mt += at(t, n);
      mp /= N, mt /= N;
      double cov = 0, vp = 0, vt = 0;
      for (int64_t n = 0; n < N; ++n) {
        cov += (at(p, n) - mp) * (at(t, n) - mt);
        vp += (at(p, n) - mp) * (at(p, n) - mp);
        vt += (at(t, n) - mt) * (at(t, n) - mt);
      }
      cov /= N, vp /= N, vt /= N;
      out.push_back(-cov / (std::sqrt(vp + eps) * std::sqrt(vt + eps)));
    }
  return out;
}
}  // namespace

TEST(Losses, NegPearsonValues) {
  uint64_t seed = 40;
  // (shape, dim) -> viewed as (A, N, B) with N the sample dim.
  struct Case { Shape s; int64_t dim; };
  for (const Case& c : {Case{{9, 4}, 0}, Case{{4, 9}, 1}, Case{{4, 9}, -1}, Case{{3, 7, 2}, 1}, Case{{5}, 0},
                        Case{{2, 1, 6}, 2}}) {
    const int64_t d = c.dim < 0 ? c.dim + static_cast<int64_t>(c.s.size()) : c.dim;
    int64_t A = 1, B = 1;
    for (int64_t k = 0; k < d; ++k) A *= c.s[k];
    for (size_t k = d + 1; k < c.s.size(); ++k) B *= c.s[k];
    const int64_t N = c.s[d];
    Shape out = c.s;
    out.erase(out.begin() + d);
    for (DType dt : {DType::Float64, DType::Float32}) {
      Tensor p = randn(c.s, seed++, dt), t = randn(c.s, seed++, dt);
      for (double eps : {1e-8, 0.3}) {
        auto ref = neg_pearson_ref(vals(p), vals(t), A, N, B, eps);
        const double rtol = dt == DType::Float64 ? 1e-10 : 1e-4;
        for (Reduction r : kAll)
          EXPECT_TRUE(allclose(neg_pearson(noncontig(p), t, c.dim, eps, r), reduce_ref(ref, out, r), rtol, 1e-6))
              << shape_str(c.s) << " dim " << c.dim;
      }
    }
  }
  // Perfect and anti-correlation: -1 and +1 (up to eps).
  Tensor x = t64({1, 2, 3, 4, 5}, {5});
  EXPECT_NEAR(neg_pearson(x, mul(x, 3.0)).item(), -1.0, 1e-8);
  EXPECT_NEAR(neg_pearson(x, neg(x)).item(), 1.0, 1e-8);
}

TEST(Losses, NegPearsonConstantColumnHasNoNaN) {
  // Column 1 of pred and column 2 of target are constant; column 3 of both.
  for (DType dt : {DType::Float64, DType::Float32}) {
    Tensor p = randn({6, 4}, 50, dt), t = randn({6, 4}, 51, dt);
    {
      NoGradGuard ng;
      p.select(1, 1).fill_(0.1);
      t.select(1, 2).fill_(-2.7);
      p.select(1, 3).fill_(3.0);
      t.select(1, 3).fill_(3.0);
    }
    Tensor per = neg_pearson(p, t, 0, 1e-8, Reduction::None);
    auto v = vals(per);
    for (int k = 1; k < 4; ++k) EXPECT_NEAR(v[k], 0.0, 1e-6) << "column " << k;
    EXPECT_GT(std::abs(v[0]), 1e-3);
    // Reverse mode: finite gradients for both inputs.
    Tensor pl = with_grad(p), tl = with_grad(t);
    backward(neg_pearson(pl, tl));
    for (double g : vals(grad_of(pl))) EXPECT_TRUE(std::isfinite(g));
    for (double g : vals(grad_of(tl))) EXPECT_TRUE(std::isfinite(g));
    // Forward mode too.
    JvpResult r = jvp([](const std::vector<Tensor>& in) { return std::vector<Tensor>{neg_pearson(in[0], in[1])}; },
                      {p, t}, {randn({6, 4}, 52, dt), randn({6, 4}, 53, dt)});
    EXPECT_TRUE(std::isfinite(r.outputs[0].item()));
    EXPECT_TRUE(std::isfinite(r.tangents[0].item()));
  }
}

TEST(Losses, NegPearsonGradcheck) {
  Tensor p = randn({5, 3}, 60), t = randn({5, 3}, 61);
  for (Reduction r : kAll)
    EXPECT_GRADCHECK(pair_fn([r](const Tensor& a, const Tensor& b) { return neg_pearson(a, b, 0, 1e-8, r); }),
                     {noncontig(p), t}, {.check_second_order = r == Reduction::Mean});
  EXPECT_GRADCHECK(pair_fn([](const Tensor& a, const Tensor& b) { return neg_pearson(a, b, 1); }),
                   {randn({2, 3, 4}, 62), randn({2, 3, 4}, 63)});
  // Through a constant column (eps large enough that finite differences resolve the floor).
  Tensor pc = randn({5, 3}, 64);
  {
    NoGradGuard ng;
    pc.select(1, 0).fill_(1.5);
  }
  EXPECT_GRADCHECK(pair_fn([](const Tensor& a, const Tensor& b) { return neg_pearson(a, b, 0, 1e-2, Reduction::None); }),
                   {pc, t});
}

// ---------------------------------------------------------------- info_nce

namespace {
std::vector<double> info_nce_ref(const std::vector<double>& a, const std::vector<double>& b, int64_t N, int64_t D,
                                 double T, bool symmetric) {
  auto normalize = [&](std::vector<double> x) {
    for (int64_t i = 0; i < N; ++i) {
      double n = 0;
      for (int64_t k = 0; k < D; ++k) n += x[i * D + k] * x[i * D + k];
      n = std::max(std::sqrt(n), 1e-12);
      for (int64_t k = 0; k < D; ++k) x[i * D + k] /= n;
    }
    return x;
  };
  auto an = normalize(a), bn = normalize(b);
  std::vector<double> L(N * N);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < D; ++k) s += an[i * D + k] * bn[j * D + k];
      L[i * N + j] = s / T;
    }
  std::vector<double> out(N);
  for (int64_t i = 0; i < N; ++i) {
    double row = 0, col = 0;
    for (int64_t j = 0; j < N; ++j) row += std::exp(L[i * N + j]), col += std::exp(L[j * N + i]);
    const double lr = std::log(row) - L[i * N + i], lc = std::log(col) - L[i * N + i];
    out[i] = symmetric ? 0.5 * (lr + lc) : lr;
  }
  return out;
}
}  // namespace

TEST(Losses, InfoNceValues) {
  uint64_t seed = 70;
  for (auto [N, D] : {std::pair<int64_t, int64_t>{5, 3}, {1, 4}, {8, 16}, {3, 1}}) {
    for (DType dt : {DType::Float64, DType::Float32}) {
      Tensor a = randn({N, D}, seed++, dt), b = randn({N, D}, seed++, dt);
      for (double T : {0.07, 1.0}) {
        for (bool sym : {false, true}) {
          auto ref = info_nce_ref(vals(a), vals(b), N, D, T, sym);
          const double rtol = dt == DType::Float64 ? 1e-10 : 1e-4;
          for (Reduction r : kAll)
            EXPECT_TRUE(allclose(info_nce(noncontig(a), b, T, sym, r), reduce_ref(ref, {N}, r), rtol, 1e-5))
                << N << "x" << D << " T " << T << " sym " << sym;
        }
      }
    }
  }
  // Identical, well-separated rows: the loss tends to 0 at low temperature.
  Tensor e = eye(4, -1, DType::Float64);
  EXPECT_LT(info_nce(e, e, 0.01).item(), 1e-10);
}

TEST(Losses, InfoNceGradcheck) {
  Tensor a = randn({4, 3}, 80), b = randn({4, 3}, 81);
  for (bool sym : {false, true})
    for (Reduction r : kAll)
      EXPECT_GRADCHECK(pair_fn([sym, r](const Tensor& x, const Tensor& y) { return info_nce(x, y, 0.5, sym, r); }),
                       {noncontig(a), b}, {.check_second_order = sym && r == Reduction::Mean});
}

// ---------------------------------------------------------------- cross_entropy

namespace {
// logits viewed as (N, C, K), target as (N, K).
std::vector<double> cross_entropy_ref(const std::vector<double>& x, const std::vector<int64_t>& y, int64_t N, int64_t C,
                                      int64_t K, double ls) {
  std::vector<double> out;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      auto at = [&](int64_t c) { return x[(n * C + c) * K + k]; };
      double mx = at(0);
      for (int64_t c = 1; c < C; ++c) mx = std::max(mx, at(c));
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += std::exp(at(c) - mx);
      const double lse = mx + std::log(s);
      double uni = 0;
      for (int64_t c = 0; c < C; ++c) uni += lse - at(c);
      out.push_back((1 - ls) * (lse - at(y[n * K + k])) + ls * uni / C);
    }
  return out;
}
Tensor ints(const std::vector<int64_t>& v, const Shape& s) { return from_vector(v, s, DType::Int64); }
}  // namespace

TEST(Losses, CrossEntropyValues) {
  uint64_t seed = 90;
  for (const Shape& s : {Shape{6, 5}, Shape{1, 1}, Shape{3, 4, 2}, Shape{2, 3, 2, 3}, Shape{7}}) {
    const bool unbatched = s.size() == 1;
    const int64_t N = unbatched ? 1 : s[0], C = unbatched ? s[0] : s[1];
    int64_t K = 1;
    for (size_t k = 2; k < s.size(); ++k) K *= s[k];
    Shape ts = unbatched ? Shape{} : s;
    if (!unbatched) ts.erase(ts.begin() + 1);
    std::vector<int64_t> y(N * K);
    for (auto& v : y) v = static_cast<int64_t>(seed++ * 2654435761u % static_cast<uint64_t>(C));
    y[0] = C - 1;  // the last class is reachable
    for (DType dt : {DType::Float64, DType::Float32}) {
      Tensor x = mul(randn(s, seed++, dt), 3.0);
      for (double ls : {0.0, 0.1, 1.0}) {
        auto ref = cross_entropy_ref(vals(x), y, N, C, K, ls);
        const double rtol = dt == DType::Float64 ? 1e-12 : 1e-5;
        for (Reduction r : kAll)
          EXPECT_TRUE(allclose(cross_entropy(noncontig(x), ints(y, ts), ls, r), reduce_ref(ref, ts, r), rtol, 1e-6))
              << shape_str(s) << " smoothing " << ls;
      }
    }
  }
  // Large logits stay finite (log_softmax, not log(softmax)).
  Tensor big = t64({1000, 0, -1000}, {1, 3});
  EXPECT_NEAR(cross_entropy(big, ints({0}, {1})).item(), 0.0, 1e-12);
  EXPECT_NEAR(cross_entropy(big, ints({1}, {1})).item(), 1000.0, 1e-9);
}

TEST(Losses, CrossEntropyGradcheck) {
  Tensor x = randn({4, 5}, 100);
  Tensor y = ints({4, 0, 2, 2}, {4});
  for (double ls : {0.0, 0.2})
    for (Reduction r : kAll)
      EXPECT_GRADCHECK(([y, ls, r](const std::vector<Tensor>& in) {
                         return std::vector<Tensor>{cross_entropy(in[0], y, ls, r)};
                       }),
                       {noncontig(x)}, {.check_second_order = r == Reduction::Mean});
  // Spatial targets (N, C, H) and the unbatched form.
  Tensor ys = ints({0, 2, 1, 1, 0, 2}, {2, 3});
  EXPECT_GRADCHECK(([ys](const std::vector<Tensor>& in) { return std::vector<Tensor>{cross_entropy(in[0], ys, 0.1)}; }),
                   {randn({2, 3, 3}, 101)});
  Tensor y0 = ints({2}, {});
  EXPECT_GRADCHECK(([y0](const std::vector<Tensor>& in) {
                     return std::vector<Tensor>{cross_entropy(in[0], y0, 0.0, Reduction::None)};
                   }),
                   {randn({4}, 102)});
}

// ---------------------------------------------------------------- errors

TEST(Losses, Errors) {
  Tensor a = randn({3, 4}, 1), b = randn({4, 3}, 2);
  EXPECT_CORTEX_ERROR(mse_loss(a, b), "mse_loss: pred has shape [3, 4] but target has shape [4, 3]");
  EXPECT_CORTEX_ERROR(l1_loss(a, randn({3, 1}, 3)), "same shape");
  EXPECT_CORTEX_ERROR(mse_loss(a, randn({3, 4}, 3, DType::Float32)), "expected one dtype");
  EXPECT_CORTEX_ERROR(mse_loss(a, zeros({3, 4}, DType::Int64)), "mse_loss: expected a float target, found int64");
  EXPECT_CORTEX_ERROR(mse_loss(Tensor(), a), "pred is undefined");
  EXPECT_CORTEX_ERROR(poisson_nll_loss(a, b), "poisson_nll_loss: pred_rate has shape");
  EXPECT_CORTEX_ERROR(poisson_nll_loss(a, a, -1.0), "eps must be >= 0");
  EXPECT_CORTEX_ERROR(neg_pearson(a, b), "neg_pearson: pred has shape");
  EXPECT_CORTEX_ERROR(neg_pearson(a, a, 2), "neg_pearson");
  EXPECT_CORTEX_ERROR(neg_pearson(randn({1, 4}, 4), randn({1, 4}, 5)), "at least 2 samples");
  EXPECT_CORTEX_ERROR(neg_pearson(randn({}, 4), randn({}, 5)), "0-dim");
  EXPECT_CORTEX_ERROR(neg_pearson(a, a, 0, 0.0), "eps must be > 0");
  EXPECT_CORTEX_ERROR(info_nce(a, b), "info_nce: a has shape");
  EXPECT_CORTEX_ERROR(info_nce(randn({2, 3, 4}, 6), randn({2, 3, 4}, 7)), "(N, D)");
  EXPECT_CORTEX_ERROR(info_nce(a, a, 0.0), "temperature");
  EXPECT_CORTEX_ERROR(info_nce(randn({0, 3}, 8), randn({0, 3}, 9)), "at least one pair");

  Tensor logits = randn({3, 4}, 10);
  EXPECT_CORTEX_ERROR(cross_entropy(logits, from_vector<int32_t>({0, 1, 2}, {3}, DType::Int32)),
                      "cross_entropy: expected int64 class indices as target, found int32");
  EXPECT_CORTEX_ERROR(cross_entropy(logits, from_vector<double>({0, 1, 2}, {3})), "found float64");
  EXPECT_CORTEX_ERROR(cross_entropy(logits, ints({0, 4, 1}, {3})), "target index 4 is out of range for 4 classes");
  EXPECT_CORTEX_ERROR(cross_entropy(logits, ints({0, -1, 1}, {3})), "target index -1 is out of range");
  EXPECT_CORTEX_ERROR(cross_entropy(logits, ints({0, 1}, {2})), "need a target of shape [3], found [2]");
  EXPECT_CORTEX_ERROR(cross_entropy(logits, ints({0, 1, 2}, {3, 1})), "need a target of shape [3]");
  EXPECT_CORTEX_ERROR(cross_entropy(randn({4}, 11), ints({1}, {1})), "need a 0-dim target");
  EXPECT_CORTEX_ERROR(cross_entropy(randn({}, 11), ints({0}, {})), "found 0-dim");
  EXPECT_CORTEX_ERROR(cross_entropy(logits, ints({0, 1, 2}, {3}), 1.5), "label_smoothing must be in [0, 1]");
  EXPECT_CORTEX_ERROR(cross_entropy(zeros({3, 4}, DType::Int64), ints({0, 1, 2}, {3})), "expected a float logits");
}
