// `cortex ncut` as a library call (run.h): input loading, picture planning, ncut(), colouring and
// the outputs.
#include "analysis/spectral/run.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "analysis/spectral/colour.h"
#include "dist/comm.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"

namespace cortex::analysis::spectral {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& e : v) s += (s.empty() ? "" : ", ") + e;
  return s;
}

// The one array to analyse: the file's only array, or the key.
Tensor read_features(const NcutJob& o) {
  if (ends_with(o.input, ".npy")) {
    CORTEX_CHECK(o.key.empty(), "ncut: --key applies to .safetensors and .npz inputs, found --key ", o.key,
                 " with ", o.input);
    return io::read_npy(o.input);
  }
  std::map<std::string, Tensor> arrays;
  std::vector<std::string> keys;
  if (ends_with(o.input, ".safetensors")) {
    const io::SafeTensors st = io::SafeTensors::open(o.input);
    keys = st.keys();
    if (!o.key.empty() && st.contains(o.key)) return st.get(o.key);
    if (o.key.empty() && keys.size() == 1) return st.get(keys[0]);
  } else if (ends_with(o.input, ".npz")) {
    arrays = io::read_npz(o.input);
    for (auto& [k, v] : arrays) keys.push_back(k);
    if (!o.key.empty() && arrays.count(o.key)) return arrays.at(o.key);
    if (o.key.empty() && keys.size() == 1) return arrays.begin()->second;
  } else {
    throw Error("ncut: " + o.input + ": expected a .npy, .npz or .safetensors file");
  }
  CORTEX_CHECK(!keys.empty(), "ncut: ", o.input, ": expected at least one array, found none");
  CORTEX_CHECK(!o.key.empty(), "ncut: ", o.input, " holds ", keys.size(), " arrays; choose one with --key (",
               join(keys), ")");
  throw Error("ncut: " + o.input + ": no array named '" + o.key + "' (found " + join(keys) + ")");
}

// How the N nodes become pictures: B images of H x W after leaving out `skip` leading tokens of each.
struct Pictures {
  int64_t B = 0, H = 0, W = 0, skip = 0, per_image = 0;  // per_image: nodes per image in node order
};

int64_t int_sqrt(int64_t v) {
  if (v < 0) return -1;
  int64_t r = static_cast<int64_t>(std::llround(std::sqrt(double(v))));
  while (r * r > v) --r;
  while ((r + 1) * (r + 1) <= v) ++r;
  return r * r == v ? r : -1;
}

// Decided before any computation, so a layout that cannot be drawn fails in a second, not after the
// eigensolver.
Pictures plan_pictures(const Shape& s, const std::string& grid) {
  int64_t gh = 0, gw = 0;
  if (!grid.empty()) {
    char x = 0;
    std::istringstream is(grid);
    CORTEX_CHECK((is >> gh >> x >> gw) && (x == ',' || x == 'x') && is.peek() == EOF && gh > 0 && gw > 0,
                 "ncut: --grid expects H,W (two positive sizes), found '", grid, "'");
  }
  Pictures p;
  if (s.size() == 4) {
    CORTEX_CHECK(grid.empty() || (gh == s[2] && gw == s[3]), "ncut: --grid ", grid,
                 " disagrees with the feature maps' H x W = ", s[2], " x ", s[3]);
    p = {s[0], s[2], s[3], 0, s[2] * s[3]};
  } else if (s.size() == 3) {
    const int64_t T = s[1];
    if (gh > 0) {
      CORTEX_CHECK(gh * gw <= T, "ncut: --grid ", grid, " has ", gh * gw, " cells, more than the ", T,
                   " tokens per image");
      p = {s[0], gh, gw, T - gh * gw, T};
    } else if (int_sqrt(T) > 0) {
      p = {s[0], int_sqrt(T), int_sqrt(T), 0, T};
    } else if (int_sqrt(T - 1) > 0) {
      p = {s[0], int_sqrt(T - 1), int_sqrt(T - 1), 1, T};  // a CLS token, then a square of patches
    } else {
      throw Error(::cortex::detail::cat("ncut: --rgb-dir: ", T, " tokens per image is neither a square nor one more ",
                                        "than a square; say which tokens form the picture with --grid H,W (the first ",
                                        "T - H*W are left out)"));
    }
  } else if (s.size() == 2) {
    CORTEX_CHECK(gh > 0, "ncut: --rgb-dir with (N, d) features needs --grid H,W (N = B * H * W), found shape ",
                 shape_str(s));
    CORTEX_CHECK(s[0] % (gh * gw) == 0, "ncut: --grid ", grid, ": expected N = ", s[0],
                 " to be a multiple of H * W = ", gh * gw);
    p = {s[0] / (gh * gw), gh, gw, 0, gh * gw};
  }
  return p;
}

// rgb (N, 3) in node order -> the picture nodes of every image, (B * H * W, 3).
Tensor picture_rows(const Tensor& rgb, const Pictures& p) {
  if (p.skip == 0) return rgb;
  Tensor out = empty({p.B * p.H * p.W, 3}, rgb.dtype());
  for (int64_t b = 0; b < p.B; ++b)
    out.narrow(0, b * p.H * p.W, p.H * p.W).copy_(rgb.narrow(0, b * p.per_image + p.skip, p.H * p.W));
  return out;
}

}  // namespace

NcutMethod parse_method(const std::string& s) {
  if (s == "exact") return NcutMethod::Exact;
  if (s == "nystrom") return NcutMethod::Nystrom;
  if (s == "fowlkes") return NcutMethod::Fowlkes;
  throw Error("ncut: expected a method exact, nystrom or fowlkes, found '" + s + "'");
}
Sampling parse_sampling(const std::string& s) {
  if (s == "fps") return Sampling::Fps;
  if (s == "random") return Sampling::Random;
  throw Error("ncut: expected a sampling fps or random, found '" + s + "'");
}
Affinity parse_affinity(const std::string& s) {
  if (s == "cosine") return Affinity::Cosine;
  if (s == "rbf") return Affinity::Rbf;
  throw Error("ncut: expected an affinity cosine or rbf, found '" + s + "'");
}
EigSolver parse_solver(const std::string& s) {
  for (EigSolver e : {EigSolver::Auto, EigSolver::Dense, EigSolver::Lanczos, EigSolver::Subspace})
    if (s == solver_name(e)) return e;
  throw Error("ncut: expected a solver auto, dense, lanczos or subspace, found '" + s + "'");
}

std::vector<std::string> run_ncut_job(const NcutJob& o, const PhaseProgress& progress_in,
                                      const std::function<void(const std::string&)>& log_in) {
  auto progress = [&](const char* phase, double done, double s) {
    if (progress_in) progress_in(phase, done, s);
  };
  auto log = [&](const std::string& line) {
    if (log_in) log_in(line);
  };
  CORTEX_CHECK(ends_with(o.out, ".safetensors"), "ncut: --out must end in .safetensors, found '", o.out, "'");
  const auto t_start = Clock::now();

  auto t0 = Clock::now();
  Tensor feats = read_features(o);
  // Half-precision storage computes in float32; integers are refused by ncut() with a clear message.
  if (feats.dtype() == DType::Float16 || feats.dtype() == DType::BFloat16) feats = feats.to(DType::Float32);
  log("ncut: " + o.input + (o.key.empty() ? "" : " : ") + o.key + ": " + shape_str(feats.shape()) + " " +
      dtype_name(feats.dtype()));
  const bool want_rgb = o.rgb || !o.rgb_dir.empty();
  CORTEX_CHECK(!want_rgb || o.tsne_samples >= 2, "ncut: expected --tsne-samples >= 2, found ", o.tsne_samples);
  Pictures pics;
  if (!o.rgb_dir.empty()) pics = plan_pictures(feats.shape(), o.grid);
  progress("read", 1, since(t0));

  NcutOptions no = o.options;
  // Under MPI ranks only the Nystrom propagation is sharded (docs/distributed.md); the other methods
  // would run whole on every rank.
  CORTEX_CHECK(dist::size() == 1 || no.method == NcutMethod::Nystrom, "ncut: --method ", method_name(no.method),
               " is not sharded over MPI ranks (nystrom is); found ", dist::size(), " ranks: run it as one process");
  no.progress = [&](const char* phase, double done, double s) { progress(phase, done, s); };
  const NcutResult r = ncut(feats, no);
  if (!dist::is_root()) return {};  // every rank has the result; rank 0 colours and writes it
  const int64_t N = r.eigenvectors.size(0), k = no.k;
  char line[256];
  std::snprintf(line, sizeof line, "ncut: %s, %s affinity (%s %.4g), N = %lld, m = %lld, k = %lld; eigenvalues %.4f .. %.4f",
                method_name(no.method), affinity_name(no.affinity), no.affinity == Affinity::Cosine ? "t" : "sigma",
                r.t, static_cast<long long>(N), static_cast<long long>(r.sample_indices.numel()),
                static_cast<long long>(k), r.eigenvalues.at({0}), r.eigenvalues.at({k - 1}));
  log(line);

  std::vector<std::pair<std::string, Tensor>> outs = {
      {"eigenvalues", r.eigenvalues}, {"eigenvectors", r.eigenvectors}, {"sample_indices", r.sample_indices}};
  std::vector<std::string> pngs;
  if (want_rgb) {
    t0 = Clock::now();
    ColourOptions co;
    co.samples = o.tsne_samples;
    co.seed = no.seed;
    const Colouring c = colour_eigenvectors(r.eigenvectors, co);
    outs.emplace_back("rgb", c.rgb);
    progress("colour", 1, since(t0));
    if (!o.rgb_dir.empty()) {
      t0 = Clock::now();
      std::error_code ec;
      std::filesystem::create_directories(o.rgb_dir, ec);
      CORTEX_CHECK(!ec && std::filesystem::is_directory(o.rgb_dir), "ncut: cannot create --rgb-dir '", o.rgb_dir,
                   "': ", ec.message());
      const Tensor imgs = to_images(picture_rows(c.rgb, pics), pics.B, pics.H, pics.W);
      pngs = write_pngs(imgs, (std::filesystem::path(o.rgb_dir) / "image").string());
      progress("png", 1, since(t0));
    }
  }

  t0 = Clock::now();
  std::ostringstream tval;
  tval << r.t;
  const std::map<std::string, std::string> meta = {
      {"method", method_name(no.method)},        {"affinity", affinity_name(no.affinity)},
      {"t", tval.str()},                         {"k", std::to_string(k)},
      {"samples", std::to_string(r.sample_indices.numel())},
      {"knn", std::to_string(no.knn)},           {"sampling", sampling_name(no.sampling)},
      {"seed", std::to_string(no.seed)},         {"input", o.input},
      {"key", o.key},                            {"input_shape", shape_str(feats.shape())},
      {"node_order", feats.dim() == 4 ? "(b * H + h) * W + w" : feats.dim() == 3 ? "b * T + t" : "n"}};
  io::write_safetensors(o.out, outs, meta);  // a temporary file renamed into place
  progress("write", 1, since(t0));
  progress("total", 1, since(t_start));

  std::vector<std::string> wrote = {"wrote " + o.out + ": eigenvalues " + shape_str(r.eigenvalues.shape()) +
                                    ", eigenvectors " + shape_str(r.eigenvectors.shape()) + ", sample_indices " +
                                    shape_str(r.sample_indices.shape()) +
                                    (want_rgb ? ", rgb [" + std::to_string(N) + ", 3]" : std::string())};
  if (!pngs.empty())
    wrote.push_back("wrote " + std::to_string(pngs.size()) + " PNG" + (pngs.size() == 1 ? "" : "s") + " (" +
                    std::to_string(pics.H) + " x " + std::to_string(pics.W) + ") to " + o.rgb_dir);
  return wrote;
}

}  // namespace cortex::analysis::spectral
