// cortex attribute (analysis/attribute_job.h): model file + images -> integrated-gradients maps.
#include "analysis/attribute_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>
#include <vector>

#include "analysis/attribution.h"
#include "analysis/report.h"
#include "analysis/scores.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "dist/comm.h"
#include "encoding/model_fn.h"
#include "tensor/error.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"

namespace cortex::analysis {
namespace {

namespace fs = std::filesystem;

std::string pct(double v) {
  if (!std::isfinite(v)) return "inf";
  std::ostringstream os;
  os << std::setprecision(3) << 100 * v << "%";
  return os.str();
}

std::string fmt(double v, int p = 4) {
  std::ostringstream os;
  os << std::setprecision(p) << v;
  return os.str();
}

// A file-name-safe label: letters, digits, '-', '_' and '.' kept, anything else '_'.
std::string safe(const std::string& s) {
  std::string o;
  for (char c : s) o += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return o;
}

}  // namespace

AttributeSummary run_attribute(const AttributeJob& job) {
  CORTEX_CHECK(!job.model.empty() && !job.images.empty() && !job.out.empty(),
               "attribute: expected --model, --images and --out");
  CORTEX_CHECK(job.voxels.empty() != job.roi.empty(), "attribute: give exactly one of --voxels and --roi");
  CORTEX_CHECK(job.steps >= 1, "attribute: --steps must be >= 1, found ", job.steps);
  CORTEX_CHECK(job.batch >= 1, "attribute: --batch must be >= 1, found ", job.batch);
  CORTEX_CHECK(job.tol >= 0 && std::isfinite(job.tol), "attribute: --tol must be >= 0, found ", job.tol);
  CORTEX_CHECK(job.max_steps == 0 || job.max_steps >= job.steps, "attribute: --max-steps must be 0 or >= --steps (",
               job.steps, "), found ", job.max_steps);
  CORTEX_CHECK(job.blur_sigma >= 0 && std::isfinite(job.blur_sigma), "attribute: --blur-sigma must be >= 0, found ",
               job.blur_sigma);
  CORTEX_CHECK(!fs::exists(job.out) || fs::is_directory(job.out), "attribute: --out ", job.out,
               " exists and is not a directory");
  const Baseline base = parse_baseline(job.baseline);
  const Quadrature rule = parse_quadrature(job.quadrature);
  const std::vector<int64_t> rows =
      job.index.empty() ? std::vector<int64_t>{} : encoding::parse_index_list(job.index, -1, "--index");

  const encoding::ModelFn f = encoding::load_model_fn(job.model, job.weights);
  const int64_t S = f.size, V = f.voxels;
  Tensor targets;
  std::vector<std::string> labels;
  nlohmann::json target_json = nlohmann::json::array();
  if (!job.voxels.empty()) {
    const std::vector<int64_t> vox = encoding::parse_index_list(job.voxels, V, "--voxels");
    targets = voxel_targets(vox, V);
    for (int64_t v : vox) {
      labels.push_back("voxel " + std::to_string(v));
      target_json.push_back({{"voxel", v}});
    }
  } else {
    const auto rois = encoding::roi_columns(f, job.data);
    auto it = rois.find(job.roi);
    if (it == rois.end()) {
      std::string names;
      for (const auto& [n, c] : rois) names += (names.empty() ? "" : ", ") + n;
      throw Error("attribute: no ROI '" + job.roi + "'; the ROIs are " + names);
    }
    CORTEX_CHECK(!it->second.empty(), "attribute: ROI '", job.roi, "' has no voxels");
    targets = mean_target(it->second, V);
    labels.push_back("ROI " + job.roi + " (mean of " + std::to_string(it->second.size()) + " voxels)");
    target_json.push_back({{"roi", job.roi}, {"voxels", it->second}});
  }
  const int64_t K = targets.size(0);

  std::vector<std::string> names;
  const Tensor px = encoding::load_pixels(job.images, S, rows, &names);
  const int64_t N = px.size(0);
  Tensor mean_image;
  if (base == Baseline::Mean) {
    NoGradGuard ng;
    mean_image = mean(rows.empty() ? px : encoding::load_pixels(job.images, S), {0}).contiguous();
  }
  const double bsig = blur_baseline_sigma(S);

  // The error on a scale that stays meaningful when f(x) is near f(baseline): relative to
  // max(|f(x) - f(b)|, sd_k), sd_k the target's prediction standard deviation over the images given
  // (docs/attribution.md, "Measured: rules against gradient evaluations"); with one image sd_k = 0.
  // Computed first: it is also the floor of the tolerance (--tol).
  std::vector<double> sd(static_cast<size_t>(K), 0.0);
  if (N >= 2) {
    NoGradGuard ng;
    std::vector<double> y;  // (N, K)
    for (int64_t lo = 0; lo < N; lo += job.batch) {
      const int64_t n = std::min(job.batch, N - lo);
      const std::vector<double> yb =
          matmul(f(px.narrow(0, lo, n).contiguous()), targets.t()).to(DType::Float64).contiguous().to_vector<double>();
      y.insert(y.end(), yb.begin(), yb.end());
    }
    for (int64_t k = 0; k < K; ++k) {
      double mu = 0, v = 0;
      for (int64_t i = 0; i < N; ++i) mu += y[size_t(i * K + k)] / double(N);
      for (int64_t i = 0; i < N; ++i) v += (y[size_t(i * K + k)] - mu) * (y[size_t(i * K + k)] - mu) / double(N - 1);
      sd[size_t(k)] = std::sqrt(v);
    }
  }

  IGOptions opt;
  opt.steps = job.steps;
  opt.batch = job.batch;
  opt.rule = rule;
  // The tolerance drives the adaptive rule only; the fixed rules spend exactly steps + 1 evaluations.
  const bool tol_on = rule == Quadrature::Adaptive && job.tol > 0;
  if (tol_on) opt.tol = job.tol, opt.max_steps = job.max_steps > 0 ? job.max_steps : 8 * job.steps, opt.tol_floor = sd;
  const ImageFn fn = [&f](const Tensor& x) { return f(x); };
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<Tensor> attrs, maps;
  std::vector<double> errors;
  std::vector<int64_t> evals;  // gradient evaluations per image and target
  nlohmann::json images = nlohmann::json::array();
  const int64_t scale = std::max<int64_t>(1, (128 + S - 1) / S);
  std::vector<std::vector<Tensor>> overlays(static_cast<size_t>(N));
  // One image is one unit that MPI ranks share (docs/distributed.md): its attributions, display
  // maps and per-target numbers are computed whole by one rank and gathered to rank 0 in image
  // order, where the overlays, the JSON and the files are made; an image's maps do not depend on
  // the other images, so the files are the same bytes for any number of ranks.
  dist::for_units(
      N,
      [&](int64_t i) {
        const Tensor x = px.select(0, i).contiguous();
        const Tensor b = make_baseline(base, x, mean_image, bsig);
        const IGResult r = integrated_gradients(fn, x, b, targets, opt);
        std::vector<Tensor> mk;
        for (int64_t k = 0; k < K; ++k) mk.push_back(postprocess(r.attr.select(0, k), job.channel_mean, job.blur_sigma));
        std::vector<double> nums;  // (6, K): f(x), f(baseline), the sum, the absolute and relative errors, evaluations
        for (const auto* v : {&r.f_x, &r.f_base, &r.total, &r.abs_error, &r.rel_error})
          nums.insert(nums.end(), v->begin(), v->end());
        for (int64_t k = 0; k < K; ++k) nums.push_back(double(r.nodes[size_t(k)].size()));
        return std::vector<Tensor>{r.attr, stack(mk, 0), from_vector(nums, {6, K})};
      },
      [&](int64_t i, std::vector<Tensor>& t) {
        const Tensor x = px.select(0, i).contiguous();
        const double* nums = t[2].data<double>();
        auto num = [&](int row, int64_t k) { return nums[row * K + k]; };
        nlohmann::json ij;
        ij["index"] = rows.empty() ? i : rows[size_t(i)], ij["name"] = names[size_t(i)];
        for (int64_t k = 0; k < K; ++k) {
          const Tensor m = t[1].select(0, k);
          const auto pk = attribution_peak(m, 0);
          nlohmann::json tj;
          tj["target"] = labels[size_t(k)];
          tj["f_x"] = json_number(num(0, k)), tj["f_baseline"] = json_number(num(1, k));
          tj["sum"] = json_number(num(2, k)), tj["abs_error"] = json_number(num(3, k));
          tj["rel_error"] = json_number(num(4, k));
          tj["evaluations"] = int64_t(num(5, k));
          evals.push_back(int64_t(num(5, k)));
          tj["peak_x"] = pk[0], tj["peak_y"] = pk[1];
          ij["targets"].push_back(tj);
          errors.push_back(num(4, k));
          std::cerr << "attribute: " << names[size_t(i)] << ", " << labels[size_t(k)] << ": f(x) - f(baseline) = "
                    << fmt(num(0, k) - num(1, k)) << ", sum of attributions " << fmt(num(2, k))
                    << ", completeness error " << pct(num(4, k)) << " (" << int64_t(num(5, k)) << " evaluations)\n";
          NoGradGuard ng;
          overlays[size_t(i)].push_back(overlay(x, m.dim() == 3 ? sum(m, {0}) : m, scale));
        }
        images.push_back(ij);
        attrs.push_back(t[0]);
        maps.push_back(t[1]);
      },
      /*all=*/false);
  if (!dist::is_root()) {  // rank 0 makes and writes everything
    AttributeSummary s;
    s.line = "attribute: rank " + std::to_string(dist::rank()) + " computed its share of the " + std::to_string(N) +
             " images";
    return s;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> sorted = errors;
  std::sort(sorted.begin(), sorted.end());
  const double worst = sorted.back(), median = sorted[sorted.size() / 2];
  std::vector<double> scaled;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t k = 0; k < K; ++k) {
      auto& tj = images[size_t(i)]["targets"][size_t(k)];
      auto val = [&](const char* key) { return tj[key].is_number() ? tj[key].get<double>() : NAN; };  // null: not finite
      const double df = std::fabs(val("f_x") - val("f_baseline"));
      const double scale = std::max(df, sd[size_t(k)]), err = val("abs_error");
      scaled.push_back(scale > 0 ? err / scale : (err == 0 ? 0.0 : std::numeric_limits<double>::infinity()));
      tj["scaled_error"] = json_number(scaled.back());
    }
  std::vector<double> ssorted = scaled;
  std::sort(ssorted.begin(), ssorted.end());
  const double sworst = ssorted.back(), smedian = ssorted[ssorted.size() / 2];

  nlohmann::json j;
  j["model"] = job.model, j["images"] = job.images, j["readout"] = f.settings.readout;
  j["image_size"] = S, j["voxels_in_model"] = V;
  j["baseline"] = baseline_name(base);
  if (base == Baseline::Blur) j["baseline_sigma"] = bsig;
  if (base == Baseline::Mean) j["baseline_mean_of"] = job.images;
  std::vector<int64_t> esorted = evals;
  std::sort(esorted.begin(), esorted.end());
  const int64_t emax = esorted.back(), emedian = esorted[esorted.size() / 2];
  j["tol"] = tol_on ? json_number(job.tol) : nlohmann::json(nullptr);
  if (tol_on) j["max_steps"] = opt.max_steps;
  j["evaluations"] = {{"median", emedian}, {"max", emax}};
  j["steps"] = job.steps, j["rule"] = quadrature_name(rule), j["channel_mean"] = job.channel_mean, j["blur_sigma"] = job.blur_sigma;
  j["targets"] = target_json;
  j["results"] = images;
  j["completeness"] = {{"max_rel_error", json_number(worst)}, {"median_rel_error", json_number(median)},
                       {"definition", "|sum of attributions - (f(x) - f(baseline))| / |f(x) - f(baseline)|"},
                       {"max_scaled_error", json_number(sworst)}, {"median_scaled_error", json_number(smedian)},
                       {"scaled_definition", "|sum of attributions - (f(x) - f(baseline))| / max(|f(x) - f(baseline)|, "
                                             "the target's prediction sd over the images)"}};
  j["seconds"] = seconds;

  ReportData rep;
  rep.title = "cortex attribute: " + f.settings.readout + ", " + job.model;
  rep.summary = {{"images", std::to_string(N) + " (" + job.images + ")"},
                 {"targets", std::to_string(K) + (job.roi.empty() ? " voxels" : ": " + labels[0])},
                 {"baseline", std::string(baseline_name(base)) +
                                  (base == Baseline::Blur ? " (Gaussian sigma " + fmt(bsig, 3) + " px)" : "")},
                 {"steps", std::to_string(job.steps) + " (" + std::to_string(job.steps + 1) + " gradient evaluations, " +
                                quadrature_name(rule) + " rule)" +
                                (tol_on ? ", refined to a completeness error within " + pct(job.tol) + " (at most " +
                                              std::to_string(opt.max_steps + 1) + " evaluations)" : std::string())},
                 {"gradient evaluations per image and target, median / largest",
                  std::to_string(emedian) + " / " + std::to_string(emax)},
                 {"completeness error, largest / median", pct(worst) + " / " + pct(median)},
                 {"the same relative to max(|f(x) - f(b)|, prediction sd over the images)",
                  pct(sworst) + " / " + pct(smedian)},
                 {"display maps", std::string(job.channel_mean ? "mean over colour channels" : "channels summed") +
                                      (job.blur_sigma > 0 ? ", blurred sigma " + fmt(job.blur_sigma, 3) + " px" : "")},
                 {"time", fmt(seconds, 3) + " s"}};
  {
    // The overlays as one grid: a row per image, a column per target (the first 16 images).
    const int64_t cell = S * scale + 8, rowsn = std::min<int64_t>(N, 16);
    std::ostringstream svg;
    svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << 160 + K * cell << "\" height=\""
        << 20 + rowsn * cell << "\">";
    for (int64_t k = 0; k < K; ++k)
      svg << "<text x=\"" << 160 + k * cell << "\" y=\"14\" font-size=\"11\">" << html_escape(labels[size_t(k)])
          << "</text>";
    for (int64_t i = 0; i < rowsn; ++i) {
      svg << "<text x=\"0\" y=\"" << 20 + i * cell + cell / 2 << "\" font-size=\"11\">" << html_escape(names[size_t(i)])
          << "</text>";
      for (int64_t k = 0; k < K; ++k)
        svg << "<image x=\"" << 160 + k * cell << "\" y=\"" << 20 + i * cell << "\" width=\"" << S * scale
            << "\" height=\"" << S * scale << "\" href=\"data:image/png;base64,"
            << base64(io::encode_png(overlays[size_t(i)][size_t(k)])) << "\"/>";
    }
    svg << "</svg>";
    rep.figures.push_back({svg.str(), "Integrated gradients over each image: red raises the prediction, blue lowers "
                                      "it (opacity: |attribution| / its largest)"});
  }
  Table t;
  t.caption = "Completeness: the attributions sum to f(x) - f(baseline)";
  t.header = {"image", "target", "f(x)", "f(baseline)", "sum of attributions", "error"};
  for (int64_t i = 0; i < N; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const auto& tj = images[size_t(i)]["targets"][size_t(k)];
      t.rows.push_back({names[size_t(i)], labels[size_t(k)], fmt(tj["f_x"].get<double>()),
                        fmt(tj["f_baseline"].get<double>()), fmt(tj["sum"].get<double>()),
                        pct(errors[size_t(i * K + k)])});
    }
  rep.tables.push_back(t);

  // Everything is computed: write.
  fs::create_directories(job.out);
  const fs::path out(job.out);
  io::write_npy((out / "attributions.npy").string(), stack(attrs, 0));
  io::write_npy((out / "maps.npy").string(), stack(maps, 0));
  for (int64_t i = 0; i < N; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const std::string img = "i" + std::to_string(rows.empty() ? i : rows[size_t(i)]);
      const std::string tgt = job.roi.empty() ? "v" + std::to_string(target_json[size_t(k)]["voxel"].get<int64_t>())
                                              : "roi-" + safe(job.roi);
      io::write_png((out / ("overlay_" + img + "_" + tgt + ".png")).string(), overlays[size_t(i)][size_t(k)]);
    }
  const std::string js = j.dump(2);
  io::write_file_atomic((out / "attribution.json").string(), js.data(), js.size());
  write_report((out / "report.html").string(), rep);

  AttributeSummary s;
  s.json = j;
  std::ostringstream os;
  os << "attribute: " << N << " image" << (N == 1 ? "" : "s") << " x " << K << " target" << (K == 1 ? "" : "s") << ", "
     << job.steps << " steps, " << baseline_name(base) << " baseline: completeness error largest " << pct(worst)
     << ", median " << pct(median) << "; relative to max(|f(x) - f(b)|, prediction sd) largest " << pct(sworst)
     << ", median " << pct(smedian) << " (" << quadrature_name(rule) << " rule"
     << (tol_on ? ", tol " + pct(job.tol) : std::string()) << ", " << emedian << " evaluations median, " << emax
     << " largest, " << fmt(seconds, 3) << " s)";
  s.line = os.str();
  return s;
}

}  // namespace cortex::analysis
