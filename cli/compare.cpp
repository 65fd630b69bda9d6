// cortex compare: two or more fits of the same subject side by side, on one page.
//
//   cortex compare fit_ridge/ fit_gaussian/ fit_core/ --out compare/ [--names ridge,gaussian,core]
//
// Each argument is an output folder of cortex fit (its metrics.json holds the per-voxel test r,
// the ROIs' columns and a fingerprint of the test responses). Fits of other voxels, hemispheres or
// test images are refused in one line. --out gets compare.html (per-voxel scatter of r for each pair,
// the flame plot: gain in r against the better model's r, mean r per ROI side by side with
// standard errors, and per ROI a paired t-test with a Wilcoxon signed-rank test beside it) and
// compare.json with the numbers; nothing is written when anything fails. The library call is
// analysis/compare.h; the page and the test are described in docs/encoding.md, "Comparing models".
#include <iostream>

#include "analysis/compare.h"
#include "cli/commands.h"

namespace cortex::cli {

Run add_compare(CLI::App& app) {
  auto* sub = app.add_subcommand("compare", "Compare fits of the same voxels: scatter, flame plot, ROI bars, paired tests");
  struct Opts {
    std::vector<std::string> fits;
    std::string names, out;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("fits", o->fits, "Output folders of cortex fit (two or more)")->required()->expected(2, 1 << 20);
  sub->add_option("--names", o->names, "Comma-separated model names, one per fit (default: the folders' names)");
  sub->add_option("--out", o->out, "Output folder: compare.html and compare.json")->required();
  return [o] {
    const analysis::Comparison c = analysis::compare(o->fits, split_commas(o->names, true), o->out);
    std::cout << c.summary << "compare: " << o->out << "/compare.html and compare.json written\n";
    return 0;
  };
}

}  // namespace cortex::cli
