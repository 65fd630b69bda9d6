// cortex compare (analysis/compare.h): Student's t p-values against closed forms (df 1, 2, 3) and
// table quantiles, the paired t-test and the Wilcoxon signed-rank test against values worked by
// hand (exact and tie-corrected normal), and the library call on synthetic fit folders: the
// numbers in compare.json, the page's plots, refusal of fits of other data with nothing written.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>

#include <unistd.h>

#include "analysis/compare.h"
#include "analysis/scores.h"
#include "tests/test_util.h"

using namespace cortex;
using namespace cortex::analysis;
namespace fs = std::filesystem;

namespace {

constexpr double kPi = std::numbers::pi;

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// A fit output folder as cortex fit writes it (the keys compare reads).
void write_fit(const fs::path& dir, const std::vector<double>& r, const std::string& fingerprint = "00ff",
               const std::string& hemi = "both", bool with_r = true) {
  fs::create_directories(dir);
  nlohmann::json j = {{"readout", "ridge"}, {"data", "sim/subj01"}, {"hemi", hemi}, {"images", 30},
                      {"voxels", r.size()}, {"responses_fingerprint", fingerprint}};
  if (with_r) {
    j["r"] = nlohmann::json::array();
    for (double x : r) j["r"].push_back(json_number(x));
  }
  std::vector<int64_t> v1, v2;
  for (int64_t i = 0; i < static_cast<int64_t>(r.size()); ++i) (i % 2 ? v2 : v1).push_back(i);
  j["roi_columns"] = {{"V1", v1}, {"V2", v2}};
  std::ofstream(dir / "metrics.json") << j.dump();
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("test_compare." + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

}  // namespace

TEST(CompareStats, StudentTMatchesClosedForms) {
  for (double t : {0.0, 0.3, 1.0, 2.5, -4.0, 12.0}) {
    const double a = std::abs(t);
    EXPECT_NEAR(student_t_p(t, 1), 1 - 2 / kPi * std::atan(a), 1e-12) << t;           // Cauchy
    EXPECT_NEAR(student_t_p(t, 2), 1 - a / std::sqrt(2 + t * t), 1e-12) << t;
    const double th = std::atan(a / std::sqrt(3.0));
    EXPECT_NEAR(student_t_p(t, 3), 1 - 2 / kPi * (th + std::sin(th) * std::cos(th)), 1e-12) << t;
  }
  // Table quantiles t_{0.975, df}: two-sided p = 0.05.
  EXPECT_NEAR(student_t_p(2.2281388519649385, 10), 0.05, 1e-9);
  EXPECT_NEAR(student_t_p(2.0422724563012373, 30), 0.05, 1e-9);
  EXPECT_NEAR(student_t_p(1.959963984540054, 1e7), 0.05, 1e-6);  // -> the normal's
  EXPECT_NEAR(student_t_p(-2.2281388519649385, 10), 0.05, 1e-9);
  EXPECT_EQ(student_t_p(INFINITY, 5), 0.0);
  EXPECT_TRUE(std::isnan(student_t_p(NAN, 5)));
  // I_x(a, 1) = x^a and I_x(1, b) = 1 - (1 - x)^b.
  for (double x : {0.0, 0.05, 0.4, 0.93, 1.0}) {
    EXPECT_NEAR(incomplete_beta(x, 3.5, 1), std::pow(x, 3.5), 1e-13);
    EXPECT_NEAR(incomplete_beta(x, 1, 7.25), 1 - std::pow(1 - x, 7.25), 1e-13);
  }
  EXPECT_CORTEX_ERROR(incomplete_beta(1.5, 1, 1), "incomplete_beta: expected x in [0, 1], found 1.5");
  EXPECT_CORTEX_ERROR(student_t_p(1, 0), "student_t_p: expected df > 0, found 0");
}

TEST(CompareStats, PairedTByHand) {
  // d = b - a = 0.01, 0.02, 0.03, 0.04: mean 0.025, sd sqrt(5e-4 / 3), t = sqrt(15), df 3; a NaN
  // pair is left out. p from the closed form for df 3 at theta = atan(sqrt 5).
  const std::vector<double> a = {0.1, 0.5, NAN, 0.3, 0.2}, b = {0.11, 0.52, 0.9, 0.33, 0.24};
  const PairedT t = paired_t_test(a, b);
  EXPECT_EQ(t.n, 4);
  EXPECT_EQ(t.df, 3);
  EXPECT_NEAR(t.mean_a, 0.275, 1e-15);
  EXPECT_NEAR(t.mean_b, 0.3, 1e-15);
  EXPECT_NEAR(t.mean_diff, 0.025, 1e-15);
  EXPECT_NEAR(t.se_diff, std::sqrt(5e-4 / 3 / 4), 1e-15);
  EXPECT_NEAR(t.t, std::sqrt(15.0), 1e-12);
  EXPECT_NEAR(t.p, 0.030466291662170963, 1e-12);
  // Swapping the models flips the sign, not the p-value.
  const PairedT s = paired_t_test(b, a);
  EXPECT_NEAR(s.t, -t.t, 1e-12);
  EXPECT_NEAR(s.p, t.p, 1e-14);
  // Identical models: no evidence either way; one pair: no test.
  EXPECT_EQ(paired_t_test(a, a).p, 1.0);
  EXPECT_TRUE(std::isnan(paired_t_test({0.1}, {0.2}).p));
  EXPECT_CORTEX_ERROR(paired_t_test({0.1}, {0.2, 0.3}), "compare: paired values of different lengths, 1 and 2");
}

TEST(CompareStats, WilcoxonByHand) {
  // All four differences positive: W+ = 10, exact two-sided p = 2 / 2^4.
  SignedRank w = wilcoxon_signed_rank({0, 0, 0, 0}, {1, 2, 3, 4});
  EXPECT_EQ(w.n, 4);
  EXPECT_EQ(w.w_plus, 10);
  EXPECT_EQ(w.w_minus, 0);
  EXPECT_TRUE(w.exact);
  EXPECT_DOUBLE_EQ(w.p, 0.125);
  // d = 1, -2, 3, 4, 5 (and a zero difference, dropped): W- = 2; subsets of 1..5 summing to <= 2:
  // {}, {1}, {2}, so p = 2 * 3 / 32.
  w = wilcoxon_signed_rank({0, 0, 0, 0, 0, 7}, {1, -2, 3, 4, 5, 7});
  EXPECT_EQ(w.n, 5);
  EXPECT_EQ(w.w_plus, 13);
  EXPECT_EQ(w.w_minus, 2);
  EXPECT_DOUBLE_EQ(w.p, 0.1875);
  // Ties: |d| = 1, 1, 2, 3, 3, 3 get ranks 1.5, 1.5, 3, 5, 5, 5; W+ = 18 (d = -2 negative). Normal
  // approximation: mean 6*7/4 = 10.5, variance 6*7*13/24 - ((2^3-2) + (3^3-3))/48 = 22.125.
  w = wilcoxon_signed_rank({0, 0, 0, 0, 0, 0}, {1, -1, -2, 3, 3, 3});
  EXPECT_EQ(w.w_plus, 1.5 + 15);
  EXPECT_EQ(w.w_minus, 1.5 + 3);
  EXPECT_FALSE(w.exact);
  EXPECT_NEAR(w.z, (16.5 - 10.5) / std::sqrt(22.125), 1e-12);
  w = wilcoxon_signed_rank({0, 0, 0, 0, 0, 0}, {1, 1, -2, 3, 3, 3});
  EXPECT_EQ(w.w_plus, 18);
  EXPECT_NEAR(w.z, 7.5 / std::sqrt(22.125), 1e-12);
  EXPECT_NEAR(w.p, 0.11082811686279109, 1e-12);
  // No non-zero difference: no evidence either way.
  EXPECT_EQ(wilcoxon_signed_rank({1, 2}, {1, 2}).p, 1.0);
  // At n = 50 without ties the exact p and the normal approximation agree closely.
  std::vector<double> a(50, 0.0), b(50);
  for (int i = 0; i < 50; ++i) b[i] = (i % 3 == 0 ? -1 : 1) * (i + 1) * 0.01;
  w = wilcoxon_signed_rank(a, b);
  EXPECT_TRUE(w.exact);
  EXPECT_NEAR(w.p, std::erfc(std::abs(w.z) / std::sqrt(2.0)), 0.01);
  EXPECT_GT(w.p, 0.0);
  EXPECT_LT(w.p, 1.0);
}

TEST(Compare, SyntheticFitFolders) {
  TempDir tmp;
  const int64_t V = 40;
  std::vector<double> ra(V), rb(V), rc(V);
  for (int64_t v = 0; v < V; ++v) {
    ra[v] = 0.2 + 0.01 * static_cast<double>(v % 7);
    rb[v] = ra[v] + (v % 2 ? 0.05 : 0.0) + 0.001 * static_cast<double>(v % 5);  // better on V2 (odd voxels)
    rc[v] = ra[v] - 0.02;
  }
  ra[3] = NAN;  // a voxel without r: left out of every pair with a
  write_fit(tmp.path / "ridge", ra);
  write_fit(tmp.path / "gauss", rb);
  write_fit(tmp.path / "core", rc);
  const fs::path out = tmp.path / "sub" / "cmp";
  const Comparison c = compare({(tmp.path / "ridge/").string(), (tmp.path / "gauss").string(),
                                (tmp.path / "core").string()}, {}, out.string());
  ASSERT_TRUE(fs::exists(out / "compare.html"));
  ASSERT_TRUE(fs::exists(out / "compare.json"));
  EXPECT_EQ(std::distance(fs::directory_iterator(out.parent_path()), fs::directory_iterator()), 1);  // no temp left
  const nlohmann::json j = nlohmann::json::parse(slurp(out / "compare.json"));
  EXPECT_EQ(j, c.json);
  EXPECT_EQ(j["voxels"], V);
  ASSERT_EQ(j["models"].size(), 3u);
  EXPECT_EQ(j["models"][0]["name"], "ridge");  // the folder's name, trailing slash or not
  EXPECT_EQ(j["models"][0]["voxels"], V - 1);
  ASSERT_EQ(j["pairs"].size(), 3u);  // ridge-gauss, ridge-core, gauss-core
  EXPECT_EQ(j["pairs"][0]["a"], "ridge");
  EXPECT_EQ(j["pairs"][0]["b"], "gauss");
  EXPECT_EQ(j["pairs"][2]["a"], "gauss");
  EXPECT_EQ(j["pairs"][2]["b"], "core");
  // Each number against a direct computation on the same voxels.
  for (const std::string roi : {"V1", "V2"}) {
    std::vector<double> a, b, d;
    for (int64_t v = (roi == "V1" ? 0 : 1); v < V; v += 2)
      if (std::isfinite(ra[v])) a.push_back(ra[v]), b.push_back(rb[v]), d.push_back(rb[v] - ra[v]);
    const nlohmann::json& s = j["pairs"][0]["rois"][roi];
    const PairedT t = paired_t_test(a, b);
    EXPECT_EQ(s["voxels"], static_cast<int64_t>(a.size()));
    double mean = 0;
    for (double x : d) mean += x / static_cast<double>(d.size());
    EXPECT_NEAR(s["mean_diff"].get<double>(), mean, 1e-14);
    EXPECT_NEAR(s["t"].get<double>(), t.t, 1e-12);
    EXPECT_NEAR(s["p"].get<double>(), t.p, 1e-14);
    EXPECT_EQ(s["wilcoxon"]["w_plus"].get<double>(), wilcoxon_signed_rank(a, b).w_plus);
    // gauss = ridge on the V1 voxels with v % 5 == 0 (0, 10, 20, 30), above it everywhere else.
    EXPECT_EQ(s["b_better"], roi == "V1" ? 16 : 19);
    EXPECT_EQ(s["wilcoxon"]["voxels"], roi == "V1" ? 16 : 19);
  }
  EXPECT_LT(j["pairs"][0]["rois"]["V2"]["p"].get<double>(), 1e-6);   // +0.05 on every V2 voxel
  EXPECT_NEAR(j["pairs"][1]["all"]["mean_diff"].get<double>(), -0.02, 1e-12);  // core = ridge - 0.02
  // Standard error of the mean per ROI: sd / sqrt(n).
  {
    std::vector<double> v2;
    for (int64_t v = 1; v < V; v += 2) v2.push_back(rc[v]);
    double m = 0, ss = 0;
    for (double x : v2) m += x / static_cast<double>(v2.size());
    for (double x : v2) ss += (x - m) * (x - m);
    const nlohmann::json& s = j["models"][2]["rois"]["V2"];
    EXPECT_NEAR(s["mean_r"].get<double>(), m, 1e-14);
    EXPECT_NEAR(s["se_r"].get<double>(), std::sqrt(ss / (v2.size() - 1) / v2.size()), 1e-14);
  }
  const std::string html = slurp(out / "compare.html");
  EXPECT_EQ(count(html, "<svg"), 3 * 2 + 1);  // scatter and flame per pair, the ROI bars
  EXPECT_EQ(count(html, "flame plot"), 3);
  EXPECT_EQ(count(html, "<table border='1'>"), 3);
  EXPECT_EQ(count(html, "<script"), 0);
  EXPECT_NE(c.summary.find("gauss − ridge: mean gain in r +0.0"), std::string::npos) << c.summary;

  // Existing --out: the files are replaced; --names renames the models.
  compare({(tmp.path / "ridge").string(), (tmp.path / "gauss").string()}, {"A", "B"}, out.string());
  EXPECT_EQ(nlohmann::json::parse(slurp(out / "compare.json"))["pairs"][0]["b"], "B");
}

TEST(Compare, RefusesFitsOfOtherDataAndWritesNothing) {
  TempDir tmp;
  const std::vector<double> r(10, 0.3), r9(9, 0.3);
  write_fit(tmp.path / "a", r);
  write_fit(tmp.path / "b", r, "11aa");
  write_fit(tmp.path / "c", r9);
  write_fit(tmp.path / "d", r, "00ff", "lh");
  write_fit(tmp.path / "e", r, "00ff", "both", false);
  const fs::path out = tmp.path / "out";
  auto run = [&](const std::vector<std::string>& names, const std::vector<std::string>& labels = {}) {
    std::vector<std::string> dirs;
    for (const auto& n : names) dirs.push_back((tmp.path / n).string());
    compare(dirs, labels, out.string());
  };
  EXPECT_CORTEX_ERROR(run({"a", "b"}), "compare: b was scored on other test responses than a");
  EXPECT_CORTEX_ERROR(run({"a", "c"}), "compare: c has 9 voxels but a has 10: fits must be of the same subject");
  EXPECT_CORTEX_ERROR(run({"a", "d"}), "compare: d was fit on --hemi lh but a on both");
  EXPECT_CORTEX_ERROR(run({"a", "e"}), "/e/metrics.json has no per-voxel r");
  EXPECT_CORTEX_ERROR(run({"a", "nope"}), "is not an output folder of cortex fit (no metrics.json)");
  EXPECT_CORTEX_ERROR(run({"a"}), "compare: expected two or more fit folders, found 1");
  EXPECT_CORTEX_ERROR(run({"a", "a"}), "compare: two fits are named 'a' (give --names)");
  EXPECT_CORTEX_ERROR(run({"a", "a"}, {"x"}), "compare: 2 fit folders but 1 --names");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path), fs::directory_iterator()), 5);  // only the fits
  run({"a", "a"}, {"x", "y"});  // the same fit twice under two names: a valid, if dull, comparison
  EXPECT_EQ(nlohmann::json::parse(slurp(out / "compare.json"))["pairs"][0]["all"]["p"], 1.0);
}
