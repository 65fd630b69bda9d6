// The encoding pipeline's pieces, moved from cli/fit.cpp (encoding/pipeline.h says what each is).
#include "encoding/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <numeric>
#include <set>
#include <sstream>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "data/simulate.h"
#include "dist/comm.h"
#include "encoding/model_file.h"
#include "models/cnn.h"
#include "models/layers.h"
#include "models/readouts/channel_align.h"
#include "models/readouts/ridge.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"

namespace cortex::encoding {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

Device device_option(const std::string& s) {
  if (s.empty()) return cuda_available() ? Device::cuda(0) : Device::cpu();
  return Device::parse(s);
}

std::vector<std::string> split_commas(const std::string& s, bool keep_empty) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (keep_empty || !t.empty()) out.push_back(t);
  return out;
}


const ReadoutKind kKinds[] = {
    {"ridge", Input::Flat, false},      {"gaussian-fwrf", Input::Maps, false}, {"gaussian", Input::Map, true},
    {"factorized", Input::Map, true},   {"fwrf", Input::Maps, true},          {"pooled-linear", Input::Maps, true},
    {"two-layer", Input::Flat, true},   {"linear", Input::Flat, true},        {"core", Input::Grey, true},
    {"channel-align", Input::Maps, true}};

const ReadoutKind& kind_of(const std::string& name) {
  std::string all;
  for (const auto& k : kKinds) {
    if (name == k.name) return k;
    all += std::string(all.empty() ? "" : ", ") + k.name;
  }
  throw Error("fit: --readout must be one of " + all + ", found '" + name + "'");
}

Input input_of(const EncodingSpec& o) { return o.finetune ? Input::Images : kind_of(o.readout).input; }

std::vector<double> parse_positive(const std::string& s, const char* flag) {
  std::vector<double> out;
  for (const std::string& t : split_commas(s)) {
    char* end = nullptr;
    const double a = std::strtod(t.c_str(), &end);
    CORTEX_CHECK(end && *end == '\0' && a > 0 && std::isfinite(a), "fit: ", flag,
                 " expects positive numbers separated by commas, found '", s, "'");
    out.push_back(a);
  }
  CORTEX_CHECK(!out.empty(), "fit: ", flag, " is empty");
  return out;
}

std::shared_ptr<models::Backbone> make_backbone(const EncodingSpec& o) {
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

int64_t input_size(const EncodingSpec& o) { return o.readout == "core" ? o.core_size : o.image_size; }

// How fit and predict turn images into the readout's inputs: the backbone's own preprocessing
// (encoding/features.h), the whole image resized (no crop: map cells keep their image positions).
InputSpec input_spec(const EncodingSpec& o, const models::Backbone* m) {
  InputSpec s;
  s.input = input_of(o);
  s.taps = split_commas(o.tap);
  s.pool = o.pool;
  s.prep = preprocessing_for(m, input_size(o), false);
  s.batch = o.batch;
  s.device = device_option(o.device);
  s.compute_dtype = o.dtype == "bf16" ? DType::BFloat16 : DType::Float32;  // checked by fit and predict
  s.readout = o.readout;
  return s;
}

std::vector<Tensor> extract(models::Backbone* m, const data::Dataset& d, const EncodingSpec& o, const char* what) {
  return readout_inputs(m, d, input_spec(o, m), what);
}


// FNV-1a, for cache file names (the full key is checked inside the file).
std::string hex_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  std::ostringstream os;
  os << std::hex << std::setw(16) << std::setfill('0') << h;
  return os.str();
}

// What a file is, for cache keys: its canonical path, size and modification time.
std::string file_identity(const std::string& path) {
  std::error_code ec;
  const fs::path c = fs::weakly_canonical(path, ec);
  std::ostringstream os;
  os << (ec ? path : c.string());
  if (fs::exists(path, ec) && !fs::is_directory(path, ec))
    os << " bytes=" << fs::file_size(path, ec) << " mtime=" << fs::last_write_time(path, ec).time_since_epoch().count();
  return os.str();
}

// Everything the readout inputs of dataset `images` depend on (the images: their source and rows).
std::string cache_key(const EncodingSpec& o, const models::Backbone* m, const std::string& images) {
  std::ostringstream os;
  const Preprocessing p = input_spec(o, m).prep;
  os << "cortex fit features v2; backbone=" << (o.arch.empty() ? file_identity(o.config) : o.arch)
     << "; weights=" << (o.random_weights >= 0 ? "random:" + std::to_string(o.random_weights) : file_identity(o.weights))
     << "; taps=" << o.tap << "; image_size=" << o.image_size
     << "; preprocess=" << (p.stats == models::Preprocess::Clip ? "clip" : "imagenet") << "; crop=" << p.crop
     << "; input=" << static_cast<int>(input_of(o));
  if (input_of(o) == Input::Flat) os << "; pool=" << o.pool;
  if (o.dtype != "fp32") os << "; dtype=" << o.dtype;  // fp32 keys unchanged: older caches stay valid
  os << "; images=" << images;
  return os.str();
}

std::string rows_identity(const data::Dataset& d, const std::string& source, const std::string& split) {
  std::ostringstream rows;
  for (int64_t r : d.rows) rows << r << ',';
  return file_identity(source) + " split=" + split + " n=" + std::to_string(d.size()) + " rows#" + hex_hash(rows.str());
}

// extract() through the --cache folder: reuses a file whose key matches, else computes and writes one.
std::vector<Tensor> features(models::Backbone* m, const data::Dataset& d, const EncodingSpec& o, const char* what,
                             const std::string& images) {
  const Input in = input_of(o);
  if (o.cache.empty() || in == Input::Grey || in == Input::Images || o.tap == "pixels") return extract(m, d, o, what);
  const std::string key = cache_key(o, m, images);
  const fs::path path = fs::path(o.cache) / ("features-" + hex_hash(key) + ".safetensors");
  if (fs::exists(path)) {
    const io::SafeTensors f = io::SafeTensors::open(path.string());
    const auto meta = f.metadata();
    if (meta.count("key") && meta.at("key") == key) {
      const auto all = io::load_safetensors(path.string());
      std::vector<Tensor> out;
      for (size_t k = 0; all.count("input." + std::to_string(k)); ++k) out.push_back(all.at("input." + std::to_string(k)));
      CORTEX_CHECK(!out.empty() && out[0].size(0) == d.size(), "fit: cached features ", path.string(),
                   " do not match the ", what, " split (", d.size(), " images); delete the file");
      std::cerr << "fit: " << what << " features from the cache " << path.string() << "\n";
      return out;
    }
  }
  std::vector<Tensor> out = extract(m, d, o, what);
  if (!dist::is_root()) return out;  // under MPI ranks rank 0 writes the files
  fs::create_directories(o.cache);
  std::vector<std::pair<std::string, Tensor>> named;
  for (size_t k = 0; k < out.size(); ++k) named.emplace_back("input." + std::to_string(k), out[k]);
  io::write_safetensors(path.string(), named, {{"key", key}});
  std::cerr << "fit: cached the " << what << " features in " << path.string() << "\n";
  return out;
}

models::MapShape map_shape(const Shape& s) { return {s[1], s[2], s[3]}; }

models::ChannelAlignOptions channel_align_options(const EncodingSpec& o) {
  models::ChannelAlignOptions ca;
  ca.dim = o.hidden;
  for (const std::string& item : split_commas(o.align_reg)) {
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq == std::string::npos ? item.size() : eq);
    char* end = nullptr;
    const double v = eq == std::string::npos ? std::nan("") : std::strtod(item.c_str() + eq + 1, &end);
    CORTEX_CHECK(eq != std::string::npos && end && *end == '\0' && std::isfinite(v) && v >= 0,
                 "fit: --align-reg expects KEY=VALUE items (eigen, focal, zero, cov, k, nodes, t, gamma), VALUE >= 0, "
                 "found '", item, "'");
    if (key == "eigen") ca.eigen = v;
    else if (key == "focal") ca.focal = v;
    else if (key == "zero") ca.zero_centre = v;
    else if (key == "cov") ca.covariance = v;
    else if (key == "k") ca.eig_k = static_cast<int64_t>(v);
    else if (key == "nodes") ca.nodes = static_cast<int64_t>(v);
    else if (key == "t") ca.temperature = v;
    else if (key == "gamma") ca.focal_gamma = v;
    else throw Error("fit: --align-reg: unknown key '" + key + "' (eigen, focal, zero, cov, k, nodes, t, gamma)");
  }
  return ca;
}

// The readout of kind o.readout for inputs of these shapes (batch dim included) and V outputs.
// keep: fwrf's kept channels per map (empty: all).
std::shared_ptr<models::Readout> make_readout(const EncodingSpec& o, const std::vector<Shape>& in, int64_t V,
                                              const std::vector<Tensor>& keep) {
  const std::string& k = o.readout;
  const bool elu = o.loss == "poisson";
  std::vector<models::MapShape> maps;
  if (kind_of(k).input == Input::Map || kind_of(k).input == Input::Maps)
    for (const Shape& s : in) maps.push_back(map_shape(s));
  if (k == "gaussian") {
    const models::GaussSigma sigma = o.sigma == "full"           ? models::GaussSigma::Full
                                     : o.sigma == "uncorrelated" ? models::GaussSigma::Uncorrelated
                                                                 : models::GaussSigma::Isotropic;
    std::vector<int64_t> groups;  // contiguous blocks of voxels, one feature vector per block
    CORTEX_CHECK(o.shared_features <= V, "fit: --shared-features ", o.shared_features, " is more groups than the ", V,
                 " voxels");
    for (int64_t v = 0; o.shared_features > 0 && v < V; ++v) groups.push_back(v * o.shared_features / V);
    models::PositionMLP pm;
    if (o.position_coords.defined()) {
      CORTEX_CHECK(o.position_coords.dim() == 2 && o.position_coords.size(0) == V, "fit: --position-mlp ",
                   o.position_mlp, ": expected (", V, " voxels, D) coordinates, found ", shape_str(o.position_coords.shape()));
      pm.coords = o.position_coords;
    }
    return std::make_shared<models::GaussianReadout>(maps[0], V, sigma, 0.1, elu, groups, o.seed, pm);
  }
  if (k == "factorized") return std::make_shared<models::Factorized>(maps[0], V, o.seed);
  if (k == "fwrf") return std::make_shared<models::FwRF>(maps, V, keep, o.seed);
  if (k == "gaussian-fwrf") return std::make_shared<models::GaussianFwRF>(maps, V);
  if (k == "pooled-linear") return std::make_shared<models::PooledLinear>(maps, V, o.seed);
  if (k == "channel-align") return std::make_shared<models::ChannelAlign>(maps, V, channel_align_options(o), o.seed);
  if (k == "two-layer") return std::make_shared<models::TwoLayerEncoder>(in[0][1], o.hidden, V, o.seed);
  if (k == "linear") return std::make_shared<models::LinearEncoder>(in[0][1], V, o.seed);
  if (k == "core")
    return std::make_shared<models::ConvGaussianModel>(1, 16, 3, 5, o.core_size, o.core_size, V,
                                                       models::GaussSigma::Isotropic, elu, o.seed);
  throw Error("fit: --readout " + k + " is not a trained readout");
}

// The readout of a fine-tuned backbone: built on the taps' shapes from one forward of a blank image.
std::shared_ptr<models::BackboneReadout> make_finetuned(const EncodingSpec& o, std::shared_ptr<models::Backbone> bb,
                                                        int64_t V, const std::vector<Tensor>& keep) {
  std::vector<Shape> shapes;
  {
    NoGradGuard ng;
    EncodingSpec frozen = o;
    frozen.finetune = false;
    const Tensor blank = zeros({1, 3, o.image_size, o.image_size});
    for (const Tensor& t : inputs_of(bb.get(), blank, input_spec(frozen, bb.get()))) shapes.push_back(t.shape());
  }
  return std::make_shared<models::BackboneReadout>(bb, split_commas(o.tap), make_readout(o, shapes, V, keep));
}

std::string readout_bias_key(const std::string& readout) {
  return readout == "core"            ? "readout.bias"
         : readout == "channel-align" ? "head.bias"
         : readout == "two-layer"     ? "fc2.bias"
         : readout == "linear"        ? "fc.bias"
                                      : "bias";
}

std::vector<Tensor> finetuned_keep(const std::map<std::string, Tensor>& tensors) {
  std::vector<Tensor> keep;
  for (size_t l = 0; tensors.count("readout.keep." + std::to_string(l)); ++l)
    keep.push_back(tensors.at("readout.keep." + std::to_string(l)));
  return keep;
}

std::vector<Tensor> rank_channels_before_finetuning(models::Backbone* bb, const data::Dataset& d,
                                                    const std::vector<int64_t>& rows, const EncodingSpec& o) {
  CORTEX_CHECK(rows.size() >= 2, "fit: --keep ranks channels by their std over training images; found ", rows.size());
  NoGradGuard ng;
  EncodingSpec frozen = o;
  frozen.finetune = false;
  const InputSpec spec = input_spec(frozen, bb);
  const Preprocessing pre = preprocessing_for(bb, o.image_size, false);
  std::vector<std::vector<Tensor>> means;  // per tap, per batch: (b, C, 1, 1) spatial means
  for (size_t lo = 0; lo < rows.size(); lo += static_cast<size_t>(o.batch)) {
    const std::vector<int64_t> part(rows.begin() + lo, rows.begin() + std::min(rows.size(), lo + o.batch));
    const std::vector<Tensor> maps = inputs_of(bb, prepare_rows(d, part, pre), spec);
    if (means.empty()) means.resize(maps.size());
    for (size_t l = 0; l < maps.size(); ++l) means[l].push_back(mean(maps[l], {2, 3}, true).contiguous());
  }
  // The std of a (B, C, 1, 1) map's spatial mean is that of the full map's: the same ranking as
  // the frozen path, without holding every training image's feature maps.
  std::vector<Tensor> per_tap;
  for (auto& m : means) per_tap.push_back(m.size() == 1 ? m[0] : concat(m, 0));
  return models::prune_channels(per_tap, o.keep);
}

// Predictions of a readout for inputs held in memory, `batch` rows at a time.
Tensor predict_inputs(models::Readout& net, const std::vector<Tensor>& in, int64_t batch) {
  NoGradGuard ng;
  net.train(false);
  std::vector<Tensor> parts;
  const int64_t n = in[0].size(0);
  for (int64_t lo = 0; lo < n; lo += batch) {
    std::vector<Tensor> b;
    for (const Tensor& t : in) b.push_back(t.narrow(0, lo, std::min(batch, n - lo)));
    parts.push_back(net.read(b).contiguous());
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

// Trained readouts on flat features (two-layer, linear) see them z-scored with the training set's
// column means and standard deviations (kept in the model file as "input_mean" / "input_std"):
// pooled backbone activations can be large enough to saturate the encoder's sigmoid from the start.
Standardizer Standardizer::fit(const Tensor& x) {
  NoGradGuard ng;
  Standardizer z;
  z.mean = cortex::mean(x, {0}, true).contiguous();
  z.std = (std_dev(x, {0}, 0, true) + 1e-6).contiguous();  // a constant column stays finite
  return z;
}

Tensor Standardizer::apply(const Tensor& x) const {
  NoGradGuard ng;
  return ((x - mean) / std).contiguous();
}

bool standardized(const std::string& readout) { return readout == "two-layer" || readout == "linear"; }

// Predictions of a fine-tuned model, decoding and preparing the images batch by batch.
Tensor predict_images(models::BackboneReadout& net, const data::Dataset& d, const EncodingSpec& o) {
  NoGradGuard ng;
  const Preprocessing prep = preprocessing_for(net.backbone.get(), o.image_size, false);
  net.train(false);
  std::vector<Tensor> parts;
  for (int64_t lo = 0; lo < d.size(); lo += o.batch) {
    std::vector<int64_t> rows;
    for (int64_t i = lo; i < std::min(d.size(), lo + o.batch); ++i) rows.push_back(i);
    parts.push_back(net.read({prepare_rows(d, rows, prep)}).contiguous());
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

// Batches of the dataset rows `rows` decoded and prepared on demand (fine-tuning: the images
// never sit in memory all at once), in models::epoch_order.
models::BatchSource image_batches(const data::Dataset& d, const std::vector<int64_t>& rows, int64_t batch,
                                  bool shuffle, const EncodingSpec& o, const models::Backbone* m) {
  models::BatchSource src;
  const int64_t n = static_cast<int64_t>(rows.size());
  src.n_batches = (n + batch - 1) / batch;
  const Tensor y = d.responses;
  const Preprocessing prep = preprocessing_for(m, o.image_size, false);
  const uint64_t seed = o.seed;
  src.get = [&d, rows, y, n, batch, shuffle, seed, prep](int64_t epoch, int64_t i) {
    const std::vector<int64_t> order = models::epoch_order(n, shuffle, seed, epoch);
    std::vector<int64_t> pick;
    for (int64_t k = i * batch; k < std::min(n, (i + 1) * batch); ++k) pick.push_back(rows[order[k]]);
    models::Batch b;
    b.maps = {prepare_rows(d, pick, prep)};
    b.y = index_select(y, 0, from_vector(pick, {static_cast<int64_t>(pick.size())}, DType::Int64));
    return b;
  };
  return src;
}

// A split of the rows on disk as indices into `d` (whose drop_nan may have skipped some rows: those
// leave every part, with a note on stderr).
data::Split kept(const data::Split& on_disk, const data::Dataset& d) {
  std::vector<int64_t> pos(static_cast<size_t>(d.source_rows), -1);
  for (size_t i = 0; i < d.rows.size(); ++i) pos[static_cast<size_t>(d.rows[i])] = static_cast<int64_t>(i);
  int64_t dropped = 0;
  auto map = [&](const std::vector<int64_t>& rows) {
    std::vector<int64_t> out;
    for (int64_t r : rows) (pos[static_cast<size_t>(r)] >= 0 ? out.push_back(pos[static_cast<size_t>(r)]) : void(++dropped));
    return out;
  };
  data::Split s{map(on_disk.train), map(on_disk.val), map(on_disk.test)};
  if (dropped) std::cerr << "fit: " << dropped << " indexed rows were skipped for NaN responses (--drop-nan)\n";
  return s;
}

void check_opts(const EncodingSpec& o) {
  const ReadoutKind& k = kind_of(o.readout);
  CORTEX_CHECK(o.pool >= 1, "fit: --pool must be >= 1, found ", o.pool);
  CORTEX_CHECK(o.batch >= 1, "fit: --batch must be >= 1, found ", o.batch);
  CORTEX_CHECK(o.folds >= 2, "fit: --folds must be >= 2, found ", o.folds);
  CORTEX_CHECK(o.image_size >= 16, "fit: --image-size must be >= 16, found ", o.image_size);
  CORTEX_CHECK(o.core_size >= 8, "fit: --core-size must be >= 8, found ", o.core_size);
  CORTEX_CHECK(o.hidden >= 1, "fit: --hidden must be >= 1, found ", o.hidden);
  CORTEX_CHECK(o.grid >= 1, "fit: --grid must be >= 1, found ", o.grid);
  CORTEX_CHECK(o.epochs >= 1, "fit: --epochs must be >= 1, found ", o.epochs);
  CORTEX_CHECK(o.keep > 0 && o.keep <= 1, "fit: --keep must be in (0, 1], found ", o.keep);
  CORTEX_CHECK(o.lr >= 0 && std::isfinite(o.lr), "fit: --lr must be > 0, found ", o.lr);
  CORTEX_CHECK(o.backbone_lr > 0, "fit: --backbone-lr must be > 0, found ", o.backbone_lr);
  CORTEX_CHECK(o.val_fraction > 0 && o.val_fraction < 1, "fit: --val-fraction must be in (0, 1), found ", o.val_fraction);
  CORTEX_CHECK(o.optim == "adam" || o.optim == "adamw", "fit: --optim must be adam or adamw, found '", o.optim, "'");
  CORTEX_CHECK(o.weight_decay >= 0 && std::isfinite(o.weight_decay), "fit: --weight-decay must be >= 0, found ",
               o.weight_decay);
  CORTEX_CHECK(o.loss == "mse" || o.loss == "l1" || o.loss == "poisson", "fit: --loss must be mse, l1 or poisson, found '",
               o.loss, "'");
  CORTEX_CHECK(o.loss != "poisson" || o.readout == "gaussian" || o.readout == "core",
               "fit: --loss poisson needs a positive output: use --readout gaussian or core (elu + 1)");
  const std::vector<std::string> taps = split_commas(o.tap);
  CORTEX_CHECK(o.readout == "core" || !taps.empty(),
               "fit: --tap names the backbone layer(s) to read (e.g. features.5, layer3.1), comma-separated");
  CORTEX_CHECK(o.tap != "pixels" || k.input == Input::Flat,
               "fit: --tap pixels (the grey image as features) goes with --readout ridge, two-layer or linear");
  CORTEX_CHECK(k.input != Input::Map || taps.size() == 1, "fit: --readout ", o.readout, " reads one map; --tap names ",
               taps.size());
  CORTEX_CHECK(!o.finetune || (k.trained && (k.input == Input::Map || k.input == Input::Maps)),
               "fit: --finetune trains the backbone with a map readout (gaussian, factorized, fwrf, pooled-linear), "
               "found --readout ", o.readout);
  CORTEX_CHECK(o.keep == 1.0 || o.readout == "fwrf", "fit: --keep (channel pruning) is an option of --readout fwrf, found --readout ",
               o.readout);
  CORTEX_CHECK(!o.finetune || o.tap != "pixels", "fit: --finetune needs a backbone, not --tap pixels");
  CORTEX_CHECK(!o.finetune || o.device.empty() || o.device == "cpu",
               "fit: --finetune trains backbone and readout on the host; --device ", o.device,
               " applies to frozen backbones only (drop --device or --finetune)");
  CORTEX_CHECK(o.dtype == "fp32" || o.dtype == "bf16", "fit: --dtype must be fp32 or bf16, found '", o.dtype, "'");
  CORTEX_CHECK(o.dtype == "fp32" || (!o.finetune && o.readout != "core"),
               "fit: --dtype bf16 runs a frozen backbone (inference); not with --finetune or --readout core");
  CORTEX_CHECK(o.sigma == "full" || o.sigma == "uncorrelated" || o.sigma == "isotropic",
               "fit: --sigma must be full, uncorrelated or isotropic, found '", o.sigma, "'");
  CORTEX_CHECK(o.shared_features >= 0, "fit: --shared-features must be >= 0 (0: off), found ", o.shared_features);
  CORTEX_CHECK(o.readout == "gaussian" || (o.sigma == "isotropic" && o.shared_features == 0 && o.position_mlp.empty()),
               "fit: --sigma, --shared-features and --position-mlp are options of --readout gaussian, found --readout ",
               o.readout);
  CORTEX_CHECK(o.position_mlp.empty() || fs::is_regular_file(o.position_mlp), "fit: --position-mlp '", o.position_mlp,
               "' is not a file (a float (voxels, D) .npy of voxel coordinates)");
  CORTEX_CHECK(o.freeze.empty() || o.freeze == "core" || o.freeze == "backbone" || o.freeze == "none",
               "fit: --freeze must be core, backbone or none, found '", o.freeze, "'");
  CORTEX_CHECK(o.freeze.empty() || !o.init_from.empty(),
               "fit: --freeze keeps weights loaded by --init-from; give --init-from MODEL.safetensors");
  CORTEX_CHECK(o.init_from.empty() || o.readout == "core" || o.finetune,
               "fit: --init-from reuses a trained core (--readout core) or a fine-tuned backbone (--finetune), found --readout ",
               o.readout);
  CORTEX_CHECK(o.freeze != "core" || o.readout == "core", "fit: --freeze core needs --readout core");
  CORTEX_CHECK(o.freeze != "backbone" || o.finetune, "fit: --freeze backbone needs --finetune");
  CORTEX_CHECK(o.init_from.empty() || fs::is_regular_file(o.init_from), "fit: --init-from '", o.init_from,
               "' is not a file");
  CORTEX_CHECK(o.readout != "channel-align" || (o.arch.find(',') == std::string::npos && !o.finetune),
               "fit: --readout channel-align aligns the --tap layers of one frozen backbone per fit (several backbones "
               "in one fit, or --finetune, are not supported by the pipeline)");
  CORTEX_CHECK(o.align_reg.empty() || o.readout == "channel-align", "fit: --align-reg is an option of --readout "
               "channel-align, found --readout ", o.readout);
  if (o.readout == "channel-align") channel_align_options(o);  // --align-reg's syntax, before any work
  CORTEX_CHECK(fs::is_directory(o.data), "fit: --data '", o.data, "' is not a directory");
}

namespace {

// --init-from: the model file's settings must hold what this fit reuses (a core, or a fine-tuned
// backbone of the same architecture). Returns the part reused ("core" or "backbone").
std::string check_init_from(const EncodingSpec& o) {
  const ModelSettings m = model_settings(io::SafeTensors::open(o.init_from).metadata(), o.init_from);
  if (o.readout == "core") {
    CORTEX_CHECK(m.readout == "core", "fit: --init-from ", o.init_from, " holds a ", m.readout,
                 " readout, not a trained core (fit one with --readout core)");
    return "core";
  }
  CORTEX_CHECK(m.finetune, "fit: --init-from ", o.init_from, " holds no fine-tuned backbone (fit one with --finetune)");
  CORTEX_CHECK(m.arch == o.arch && m.config == o.config, "fit: --init-from ", o.init_from, " holds a backbone of ",
               m.arch.empty() ? m.config : m.arch, ", this fit builds ", o.arch.empty() ? o.config : o.arch);
  return "backbone";
}

// Loads the `part` submodule of net ("core" or "backbone") from the model file's "<part>." tensors.
void load_part(models::Module& net, const std::string& part, const std::string& path) {
  models::Module* sub = nullptr;
  for (auto& [n, s] : net.named_modules())
    if (n == part) sub = s;
  CORTEX_CHECK(sub, "fit: the model has no '", part, "' to load from --init-from");
  models::LoadOptions lo;
  lo.prefix = part + ".";
  models::load_state_dict(*sub, io::load_safetensors(path), lo, path);
}

}  // namespace

// What the model file records of a fit (encoding/model_file.h, docs/model-file.md).
ModelSettings settings_of(const EncodingSpec& o) {
  ModelSettings s;
  s.readout = o.readout, s.arch = o.arch, s.config = o.config, s.tap = o.tap, s.hemi = o.hemi, s.loss = o.loss;
  s.weights = o.random_weights >= 0 ? "random:" + std::to_string(o.random_weights) : o.weights;
  s.pool = o.pool, s.image_size = o.image_size, s.core_size = o.core_size, s.hidden = o.hidden;
  s.finetune = o.finetune;
  s.dtype = o.dtype;
  s.gaussian_sigma = o.sigma, s.shared_features = o.shared_features;
  s.position_mlp = o.position_coords.defined() || !o.position_mlp.empty();
  return s;
}

void write_state(const std::string& path, models::Module& m, const EncodingSpec& o, const Standardizer& z) {
  std::vector<std::pair<std::string, Tensor>> v;
  for (auto& [k, t] : models::state_dict(m)) v.emplace_back(k, t);
  if (z.mean.defined()) v.emplace_back("input_mean", z.mean), v.emplace_back("input_std", z.std);
  write_model_file(path, v, settings_of(o));
}


EncodingSpec spec_of_model(const std::map<std::string, Tensor>& tensors, const ModelSettings& m,
                           const std::string& model_path, const std::string& weights, int64_t batch,
                           const std::string& device, const char* who) {
  EncodingSpec o;
  o.readout = m.readout;
  kind_of(o.readout);  // a clear error for a readout this build does not know
  o.arch = m.arch, o.config = m.config, o.tap = m.tap, o.hemi = m.hemi, o.loss = m.loss;
  o.pool = m.pool, o.image_size = m.image_size, o.core_size = m.core_size, o.hidden = m.hidden;
  o.finetune = m.finetune;
  o.dtype = m.dtype;  // predict runs the backbone as fit did
  o.sigma = m.gaussian_sigma, o.shared_features = m.shared_features;
  if (m.position_mlp) {
    const std::string grid = o.finetune ? "readout.source_grid" : "source_grid";
    CORTEX_CHECK(tensors.count(grid), who, ": ", model_path, " has position_mlp = 1 but no '", grid, "'");
    o.position_coords = tensors.at(grid);  // replaced by the same tensor when the state is loaded
  }
  o.batch = batch;
  o.device = device;
  if (!weights.empty()) {
    o.weights = weights;
  } else if (m.weights.rfind("random:", 0) == 0) {
    char* end = nullptr;
    o.random_weights = std::strtoll(m.weights.c_str() + 7, &end, 10);
    CORTEX_CHECK(m.weights.size() > 7 && *end == '\0' && o.random_weights >= 0, who, ": ", model_path,
                 ": metadata 'weights' is not random:SEED: '", m.weights, "'");
  } else {
    o.weights = m.weights;
  }
  return o;
}

Tensor predict(const std::string& model_path, const std::string& images, const std::string& weights,
               const std::string& out, int64_t batch, const std::string& device, std::string* readout) {
  CORTEX_CHECK(batch >= 1, "predict: --batch must be >= 1, found ", batch);
  const auto [tensors, m] = read_model_file(model_path);  // refuses another format_version
  const EncodingSpec o = spec_of_model(tensors, m, model_path, weights, batch, device, "predict");
  const data::Dataset d = data::load_images(images);  // no responses
  CORTEX_CHECK(d.size() > 0, "predict: ", images, " holds no images");

  Tensor pred;
  if (o.finetune) {
    // The fine-tuned backbone is in the model file under "backbone.".
    models::ModelConfig cfg = o.config.empty() ? models::config_for_arch(o.arch) : models::config_from_file(o.config);
    cfg.prefix = "backbone.";
    auto bb = models::load_backbone(cfg, model_path);
    CORTEX_CHECK(tensors.count("readout.bias"), "predict: ", model_path, " lacks 'readout.bias'");
    auto net = make_finetuned(o, bb, tensors.at("readout.bias").numel(), finetuned_keep(tensors));
    models::load_state_dict(*net, tensors, {}, model_path);
    pred = predict_images(*net, d, o);
  } else {
    std::shared_ptr<models::Backbone> backbone;
    if (o.readout != "core" && o.tap != "pixels") backbone = make_backbone(o);
    const std::vector<Tensor> X = extract(backbone.get(), d, o, "input");
    if (o.readout == "ridge") {
      CORTEX_CHECK(tensors.count("weights") && tensors.count("intercept"), "predict: ", model_path,
                   " lacks 'weights' or 'intercept'");
      pred = models::ridge_predict(X[0], tensors.at("weights"), tensors.at("intercept"));
    } else {
      const std::string bias = readout_bias_key(o.readout);
      CORTEX_CHECK(tensors.count(bias), "predict: ", model_path, " lacks '", bias, "'");
      std::vector<Tensor> keep;
      for (size_t l = 0; tensors.count("keep." + std::to_string(l)); ++l) keep.push_back(tensors.at("keep." + std::to_string(l)));
      std::map<std::string, Tensor> state = tensors;
      std::vector<Tensor> in = X;
      if (standardized(o.readout)) {
        CORTEX_CHECK(state.count("input_mean") && state.count("input_std"), "predict: ", model_path,
                     " lacks 'input_mean' or 'input_std'");
        const Standardizer z{state.at("input_mean"), state.at("input_std")};
        CORTEX_CHECK(z.mean.numel() == in[0].size(1), "predict: ", model_path, " standardises ", z.mean.numel(),
                     " features, the inputs have ", in[0].size(1));
        in[0] = z.apply(in[0]);
        state.erase("input_mean"), state.erase("input_std");
      }
      std::vector<Shape> shapes;
      for (const Tensor& t : in) shapes.push_back(t.shape());
      auto net = make_readout(o, shapes, tensors.at(bias).numel(), keep);
      models::load_state_dict(*net, state, {}, model_path);
      pred = predict_inputs(*net, in, 256);
    }
  }
  io::write_npy(out, pred.to(DType::Float32));
  if (readout) *readout = o.readout;
  return pred;
}

FitResult fit(const EncodingSpec& spec) {
  FitResult result;
  EncodingSpec o = spec;
  // A fine-tuned backbone from --init-from replaces the built one's weights: any seed builds it.
  if (!o.init_from.empty() && o.finetune && o.weights.empty() && o.random_weights < 0) o.random_weights = 0;
  if (!o.position_mlp.empty() && fs::is_regular_file(o.position_mlp))
    o.position_coords = io::read_npy(o.position_mlp).to(DType::Float32);
  const std::vector<double> alphas = parse_positive(o.alphas, "--alphas");
  const std::vector<double> sigmas = parse_positive(o.sigmas, "--sigmas");
  check_opts(o);
  // Under MPI ranks only ridge is sharded (docs/distributed.md); a trained readout would run whole
  // on every rank.
  CORTEX_CHECK(dist::size() == 1 || (o.readout == "ridge" && !o.finetune), "fit: --readout ", o.readout,
               " is not sharded over MPI ranks (ridge is); found ", dist::size(), " ranks: run it as one process");
  const std::string reused = o.init_from.empty() ? "" : check_init_from(o);

  // The data: the Algonauts layout (train / test splits on disk) or plain pairs (a seeded split).
  data::LoadOptions lo;
  lo.hemi = o.hemi;
  lo.drop_nan = o.drop_nan;
  lo.nc_units = data::parse_nc_units(o.nc_units);
  data::Dataset train, test;
  std::string train_id, test_id;
  // Rows for early stopping, as indices into `train` (empty: a seeded --val-fraction of it).
  std::vector<int64_t> fit_rows, val_rows;
  const bool idx_files = !o.train_idx.empty() || !o.val_idx.empty() || !o.test_idx.empty();
  auto from_files = [&](data::Dataset& all, data::Dataset& tr, data::Dataset* te) {
    const data::Split sp = kept(data::split_from_files(all.source_rows, o.train_idx, o.val_idx, o.test_idx), all);
    CORTEX_CHECK(!sp.train.empty(), "fit: --train-idx selects no rows of ", all.name);
    std::vector<int64_t> rows = sp.train;
    rows.insert(rows.end(), sp.val.begin(), sp.val.end());
    tr = data::subset(all, rows);
    for (size_t i = 0; i < rows.size(); ++i) (i < sp.train.size() ? fit_rows : val_rows).push_back(static_cast<int64_t>(i));
    if (te) *te = data::subset(all, sp.test);
  };
  if (fs::exists(fs::path(o.data) / "training_split")) {
    CORTEX_CHECK(o.test_idx.empty(), "fit: the Algonauts layout has its test split on disk; --test-idx is for plain pairs");
    train = data::load_algonauts(o.data, "train", lo);
    if (idx_files) {
      data::Dataset all = train;
      from_files(all, train, nullptr);
    }
    test = data::load_algonauts(o.data, "test", lo);
    train_id = rows_identity(train, o.data, "algonauts-train");
    test_id = rows_identity(test, o.data, "algonauts-test");
  } else {
    data::Dataset all = data::load_pairs(o.data, lo);
    if (idx_files) {
      from_files(all, train, &test);
    } else {
      const data::Split sp = data::split_fraction(all.size(), 0.0, o.test_fraction, o.seed);
      train = data::subset(all, sp.train);
      test = data::subset(all, sp.test);
    }
    train_id = rows_identity(train, o.data, "pairs-train");
    test_id = rows_identity(test, o.data, "pairs-test");
  }
  if (val_rows.empty()) {
    const data::Split sp = data::split_fraction(train.size(), o.val_fraction, 0.0, o.seed);
    fit_rows = sp.train, val_rows = sp.val;
  }
  CORTEX_CHECK(train.responses.defined() && train.size() > o.folds, "fit: the training split needs responses ",
               "and more than --folds (", o.folds, ") images, found ", train.size());
  const int64_t V = train.voxels();
  CORTEX_CHECK(o.shared_features <= V, "fit: --shared-features ", o.shared_features, " is more groups than the ", V,
               " voxels");
  CORTEX_CHECK(!o.position_coords.defined() || (o.position_coords.dim() == 2 && o.position_coords.size(0) == V),
               "fit: --position-mlp ", o.position_mlp, ": expected (", V, " voxels, D) coordinates, found ",
               shape_str(o.position_coords.shape()));
  std::cerr << "fit: " << train.size() << " training and " << test.size() << " test images, " << V << " voxels ("
            << o.hemi << ")\n";

  std::shared_ptr<models::Backbone> backbone;
  if (o.readout != "core" && o.tap != "pixels") backbone = make_backbone(o);
  std::vector<Tensor> Xtr, Xte;
  if (!o.finetune) {
    Xtr = features(backbone.get(), train, o, "train", train_id);
    if (test.size() > 0) Xte = features(backbone.get(), test, o, "test", test_id);
  }
  const std::string source = o.readout == "core"  ? "grey images " + std::to_string(o.core_size) + " px"
                             : o.tap == "pixels" ? "grey pixels " + std::to_string(o.image_size) + " px"
                                                 : (o.arch.empty() ? o.config : o.arch) + " " + o.tap +
                                                       (o.finetune ? " (fine-tuned)" : "");
  std::string in_shapes;
  for (const Tensor& t : Xtr) in_shapes += (in_shapes.empty() ? "" : " + ") + shape_str(t.shape());
  if (o.finetune) in_shapes = "images " + shape_str({train.size(), 3, o.image_size, o.image_size});
  std::cerr << "fit: inputs " << in_shapes << " from " << source << "\n";
  if (dist::is_root()) fs::create_directories(o.out);
  const std::string model_path = (fs::path(o.out) / "model.safetensors").string();
  Tensor pred;  // (test images, voxels)
  std::shared_ptr<models::Readout> net;
  Standardizer z;  // two-layer, linear
  const auto t1 = Clock::now();
  if (o.readout == "ridge") {
    // Ridge CV runs on --device (its work goes through kernel entries); the model stays on the host.
    const Device dev = device_option(o.device);
    models::RidgeCV fit =
        models::fit_ridge_cv(Xtr[0].to(dev), train.responses.to(dev), alphas, static_cast<int>(o.folds), o.seed);
    fit.weights = fit.weights.to(Device::cpu());
    fit.intercept = fit.intercept.to(Device::cpu());
    std::cerr << "fit: ridge on " << dev.str() << ", " << alphas.size() << " penalties x " << o.folds << " folds in "
              << std::fixed << std::setprecision(2) << seconds_since(t1) << " s\n";
    if (dist::is_root())
      write_model_file(model_path, {{"weights", fit.weights}, {"intercept", fit.intercept}, {"best_alpha", fit.best_alpha}},
                       settings_of(o));
    if (!Xte.empty()) pred = models::ridge_predict(Xte[0], fit.weights, fit.intercept);
  } else if (o.readout == "gaussian-fwrf") {
    std::vector<double> grid;
    for (int64_t i = 0; i < o.grid; ++i) grid.push_back(o.grid == 1 ? 0.0 : -1.0 + 2.0 * i / (o.grid - 1));
    const models::GaussianFwRFFit fit =
        models::fit_gaussian_fwrf(Xtr, train.responses, grid, grid, sigmas, alphas, static_cast<int>(o.folds), o.seed);
    net = fit.model;
    std::cerr << "fit: Gaussian fwRF, " << grid.size() * grid.size() * sigmas.size() << " candidate fields in "
              << std::fixed << std::setprecision(2) << seconds_since(t1) << " s\n";
    write_state(model_path, *net, o);
    if (!Xte.empty()) pred = predict_inputs(*net, Xte, 256);
  } else {
    // A trained readout: early stopping on the mean r of a seeded validation part of the training
    // split, checkpointed every epoch (--resume continues).
    CORTEX_CHECK(!val_rows.empty() && !fit_rows.empty(), "fit: early stopping needs training and validation rows, found ",
                 fit_rows.size(), " and ", val_rows.size());
    models::BatchSource tr, va;
    models::TrainOptions to;
    if (o.finetune) {
      // --keep: channels ranked on the backbone as loaded, before any fine-tuning (BOLDreams).
      std::vector<Tensor> keep;
      if (o.keep < 1.0) {
        std::vector<int64_t> all(static_cast<size_t>(train.size()));
        std::iota(all.begin(), all.end(), 0);  // every training row, as the frozen path ranks them
        keep = rank_channels_before_finetuning(backbone.get(), train, all, o);
      }
      auto ft = make_finetuned(o, backbone, V, keep);
      net = ft;
      // Which backbone parameters the taps depend on: one backward pass from a two-image batch.
      std::set<std::string> used;
      {
        ft->requires_grad(true);
        const Tensor out = ft->read({prepare_rows(train, {0, std::min<int64_t>(1, train.size() - 1)},
                                                             preprocessing_for(backbone.get(), o.image_size, false))});
        backward(sum(out));
        for (auto& [n, t] : ft->named_parameters())
          if (grad_of(*t).defined()) used.insert(n);
        ft->requires_grad(false);
      }
      const double blr = o.backbone_lr;
      to.lr_scale = [used, blr](const std::string& n) {
        if (n.rfind("backbone.", 0) != 0) return 1.0;
        return used.count(n) ? blr : 0.0;
      };
      int64_t n_used = 0;
      for (const auto& n : used) n_used += n.rfind("backbone.", 0) == 0;
      std::cerr << "fit: fine-tuning " << n_used << " backbone tensors at " << blr << " x --lr\n";
      tr = image_batches(train, fit_rows, o.batch, true, o, backbone.get());
      va = image_batches(train, val_rows, o.batch, false, o, backbone.get());
    } else {
      // fwrf: channels pruned to the top --keep by their std over the training images.
      std::vector<Tensor> keep;
      if (o.readout == "fwrf" && o.keep < 1.0) keep = models::prune_channels(Xtr, o.keep);
      if (standardized(o.readout)) {
        z = Standardizer::fit(Xtr[0]);
        Xtr[0] = z.apply(Xtr[0]);
        if (!Xte.empty()) Xte[0] = z.apply(Xte[0]);
      }
      std::vector<Shape> shapes;
      for (const Tensor& t : Xtr) shapes.push_back(t.shape());
      net = make_readout(o, shapes, V, keep);
      auto take = [](const std::vector<Tensor>& ts, const std::vector<int64_t>& idx) {
        const Tensor ix = from_vector(idx, {static_cast<int64_t>(idx.size())}, DType::Int64);
        std::vector<Tensor> out;
        for (const Tensor& t : ts) out.push_back(index_select(t, 0, ix));
        return out;
      };
      const Tensor y = train.responses;
      tr = models::in_memory_batches(take(Xtr, fit_rows), take({y}, fit_rows)[0], o.batch, true, o.seed);
      va = models::in_memory_batches(take(Xtr, val_rows), take({y}, val_rows)[0], 256, false, o.seed);
      // Channel align starts at the ridge solution on its aligned pooled features (channel_align.h).
      if (auto* ca = dynamic_cast<models::ChannelAlign*>(net.get()))
        ca->warm_start(take(Xtr, fit_rows), take({y}, fit_rows)[0], alphas, static_cast<int>(o.folds), o.seed);
    }
    if (!reused.empty()) {
      load_part(*net, reused, o.init_from);
      const bool frozen = o.freeze == reused;
      if (frozen) {
        auto prev = to.lr_scale;
        to.lr_scale = [prev, p = reused + "."](const std::string& n) {
          return n.rfind(p, 0) == 0 ? 0.0 : prev ? prev(n) : 1.0;
        };
      }
      std::cerr << "fit: " << reused << " from " << o.init_from << (frozen ? ", frozen" : ", trained further") << "\n";
    }
    to.max_epochs = o.epochs;
    // Default rates: 1e-2 for map readouts and the core; 1e-3 on z-scored flat features, where a
    // step moves thousands of unit-variance inputs at once.
    // Channel align starts warm (near ridge): the smaller rate too.
    to.lr = o.lr > 0 ? o.lr : standardized(o.readout) || o.readout == "channel-align" ? 1e-3 : 1e-2;
    to.loss = o.loss == "l1" ? models::LossKind::L1 : o.loss == "poisson" ? models::LossKind::Poisson : models::LossKind::MSE;
    to.penalty_weight = o.readout == "channel-align" ? 1.0 : o.l1;  // channel align weighs its own terms (--align-reg)
    to.optim = o.optim == "adamw" ? models::OptimKind::AdamW : models::OptimKind::Adam;
    to.weight_decay = o.weight_decay;
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
    result.epochs = res.epochs;
    result.best_val_r = res.best_r;
    net->train(false);
    write_state(model_path, *net, o, z);
    if (test.size() > 0) pred = o.finetune ? predict_images(static_cast<models::BackboneReadout&>(*net), test, o)
                                   : predict_inputs(*net, Xte, 256);
  }
  if (dist::is_root()) std::cerr << "fit: wrote " << model_path << "\n";
  result.train = std::move(train);
  result.test = std::move(test);
  result.pred = pred;
  result.net = net;
  result.source = source;
  result.in_shapes = in_shapes;
  result.voxels = V;
  return result;
}

}  // namespace cortex::encoding
