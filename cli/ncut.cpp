// cortex ncut: Normalized-Cut spectral embedding of features (analysis/spectral, docs/spectral.md).
//
//   cortex ncut --input feats.safetensors --key layer3 --k 20 --method nystrom --samples 4096 --knn 10
//               --out eig.safetensors --rgb-dir seg/   (one line)
//
// Reads an (N, d), (B, T, d) or (B, C, H, W) float array from .npy, .npz or .safetensors, writes
// eigenvalues (k), eigenvectors (N, k), sample_indices (m; empty for exact) and, when asked, rgb
// (N, 3) to --out (a temporary file renamed into place), with the settings as metadata. --rgb-dir
// writes one PNG per image: B images of H x W for (B, C, H, W); for (B, T, d) a sqrt(T) x sqrt(T)
// grid, or, when T is one more than a square, the first token (a ViT's CLS token) left out of the
// picture; --grid H,W says it for any other token count (the first T - H*W tokens are left out) and
// for (N, d) inputs (N = B * H * W). Progress and the time of each phase go to stderr.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include "analysis/spectral/colour.h"
#include "analysis/spectral/ncut.h"
#include "cli/commands.h"
#include "tensor/io/npy.h"
#include "tensor/io/safetensors.h"

namespace cortex::cli {
namespace {

namespace sp = cortex::analysis::spectral;
using Clock = std::chrono::steady_clock;

struct Opts {
  std::string input, key, out, rgb_dir, grid;
  int64_t k = 20, samples = 4096, knn = 10, chunk = 8192, tsne_samples = 1000;
  std::string method = "nystrom", sampling = "fps", affinity = "cosine", solver = "auto";
  double t = 0;
  uint64_t seed = 0;
  bool orthogonalize = false, rgb = false;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& e : v) s += (s.empty() ? "" : ", ") + e;
  return s;
}

// The one array to analyse: the file's only array, or --key.
Tensor read_features(const Opts& o) {
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
      throw Error(detail::cat("ncut: --rgb-dir: ", T, " tokens per image is neither a square nor one more than a ",
                              "square; say which tokens form the picture with --grid H,W (the first T - H*W are ",
                              "left out)"));
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

// Progress on stderr: on a terminal a redrawn bar for the phase under way; elsewhere (a log file)
// only the line each phase ends with.
class Progress {
 public:
  Progress() : tty_(isatty(STDERR_FILENO) != 0) {}
  void operator()(const char* phase, double done, double seconds) {
    if (done >= 1) {
      std::fprintf(stderr, "%s%-11s %8.2f s\n", tty_ ? "\r\033[K" : "", phase, seconds);
      return;
    }
    if (!tty_) return;
    const int width = 30, filled = static_cast<int>(done * width);
    std::fprintf(stderr, "\r%-11s [%s%s] %3d%%  %.1f s", phase, std::string(filled, '#').c_str(),
                 std::string(width - filled, '.').c_str(), static_cast<int>(done * 100), seconds);
    std::fflush(stderr);
  }

 private:
  bool tty_;
};

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int run(const Opts& o) {
  CORTEX_CHECK(ends_with(o.out, ".safetensors"), "ncut: --out must end in .safetensors, found '", o.out, "'");
  const auto t_start = Clock::now();
  Progress progress;

  auto t0 = Clock::now();
  Tensor feats = read_features(o);
  // Half-precision storage computes in float32; integers are refused by ncut() with a clear message.
  if (feats.dtype() == DType::Float16 || feats.dtype() == DType::BFloat16) feats = feats.to(DType::Float32);
  std::fprintf(stderr, "ncut: %s%s%s: %s %s\n", o.input.c_str(), o.key.empty() ? "" : " : ", o.key.c_str(),
               shape_str(feats.shape()).c_str(), dtype_name(feats.dtype()));
  const bool want_rgb = o.rgb || !o.rgb_dir.empty();
  CORTEX_CHECK(!want_rgb || o.tsne_samples >= 2, "ncut: expected --tsne-samples >= 2, found ", o.tsne_samples);
  Pictures pics;
  if (!o.rgb_dir.empty()) pics = plan_pictures(feats.shape(), o.grid);
  progress("read", 1, since(t0));

  sp::NcutOptions no;
  no.k = o.k;
  no.method = o.method == "exact" ? sp::NcutMethod::Exact
              : o.method == "fowlkes" ? sp::NcutMethod::Fowlkes
                                      : sp::NcutMethod::Nystrom;
  no.samples = o.samples;
  no.knn = o.knn;
  no.sampling = o.sampling == "random" ? sp::Sampling::Random : sp::Sampling::Fps;
  no.affinity = o.affinity == "rbf" ? sp::Affinity::Rbf : sp::Affinity::Cosine;
  no.t = o.t;
  no.seed = o.seed;
  no.chunk = o.chunk;
  no.solver = o.solver == "dense"      ? sp::EigSolver::Dense
              : o.solver == "lanczos"  ? sp::EigSolver::Lanczos
              : o.solver == "subspace" ? sp::EigSolver::Subspace
                                       : sp::EigSolver::Auto;
  no.orthogonalize = o.orthogonalize;
  no.progress = [&](const char* phase, double done, double s) { progress(phase, done, s); };
  const sp::NcutResult r = sp::ncut(feats, no);
  const int64_t N = r.eigenvectors.size(0);
  std::fprintf(stderr, "ncut: %s, %s affinity (%s %.4g), N = %lld, m = %lld, k = %lld; eigenvalues %.4f .. %.4f\n",
               sp::method_name(no.method), sp::affinity_name(no.affinity),
               no.affinity == sp::Affinity::Cosine ? "t" : "sigma", r.t, static_cast<long long>(N),
               static_cast<long long>(r.sample_indices.numel()), static_cast<long long>(o.k),
               r.eigenvalues.at({0}), r.eigenvalues.at({o.k - 1}));

  std::vector<std::pair<std::string, Tensor>> outs = {
      {"eigenvalues", r.eigenvalues}, {"eigenvectors", r.eigenvectors}, {"sample_indices", r.sample_indices}};
  std::vector<std::string> pngs;
  if (want_rgb) {
    t0 = Clock::now();
    sp::ColourOptions co;
    co.samples = o.tsne_samples;
    co.seed = o.seed;
    const sp::Colouring c = sp::colour_eigenvectors(r.eigenvectors, co);
    outs.emplace_back("rgb", c.rgb);
    progress("colour", 1, since(t0));
    if (!o.rgb_dir.empty()) {
      t0 = Clock::now();
      std::error_code ec;
      std::filesystem::create_directories(o.rgb_dir, ec);
      CORTEX_CHECK(!ec && std::filesystem::is_directory(o.rgb_dir), "ncut: cannot create --rgb-dir '", o.rgb_dir,
                   "': ", ec.message());
      const Tensor imgs = sp::to_images(picture_rows(c.rgb, pics), pics.B, pics.H, pics.W);
      pngs = sp::write_pngs(imgs, (std::filesystem::path(o.rgb_dir) / "image").string());
      progress("png", 1, since(t0));
    }
  }

  t0 = Clock::now();
  std::ostringstream tval;
  tval << r.t;
  const std::map<std::string, std::string> meta = {
      {"method", sp::method_name(no.method)},       {"affinity", sp::affinity_name(no.affinity)},
      {"t", tval.str()},                            {"k", std::to_string(o.k)},
      {"samples", std::to_string(r.sample_indices.numel())},
      {"knn", std::to_string(o.knn)},               {"sampling", sp::sampling_name(no.sampling)},
      {"seed", std::to_string(o.seed)},             {"input", o.input},
      {"key", o.key},                               {"input_shape", shape_str(feats.shape())},
      {"node_order", feats.dim() == 4 ? "(b * H + h) * W + w" : feats.dim() == 3 ? "b * T + t" : "n"}};
  io::write_safetensors(o.out, outs, meta);
  progress("write", 1, since(t0));
  std::fprintf(stderr, "%-11s %8.2f s\n", "total", since(t_start));

  std::cout << "wrote " << o.out << ": eigenvalues " << shape_str(r.eigenvalues.shape()) << ", eigenvectors "
            << shape_str(r.eigenvectors.shape()) << ", sample_indices " << shape_str(r.sample_indices.shape())
            << (want_rgb ? ", rgb [" + std::to_string(N) + ", 3]" : std::string()) << "\n";
  if (!pngs.empty())
    std::cout << "wrote " << pngs.size() << " PNG" << (pngs.size() == 1 ? "" : "s") << " (" << pics.H << " x "
              << pics.W << ") to " << o.rgb_dir << "\n";
  return 0;
}

// Flag checks whose messages say what was expected (CLI11's ranges print the whole double range).
const CLI::Validator kPositive(
    [](std::string& s) -> std::string {
      char* end = nullptr;
      const long long v = std::strtoll(s.c_str(), &end, 10);
      return (!s.empty() && *end == '\0' && v >= 1) ? "" : "expected a positive integer, found " + s;
    },
    "POSITIVE");
const CLI::Validator kNonNegative(
    [](std::string& s) -> std::string {
      char* end = nullptr;
      const double v = std::strtod(s.c_str(), &end);
      return (!s.empty() && *end == '\0' && std::isfinite(v) && v >= 0) ? "" : "expected a number >= 0, found " + s;
    },
    "NONNEGATIVE");

}  // namespace

Run add_ncut(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "ncut", "Normalized-Cut eigenvectors of features (exact, AlignedCut Nystrom or Fowlkes Nystrom), RGB by t-SNE");
  auto o = std::make_shared<Opts>();
  sub->add_option("--input", o->input, "Features: .npy, .npz or .safetensors; (N, d), (B, T, d) or (B, C, H, W)")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--key", o->key, "Array name (needed when the file holds more than one)");
  sub->add_option("--k", o->k, "Eigenvectors")->capture_default_str()->check(kPositive);
  sub->add_option("--method", o->method, "exact, nystrom (AlignedCut: KNN propagation) or fowlkes")
      ->capture_default_str()
      ->check(CLI::IsMember({"exact", "nystrom", "fowlkes"}));
  sub->add_option("--samples", o->samples, "Nystrom sample size m (m >= N: the full graph)")
      ->capture_default_str()
      ->check(kPositive);
  sub->add_option("--knn", o->knn, "Neighbours K of the propagation")->capture_default_str()->check(kPositive);
  sub->add_option("--sampling", o->sampling, "fps or random")
      ->capture_default_str()
      ->check(CLI::IsMember({"fps", "random"}));
  sub->add_option("--affinity", o->affinity, "cosine or rbf")
      ->capture_default_str()
      ->check(CLI::IsMember({"cosine", "rbf"}));
  sub->add_option("--t", o->t, "Cosine temperature or rbf sigma; 0: automatic (cosine 1, rbf degree-quantile search)")
      ->capture_default_str()
      ->check(kNonNegative);
  sub->add_option("--solver", o->solver, "Eigensolver of the (sub)graph: auto, dense, lanczos or subspace")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "dense", "lanczos", "subspace"}));
  sub->add_option("--seed", o->seed, "Seed of the sampling and the eigensolver's start")->capture_default_str();
  sub->add_option("--chunk", o->chunk, "Rows per chunk of N x m affinities")
      ->capture_default_str()
      ->check(kPositive);
  sub->add_flag("--orthogonalize", o->orthogonalize, "Orthonormalise the propagated eigenvectors (nystrom)");
  sub->add_option("--out", o->out, "Output .safetensors (eigenvalues, eigenvectors, sample_indices[, rgb])")
      ->required();
  sub->add_flag("--rgb", o->rgb, "Also store rgb (N, 3): t-SNE of the eigenvectors, quantile-normalised");
  sub->add_option("--rgb-dir", o->rgb_dir, "Write one PNG per image here (implies --rgb)");
  sub->add_option("--grid", o->grid, "H,W of the pictures for (N, d) inputs or non-square token counts");
  sub->add_option("--tsne-samples", o->tsne_samples, "Nodes the t-SNE runs on (the rest copy their nearest)")
      ->capture_default_str()
      ->check(kPositive);
  return [o] { return run(*o); };
}

}  // namespace cortex::cli
