// analysis/metrics: r and R² against float64 loops, the challenge score and BH FDR against
// hand-computed examples, permutation p-values under the null and for a planted signal.
#include <cmath>

#include "analysis/metrics.h"
#include "test_util.h"

using namespace cortex;
using namespace cortex::analysis;
using cortex::testing::allclose;

namespace {

double ref_r(const Tensor& p, const Tensor& t, int64_t v) {
  const int64_t N = p.size(0);
  double mp = 0, mt = 0;
  for (int64_t i = 0; i < N; ++i) { mp += p.at({i, v}) / N; mt += t.at({i, v}) / N; }
  double a = 0, b = 0, c = 0;
  for (int64_t i = 0; i < N; ++i) {
    const double x = p.at({i, v}) - mp, y = t.at({i, v}) - mt;
    a += x * y; b += x * x; c += y * y;
  }
  return (b > 0 && c > 0) ? a / std::sqrt(b * c) : 0.0;
}

}  // namespace

TEST(Metrics, PearsonAndR2AgainstFloat64Loops) {
  const Tensor t = cortex::testing::randn({37, 9}, 1);
  Tensor p = cortex::testing::randn({37, 9}, 2);
  for (int64_t i = 0; i < 37; ++i)
    for (int64_t v = 0; v < 9; ++v) p.data<double>()[i * 9 + v] += v * 0.3 * t.at({i, v});
  const Tensor p32 = p.to(DType::Float32);
  const Tensor r = pearson_r(cortex::testing::noncontig(p32), t), r2 = r2_score(p32, t);
  for (int64_t v = 0; v < 9; ++v) {
    EXPECT_NEAR(r.at({v}), ref_r(p32, t, v), 1e-12);
    double res = 0, tot = 0, m = 0;
    for (int64_t i = 0; i < 37; ++i) m += t.at({i, v}) / 37;
    for (int64_t i = 0; i < 37; ++i) {
      res += std::pow(t.at({i, v}) - p32.at({i, v}), 2);
      tot += std::pow(t.at({i, v}) - m, 2);
    }
    EXPECT_NEAR(r2.at({v}), 1 - res / tot, 1e-12);
  }
  EXPECT_EQ(r.dtype(), DType::Float64);
  // Perfect prediction: r = 1, R² = 1.
  EXPECT_TRUE(allclose(pearson_r(t, t), ones({9}, DType::Float64), 1e-12, 1e-12));
  EXPECT_TRUE(allclose(r2_score(t, t), ones({9}, DType::Float64), 1e-12, 1e-12));
}

TEST(Metrics, ConstantColumnsGiveZero) {
  Tensor t = cortex::testing::randn({10, 3}, 3);
  Tensor p = t.clone();
  p.narrow(1, 0, 1).fill_(2.5);  // constant prediction
  t.narrow(1, 1, 1).fill_(-1.0);  // constant target
  const Tensor r = pearson_r(p, t), r2 = r2_score(p, t);
  EXPECT_EQ(r.at({0}), 0.0);
  EXPECT_EQ(r.at({1}), 0.0);
  EXPECT_NEAR(r.at({2}), 1.0, 1e-12);
  EXPECT_EQ(r2.at({1}), 0.0);
  EXPECT_LT(r2.at({0}), 0.0);  // a constant far from the mean is worse than the mean
}

TEST(Metrics, BadInputs) {
  EXPECT_CORTEX_ERROR(pearson_r(zeros({4, 3}), zeros({4, 2})), "same shape");
  EXPECT_CORTEX_ERROR(pearson_r(zeros({4}), zeros({4})), "expected (images >= 2, voxels)");
  EXPECT_CORTEX_ERROR(r2_score(zeros({1, 3}), zeros({1, 3})), "images >= 2");
  EXPECT_CORTEX_ERROR(pearson_r(zeros({4, 3}, DType::Int32), zeros({4, 3}, DType::Int32)), "expected float predictions");
  EXPECT_CORTEX_ERROR(challenge_score(zeros({3}), zeros({4})), "r has 3 voxels but the noise ceiling has 4");
  EXPECT_CORTEX_ERROR(challenge_score(zeros({3, 1}), zeros({3})), "expected r as a 1-D array");
  EXPECT_CORTEX_ERROR(permutation_pvalues(zeros({4, 3}), zeros({4, 3}), 0, 1), "n_permutations >= 1");
  EXPECT_CORTEX_ERROR(fdr_bh(from_vector<double>({0.1, 1.5})), "p-values in [0, 1]");
  EXPECT_CORTEX_ERROR(roi_summaries(zeros({3}), Tensor(), {{"A", {0, 3}}}), "lists voxel 3");
}

TEST(Metrics, ChallengeScoreHandExample) {
  // per voxel: 0.25/0.5*100 = 50; negative r -> 0; NC 0 excluded; 0.16/1*100 = 16. Mean of 3 = 22.
  const ChallengeScore s =
      challenge_score(from_vector<double>({0.5, -0.2, 0.3, 0.4}), from_vector<double>({0.5, 0.8, 0.0, 1.0}));
  EXPECT_NEAR(s.score, 22.0, 1e-12);
  EXPECT_EQ(s.voxels_used, 3);
  EXPECT_EQ(s.voxels_excluded, 1);
  EXPECT_NEAR(s.per_voxel.at({0}), 50.0, 1e-12);
  EXPECT_EQ(s.per_voxel.at({1}), 0.0);
  EXPECT_TRUE(std::isnan(s.per_voxel.at({2})));
}

TEST(Metrics, FdrBhHandExample) {
  // sorted p: .005 .01 .03 .04 .2 -> p*m/rank: .025 .025 .05 .05 .2 -> running min from the top.
  const Tensor q = fdr_bh(from_vector<double>({0.01, 0.04, 0.03, 0.005, 0.2}));
  EXPECT_TRUE(allclose(q, from_vector<double>({0.025, 0.05, 0.05, 0.025, 0.2}), 1e-12, 1e-15));
  // A large p early in the order cannot push a later q above 1.
  EXPECT_TRUE(allclose(fdr_bh(from_vector<double>({0.9, 1.0})), from_vector<double>({1.0, 1.0}), 1e-12, 1e-15));
  EXPECT_EQ(fdr_bh(from_vector<double>(std::vector<double>{})).numel(), 0);
}

TEST(Metrics, PermutationPValuesNullAndPlanted) {
  const int64_t N = 60, V = 400, P = 1999;  // enough shuffles that p = 1/(P+1) survives BH over 400 voxels
  const Tensor pred = cortex::testing::randn({N, V}, 21);
  Tensor target = cortex::testing::randn({N, V}, 22);
  for (int64_t i = 0; i < N; ++i)  // voxels 0..9 carry the prediction
    for (int64_t v = 0; v < 10; ++v) target.data<double>()[i * V + v] += 2 * pred.at({i, v});
  const Tensor p = permutation_pvalues(pred, target, P, 5);
  EXPECT_TRUE(allclose(p, permutation_pvalues(pred, target, P, 5), 0, 0));  // seeded
  for (int64_t v = 0; v < 10; ++v) EXPECT_NEAR(p.at({v}), 1.0 / (P + 1), 1e-15);
  double mean = 0;
  int below05 = 0, below50 = 0;
  for (int64_t v = 10; v < V; ++v) {
    const double x = p.at({v});
    mean += x / (V - 10);
    below05 += x <= 0.05;
    below50 += x <= 0.5;
  }
  EXPECT_NEAR(mean, 0.5, 0.05);
  EXPECT_NEAR(below05 / double(V - 10), 0.05, 0.035);
  EXPECT_NEAR(below50 / double(V - 10), 0.5, 0.08);
  const std::vector<double> q = fdr_bh(p).to_vector<double>();
  for (int64_t v = 0; v < 10; ++v) EXPECT_LT(q[v], 0.05);
}

TEST(Metrics, RoiSummaries) {
  const Tensor r = from_vector<double>({0.1, 0.5, -0.2, 0.4});
  const Tensor nc = from_vector<double>({1.0, 0.5, 0.5, 0.0});
  const auto s = roi_summaries(r, nc, {{"A", {0, 1, 2}}, {"B", {3}}, {"C", {}}});
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].name, "A");
  EXPECT_EQ(s[0].voxels, 3);
  EXPECT_NEAR(s[0].mean_r, 0.4 / 3, 1e-12);
  EXPECT_NEAR(s[0].median_r, 0.1, 1e-12);
  EXPECT_NEAR(s[0].score, (1.0 + 50.0 + 0.0) / 3, 1e-12);
  EXPECT_EQ(s[1].score_voxels, 0);
  EXPECT_TRUE(std::isnan(s[1].score));
  EXPECT_TRUE(std::isnan(s[2].mean_r));
  const auto t = roi_summaries(r, Tensor(), {{"B", {3, 1}}});
  EXPECT_NEAR(t[0].median_r, 0.45, 1e-12);
  EXPECT_TRUE(std::isnan(t[0].score));
}
