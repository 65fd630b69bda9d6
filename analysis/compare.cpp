#include "analysis/compare.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "analysis/scores.h"
#include "tensor/error.h"
#include "tensor/io/atomic_file.h"

namespace cortex::analysis {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Numerical Recipes' continued fraction for the incomplete beta (modified Lentz).
double beta_cf(double a, double b, double x) {
  constexpr int kMaxIt = 500;
  constexpr double kEps = 1e-16, kTiny = 1e-300;
  const double qab = a + b, qap = a + 1, qam = a - 1;
  double c = 1, d = 1 - qab * x / qap;
  if (std::abs(d) < kTiny) d = kTiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= kMaxIt; ++m) {
    const int m2 = 2 * m;
    double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (std::abs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (std::abs(d) < kTiny) d = kTiny;
    c = 1 + aa / c;
    if (std::abs(c) < kTiny) c = kTiny;
    d = 1 / d;
    const double del = d * c;
    h *= del;
    if (std::abs(del - 1) < kEps) break;
  }
  return h;
}

// The pairs (a[i], b[i]) where both are finite, restricted to `cols` (empty: every voxel).
void finite_pairs(const std::vector<double>& a, const std::vector<double>& b, std::vector<double>& fa,
                  std::vector<double>& fb) {
  CORTEX_CHECK(a.size() == b.size(), "compare: paired values of different lengths, ", a.size(), " and ", b.size());
  for (size_t i = 0; i < a.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i])) fa.push_back(a[i]), fb.push_back(b[i]);
}

struct MeanSe {
  double mean = NAN, se = NAN;
  int64_t n = 0;
};
MeanSe mean_se(const std::vector<double>& v) {
  MeanSe m;
  double s = 0;
  for (double x : v)
    if (std::isfinite(x)) s += x, ++m.n;
  if (m.n == 0) return m;
  m.mean = s / static_cast<double>(m.n);
  if (m.n < 2) return m;
  double ss = 0;
  for (double x : v)
    if (std::isfinite(x)) ss += (x - m.mean) * (x - m.mean);
  m.se = std::sqrt(ss / static_cast<double>(m.n - 1) / static_cast<double>(m.n));
  return m;
}

std::string fmt(const char* f, double v) {
  if (!std::isfinite(v)) return "-";
  char b[48];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::vector<double> pick(const std::vector<double>& v, const std::vector<int64_t>& cols) {
  std::vector<double> o;
  o.reserve(cols.size());
  for (int64_t c : cols) o.push_back(v[static_cast<size_t>(c)]);
  return o;
}

json test_json(const PairedT& t, const SignedRank& w, int64_t b_better) {
  return {{"voxels", t.n},
          {"mean_r_a", json_number(t.mean_a)},
          {"mean_r_b", json_number(t.mean_b)},
          {"mean_diff", json_number(t.mean_diff)},
          {"se_diff", json_number(t.se_diff)},
          {"t", json_number(t.t)},
          {"df", t.df},
          {"p", json_number(t.p)},
          {"b_better", b_better},
          {"wilcoxon", {{"voxels", w.n}, {"w_plus", w.w_plus}, {"w_minus", w.w_minus}, {"z", json_number(w.z)},
                        {"p", json_number(w.p)}, {"exact", w.exact}}}};
}

std::string folder_name(const std::string& dir) {
  fs::path p = fs::path(dir).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

double incomplete_beta(double x, double a, double b) {
  CORTEX_CHECK(a > 0 && b > 0, "incomplete_beta: expected a > 0 and b > 0, found a = ", a, ", b = ", b);
  CORTEX_CHECK(x >= 0 && x <= 1, "incomplete_beta: expected x in [0, 1], found ", x);
  if (x == 0 || x == 1) return x;
  const double bt = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  // The fraction converges fast on this side of the mean; the other side by symmetry.
  if (x < (a + 1) / (a + b + 2)) return bt * beta_cf(a, b, x) / a;
  return 1 - bt * beta_cf(b, a, 1 - x) / b;
}

double student_t_p(double t, double df) {
  CORTEX_CHECK(df > 0, "student_t_p: expected df > 0, found ", df);
  if (std::isnan(t)) return NAN;
  if (std::isinf(t)) return 0;
  return std::min(1.0, incomplete_beta(df / (df + t * t), df / 2, 0.5));
}

PairedT paired_t_test(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> fa, fb;
  finite_pairs(a, b, fa, fb);
  PairedT r;
  r.n = static_cast<int64_t>(fa.size());
  if (r.n == 0) return r;
  std::vector<double> d(fa.size());
  for (size_t i = 0; i < d.size(); ++i) d[i] = fb[i] - fa[i];
  r.mean_a = mean_se(fa).mean;
  r.mean_b = mean_se(fb).mean;
  const MeanSe m = mean_se(d);
  r.mean_diff = m.mean, r.se_diff = m.se;
  if (r.n < 2) return r;
  r.df = r.n - 1;
  if (m.se == 0) {
    // Every difference equal: no spread to test against (identical models: no evidence either way).
    r.t = m.mean == 0 ? 0.0 : std::copysign(INFINITY, m.mean);
    r.p = m.mean == 0 ? 1.0 : 0.0;
    return r;
  }
  r.t = m.mean / m.se;
  r.p = student_t_p(r.t, static_cast<double>(r.df));
  return r;
}

SignedRank wilcoxon_signed_rank(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> fa, fb, d;
  finite_pairs(a, b, fa, fb);
  for (size_t i = 0; i < fa.size(); ++i)
    if (fb[i] != fa[i]) d.push_back(fb[i] - fa[i]);
  SignedRank r;
  r.n = static_cast<int64_t>(d.size());
  if (r.n == 0) {  // no non-zero difference: no evidence either way
    r.z = 0, r.p = 1;
    return r;
  }
  std::vector<size_t> idx(d.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](size_t i, size_t j) { return std::abs(d[i]) < std::abs(d[j]); });
  double tie_term = 0;  // sum over tie groups of t^3 - t
  bool ties = false;
  for (size_t s = 0; s < idx.size();) {
    size_t e = s + 1;
    while (e < idx.size() && std::abs(d[idx[e]]) == std::abs(d[idx[s]])) ++e;
    const double rank = (static_cast<double>(s + 1) + static_cast<double>(e)) / 2;  // average of s+1 .. e
    const double t = static_cast<double>(e - s);
    if (e - s > 1) ties = true, tie_term += t * t * t - t;
    for (size_t k = s; k < e; ++k) (d[idx[k]] > 0 ? r.w_plus : r.w_minus) += rank;
    s = e;
  }
  const double n = static_cast<double>(r.n);
  const double mean = n * (n + 1) / 4, var = n * (n + 1) * (2 * n + 1) / 24 - tie_term / 48;
  r.z = (r.w_plus - mean) / std::sqrt(var);
  if (r.n <= 50 && !ties) {
    // Exact: under H0 each rank's sign is a fair coin; count the subsets of 1..n by their sum.
    const int64_t top = r.n * (r.n + 1) / 2;
    std::vector<double> count(static_cast<size_t>(top + 1), 0.0);
    count[0] = 1;
    for (int64_t k = 1; k <= r.n; ++k)
      for (int64_t s = top; s >= k; --s) count[static_cast<size_t>(s)] += count[static_cast<size_t>(s - k)];
    const auto w = static_cast<int64_t>(std::min(r.w_plus, r.w_minus));
    double tail = 0;
    for (int64_t s = 0; s <= w; ++s) tail += count[static_cast<size_t>(s)];
    r.p = std::min(1.0, 2 * tail / std::ldexp(1.0, static_cast<int>(r.n)));
    r.exact = true;
  } else {
    r.p = std::min(1.0, std::erfc(std::abs(r.z) / std::sqrt(2.0)));
  }
  return r;
}

FitRecord read_fit(const std::string& dir, const std::string& name) {
  const fs::path mp = fs::path(dir) / "metrics.json";
  CORTEX_CHECK(fs::is_regular_file(mp), "compare: ", dir, " is not an output folder of cortex fit (no metrics.json)");
  std::ifstream f(mp);
  json j;
  try {
    j = json::parse(f);
  } catch (const std::exception& e) {
    CORTEX_CHECK(false, "compare: ", mp.string(), " is not valid JSON: ", e.what());
  }
  CORTEX_CHECK(j.contains("r") && j["r"].is_array() && j.contains("responses_fingerprint"), "compare: ", mp.string(),
               " has no per-voxel r (its fit had no test responses, or an older cortex fit wrote it: fit again)");
  FitRecord r;
  r.dir = dir;
  r.name = name.empty() ? folder_name(dir) : name;
  r.readout = j.value("readout", "");
  r.data = j.value("data", "");
  r.hemi = j.value("hemi", "");
  r.fingerprint = j["responses_fingerprint"].get<std::string>();
  r.images = j.value("images", int64_t{0});
  for (const auto& v : j["r"]) r.r.push_back(v.is_number() ? v.get<double>() : NAN);
  if (j.contains("roi_columns")) r.rois = j["roi_columns"].get<std::map<std::string, std::vector<int64_t>>>();
  for (const auto& [roi, cols] : r.rois)
    for (int64_t c : cols)
      CORTEX_CHECK(c >= 0 && c < static_cast<int64_t>(r.r.size()), "compare: ", mp.string(), ": ROI '", roi,
                   "' names voxel ", c, " of ", r.r.size());
  return r;
}

Comparison compare_fits(const std::vector<FitRecord>& fits) {
  CORTEX_CHECK(fits.size() >= 2, "compare: expected two or more fits, found ", fits.size());
  std::set<std::string> names;
  for (const auto& f : fits)
    CORTEX_CHECK(names.insert(f.name).second, "compare: two fits are named '", f.name, "' (give --names)");
  const FitRecord& a0 = fits[0];
  for (const auto& f : fits) {
    CORTEX_CHECK(f.r.size() == a0.r.size(), "compare: ", f.name, " has ", f.r.size(), " voxels but ", a0.name, " has ",
                 a0.r.size(), ": fits must be of the same subject and voxels");
    CORTEX_CHECK(f.hemi == a0.hemi, "compare: ", f.name, " was fit on --hemi ", f.hemi, " but ", a0.name, " on ",
                 a0.hemi, ": fits must be of the same subject and voxels");
    CORTEX_CHECK(f.fingerprint == a0.fingerprint && f.images == a0.images && f.rois == a0.rois, "compare: ", f.name,
                 " was scored on other test responses than ", a0.name, " (data ", f.data, " vs ", a0.data,
                 "): fits must be of the same subject, voxels and test images");
  }
  const size_t V = a0.r.size(), M = fits.size();
  Comparison c;
  json& j = c.json;
  ReportData& page = c.page;
  j["data"] = a0.data;
  j["hemi"] = a0.hemi;
  j["images"] = a0.images;
  j["voxels"] = static_cast<int64_t>(V);
  j["test"] = "paired t-test on per-voxel r (two-sided), Wilcoxon signed-rank test beside it";
  page.title = "cortex compare:";
  for (size_t m = 0; m < M; ++m) page.title += (m ? ", " : " ") + fits[m].name;
  page.summary.push_back({"data", a0.data + " (--hemi " + a0.hemi + ")"});
  page.summary.push_back({"test images, voxels", std::to_string(a0.images) + ", " + std::to_string(V)});

  // Groups of voxels: all, then each ROI (by name).
  std::vector<std::pair<std::string, std::vector<int64_t>>> groups;
  groups.push_back({"all voxels", std::vector<int64_t>(V)});
  std::iota(groups[0].second.begin(), groups[0].second.end(), 0);
  for (const auto& [roi, cols] : a0.rois) groups.push_back({roi, cols});

  std::vector<std::string> series, labels;
  std::vector<std::vector<double>> height(M), error(M);
  for (const auto& g : groups) labels.push_back(g.first);
  for (size_t m = 0; m < M; ++m) {
    const FitRecord& f = fits[m];
    series.push_back(f.name);
    json mj = {{"name", f.name}, {"dir", f.dir}, {"readout", f.readout}};
    for (size_t g = 0; g < groups.size(); ++g) {
      const MeanSe s = mean_se(pick(f.r, groups[g].second));
      height[m].push_back(s.mean);
      error[m].push_back(s.se);
      const json sj = {{"voxels", s.n}, {"mean_r", json_number(s.mean)}, {"se_r", json_number(s.se)}};
      if (g == 0) mj.update(sj);
      else mj["rois"][groups[g].first] = sj;
    }
    j["models"].push_back(mj);
    page.summary.push_back({"mean r ± SE: " + f.name + (f.readout.empty() || f.readout == f.name ? "" : " (" + f.readout + ")"),
                            fmt("%.3f", height[m][0]) + " ± " + fmt("%.3f", error[m][0])});
  }
  page.summary.push_back({"test", "paired t-test on per-voxel r, two-sided (Wilcoxon signed-rank beside it); voxels "
                                  "are not independent, so p-values are optimistic"});

  double lo = -0.2;
  for (const auto& f : fits)
    for (double x : f.r)
      if (std::isfinite(x)) lo = std::min(lo, x);
  j["pairs"] = json::array();
  for (size_t ia = 0; ia < M; ++ia)
    for (size_t ib = ia + 1; ib < M; ++ib) {
      const FitRecord &A = fits[ia], &B = fits[ib];
      const std::string ab = B.name + " − " + A.name;
      json pj = {{"a", A.name}, {"b", B.name}};
      Table t{ab + ": gain in r per ROI",
              {"ROI", "voxels", "mean r " + A.name, "mean r " + B.name, "mean gain", "SE", "t (df)", "p (t)",
               "W+", "p (Wilcoxon)", B.name + " better"},
              {}};
      for (size_t g = 0; g < groups.size(); ++g) {
        const std::vector<double> ra = pick(A.r, groups[g].second), rb = pick(B.r, groups[g].second);
        const PairedT pt = paired_t_test(ra, rb);
        const SignedRank w = wilcoxon_signed_rank(ra, rb);
        int64_t better = 0;
        for (size_t i = 0; i < ra.size(); ++i) better += std::isfinite(ra[i]) && std::isfinite(rb[i]) && rb[i] > ra[i];
        const json tj = test_json(pt, w, better);
        if (g == 0) pj["all"] = tj;
        else pj["rois"][groups[g].first] = tj;
        t.rows.push_back({groups[g].first, std::to_string(pt.n), fmt("%.3f", pt.mean_a), fmt("%.3f", pt.mean_b),
                          fmt("%+.4f", pt.mean_diff), fmt("%.4f", pt.se_diff),
                          fmt("%.2f", pt.t) + " (" + std::to_string(pt.df) + ")", fmt("%.3g", pt.p),
                          fmt("%.1f", w.w_plus), fmt("%.3g", w.p) + (w.exact ? " (exact)" : ""),
                          std::to_string(better)});
        if (g == 0)
          c.summary += "compare: " + ab + ": mean gain in r " + fmt("%+.4f", pt.mean_diff) + " ± " +
                       fmt("%.4f", pt.se_diff) + ", t(" + std::to_string(pt.df) + ") = " + fmt("%.2f", pt.t) +
                       ", p = " + fmt("%.3g", pt.p) + "; better on " + std::to_string(better) + " of " +
                       std::to_string(pt.n) + " voxels\n";
      }
      j["pairs"].push_back(pj);
      page.tables.push_back(std::move(t));

      ScatterPlot sc;
      sc.x = A.r, sc.y = B.r;
      sc.xlo = sc.ylo = lo, sc.xhi = sc.yhi = 1;
      sc.xlabel = "r " + A.name, sc.ylabel = "r " + B.name;
      sc.lines = {{lo, lo, 1, 1}};
      page.figures.push_back({svg_scatter(sc), "r per voxel: " + B.name + " against " + A.name +
                                                   "; above the dashed diagonal " + B.name + " is better"});
      ScatterPlot fl;
      double span = 0.1;
      for (size_t v = 0; v < V; ++v) {
        const double d = B.r[v] - A.r[v];
        fl.x.push_back(std::max(A.r[v], B.r[v]));
        fl.y.push_back(d);
        fl.group.push_back(d > 0 ? 1 : 0);
        if (std::isfinite(d)) span = std::max(span, std::abs(d));
      }
      fl.xlo = lo, fl.xhi = 1, fl.ylo = -span * 1.05, fl.yhi = span * 1.05;
      fl.xlabel = "max(r " + A.name + ", r " + B.name + ")", fl.ylabel = "gain in r, " + ab;
      fl.lines = {{lo, 0, 1, 0}};
      page.figures.push_back({svg_scatter(fl), "flame plot (BOLDreams): gain in r of " + B.name + " over " + A.name +
                                                   " against the better model's r; red: " + B.name + " better, blue: " +
                                                   A.name + " better"});
    }
  page.figures.push_back({svg_grouped_bars(labels, series, height, error, "mean r"),
                          "mean r per ROI, models side by side; error bars: ± one standard error over voxels"});
  return c;
}

Comparison compare(const std::vector<std::string>& dirs, const std::vector<std::string>& names, const std::string& out) {
  CORTEX_CHECK(dirs.size() >= 2, "compare: expected two or more fit folders, found ", dirs.size());
  CORTEX_CHECK(names.empty() || names.size() == dirs.size(), "compare: ", dirs.size(), " fit folders but ",
               names.size(), " --names");
  CORTEX_CHECK(!out.empty(), "compare: expected an --out folder, found an empty path");
  for (const auto& n : names) CORTEX_CHECK(!n.empty(), "compare: --names has an empty name");
  std::vector<FitRecord> fits;
  for (size_t i = 0; i < dirs.size(); ++i) fits.push_back(read_fit(dirs[i], names.empty() ? "" : names[i]));
  Comparison c = compare_fits(fits);
  // Everything is computed before the first byte is written.
  const std::string html = render_report(c.page), js = c.json.dump(1);
  const fs::path target(out);
  if (fs::exists(target)) {
    CORTEX_CHECK(fs::is_directory(target), "compare: --out ", out, " exists and is not a folder");
    io::write_file_atomic((target / "compare.json").string(), js.data(), js.size());
    io::write_file_atomic((target / "compare.html").string(), html.data(), html.size());
    return c;
  }
  const fs::path parent = target.lexically_normal().parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  const fs::path tmp = fs::path(target.lexically_normal().string() + ".tmp." + std::to_string(::getpid()));
  try {
    fs::create_directories(tmp);
    io::write_file_atomic((tmp / "compare.json").string(), js.data(), js.size());
    io::write_file_atomic((tmp / "compare.html").string(), html.data(), html.size());
    fs::rename(tmp, target);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return c;
}

}  // namespace cortex::analysis
