// cortex features: runs a backbone on images and writes the named activations.
//
//   cortex features --arch resnet50 --weights resnet50.safetensors --images imgs/
//                   --taps layer2.1,layer3.5,layer4 --out feats.safetensors --batch 32   (one line)
//
// --arch names a preset (models/backbone.h: config_for_arch), --config a JSON file; the layer sizes
// come from the weights. Inputs: a directory of PNG/JPEG files (sorted by name), a uint8 .npy
// (N, H, W, 3), an HDF5 image brick (.hdf5/.h5, dataset "imgBrick" as NSD's nsd_stimuli.hdf5,
// read per image) — all preprocessed as the source library does (torchvision: Resize(size*256/224),
// CenterCrop(size), ImageNet normalisation; CLIP: bicubic Resize, CenterCrop, CLIP normalisation;
// --no-crop: the whole image resized, as cortex fit does; encoding/features.h) — or a float32 .npy
// (N, 3, H, W) taken as preprocessed. The output holds one tensor per tap, keyed
// by its name, plus "output", batches concatenated along dim 0; written to a temporary file and
// renamed. Progress goes to stderr.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "cli/commands.h"
#include "data/dataset.h"
#include "dist/comm.h"
#include "encoding/features.h"
#include "models/backbone.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"

namespace cortex::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Opts {
  std::string arch, config, weights, images, taps, out, device;  // device: see device_option
  std::string dtype = "fp32";  // compute dtype of the GEMMs, convolutions and attention (docs/bf16.md)
  int64_t batch = 16, image_size = 224;
  bool fold_bn = false, no_crop = false, exif_transpose = false;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The images to run: float32 (N, 3, H, W) already preprocessed (a .npy), or anything
// data::load_images reads (a folder, a uint8 .npy, an HDF5 brick); exactly one is filled.
struct Inputs {
  Tensor preprocessed;
  data::Dataset images;
  int64_t count() const { return preprocessed.defined() ? preprocessed.size(0) : images.size(); }
};

Inputs read_inputs(const std::string& path, bool exif_transpose) {
  Inputs in;
  CORTEX_CHECK(fs::exists(path), "features: --images '", path, "' does not exist");
  if (!fs::is_directory(path) && lower(fs::path(path).extension().string()) == ".npy") {
    const io::NpyInfo a = io::npy_info(path);  // the header decides which reader takes the data
    const bool u8 = a.dtype == DType::UInt8 && a.shape.size() == 4 && a.shape[3] == 3;
    const bool f32 = a.dtype == DType::Float32 && a.shape.size() == 4 && a.shape[1] == 3;
    CORTEX_CHECK(u8 || f32, "features: ", path, ": expected uint8 (N, H, W, 3) images or float32 (N, 3, H, W) ",
                 "preprocessed images, found ", dtype_name(a.dtype), " ", shape_str(a.shape));
    if (f32) in.preprocessed = io::read_npy(path);
  }
  if (!in.preprocessed.defined()) {
    in.images = data::load_images(path);
    in.images.exif_transpose = exif_transpose;
  }
  CORTEX_CHECK(in.count() > 0, "features: ", path, ": expected at least one image, found none");
  return in;
}

// Images [begin, end) as a float32 (n, 3, H, W) batch.
Tensor load_batch(const Inputs& in, int64_t begin, int64_t end, const encoding::Preprocessing& p) {
  if (in.preprocessed.defined()) return in.preprocessed.slice(0, begin, end).contiguous();
  std::vector<int64_t> rows;
  for (int64_t i = begin; i < end; ++i) rows.push_back(i);
  return encoding::prepare_rows(in.images, rows, p);
}

std::vector<std::string> split_taps(const std::string& s) {
  std::vector<std::string> out;
  for (const std::string& t : split_commas(s, true)) {
    CORTEX_CHECK(!t.empty(), "features: --taps expects comma-separated module names, found '", s, "'");
    CORTEX_CHECK(std::find(out.begin(), out.end(), t) == out.end(), "features: tap '", t, "' is named twice");
    out.push_back(t);
  }
  return out;
}

int run(const Opts& o) {
  CORTEX_CHECK(o.arch.empty() != o.config.empty(), "features: give exactly one of --arch and --config");
  CORTEX_CHECK(o.batch > 0, "features: --batch must be positive, found ", o.batch);
  CORTEX_CHECK(o.image_size > 0, "features: --image-size must be positive, found ", o.image_size);
  CORTEX_CHECK(o.out.size() > 12 && o.out.substr(o.out.size() - 12) == ".safetensors",
               "features: --out must end in .safetensors, found '", o.out, "'");
  CORTEX_CHECK(o.dtype == "fp32" || o.dtype == "bf16", "features: --dtype must be fp32 or bf16, found '", o.dtype, "'");
  const auto t0 = Clock::now();
  models::ModelConfig cfg = o.arch.empty() ? models::config_from_file(o.config) : models::config_for_arch(o.arch);
  auto model = models::load_backbone(cfg, o.weights);
  if (o.fold_bn) model->fold_batchnorm();
  // The model and each batch move to the device; ops follow their inputs' device (ARCHITECTURE.md).
  const Device dev = device_option(o.device);
  if (!dev.is_cpu()) model->to(dev);
  // After the fold and the move, so the bf16 weight copies are made once, on the device.
  if (o.dtype == "bf16") model->set_compute_dtype(DType::BFloat16);
  std::vector<std::string> taps = split_taps(o.taps);
  taps.erase(std::remove(taps.begin(), taps.end(), "output"), taps.end());
  taps.push_back("output");
  Inputs in = read_inputs(o.images, o.exif_transpose);
  const int64_t n = in.count();
  std::cerr << "features: " << model->type_name() << " from " << o.weights << ", " << n << " images, "
            << taps.size() - 1 << " taps\n";
  const encoding::Preprocessing prep = encoding::preprocessing_for(model.get(), o.image_size, !o.no_crop);
  // Under MPI ranks (docs/distributed.md) each rank runs a contiguous block of whole batches, the
  // same batches one process runs, so every image's activations are the same bits; rank 0 gathers
  // them in rank order, which is image order, and writes the file.
  const int64_t batches = (n + o.batch - 1) / o.batch;
  const dist::Range mine = dist::block(batches, dist::size(), dist::rank());
  const int64_t lo = mine.lo * o.batch, hi = std::min(n, mine.hi * o.batch);
  std::vector<Tensor> local;
  if (hi > lo) {
    auto acts = encoding::tap_activations(
        *model, hi - lo, [&](int64_t b, int64_t e) { return load_batch(in, lo + b, lo + e, prep); }, taps, o.batch, dev);
    for (auto& t : taps) local.push_back(acts.at(t));
  }
  const std::vector<Tensor> got = dist::gather(local, false);
  if (!dist::is_root()) return 0;
  std::vector<std::pair<std::string, Tensor>> outs;
  const size_t nt = taps.size();
  for (size_t k = 0; k < nt; ++k) {
    std::vector<Tensor> parts;
    for (size_t j = k; j < got.size(); j += nt) parts.push_back(got[j]);
    outs.emplace_back(taps[k], parts.size() == 1 ? parts[0] : concat(parts, 0));
  }
  std::map<std::string, std::string> meta{{"weights", o.weights}, {"taps", o.taps}, {"images", o.images}};
  if (!o.arch.empty()) meta["arch"] = o.arch;
  io::write_safetensors(o.out, outs, meta);
  std::cerr << "features: wrote " << o.out << " in " << std::chrono::duration<double>(Clock::now() - t0).count()
            << " s\n";
  return 0;
}

}  // namespace

Run add_features(CLI::App& app) {
  auto* sub = app.add_subcommand("features", "Run a CNN/ViT backbone on images and write named activations");
  auto o = std::make_shared<Opts>();
  sub->add_option("--arch", o->arch, "Preset: alexnet, vgg16_bn, resnet50, vit_b_16, clip_vit_b_16, dinov2_vitb14, ...");
  sub->add_option("--config", o->config, "JSON config (arch, layout, heads, ...) instead of --arch");
  sub->add_option("--weights", o->weights, "Weights (.safetensors, PyTorch state_dict names)")->required();
  sub->add_option("--images", o->images, "Directory of PNG/JPEG, uint8 (N,H,W,3) .npy, float32 (N,3,H,W) .npy or an HDF5 "
                  "brick (.hdf5: dataset imgBrick)")
      ->required();
  sub->add_option("--taps", o->taps, "Comma-separated module names, e.g. layer3.1,layer4 (ViT: name:grid)");
  sub->add_option("--out", o->out, "Output .safetensors (one tensor per tap, plus \"output\")")->required();
  sub->add_option("--batch", o->batch, "Images per forward pass")->capture_default_str();
  sub->add_option("--image-size", o->image_size, "Crop size of the preprocessing")->capture_default_str();
  sub->add_flag("--no-crop", o->no_crop, "Resize the whole image to --image-size, no crop, as cortex fit does "
                "(the same activations as fit's)");
  sub->add_option("--device", o->device, kDeviceHelp)->check(device_check());
  sub->add_option("--dtype", o->dtype,
                  "Compute dtype of the GEMMs, convolutions and attention: fp32, or bf16 (bfloat16 operands, "
                  "float32 accumulation; outputs stay float32)")
      ->capture_default_str();
  sub->add_flag("--exif-transpose", o->exif_transpose,
                "Turn PNG/JPEG files upright by their EXIF orientation, as PIL's ImageOps.exif_transpose "
                "(off by default, as in torchvision's ImageFolder)");
  sub->add_flag("--fold-bn", o->fold_bn, "Fold batch norms into the preceding convs (a conv's tap is then its bn's)");
  return [o] { return run(*o); };
}

}  // namespace cortex::cli
