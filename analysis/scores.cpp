#include "analysis/scores.h"

#include <cmath>

#include "analysis/metrics.h"

namespace cortex::analysis {

nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

PredictionMetrics prediction_metrics(const Tensor& pred, const data::Dataset& d) {
  CORTEX_CHECK(d.responses.defined(), "metrics: ", d.name, " has no measured responses to score against");
  CORTEX_CHECK(pred.dim() == 2 && pred.shape() == d.responses.shape(), "metrics: the predictions are ",
               shape_str(pred.shape()), " but ", d.name, " has responses ", shape_str(d.responses.shape()));
  PredictionMetrics m;
  const Tensor r = pearson_r(pred, d.responses);
  m.r = r.to_vector<double>();
  m.r2 = r2_score(pred, d.responses).to_vector<double>();
  double mean_r2 = 0;
  for (size_t i = 0; i < m.r.size(); ++i) m.mean_r += m.r[i], mean_r2 += m.r2[i];
  const double n = static_cast<double>(std::max<size_t>(1, m.r.size()));
  m.mean_r /= n;
  mean_r2 /= n;
  nlohmann::json& j = m.json;
  j["images"] = d.size();
  j["voxels"] = static_cast<int64_t>(m.r.size());
  j["mean_r"] = json_number(m.mean_r);
  j["mean_r2"] = json_number(mean_r2);
  if (d.noise_ceiling.defined()) {
    const ChallengeScore s = challenge_score(r, d.noise_ceiling);
    m.has_score = true;
    m.challenge_score = s.score;
    j["noise_ceiling_was_percent"] = d.noise_ceiling_was_percent;
    j["challenge_score"] = json_number(s.score);
    j["challenge_voxels_used"] = s.voxels_used;
    j["challenge_voxels_excluded"] = s.voxels_excluded;
  }
  if (!d.rois.empty()) {
    nlohmann::json rois = nlohmann::json::object();
    for (const auto& s : roi_summaries(r, d.noise_ceiling, d.rois))
      rois[s.name] = {{"voxels", s.voxels},
                      {"mean_r", json_number(s.mean_r)},
                      {"median_r", json_number(s.median_r)},
                      {"challenge_score", json_number(s.score)},
                      {"challenge_voxels_used", s.score_voxels}};
    j["rois"] = rois;
  }
  return m;
}

}  // namespace cortex::analysis
