// The metrics of predictions against measured responses: one schema, written by cortex fit
// (metrics.json) and cortex eval, so the same predictions give the same keys and values in both.
//
// Keys (docs/encoding.md, "Metrics"):
//   images, voxels                 rows scored and response columns
//   mean_r, mean_r2                mean over voxels of Pearson r and R² (float64; null when not finite)
//   noise_ceiling_was_percent      the ceiling file held percent (data::NcUnits); only with a ceiling
//   challenge_score                mean over voxels with NC > 0 of max(r, 0)² / NC x 100; only with a ceiling
//   challenge_voxels_used          voxels in that mean
//   challenge_voxels_excluded      voxels with NC <= 0 or NaN
//   rois                           only when the data name ROIs: an object, ROI name ->
//                                  {voxels, mean_r, median_r, challenge_score, challenge_voxels_used}
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "tensor/tensor.h"

namespace cortex::analysis {

// A double for JSON: the number, or null when it is NaN or infinite (JSON has neither).
nlohmann::json json_number(double v);

struct PredictionMetrics {
  nlohmann::json json;         // the keys above
  std::vector<double> r, r2;   // per voxel
  double mean_r = 0;
  bool has_score = false;      // a noise ceiling was there
  double challenge_score = 0;
};

// An identity of measured responses (shape and every value, as float64): FNV-1a 64 in 16 hex digits.
// cortex fit records that of its test responses (metrics.json: responses_fingerprint) so that
// cortex compare can refuse fits scored on different subjects, voxels or test images.
std::string responses_fingerprint(const Tensor& responses);

// pred (images, voxels) against d.responses, with d's noise ceiling (a fraction: the loader
// converts) and ROIs.
PredictionMetrics prediction_metrics(const Tensor& pred, const data::Dataset& d);

// cortex eval: the predictions in pred_path (.npy, images x voxels) scored against d; writes `out`
// (JSON, atomically): `about` (string keys such as pred, data, split, hemi), the keys above, the
// per-voxel r and r2, and with permutations > 0 one-sided permutation p-values (seeded image
// shuffles) with Benjamini-Hochberg q-values: permutations, seed, significant_fdr_0.05, p_values,
// q_values. *summary (when given) receives a one-line summary.
void evaluate(const std::string& pred_path, const data::Dataset& d, const std::map<std::string, std::string>& about,
              int64_t permutations, uint64_t seed, const std::string& out, std::string* summary = nullptr);

}  // namespace cortex::analysis
