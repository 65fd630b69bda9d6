// Channel align (AlignedCut, Yang, Gee & Shi 2024): per-layer linear maps W_l (C_l -> D) send the
// features of every tapped layer into one shared space of size D; the brain readout is the token
// mean of the aligned features, summed over layers, then a linear head to the voxels:
//   z_l[b, t] = W_l f_l[b, :, t]          (t: the H_l W_l tokens of layer l)
//   y[b]      = head (sum_l mean_t z_l[b, t]) + bias
// trained with the L1 loss on brain responses, so the shared space is brain-aligned. The
// regularisers (penalty(), on m nodes sampled per layer from the last training batch):
//   eigen       |P_a - P_b|_F^2 / k: P = V V^T of the top-k Ncut eigenvectors of the nodes' cosine
//               affinity after (a: W_l f) and before (b: f) alignment; invariant to rotations and
//               signs of the eigenvectors (the eigensolver's VJP, autograd/ops.h eigh_topk);
//   focal       the same squared differences weighted by (1 - A_b)^gamma, A_b the affinity before
//               alignment: edges that were disconnected count most;
//   zero_centre |mean of the aligned nodes|^2 / mean |aligned node|^2;
//   covariance  |off-diagonal of their covariance|_F^2 / |covariance|_F^2.
// All four are invariant to the scale of W_l, so the penalty cannot be lowered by shrinking W_l
// and growing the head. docs/alignedcut.md ("Channel align") has the equations and the defaults.
//
// Names: "align.<l>" (D, C_l), "head.weight" (V, D), "head.bias" (V). Inputs: one (B, C_l, H_l,
// W_l) map per layer (a ViT's tokens as a grid: tap "<name>:grid").
#pragma once
#include <cstdint>
#include <vector>

#include "models/readouts/readouts.h"
#include "tensor/random.h"

namespace cortex::models {

struct ChannelAlignOptions {
  int64_t dim = 256;          // D, the shared space
  // Regulariser weights. The AlignedCut paper does not state its values in a form we could check;
  // these are cortex's choice (docs/alignedcut.md says why).
  double eigen = 1.0;
  double focal = 0.0;
  double zero_centre = 0.01;
  double covariance = 0.01;
  int64_t eig_k = 10;         // Ncut eigenvectors compared by the eigen-constraint
  int64_t nodes = 200;        // nodes sampled per layer per step
  double temperature = 1.0;   // cosine affinity exp((cos - 1) / t): cortex ncut's default
  double focal_gamma = 2.0;
};

class ChannelAlign : public Readout {
 public:
  ChannelAlign(const std::vector<MapShape>& layers, int64_t n_out, const ChannelAlignOptions& opt = {},
               uint64_t seed = 0);
  // maps: one (B, C_l, H_l, W_l) per layer -> (B, V). In training mode the maps are kept for penalty().
  Tensor read(const std::vector<Tensor>& maps) override;
  // The weighted regularisers on the maps of the last read() in training mode (then released);
  // throws when there are none.
  Tensor penalty() override;
  std::vector<Generator*> generators() override { return {&gen}; }
  std::string type_name() const override { return "ChannelAlign"; }

  // The aligned features of each layer, (B, H_l W_l, D), token t = h W_l + w: what a later Ncut over
  // layers (and models) runs on. Differentiable.
  std::vector<Tensor> aligned_features(const std::vector<Tensor>& maps);

  // The four regularisers, unweighted, each a 0-dim tensor in the parameters' dtype (undefined
  // when its weight is 0 and `all` is false), averaged over layers, with nodes drawn from `gen`.
  struct Penalties {
    Tensor eigen, focal, zero_centre, covariance;
  };
  Penalties penalties(const std::vector<Tensor>& maps, bool all = false);
  // The eigen-constraint of one layer on given nodes x (m, C_l) (float64 inside): differentiable
  // w.r.t. W_l; returns {eigen, focal}.
  std::pair<Tensor, Tensor> eigen_constraint(int64_t layer, const Tensor& nodes);

  // A start close to the ridge solution (models/readouts/ridge.h): the alignment is set to the top-D
  // principal axes of the layers' jointly pooled features (maps: the training inputs; any extra
  // axes small and random), scaled to unit mean square, and the head to ridge CV on the aligned
  // pooled features. Training from here only has to improve on ridge.
  void warm_start(const std::vector<Tensor>& maps, const Tensor& y, const std::vector<double>& alphas, int folds,
                  uint64_t seed);

  std::vector<MapShape> layers;
  int64_t n_out;
  ChannelAlignOptions opt;
  std::vector<Tensor> align;  // per layer (D, C_l)
  Tensor head_weight, head_bias;
  Generator gen;              // node sampling; its offset is part of a training checkpoint

 private:
  std::vector<Tensor> last_maps_;
};

}  // namespace cortex::models
