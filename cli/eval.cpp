// cortex eval: scores predictions against a dataset in the Algonauts layout (analysis/metrics.h):
//
//   cortex eval --pred predictions.npy --data DIR [--split test] [--hemi lh|rh|both] --out metrics.json
//               [--permutations N --seed K]
//
// DIR is a subject folder (subjXX/). predictions.npy is (images, voxels) with the hemisphere's
// columns (lh then rh for both). The noise ceiling is read as a fraction; a file whose values
// exceed 1.5 is taken to be in percent (as the challenge released them) and divided by 100.
// One line of summary goes to stdout; metrics.json is written through a temporary file.
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "analysis/metrics.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/npy.h"

namespace cortex::cli {
namespace {

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

}  // namespace

Run add_eval(CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "Score voxel predictions (Pearson r, R², challenge score, permutation p)");
  struct Opts {
    std::string pred, data, split = "test", hemi = "lh", out;
    int64_t permutations = 0;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--pred", o->pred, "Predictions .npy (images, voxels)")->required();
  sub->add_option("--data", o->data, "Subject folder in the Algonauts layout")->required();
  sub->add_option("--split", o->split, "train or test")->capture_default_str();
  sub->add_option("--hemi", o->hemi, "lh, rh or both")->capture_default_str();
  sub->add_option("--out", o->out, "metrics.json")->required();
  sub->add_option("--permutations", o->permutations, "Image shuffles for p-values (0: none)")->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the shuffles")->capture_default_str();
  return [o] {
    data::LoadOptions lo;
    lo.hemi = o->hemi;
    const data::Dataset d = data::load_algonauts(o->data, o->split, lo);
    CORTEX_CHECK(d.responses.defined(), "eval: ", d.name, " has no measured responses to score against");
    const Tensor pred = io::read_npy(o->pred);
    CORTEX_CHECK(pred.dim() == 2 && pred.shape() == d.responses.shape(), "eval: ", o->pred, " is ",
                 shape_str(pred.shape()), " but ", d.name, " has responses ", shape_str(d.responses.shape()));
    const Tensor r = analysis::pearson_r(pred, d.responses), r2 = analysis::r2_score(pred, d.responses);
    Tensor nc = d.noise_ceiling;
    bool percent = false;
    if (nc.defined()) {
      double mx = 0;
      for (double v : nc.to_vector<double>()) mx = std::isfinite(v) ? std::max(mx, v) : mx;
      percent = mx > 1.5;
      if (percent) {
        std::vector<double> v = nc.to_vector<double>();
        for (double& x : v) x /= 100.0;
        nc = from_vector(v);
      }
    }
    const std::vector<double> rv = r.to_vector<double>(), r2v = r2.to_vector<double>();
    double mean_r = 0, mean_r2 = 0;
    for (size_t i = 0; i < rv.size(); ++i) { mean_r += rv[i] / rv.size(); mean_r2 += r2v[i] / rv.size(); }
    nlohmann::json j;
    j["pred"] = o->pred;
    j["data"] = o->data;
    j["split"] = o->split;
    j["hemi"] = o->hemi;
    j["images"] = d.size();
    j["voxels"] = static_cast<int64_t>(rv.size());
    j["mean_r"] = num(mean_r);
    j["mean_r2"] = num(mean_r2);
    std::string line = "eval: " + std::to_string(rv.size()) + " voxels, mean r " + std::to_string(mean_r);
    if (nc.defined()) {
      const analysis::ChallengeScore s = analysis::challenge_score(r, nc);
      j["noise_ceiling_was_percent"] = percent;
      j["challenge_score"] = num(s.score);
      j["score_voxels_used"] = s.voxels_used;
      j["score_voxels_excluded"] = s.voxels_excluded;
      line += ", challenge score " + std::to_string(s.score) + " (" + std::to_string(s.voxels_excluded) + " voxels with NC 0 excluded)";
    }
    nlohmann::json rois = nlohmann::json::array();
    for (const auto& s : analysis::roi_summaries(r, nc, d.rois))
      rois.push_back({{"roi", s.name}, {"voxels", s.voxels}, {"mean_r", num(s.mean_r)}, {"median_r", num(s.median_r)},
                      {"challenge_score", num(s.score)}, {"score_voxels", s.score_voxels}});
    j["rois"] = rois;
    if (o->permutations > 0) {
      const Tensor p = analysis::permutation_pvalues(pred, d.responses, o->permutations, o->seed);
      const std::vector<double> q = analysis::fdr_bh(p).to_vector<double>();
      int64_t sig = 0;
      for (double x : q) sig += x < 0.05 ? 1 : 0;
      j["permutations"] = o->permutations;
      j["seed"] = o->seed;
      j["significant_fdr_0.05"] = sig;
      j["p_values"] = p.to_vector<double>();
      j["q_values"] = q;
      line += ", " + std::to_string(sig) + " voxels significant at FDR 0.05";
    }
    j["r"] = rv;
    j["r2"] = r2v;
    const std::string text = j.dump(1);
    io::write_file_atomic(o->out, text.data(), text.size());
    std::cout << line << "\n";
    return 0;
  };
}

}  // namespace cortex::cli
