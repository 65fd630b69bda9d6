// cortex fit: an encoding model from images to voxels, end to end on one dataset.
//
//   cortex fit --data subj01/ --arch alexnet --weights alexnet.safetensors --tap features.5
//              --out fit/   (one line)
//
// Inputs per image: the backbone's activation at --tap (images resized to --image-size and
// ImageNet-normalised, no crop, so receptive fields keep their positions), or for --readout core
// the grey image itself at --core-size. Readouts:
//   ridge     the tap average-pooled to --pool x --pool and flattened; per-voxel penalties chosen by
//             --folds-fold cross-validation over --alphas (models/readouts/ridge.h);
//   gaussian  a Gaussian readout (Lurz et al. 2020) on the tap's (C, H, W) map;
//   core      a 3-layer conv net trained from the images with a Gaussian readout;
// the last two trained with Adam on MSE + --l1, early stopping on a --val-fraction of the training
// images, a checkpoint every epoch (--resume continues an interrupted fit to the same result).
// Evaluation on the test split (Algonauts layout: test_split/ when it holds responses; plain pairs:
// a seeded --test-fraction): Pearson r, R², the challenge score, per ROI.
// Outputs in --out: model.safetensors (the settings as metadata), predictions.npy (test images x
// voxels), metrics.json and report.html, each written through a temporary file and renamed.
// --random-weights SEED builds the backbone with seeded random weights instead of --weights (for
// checks without pretrained weights, as in the demo).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "analysis/metrics.h"
#include "analysis/report.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "models/backbone.h"
#include "models/cnn.h"
#include "models/layers.h"
#include "models/readouts/readouts.h"
#include "models/readouts/ridge.h"
#include "models/readouts/train.h"
#include "tensor/io/atomic_file.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"

namespace cortex::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct FitOpts {
  std::string data, hemi = "lh", arch, config, weights, tap, out, alphas = "1e-2,1e-1,1,10,1e2,1e3,1e4,1e5";
  std::string readout = "ridge";
  int64_t epochs = 60, core_size = 32;
  double lr = 1e-2, l1 = 1e-4, val_fraction = 0.1;
  bool resume = false;
  int64_t random_weights = -1, image_size = 224, pool = 4, batch = 32, folds = 5;
  double test_fraction = 0.2;
  uint64_t seed = 0;
  bool drop_nan = false;
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<double> parse_alphas(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');) {
    char* end = nullptr;
    const double a = std::strtod(t.c_str(), &end);
    CORTEX_CHECK(!t.empty() && end && *end == '\0' && a > 0 && std::isfinite(a),
                 "fit: --alphas expects positive numbers separated by commas, found '", s, "'");
    out.push_back(a);
  }
  CORTEX_CHECK(!out.empty(), "fit: --alphas is empty");
  return out;
}

std::shared_ptr<models::Backbone> make_backbone(const FitOpts& o) {
  if (o.random_weights >= 0) {
    CORTEX_CHECK(o.weights.empty(), "fit: give --weights or --random-weights, not both");
    std::shared_ptr<models::Backbone> m;
    if (o.arch == "alexnet") {
      m = std::make_shared<models::AlexNet>();
    } else if (o.arch.rfind("resnet", 0) == 0) {
      m = std::make_shared<models::ResNet>(models::resnet_spec(o.arch));
    } else {
      throw Error("fit: --random-weights builds alexnet or resnet18/34/50/101/152, found --arch '" + o.arch + "'");
    }
    models::init_random(*m, static_cast<uint64_t>(o.random_weights));
    return m;
  }
  CORTEX_CHECK(!o.weights.empty(), "fit: give --weights (a safetensors state_dict) or --random-weights SEED");
  CORTEX_CHECK(o.arch.empty() != o.config.empty(), "fit: give exactly one of --arch and --config");
  const models::ModelConfig cfg = o.arch.empty() ? models::config_from_file(o.config) : models::config_for_arch(o.arch);
  return models::load_backbone(cfg, o.weights);
}

// uint8 (H, W, 3) -> float32 (3, S, S), ImageNet-normalised.
Tensor prepare(const Tensor& img, int64_t size) {
  Tensor x = img;
  if (img.size(0) != size || img.size(1) != size) x = io::resize(img, size, size);
  return io::normalize(io::to_float_chw(x), {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
}

// (B, C, H, W) -> (B, C * pool^2); (B, T, C) tokens -> (B, C) mean; (B, F) as is.
Tensor flatten_tap(const Tensor& t, int64_t pool, const std::string& tap) {
  if (t.dim() == 4) return adaptive_avg_pool2d(t, pool, pool).reshape({t.size(0), -1});
  if (t.dim() == 3) return mean(t, {1});
  CORTEX_CHECK(t.dim() == 2, "fit: tap '", tap, "' gives a ", t.dim(), "-D activation; expected 2-D, 3-D or 4-D");
  return t;
}

// Features of every row of d: float32 (N, F) for ridge (pooled, flattened), the tap's (N, C, H, W)
// map for the Gaussian readout, or the grey image itself (N, 1, S, S) for the data-driven core.
Tensor extract(models::Backbone* m, const data::Dataset& d, const FitOpts& o, const char* what) {
  NoGradGuard ng;
  data::BatchStream stream(d, o.batch);
  std::vector<Tensor> parts;
  data::Batch b;
  const auto t0 = Clock::now();
  int64_t done = 0;
  while (stream.next(b)) {
    std::vector<Tensor> xs;
    const int64_t size = o.readout == "core" ? o.core_size : o.image_size;
    for (int64_t i = 0; i < b.images.size(0); ++i) xs.push_back(prepare(b.images.select(0, i), size));
    Tensor x = stack(xs, 0);
    if (o.readout == "core") {
      parts.push_back(mean(x, {1}, true).contiguous());  // (B, 1, S, S): the core learns its own features
    } else if (o.tap == "pixels") {
      parts.push_back(mean(x, {1}).reshape({x.size(0), -1}).contiguous());  // grey pixels: the linear baseline
    } else {
      const Tensor t = m->features(x, {o.tap}).at(o.tap);
      if (o.readout == "gaussian") {
        CORTEX_CHECK(t.dim() == 4, "fit: the Gaussian readout needs a (N, C, H, W) feature map; tap '", o.tap,
                     "' gives ", shape_str(t.shape()));
        parts.push_back(t.contiguous());
      } else {
        parts.push_back(flatten_tap(t, o.pool, o.tap).contiguous());
      }
    }
    done += b.images.size(0);
    std::cerr << "\rfit: " << what << " features " << done << "/" << d.size() << " images (" << std::fixed
              << std::setprecision(1) << done / std::max(1e-9, seconds_since(t0)) << " images/s)" << std::flush;
  }
  std::cerr << "\n";
  CORTEX_CHECK(!parts.empty(), "fit: the ", what, " split has no images");
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

int run_fit(const FitOpts& o) {
  const auto t0 = Clock::now();
  const std::vector<double> alphas = parse_alphas(o.alphas);
  CORTEX_CHECK(o.pool >= 1, "fit: --pool must be >= 1, found ", o.pool);
  CORTEX_CHECK(o.batch >= 1, "fit: --batch must be >= 1, found ", o.batch);
  CORTEX_CHECK(o.folds >= 2, "fit: --folds must be >= 2, found ", o.folds);
  CORTEX_CHECK(o.image_size >= 16, "fit: --image-size must be >= 16, found ", o.image_size);
  CORTEX_CHECK(o.readout == "core" || !o.tap.empty(), "fit: --tap names the backbone layer to read (e.g. features.5, layer3.1)");
  CORTEX_CHECK(fs::is_directory(o.data), "fit: --data '", o.data, "' is not a directory");

  // The data: the Algonauts layout (train / test splits on disk) or plain pairs (a seeded split).
  data::LoadOptions lo;
  lo.hemi = o.hemi;
  lo.drop_nan = o.drop_nan;
  data::Dataset train, test;
  if (fs::exists(fs::path(o.data) / "training_split")) {
    train = data::load_algonauts(o.data, "train", lo);
    test = data::load_algonauts(o.data, "test", lo);
  } else {
    data::Dataset all = data::load_pairs(o.data, lo);
    const data::Split sp = data::split_fraction(all.size(), 0.0, o.test_fraction, o.seed);
    train = data::subset(all, sp.train);
    test = data::subset(all, sp.test);
  }
  CORTEX_CHECK(train.responses.defined() && train.size() > o.folds, "fit: the training split needs responses ",
               "and more than --folds (", o.folds, ") images, found ", train.size());
  std::cerr << "fit: " << train.size() << " training and " << test.size() << " test images, " << train.voxels()
            << " voxels (" << o.hemi << ")\n";

  CORTEX_CHECK(o.readout == "ridge" || o.readout == "gaussian" || o.readout == "core",
               "fit: --readout must be ridge, gaussian or core, found '", o.readout, "'");
  std::shared_ptr<models::Backbone> backbone;
  CORTEX_CHECK(o.tap != "pixels" || o.readout == "ridge", "fit: --tap pixels (the grey image as features) goes with --readout ridge");
  if (o.readout != "core" && o.tap != "pixels") backbone = make_backbone(o);
  const Tensor Xtr = extract(backbone.get(), train, o, "train");
  const Tensor Xte = test.size() > 0 ? extract(backbone.get(), test, o, "test") : Tensor();
  const std::string source = o.readout == "core"  ? "grey images " + std::to_string(o.core_size) + " px"
                             : o.tap == "pixels" ? "grey pixels " + std::to_string(o.image_size) + " px"
                                                 : (o.arch.empty() ? o.config : o.arch) + " " + o.tap;
  std::cerr << "fit: inputs " << shape_str(Xtr.shape()) << " from " << source << "\n";
  fs::create_directories(o.out);
  std::map<std::string, std::string> meta{
      {"readout", o.readout}, {"arch", o.arch.empty() ? o.config : o.arch}, {"tap", o.tap},
      {"pool", std::to_string(o.pool)}, {"image_size", std::to_string(o.image_size)}, {"hemi", o.hemi},
      {"weights", o.random_weights >= 0 ? "random:" + std::to_string(o.random_weights) : o.weights},
      {"core_size", std::to_string(o.core_size)}};
  analysis::ReportData rep;
  nlohmann::json metrics;
  Tensor pred;  // (test images, voxels)
  const auto t1 = Clock::now();
  if (o.readout == "ridge") {
    const models::RidgeCV fit = models::fit_ridge_cv(Xtr, train.responses, alphas, static_cast<int>(o.folds), o.seed);
    std::cerr << "fit: ridge, " << alphas.size() << " penalties x " << o.folds << " folds in " << std::fixed
              << std::setprecision(2) << seconds_since(t1) << " s\n";
    io::write_safetensors((fs::path(o.out) / "model.safetensors").string(),
                          {{"weights", fit.weights}, {"intercept", fit.intercept}, {"best_alpha", fit.best_alpha}},
                          meta);
    if (Xte.defined()) pred = models::ridge_predict(Xte, fit.weights, fit.intercept);
  } else {
    // A trained readout: Adam on MSE + L1 on the readout's features, early stopping on the mean r of
    // a seeded validation part of the training split, checkpointed every epoch (--resume continues).
    const int64_t V = train.voxels();
    std::shared_ptr<models::Readout> net;
    if (o.readout == "gaussian") {
      net = std::make_shared<models::GaussianReadout>(
          models::MapShape{Xtr.size(1), Xtr.size(2), Xtr.size(3)}, V, models::GaussSigma::Isotropic, 0.1, false,
          std::vector<int64_t>{}, o.seed);
    } else {
      net = std::make_shared<models::ConvGaussianModel>(1, 16, 3, 5, o.core_size, o.core_size, V,
                                                        models::GaussSigma::Isotropic, false, o.seed);
    }
    const data::Split sp = data::split_fraction(train.size(), o.val_fraction, 0.0, o.seed);
    auto take = [](const Tensor& t, const std::vector<int64_t>& idx) {
      return index_select(t, 0, from_vector(idx, {static_cast<int64_t>(idx.size())}, DType::Int64));
    };
    const Tensor y = train.responses;
    const models::BatchSource tr = models::in_memory_batches({take(Xtr, sp.train)}, take(y, sp.train), o.batch, true, o.seed);
    const models::BatchSource va = models::in_memory_batches({take(Xtr, sp.val)}, take(y, sp.val), 256, false, o.seed);
    models::TrainOptions to;
    to.max_epochs = o.epochs;
    to.lr = o.lr;
    to.penalty_weight = o.l1;
    to.patience = 8;
    to.seed = o.seed;
    to.checkpoint = (fs::path(o.out) / "checkpoint.safetensors").string();
    to.resume = o.resume;
    to.progress = [](const models::EpochReport& e) {
      std::cerr << "\rfit: epoch " << e.epoch + 1 << ", loss " << std::setprecision(4) << e.train_loss << ", val r "
                << std::setprecision(3) << e.val_r << " (best " << e.best_r << " at epoch " << e.best_epoch + 1 << ")   "
                << std::flush;
    };
    const models::TrainResult res = models::train_readout(*net, tr, va, to);
    std::cerr << "\nfit: " << o.readout << " readout, " << res.epochs << " epochs in " << std::fixed
              << std::setprecision(2) << seconds_since(t1) << " s, best val r " << res.best_r << "\n";
    metrics["epochs"] = res.epochs;
    metrics["best_val_r"] = res.best_r;
    net->train(false);
    io::write_safetensors((fs::path(o.out) / "model.safetensors").string(),
                          [&] {
                            std::vector<std::pair<std::string, Tensor>> v;
                            for (auto& [k, t] : models::state_dict(*net)) v.emplace_back(k, t);
                            return v;
                          }(),
                          meta);
    if (Xte.defined()) {
      NoGradGuard ng;
      pred = net->read({Xte}).contiguous();
    }
    // Receptive fields for the report: the first voxels' Gaussian positions drawn on the map grid.
    auto* g = o.readout == "gaussian" ? dynamic_cast<models::GaussianReadout*>(net.get()) : nullptr;
    if (g) {
      NoGradGuard ng;
      const Tensor mu = g->positions(1).select(0, 0).to(DType::Float64);  // (V, 2) in [-1, 1]
      const int64_t H = Xtr.size(2), W = Xtr.size(3);
      for (int64_t v = 0; v < std::min<int64_t>(V, 8); ++v) {
        Tensor m = zeros({4 * H, 4 * W}, DType::Float32);
        const double x = (mu.at({v, 0}) + 1) / 2 * (4 * W - 1), yv = (mu.at({v, 1}) + 1) / 2 * (4 * H - 1);
        for (int64_t i = 0; i < 4 * H; ++i)
          for (int64_t j = 0; j < 4 * W; ++j)
            m.select(0, i).select(0, j).fill_(std::exp(-((j - x) * (j - x) + (i - yv) * (i - yv)) / 8.0));
        rep.images.push_back({"voxel " + std::to_string(v) + " position", m});
      }
    }
  }
  std::cerr << "fit: wrote " << (fs::path(o.out) / "model.safetensors").string() << "\n";

  metrics["train_images"] = train.size();
  metrics["test_images"] = test.size();
  metrics["voxels"] = train.voxels();
  metrics["inputs"] = Xtr.shape();
  metrics["readout"] = o.readout;
  metrics["tap"] = o.tap;
  rep.title = "cortex fit: " + o.readout + " on " + source;
  if (pred.defined()) {
    io::write_npy((fs::path(o.out) / "predictions.npy").string(), pred);
    if (test.responses.defined()) {
      const Tensor r = analysis::pearson_r(pred, test.responses);
      const Tensor r2 = analysis::r2_score(pred, test.responses);
      const std::vector<double> rv = r.to_vector<double>();
      double mean_r = 0;
      for (double v : rv) mean_r += v;
      mean_r /= std::max<size_t>(1, rv.size());
      metrics["mean_r"] = num(mean_r);
      metrics["mean_r2"] = num(mean(r2).item());
      rep.r = rv;
      rep.summary.push_back({"mean r (test)", std::to_string(mean_r)});
      if (test.noise_ceiling.defined()) {
        const analysis::ChallengeScore cs = analysis::challenge_score(r, test.noise_ceiling);
        metrics["challenge_score"] = num(cs.score);
        metrics["challenge_voxels_used"] = cs.voxels_used;
        rep.noise_ceiling = test.noise_ceiling.to(DType::Float64).to_vector<double>();
        rep.summary.push_back({"challenge score (r² / NC x 100)", std::to_string(cs.score)});
      }
      if (!test.rois.empty()) {
        nlohmann::json rois = nlohmann::json::object();
        for (const auto& s : analysis::roi_summaries(r, test.noise_ceiling, test.rois))
          rois[s.name] = {{"voxels", s.voxels}, {"mean_r", num(s.mean_r)}, {"median_r", num(s.median_r)},
                          {"score", num(s.score)}};
        metrics["rois"] = rois;
        rep.roi.assign(rv.size(), "other");
        for (const auto& [name, cols] : test.rois)
          for (int64_t c : cols)
            if (c >= 0 && c < static_cast<int64_t>(rep.roi.size())) rep.roi[static_cast<size_t>(c)] = name;
      }
      std::cout << "fit: " << o.readout << " on " << source << ": mean r " << std::setprecision(3) << mean_r << " over "
                << train.voxels() << " voxels";
      if (metrics.contains("challenge_score") && metrics["challenge_score"].is_number())
        std::cout << ", challenge score " << std::fixed << std::setprecision(1) << metrics["challenge_score"].get<double>();
      std::cout << "; results in " << o.out << "\n";
    }
  }
  rep.summary.push_back({"training images", std::to_string(train.size())});
  rep.summary.push_back({"inputs", shape_str(Xtr.shape()) + " from " + source});
  const std::string mj = metrics.dump(2);
  io::write_file_atomic((fs::path(o.out) / "metrics.json").string(), mj.data(), mj.size());
  if (!rep.r.empty()) analysis::write_report((fs::path(o.out) / "report.html").string(), rep);
  std::cerr << "fit: done in " << std::setprecision(1) << seconds_since(t0) << " s\n";
  return 0;
}

}  // namespace

// cortex predict: a model written by cortex fit applied to new images.
//
//   cortex predict --model fit/model.safetensors --images imgs/|images.npy --out pred.npy
//                  [--weights backbone.safetensors]   (one line)
//
// The settings (readout, backbone, tap, pooling, image size) come from the model file's metadata;
// --weights is needed only when the fit used a weights file that has moved. Images: a folder of
// PNG/JPEG files (sorted by name) or a uint8 (N, H, W, 3) .npy; the output is (N, voxels) float32.
int run_predict(const std::string& model_path, const std::string& images, const std::string& weights,
                const std::string& out, int64_t batch) {
  CORTEX_CHECK(batch >= 1, "predict: --batch must be >= 1, found ", batch);
  const std::map<std::string, Tensor> tensors = io::load_safetensors(model_path);
  const auto meta = io::SafeTensors::open(model_path).metadata();
  auto need = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    CORTEX_CHECK(it != meta.end(), "predict: ", model_path, " has no '", key, "' in its metadata; was it written by cortex fit?");
    return it->second;
  };
  auto integer = [&](const char* key) {
    const std::string& v = need(key);
    char* end = nullptr;
    const long long x = std::strtoll(v.c_str(), &end, 10);
    CORTEX_CHECK(!v.empty() && end && *end == '\0', "predict: metadata '", key, "' is not an integer: '", v, "'");
    return static_cast<int64_t>(x);
  };
  FitOpts o;
  o.readout = need("readout");
  o.arch = need("arch");
  o.tap = need("tap");
  o.pool = integer("pool");
  o.image_size = integer("image_size");
  o.core_size = meta.count("core_size") ? integer("core_size") : 32;
  o.batch = batch;
  const std::string& w = need("weights");
  if (!weights.empty()) {
    o.weights = weights;
  } else if (w.rfind("random:", 0) == 0) {
    o.random_weights = std::stoll(w.substr(7));
  } else {
    o.weights = w;
  }
  // The images as a dataset without responses.
  data::Dataset d;
  d.name = images;
  if (fs::is_directory(images)) {
    d.image_paths = data::list_images(images);
    CORTEX_CHECK(!d.image_paths.empty(), "predict: expected PNG or JPEG files in '", images, "', found none");
  } else {
    d.images = io::read_npy(images);
    CORTEX_CHECK(d.images.dtype() == DType::UInt8 && d.images.dim() == 4 && d.images.size(3) == 3 && d.images.size(0) > 0,
                 "predict: ", images, ": expected uint8 (N, H, W, 3) images, found ", dtype_name(d.images.dtype()), " ",
                 shape_str(d.images.shape()));
  }
  const int64_t n = d.image_paths.empty() ? d.images.size(0) : static_cast<int64_t>(d.image_paths.size());
  for (int64_t i = 0; i < n; ++i) d.rows.push_back(i);

  std::shared_ptr<models::Backbone> backbone;
  if (o.readout != "core" && o.tap != "pixels") backbone = make_backbone(o);
  const Tensor X = extract(backbone.get(), d, o, "input");
  Tensor pred;
  if (o.readout == "ridge") {
    CORTEX_CHECK(tensors.count("weights") && tensors.count("intercept"), "predict: ", model_path,
                 " lacks 'weights' or 'intercept'");
    pred = models::ridge_predict(X, tensors.at("weights"), tensors.at("intercept"));
  } else {
    const char* bias = o.readout == "core" ? "readout.bias" : "bias";
    CORTEX_CHECK(tensors.count(bias), "predict: ", model_path, " lacks '", bias, "'");
    const int64_t V = tensors.at(bias).numel();
    std::shared_ptr<models::Readout> net;
    if (o.readout == "gaussian")
      net = std::make_shared<models::GaussianReadout>(models::MapShape{X.size(1), X.size(2), X.size(3)}, V,
                                                      models::GaussSigma::Isotropic);
    else if (o.readout == "core")
      net = std::make_shared<models::ConvGaussianModel>(1, 16, 3, 5, o.core_size, o.core_size, V,
                                                        models::GaussSigma::Isotropic);
    else
      throw Error("predict: unknown readout '" + o.readout + "' in " + model_path);
    models::load_state_dict(*net, tensors, {}, model_path);
    net->train(false);
    NoGradGuard ng;
    pred = net->read({X}).contiguous();
  }
  io::write_npy(out, pred.to(DType::Float32));
  std::cout << "predict: " << shape_str(pred.shape()) << " predictions (" << o.readout << ") written to " << out << "\n";
  return 0;
}

Run add_predict(CLI::App& app) {
  auto* sub = app.add_subcommand("predict", "Predict voxel responses to new images with a model from cortex fit");
  struct P {
    std::string model, images, weights, out;
    int64_t batch = 32;
  };
  auto p = std::make_shared<P>();
  sub->add_option("--model", p->model, "model.safetensors written by cortex fit")->required();
  sub->add_option("--images", p->images, "Folder of PNG/JPEG files or a uint8 (N, H, W, 3) .npy")->required();
  sub->add_option("--weights", p->weights, "Backbone weights, when not where the fit found them");
  sub->add_option("--batch", p->batch, "Images per forward pass")->capture_default_str();
  sub->add_option("--out", p->out, "Output .npy (images, voxels)")->required();
  return [p] { return run_predict(p->model, p->images, p->weights, p->out, p->batch); };
}

Run add_fit(CLI::App& app) {
  auto* sub = app.add_subcommand("fit", "Fit a ridge encoding model from a backbone's features to voxel responses");
  auto o = std::make_shared<FitOpts>();
  sub->add_option("--data", o->data, "Subject folder (Algonauts layout) or a folder of images.npy + responses.npy")
      ->required();
  sub->add_option("--hemi", o->hemi, "lh, rh or both")->capture_default_str();
  sub->add_option("--arch", o->arch, "Backbone preset (alexnet, resnet50, vit_b_16, ...)");
  sub->add_option("--config", o->config, "Backbone JSON config instead of --arch");
  sub->add_option("--weights", o->weights, "Backbone weights (.safetensors, PyTorch state_dict names)");
  sub->add_option("--random-weights", o->random_weights, "Seeded random backbone weights instead of --weights");
  sub->add_option("--readout", o->readout, "ridge (CV penalties), gaussian (Lurz readout on the tap's map) or core "
                  "(a conv net trained from the images with a Gaussian readout)")->capture_default_str();
  sub->add_option("--tap", o->tap, "The backbone layer whose activation is the feature (ridge, gaussian); "
                  "'pixels': the grey image itself, no backbone (a linear baseline)");
  sub->add_option("--epochs", o->epochs, "gaussian/core: most epochs (early stopping on validation r)")
      ->capture_default_str();
  sub->add_option("--lr", o->lr, "gaussian/core: Adam learning rate")->capture_default_str();
  sub->add_option("--l1", o->l1, "gaussian/core: weight of the L1 penalty on readout features")->capture_default_str();
  sub->add_option("--val-fraction", o->val_fraction, "gaussian/core: part of training images for early stopping")
      ->capture_default_str();
  sub->add_option("--core-size", o->core_size, "core: images are resized to this size")->capture_default_str();
  sub->add_flag("--resume", o->resume, "gaussian/core: continue from --out/checkpoint.safetensors");
  sub->add_option("--pool", o->pool, "Average-pool a feature map to pool x pool before the readout")
      ->capture_default_str();
  sub->add_option("--image-size", o->image_size, "Images are resized to this square size")->capture_default_str();
  sub->add_option("--batch", o->batch, "Images per forward pass")->capture_default_str();
  sub->add_option("--alphas", o->alphas, "Ridge penalties to cross-validate")->capture_default_str();
  sub->add_option("--folds", o->folds, "Cross-validation folds")->capture_default_str();
  sub->add_option("--test-fraction", o->test_fraction, "Plain pairs: held-out fraction")->capture_default_str();
  sub->add_option("--seed", o->seed, "Folds and splits")->capture_default_str();
  sub->add_flag("--drop-nan", o->drop_nan, "Skip images whose responses contain NaN (they are refused otherwise)");
  sub->add_option("--out", o->out, "Output folder")->required();
  return [o] { return run_fit(*o); };
}

}  // namespace cortex::cli
