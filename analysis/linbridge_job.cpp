// cortex linbridge (analysis/linbridge_job.h): model file + subject -> scores, r, ROI summaries, report.
#include "analysis/linbridge_job.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <cstring>
#include <map>
#include <numeric>
#include <sstream>
#include <vector>

#include "analysis/linbridge.h"
#include "analysis/linbridge_down.h"
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
#include "tensor/io/safetensors.h"

namespace cortex::analysis {
namespace {

namespace fs = std::filesystem;

// A model file's settings, from its metadata alone (the tensors are read once, by encoding_function).
encoding::ModelSettings settings_of_file(const std::string& path) {
  return encoding::model_settings(io::SafeTensors::open(path).metadata(), path);
}

// An .npy file of a known shape written through a shared memory map of `path.tmp.<pid>` and renamed
// over `path` by commit(): the Jacobians arrive in pieces that are not in file order (forward mode
// gives columns), and a map lets each piece go to its place without holding the whole array. The
// destructor removes the temporary file unless committed, so an interrupted job leaves nothing.
class NpyMapped {
 public:
  NpyMapped(std::string path, const Shape& shape, DType dt) : path_(std::move(path)), dt_(dt) {
    CORTEX_CHECK(dt == DType::Float32 || dt == DType::Float64, "linbridge: Jacobians are float32 or float64");
    std::string dict = "{'descr': '" + std::string(dt == DType::Float64 ? "<f8" : "<f4") +
                       "', 'fortran_order': False, 'shape': (";
    int64_t numel = 1;
    for (size_t i = 0; i < shape.size(); ++i) dict += std::to_string(shape[i]) + (shape.size() == 1 || i + 1 < shape.size() ? "," : ""), numel *= shape[i];
    dict += "), }";
    // Format 1.0: magic, version, a uint16 header length, the dict padded with spaces to a multiple
    // of 64 bytes in all and ended by a newline.
    const size_t pad = 64 - (10 + dict.size() + 1) % 64;
    dict += std::string(pad % 64, ' ') + "\n";
    header_ = std::string("\x93NUMPY\x01\x00", 8);
    header_ += char(dict.size() & 0xff), header_ += char(dict.size() >> 8);
    header_ += dict;
    bytes_ = header_.size() + size_t(numel) * dtype_size(dt);
    tmp_ = path_ + ".tmp." + std::to_string(::getpid());
    fd_ = ::open(tmp_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    CORTEX_CHECK(fd_ >= 0, "linbridge: cannot create ", tmp_, ": ", std::strerror(errno));
    // Reserve the blocks now: a write through a map into a sparse file on a full disk is a SIGBUS,
    // where posix_fallocate gives ENOSPC here, as an error.
    if (const int e = ::posix_fallocate(fd_, 0, off_t(bytes_)); e != 0) {
      cleanup();
      throw Error("linbridge: cannot reserve " + std::to_string(bytes_) + " bytes for " + tmp_ + ": " + std::strerror(e));
    }
    void* m = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (m == MAP_FAILED) {
      const int e = errno;
      cleanup();
      throw Error("linbridge: cannot map " + tmp_ + ": " + std::strerror(e));
    }
    map_ = static_cast<uint8_t*>(m);
    std::memcpy(map_, header_.data(), header_.size());
  }
  ~NpyMapped() { cleanup(); }
  NpyMapped(const NpyMapped&) = delete;
  NpyMapped& operator=(const NpyMapped&) = delete;
  template <class T>
  T* data() { return reinterpret_cast<T*>(map_ + header_.size()); }
  DType dtype() const { return dt_; }
  void commit() {
    CORTEX_CHECK(::msync(map_, bytes_, MS_SYNC) == 0, "linbridge: cannot write ", tmp_, ": ", std::strerror(errno));
    ::munmap(map_, bytes_), map_ = nullptr;
    CORTEX_CHECK(::fsync(fd_) == 0, "linbridge: cannot write ", tmp_, ": ", std::strerror(errno));
    ::close(fd_), fd_ = -1;
    CORTEX_CHECK(std::rename(tmp_.c_str(), path_.c_str()) == 0, "linbridge: cannot rename ", tmp_, " to ", path_, ": ",
                 std::strerror(errno));
    committed_ = true;
  }

 private:
  void cleanup() {
    if (map_) ::munmap(map_, bytes_), map_ = nullptr;
    if (fd_ >= 0) ::close(fd_), fd_ = -1;
    if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
  }
  std::string path_, tmp_, header_;
  DType dt_;
  size_t bytes_ = 0;
  int fd_ = -1;
  uint8_t* map_ = nullptr;
  bool committed_ = false;
};

// Writes one piece of the autodiff path's Jacobians into the (N, V, F) array `out`.
template <class T>
void put_piece(T* out, const JacobianPiece& p, int64_t V, int64_t F) {
  for (int64_t i = 0; i < p.k; ++i)
    for (int64_t n = 0; n < p.count; ++n) {
      const double* row = p.data + (i * p.count + n) * p.width;
      if (p.forward) {  // row[v] = J_{first+n}[v, j0 + i]
        T* base = out + (p.first + n) * V * F + p.j0 + i;
        for (int64_t v = 0; v < V; ++v) base[v * F] = T(row[v]);
      } else {  // row[j] = J_{first+n}[j0 + i, j]
        T* dst = out + ((p.first + n) * V + p.j0 + i) * F;
        for (int64_t j = 0; j < F; ++j) dst[j] = T(row[j]);
      }
    }
}

// Bytes in the largest binary unit that keeps the number >= 1 ("35.0 KiB", "8.00 GiB").
std::string human_bytes(double bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (u < 4 && bytes >= 1024) bytes /= 1024, ++u;
  std::ostringstream os;
  os << std::fixed << std::setprecision(u == 0 ? 0 : bytes < 10 ? 2 : 1) << bytes << " " << units[u];
  return os.str();
}

int64_t max_rss_bytes() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return int64_t(u.ru_maxrss) * 1024;  // Linux reports kilobytes
}

// The modules an EncodingFunction calls.
struct Held {
  std::shared_ptr<models::Backbone> backbone;
  std::shared_ptr<models::Readout> readout;  // the readout f applies (a fine-tuned model's own readout)
  std::shared_ptr<models::Readout> whole;    // a fine-tuned model (backbone + readout), kept alive
};

void to_float64(models::Module& m) {
  for (auto& [name, t] : m.named_tensors())
    if (t->defined() && is_floating(t->dtype())) *t = t->to(DType::Float64);
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

int64_t parse_bytes(const std::string& s, const char* flag) {
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  std::string unit = end ? std::string(end) : std::string();
  double mult = 1;
  if (unit == "K" || unit == "KiB" || unit == "k") mult = 1024.0;
  else if (unit == "M" || unit == "MiB") mult = 1024.0 * 1024;
  else if (unit == "G" || unit == "GiB") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "TiB") mult = 1024.0 * 1024 * 1024 * 1024;
  else CORTEX_CHECK(unit.empty(), "linbridge: ", flag, " expects bytes (e.g. 1073741824, 512M, 8G), found '", s, "'");
  CORTEX_CHECK(end != s.c_str() && std::isfinite(x) && x > 0 && x * mult < 9.2e18, "linbridge: ", flag,
               " expects a positive number of bytes (e.g. 1073741824, 512M, 8G), found '", s, "'");
  return int64_t(x * mult);
}

EncodingFunction encoding_function(const std::string& model_path, const data::Dataset& d, const std::string& wrt,
                                   const std::string& weights, const std::string& device, int64_t batch, bool float64,
                                   const char* who, const SizeCheck& check) {
  CORTEX_CHECK(wrt == "features" || wrt == "pixels", who, ": --wrt must be features or pixels, found '", wrt, "'");
  CORTEX_CHECK(d.size() >= 1, who, ": ", d.name, " has no images");
  const auto [tensors, m] = encoding::read_model_file(model_path);
  const encoding::EncodingSpec o = encoding::spec_of_model(tensors, m, model_path, weights, batch, device, who);
  const DType dt = float64 ? DType::Float64 : DType::Float32;
  auto held = std::make_shared<Held>();
  EncodingFunction e;
  e.readout = o.readout, e.wrt = wrt, e.keep = held;

  // The readout's state (the standardiser apart) and the standardiser of two-layer / linear.
  std::map<std::string, Tensor> state = tensors;
  Tensor zmean, zstd;
  if (encoding::standardized(o.readout)) {
    CORTEX_CHECK(state.count("input_mean") && state.count("input_std"), who, ": ", model_path,
                 " lacks 'input_mean' or 'input_std'");
    zmean = state.at("input_mean"), zstd = state.at("input_std");
    state.erase("input_mean"), state.erase("input_std");
  }
  auto need = [&](const std::string& key) {
    CORTEX_CHECK(state.count(key), who, ": ", model_path, " lacks '", key, "'");
    return state.at(key);
  };

  // The backbone: the fine-tuned one from the file, or the frozen one the spec names.
  encoding::EncodingSpec frozen = o;
  frozen.finetune = false;
  if (o.finetune) {
    models::ModelConfig cfg = o.config.empty() ? models::config_for_arch(o.arch) : models::config_from_file(o.config);
    cfg.prefix = "backbone.";
    held->backbone = models::load_backbone(cfg, model_path);
    auto ft = encoding::make_finetuned(o, held->backbone, need("readout.bias").numel(), encoding::finetuned_keep(tensors));
    models::load_state_dict(*ft, tensors, {}, model_path);
    held->whole = ft, held->readout = ft->readout;
  } else if (o.readout != "core" && o.tap != "pixels") {
    held->backbone = encoding::make_backbone(o);
  }
  models::Backbone* bb = held->backbone.get();
  if (bb) bb->train(false), bb->requires_grad(false);

  // The readout's input shapes (batch dim included), from the first image, before any long work.
  std::vector<Shape> shapes;
  const encoding::InputSpec is = encoding::input_spec(frozen, bb);
  const Tensor one = encoding::prepare_rows(d, {0}, is.prep);
  std::vector<Tensor> one_in;
  {
    NoGradGuard ng;
    if (bb) bb->to(Device::cpu()), bb->set_compute_dtype(DType::Float32);  // Jacobians on the host
    one_in = encoding::inputs_of(bb, one, is);
    for (const Tensor& t : one_in) shapes.push_back(t.shape());
  }
  if (zmean.defined())
    CORTEX_CHECK(shapes[0].size() == 2 && zmean.numel() == shapes[0][1], who, ": ", model_path, " standardises ",
                 zmean.numel(), " features, the inputs have ", shape_str(shapes[0]));

  // The readout (ridge: its weights; a fine-tuned model's is loaded above).
  Tensor ridge_w, ridge_b;
  if (o.readout == "ridge") {
    ridge_w = need("weights"), ridge_b = need("intercept");
    CORTEX_CHECK(ridge_w.dim() == 2 && ridge_b.dim() == 1 && ridge_w.size(1) == ridge_b.numel(), who, ": ", model_path,
                 " has ridge weights ", shape_str(ridge_w.shape()), " and intercept ", shape_str(ridge_b.shape()));
  } else if (!o.finetune) {
    const std::string bias = encoding::readout_bias_key(o.readout);
    std::vector<Tensor> keep;
    for (size_t l = 0; state.count("keep." + std::to_string(l)); ++l) keep.push_back(state.at("keep." + std::to_string(l)));
    held->readout = encoding::make_readout(o, shapes, need(bias).numel(), keep);
    models::load_state_dict(*held->readout, state, {}, model_path);
  }
  if (held->readout) held->readout->train(false), held->readout->requires_grad(false);

  // The sizes, for the caller's checks before the features of every image are made.
  const int64_t N = d.size();
  int64_t F = 0, V = 0;
  if (wrt == "features")
    for (const Shape& sh : shapes) F += std::accumulate(sh.begin() + 1, sh.end(), int64_t(1), std::multiplies<int64_t>());
  else
    F = one.numel();
  {
    NoGradGuard ng;
    V = ridge_w.defined() ? ridge_w.size(1) : held->readout->read(one_in).size(1);
  }
  if (check) check(N, F, V);

  // The stimuli X.
  if (wrt == "features") {
    std::vector<Tensor> maps = encoding::readout_inputs(bb, d, is, "input", who);
    if (zmean.defined()) maps[0] = encoding::Standardizer{zmean, zstd}.apply(maps[0]);
    std::vector<Tensor> flat;
    for (const Tensor& t : maps) flat.push_back(t.reshape({t.size(0), -1}));
    e.X = (flat.size() == 1 ? flat[0] : concat(flat, 1)).to(dt).contiguous();
  } else {
    std::vector<int64_t> rows(N);
    std::iota(rows.begin(), rows.end(), 0);
    e.X = encoding::prepare_rows(d, rows, is.prep).to(dt).contiguous();
  }
  if (float64) {
    if (held->readout) to_float64(*held->readout);
    if (bb && wrt == "pixels") to_float64(*bb);
  }

  // f: the readout on its inputs, with the standardiser (differentiable here, unlike
  // Standardizer::apply) when X is the image.
  const Tensor rw = ridge_w.defined() ? ridge_w.to(dt) : Tensor(), rb = ridge_b.defined() ? ridge_b.to(dt) : Tensor();
  const Tensor zm = zmean.defined() ? zmean.to(dt) : Tensor(), zs = zstd.defined() ? zstd.to(dt) : Tensor();
  models::Readout* net = held->readout.get();
  auto readout = [rw, rb, net](const std::vector<Tensor>& in) {
    return rw.defined() ? matmul(in[0], rw) + rb : net->read(in);
  };
  if (wrt == "features") {
    std::vector<int64_t> widths;
    for (const Shape& sh : shapes) {
      int64_t w = 1;
      for (size_t i = 1; i < sh.size(); ++i) w *= sh[i];
      widths.push_back(w);
    }
    e.f = [readout, shapes, widths](const Tensor& x) {
      std::vector<Tensor> in;
      int64_t at = 0;
      for (size_t k = 0; k < shapes.size(); ++k) {
        Shape sh = shapes[k];
        sh[0] = x.size(0);
        in.push_back(x.narrow(1, at, widths[k]).reshape(sh));
        at += widths[k];
      }
      return readout(in);
    };
  } else {
    e.f = [readout, bb, is, zm, zs](const Tensor& x) {
      std::vector<Tensor> in = encoding::inputs_of(bb, x, is);
      if (zm.defined()) in[0] = (in[0] - zm) / zs;
      return readout(in);
    };
  }

  // The closed forms (features only: through a backbone the Jacobian is no longer structured).
  if (wrt == "features") {
    if (o.readout == "two-layer")
      e.two_layer = TwoLayerParams{need("fc1.weight"), need("fc1.bias"), need("fc2.weight"), need("fc2.bias")};
    else if (o.readout == "linear")
      e.affine_W = need("fc.weight"), e.affine_b = need("fc.bias");
    else if (o.readout == "ridge")
      e.affine_W = ridge_w.t().contiguous(), e.affine_b = ridge_b;
  }
  return e;
}

LinBridgeSummary run_linbridge(const LinBridgeJob& job) {
  CORTEX_CHECK(!job.model.empty() && !job.data.empty() && !job.out.empty(),
               "linbridge: expected --model, --data and --out");
  CORTEX_CHECK(job.split == "train" || job.split == "test", "linbridge: --split must be train or test, found '",
               job.split, "'");
  CORTEX_CHECK(job.wrt == "features" || job.wrt == "pixels", "linbridge: --wrt must be features or pixels, found '",
               job.wrt, "'");
  CORTEX_CHECK(job.block >= 1 && job.batch >= 1, "linbridge: --block and --batch must be >= 1");
  CORTEX_CHECK(job.compressor == "none" || job.compressor == "infonce",
               "linbridge: --compressor must be none or infonce, found '", job.compressor, "'");
  CORTEX_CHECK(job.memory_budget > 0 && job.max_jacobian_bytes > 0,
               "linbridge: --memory-budget and --max-jacobian-bytes must be > 0");
  // Under MPI ranks the closed form's stimuli are split across ranks, so one rank alone holds
  // neither every stimulus's Jacobian nor every sketch the compressor trains on.
  CORTEX_CHECK(dist::size() == 1 || (job.save_jacobians.empty() && job.compressor == "none"),
               "linbridge: --save-jacobians and --compressor run in one process, not under ", dist::size(),
               " MPI ranks (docs/distributed.md)");
  const encoding::ModelSettings ms = settings_of_file(job.model);
  const std::string& kind = ms.readout;

  data::LoadOptions load_opt;
  load_opt.hemi = ms.hemi;
  load_opt.nc_units = data::parse_nc_units(job.nc_units);
  const data::Dataset d = data::load_algonauts(job.data, job.split, load_opt);
  CORTEX_CHECK(d.responses.defined(), "linbridge: ", d.name, " has no measured responses; r needs them");
  CORTEX_CHECK(d.size() >= 2, "linbridge: ", d.name, " has ", d.size(), " images; the statistics need at least 2");

  if (!job.linear_model.empty()) {
    const encoding::ModelSettings c = settings_of_file(job.linear_model);
    CORTEX_CHECK(c.readout == "linear", "linbridge: --linear ", job.linear_model, " is a '", c.readout,
                 "' readout, expected linear");
    CORTEX_CHECK(c.arch == ms.arch && c.config == ms.config && c.tap == ms.tap && c.pool == ms.pool &&
                     c.image_size == ms.image_size && c.hemi == ms.hemi && c.weights == ms.weights &&
                     c.dtype == ms.dtype && !ms.finetune,
                 "linbridge: --linear ", job.linear_model, " reads other inputs (backbone, tap, pool, image size, "
                 "weights, dtype, hemi or a fine-tuned backbone) than --model ", job.model);
  }

  const bool features = job.wrt == "features";
  const bool two_layer = features && kind == "two-layer" && !job.autodiff;
  const bool affine = features && (kind == "ridge" || kind == "linear") && !job.autodiff;
  const std::string path = two_layer ? "closed-form two-layer" : affine ? "closed-form affine" : "autodiff";
  const DType xdt = job.float64 ? DType::Float64 : DType::Float32;

  // Refused from the sizes alone, before the features of every image are made: a model of other
  // voxels, a --save-jacobians file over --max-jacobian-bytes (what it holds: docs/linbridge.md,
  // "Saved Jacobians"), an autodiff budget below one direction of one stimulus.
  Shape jshape;
  DType jdt = DType::Float64;
  std::string jwhat;
  nlohmann::json jinfo;
  auto check = [&](int64_t N, int64_t F, int64_t V) {
    CORTEX_CHECK(V == d.responses.size(1), "linbridge: ", job.model, " predicts ", V, " voxels, ", d.name, " has ",
                 d.responses.size(1), " (hemi ", ms.hemi, ")");
    CORTEX_CHECK(two_layer || affine || job.memory_budget >= (F + V) * int64_t(dtype_size(xdt)),
                 "linbridge: --memory-budget of ", job.memory_budget, " bytes is below one direction of one stimulus (",
                 (F + V) * int64_t(dtype_size(xdt)), " bytes)");
    if (two_layer) {
      jshape = {N, ms.hidden}, jwhat = "sigmoid'(W1 z_n + b1) per stimulus: JM(z_n) = W2 diag(row n) W1";
    } else if (affine) {
      jshape = {V, F}, jwhat = "the one Jacobian of an affine readout, shared by every stimulus";
    } else {
      jshape = {N, V, F}, jdt = xdt, jwhat = "JM(x_n) per stimulus (N, V, F)";
    }
    if (job.save_jacobians.empty()) return;
    double bytes = double(dtype_size(jdt));
    for (int64_t x : jshape) bytes *= double(x);
    CORTEX_CHECK(bytes <= double(job.max_jacobian_bytes), "linbridge: --save-jacobians would write ",
                 shape_str(jshape), " ", dtype_name(jdt), " = ", int64_t(bytes), " bytes (", human_bytes(bytes),
                 "), above --max-jacobian-bytes ", job.max_jacobian_bytes, " (", human_bytes(double(job.max_jacobian_bytes)), ")");
    jinfo = {{"file", job.save_jacobians}, {"shape", jshape}, {"dtype", dtype_name(jdt)}, {"bytes", int64_t(bytes)},
             {"what", jwhat}};
  };
  const EncodingFunction e =
      encoding_function(job.model, d, job.wrt, job.weights, job.device, job.batch, job.float64, "linbridge", check);
  CORTEX_CHECK(!two_layer || (e.two_layer && e.two_layer->W1.size(0) == ms.hidden), "linbridge: ", job.model,
               " has fc1.weight of other than 'hidden' = ", ms.hidden, " rows");
  const int64_t N = e.X.size(0), F = e.X.numel() / N, V = d.responses.size(1);
  const int64_t hidden = two_layer ? ms.hidden : 0;
  std::unique_ptr<NpyMapped> jfile;
  if (!job.save_jacobians.empty() && !two_layer && !affine)
    jfile = std::make_unique<NpyMapped>(job.save_jacobians, jshape, jdt);

  LinBridgeOptions opt;
  opt.block = job.block;
  opt.memory_budget = job.memory_budget;
  opt.energy_afd = job.energy_afd;
  if (!features) {
    // Through a backbone every (image, direction) pair of a pass carries the backbone's own
    // activations, which the budget does not count: at most --batch pairs per pass, as many images
    // as a forward pass of the fit would hold.
    const int64_t pair = (F + V) * int64_t(dtype_size(xdt));
    opt.block = std::min(job.block, job.batch);
    opt.memory_budget = std::min(job.memory_budget, std::max<int64_t>(pair, job.batch * pair));
  }
  Bar bar{job.progress};
  opt.progress = [&bar](int64_t done, int64_t total) { bar(done, total); };
  // The learned compressor's sketches (docs/linbridge.md, "The learned compressor (JM_down)"):
  // streamed from the autodiff path's Jacobian pieces, or from the closed forms afterwards.
  const bool infonce = job.compressor == "infonce";
  DownOptions dopt;
  dopt.seed = job.compressor_seed;
  Tensor proj, sketches;
  if (infonce) {
    proj = sketch_projection(F, dopt.sketch, dopt.seed);
    if (!two_layer && !affine) sketches = zeros({N, V, dopt.sketch}, DType::Float64);
  }
  if (jfile || sketches.defined()) {
    NpyMapped* jf = jfile.get();
    Tensor* sk = sketches.defined() ? &sketches : nullptr;
    opt.jacobian_sink = [jf, sk, &proj, V, F](const JacobianPiece& p) {
      if (jf && jf->dtype() == DType::Float64) put_piece(jf->data<double>(), p, V, F);
      else if (jf) put_piece(jf->data<float>(), p, V, F);
      if (sk) add_sketch(*sk, p, proj);
    };
  }
  const auto t0 = std::chrono::steady_clock::now();
  LinBridgeResult r;
  if (two_layer) r = linbridge_two_layer(*e.two_layer, e.X, opt);
  else if (affine) r = linbridge_linear(e.affine_W, e.affine_b, e.X, opt);
  else r = linbridge_autodiff(e.f, e.X, opt);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  DownResult down;
  if (infonce) {
    if (two_layer) {
      sketches = sketch_two_layer(*e.two_layer, e.X, proj);
    } else if (affine) {  // one Jacobian for every stimulus: every sketch is W P
      NoGradGuard ng;
      sketches = matmul(e.affine_W.to(DType::Float64), proj).unsqueeze(0).expand({N, V, dopt.sketch}).contiguous();
    }
    down = linbridge_down(sketches, r.pred_full, dopt);
    sketches = Tensor();
  }
  const double seconds_down = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() - seconds;
  Tensor compact;  // the closed forms' saved Jacobians
  if (!job.save_jacobians.empty() && two_layer) {
    NoGradGuard ng;
    const Tensor s = sigmoid(matmul(e.X.to(DType::Float64), e.two_layer->W1.to(DType::Float64).t()) +
                             e.two_layer->b1.to(DType::Float64));
    compact = (s * (1.0 - s)).contiguous();
  } else if (!job.save_jacobians.empty() && affine) {
    compact = e.affine_W.to(DType::Float64).contiguous();
  }

  const std::vector<double> share = to_vec(r.energy_share), afd = to_vec(r.afd), slope = to_vec(r.afd_slope);
  const std::vector<double> afd_energy = job.energy_afd ? to_vec(r.afd_energy) : std::vector<double>();
  const std::vector<double> share_down = infonce ? to_vec(down.energy_share_down) : std::vector<double>(),
                            afd_down = infonce ? to_vec(down.afd_down) : std::vector<double>();
  const std::vector<double> r_full = to_vec(pearson_r(r.pred_full, d.responses)),
                            r_lin = to_vec(pearson_r(r.pred_linear, d.responses)),
                            r2_full = to_vec(r2_score(r.pred_full, d.responses)),
                            r2_lin = to_vec(r2_score(r.pred_linear, d.responses));
  std::vector<double> r_ctl, r2_ctl;
  if (!job.linear_model.empty()) {
    NoGradGuard ng;
    const EncodingFunction c =
        encoding_function(job.linear_model, d, "features", job.weights, job.device, job.batch, false, "linbridge");
    CORTEX_CHECK(c.affine_W.size(0) == V, "linbridge: --linear ", job.linear_model, " predicts ", c.affine_W.size(0),
                 " voxels, --model ", V);
    const Tensor pc = linbridge_linear(c.affine_W, c.affine_b, c.X, {}).pred_full;
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
  j["model"] = job.model, j["data"] = job.data, j["split"] = job.split, j["hemi"] = ms.hemi, j["readout"] = kind;
  j["finetuned"] = ms.finetune;
  j["images"] = N, j["voxels"] = V, j["features"] = F;
  if (hidden) j["hidden"] = hidden;
  j["mode"] = r.mode, j["path"] = path, j["wrt"] = job.wrt;
  j["jacobian_dtype"] = dtype_name(e.X.dtype());
  if (job.wrt == "pixels") j["pixels"] = "the normalised image (3, S, S) the backbone reads, on the host";
  j["afd_order"] = "each voxel's predicted response (rank / (N - 1))";
  j["afd_scalar"] = "gain_v(z) = <dJM_v(z), JM_inherent_v> / ||JM_inherent_v||^2";
  j["seconds"] = seconds, j["ms_per_stimulus"] = 1e3 * seconds / N, j["peak_working_bytes"] = r.peak_bytes;
  j["memory_budget"] = job.memory_budget, j["max_rss_bytes"] = max_rss_bytes();
  if (!jinfo.is_null()) j["jacobians"] = jinfo;
  auto summary = [&](const std::vector<int64_t>& cols) {
    nlohmann::json s;
    s["voxels"] = cols.size();
    s["mean_energy_share"] = json_number(mean_of(share, cols));
    s["median_energy_share"] = json_number(median_of(share, cols));
    s["mean_afd"] = json_number(mean_of(afd, cols));
    s["median_afd"] = json_number(median_of(afd, cols));
    if (job.energy_afd) s["mean_afd_energy"] = json_number(mean_of(afd_energy, cols));
    if (infonce) {
      s["mean_energy_share_down"] = json_number(mean_of(share_down, cols));
      s["mean_afd_down"] = json_number(mean_of(afd_down, cols));
    }
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
  if (job.energy_afd) j["afd_energy"] = arr(afd_energy), j["afd_energy_slope"] = arr(to_vec(r.afd_energy_slope));
  if (infonce) {
    j["energy_share_down"] = arr(share_down), j["afd_down"] = arr(afd_down);
    j["compressor"] = {{"kind", "infonce"}, {"sketch", dopt.sketch}, {"hidden", dopt.hidden}, {"dim", dopt.dim},
                       {"temperature", dopt.temperature}, {"steps", dopt.steps}, {"batch", dopt.batch},
                       {"lr", dopt.lr}, {"seed", dopt.seed}, {"seconds", seconds_down},
                       {"loss_first", down.loss.empty() ? nlohmann::json() : json_number(down.loss.front())},
                       {"loss_last", down.loss.empty() ? nlohmann::json() : json_number(down.loss.back())}};
  }
  j["r_full"] = arr(r_full), j["r_linear"] = arr(r_lin), j["r2_full"] = arr(r2_full), j["r2_linear"] = arr(r2_lin);
  if (!r_ctl.empty()) j["r_control"] = arr(r_ctl), j["r2_control"] = arr(r2_ctl);
  if (!d.rois.empty()) j["roi_columns"] = d.rois;

  // The report.
  ReportData rep;
  rep.title = "cortex linbridge: " + kind + " readout" + (ms.finetune ? " (fine-tuned backbone)" : "") + ", " + job.model;
  rep.summary = {{"images (" + job.split + " split)", std::to_string(N)},
                 {"voxels, features", std::to_string(V) + ", " + std::to_string(F)},
                 {"mean energy share E‖ΔJM‖² / E‖JM‖²", fmt(mean_of(share, all))},
                 {"mean AFD (stimuli ordered by the voxel's predicted response)", fmt(mean_of(afd, all))},
                 {"learned compressor (InfoNCE): mean energy share / AFD of JM_down",
                  infonce ? fmt(mean_of(share_down, all)) + " / " + fmt(mean_of(afd_down, all)) : "not run (--compressor none)"},
                 {"mean r: full model / linear part", fmt(mean_of(r_full, all)) + " / " + fmt(mean_of(r_lin, all))},
                 {"time (Jacobian statistics)", fmt(seconds, 2) + " s, " + fmt(1e3 * seconds / N, 3) + " ms per stimulus"},
                 {"Jacobian path, with respect to", path + (r.mode == "closed-form" ? "" : " (" + r.mode + " mode)") +
                                                        ", " + job.wrt}};
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
    if (job.energy_afd) npy("afd_energy.npy", afd_energy);
    if (infonce) {
      npy("energy_share_down.npy", share_down), npy("afd_down.npy", afd_down);
      io::write_npy((out / "inherent_down.npy").string(), down.inherent_down);
    }
    npy("r_full.npy", r_full), npy("r_linear.npy", r_lin), npy("r2_full.npy", r2_full), npy("r2_linear.npy", r2_lin);
    if (!r_ctl.empty()) npy("r_control.npy", r_ctl), npy("r2_control.npy", r2_ctl);
    io::write_npy((out / "pred_linear.npy").string(), r.pred_linear);
    const std::string js = j.dump(2);
    io::write_file_atomic((out / "linbridge.json").string(), js.data(), js.size());
    write_report((out / "report.html").string(), rep);
    if (jfile) jfile->commit();
    if (compact.defined()) io::write_npy(job.save_jacobians, compact);
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
