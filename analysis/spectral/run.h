// `cortex ncut` as one library call: a job spec (input file and array, the Ncut options, the outputs)
// and run_ncut_job, which reads the features, plans the pictures before any computation, runs
// ncut() on the chosen device, colours the eigenvectors when asked, and writes the results
// (safetensors through a temporary file renamed into place; one PNG per image). cli/ncut.cpp maps
// flags to the spec; docs/spectral.md describes the outputs.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "analysis/spectral/ncut.h"

namespace cortex::analysis::spectral {

struct NcutJob {
  std::string input;     // .npy, .npz or .safetensors: (N, d), (B, T, d) or (B, C, H, W) floats
  std::string key;       // the array (needed when the file holds more than one; refused for .npy)
  // One graph over many inputs (docs/spectral.md 7.1): the sources are every file of `inputs` (or
  // `input`) with every key of `keys` (or `key`), files first. One source is the single-input path.
  std::vector<std::string> inputs;
  std::vector<std::string> keys;
  std::string out;       // .safetensors: eigenvalues (k), eigenvectors (N, k), sample_indices (m)[, rgb (N, 3)]
  std::string rgb_dir;   // when set: one PNG per image there (implies rgb)
  std::string grid;      // "H,W" of the pictures: for (N, d) inputs and token counts that are not a square (+1);
                         // several sources: one for all, or "H,W;H,W;..." one per source
  bool rgb = false;      // store rgb: t-SNE of the eigenvectors, quantile-normalised
  int64_t tsne_samples = 1000;
  int64_t tsne_dims = 0;      // 2 or 3: store the spectral t-SNE as tsne (N, dims); 0: not stored
  std::string heatmap;        // "[INPUT:]IMG,ROW,COL[;...]": one-pixel cosine heatmaps of the eigenvectors
  std::string heatmap_dir;    // where the heatmaps' .npy and PNGs go (needed with heatmap)
  bool heatmap_features = false;  // the heatmaps compare feature rows instead of eigenvector rows
  NcutOptions options;   // its progress is replaced by run_ncut_job's
};

// The names the CLI and the file metadata use; each throws naming the choices on an unknown name.
NcutMethod parse_method(const std::string& s);      // exact, nystrom, fowlkes
Sampling parse_sampling(const std::string& s);      // fps, random
Affinity parse_affinity(const std::string& s);      // cosine, rbf
EigSolver parse_solver(const std::string& s);       // auto, dense, lanczos, subspace

// progress(phase, done, seconds): the phases of ncut() and "read", "colour", "png", "write", then
// "total", each with done = 1 once when it ends. log: one-line notes (the input read, the result's
// summary). Returns the lines that say what was written.
using PhaseProgress = std::function<void(const char* phase, double done, double seconds)>;
std::vector<std::string> run_ncut_job(const NcutJob& job, const PhaseProgress& progress = {},
                                      const std::function<void(const std::string&)>& log = {});

// The sources of a file run_ncut_job wrote (docs/spectral.md 7.1), for splitting its per-node
// tensors (eigenvectors, rgb, tsne, heatmap rows) back per source: from the "sources" metadata of a
// multi-input file, or, for a single-input file, the one source its input_shape describes (picture
// layout as the command decides it without --grid: (B, C, H, W), or T a square or one more).
struct NcutSource {
  std::string file, key;
  Shape shape;               // the source's feature shape
  int64_t offset = 0;        // its first row
  int64_t nodes = 0;         // its rows: offset .. offset + nodes - 1
  bool has_grid = false;     // a picture layout is known (else images, H, W, skip are 0)
  int64_t images = 0, H = 0, W = 0, skip = 0;  // skip: leading tokens per image outside the picture
};
std::vector<NcutSource> ncut_sources(const std::map<std::string, std::string>& metadata);
// rows (N, c) of the whole file -> the source's picture rows (images * H * W, c), image-major, row-major.
Tensor source_picture_rows(const Tensor& rows, const NcutSource& s);

}  // namespace cortex::analysis::spectral
