// Readouts: differentiable maps from backbone feature maps to voxel/neuron responses (DATA.md,
// "Readouts in the literature"). Each is a Module whose parameters are registered with names, so a
// fitted readout saves and loads as safetensors like any backbone. Every readout takes a list of
// feature maps (one per tapped layer) through read(); forward(x) is read({x}).
// Parameters are float32 at construction; assigning float64 tensors to them (as the gradchecks do)
// runs the whole readout in float64.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/layers.h"
#include "models/module.h"
#include "tensor/random.h"

namespace cortex::models {

// (C, H, W) of one feature map (the batch dim excluded).
struct MapShape {
  int64_t c, h, w;
};

class Readout : public Module {
 public:
  // maps: one (B, C_l, H_l, W_l) tensor per layer (or (B, P) for the encoders) -> (B, n_out).
  virtual Tensor read(const std::vector<Tensor>& maps) = 0;
  Tensor forward(const Tensor& x, TapContext&) override { return read({x}); }
  // The readout's regulariser (0-dim, in the parameters' dtype), unscaled; undefined when it has none.
  virtual Tensor penalty() { return Tensor(); }
  // The random generators the forward draws from (training-time noise); a checkpoint saves their offsets.
  virtual std::vector<Generator*> generators() { return {}; }
  // Each output's receptive-field centre on its feature map as fractions (x, y) of the map's width
  // and height, map cell j of W standing for (j + 0.5) / W: float64 (n_out, 2) at evaluation
  // (Gaussian readouts: the mean position; fwRF, factorized: the peak |value| of the spatial map).
  // Undefined for readouts without a location (pooled-linear, the encoders).
  virtual Tensor rf_centres() { return Tensor(); }
  // Each output's free-form spatial map (n_out, H, W) where the readout has one (fwRF: the first
  // layer's map size; factorized); undefined otherwise.
  virtual Tensor rf_maps() { return Tensor(); }
};

// Filter pruning: per layer, the indices (int64, ascending) of the top ceil(keep_fraction * C)
// channels ranked by the std over images of each channel's spatial mean. maps: (B >= 2, C, H, W).
std::vector<Tensor> prune_channels(const std::vector<Tensor>& maps, double keep_fraction);

// fwRF (BOLDreams): one free-form spatial map per voxel per distinct feature-map size,
//   s[b,(l,c),v] = sum_hw F_l[b,c,h,w] rf_k(l)[v,h,w];  y[b,v] = sum_(l,c) s[b,(l,c),v] w[(l,c),v] + bias[v].
// Names: "rf.<k>" (V, H_k, W_k) for the k-th distinct size in order of first appearance, "weight"
// (sum of kept channels, V), "bias" (V), and buffers "keep.<l>" (the kept channel indices of layer
// l, when pruned). `keep`: empty (all channels) or one index tensor per layer (prune_channels).
class FwRF : public Readout {
 public:
  FwRF(const std::vector<MapShape>& layers, int64_t n_vox, const std::vector<Tensor>& keep = {}, uint64_t seed = 0);
  Tensor read(const std::vector<Tensor>& maps) override;
  std::string type_name() const override { return "FwRF"; }
  Tensor rf_centres() override;
  Tensor rf_maps() override;
  std::vector<MapShape> layers;
  int64_t n_vox;
  std::vector<Tensor> rf;    // per distinct size
  std::vector<int> rf_of;    // layer -> index into rf
  std::vector<Tensor> keep;  // per layer, or empty
  Tensor weight, bias;
};

// Gaussian fwRF (St-Yves & Naselaris 2018): an isotropic Gaussian pooling field per voxel,
// g_v(h,w) = exp(-((x_w - mu_x)^2 + (y_h - mu_y)^2) / (2 sigma^2)) normalised to sum 1, with pixel
// centres x_w, y_h in [-1, 1] on every map (so one field serves all map sizes);
//   y[b,v] = sum_(l,c) (sum_hw F_l[b,c,h,w] g_v(h,w)) w[(l,c),v] + bias[v].
// Names: "mu" (V, 2) as (x, y), "sigma" (V), "weight" (sum C_l, V), "bias" (V).
class GaussianFwRF : public Readout {
 public:
  GaussianFwRF(const std::vector<MapShape>& layers, int64_t n_vox);
  Tensor read(const std::vector<Tensor>& maps) override;
  std::string type_name() const override { return "GaussianFwRF"; }
  Tensor rf_centres() override;
  // The pooled features (B, sum C_l, V) of the fields in mu/sigma.
  Tensor pooled(const std::vector<Tensor>& maps);
  std::vector<MapShape> layers;
  int64_t n_vox;
  Tensor mu, sigma, weight, bias;
};

struct GaussianFwRFFit {
  std::shared_ptr<GaussianFwRF> model;
  Tensor best_score;  // (V) float64: the mean CV R^2 of each voxel's chosen field and penalty
};
// Grid search: for every candidate field (x in xs, y in ys, sigma in sigmas) the features pooled by
// it are fitted by fit_ridge_cv for every voxel at once; each voxel keeps the candidate (and alpha)
// with the best CV score, and the ridge refit of that candidate gives its weights. maps: float32
// (B, C_l, H_l, W_l); Y (B, V). Cost: |xs| |ys| |sigmas| ridge CV fits of (B, sum C_l).
GaussianFwRFFit fit_gaussian_fwrf(const std::vector<Tensor>& maps, const Tensor& Y, const std::vector<double>& xs,
                                  const std::vector<double>& ys, const std::vector<double>& sigmas,
                                  const std::vector<double>& alphas, int folds, uint64_t seed);

// Factorized readout (Klindt et al. 2017), one layer: spatial (N, H, W), normalised to unit L2
// norm per neuron, times a feature vector (N, C):
//   y[b,n] = sum_c sum_hw F[b,c,h,w] spatial_n[h,w]/|spatial_n|_2 feat[n,c] + bias[n];
// penalty() = sum_n |spatial_n / |spatial_n|_2|_1 |feat_n|_1 (on the normalised map, so it cannot be
// lowered by rescaling the raw map). Names: "spatial", "features", "bias".
class Factorized : public Readout {
 public:
  Factorized(MapShape layer, int64_t n_out, uint64_t seed = 0);
  Tensor read(const std::vector<Tensor>& maps) override;
  Tensor penalty() override;
  std::string type_name() const override { return "Factorized"; }
  Tensor rf_centres() override;
  Tensor rf_maps() override;
  MapShape layer;
  int64_t n_out;
  Tensor spatial, features, bias;
};

// Gaussian readout (Lurz et al. 2020), one layer. Per neuron a position mu in [-1,1]^2 (x, y) and
// a spread: Full (N, 2, 2) matrix L with position mu + L eps, Uncorrelated (N, 2) with mu + s.*eps,
// Isotropic (N, 1) with mu + s eps. In training eps ~ N(0, I) from the readout's own counter-based
// generator (one draw per image and neuron); at evaluation eps = 0. The position is clamped to
// [-1, 1] and the map read by bilinear grid_sample (align_corners=True, zero padding):
//   y[b,n] = sum_c sample[b,c,n] feat[n,c] + bias[n],  then elu(y)+1 when `elu_output` (Poisson).
// shared_groups (optional, one group id per neuron): neurons of a group share one feature vector
// "features" (G, C) scaled per neuron by "scales" (N); otherwise "features" is (N, C).
// Retinotopic positions (optional; Lurz et al.'s grid predictor): instead of a free "mu" per
// neuron, mu = tanh(MLP(coords)) from each neuron's coordinates (e.g. its place on the cortical
// surface), so neighbouring neurons share what is learnt about where they look. The coordinates
// are centred and scaled by their largest |value| (buffer "source_grid"); the MLP is
// `layers` x (Linear -> ELU) of `hidden` units, then Linear -> 2 ("mu_transform.<i>").
// penalty() = sum |features| (L1). Names: "mu" (or "mu_transform.*" + "source_grid"), "sigma",
// "features", ["scales"], "bias".
enum class GaussSigma { Full, Uncorrelated, Isotropic };
struct PositionMLP {
  Tensor coords;        // (N, D) float; undefined: free positions
  int64_t hidden = 30;  // units per hidden layer
  int64_t layers = 1;   // hidden layers (0: a linear map then tanh)
};
class GaussianReadout : public Readout {
 public:
  GaussianReadout(MapShape layer, int64_t n_out, GaussSigma kind = GaussSigma::Full, double init_sigma = 0.1,
                  bool elu_output = false, const std::vector<int64_t>& shared_groups = {}, uint64_t seed = 0,
                  const PositionMLP& retinotopy = {});
  // The mean positions (N, 2): mu, or the retinotopic MLP's output.
  Tensor mean_positions();
  Tensor read(const std::vector<Tensor>& maps) override;
  Tensor penalty() override;
  std::vector<Generator*> generators() override { return {&gen}; }
  std::string type_name() const override { return "GaussianReadout"; }
  Tensor rf_centres() override;
  // The sampling positions (B, N, 2) this call would use (training: drawn; evaluation: mu).
  Tensor positions(int64_t batch);
  MapShape layer;
  int64_t n_out;
  GaussSigma kind;
  bool elu_output;
  Tensor mu, sigma, features, scales, bias;
  Tensor group_index;  // int64 (N) when features are shared
  Tensor source_grid;  // (N, D) normalised coordinates, with the retinotopic MLP
  std::vector<std::shared_ptr<Linear>> mu_transform;
  Generator gen;       // the sampling noise; its offset is part of a training checkpoint
};

// Pooled-linear (AlignedCut): global average pooling of each layer, concatenated (B, sum C_l),
// then a linear map and bias. Names: "weight" (V, sum C_l), "bias" (V).
class PooledLinear : public Readout {
 public:
  PooledLinear(const std::vector<MapShape>& layers, int64_t n_out, uint64_t seed = 0);
  Tensor read(const std::vector<Tensor>& maps) override;
  std::string type_name() const override { return "PooledLinear"; }
  std::vector<MapShape> layers;
  Tensor weight, bias;
};

// The two-layer nonlinear encoder on flat features (B, P): fc1 -> sigmoid -> fc2; and its linear
// control, fc only. Names: "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias" / "fc.weight", "fc.bias".
class TwoLayerEncoder : public Readout {
 public:
  TwoLayerEncoder(int64_t in, int64_t hidden, int64_t out, uint64_t seed = 0);
  Tensor read(const std::vector<Tensor>& maps) override;
  std::string type_name() const override { return "TwoLayerEncoder"; }
  std::shared_ptr<Linear> fc1, fc2;
};
class LinearEncoder : public Readout {
 public:
  LinearEncoder(int64_t in, int64_t out, uint64_t seed = 0);
  Tensor read(const std::vector<Tensor>& maps) override;
  std::string type_name() const override { return "LinearEncoder"; }
  std::shared_ptr<Linear> fc;
};

}  // namespace cortex::models
