// Oracle mIoU and mask downsampling (analysis/segmentation.h) against known answers (a perfect
// embedding scores 1, a constant one scores the mean class fraction, ignore patches count nowhere)
// and against a naive float64 loop that recomputes every IoU at every threshold.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include <filesystem>

#include "analysis/segmentation.h"
#include "tensor/io/mask.h"
#include "tensor/io/npy.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::analysis;
using cortex::testing::expect_error;

namespace {

// Labels 0..K-1 drawn from a fixed LCG, with some 255.
std::vector<int64_t> planted_labels(int64_t P, int K, uint64_t seed, bool with_ignore) {
  std::vector<int64_t> l(static_cast<size_t>(P));
  uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
  for (auto& v : l) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    const int r = static_cast<int>((s >> 33) % (K + (with_ignore ? 1 : 0)));
    v = r == K ? 255 : r;
  }
  for (int c = 0; c < K; ++c) l[static_cast<size_t>(c)] = c;  // every class present
  return l;
}

// The naive reference: for every tau, every patch's cosine recomputed and IoU counted directly.
OracleResult naive(const std::vector<double>& e, int64_t k, const std::vector<int64_t>& lab,
                   const std::vector<double>& grid) {
  OracleResult r;
  std::map<int64_t, int64_t> cnt;
  for (int64_t l : lab)
    if (l != 255) ++cnt[l];
  const int64_t P = static_cast<int64_t>(lab.size());
  for (auto [c, n] : cnt) {
    std::vector<double> m(k, 0.0);
    for (int64_t p = 0; p < P; ++p)
      if (lab[p] == c)
        for (int64_t j = 0; j < k; ++j) m[j] += e[p * k + j] / n;
    double best = -1, bt = 0;
    for (double tau : grid) {
      int64_t inter = 0, uni = 0;
      for (int64_t p = 0; p < P; ++p) {
        if (lab[p] == 255) continue;
        double d = 0, a = 0, b = 0;
        for (int64_t j = 0; j < k; ++j) d += e[p * k + j] * m[j], a += e[p * k + j] * e[p * k + j], b += m[j] * m[j];
        const double cs = a > 0 && b > 0 ? d / std::sqrt(a * b) : 0.0;
        const bool pred = cs > tau, truth = lab[p] == c;
        inter += pred && truth;
        uni += pred || truth;
      }
      const double iou = static_cast<double>(inter) / uni;
      if (iou > best) best = iou, bt = tau;
    }
    r.classes.push_back(static_cast<int>(c));
    r.iou.push_back(best);
    r.best_threshold.push_back(bt);
  }
  return r;
}

}  // namespace

TEST(Oracle, PerfectEmbeddingScoresOneAndIgnoreCountsNowhere) {
  const int K = 4;
  const int64_t P = 301;
  const std::vector<int64_t> lab = planted_labels(P, K, 1, true);
  std::vector<float> e(static_cast<size_t>(P * K), 0.f);
  for (int64_t p = 0; p < P; ++p)
    // Ignore patches look exactly like class 1: counted anywhere, they would lower class 1's IoU.
    e[p * K + (lab[p] == 255 ? 1 : lab[p])] = 2.5f;
  const OracleResult r = oracle_miou(from_vector(e, {P, K}), from_vector(lab, {P}));
  EXPECT_DOUBLE_EQ(r.miou, 1.0);
  EXPECT_EQ(r.classes, (std::vector<int>{0, 1, 2, 3}));
  for (double t : r.best_threshold) EXPECT_DOUBLE_EQ(t, 0.0);  // cos 0 vs 1: the first tau >= 0 separates
  // With ignore switched off, 255 is a class of its own and class 1 loses.
  OracleOptions o;
  o.ignore = -1;
  const OracleResult q = oracle_miou(from_vector(e, {P, K}), from_vector(lab, {P}), o);
  EXPECT_EQ(q.classes.back(), 255);
  EXPECT_LT(q.iou[1], 1.0);
}

TEST(Oracle, ConstantEmbeddingScoresMeanClassFraction) {
  for (int K : {2, 3, 5}) {
    const int64_t P = 97 + K;
    const std::vector<int64_t> lab = planted_labels(P, K, K, true);
    std::vector<double> e(static_cast<size_t>(P * 3));
    for (int64_t p = 0; p < P; ++p) e[p * 3] = 0.3, e[p * 3 + 1] = -1.7, e[p * 3 + 2] = 0.9;
    std::map<int64_t, int64_t> cnt;
    int64_t valid = 0;
    for (int64_t l : lab)
      if (l != 255) ++cnt[l], ++valid;
    double expect = 0;
    for (auto [c, n] : cnt) expect += static_cast<double>(n) / valid / K;
    const OracleResult r = oracle_miou(from_vector(e, {P, 3}), from_vector(lab, {P}));
    EXPECT_NEAR(r.miou, expect, 1e-12) << K;
    if (K == 2) EXPECT_NEAR(r.miou, 0.5, 1e-12);  // figure-ground: f/1 and (1-f)/1 average to 1/2
  }
}

TEST(Oracle, MatchesNaiveLoopOnRandomEmbeddings) {
  for (auto [P, k, K] : std::vector<std::tuple<int64_t, int64_t, int>>{{1, 1, 1}, {50, 1, 2}, {203, 5, 3}, {400, 8, 6}}) {
    const std::vector<int64_t> lab = planted_labels(P, K, P + k, P > 1);
    // Embedding: class-dependent mean plus noise, so the IoUs are neither 0 nor 1.
    Tensor noise = cortex::testing::randn({P, k}, P * 7 + k);
    std::vector<double> e = noise.to_vector<double>();
    for (int64_t p = 0; p < P; ++p)
      if (lab[p] != 255) e[p * k + lab[p] % k] += 1.5;
    const std::vector<double> grid = default_threshold_grid();
    const OracleResult ref = naive(e, k, lab, grid);
    // (N, T, k) layout and int32 labels give the same numbers as (P, k).
    const OracleResult r = oracle_miou(from_vector(e, {1, P, k}), from_vector(lab, {P}).to(DType::Int32));
    ASSERT_EQ(r.classes, ref.classes);
    double m = 0;
    for (size_t c = 0; c < r.iou.size(); ++c) {
      EXPECT_DOUBLE_EQ(r.iou[c], ref.iou[c]) << P << " class " << c;
      EXPECT_DOUBLE_EQ(r.best_threshold[c], ref.best_threshold[c]) << P << " class " << c;
      m += ref.iou[c] / r.iou.size();
    }
    EXPECT_NEAR(r.miou, m, 1e-12);
  }
}

TEST(Oracle, BackgroundExclusionAndCustomGrid) {
  // 1-D embedding: class 1 at +1, class 0 at -1, class 2 at +1 as well (indistinguishable from 1).
  const std::vector<int64_t> lab = {0, 0, 0, 1, 1, 2, 255};
  const std::vector<double> e = {-1, -1, -1, 1, 1, 1, 1};
  OracleOptions o;
  o.include_background = false;
  o.thresholds = {0.5, -0.5, 0.5};  // unsorted, duplicated: sorted and deduplicated
  const OracleResult r = oracle_miou(from_vector(e, {7, 1}), from_vector(lab, {7}), o);
  EXPECT_EQ(r.classes, (std::vector<int>{1, 2}));
  EXPECT_DOUBLE_EQ(r.iou[0], 2.0 / 3.0);  // predicted {3, 4, 5}, truth {3, 4}
  EXPECT_DOUBLE_EQ(r.iou[1], 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.best_threshold[0], -0.5);
  EXPECT_DOUBLE_EQ(r.miou, 0.5);
}

TEST(Oracle, Refusals) {
  const Tensor e = zeros({4, 2}, DType::Float32);
  expect_error([&] { oracle_miou(e, zeros({5}, DType::Int64)); }, {"4 patches", "5"});
  expect_error([&] { oracle_miou(zeros({4, 2}, DType::Int64), zeros({4}, DType::Int64)); }, {"float32 or float64"});
  expect_error([&] { oracle_miou(e, zeros({4}, DType::Float32)); }, {"uint8, int32 or int64"});
  expect_error([&] { oracle_miou(e, full({4}, 255.0, DType::Int64)); }, {"no patch carries a label"});
  OracleOptions o;
  o.thresholds = {};
  expect_error([&] { oracle_miou(e, zeros({4}, DType::Int64), o); }, {"grid is empty"});
  Tensor bad = zeros({4, 2}, DType::Float64);
  bad.data<double>()[5] = NAN;
  expect_error([&] { oracle_miou(bad, zeros({4}, DType::Int64)); }, {"non-finite", "patch 2, dimension 1"});
  expect_error([&] { oracle_miou(zeros({0, 2}), zeros({0}, DType::Int64)); }, {"no patches"});
}

TEST(DownsampleMask, AreaMajorityKnownCases) {
  // 4x6 -> 2x3: 2x2 cells.
  const std::vector<uint8_t> m = {1, 1, 2, 2, 0, 255,   //
                                  1, 0, 2, 0, 255, 255,  //
                                  3, 3, 0, 0, 5, 5,      //
                                  3, 0, 0, 1, 5, 7};
  Tensor d = downsample_mask(from_vector(m, {4, 6}), 2, 3);
  EXPECT_EQ(d.dtype(), DType::UInt8);
  EXPECT_EQ(d.shape(), (Shape{2, 3}));
  // cell (0,1): 2,2,2,0 -> 2; (0,2): 0 + three 255 -> ignore wins; (1,1): 0,0,0,1 -> 0; (1,2): 5,5,5,7.
  EXPECT_EQ(d.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 2, 255, 3, 0, 5}));
  // A tie goes to the smaller label: 2x2 -> 1x1 with {4, 4, 2, 2}.
  EXPECT_EQ(downsample_mask(from_vector(std::vector<int64_t>{4, 4, 2, 2}, {1, 2, 2}), 1, 1).to_vector<int64_t>(),
            (std::vector<int64_t>{2}));
  // 5 rows -> 2 cells: rows 0..1 and 2..4 (floor(i H / gh)).
  const std::vector<int32_t> col = {1, 1, 2, 2, 1};
  EXPECT_EQ(downsample_mask(from_vector(col, {5, 1}), 2, 1).to_vector<int32_t>(), (std::vector<int32_t>{1, 2}));
  // Identity at full resolution; batch of 2.
  const Tensor b = from_vector(std::vector<uint8_t>{0, 1, 2, 3, 4, 5, 6, 7}, {2, 2, 2});
  EXPECT_EQ(downsample_mask(b, 2, 2).to_vector<uint8_t>(), b.to_vector<uint8_t>());
  expect_error([&] { downsample_mask(b, 3, 1); }, {"1 <= gh <= H", "3x1", "2x2"});
  expect_error([&] { downsample_mask(zeros({2, 2, 2}), 1, 1); }, {"uint8, int32 or int64"});
  expect_error([&] { downsample_mask(zeros({2}, DType::UInt8), 1, 1); }, {"(N, H, W)"});
}

TEST(FigureGround, MapsClassesToOne) {
  const Tensor l = from_vector(std::vector<uint8_t>{0, 3, 255, 1, 20}, {5});
  EXPECT_EQ(figure_ground(l).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 255, 1, 1}));
}

TEST(LoadMasks, FolderAndNpyWithRefusals) {
  cortex::testing::TempDir dir;
  std::filesystem::create_directories(dir / "m");
  const Tensor a = from_vector(std::vector<uint8_t>{0, 1, 2, 255, 0, 3}, {2, 3});
  const Tensor b = from_vector(std::vector<uint8_t>{3, 3, 0, 0, 1, 1}, {2, 3});
  io::write_index_mask(dir / "m/b.png", b);  // file-name order: a before b
  io::write_index_mask(dir / "m/a.png", a);
  const Tensor m = load_masks(dir / "m", false);
  EXPECT_EQ(m.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(m.to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 2, 255, 0, 3, 3, 3, 0, 0, 1, 1}));
  EXPECT_EQ(load_masks(dir / "m", true).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 1, 255, 0, 1, 1, 1, 0, 0, 1, 1}));
  io::write_npy(dir / "l.npy", from_vector(std::vector<int32_t>{0, 7, 255, 1}, {2, 2}));
  EXPECT_EQ(load_masks(dir / "l.npy", true).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 1, 255, 1}));
  EXPECT_EQ(load_masks(dir / "l.npy", false).shape(), (Shape{1, 2, 2}));
  io::write_index_mask(dir / "m/c.png", zeros({3, 3}, DType::UInt8));
  expect_error([&] { load_masks(dir / "m", false); }, {"c.png", "3x3", "2x3", "one size"});
  io::write_npy(dir / "big.npy", from_vector(std::vector<int64_t>{0, 300}, {1, 2}));
  expect_error([&] { load_masks(dir / "big.npy", false); }, {"0..255", "300"});
  io::write_npy(dir / "f.npy", zeros({2, 2}, DType::Float32));
  expect_error([&] { load_masks(dir / "f.npy", false); }, {"uint8, int32 or int64", "float32"});
  std::filesystem::create_directories(dir / "none");
  expect_error([&] { load_masks(dir / "none", false); }, {"found none"});
}
