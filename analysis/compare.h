// cortex compare: two or more fits of the same subject, voxels and test images, side by side
// (docs/encoding.md, "Comparing models"). It reads what cortex fit writes into its output folder
// (metrics.json: per-voxel r, roi_columns, responses_fingerprint; analysis/fit_report.h) and writes
// one page, compare.html (per-voxel scatter of r for each pair of models; the flame plot of
// BOLDreams: r_B - r_A against max(r_A, r_B); mean r per ROI side by side with standard errors; a
// paired test per ROI), and compare.json with the numbers.
//
// The test: a two-sided paired t-test on per-voxel r (t = mean(d) / (sd(d) / sqrt(n)), d = r_B -
// r_A, n - 1 degrees of freedom), with the Wilcoxon signed-rank test beside it as a check that
// does not assume normal differences. Voxels are not independent samples (neighbours share noise
// and signal), so the p-values are optimistic: read them as a ranking of evidence, not as
// calibrated error rates.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/report.h"

namespace cortex::analysis {

// Regularized incomplete beta I_x(a, b) (continued fraction, Numerical Recipes' betacf); x in [0, 1].
double incomplete_beta(double x, double a, double b);
// Two-sided p-value of Student's t statistic with df > 0 degrees of freedom: I_{df/(df+t²)}(df/2, 1/2).
double student_t_p(double t, double df);

// Paired t-test on b - a over the pairs where both are finite.
struct PairedT {
  int64_t n = 0;                       // pairs used
  double mean_a = NAN, mean_b = NAN;   // over those pairs
  double mean_diff = NAN, se_diff = NAN, t = NAN, p = NAN;
  int64_t df = 0;                      // n - 1
};
PairedT paired_t_test(const std::vector<double>& a, const std::vector<double>& b);

// Wilcoxon signed-rank test on b - a over the pairs where both are finite. Zero differences are
// dropped (Wilcoxon's method, scipy's default), tied |d| get their average rank. Two-sided p: exact
// (the distribution of W+ by counting subsets of ranks) when n <= 50 with no ties, else the normal
// approximation with the tie correction of the variance and no continuity correction.
struct SignedRank {
  int64_t n = 0;                       // non-zero differences
  double w_plus = 0, w_minus = 0;      // rank sums of positive and negative differences
  double z = NAN, p = NAN;             // z: of W+ under the normal approximation (also given when exact)
  bool exact = false;
};
SignedRank wilcoxon_signed_rank(const std::vector<double>& a, const std::vector<double>& b);

// What compare reads of one fit's output folder.
struct FitRecord {
  std::string dir, name, readout, data, hemi, fingerprint;
  int64_t images = 0;
  std::vector<double> r;                                // per voxel; NaN where metrics.json has null
  std::map<std::string, std::vector<int64_t>> rois;     // ROI name -> voxel columns
};
// Reads dir/metrics.json; `name` names the model on the page (empty: the folder's name). Refuses a
// folder without metrics.json or one whose metrics.json lacks the per-voxel r (a fit whose test
// split had no responses, or one written before compare existed), in one line.
FitRecord read_fit(const std::string& dir, const std::string& name = "");

// The comparison of fits of one subject: refuses (one line) fewer than two, duplicate names, or
// fits of different voxels, hemispheres or test responses. json: the numbers; page: the report.
struct Comparison {
  nlohmann::json json;
  ReportData page;
  std::string summary;  // one line per pair, for the terminal
};
Comparison compare_fits(const std::vector<FitRecord>& fits);

// cortex compare: read_fit on each folder (names: empty, or one per folder), compare_fits, and
// write out/compare.html and out/compare.json. Nothing is written before everything is computed;
// a new `out` is filled as a temporary sibling folder and renamed into place, an existing one gets
// each file through a temporary file and a rename.
Comparison compare(const std::vector<std::string>& dirs, const std::vector<std::string>& names, const std::string& out);

}  // namespace cortex::analysis
