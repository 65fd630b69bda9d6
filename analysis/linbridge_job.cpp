// cortex linbridge (analysis/linbridge_job.h): model file + subject -> scores, r, ROI summaries, report.
#include "analysis/linbridge_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <vector>

#include "analysis/linbridge.h"
#include "analysis/metrics.h"
#include "analysis/report.h"
#include "analysis/scores.h"
#include "autograd/autograd.h"
#include "data/dataset.h"
#include "dist/comm.h"
#include "encoding/model_file.h"
#include "encoding/pipeline.h"
#include "tensor/error.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/npy.h"

namespace cortex::analysis {
namespace {

namespace fs = std::filesystem;

struct Loaded {
  encoding::ModelSettings settings;
  std::map<std::string, Tensor> tensors;
  encoding::Standardizer z;
};

// A model file of a two-layer or linear readout (`linear_only`: linear) on a frozen backbone.
Loaded load(const std::string& path, const char* what, bool linear_only) {
  auto [tensors, m] = encoding::read_model_file(path);
  if (linear_only)
    CORTEX_CHECK(m.readout == "linear", "linbridge: ", what, " ", path, " is a '", m.readout,
                 "' readout, expected linear");
  else
    CORTEX_CHECK(m.readout == "two-layer" || m.readout == "linear", "linbridge: ", path, " is a '", m.readout,
                 "' readout; cortex linbridge reads two-layer and linear encoders (fit --readout two-layer); other "
                 "models go through the library's linbridge_autodiff (docs/linbridge.md)");
  CORTEX_CHECK(!m.finetune, "linbridge: ", path, " holds a fine-tuned backbone; ", what,
               " must be a two-layer or linear readout on a frozen backbone's features");
  const char* need[] = {"input_mean", "input_std"};
  for (const char* k : need) CORTEX_CHECK(tensors.count(k), "linbridge: ", path, " lacks '", k, "'");
  Loaded l{m, tensors, {tensors.at("input_mean"), tensors.at("input_std")}};
  return l;
}

Tensor need(const Loaded& l, const std::string& key, const std::string& path) {
  CORTEX_CHECK(l.tensors.count(key), "linbridge: ", path, " lacks '", key, "'");
  return l.tensors.at(key);
}

// A progress bar on stderr, redrawn when the percentage changes.
struct Bar {
  bool on;
  int last = -1;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  void operator()(int64_t done, int64_t total) {
    if (!on || total <= 0) return;
    const int pct = int(100 * done / total);
    if (pct == last) return;
    last = pct;
    const int w = 30, fill = pct * w / 100;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cerr << "\rlinbridge: [" << std::string(fill, '#') << std::string(w - fill, '.') << "] " << std::setw(3) << pct
              << "% " << std::fixed << std::setprecision(1) << s << " s" << std::flush;
    if (done >= total) std::cerr << "\n";
  }
};

double mean_of(const std::vector<double>& v, const std::vector<int64_t>& cols) {
  double s = 0;
  int64_t n = 0;
  for (int64_t c : cols)
    if (std::isfinite(v[c])) s += v[c], ++n;
  return n ? s / n : NAN;
}
double se_of(const std::vector<double>& v, const std::vector<int64_t>& cols) {
  const double m = mean_of(v, cols);
  double s = 0;
  int64_t n = 0;
  for (int64_t c : cols)
    if (std::isfinite(v[c])) s += (v[c] - m) * (v[c] - m), ++n;
  return n > 1 ? std::sqrt(s / (n - 1) / n) : NAN;
}
double median_of(const std::vector<double>& v, const std::vector<int64_t>& cols) {
  std::vector<double> x;
  for (int64_t c : cols)
    if (std::isfinite(v[c])) x.push_back(v[c]);
  if (x.empty()) return NAN;
  std::sort(x.begin(), x.end());
  const size_t m = x.size() / 2;
  return x.size() % 2 ? x[m] : (x[m - 1] + x[m]) / 2;
}
std::string fmt(double v, int p = 3) {
  if (!std::isfinite(v)) return "-";
  std::ostringstream os;
  os << std::fixed << std::setprecision(p) << v;
  return os.str();
}
std::vector<double> to_vec(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }

// A histogram of values per ROI as grouped bars: one group per bin, one series per ROI.
std::string roi_histogram(const std::vector<double>& v, const std::vector<std::string>& names,
                          const std::vector<std::vector<int64_t>>& cols, double lo, double hi, int bins,
                          const std::string& ylabel) {
  std::vector<std::string> groups;
  for (int b = 0; b < bins; ++b) groups.push_back(fmt(lo + (hi - lo) * b / bins, 2));
  std::vector<std::vector<double>> h(names.size(), std::vector<double>(bins, 0.0)), e = h;
  for (size_t r = 0; r < names.size(); ++r) {
    for (int64_t c : cols[r]) {
      if (!std::isfinite(v[c])) continue;
      const int b = std::clamp(int((v[c] - lo) / (hi - lo) * bins), 0, bins - 1);
      h[r][b] += 1;
    }
    for (int b = 0; b < bins; ++b) h[r][b] /= std::max<double>(1, double(cols[r].size())), e[r][b] = NAN;
  }
  return svg_grouped_bars(groups, names, h, e, ylabel);
}

}  // namespace

LinBridgeSummary run_linbridge(const LinBridgeJob& job) {
  CORTEX_CHECK(!job.model.empty() && !job.data.empty() && !job.out.empty(),
               "linbridge: expected --model, --data and --out");
  CORTEX_CHECK(job.split == "train" || job.split == "test", "linbridge: --split must be train or test, found '",
               job.split, "'");
  CORTEX_CHECK(job.block >= 1 && job.batch >= 1, "linbridge: --block and --batch must be >= 1");
  const Loaded full = load(job.model, "--model", false);
  const std::string& kind = full.settings.readout;
  const encoding::EncodingSpec o =
      encoding::spec_of_model(full.tensors, full.settings, job.model, job.weights, job.batch, job.device, "linbridge");

  data::LoadOptions load_opt;
  load_opt.hemi = o.hemi;
  load_opt.nc_units = data::parse_nc_units(job.nc_units);
  const data::Dataset d = data::load_algonauts(job.data, job.split, load_opt);
  CORTEX_CHECK(d.responses.defined(), "linbridge: ", d.name, " has no measured responses; r needs them");
  CORTEX_CHECK(d.size() >= 2, "linbridge: ", d.name, " has ", d.size(), " images; the statistics need at least 2");

  Loaded control;
  if (!job.linear_model.empty()) {
    control = load(job.linear_model, "--linear", true);
    const auto& c = control.settings;
    CORTEX_CHECK(c.arch == o.arch && c.config == o.config && c.tap == o.tap && c.pool == o.pool &&
                     c.image_size == o.image_size && c.hemi == o.hemi && c.weights == full.settings.weights &&
                     c.dtype == o.dtype,
                 "linbridge: --linear ", job.linear_model, " reads other inputs (backbone, tap, pool, image size, "
                 "weights, dtype or hemi) than --model ", job.model);
  }

  std::shared_ptr<models::Backbone> backbone;
  if (o.tap != "pixels") backbone = encoding::make_backbone(o);
  const Tensor raw = encoding::extract(backbone.get(), d, o, "input")[0];
  CORTEX_CHECK(raw.dim() == 2 && full.z.mean.numel() == raw.size(1), "linbridge: ", job.model, " standardises ",
               full.z.mean.numel(), " features, the inputs have ", raw.numel() / std::max<int64_t>(1, raw.size(0)));
  const Tensor Z = full.z.apply(raw);

  LinBridgeOptions opt;
  opt.block = job.block;
  Bar bar{job.progress};
  opt.progress = [&bar](int64_t done, int64_t total) { bar(done, total); };
  const auto t0 = std::chrono::steady_clock::now();
  LinBridgeResult r;
  int64_t hidden = 0;
  if (kind == "two-layer") {
    TwoLayerParams p{need(full, "fc1.weight", job.model), need(full, "fc1.bias", job.model),
                     need(full, "fc2.weight", job.model), need(full, "fc2.bias", job.model)};
    hidden = p.W1.size(0);
    r = linbridge_two_layer(p, Z, opt);
  } else {
    r = linbridge_linear(need(full, "fc.weight", job.model), need(full, "fc.bias", job.model), Z, opt);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t N = Z.size(0), F = Z.size(1), V = r.pred_full.size(1);
  CORTEX_CHECK(V == d.responses.size(1), "linbridge: ", job.model, " predicts ", V, " voxels, ", d.name, " has ",
               d.responses.size(1), " (hemi ", o.hemi, ")");

  const std::vector<double> share = to_vec(r.energy_share), afd = to_vec(r.afd), slope = to_vec(r.afd_slope);
  const std::vector<double> r_full = to_vec(pearson_r(r.pred_full, d.responses)),
                            r_lin = to_vec(pearson_r(r.pred_linear, d.responses)),
                            r2_full = to_vec(r2_score(r.pred_full, d.responses)),
                            r2_lin = to_vec(r2_score(r.pred_linear, d.responses));
  std::vector<double> r_ctl, r2_ctl;
  if (!job.linear_model.empty()) {
    NoGradGuard ng;
    const Tensor W = need(control, "fc.weight", job.linear_model), b = need(control, "fc.bias", job.linear_model);
    CORTEX_CHECK(W.dim() == 2 && W.size(0) == V && W.size(1) == F, "linbridge: --linear ", job.linear_model,
                 " has fc.weight ", shape_str(W.shape()), ", expected (", V, ", ", F, ")");
    const Tensor pc = linbridge_linear(W, b, control.z.apply(raw), {}).pred_full;
    r_ctl = to_vec(pearson_r(pc, d.responses)), r2_ctl = to_vec(r2_score(pc, d.responses));
  }

  // ROIs: the dataset's, plus "all".
  std::vector<std::string> roi_names;
  std::vector<std::vector<int64_t>> roi_cols;
  for (const auto& [name, cols] : d.rois) {
    std::vector<int64_t> c;
    for (int64_t x : cols)
      if (x >= 0 && x < V) c.push_back(x);
    if (!c.empty()) roi_names.push_back(name), roi_cols.push_back(c);
  }
  std::vector<int64_t> all(V);
  for (int64_t v = 0; v < V; ++v) all[v] = v;

  nlohmann::json j;
  j["model"] = job.model, j["data"] = job.data, j["split"] = job.split, j["hemi"] = o.hemi, j["readout"] = kind;
  j["images"] = N, j["voxels"] = V, j["features"] = F;
  if (hidden) j["hidden"] = hidden;
  j["mode"] = r.mode;
  j["afd_order"] = "each voxel's predicted response (rank / (N - 1))";
  j["afd_scalar"] = "gain_v(z) = <dJM_v(z), JM_inherent_v> / ||JM_inherent_v||^2";
  j["seconds"] = seconds, j["ms_per_stimulus"] = 1e3 * seconds / N, j["block_bytes"] = r.peak_bytes;
  auto summary = [&](const std::vector<int64_t>& cols) {
    nlohmann::json s;
    s["voxels"] = cols.size();
    s["mean_energy_share"] = json_number(mean_of(share, cols));
    s["median_energy_share"] = json_number(median_of(share, cols));
    s["mean_afd"] = json_number(mean_of(afd, cols));
    s["median_afd"] = json_number(median_of(afd, cols));
    s["mean_r_full"] = json_number(mean_of(r_full, cols));
    s["mean_r_linear"] = json_number(mean_of(r_lin, cols));
    s["mean_r2_full"] = json_number(mean_of(r2_full, cols));
    s["mean_r2_linear"] = json_number(mean_of(r2_lin, cols));
    if (!r_ctl.empty()) s["mean_r_control"] = json_number(mean_of(r_ctl, cols));
    return s;
  };
  j["all"] = summary(all);
  for (size_t i = 0; i < roi_names.size(); ++i) j["rois"][roi_names[i]] = summary(roi_cols[i]);
  auto arr = [](const std::vector<double>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (double x : v) a.push_back(json_number(x));
    return a;
  };
  j["energy_share"] = arr(share), j["afd"] = arr(afd), j["afd_slope"] = arr(slope);
  j["r_full"] = arr(r_full), j["r_linear"] = arr(r_lin), j["r2_full"] = arr(r2_full), j["r2_linear"] = arr(r2_lin);
  if (!r_ctl.empty()) j["r_control"] = arr(r_ctl), j["r2_control"] = arr(r2_ctl);
  if (!d.rois.empty()) j["roi_columns"] = d.rois;

  // The report.
  ReportData rep;
  rep.title = "cortex linbridge: " + kind + " encoder, " + job.model;
  rep.summary = {{"images (" + job.split + " split)", std::to_string(N)},
                 {"voxels, features", std::to_string(V) + ", " + std::to_string(F)},
                 {"mean energy share E‖ΔJM‖² / E‖JM‖²", fmt(mean_of(share, all))},
                 {"mean AFD (stimuli ordered by the voxel's predicted response)", fmt(mean_of(afd, all))},
                 {"mean r: full model / linear part", fmt(mean_of(r_full, all)) + " / " + fmt(mean_of(r_lin, all))},
                 {"time (Jacobian statistics)", fmt(seconds, 2) + " s, " + fmt(1e3 * seconds / N, 3) + " ms per stimulus"}};
  if (!r_ctl.empty()) rep.summary.push_back({"mean r: linear control encoder", fmt(mean_of(r_ctl, all))});
  rep.r = r_full;
  if (!roi_names.empty()) {
    rep.roi.assign(V, "other");
    for (size_t i = 0; i < roi_names.size(); ++i)
      for (int64_t c : roi_cols[i]) rep.roi[c] = roi_names[i];
  }
  std::vector<std::string> groups = roi_names;
  std::vector<std::vector<int64_t>> gcols = roi_cols;
  if (groups.empty()) groups = {"all"}, gcols = {all};
  std::vector<double> hs, es, ha, ea;
  for (const auto& c : gcols)
    hs.push_back(mean_of(share, c)), es.push_back(se_of(share, c)), ha.push_back(mean_of(afd, c)), ea.push_back(se_of(afd, c));
  rep.figures.push_back({svg_grouped_bars(groups, {"energy share"}, {hs}, {es}, "mean E‖ΔJM‖² / E‖JM‖²"),
                         "Nonlinearity by ROI: the stimulus-specific share of the Jacobian's energy (mean ± s.e.)"});
  rep.figures.push_back({svg_grouped_bars(groups, {"AFD"}, {ha}, {ea}, "mean AFD"),
                         "Nonlinearity by ROI: AFD, |slope| of the relative gain along the voxel's predicted-response "
                         "order (mean ± s.e.)"});
  double amax = 0;
  for (double a : afd)
    if (std::isfinite(a)) amax = std::max(amax, a);
  rep.figures.push_back({roi_histogram(share, groups, gcols, 0, 1, 10, "fraction of the ROI's voxels"),
                         "Histogram of the energy share per ROI (bins of 0.1)"});
  rep.figures.push_back({roi_histogram(afd, groups, gcols, 0, amax > 0 ? amax : 1, 10, "fraction of the ROI's voxels"),
                         "Histogram of AFD per ROI"});
  std::vector<std::string> series = {"full model", "linear part"};
  std::vector<std::vector<double>> rh(2), re(2);
  if (!r_ctl.empty()) series.push_back("linear control"), rh.emplace_back(), re.emplace_back();
  for (const auto& c : gcols) {
    rh[0].push_back(mean_of(r_full, c)), re[0].push_back(se_of(r_full, c));
    rh[1].push_back(mean_of(r_lin, c)), re[1].push_back(se_of(r_lin, c));
    if (!r_ctl.empty()) rh[2].push_back(mean_of(r_ctl, c)), re[2].push_back(se_of(r_ctl, c));
  }
  rep.figures.push_back({svg_grouped_bars(groups, series, rh, re, "mean r"), "Prediction r by ROI (mean ± s.e.)"});
  ScatterPlot sp;
  sp.x = r_full, sp.y = r_lin;
  sp.group.assign(V, 0);
  for (size_t i = 0; i < gcols.size(); ++i)
    for (int64_t c : gcols[i]) sp.group[c] = int(i);
  double lo = 0, hi = 1;
  for (size_t v = 0; v < r_full.size(); ++v) {
    if (std::isfinite(r_full[v])) lo = std::min(lo, r_full[v]);
    if (std::isfinite(r_lin[v])) lo = std::min(lo, r_lin[v]);
  }
  sp.xlo = sp.ylo = lo, sp.xhi = sp.yhi = hi;
  sp.xlabel = "r, full model", sp.ylabel = "r, linear part";
  sp.lines = {{lo, lo, hi, hi}};
  rep.figures.push_back({svg_scatter(sp), "Full model against its linear part, per voxel (colour: ROI, in the order "
                                          "of the bars; dashed: equality)"});
  ScatterPlot sa;
  sa.x = share, sa.y = afd, sa.group = sp.group, sa.xhi = 1, sa.yhi = amax > 0 ? amax : 1;
  sa.xlabel = "energy share", sa.ylabel = "AFD";
  rep.figures.push_back({svg_scatter(sa), "The two nonlinearity scores per voxel"});
  Table t;
  t.caption = "Per ROI";
  t.header = {"ROI", "voxels", "energy share", "AFD", "r full", "r linear part"};
  if (!r_ctl.empty()) t.header.push_back("r linear control");
  for (size_t i = 0; i < groups.size(); ++i) {
    const auto& c = gcols[i];
    std::vector<std::string> row = {groups[i], std::to_string(c.size()), fmt(mean_of(share, c)), fmt(mean_of(afd, c)),
                                    fmt(mean_of(r_full, c)), fmt(mean_of(r_lin, c))};
    if (!r_ctl.empty()) row.push_back(fmt(mean_of(r_ctl, c)));
    t.rows.push_back(row);
  }
  rep.tables.push_back(t);

  // Everything is computed: write (under MPI ranks, rank 0 only: docs/distributed.md).
  if (dist::is_root()) {
    fs::create_directories(job.out);
    const fs::path out(job.out);
    auto npy = [&](const char* name, const std::vector<double>& v) {
      io::write_npy((out / name).string(), from_vector(v, {int64_t(v.size())}));
    };
    npy("energy_share.npy", share), npy("afd.npy", afd), npy("afd_slope.npy", slope);
    npy("r_full.npy", r_full), npy("r_linear.npy", r_lin), npy("r2_full.npy", r2_full), npy("r2_linear.npy", r2_lin);
    if (!r_ctl.empty()) npy("r_control.npy", r_ctl), npy("r2_control.npy", r2_ctl);
    io::write_npy((out / "pred_linear.npy").string(), r.pred_linear);
    const std::string js = j.dump(2);
    io::write_file_atomic((out / "linbridge.json").string(), js.data(), js.size());
    write_report((out / "report.html").string(), rep);
  }

  LinBridgeSummary s;
  s.json = j;
  std::ostringstream os;
  os << "linbridge: " << V << " voxels over " << N << " images: mean energy share " << fmt(mean_of(share, all))
     << ", mean AFD " << fmt(mean_of(afd, all)) << ", mean r full " << fmt(mean_of(r_full, all)) << " linear part "
     << fmt(mean_of(r_lin, all));
  if (!r_ctl.empty()) os << " linear control " << fmt(mean_of(r_ctl, all));
  os << " (" << fmt(seconds, 2) << " s)";
  s.line = os.str();
  return s;
}

}  // namespace cortex::analysis
