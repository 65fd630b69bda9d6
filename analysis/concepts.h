// AlignedCut's concepts and trajectories (Yang, Gee & Shi 2024; docs/alignedcut.md, "Concepts and
// trajectories"), in memory:
//
//   Concepts c = find_concepts(tsne, {.concepts = 8});           // tsne (N, e): the spectral embedding
//   ConceptStats s = concept_activations(aligned, c.member, 8);  // aligned (N, D): channel activations
//   Tensor maps = brain_maps(s.mean, head_weight);               // (C, V)
//   Trajectories t = trajectories(c.nearest, 8, images, {{14, 14}, {7, 7}});
//
// Nodes are (layer, image, row, column) in "layer-major" order: every node of layer 0 first, each
// layer's nodes in cortex ncut's order (image, row, column) on that layer's grid (H_l, W_l), so
// node n of layer l is offset_l + (b * H_l + h) * W_l + w. That is the order `cortex ncut` gives a
// multi-input graph whose sources are the layers (docs/spectral.md 7.1).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::analysis {

struct ConceptOptions {
  int64_t concepts = 8;          // C, the centres picked by farthest-point sampling
  double radius = 0;             // > 0: the spheres' radius in embedding units; 0: the quantile below
  double radius_quantile = 0.5;  // of every node's distance to its nearest centre, in (0, 1]
};

struct Concepts {
  Tensor centres;        // (C) int64: node index of each centre, in the order picked
  Tensor centre_points;  // (C, e) float64: their embedding
  double radius = 0;     // the spheres' radius used
  Tensor nearest;        // (N) int64: nearest centre of every node (ties: the lower concept)
  Tensor distance;       // (N) float64: Euclidean distance to it
  Tensor member;         // (N) int64: nearest centre when distance <= radius, else -1 (in no sphere)
  Tensor counts;         // (C) int64: members of each sphere (>= 1: a centre is its own member)
};

// Farthest-point sampling in the embedding (N, e) float32/float64, exactly on all N nodes: the first
// centre is the node nearest the embedding's mean (a typical node, not an outlier), each next one the
// node farthest from the centres so far (ties: the lower index). Then every node's nearest centre,
// and spheres of the chosen radius. Refuses C < 1, C > N, non-finite embeddings, and fewer than C
// distinct points (two centres would coincide).
Concepts find_concepts(const Tensor& embedding, const ConceptOptions& opt = {});

struct ConceptStats {
  Tensor mean, std;  // (C, D) float64; std is the population std (divides by the count)
  Tensor counts;     // (C) int64
};
// Per concept c, the mean and std over the nodes with member == c of activations (N, D)
// (float32/float64); member (N) int64 in [-1, C). A concept with no member has mean and std 0 and
// count 0 (find_concepts never gives one).
ConceptStats concept_activations(const Tensor& activations, const Tensor& member, int64_t concepts);

// The brain map of each concept: the readout's linear map from the shared space to voxels applied to
// its mean activation, maps[c] = head_weight mean[c] (no bias: it is the same for every concept).
// mean (C, D), head_weight (V, D) -> (C, V) float64, accumulated in float64.
Tensor brain_maps(const Tensor& mean, const Tensor& head_weight);

// The aligned channel activations of every node: layer l's map f_l (B, C_l, H_l, W_l) through its
// alignment W_l (D, C_l), z = W_l f_l[b, :, h, w], stacked layer-major -> (N, D) float32, N = sum_l B
// H_l W_l. All maps must have the same B and every W_l the same D.
Tensor align_nodes(const std::vector<Tensor>& maps, const std::vector<Tensor>& align);

struct Trajectories {
  int64_t gh = 0, gw = 0;  // the common grid the trajectories are followed on
  Tensor path;             // (B, gh, gw, L) int64: the concept of each cell at each layer
  Tensor counts;           // (L - 1, C, C) int64: cells in concept a at layer l and b at layer l + 1
  Tensor transitions;      // (L - 1, C, C) float64: counts with each row divided by its sum (a row
                           // with no cell stays 0)
};
// Every cell (i, j) of a common gh x gw grid (default: the layer grid with the most cells, the first
// such) takes, at layer l, the concept of the layer-l node whose cell contains the common cell's
// centre: row floor((i + 1/2) H_l / gh), column likewise. node_concept (N) int64 in [0, C), layer-major
// over `grids` (H_l, W_l) with `images` images each.
Trajectories trajectories(const Tensor& node_concept, int64_t concepts, int64_t images,
                          const std::vector<std::pair<int64_t, int64_t>>& grids, int64_t gh = 0, int64_t gw = 0);

// The spectral t-SNE of eigenvectors (N, k): exact t-SNE (spectral/colour.h, cosine, perplexity
// clamped for small samples) on a farthest-point subsample of `samples` rows, every other row
// copying its most cosine-similar sampled row's embedding, as colour_eigenvectors does, in `dims`
// (2 or 3) dimensions -> (N, dims) float64.
Tensor spectral_tsne(const Tensor& eigenvectors, int64_t dims, int64_t samples = 1000, uint64_t seed = 0);

}  // namespace cortex::analysis
