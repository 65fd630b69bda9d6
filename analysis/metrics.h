// Encoding-model metrics: per-voxel Pearson r and R², the Algonauts 2023 challenge score,
// permutation p-values with Benjamini-Hochberg FDR, and per-ROI summaries.
//
// Conventions: predictions and targets are (images, voxels), any float dtype, on the CPU; every
// result is float64 and accumulated in float64. A column with zero variance (in the prediction or
// the target for r; in the target for R²) has no defined correlation: its r is 0 and its R² is 0,
// so a constant prediction scores as "no information" rather than NaN.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::analysis {

// Pearson r per column: float64 (V,).
Tensor pearson_r(const Tensor& pred, const Tensor& target);
// Coefficient of determination per column, 1 - SS_res / SS_tot (can be negative): float64 (V,).
Tensor r2_score(const Tensor& pred, const Tensor& target);

struct ChallengeScore {
  double score = 0;             // mean over used voxels of max(r, 0)^2 / NC * 100
  int64_t voxels_used = 0;
  int64_t voxels_excluded = 0;  // NC <= 0 or NaN: no explainable variance, the ratio is undefined
  Tensor per_voxel;             // float64 (V,), NaN where excluded
};
// The Algonauts 2023 score from per-voxel r and the noise ceiling as a fraction in [0, 1]
// (divide the challenge's percent files by 100 first). Ratios above 100 are kept (as the challenge does).
ChallengeScore challenge_score(const Tensor& r, const Tensor& noise_ceiling);

// One-sided permutation p-values of r > 0 per voxel: the images of `pred` are shuffled by the
// same seeded permutation for all voxels at once (keeping voxel-to-voxel structure), and
// p = (1 + #{perm: r_perm >= r}) / (1 + n_permutations). float64 (V,).
Tensor permutation_pvalues(const Tensor& pred, const Tensor& target, int64_t n_permutations, uint64_t seed);

// Benjamini-Hochberg adjusted p-values (q-values), same order as p: q_(i) = min_{j >= i} p_(j) m / j, capped at 1.
Tensor fdr_bh(const Tensor& p);

struct RoiSummary {
  std::string name;
  int64_t voxels = 0;
  double mean_r = 0, median_r = 0;
  double score = 0;         // challenge score over the ROI's voxels (NaN when no noise ceiling or none used)
  int64_t score_voxels = 0;
};
// Per ROI (name -> voxel columns) summaries of r, and of the challenge score when `noise_ceiling`
// is defined. ROIs with no voxels are reported with zero voxels and NaN statistics.
std::vector<RoiSummary> roi_summaries(const Tensor& r, const Tensor& noise_ceiling,
                                      const std::map<std::string, std::vector<int64_t>>& rois);

}  // namespace cortex::analysis
