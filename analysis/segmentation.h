// Segmentation scores from spectral embeddings, as the AlignedCut paper (Yang et al.) scores Ncut
// eigenvectors per layer: the "oracle" mIoU, which asks how well the embedding separates the
// classes when each class is given its own best threshold (docs/alignedcut.md, "Segmentation").
//
//   labels = downsample_mask(masks, gh, gw);            // (N, H, W) pixels -> (N, gh, gw) patches
//   OracleResult r = oracle_miou(eigvecs, labels);      // eigvecs (N * gh * gw, k), node order of ncut
//
// For each class c present in the labels: centre = mean embedding of its patches; score of every
// patch = cosine(embedding, centre); predicted = score > tau; IoU(tau) = |pred & c| / |pred | c|,
// pooled over all images (one threshold per class for the whole set, VOC-style dataset IoU); the
// class's IoU is its best over the threshold grid; mIoU is the mean over the classes scored.
// Patches labelled `ignore` (255) count nowhere: not in the centre, not in any intersection or union.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::analysis {

// The default grid: tau = -1.00, -0.98, ..., 0.98 (100 values, step 0.02). The paper sweeps a
// threshold without stating its grid; this one is ours (docs/alignedcut.md).
std::vector<double> default_threshold_grid();

struct OracleOptions {
  std::vector<double> thresholds = default_threshold_grid();
  int ignore = 255;               // this label is excluded; -1 excludes nothing
  bool include_background = true; // score class 0 too (VOC's mIoU and figure-ground do)
};

struct OracleResult {
  double miou = 0;                      // mean of iou over the classes scored
  std::vector<int> classes;             // the labels scored, ascending (those present, minus ignore)
  std::vector<double> iou;              // best IoU per class
  std::vector<double> best_threshold;   // the tau that gave it (the smallest such tau on ties)
  std::vector<int64_t> patches;         // patches of each class
};

// embedding: float32/float64 (P, k), or (N, gh, gw, k) / (N, T, k) flattened to (P, k) in row-major
// order; labels: uint8/int32/int64 with P elements in the same order. Refuses mismatched counts, an
// empty grid, non-finite embeddings and a label set with no class to score.
OracleResult oracle_miou(const Tensor& embedding, const Tensor& labels, const OracleOptions& opt = {});

// Area-majority downsampling of label masks (N, H, W) (or one (H, W)) to a (N, gh, gw) patch grid of
// the same dtype (uint8, int32 or int64): cell (i, j) covers pixel rows floor(i H / gh) ..
// floor((i+1) H / gh) - 1 and the same for columns (each pixel in exactly one cell; cells differ by
// at most one pixel when gh does not divide H); its label is the one with the most pixels there,
// the ignore label included as a candidate (so a cell mostly void is void), the smaller label on a
// tie. Needs 1 <= gh <= H and 1 <= gw <= W.
Tensor downsample_mask(const Tensor& masks, int64_t gh, int64_t gw);

// Masks of a set of images as one uint8 (N, H, W) tensor, from a folder of PNG masks (every *.png,
// in file-name order; index masks by io::read_index_mask, or io::read_binary_mask when `binary`)
// or from a .npy of uint8/int32/int64 (N, H, W) (or (H, W) for one image; values 0..255, with
// `binary` mapped through figure_ground). All masks must have the same size.
Tensor load_masks(const std::string& path, bool binary);

// Figure-ground labels from class labels: 0 stays 0, `ignore` stays, any other label becomes 1.
Tensor figure_ground(const Tensor& labels, int ignore = 255);

}  // namespace cortex::analysis
