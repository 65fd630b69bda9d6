#include "data/dataset.h"

#include "data/hdf5.h"
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "data/hdf5.h"
#include "tensor/io/image.h"
#include "tensor/io/npy.h"
#include "tensor/random.h"

namespace fs = std::filesystem;

namespace cortex::data {
namespace {

bool is_image_file(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

// Reads an (N, V) response array as float32 (reading once into memory).
Tensor read_responses(const fs::path& p) {
  CORTEX_CHECK(fs::exists(p), "dataset: missing response file ", p.string());
  Tensor t = io::read_npy(p.string());
  CORTEX_CHECK(t.dim() == 2, p.string(), ": expected a 2-D (images, voxels) array, found shape ", shape_str(t.shape()));
  CORTEX_CHECK(is_floating(t.dtype()), p.string(), ": expected float responses, found ", dtype_name(t.dtype()));
  return t.to(DType::Float32).contiguous();
}

// Rows holding any NaN, counted; refuses them unless drop_nan.
std::vector<int64_t> nan_filter(const Tensor& resp, const std::string& name, bool drop_nan) {
  const int64_t n = resp.size(0), v = resp.size(1);
  const float* p = resp.data<float>();
  std::vector<int64_t> keep;
  int64_t bad_rows = 0, bad_vals = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = 0;
    for (int64_t j = 0; j < v; ++j) c += std::isnan(p[i * v + j]) ? 1 : 0;
    if (c) { ++bad_rows; bad_vals += c; } else keep.push_back(i);
  }
  CORTEX_CHECK(bad_rows == 0 || drop_nan, name, ": responses hold ", bad_vals, " NaN values in ", bad_rows, " of ", n,
               " rows (set drop_nan to skip those rows)");
  return keep;
}

Tensor take_rows(const Tensor& t, const std::vector<int64_t>& idx) {
  if (!t.defined()) return t;
  Shape s = t.shape();
  s[0] = static_cast<int64_t>(idx.size());
  Tensor out = empty(s, t.dtype());
  const int64_t row = t.numel() / std::max<int64_t>(t.size(0), 1) * static_cast<int64_t>(t.element_size());
  Tensor src = t.contiguous();
  const auto* sp = static_cast<const uint8_t*>(src.raw_data());
  auto* dp = static_cast<uint8_t*>(out.raw_data());
  for (size_t i = 0; i < idx.size(); ++i) {
    CORTEX_CHECK(idx[i] >= 0 && idx[i] < t.size(0), "dataset: row index ", idx[i], " out of range [0, ", t.size(0), ")");
    std::copy_n(sp + idx[i] * row, row, dp + i * row);
  }
  return out;
}

Tensor concat_cols(const Tensor& a, const Tensor& b) {
  const int64_t n = a.size(0), va = a.size(1), vb = b.size(1);
  Tensor out = empty({n, va + vb}, DType::Float32);
  out.narrow(1, 0, va).copy_(a);
  out.narrow(1, va, vb).copy_(b);
  return out;
}

std::vector<std::string> hemis_of(const std::string& hemi) {
  CORTEX_CHECK(hemi == "lh" || hemi == "rh" || hemi == "both", "dataset: hemi must be lh, rh or both, found '", hemi, "'");
  if (hemi == "both") return {"lh", "rh"};
  return {hemi};
}

int64_t image_count(const Dataset& d) {
  if (d.images.defined()) return d.images.size(0);
  if (d.brick) return static_cast<int64_t>(d.brick_rows.size());
  return static_cast<int64_t>(d.image_paths.size());
}

void finish_rows(Dataset& d, bool drop_nan) {
  const int64_t n = image_count(d);
  d.source_rows = n;
  if (d.responses.defined()) {
    CORTEX_CHECK(d.responses.size(0) == n, d.name, ": ", n, " images but ", d.responses.size(0), " response rows");
    std::vector<int64_t> keep = nan_filter(d.responses, d.name, drop_nan);
    if (static_cast<int64_t>(keep.size()) != n) {
      d.responses = take_rows(d.responses, keep);
      if (d.images.defined()) {
        d.images = take_rows(d.images, keep);
      } else if (d.brick) {
        std::vector<int64_t> b;
        for (int64_t i : keep) b.push_back(d.brick_rows[i]);
        d.brick_rows = std::move(b);
      } else {
        std::vector<std::string> p;
        for (int64_t i : keep) p.push_back(d.image_paths[i]);
        d.image_paths = std::move(p);
      }
    }
    d.rows = keep;
  } else {
    d.rows.resize(n);
    std::iota(d.rows.begin(), d.rows.end(), 0);
  }
}

}  // namespace

std::vector<std::string> list_images(const std::string& dir) {
  CORTEX_CHECK(fs::is_directory(dir), "dataset: expected an image folder at ", dir, ", found none");
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_image_file(e.path())) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());  // Algonauts names are zero-padded, so name order is row order
  return out;
}

Tensor Dataset::image(int64_t i) const {
  CORTEX_CHECK(i >= 0 && i < size(), name, ": image ", i, " out of range [0, ", size(), ")");
  if (images.defined()) {
    Tensor im = images.select(0, i);
    if (im.dim() == 2) im = im.unsqueeze(2);
    if (im.size(2) == 1) im = im.expand({im.size(0), im.size(1), 3});
    return im.contiguous();
  }
  if (brick) {
    Tensor im = brick->read(brick_rows[i]);
    if (im.size(2) == 1) im = im.expand({im.size(0), im.size(1), 3}).contiguous();
    return im;
  }
  return io::read_image(image_paths[i], io::ImageMode::RGB, io::kMaxImagePixels, exif_transpose);
}

std::map<std::string, std::vector<int64_t>> load_roi(const std::string& subject_dir, const std::string& hemi,
                                                     const std::string& roi) {
  CORTEX_CHECK(hemi == "lh" || hemi == "rh", "load_roi: hemi must be lh or rh, found '", hemi, "'");
  const fs::path dir = fs::path(subject_dir) / "roi_masks";
  const fs::path mask = dir / (hemi + "." + roi + "_challenge_space.npy");
  CORTEX_CHECK(fs::exists(mask), "load_roi: missing ROI file ", mask.string());
  const fs::path js = dir / ("mapping_" + roi + ".json");
  if (!fs::exists(js)) {
    const fs::path pk = dir / ("mapping_" + roi + ".npy");
    CORTEX_CHECK(!fs::exists(pk), "load_roi: ", pk.string(),
                 " is a pickled Python dict, which cannot be read without Python; write a JSON sidecar ", js.string(),
                 " with python -c \"import numpy as np, json; json.dump({str(k): v for k, v in np.load('", pk.string(),
                 "', allow_pickle=True).item().items()}, open('", js.string(), "', 'w'))\"");
    CORTEX_CHECK(false, "load_roi: missing ROI mapping ", js.string());
  }
  Tensor lab = io::read_npy(mask.string());
  CORTEX_CHECK(lab.dim() == 1, mask.string(), ": expected a 1-D label array, found shape ", shape_str(lab.shape()));
  std::vector<double> v = lab.to(DType::Float64).to_vector<double>();
  nlohmann::json m;
  try {
    std::ifstream f(js);
    m = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    CORTEX_CHECK(false, js.string(), ": not valid JSON (", e.what(), ")");
  }
  CORTEX_CHECK(m.is_object(), js.string(), ": expected an object {\"label\": \"name\"}, found ", m.type_name());
  std::map<std::string, std::vector<int64_t>> out;
  for (auto it = m.begin(); it != m.end(); ++it) {
    CORTEX_CHECK(it.value().is_string(), js.string(), ": label ", it.key(), " should map to a name, found ",
                 it.value().type_name());
    int64_t label = 0;
    try { label = std::stoll(it.key()); } catch (...) {
      CORTEX_CHECK(false, js.string(), ": expected integer labels as keys, found '", it.key(), "'");
    }
    if (label == 0) continue;  // 0 is "Unknown" (outside every ROI) in the challenge files
    std::vector<int64_t>& cols = out[it.value().get<std::string>()];
    for (size_t i = 0; i < v.size(); ++i)
      if (static_cast<int64_t>(v[i]) == label) cols.push_back(static_cast<int64_t>(i));
  }
  return out;
}

namespace {

// The noise ceiling of d as a fraction, by the rule of NcUnits (dataset.h); decided once, here.
void to_fraction(Dataset& d, NcUnits units) {
  std::vector<double> v = d.noise_ceiling.to_vector<double>();
  double mx = 0;
  for (double x : v) mx = std::isfinite(x) ? std::max(mx, x) : mx;
  const bool percent = units == NcUnits::Percent || (units == NcUnits::Auto && mx > 1.5);
  CORTEX_CHECK(units != NcUnits::Fraction || mx <= 1.0, d.name, ": the noise ceiling reaches ", mx,
               ", more than a fraction can; it is in percent (--nc-units percent or auto)");
  CORTEX_CHECK(units != NcUnits::Percent || mx <= 100.0, d.name, ": the noise ceiling reaches ", mx,
               ", more than 100 percent");
  d.noise_ceiling_was_percent = percent;
  if (!percent) return;
  for (double& x : v) x /= 100.0;
  d.noise_ceiling = from_vector(v);
}

}  // namespace

NcUnits parse_nc_units(const std::string& s) {
  if (s == "auto") return NcUnits::Auto;
  if (s == "fraction") return NcUnits::Fraction;
  if (s == "percent") return NcUnits::Percent;
  throw Error("--nc-units must be auto, fraction or percent, found '" + s + "'");
}

Dataset load_algonauts(const std::string& subject_dir, const std::string& split, const LoadOptions& opt) {
  CORTEX_CHECK(split == "train" || split == "test", "load_algonauts: split must be train or test, found '", split, "'");
  const fs::path root(subject_dir);
  CORTEX_CHECK(fs::is_directory(root), "load_algonauts: expected a subject folder, found nothing at ", subject_dir);
  Dataset d;
  d.name = subject_dir + " (" + split + ", " + opt.hemi + ")";
  const bool train = split == "train";
  const fs::path sdir = root / (train ? "training_split" : "test_split");
  d.image_paths = list_images(sdir / (train ? "training_images" : "test_images"));
  CORTEX_CHECK(!d.image_paths.empty(), "load_algonauts: no PNG/JPEG images in ", (sdir / (train ? "training_images" : "test_images")).string());
  const fs::path fdir = sdir / (train ? "training_fmri" : "test_fmri");
  const std::string tag = train ? "_training_fmri.npy" : "_test_fmri.npy";
  int64_t offset = 0;
  bool missing = false;  // a test hemisphere without fMRI: then neither may have it
  for (const std::string& h : hemis_of(opt.hemi)) {
    const fs::path f = fdir / (h + tag);
    if (!train && !fs::exists(f)) {
      CORTEX_CHECK(!d.responses.defined(), "load_algonauts: ", f.string(), " missing but the other hemisphere has one");
      missing = true;
    } else {
      CORTEX_CHECK(!missing, "load_algonauts: ", f.string(), " present but the other hemisphere has no test fMRI");
      Tensor r = read_responses(f);
      if (d.responses.defined()) {
        CORTEX_CHECK(r.size(0) == d.responses.size(0), f.string(), ": ", r.size(0), " rows but lh has ",
                     d.responses.size(0));
        d.lh_voxels = d.responses.size(1);
        d.responses = concat_cols(d.responses, r);
      } else {
        d.responses = r;
      }
    }
    if (!train) {
      const fs::path nc = sdir / "noise_ceiling" / (h + "_noise_ceiling.npy");
      if (fs::exists(nc)) {
        Tensor c = io::read_npy(nc.string());
        CORTEX_CHECK(c.dim() == 1, nc.string(), ": expected a 1-D noise ceiling, found shape ", shape_str(c.shape()));
        c = c.to(DType::Float64).contiguous();
        d.noise_ceiling = d.noise_ceiling.defined() ? [&] {
          Tensor o = empty({d.noise_ceiling.size(0) + c.size(0)}, DType::Float64);
          o.narrow(0, 0, d.noise_ceiling.size(0)).copy_(d.noise_ceiling);
          o.narrow(0, d.noise_ceiling.size(0), c.size(0)).copy_(c);
          return o;
        }() : c;
      }
    }
    int64_t nv = d.responses.defined() ? d.responses.size(1) - offset
                                       : (d.noise_ceiling.defined() ? d.noise_ceiling.size(0) - offset : 0);
    if (opt.rois && fs::is_directory(root / "roi_masks")) {
      const std::string pre = h + ".", suf = "_challenge_space.npy";
      std::vector<std::string> sets;
      for (const auto& e : fs::directory_iterator(root / "roi_masks")) {
        const std::string n = e.path().filename().string();
        if (n.size() > pre.size() + suf.size() && n.rfind(pre, 0) == 0 && n.substr(n.size() - suf.size()) == suf)
          sets.push_back(n.substr(pre.size(), n.size() - pre.size() - suf.size()));
      }
      std::sort(sets.begin(), sets.end());
      // Without responses or a noise ceiling the masks give the vertex count (rh columns follow lh).
      if (nv == 0 && !sets.empty())
        nv = io::npy_info((root / "roi_masks" / (pre + sets[0] + suf)).string()).shape.at(0);
      for (const std::string& s : sets)
        for (auto& [name, cols] : load_roi(subject_dir, h, s)) {
          std::vector<int64_t>& dst = d.rois[name];
          for (int64_t c : cols) {
            CORTEX_CHECK(nv == 0 || c < nv, "load_algonauts: ROI ", s, " of ", h, " has ", c + 1,
                         "+ vertices but the responses have ", nv);
            dst.push_back(c + offset);
          }
        }
    }
    offset += nv;
  }
  if (d.noise_ceiling.defined()) to_fraction(d, opt.nc_units);
  if (d.responses.defined() && d.noise_ceiling.defined())
    CORTEX_CHECK(d.noise_ceiling.size(0) == d.responses.size(1), d.name, ": noise ceiling has ",
                 d.noise_ceiling.size(0), " vertices but the responses have ", d.responses.size(1));
  finish_rows(d, opt.drop_nan);
  return d;
}

Dataset load_images(const std::string& path) {
  CORTEX_CHECK(fs::exists(path), "load_images: nothing at '", path, "'");
  Dataset d;
  d.name = path;
  const std::string ext = fs::path(path).extension().string();
  if (fs::is_directory(path)) {
    d.image_paths = list_images(path);
    CORTEX_CHECK(!d.image_paths.empty(), "load_images: no PNG/JPEG images in ", path);
  } else if (ext == ".hdf5" || ext == ".h5") {
    d.brick = std::make_shared<const ImageBrick>(path, "imgBrick");
    d.brick_rows.resize(static_cast<size_t>(d.brick->size()));
    std::iota(d.brick_rows.begin(), d.brick_rows.end(), 0);
  } else {
    CORTEX_CHECK(ext == ".npy", "load_images: expected a folder, a .npy or an .hdf5 brick, found '", path, "'");
    Tensor im = io::read_npy(path);
    CORTEX_CHECK(im.dtype() == DType::UInt8 && (im.dim() == 3 || im.dim() == 4), path,
                 ": expected uint8 (N, H, W[, C]) images, found ", dtype_name(im.dtype()), " ", shape_str(im.shape()));
    if (im.dim() == 3) im = im.unsqueeze(3);
    CORTEX_CHECK(im.size(3) == 1 || im.size(3) == 3, path, ": expected 1 or 3 channels, found ", im.size(3));
    d.images = im;
  }
  d.source_rows = image_count(d);
  d.rows.resize(static_cast<size_t>(d.source_rows));
  std::iota(d.rows.begin(), d.rows.end(), 0);
  return d;
}

Dataset load_pairs(const std::string& dir, const LoadOptions& opt) {
  const fs::path root(dir);
  CORTEX_CHECK(fs::is_directory(root), "load_pairs: expected a folder, found nothing at ", dir);
  Dataset d;
  if (fs::exists(root / "images.npy")) {
    d = load_images((root / "images.npy").string());
  } else if (fs::exists(root / "images.hdf5")) {
    d = load_images((root / "images.hdf5").string());
    if (fs::exists(root / "image_ids.npy")) {
      const std::string ids = (root / "image_ids.npy").string();
      const Tensor t = io::read_npy(ids);
      CORTEX_CHECK(t.dim() == 1 && !is_floating(t.dtype()) && t.dtype() != DType::Bool, ids,
                   ": expected a 1-D integer array of brick indices, found ", dtype_name(t.dtype()), " ",
                   shape_str(t.shape()));
      d.brick_rows = t.to(DType::Int64).to_vector<int64_t>();
      for (size_t i = 0; i < d.brick_rows.size(); ++i)
        CORTEX_CHECK(d.brick_rows[i] >= 0 && d.brick_rows[i] < d.brick->size(), ids, ": row ", i, " names image ",
                     d.brick_rows[i], ", out of range [0, ", d.brick->size(), ") of ", d.brick->path());
    }
  } else {
    CORTEX_CHECK(fs::is_directory(root / "images"), "load_pairs: expected images.npy, images.hdf5 or an images/ ",
                 "folder in ", dir);
    d = load_images((root / "images").string());
  }
  d.name = dir;
  d.rows.clear();  // finish_rows numbers them once the responses are checked
  d.responses = read_responses(root / "responses.npy");
  if (opt.rois && fs::exists(root / "rois.json")) {
    const std::string js = (root / "rois.json").string();
    nlohmann::json m;
    try {
      std::ifstream f(js);
      m = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      CORTEX_CHECK(false, js, ": not valid JSON (", e.what(), ")");
    }
    CORTEX_CHECK(m.is_object(), js, ": expected {\"roi\": [column, ...]}, found ", m.type_name());
    for (auto it = m.begin(); it != m.end(); ++it) {
      CORTEX_CHECK(it.value().is_array(), js, ": ROI ", it.key(), " should list columns, found ", it.value().type_name());
      for (const auto& c : it.value()) {
        CORTEX_CHECK(c.is_number_integer() && c.get<int64_t>() >= 0 && c.get<int64_t>() < d.responses.size(1), js,
                     ": ROI ", it.key(), " lists ", c.dump(), ", expected a column in [0, ", d.responses.size(1), ")");
        d.rois[it.key()].push_back(c.get<int64_t>());
      }
    }
  }
  finish_rows(d, opt.drop_nan);
  return d;
}

Split split_fraction(int64_t n, double val_fraction, double test_fraction, uint64_t seed) {
  CORTEX_CHECK(n >= 0, "split_fraction: expected n >= 0, found ", n);
  CORTEX_CHECK(val_fraction >= 0 && test_fraction >= 0 && val_fraction + test_fraction <= 1,
               "split_fraction: expected fractions >= 0 summing to <= 1, found ", val_fraction, " and ", test_fraction);
  Split s;
  if (n == 0) return s;
  Generator g(seed);
  std::vector<int64_t> perm = randperm(n, g).to_vector<int64_t>();
  const auto nv = static_cast<int64_t>(std::llround(n * val_fraction));
  const auto nt = std::min<int64_t>(n - nv, std::llround(n * test_fraction));
  s.val.assign(perm.begin(), perm.begin() + nv);
  s.test.assign(perm.begin() + nv, perm.begin() + nv + nt);
  s.train.assign(perm.begin() + nv + nt, perm.end());
  for (auto* v : {&s.train, &s.val, &s.test}) std::sort(v->begin(), v->end());
  return s;
}

Split split_from_files(int64_t n, const std::string& train_npy, const std::string& val_npy, const std::string& test_npy) {
  CORTEX_CHECK(n >= 0, "split_from_files: expected n >= 0, found ", n);
  Split s;
  std::set<int64_t> seen;
  auto read = [&](const std::string& p, std::vector<int64_t>& out) {
    if (p.empty()) return;
    Tensor t = io::read_npy(p);
    CORTEX_CHECK(t.dim() == 1 && !is_floating(t.dtype()) && t.dtype() != DType::Bool, p,
                 ": expected a 1-D integer index array, found ", dtype_name(t.dtype()), " ", shape_str(t.shape()));
    out = t.to(DType::Int64).to_vector<int64_t>();
    for (int64_t i : out) {
      CORTEX_CHECK(i >= 0 && i < n, p, ": index ", i, " out of range [0, ", n, ")");
      CORTEX_CHECK(seen.insert(i).second, p, ": index ", i, " appears twice or in two splits");
    }
    std::sort(out.begin(), out.end());
  };
  read(train_npy, s.train);
  read(val_npy, s.val);
  read(test_npy, s.test);
  return s;
}

Dataset subset(const Dataset& d, const std::vector<int64_t>& idx) {
  Dataset o = d;
  o.rows.clear();
  o.image_paths.clear();
  for (int64_t i : idx) {
    CORTEX_CHECK(i >= 0 && i < d.size(), d.name, ": subset index ", i, " out of range [0, ", d.size(), ")");
    o.rows.push_back(d.rows[i]);
    if (!d.image_paths.empty()) o.image_paths.push_back(d.image_paths[i]);
  }
  if (d.brick) {
    o.brick_rows.clear();
    for (int64_t i : idx) o.brick_rows.push_back(d.brick_rows[i]);
  }
  if (d.images.defined()) o.images = take_rows(d.images, idx);
  if (d.responses.defined()) o.responses = take_rows(d.responses, idx);
  return o;
}

BatchStream::BatchStream(const Dataset& d, int64_t batch_size, std::vector<int64_t> order)
    : d_(&d), batch_(batch_size), order_(std::move(order)) {
  CORTEX_CHECK(batch_size > 0, "BatchStream: expected batch_size > 0, found ", batch_size);
  if (order_.empty()) {
    order_.resize(d.size());
    std::iota(order_.begin(), order_.end(), 0);
  }
  for (int64_t i : order_)
    CORTEX_CHECK(i >= 0 && i < d.size(), "BatchStream: row ", i, " out of range [0, ", d.size(), ")");
}

int64_t BatchStream::batches() const { return (static_cast<int64_t>(order_.size()) + batch_ - 1) / batch_; }

bool BatchStream::next(Batch& out) {
  if (pos_ >= order_.size()) return false;
  const size_t end = std::min(order_.size(), pos_ + static_cast<size_t>(batch_));
  out.index.assign(order_.begin() + pos_, order_.begin() + end);
  pos_ = end;
  const int64_t b = static_cast<int64_t>(out.index.size());
  Tensor first = d_->image(out.index[0]);
  out.images = empty({b, first.size(0), first.size(1), 3}, DType::UInt8);
  for (int64_t k = 0; k < b; ++k) {
    Tensor im = k == 0 ? first : d_->image(out.index[k]);
    CORTEX_CHECK(im.size(0) == first.size(0) && im.size(1) == first.size(1), d_->name, ": image ", out.index[k], " is ",
                 im.size(0), "x", im.size(1), " but the batch's first is ", first.size(0), "x", first.size(1));
    out.images.select(0, k).copy_(im);
  }
  out.responses = d_->responses.defined() ? take_rows(d_->responses, out.index) : Tensor();
  return true;
}

}  // namespace cortex::data
