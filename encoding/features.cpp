#include "encoding/features.h"

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "dist/comm.h"
#include "tensor/io/image.h"

namespace cortex::encoding {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// (B, C, H, W) -> (B, C * pool^2); (B, T, C) tokens -> (B, C) mean; (B, F) as is.
Tensor flatten_tap(const Tensor& t, int64_t pool, const std::string& tap) {
  if (t.dim() == 4) return adaptive_avg_pool2d(t, pool, pool).reshape({t.size(0), -1});
  if (t.dim() == 3) return mean(t, {1});
  CORTEX_CHECK(t.dim() == 2, "fit: tap '", tap, "' gives a ", t.dim(), "-D activation; expected 2-D, 3-D or 4-D");
  return t;
}

}  // namespace

Preprocessing preprocessing_for(const models::Backbone* m, int64_t size, bool crop) {
  Preprocessing p;
  p.stats = m ? m->preprocess() : models::Preprocess::ImageNet;
  p.size = size;
  p.crop = crop;
  return p;
}

Tensor prepare_geometry(const Tensor& img, const Preprocessing& p) {
  CORTEX_CHECK(img.defined() && img.dim() == 3 && img.size(2) == 3 && img.dtype() == DType::UInt8,
               "prepare_geometry: expected a uint8 RGB image (H, W, 3), found ",
               img.defined() ? dtype_name(img.dtype()) + std::string(" ") + shape_str(img.shape()) : "an undefined tensor");
  const bool clip = p.stats == models::Preprocess::Clip;
  if (p.crop) {
    // As io::preprocess_clip / io::preprocess_imagenet (torchvision's Resize + CenterCrop).
    const Tensor r = clip ? io::resize_shorter(img, p.size, io::Interp::Bicubic)
                          : io::resize_shorter(img, p.size * 256 / 224, io::Interp::Bilinear);
    return io::center_crop(r, p.size, p.size);
  }
  if (img.size(0) != p.size || img.size(1) != p.size) return io::resize(img, p.size, p.size);
  return img;
}

Tensor to_model_input(const Tensor& images, const Preprocessing& p) {
  CORTEX_CHECK(images.defined() && (images.dim() == 3 || images.dim() == 4) && images.size(-1) == 3 &&
                   images.dtype() == DType::UInt8,
               "to_model_input: expected uint8 RGB images (H, W, 3) or (N, H, W, 3), found ",
               images.defined() ? dtype_name(images.dtype()) + std::string(" ") + shape_str(images.shape())
                                : "an undefined tensor");
  NoGradGuard ng;
  const bool clip = p.stats == models::Preprocess::Clip;
  const std::vector<double>& mean_d = clip ? io::kClipMean : io::kImageNetMean;
  const std::vector<double>& std_d = clip ? io::kClipStd : io::kImageNetStd;
  const bool batched = images.dim() == 4;
  const Device dev = images.device();
  // Mean and std rounded to float32 first, as io::normalize and torchvision's Normalize.
  const Shape cshape = batched ? Shape{1, 3, 1, 1} : Shape{3, 1, 1};
  const auto channel = [&](const std::vector<double>& v) {
    return from_vector(std::vector<float>(v.begin(), v.end()), cshape).to(dev);
  };
  const Tensor chw = batched ? images.permute({0, 3, 1, 2}) : images.permute({2, 0, 1});
  // ToTensor: the float32 value divided by 255 (not multiplied by 1/255: that rounds differently).
  const Tensor x = div(chw.to(DType::Float32), scalar(255.0, DType::Float32, dev));
  return div(sub(x, channel(mean_d)), channel(std_d)).contiguous();
}

Tensor prepare_image(const Tensor& img, const Preprocessing& p) { return to_model_input(prepare_geometry(img, p), p); }

Tensor prepare_rows(const data::Dataset& d, const std::vector<int64_t>& rows, const Preprocessing& p) {
  std::vector<Tensor> xs;
  for (int64_t i : rows) xs.push_back(prepare_image(d.image(i), p));
  return stack(xs, 0);
}

std::vector<Tensor> inputs_of(models::Backbone* m, const Tensor& x, const InputSpec& s, Tensor* first_tap) {
  const Input in = s.input;
  if (in == Input::Grey) return {mean(x, {1}, true).contiguous()};  // the core learns its own features
  if (in == Input::Images) return {x};
  const std::vector<std::string>& taps = s.taps;
  if (taps == std::vector<std::string>{"pixels"})
    return {mean(x, {1}).reshape({x.size(0), -1}).contiguous()};  // grey pixels: the linear baseline
  const auto got = m->features(x, taps);
  if (first_tap) *first_tap = got.at(taps.at(0));
  std::vector<Tensor> out;
  for (const auto& t : taps) {
    const Tensor& a = got.at(t);
    if (in == Input::Flat) {
      out.push_back(flatten_tap(a, s.pool, t).contiguous());
    } else {
      CORTEX_CHECK(a.dim() == 4, "fit: --readout ", s.readout, " needs (N, C, H, W) feature maps; tap '", t,
                   "' gives ", shape_str(a.shape()), " (for a ViT, tap '", t, ":grid')");
      out.push_back(a.contiguous());
    }
  }
  if (in == Input::Flat && out.size() > 1) return {concat(out, 1)};
  return out;
}

std::vector<Tensor> readout_inputs(models::Backbone* m, const data::Dataset& d, const InputSpec& s, const char* what,
                                   const std::string& prefix) {
  NoGradGuard ng;
  if (m) m->to(s.device);
  // After the move, so the bf16 weight copies are made once, on the device.
  if (m) m->set_compute_dtype(s.compute_dtype);
  // Under MPI ranks (docs/distributed.md) each rank runs a contiguous block of the same whole
  // batches one process runs, and every rank gets all rows back in order (the readout needs them).
  const int64_t batches = (d.size() + s.batch - 1) / s.batch;
  const dist::Range mine = dist::block(batches, dist::size(), dist::rank());
  std::vector<int64_t> rows;
  for (int64_t i = mine.lo * s.batch; i < std::min(d.size(), mine.hi * s.batch); ++i) rows.push_back(i);
  data::BatchStream stream(d, s.batch, dist::size() > 1 ? rows : std::vector<int64_t>{});
  std::vector<std::vector<Tensor>> parts;
  data::Batch b;
  const auto t0 = Clock::now();
  int64_t done = 0;
  while ((dist::size() == 1 || !rows.empty()) && stream.next(b)) {
    // The geometry on the host (uint8), the batch moved as uint8, ToTensor + Normalize on the device.
    std::vector<Tensor> xs;
    for (int64_t i = 0; i < b.images.size(0); ++i) xs.push_back(prepare_geometry(b.images.select(0, i), s.prep));
    const std::vector<Tensor> in = inputs_of(m, to_model_input(stack(xs, 0).to(s.device), s.prep), s);
    parts.resize(in.size());
    for (size_t k = 0; k < in.size(); ++k) parts[k].push_back(in[k].to(Device::cpu()));
    done += b.images.size(0);
    std::cerr << "\r" << prefix << ": " << what << " features " << done << "/"
              << (dist::size() > 1 ? static_cast<int64_t>(rows.size()) : d.size()) << " images ("
              << std::fixed << std::setprecision(1) << done / std::max(1e-9, seconds_since(t0)) << " images/s)"
              << std::flush;
  }
  std::cerr << "\n";
  CORTEX_CHECK(!parts.empty() || (dist::size() > 1 && d.size() > 0), prefix, ": the ", what, " split has no images");
  std::vector<Tensor> out;
  for (auto& p : parts) out.push_back(p.size() == 1 ? p[0] : concat(p, 0));
  if (dist::size() == 1) return out;
  // Rank order is row order; a rank with no batches contributes nothing.
  std::vector<std::vector<Tensor>> ranks;
  for (const auto& b : dist::gather(dist::pack(out), true)) {
    ranks.emplace_back();
    dist::unpack(b, ranks.back());
    if (ranks.back().empty()) ranks.pop_back();
  }
  std::vector<Tensor> all;
  for (size_t j = 0; j < ranks[0].size(); ++j) {
    std::vector<Tensor> ps;
    for (const auto& r : ranks) ps.push_back(r.at(j));
    all.push_back(ps.size() == 1 ? ps[0] : concat(ps, 0));
  }
  return all;
}

std::map<std::string, Tensor> tap_activations(models::Backbone& m, int64_t n,
                                              const std::function<Tensor(int64_t, int64_t)>& batch_of,
                                              const std::vector<std::string>& taps, int64_t batch, Device device) {
  NoGradGuard ng;
  std::map<std::string, std::vector<Tensor>> parts;
  const auto t1 = Clock::now();
  for (int64_t b = 0; b < n; b += batch) {
    const int64_t e = std::min(n, b + batch);
    Tensor x = batch_of(b, e).to(device);
    auto f = m.features(x, taps, false);
    for (auto& t : taps) parts[t].push_back(f.at(t).to(Device::cpu()).contiguous());
    const double s = seconds_since(t1);
    std::cerr << "\rfeatures: " << e << "/" << n << " images (" << (s > 0 ? static_cast<double>(e) / s : 0.0)
              << " images/s)" << std::flush;
  }
  std::cerr << "\n";
  std::map<std::string, Tensor> out;
  for (auto& t : taps) out[t] = parts[t].size() == 1 ? parts[t][0] : concat(parts[t], 0);
  return out;
}

}  // namespace cortex::encoding
