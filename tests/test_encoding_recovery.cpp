// End to end on simulated data with known ground truth: a linear encoding model recovers the
// linear (simple-cell Gabor) voxels the simulator planted. The pixel-space ridge is the right model
// class for them (each is a Gabor dot product with the grey image), so its test r must come close
// to the noise ceiling; the other voxel kinds (energy, normalisation, category) must score lower,
// which shows the check can fail. Thresholds are stated here and the achieved figures printed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "analysis/metrics.h"
#include "data/simulate.h"
#include "models/readouts/ridge.h"
#include "tests/test_util.h"

using namespace cortex;

namespace {
// uint8 (N, S, S, 3) -> float64 (N, S*S) grey pixels.
Tensor grey_rows(const Tensor& imgs) {
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < imgs.size(0); ++i) rows.push_back(data::image_to_gray(imgs.select(0, i)).reshape({-1}));
  std::vector<double> all;
  for (const Tensor& r : rows) {
    const auto v = r.to_vector<double>();
    all.insert(all.end(), v.begin(), v.end());
  }
  return from_vector(all, {imgs.size(0), rows[0].numel()}, DType::Float64);
}
}  // namespace

TEST(EncodingRecovery, PixelRidgeRecoversPlantedLinearVoxels) {
  data::SimConfig cfg;
  cfg.n_train = 1200;
  cfg.n_test = 100;
  cfg.voxels = 120;
  cfg.image_size = 32;
  cfg.seed = 7;
  const data::Simulation sim = data::simulate(cfg);
  const Tensor Xtr = grey_rows(sim.train_images), Xte = grey_rows(sim.test_images);
  const auto fit = models::fit_ridge_cv(Xtr, sim.train_fmri.to(DType::Float64), {1e-1, 1, 10, 1e2, 1e3, 1e4, 1e5}, 5, 0);
  const Tensor r = analysis::pearson_r(models::ridge_predict(Xte, fit.weights, fit.intercept), sim.test_fmri);
  const auto rv = r.to_vector<double>();
  const auto nc = sim.noise_ceiling.to_vector<double>();
  // Per kind: mean of r / sqrt(NC) (1 = as good as the noise allows).
  double frac[4] = {0, 0, 0, 0};
  int count[4] = {0, 0, 0, 0};
  for (size_t v = 0; v < rv.size(); ++v) {
    const int k = static_cast<int>(sim.voxels[v].kind);
    if (nc[v] <= 0.05) continue;
    frac[k] += rv[v] / std::sqrt(nc[v]);
    count[k] += 1;
  }
  for (int k = 0; k < 4; ++k) {
    ASSERT_GT(count[k], 5) << data::kind_name(static_cast<data::VoxelKind>(k));
    frac[k] /= count[k];
    std::printf("pixel ridge, %-10s voxels: mean r / sqrt(NC) = %.3f over %d voxels\n",
                data::kind_name(static_cast<data::VoxelKind>(k)), frac[k], count[k]);
  }
  const int simple = static_cast<int>(data::VoxelKind::Simple);
  EXPECT_GT(frac[simple], 0.75) << "linear voxels should reach 75% of the ceiling";
  for (int k = 0; k < 4; ++k)
    if (k != simple) {
      EXPECT_LT(frac[k], frac[simple]) << data::kind_name(static_cast<data::VoxelKind>(k));
    }
}
