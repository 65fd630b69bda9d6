// A fitted encoding model as a differentiable function of the pixels (encoding/model_fn.h).
// The same construction as encoding::predict, with two differences: every step stays on the
// autograd tape (predict runs under NoGradGuard and uses the tape-free kernels::linear and
// Standardizer::apply), and the normalisation runs on float pixels instead of uint8 images.
#include "encoding/model_fn.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "data/dataset.h"
#include "models/load.h"
#include "tensor/error.h"
#include "tensor/io/image.h"

namespace cortex::encoding {
namespace {

namespace fs = std::filesystem;

Tensor channel_stat(const std::vector<double>& v) {
  return from_vector(std::vector<float>(v.begin(), v.end()), {1, 3, 1, 1});  // float32, as to_model_input
}

}  // namespace

Tensor ModelFn::operator()(const Tensor& pixels) const { return run(pixels, nullptr); }

std::pair<Tensor, Tensor> ModelFn::with_features(const Tensor& pixels) const {
  CORTEX_CHECK(backbone || spec.finetune, "model_fn: ", path, " has no backbone tap (it reads ",
               spec.readout == "core" ? "the grey image through its own core" : "the grey pixels",
               "), so it has no layer activations to give");
  Tensor tap;
  Tensor y = run(pixels, &tap);
  return {y, tap};
}

Tensor ModelFn::run(const Tensor& pixels, Tensor* tap) const {
  CORTEX_CHECK(pixels.defined() && pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == size &&
                   pixels.size(3) == size && pixels.dtype() == DType::Float32,
               "model_fn: expected float32 pixels (B, 3, ", size, ", ", size, "), found ",
               pixels.defined() ? dtype_name(pixels.dtype()) + std::string(" ") + shape_str(pixels.shape())
                                : "an undefined tensor");
  const bool clip = prep.stats == models::Preprocess::Clip;
  const Tensor mean = channel_stat(clip ? io::kClipMean : io::kImageNetMean);
  const Tensor sd = channel_stat(clip ? io::kClipStd : io::kImageNetStd);
  const Tensor x = div(sub(pixels, mean), sd);  // the same float32 ops as to_model_input
  InputSpec s = input_spec(spec, backbone.get());
  s.device = Device::cpu();
  s.compute_dtype = DType::Float32;
  if (spec.finetune) {
    if (!tap) return readout->read({x});
    // BackboneReadout::read, with its first tap kept.
    const auto& net = dynamic_cast<const models::BackboneReadout&>(*readout);
    net.backbone->train(false);
    const auto got = net.backbone->features(x, net.taps);
    std::vector<Tensor> feats;
    for (const auto& t : net.taps) feats.push_back(got.at(t));
    *tap = feats[0];
    return net.readout->read(feats);
  }
  std::vector<Tensor> in = inputs_of(backbone.get(), x, s, tap);
  if (z_mean.defined()) in[0] = div(sub(in[0], z_mean), z_std);
  if (readout) return readout->read(in);
  return add(matmul(in[0], ridge_w), ridge_b);
}

Tensor ModelFn::rf_centres_px() const {
  if (!readout) return Tensor();
  NoGradGuard ng;
  const Tensor c = readout->rf_centres();
  if (!c.defined()) return Tensor();
  // A fraction f of the map's extent (cell j of W at (j + 0.5) / W) covers the same fraction of the
  // input: input pixel f * S - 0.5 (pixel i spans [i, i + 1), centre i + 0.5 -> index i).
  const Tensor px = (c.to(DType::Float64) * double(size) - 0.5).contiguous();
  return px;
}

ModelFn load_model_fn(const std::string& model_file, const std::string& weights) {
  auto [tensors, m] = read_model_file(model_file);  // refuses another format_version or a missing key
  ModelFn f;
  f.path = model_file;
  f.settings = m;
  f.spec = spec_of_model(tensors, m, model_file, weights, 1, "cpu", "attribute");
  const EncodingSpec& o = f.spec;
  if (o.dtype != "fp32")
    std::cerr << "attribute: " << model_file << " was fitted with a " << o.dtype
              << " backbone; its gradients are taken in float32\n";
  f.spec.dtype = "fp32";
  f.size = input_size(o);
  NoGradGuard ng;
  if (o.finetune) {
    models::ModelConfig cfg = o.config.empty() ? models::config_for_arch(o.arch) : models::config_from_file(o.config);
    cfg.prefix = "backbone.";
    auto bb = models::load_backbone(cfg, model_file);
    CORTEX_CHECK(tensors.count("readout.bias"), "attribute: ", model_file, " lacks 'readout.bias'");
    f.voxels = tensors.at("readout.bias").numel();
    auto net = make_finetuned(o, bb, f.voxels, finetuned_keep(tensors));
    models::load_state_dict(*net, tensors, {}, model_file);
    f.prep = preprocessing_for(bb.get(), f.size, false);
    f.readout = net;
  } else {
    if (o.readout != "core" && o.tap != "pixels") f.backbone = make_backbone(o);
    f.prep = preprocessing_for(f.backbone.get(), f.size, false);
    // The readout's input shapes, from one forward of a blank image.
    std::vector<Tensor> blank = inputs_of(f.backbone.get(), zeros({1, 3, f.size, f.size}), input_spec(o, f.backbone.get()));
    if (o.readout == "ridge") {
      CORTEX_CHECK(tensors.count("weights") && tensors.count("intercept"), "attribute: ", model_file,
                   " lacks 'weights' or 'intercept'");
      f.ridge_w = tensors.at("weights").to(DType::Float32).contiguous();
      f.ridge_b = tensors.at("intercept").to(DType::Float32).contiguous();
      CORTEX_CHECK(f.ridge_w.dim() == 2 && f.ridge_w.size(0) == blank[0].size(1) && f.ridge_b.dim() == 1 &&
                       f.ridge_b.size(0) == f.ridge_w.size(1),
                   "attribute: ", model_file, " has ridge weights ", shape_str(f.ridge_w.shape()), " and intercept ",
                   shape_str(f.ridge_b.shape()), " for ", blank[0].size(1), " input features");
      f.voxels = f.ridge_w.size(1);
    } else {
      const std::string bias = readout_bias_key(o.readout);
      CORTEX_CHECK(tensors.count(bias), "attribute: ", model_file, " lacks '", bias, "'");
      f.voxels = tensors.at(bias).numel();
      std::vector<Tensor> keep;
      for (size_t l = 0; tensors.count("keep." + std::to_string(l)); ++l) keep.push_back(tensors.at("keep." + std::to_string(l)));
      std::map<std::string, Tensor> state = tensors;
      if (standardized(o.readout)) {
        CORTEX_CHECK(state.count("input_mean") && state.count("input_std"), "attribute: ", model_file,
                     " lacks 'input_mean' or 'input_std'");
        f.z_mean = state.at("input_mean").to(DType::Float32).contiguous();
        f.z_std = state.at("input_std").to(DType::Float32).contiguous();
        CORTEX_CHECK(f.z_mean.numel() == blank[0].size(1) && f.z_std.numel() == blank[0].size(1), "attribute: ",
                     model_file, " standardises ", f.z_mean.numel(), " features, the inputs have ", blank[0].size(1));
        state.erase("input_mean"), state.erase("input_std");
      }
      std::vector<Shape> shapes;
      for (const Tensor& t : blank) shapes.push_back(t.shape());
      f.readout = make_readout(o, shapes, f.voxels, keep);
      models::load_state_dict(*f.readout, state, {}, model_file);
    }
  }
  // Gradients flow to the pixels only: no parameter gradient is computed or accumulated.
  if (f.backbone) f.backbone->train(false), f.backbone->requires_grad(false);
  if (f.readout) f.readout->train(false), f.readout->requires_grad(false);
  return f;
}

Tensor load_pixels(const std::string& images, int64_t size, const std::vector<int64_t>& rows,
                   std::vector<std::string>* names) {
  CORTEX_CHECK(size >= 1, "load_pixels: expected an image size >= 1, found ", size);
  data::Dataset d;
  if (fs::is_directory(images) && (fs::exists(fs::path(images) / "test_split") ||
                                   fs::exists(fs::path(images) / "training_split"))) {
    data::LoadOptions lo;
    lo.rois = false;
    d = data::load_algonauts(images, fs::exists(fs::path(images) / "test_split") ? "test" : "train", lo);
  } else {
    d = data::load_images(images);
  }
  CORTEX_CHECK(d.size() > 0, "attribute: ", images, " holds no images");
  std::vector<int64_t> pick = rows;
  if (pick.empty())
    for (int64_t i = 0; i < d.size(); ++i) pick.push_back(i);
  Preprocessing p;
  p.size = size;
  p.crop = false;
  std::vector<Tensor> xs;
  for (int64_t i : pick) {
    CORTEX_CHECK(i >= 0 && i < d.size(), "attribute: image ", i, " is out of range: ", images, " holds ", d.size(),
                 " images");
    xs.push_back(prepare_geometry(d.image(i), p));
    if (names)
      names->push_back(d.image_paths.empty() ? "image " + std::to_string(i)
                                             : fs::path(d.image_paths[size_t(i)]).filename().string());
  }
  NoGradGuard ng;
  // The float32 value / 255 (a division, as to_model_input), channels first.
  const Tensor u8 = stack(xs, 0).permute({0, 3, 1, 2});
  return div(u8.to(DType::Float32), scalar(255.0, DType::Float32, Device::cpu())).contiguous();
}

std::vector<int64_t> parse_index_list(const std::string& s, int64_t n, const char* flag) {
  std::vector<int64_t> out;
  std::set<int64_t> seen;
  auto num = [&](const std::string& t) {
    CORTEX_CHECK(!t.empty() && t.size() < 19 && t.find_first_not_of("0123456789") == std::string::npos, flag,
                 " expects indices like 3,7,10-12, found '", s, "'");
    return std::stoll(t);
  };
  for (const std::string& item : split_commas(s, true)) {
    const size_t dash = item.find('-');
    int64_t lo, hi;
    if (dash == std::string::npos) {
      lo = hi = num(item);
    } else {
      lo = num(item.substr(0, dash)), hi = num(item.substr(dash + 1));
      CORTEX_CHECK(lo <= hi, flag, ": the range '", item, "' is empty (expected low-high with low <= high)");
    }
    CORTEX_CHECK(n < 0 || hi < n, flag, ": index ", hi, " is out of range: there are ", n, " (0 to ", n - 1, ")");
    CORTEX_CHECK(hi - lo < 10000000, flag, ": the range '", item, "' is too long");
    for (int64_t v = lo; v <= hi; ++v) {
      CORTEX_CHECK(seen.insert(v).second, flag, ": index ", v, " is given twice in '", s, "'");
      out.push_back(v);
    }
  }
  CORTEX_CHECK(!out.empty(), flag, " is empty");
  return out;
}

std::map<std::string, std::vector<int64_t>> roi_columns(const ModelFn& f, const std::string& data) {
  std::map<std::string, std::vector<int64_t>> rois;
  std::string source;
  if (!data.empty()) {
    data::LoadOptions lo;
    lo.hemi = f.spec.hemi;
    const bool test = fs::exists(fs::path(data) / "test_split");
    rois = data::load_algonauts(data, test ? "test" : "train", lo).rois;
    source = data + " (its ROI masks, hemi " + f.spec.hemi + ")";
  } else {
    const fs::path metrics = fs::path(f.path).parent_path() / "metrics.json";
    source = metrics.string();
    CORTEX_CHECK(fs::exists(metrics), "attribute: --roi needs the ROI columns: no ", metrics.string(),
                 " beside the model file; give --data SUBJ");
    std::ifstream in(metrics);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      throw Error("attribute: " + metrics.string() + " is not valid JSON: " + e.what());
    }
    CORTEX_CHECK(j.is_object() && j.contains("roi_columns") && j["roi_columns"].is_object(), "attribute: ",
                 metrics.string(), " has no 'roi_columns'; give --data SUBJ");
    try {
      rois = j["roi_columns"].get<std::map<std::string, std::vector<int64_t>>>();
    } catch (const std::exception&) {
      throw Error("attribute: " + metrics.string() + ": 'roi_columns' is not {name: [column, ...]}");
    }
  }
  for (auto& [name, cols] : rois)
    for (int64_t c : cols)
      CORTEX_CHECK(c >= 0 && c < f.voxels, "attribute: ROI '", name, "' of ", source, " has column ", c,
                   "; the model predicts ", f.voxels, " voxels");
  CORTEX_CHECK(!rois.empty(), "attribute: ", source, " defines no ROIs");
  return rois;
}

}  // namespace cortex::encoding
