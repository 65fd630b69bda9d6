// cortex prune-sweep (analysis/prune_sweep.h). Each fraction is an ordinary cortex fit into its own
// folder, so every fit of the sweep can be predicted with, compared and re-read like any other.
#include "analysis/prune_sweep.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "analysis/fit_report.h"
#include "analysis/report.h"
#include "tensor/error.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/safetensors.h"

namespace fs = std::filesystem;

namespace cortex::analysis {
namespace {

// What makes two sweeps the same sweep: every flag that changes a fit's result. (out, resume,
// cache and device do not: the cache holds the same features, the device only runs them.)
nlohmann::json settings_json(const encoding::EncodingSpec& o, const std::vector<double>& fractions) {
  return {{"data", o.data},         {"hemi", o.hemi},
          {"arch", o.arch},         {"config", o.config},
          {"weights", o.weights},   {"random_weights", o.random_weights},
          {"readout", o.readout},   {"tap", o.tap},
          {"finetune", o.finetune}, {"backbone_lr", o.backbone_lr},
          {"epochs", o.epochs},     {"lr", o.lr},
          {"l1", o.l1},             {"weight_decay", o.weight_decay},
          {"optim", o.optim},       {"loss", o.loss},
          {"val_fraction", o.val_fraction}, {"image_size", o.image_size},
          {"batch", o.batch},       {"seed", o.seed},
          {"dtype", o.dtype},       {"train_idx", o.train_idx},
          {"val_idx", o.val_idx},   {"test_idx", o.test_idx},
          {"test_fraction", o.test_fraction}, {"nc_units", o.nc_units},
          {"drop_nan", o.drop_nan}, {"init_from", o.init_from},
          {"freeze", o.freeze},     {"fractions", fractions}};
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  CORTEX_CHECK(f.good(), "prune-sweep: cannot read ", p.string());
  try {
    return nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw Error("prune-sweep: " + p.string() + " is not JSON (" + e.what() + ")");
  }
}

void write_text(const fs::path& p, const std::string& s) { io::write_file_atomic(p.string(), s.data(), s.size()); }

double number_or_nan(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
}

std::string fmt(double v, int digits = 4) {
  if (!std::isfinite(v)) return "nan";
  std::ostringstream s;
  s.precision(digits);
  s << v;
  return s.str();
}

}  // namespace

std::string fraction_name(double f) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, f);  // shortest round-trip form
  return std::string(buf, r.ptr);
}

nlohmann::json run_prune_sweep(const PruneSweepJob& job) {
  const encoding::EncodingSpec& base = job.fit;
  CORTEX_CHECK(base.readout == "fwrf", "prune-sweep: prunes the channels of --readout fwrf, found --readout ",
               base.readout);
  CORTEX_CHECK(base.keep == 1.0, "prune-sweep: --keep is what the sweep varies; give --fractions instead");
  CORTEX_CHECK(!base.out.empty(), "prune-sweep: --out names the sweep's folder, found none");
  CORTEX_CHECK(!job.fractions.empty(), "prune-sweep: --fractions lists the fractions of channels to keep, found none");
  std::vector<double> fr = job.fractions;
  for (double f : fr)
    CORTEX_CHECK(std::isfinite(f) && f > 0 && f <= 1, "prune-sweep: every fraction must be in (0, 1], found ", f);
  std::sort(fr.begin(), fr.end(), std::greater<>());
  CORTEX_CHECK(std::adjacent_find(fr.begin(), fr.end()) == fr.end(), "prune-sweep: --fractions repeats a value");
  encoding::check_opts(base);  // every flag error before the first fit

  const fs::path out(base.out);
  const bool created_here = !fs::exists(out);
  fs::create_directories(out);
  const nlohmann::json settings = settings_json(base, fr);
  const fs::path settings_path = out / "sweep-settings.json";
  if (fs::exists(settings_path)) {
    CORTEX_CHECK(read_json(settings_path) == settings, "prune-sweep: ", out.string(),
                 " holds a sweep with other settings (sweep-settings.json); use another --out");
  } else {
    write_text(settings_path, settings.dump(2) + "\n");
  }

  nlohmann::json rows = nlohmann::json::array();
  size_t done = 0;  // fractions with their outputs on disk
  try {
  for (size_t i = 0; i < fr.size(); ++i) {
    const std::string name = "keep-" + fraction_name(fr[i]);
    const fs::path dir = out / name;
    const fs::path metrics_path = dir / "metrics.json";
    std::cerr << "prune-sweep: [" << i + 1 << "/" << fr.size() << "] keep " << fraction_name(fr[i]) << " of the channels";
    if (fs::exists(metrics_path) && fs::exists(dir / "model.safetensors")) {
      std::cerr << ": done earlier, read back from " << dir.string() << "\n";
    } else {
      std::cerr << "\n";
      encoding::EncodingSpec o = base;
      o.keep = fr[i];
      o.out = dir.string();
      o.resume = fs::exists(dir / "checkpoint.safetensors");  // an interrupted fit continues
      const encoding::FitResult r = encoding::fit(o);
      write_fit_outputs(o, r);
    }
    const nlohmann::json m = read_json(metrics_path);
    nlohmann::json row = {{"fraction", fr[i]}, {"folder", name}, {"mean_r", number_or_nan(m, "mean_r")}};
    if (m.contains("r") && m["r"].is_array()) {
      std::vector<double> r;
      for (const auto& v : m["r"])
        if (v.is_number()) r.push_back(v.get<double>());
      if (!r.empty()) {
        std::nth_element(r.begin(), r.begin() + r.size() / 2, r.end());
        double med = r[r.size() / 2];
        if (r.size() % 2 == 0) med = 0.5 * (med + *std::max_element(r.begin(), r.begin() + r.size() / 2));
        row["median_r"] = med;
      }
    }
    // Channels kept per tap, read from the model file's keep buffers ("keep.<l>" frozen,
    // "readout.keep.<l>" fine-tuned; none: every channel).
    {
      const auto st = io::SafeTensors::open((dir / "model.safetensors").string());
      nlohmann::json kept = nlohmann::json::array();
      for (const char* prefix : {"keep.", "readout.keep."})
        for (size_t l = 0;; ++l) {
          const std::string key = prefix + std::to_string(l);
          if (!st.contains(key)) break;
          kept.push_back(st.info(key).shape.empty() ? 0 : st.info(key).shape[0]);
        }
      row["channels_kept"] = kept;
    }
    nlohmann::json rois = nlohmann::json::object();
    if (m.contains("rois") && m["rois"].is_object())
      for (const auto& [roi, s] : m["rois"].items()) rois[roi] = number_or_nan(s, "mean_r");
    row["rois"] = rois;
    rows.push_back(row);
    ++done;
  }
  } catch (...) {
    // A sweep that failed before any fit finished (a bad tap, unreadable data) leaves no folder.
    std::error_code ec;
    if (created_here && done == 0) fs::remove_all(out, ec);
    throw;
  }

  nlohmann::json sweep = {{"settings", settings}, {"fractions", rows}};
  write_text(out / "sweep.json", sweep.dump(2) + "\n");

  std::ostringstream csv;
  csv << "fraction,roi,mean_r\n";
  for (const auto& row : rows) {
    csv << fraction_name(row["fraction"].get<double>()) << ",all," << fmt(number_or_nan(row, "mean_r"), 6) << "\n";
    for (const auto& [roi, v] : row["rois"].items())
      csv << fraction_name(row["fraction"].get<double>()) << "," << roi << ","
          << fmt(v.is_number() ? v.get<double>() : std::nan(""), 6) << "\n";
  }
  write_text(out / "sweep.csv", csv.str());

  // The paper's figure: mean test r against the fraction of channels kept (log axis), one series per
  // ROI as well as every voxel.
  ReportData d;
  d.title = "Pruning sweep: fwRF on " + (base.arch.empty() ? base.config : base.arch) + " " + base.tap +
            (base.finetune ? " (fine-tuned)" : "");
  d.summary = {{"fractions", std::to_string(rows.size())}, {"readout", base.readout}, {"tap", base.tap}};
  ScatterPlot p;
  p.xlabel = "log10 fraction of channels kept";
  p.ylabel = "mean test r";
  double ylo = 0, yhi = 0.1;
  std::vector<std::string> series{"all"};
  for (const auto& [roi, v] : rows[0]["rois"].items()) series.push_back(roi);
  for (size_t s = 0; s < series.size(); ++s) {
    double px = 0, py = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      const nlohmann::json& row = rows[i];
      const double y = s == 0 ? number_or_nan(row, "mean_r")
                              : (row["rois"].contains(series[s]) && row["rois"][series[s]].is_number()
                                     ? row["rois"][series[s]].get<double>()
                                     : std::nan(""));
      const double x = std::log10(row["fraction"].get<double>());
      if (!std::isfinite(y)) continue;
      p.x.push_back(x), p.y.push_back(y), p.group.push_back(static_cast<int>(s));
      ylo = std::min(ylo, y), yhi = std::max(yhi, y);
      if (i > 0 && std::isfinite(py)) p.lines.push_back({px, py, x, y});
      px = x, py = y;
    }
  }
  p.xlo = std::log10(fr.back()) - 0.1, p.xhi = 0.1, p.ylo = ylo, p.yhi = yhi * 1.05;
  std::string legend;
  for (size_t s = 0; s < series.size(); ++s) legend += (s ? ", " : "") + std::string("group ") + std::to_string(s) + " = " + series[s];
  d.figures.push_back({svg_scatter(p), "Mean test r against the fraction of channels kept (" + legend + ")"});
  Table t;
  t.caption = "Per fraction (each fit's own report is in its keep-<F>/ folder)";
  t.header = {"fraction kept", "channels kept per tap", "mean r", "median r"};
  for (const auto& row : rows)
    t.rows.push_back({fraction_name(row["fraction"].get<double>()), row["channels_kept"].dump(),
                      fmt(number_or_nan(row, "mean_r")), fmt(number_or_nan(row, "median_r"))});
  d.tables.push_back(t);
  write_report((out / "report.html").string(), d);
  return sweep;
}

}  // namespace cortex::analysis
