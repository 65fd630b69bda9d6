// cortex dream (analysis/dream_job.h): model file -> maximally exciting images and their report.
#include "analysis/dream_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <vector>

#include "analysis/dream.h"
#include "analysis/report.h"
#include "analysis/scores.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "encoding/model_fn.h"
#include "encoding/pipeline.h"
#include "tensor/error.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"

namespace cortex::analysis {
namespace {

namespace fs = std::filesystem;

std::string fmt(double v, int p = 4) {
  std::ostringstream os;
  os << std::setprecision(p) << v;
  return os.str();
}

// (3, S, S) float in [0, 1] -> uint8 (S*scale, S*scale, 3), each pixel repeated `scale` times.
Tensor to_rgb8(const Tensor& x, int64_t scale) {
  const int64_t S = x.size(1), W = x.size(2);
  const std::vector<float> v = x.to(DType::Float32).contiguous().to_vector<float>();
  std::vector<uint8_t> o(size_t(S * scale * W * scale * 3));
  for (int64_t i = 0; i < S * scale; ++i)
    for (int64_t j = 0; j < W * scale; ++j)
      for (int64_t c = 0; c < 3; ++c) {
        const float a = std::clamp(v[size_t((c * S + i / scale) * W + j / scale)], 0.0f, 1.0f);
        o[size_t((i * W * scale + j) * 3 + c)] = uint8_t(std::lround(a * 255.0f));
      }
  return from_vector(o, {S * scale, W * scale, 3});
}

}  // namespace

DreamSummary run_dream(const DreamJob& job) {
  CORTEX_CHECK(!job.model.empty() && !job.out.empty(), "dream: expected --model and --out");
  CORTEX_CHECK((job.voxel >= 0) != !job.roi.empty(), "dream: give exactly one of --voxel and --roi");
  CORTEX_CHECK(!fs::exists(job.out) || fs::is_directory(job.out), "dream: --out ", job.out,
               " exists and is not a directory");
  CORTEX_CHECK(job.seed >= 0, "dream: --seed must be >= 0, found ", job.seed);
  DreamOptions opt;
  opt.param = parse_dream_param(job.param);
  opt.steps = job.steps, opt.seeds = job.seeds, opt.seed = uint64_t(job.seed), opt.lr = job.lr;
  opt.jitter = job.jitter, opt.tv = job.tv, opt.l2 = job.l2, opt.diversity = job.diversity;
  opt.diversity_space = parse_diversity_space(job.diversity_space), opt.decorrelate = job.decorrelate;
  // The options are checked before the model is read: a bad flag costs nothing.
  CORTEX_CHECK(opt.steps >= 1, "dream: --steps must be >= 1, found ", opt.steps);
  CORTEX_CHECK(opt.seeds >= 1, "dream: --seeds must be >= 1, found ", opt.seeds);
  CORTEX_CHECK(opt.lr > 0 && std::isfinite(opt.lr), "dream: --lr must be > 0, found ", opt.lr);
  CORTEX_CHECK(opt.jitter >= 0, "dream: --jitter must be >= 0, found ", opt.jitter);
  for (auto [name, v] : {std::pair{"--tv", opt.tv}, {"--l2", opt.l2}, {"--diversity", opt.diversity}})
    CORTEX_CHECK(v >= 0 && std::isfinite(v), "dream: ", name, " must be >= 0, found ", v);
  CORTEX_CHECK(opt.diversity == 0 || opt.seeds >= 2, "dream: --diversity needs --seeds >= 2, found ", opt.seeds);

  const encoding::ModelFn f = encoding::load_model_fn(job.model, job.weights);
  const int64_t S = f.size, V = f.voxels;
  CORTEX_CHECK(opt.jitter < S, "dream: --jitter must be below the image size ", S, ", found ", opt.jitter);
  Tensor target;
  std::string label;
  nlohmann::json target_json;
  if (job.voxel >= 0) {
    CORTEX_CHECK(job.voxel < V, "dream: --voxel ", job.voxel, " is out of range: the model predicts ", V, " voxels");
    target = voxel_targets({job.voxel}, V);
    label = "voxel " + std::to_string(job.voxel);
    target_json = {{"voxel", job.voxel}};
  } else {
    const auto rois = encoding::roi_columns(f, job.data);
    auto it = rois.find(job.roi);
    if (it == rois.end()) {
      std::string names;
      for (const auto& [n, c] : rois) names += (names.empty() ? "" : ", ") + n;
      throw Error("dream: no ROI '" + job.roi + "'; the ROIs are " + names);
    }
    CORTEX_CHECK(!it->second.empty(), "dream: ROI '", job.roi, "' has no voxels");
    target = mean_target(it->second, V);
    label = "ROI " + job.roi + " (mean of " + std::to_string(it->second.size()) + " voxels)";
    target_json = {{"roi", job.roi}, {"voxels", it->second}};
  }
  const ImageFn fn = [&f](const Tensor& x) { return f(x); };
  const bool features = opt.diversity > 0 && opt.diversity_space == DiversitySpace::Features;
  CORTEX_CHECK(!features || f.backbone || f.spec.finetune, "dream: --diversity-space features compares the "
               "backbone tap's Gram matrices, and ", job.model, " has no backbone (",
               f.spec.readout == "core" ? "--readout core" : "--tap pixels", "); use --diversity-space pixels");
  std::string layer;
  if (features) {
    const std::vector<std::string> taps = encoding::split_commas(f.spec.tap);
    layer = taps.empty() ? std::string("the first tap") : taps[0];
  }
  const TapFn tap_fn = [&f](const Tensor& x) { return f.with_features(x); };

  // The best of the given images first (a bad --images fails before the optimisation).
  Tensor best_image;
  std::string best_name;
  double best = NAN;
  int64_t best_index = -1, n_images = 0;
  if (!job.images.empty()) {
    std::vector<std::string> names;
    const Tensor px = encoding::load_pixels(job.images, S, {}, &names);
    n_images = px.size(0);
    CORTEX_CHECK(n_images >= 1, "dream: --images ", job.images, " holds no images");
    const std::vector<double> t = target_values(fn, px, target, 32);
    best_index = int64_t(std::max_element(t.begin(), t.end()) - t.begin());
    best = t[size_t(best_index)], best_name = names[size_t(best_index)];
    best_image = px.select(0, best_index).contiguous();
  }

  const auto t0 = std::chrono::steady_clock::now();
  const int64_t every = std::max<int64_t>(1, opt.steps / 10);
  const auto progress = [&](int64_t step, double loss) {
    if (job.progress && (step % every == 0 || step == opt.steps))
      std::cerr << "dream: step " << step << "/" << opt.steps << ", loss " << fmt(loss) << "\n";
  };
  const DreamResult r = features ? dream(tap_fn, S, target, opt, progress) : dream(fn, S, target, opt, progress);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t B = opt.seeds;

  nlohmann::json j;
  j["model"] = job.model, j["readout"] = f.settings.readout, j["image_size"] = S, j["voxels_in_model"] = V;
  j["target"] = target_json, j["target_label"] = label;
  j["settings"] = {{"steps", opt.steps}, {"seeds", B},          {"seed", job.seed},   {"param", dream_param_name(opt.param)},
                   {"lr", opt.lr},       {"jitter", opt.jitter}, {"tv", opt.tv},       {"l2", opt.l2},
                   {"diversity", opt.diversity}, {"optimizer", "adam"}, {"init_sd", opt.init_sd},
                   {"diversity_space", diversity_space_name(opt.diversity_space)}, {"decorrelate", opt.decorrelate}};
  if (features) j["settings"]["diversity_layer"] = layer;
  nlohmann::json imgs = nlohmann::json::array();
  for (int64_t b = 0; b < B; ++b)
    imgs.push_back({{"file", "dream_" + std::to_string(b) + ".png"}, {"seed", job.seed + b},
                    {"response", json_number(r.response[size_t(b)])}});
  j["dreams"] = imgs;
  if (!job.images.empty())
    j["best_image"] = {{"images", job.images}, {"of", n_images}, {"index", best_index}, {"name", best_name},
                       {"response", json_number(best)}};
  nlohmann::json lj = nlohmann::json::array(), oj = nlohmann::json::array();
  for (size_t s = 0; s < r.loss.size(); ++s) lj.push_back(json_number(r.loss[s])), oj.push_back(json_number(r.objective[s]));
  j["loss"] = lj, j["objective"] = oj;
  j["seconds"] = seconds;

  const double top = *std::max_element(r.response.begin(), r.response.end());
  const double low = *std::min_element(r.response.begin(), r.response.end());
  ReportData rep;
  rep.title = "cortex dream: " + label + ", " + f.settings.readout + ", " + job.model;
  rep.summary = {{"target", label},
                 {"images", std::to_string(B) + " (seeds " + std::to_string(job.seed) + ".." +
                                std::to_string(job.seed + B - 1) + ")"},
                 {"parameterisation", std::string(dream_param_name(opt.param)) +
                                          (opt.decorrelate ? ", colour decorrelated" : ", RGB")},
                 {"steps, lr (Adam)", std::to_string(opt.steps) + ", " + fmt(opt.lr, 3)},
                 {"jitter, TV, L2, diversity", std::to_string(opt.jitter) + " px, " + fmt(opt.tv, 3) + ", " +
                                                   fmt(opt.l2, 3) + ", " + fmt(opt.diversity, 3) +
                                                   (opt.diversity > 0 ? " (" + std::string(diversity_space_name(
                                                       opt.diversity_space)) + (features ? " of " + layer : "") + ")"
                                                                      : "")},
                 {"predicted response, lowest / highest dream", fmt(low) + " / " + fmt(top)},
                 {"time", fmt(seconds, 3) + " s"}};
  if (!job.images.empty())
    rep.summary.push_back({"best of the " + std::to_string(n_images) + " images", best_name + ": " + fmt(best)});
  const int64_t scale = std::max<int64_t>(1, (128 + S - 1) / S), cell = S * scale + 12;
  std::vector<Tensor> pngs;
  for (int64_t b = 0; b < B; ++b) pngs.push_back(to_rgb8(r.images.select(0, b), 1));
  {
    // The contact sheet: a row per dream, its response beside the best image's.
    const int64_t cols = job.images.empty() ? 1 : 2;
    std::ostringstream svg;
    svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << cols * cell + 20 << "\" height=\"" << B * (cell + 16) + 20
        << "\">";
    const std::string best_png = job.images.empty() ? "" : base64(io::encode_png(to_rgb8(best_image, scale)));
    for (int64_t b = 0; b < B; ++b) {
      const int64_t y = 4 + b * (cell + 16);
      svg << "<image x=\"0\" y=\"" << y << "\" width=\"" << S * scale << "\" height=\"" << S * scale
          << "\" href=\"data:image/png;base64," << base64(io::encode_png(to_rgb8(r.images.select(0, b), scale)))
          << "\"/><text x=\"0\" y=\"" << y + S * scale + 13 << "\" font-size=\"11\">dream " << b << " (seed "
          << job.seed + b << "): " << fmt(r.response[size_t(b)]) << "</text>";
      if (cols == 2)
        svg << "<image x=\"" << cell << "\" y=\"" << y << "\" width=\"" << S * scale << "\" height=\"" << S * scale
            << "\" href=\"data:image/png;base64," << best_png << "\"/><text x=\"" << cell << "\" y=\""
            << y + S * scale + 13 << "\" font-size=\"11\">best image " << html_escape(best_name) << ": " << fmt(best)
            << "</text>";
    }
    svg << "</svg>";
    rep.figures.push_back({svg.str(), "Each dream with its predicted " + html_escape(label) +
                                          (job.images.empty() ? "" : ", beside the best of the given images and its own")});
  }
  {
    ScatterPlot p;
    for (size_t s = 0; s < r.loss.size(); ++s) p.x.push_back(double(s + 1)), p.y.push_back(r.loss[s]);
    p.xlo = 1, p.xhi = double(std::max<int64_t>(2, opt.steps));
    p.ylo = *std::min_element(r.loss.begin(), r.loss.end()), p.yhi = *std::max_element(r.loss.begin(), r.loss.end());
    if (!(p.yhi > p.ylo)) p.yhi = p.ylo + 1;
    p.xlabel = "step", p.ylabel = "loss per image";
    rep.figures.push_back({svg_scatter(p), "The loss (minus the jittered target plus the penalties, per image) at each step"});
  }

  // Everything is computed: write.
  fs::create_directories(job.out);
  const fs::path out(job.out);
  io::write_npy((out / "dream.npy").string(), r.images);
  for (int64_t b = 0; b < B; ++b) io::write_png((out / ("dream_" + std::to_string(b) + ".png")).string(), pngs[size_t(b)]);
  const std::string js = j.dump(2);
  io::write_file_atomic((out / "dream.json").string(), js.data(), js.size());
  write_report((out / "report.html").string(), rep);

  DreamSummary s;
  s.json = j;
  std::ostringstream os;
  os << "dream: " << B << " image" << (B == 1 ? "" : "s") << " for " << label << ", " << opt.steps << " steps ("
     << dream_param_name(opt.param) << "): predicted response " << fmt(low) << " to " << fmt(top);
  if (!job.images.empty()) os << "; best of the " << n_images << " images " << fmt(best);
  os << " (" << fmt(seconds, 3) << " s)";
  s.line = os.str();
  return s;
}

}  // namespace cortex::analysis
