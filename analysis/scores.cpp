#include "analysis/scores.h"

#include <cmath>
#include <cstdio>

#include "analysis/metrics.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/npy.h"

namespace cortex::analysis {

nlohmann::json json_number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string responses_fingerprint(const Tensor& responses) {
  CORTEX_CHECK(responses.defined(), "responses_fingerprint: expected a tensor of responses, found an undefined one");
  uint64_t h = 1469598103934665603ULL;
  auto mix = [&](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ULL;
  };
  for (int64_t s : responses.shape()) mix(&s, sizeof s);
  const std::vector<double> v = responses.to(DType::Float64).contiguous().to_vector<double>();
  mix(v.data(), v.size() * sizeof(double));
  char out[17];
  std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(h));
  return out;
}

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

void evaluate(const std::string& pred_path, const data::Dataset& d, const std::map<std::string, std::string>& about,
              int64_t permutations, uint64_t seed, const std::string& out, std::string* summary) {
  const Tensor pred = io::read_npy(pred_path);
  CORTEX_CHECK(pred.dim() == 2 && pred.shape() == d.responses.shape(), "eval: ", pred_path, " is ",
               shape_str(pred.shape()), " but ", d.name, " has responses ", shape_str(d.responses.shape()));
  const PredictionMetrics m = prediction_metrics(pred, d);
  nlohmann::json j;
  for (const auto& [k, v] : about) j[k] = v;
  j.update(m.json);
  std::string line = "eval: " + std::to_string(m.r.size()) + " voxels, mean r " + std::to_string(m.mean_r);
  if (m.has_score)
    line += ", challenge score " + std::to_string(m.challenge_score) + " (" +
            std::to_string(m.json["challenge_voxels_excluded"].get<int64_t>()) + " voxels with NC 0 excluded)";
  if (permutations > 0) {
    const Tensor p = permutation_pvalues(pred, d.responses, permutations, seed);
    const std::vector<double> q = fdr_bh(p).to_vector<double>();
    int64_t sig = 0;
    for (double x : q) sig += x < 0.05 ? 1 : 0;
    j["permutations"] = permutations;
    j["seed"] = seed;
    j["significant_fdr_0.05"] = sig;
    j["p_values"] = p.to_vector<double>();
    j["q_values"] = q;
    line += ", " + std::to_string(sig) + " voxels significant at FDR 0.05";
  }
  j["r"] = m.r;
  j["r2"] = m.r2;
  const std::string text = j.dump(1);
  io::write_file_atomic(out, text.data(), text.size());
  if (summary) *summary = line;
}

}  // namespace cortex::analysis
