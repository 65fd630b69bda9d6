// cortex fit's outputs besides the model file (moved from cli/fit.cpp): predictions.npy,
// metrics.json in the schema of analysis/scores.h plus the fit's own keys, receptive-field recovery
// on simulated data, and report.html.
#include "analysis/fit_report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "analysis/report.h"
#include "analysis/scores.h"
#include "autograd/autograd.h"
#include "data/simulate.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/npy.h"

namespace cortex::analysis {
namespace {

namespace fs = std::filesystem;

// The first voxels' receptive fields as images for the report: the readout's spatial map (fwrf,
// factorized) or a blob at its centre `pos` (fractions of the map, Readout::rf_centres).
void add_rf_images(models::Readout& net, const Tensor& pos, ReportData& rep) {
  NoGradGuard ng;
  const int64_t n = std::min<int64_t>(pos.size(0), 8);
  const Tensor maps = net.rf_maps();
  for (int64_t v = 0; v < n; ++v) {
    if (maps.defined()) {
      rep.images.push_back({"voxel " + std::to_string(v) + " spatial map", maps.select(0, v).to(DType::Float32)});
      continue;
    }
    constexpr int64_t S = 32;
    Tensor m = empty({S, S}, DType::Float32);
    const double x = pos.at({v, 0}) * S - 0.5, y = pos.at({v, 1}) * S - 0.5;
    for (int64_t i = 0; i < S; ++i)
      for (int64_t j = 0; j < S; ++j)
        m.data<float>()[i * S + j] = static_cast<float>(std::exp(-((j - x) * (j - x) + (i - y) * (i - y)) / 8.0));
    rep.images.push_back({"voxel " + std::to_string(v) + " position", m});
  }
}


double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// Receptive-field recovery on a simulated subject: distance (in the simulated image's pixels)
// between each fitted position and the planted centre, summarised overall and per voxel kind.
void position_recovery(const Tensor& pos, const encoding::EncodingSpec& o, nlohmann::json& metrics, ReportData& rep) {
  const data::GroundTruth gt = data::read_ground_truth(o.data, o.hemi);
  if (static_cast<int64_t>(gt.voxels.size()) != pos.size(0)) {
    std::cerr << "fit: ground_truth.json has " << gt.voxels.size() << " voxels for --hemi " << o.hemi << ", the model "
              << pos.size(0) << "; receptive-field recovery not measured\n";
    return;
  }
  const double S = static_cast<double>(gt.image_size);
  std::vector<double> all;
  std::map<std::string, std::vector<double>> by_kind;
  for (size_t v = 0; v < gt.voxels.size(); ++v) {
    const auto& q = gt.voxels[v];
    const int64_t i = static_cast<int64_t>(v);
    const double e = std::hypot(pos.at({i, 0}) - (q.x + 0.5) / S, pos.at({i, 1}) - (q.y + 0.5) / S) * S;
    all.push_back(e);
    by_kind[data::kind_name(q.kind)].push_back(e);
  }
  nlohmann::json j = {{"median_px", json_number(median(all))}, {"image_size_px", gt.image_size}};
  for (const auto& [k, e] : by_kind) j["median_px_by_kind"][k] = json_number(median(e));
  metrics["position_error"] = j;
  std::ostringstream os;
  os << std::fixed << std::setprecision(2) << median(all) << " px of " << gt.image_size << " (";
  bool first = true;
  for (const auto& [k, e] : by_kind) os << (first ? "" : ", ") << k << " " << median(e), first = false;
  os << ")";
  rep.summary.push_back({"median distance of fitted RF centres from the planted ones", os.str()});
  std::cerr << "fit: receptive-field centres " << os.str() << " from the planted ones (median)\n";
}

}  // namespace

FitSummary write_fit_outputs(const encoding::EncodingSpec& o, const encoding::FitResult& r) {
  const data::Dataset& train = r.train;
  const data::Dataset& test = r.test;
  const Tensor& pred = r.pred;
  const std::string& source = r.source;
  const std::string& in_shapes = r.in_shapes;
  const int64_t V = r.voxels;
  FitSummary summary;
  ReportData rep;
  nlohmann::json metrics;
  if (r.epochs >= 0) {
    metrics["epochs"] = r.epochs;
    metrics["best_val_r"] = r.best_val_r;
  }
  if (r.net) {
    // The map's cell centres stand for image positions: exact for the core's same-padded convs,
    // an approximation for a backbone's map (cell centres for receptive-field centres).
    const Tensor pos = r.net->rf_centres();
    if (pos.defined()) {
      add_rf_images(*r.net, pos, rep);
      if (fs::exists(fs::path(o.data) / "ground_truth.json")) position_recovery(pos, o, metrics, rep);
    }
  }

  metrics["train_images"] = train.size();
  metrics["test_images"] = test.size();
  metrics["voxels"] = V;
  metrics["inputs"] = in_shapes;
  metrics["readout"] = o.readout;
  metrics["tap"] = o.tap;
  metrics["finetune"] = o.finetune;
  rep.title = "cortex fit: " + o.readout + " on " + source;
  if (pred.defined()) {
    io::write_npy((fs::path(o.out) / "predictions.npy").string(), pred.to(DType::Float32));
    if (test.responses.defined()) {
      const PredictionMetrics pm = prediction_metrics(pred, test);
      metrics.update(pm.json);  // the schema cortex eval writes too (analysis/scores.h)
      // What cortex compare needs (analysis/compare.h): what was scored, per-voxel r as eval
      // writes it, and the ROIs' columns.
      metrics["data"] = o.data;
      metrics["hemi"] = o.hemi;
      metrics["responses_fingerprint"] = responses_fingerprint(test.responses);
      metrics["r"] = pm.r;
      metrics["r2"] = pm.r2;
      if (!test.rois.empty()) metrics["roi_columns"] = test.rois;
      const double mean_r = pm.mean_r;
      summary.scored = true, summary.mean_r = mean_r;
      summary.has_score = pm.has_score, summary.challenge_score = pm.challenge_score;
      rep.r = pm.r;
      rep.summary.insert(rep.summary.begin(), {"mean r (test)", std::to_string(mean_r)});
      if (pm.has_score) {
        rep.noise_ceiling = test.noise_ceiling.to(DType::Float64).to_vector<double>();
        rep.summary.insert(rep.summary.begin() + 1,
                           {"challenge score (r² / NC x 100)", std::to_string(pm.challenge_score)});
      }
      if (!test.rois.empty()) {
        rep.roi.assign(pm.r.size(), "other");
        for (const auto& [name, cols] : test.rois)
          for (int64_t c : cols)
            if (c >= 0 && c < static_cast<int64_t>(rep.roi.size())) rep.roi[static_cast<size_t>(c)] = name;
      }
    }
  }
  rep.summary.push_back({"training images", std::to_string(train.size())});
  rep.summary.push_back({"inputs", in_shapes + " from " + source});
  const std::string mj = metrics.dump(2);
  io::write_file_atomic((fs::path(o.out) / "metrics.json").string(), mj.data(), mj.size());
  if (!rep.r.empty()) write_report((fs::path(o.out) / "report.html").string(), rep);
  return summary;
}

}  // namespace cortex::analysis
