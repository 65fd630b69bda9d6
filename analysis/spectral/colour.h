// AlignedCut colouring of Ncut eigenvectors (ncut-pytorch's rgb_from_tsne_3d): t-SNE to 3-D of a
// farthest-point subsample of the eigenvector rows, the embedding copied to every other row from
// its nearest sampled row (cosine), and each of the three dimensions mapped to [0, 1] by quantile
// normalisation, giving one RGB colour per node; reshaped to images and written as PNGs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::analysis::spectral {

enum class TsneMetric { Cosine, Euclidean };

// Exact t-SNE (van der Maaten & Hinton 2008) with scikit-learn's schedule, which the reference
// calls: perplexity-calibrated P (binary search on each row's precision), Student-t kernel with
// alpha = max(dims - 1, 1) degrees of freedom, PCA initialisation scaled to std 1e-4, early
// exaggeration 12 for up to 250 iterations at momentum 0.5, then momentum 0.8 (a phase ends early
// when the gradient norm is <= 1e-7 at a 50th iteration), delta-bar-delta gains, the exact KL
// gradient (docs/spectral.md), learning rate max(n / exaggeration / 4, 50). O(n^2) memory and time
// per iteration: meant for the few thousand points of a subsample. Euclidean uses squared distances,
// cosine 1 - cos (as sklearn).
struct TsneOptions {
  int64_t dims = 3;             // 1, 2 or 3
  double perplexity = 150;      // the reference's default; clamped to (n - 1) / 2 for small n
  int64_t iterations = 1000;    // total, exaggeration phase included
  int64_t exaggeration_iters = 250;
  double exaggeration = 12;
  double learning_rate = 0;     // 0: max(n / exaggeration / 4, 50)
  TsneMetric metric = TsneMetric::Cosine;
  uint64_t seed = 0;            // used only when the PCA initialisation is degenerate
};
// x (n, D) float32/float64, n >= 2 -> embedding (n, dims) float64.
Tensor tsne(const Tensor& x, const TsneOptions& opt = {});

// Per-column quantile normalisation of x (N, c): (x - q_lo) / (q_hi - q_lo) clamped to [0, 1], with
// q_hi the q-quantile and q_lo the (1 - q)-quantile of the column (linear interpolation, as
// torch.quantile; exact on all N, where the reference estimates them on 10,000 random rows). A
// column whose two quantiles are equal maps to 0.5. Returns float32 (N, c).
Tensor quantile_normalize(const Tensor& x, double q = 0.95);

struct ColourOptions {
  int64_t samples = 1000;  // t-SNE subsample (farthest-point sampling on the eigenvectors)
  int64_t knn = 1;         // 1: nearest-neighbour copy; > 1: affinity-weighted average (cosine, t = 1)
  double q = 0.95;         // quantile of the RGB normalisation
  TsneOptions tsne;
  uint64_t seed = 0;
};
struct Colouring {
  Tensor embedding;       // (N, 3) float64
  Tensor rgb;             // (N, 3) float32 in [0, 1]
  Tensor sample_indices;  // (samples) int64
};
// eigenvectors (N, k) float32/float64 (from ncut(), rows in node order).
Colouring colour_eigenvectors(const Tensor& eigenvectors, const ColourOptions& opt = {});

// The spectral t-SNE alone, in opt.tsne.dims (1, 2 or 3) dimensions: the farthest-point subsample,
// t-SNE and nearest-sample copy of colour_eigenvectors, without the quantile normalisation. With
// dims 3 it equals colour_eigenvectors(...).embedding. Returns (N, dims) float64.
Tensor spectral_tsne(const Tensor& eigenvectors, const ColourOptions& opt = {});

// rgb (N, 3) in [0, 1] -> uint8 (B, H, W, 3) with N = B * H * W, row n = (b * H + h) * W + w (the
// order ncut() flattens [B, C, H, W] features in); values are rounded to the nearest of 0..255.
Tensor to_images(const Tensor& rgb, int64_t B, int64_t H, int64_t W);
// Writes image b of images (B, H, W, 3) uint8 to `prefix` + "_" + b (4 digits) + ".png" through
// io::write_png (written to a temporary file and renamed); returns the paths.
std::vector<std::string> write_pngs(const Tensor& images, const std::string& prefix);

}  // namespace cortex::analysis::spectral
