// The `cortex concepts` job: files in, files out, around analysis/concepts.h
// (docs/alignedcut.md, "Concepts and trajectories").
//
// Reads
//   features  a .safetensors of feature maps (B, C_l, H_l, W_l), one per key (cortex features' output;
//             a ViT tapped as "name:grid"), the layers in --key order;
//   model     a channel-align model file (cortex fit --readout channel-align): align.<l> (D, C_l) for
//             the same taps in the same order, head.weight (V, D);
//   ncut      optional: cortex ncut's output on the aligned nodes, layer-major (docs/spectral.md 7.1:
//             the layers as the sources, in --key order): eigenvectors (N, k), and when present
//             node_input (checked against the layer of every node) and tsne (N, 2|3), used as the
//             embedding when its width is --tsne-dims. Without it the job runs ncut() itself on the
//             stacked aligned activations (N, D).
//   images    optional: uint8 (B, H, W, 3) .npy, drawn under the concept masks;
//   rois      optional: JSON {"name": [voxel column, ...]}: brain maps as mean per ROI.
// Writes into out (each file to a temporary file, then renamed; nothing before every input is checked):
// concepts.npy, nearest.npy, embedding.npy, concept_mean.npy, concept_std.npy, brain_maps.npy,
// transitions.npy, trajectories.npy, concepts.json, pictures/*.png, report.html, and with write_aligned
// aligned.safetensors (docs/alignedcut.md lists what each holds).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "analysis/concepts.h"

namespace cortex::analysis {

struct ConceptsJob {
  std::string features, keys, model, ncut, images, rois, out;
  ConceptOptions concepts;
  std::string space = "tsne";  // tsne (the spectral t-SNE) or eigenvectors
  int64_t tsne_dims = 3, tsne_samples = 1000;
  int64_t k = 10, samples = 2000, knn = 10;  // the job's own ncut (no --ncut file)
  uint64_t seed = 0;
  int64_t max_images = 6;      // images drawn per layer in the report
  bool write_aligned = false;  // also write out/aligned.safetensors: each layer's aligned maps (B, D, H_l, W_l),
                               // keyed by layer, the input of a multi-input cortex ncut (docs/spectral.md 7.1)
};

// Runs the job; returns the lines to print on stdout (what was written); `log` gets progress.
std::vector<std::string> run_concepts_job(const ConceptsJob& job, const std::function<void(const std::string&)>& log);

}  // namespace cortex::analysis
