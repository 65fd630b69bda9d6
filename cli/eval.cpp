// cortex eval: scores predictions against a dataset in the Algonauts layout (analysis/metrics.h):
//
//   cortex eval --pred predictions.npy --data DIR [--split test] [--hemi lh|rh|both] --out metrics.json
//               [--permutations N --seed K]
//
// DIR is a subject folder (subjXX/). predictions.npy is (images, voxels) with the hemisphere's
// columns (lh then rh for both). The noise ceiling's units are decided by the loader (--nc-units,
// data/dataset.h: NcUnits; auto takes a file whose values exceed 1.5 as percent). The metrics are
// those cortex fit writes (analysis/scores.h), plus the per-voxel r and R² and, with
// --permutations, p- and q-values. One line of summary goes to stdout; metrics.json is written
// through a temporary file.
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "analysis/metrics.h"
#include "analysis/scores.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/npy.h"

namespace cortex::cli {

Run add_eval(CLI::App& app) {
  auto* sub = app.add_subcommand("eval", "Score voxel predictions (Pearson r, R², challenge score, permutation p)");
  struct Opts {
    std::string pred, data, split = "test", hemi = "lh", out, nc_units = "auto";
    int64_t permutations = 0;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--pred", o->pred, "Predictions .npy (images, voxels)")->required();
  sub->add_option("--data", o->data, "Subject folder in the Algonauts layout")->required();
  sub->add_option("--split", o->split, "train or test")->capture_default_str();
  sub->add_option("--hemi", o->hemi, "lh, rh or both")->capture_default_str();
  sub->add_option("--out", o->out, "metrics.json")->required();
  sub->add_option("--nc-units", o->nc_units, kNcUnitsHelp)->check(CLI::IsMember({"auto", "fraction", "percent"}))
      ->capture_default_str();
  sub->add_option("--permutations", o->permutations, "Image shuffles for p-values (0: none)")->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the shuffles")->capture_default_str();
  return [o] {
    data::LoadOptions lo;
    lo.hemi = o->hemi;
    lo.nc_units = data::parse_nc_units(o->nc_units);
    const data::Dataset d = data::load_algonauts(o->data, o->split, lo);
    CORTEX_CHECK(d.responses.defined(), "eval: ", d.name, " has no measured responses to score against");
    const Tensor pred = io::read_npy(o->pred);
    CORTEX_CHECK(pred.dim() == 2 && pred.shape() == d.responses.shape(), "eval: ", o->pred, " is ",
                 shape_str(pred.shape()), " but ", d.name, " has responses ", shape_str(d.responses.shape()));
    const analysis::PredictionMetrics m = analysis::prediction_metrics(pred, d);
    nlohmann::json j;
    j["pred"] = o->pred;
    j["data"] = o->data;
    j["split"] = o->split;
    j["hemi"] = o->hemi;
    j.update(m.json);
    std::string line = "eval: " + std::to_string(m.r.size()) + " voxels, mean r " + std::to_string(m.mean_r);
    if (m.has_score)
      line += ", challenge score " + std::to_string(m.challenge_score) + " (" +
              std::to_string(m.json["challenge_voxels_excluded"].get<int64_t>()) + " voxels with NC 0 excluded)";
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
    j["r"] = m.r;
    j["r2"] = m.r2;
    const std::string text = j.dump(1);
    io::write_file_atomic(o->out, text.data(), text.size());
    std::cout << line << "\n";
    return 0;
  };
}

}  // namespace cortex::cli
