// Normalized-Cut spectral embedding end to end, as AlignedCut (Yang et al.) runs it: features ->
// affinity -> D^-1/2 W D^-1/2 -> top-k eigenvectors, exactly or by a Nystrom method, with timings
// per phase. docs/spectral.md explains the methods and has the measured accuracy and speed.
//
//   ncut(x, {.k = 20, .method = NcutMethod::Nystrom, .samples = 4096, .knn = 10})
//
// Input layouts (float32 or float64, any strides, on any device; computed on opt.device):
//   (N, d)           N nodes
//   (B, T, d)        B images of T tokens each (ViT features): N = B * T, node n = b * T + t
//   (B, C, H, W)     B feature maps (NCHW): N = B * H * W, node n = (b * H + h) * W + w, d = C
// Results are in the input's dtype, on the CPU; eigenvectors (N, k) follow the node order above, so
// eigenvectors.view({B, H, W, k}) gives per-pixel vectors.
#pragma once
#include <cstdint>
#include <functional>

#include "analysis/spectral/affinity.h"
#include "analysis/spectral/eigensolver.h"
#include "analysis/spectral/nystrom.h"
#include "tensor/tensor.h"

namespace cortex::analysis::spectral {

enum class NcutMethod {
  Exact,    // the full N x N affinity (N^2 memory) and a top-k eigensolver
  Nystrom,  // AlignedCut: exact Ncut on m sampled nodes, KNN propagation to all N
  Fowlkes,  // Fowlkes et al. 2004: Nystrom extension with one-shot orthogonalisation
};
const char* method_name(NcutMethod m);  // "exact", "nystrom", "fowlkes"

struct NcutOptions {
  int64_t k = 20;                           // eigenvectors; 1 <= k <= min(N, m)
  NcutMethod method = NcutMethod::Nystrom;
  int64_t samples = 4096;                   // m; m > N is clamped to N (then no propagation is needed)
  int64_t knn = 10;                         // K of the propagation; clamped to m (as the reference)
  // Nystrom: run the propagation's neighbour search and weights on the sample's top search_dims
  // principal axes instead of all d features (cosine affinity only; 0 or >= d: all features). Its
  // cost is O(N m P) instead of O(N m d); docs/spectral.md ("Projected neighbour search") has the
  // accuracy it keeps.
  int64_t search_dims = 0;
  Sampling sampling = Sampling::Fps;
  Affinity affinity = Affinity::Cosine;
  double t = 0;                             // cosine temperature or rbf sigma; 0: automatic (cosine
                                            // 1.0, the reference's affinity_focal_gamma default; rbf the
                                            // degree-quantile search on a 1000-node FPS subsample)
  double sigma_quantile = 0.25;             // of the rbf search
  uint64_t seed = 0;                        // sampling and the eigensolver's start
  int64_t chunk = 8192;                     // rows per chunk of N x m affinities
  EigSolver solver = EigSolver::Auto;       // for the exact problem (the full graph or the subgraph)
  bool orthogonalize = false;               // Nystrom: orthonormalise the propagated vectors (the
                                            // reference's make_orthogonal; off by default as there)
  int64_t max_exact_nodes = 46000;          // Exact refuses larger N (N^2 float32 > 8 GB)
  // Where the heavy passes run (the features are moved there): cpu, emu or cuda. On a device the
  // affinities, their normalisation, the KNN search and propagation and the eigensolvers' products
  // run through kernels there; the dense eigensolver is kernels::eigh_topk (the CPU kernel on the
  // emulated device, counted as a fallback); sampling and the sign convention run on the host on
  // the few rows they need. fowlkes runs on the CPU only. Results are on the CPU either way.
  Device device = Device::cpu();
  // For progress displays (may be empty): called with a phase's name ("prepare", "sampling",
  // "affinity", "eigensolve", "propagate"; fowlkes reports its passes as "eigensolve"), the fraction
  // of it done, and its seconds so far; done = 1 exactly once per phase, when it ends. The chunked
  // passes (propagation, Fowlkes's three passes) also report after every chunk.
  std::function<void(const char* phase, double done, double seconds)> progress = {};
};

struct NcutTimings {  // seconds
  double prepare = 0;    // flatten, contiguous copy, finiteness check
  double sampling = 0;   // FPS or random draw (and the rbf bandwidth search)
  double affinity = 0;   // the (sub)graph's affinity and normalisation (exact / nystrom)
  double eigensolve = 0; // the top-k eigenproblem (fowlkes: its three passes and the core)
  double propagate = 0;  // KNN propagation (nystrom) and optional orthogonalisation
  double total = 0;
};

struct NcutResult {
  Tensor eigenvalues;     // (k), descending, in [0, 1]
  Tensor eigenvectors;    // (N, k); each column's sum positive
  Tensor sample_indices;  // (m) int64 (exact: empty)
  double t = 0;           // the temperature / sigma used
  NcutTimings timings;
  Eigenpairs solve;       // the eigensolver's report (matvecs, iterations, residual)
};

// (N, d) view of features in one of the layouts above (a copy only when the layout needs it).
Tensor flatten_features(const Tensor& x);

NcutResult ncut(const Tensor& features, const NcutOptions& opt = {});

}  // namespace cortex::analysis::spectral
