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
#include <iostream>

#include "analysis/scores.h"
#include "cli/commands.h"
#include "data/dataset.h"

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
    std::string line;
    analysis::evaluate(o->pred, d, {{"pred", o->pred}, {"data", o->data}, {"split", o->split}, {"hemi", o->hemi}},
                       o->permutations, o->seed, o->out, &line);
    std::cout << line << "\n";
    return 0;
  };
}

}  // namespace cortex::cli
