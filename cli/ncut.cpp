// cortex ncut: Normalized-Cut spectral embedding of features (analysis/spectral, docs/spectral.md).
//
//   cortex ncut --input feats.safetensors --key layer3 --k 20 --method nystrom --samples 4096 --knn 10
//               --out eig.safetensors --rgb-dir seg/ --device cuda   (one line)
//   cortex ncut --input feats.safetensors --key layer3,layer6,layer9 --out joint.safetensors --rgb-dir seg/
//               --tsne-dims 2 --heatmap "0:3,7,7" --heatmap-dir heat/   (one graph over three layers)
//
// Flags -> analysis::spectral::NcutJob -> run_ncut_job (analysis/spectral/run.h says what is read and
// written). Progress and the time of each phase go to stderr, what was written to stdout.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>

#include "analysis/spectral/run.h"
#include "cli/commands.h"

namespace cortex::cli {
namespace {

namespace sp = cortex::analysis::spectral;

struct Opts {
  sp::NcutJob job;
  std::vector<std::string> inputs, keys;  // several: one graph over every file x key (docs/spectral.md 7.1)
  std::string method = "nystrom", sampling = "fps", affinity = "cosine", solver = "auto", device = "cpu";
};

// Progress on stderr: on a terminal a redrawn bar for the phase under way; elsewhere (a log file)
// only the line each phase ends with.
class Progress {
 public:
  Progress() : tty_(isatty(STDERR_FILENO) != 0) {}
  void operator()(const char* phase, double done, double seconds) const {
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

int run(Opts o) {
  // One file and at most one key: the single-input path; more: the sources of one graph.
  if (o.inputs.size() == 1 && o.keys.size() <= 1) {
    o.job.input = o.inputs[0];
    o.job.key = o.keys.empty() ? std::string() : o.keys[0];
  } else {
    o.job.inputs = o.inputs;
    o.job.keys = o.keys;
  }
  sp::NcutOptions& no = o.job.options;
  no.method = sp::parse_method(o.method);
  no.sampling = sp::parse_sampling(o.sampling);
  no.affinity = sp::parse_affinity(o.affinity);
  no.solver = sp::parse_solver(o.solver);
  no.device = Device::parse(o.device);
  const Progress progress;
  for (const std::string& line : sp::run_ncut_job(o.job, progress, [](const std::string& l) {
         std::fprintf(stderr, "%s\n", l.c_str());
       }))
    std::cout << line << "\n";
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
  sp::NcutJob& j = o->job;
  sp::NcutOptions& n = j.options;
  sub->add_option("--input", o->inputs,
                  "Features: .npy, .npz or .safetensors; (N, d), (B, T, d) or (B, C, H, W). Repeat it or separate by ',' "
                  "for one graph over several files")
      ->required()
      ->delimiter(',')
      ->check(CLI::ExistingFile);
  sub->add_option("--key", o->keys,
                  "Array name (needed when the file holds more than one); several, separated by ',': one graph over "
                  "every key of every file")
      ->delimiter(',');
  sub->add_option("--k", n.k, "Eigenvectors")->capture_default_str()->check(kPositive);
  sub->add_option("--method", o->method, "exact, nystrom (AlignedCut: KNN propagation) or fowlkes")
      ->capture_default_str()
      ->check(CLI::IsMember({"exact", "nystrom", "fowlkes"}));
  sub->add_option("--samples", n.samples, "Nystrom sample size m (m >= N: the full graph)")
      ->capture_default_str()
      ->check(kPositive);
  sub->add_option("--knn", n.knn, "Neighbours K of the propagation")->capture_default_str()->check(kPositive);
  sub->add_option("--search-dims", n.search_dims,
                  "Nystrom: search the propagation's neighbours on the sample's top P principal axes (0: all features)")
      ->capture_default_str();
  sub->add_option("--sampling", o->sampling, "fps or random")
      ->capture_default_str()
      ->check(CLI::IsMember({"fps", "random"}));
  sub->add_option("--affinity", o->affinity, "cosine or rbf")
      ->capture_default_str()
      ->check(CLI::IsMember({"cosine", "rbf"}));
  sub->add_option("--t", n.t, "Cosine temperature or rbf sigma; 0: automatic (cosine 1, rbf degree-quantile search)")
      ->capture_default_str()
      ->check(kNonNegative);
  sub->add_option("--solver", o->solver, "Eigensolver of the (sub)graph: auto, dense, lanczos or subspace")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "dense", "lanczos", "subspace"}));
  sub->add_option("--seed", n.seed, "Seed of the sampling and the eigensolver's start")->capture_default_str();
  sub->add_option("--chunk", n.chunk, "Rows per chunk of N x m affinities")->capture_default_str()->check(kPositive);
  sub->add_flag("--orthogonalize", n.orthogonalize, "Orthonormalise the propagated eigenvectors (nystrom)");
  sub->add_option("--device", o->device, "Where the heavy passes run: cpu, emu (the emulated CUDA device), cuda or "
                                         "cuda:N (exact and nystrom; fowlkes runs on the cpu)")
      ->capture_default_str()
      ->check(device_check());
  sub->add_option("--out", j.out, "Output .safetensors (eigenvalues, eigenvectors, sample_indices[, rgb])")->required();
  sub->add_flag("--rgb", j.rgb, "Also store rgb (N, 3): t-SNE of the eigenvectors, quantile-normalised");
  sub->add_option("--rgb-dir", j.rgb_dir, "Write one PNG per image here (implies --rgb)");
  sub->add_option("--grid", j.grid, "H,W of the pictures for (N, d) inputs or non-square token counts; several sources: one H,W "
                                     "for all or H,W;H,W;... one per source");
  sub->add_option("--tsne-samples", j.tsne_samples, "Nodes the t-SNE runs on (the rest copy their nearest)")
      ->capture_default_str()
      ->check(kPositive);
  sub->add_option("--tsne-dims", j.tsne_dims, "Store the spectral t-SNE as tsne (N, dims): 2 or 3 (2 with --rgb-dir "
                                              "also draws tsne_2d.png)")
      ->check(CLI::IsMember({2, 3}));
  sub->add_option("--heatmap", j.heatmap, "One-pixel cosine heatmaps of the eigenvectors: [INPUT:]IMG,ROW,COL[;...]");
  sub->add_option("--heatmap-dir", j.heatmap_dir, "Where the heatmaps go (.npy per input and PNGs)");
  sub->add_flag("--heatmap-features", j.heatmap_features,
                "Heatmaps of the cosine between feature rows instead of eigenvector rows");
  return [o] { return run(*o); };
}

}  // namespace cortex::cli
