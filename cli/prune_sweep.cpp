// cortex prune-sweep: the BOLDreams pruning study (analysis/prune_sweep.h).
//
//   cortex prune-sweep --data SUBJ --out DIR --arch alexnet --weights W --tap features.2,features.5
//                      [--finetune] [--fractions 1,0.5,0.25,0.1,0.05] [any flag of cortex fit]
//
// One cortex fit --readout fwrf --keep F per fraction into DIR/keep-F/, then sweep.json, sweep.csv
// and report.html (test r against the fraction of channels kept). Run again to resume.
#include <iomanip>
#include <iostream>
#include <memory>

#include "analysis/prune_sweep.h"
#include "cli/commands.h"

namespace cortex::cli {

Run add_prune_sweep(CLI::App& app) {
  auto* sub = app.add_subcommand("prune-sweep", "fwRF fits keeping fewer and fewer channels: test r against the fraction kept");
  auto job = std::make_shared<analysis::PruneSweepJob>();
  job->fit.readout = "fwrf";
  add_fit_options(sub, &job->fit);
  sub->get_option("--readout")->description("The readout (fwrf: the one whose channels are pruned)");
  sub->get_option("--out")->description("The sweep's folder: keep-<F>/ per fraction, sweep.json, sweep.csv, report.html");
  auto fractions = std::make_shared<std::string>("1,0.5,0.25,0.1,0.05");
  sub->add_option("--fractions", *fractions, "Fractions of channels to keep per tap, comma-separated, each in (0, 1]")
      ->capture_default_str();
  return [job, fractions] {
    job->fractions.clear();
    for (const std::string& s : split_commas(*fractions)) {
      size_t used = 0;
      double f = 0;
      try {
        f = std::stod(s, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      CORTEX_CHECK(used == s.size(), "prune-sweep: --fractions expects numbers, found '", s, "'");
      job->fractions.push_back(f);
    }
    const nlohmann::json sweep = analysis::run_prune_sweep(*job);
    std::cout << "prune-sweep: mean r";
    for (const auto& row : sweep["fractions"])
      std::cout << "  " << analysis::fraction_name(row["fraction"].get<double>()) << ": " << std::setprecision(3)
                << (row["mean_r"].is_number() ? row["mean_r"].get<double>() : std::nan(""));
    std::cout << "; results in " << job->fit.out << "\n";
    return 0;
  };
}

}  // namespace cortex::cli
