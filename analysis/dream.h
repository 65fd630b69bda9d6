// Maximally exciting images ("dreams", Lucid-style feature visualisation; BOLDreams; Lurz et al.'s
// most exciting inputs): B images optimised by Adam to maximise a target of an encoding model's
// prediction (one voxel, or an ROI's mean: a row of weights over the voxels), one image per seed,
// batched. The objective, the parameterisations and the defaults: docs/dream.md.
//
//   loss = sum_b [ -t(f(roll(x_b, dy_b, dx_b))) + tv * TV(x_b) + l2 * mean((x_b - 1/2)^2) ]
//          + diversity * B * mean_{b != c} cos(d_b, d_c)
//
// d_b: the image centred by its mean (diversity in pixels), or the flattened Gram matrix of a layer's
// activations of the jittered image b (diversity in features, Lucid's objectives.diversity).
// x_b = sigmoid(C z_b) (pixels) or x_b = sigmoid(C irfft2(s * (re_b, im_b)) / 4) (fourier, s =
// fft_scale, ortho norm), C the colour decorrelation (Lucid's normalised square root of the colour
// correlation matrix; the identity with decorrelate off). Each image has its own generator (seed + b)
// for its start and its jitter, so without the diversity term image b is the same whatever the batch size.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "analysis/attribution.h"
#include "tensor/tensor.h"

namespace cortex::analysis {

enum class DreamParam { Fourier, Pixels };
DreamParam parse_dream_param(const std::string& s);  // "fourier" or "pixels"
const char* dream_param_name(DreamParam p);

// Where the diversity term compares the images: their pixels, or a layer's Gram matrices.
enum class DiversitySpace { Pixels, Features };
DiversitySpace parse_diversity_space(const std::string& s);  // "pixels" or "features"
const char* diversity_space_name(DiversitySpace d);

// A model that also exposes one of its layers: pixels (B, 3, S, S) -> {outputs (B, V), that layer's
// activations of the same images: (B, C, H, W) maps, (B, T, D) tokens or (B, F) features}, from one
// forward pass (encoding::ModelFn::with_features gives its backbone tap's). What the feature-space
// diversity term needs; an ImageFn is a TapFn without the activations.
using TapFn = std::function<std::pair<Tensor, Tensor>(const Tensor&)>;

struct DreamOptions {
  int64_t steps = 200;       // Adam steps
  int64_t seeds = 4;         // B: images, one per seed
  uint64_t seed = 0;         // image b starts from (and jitters with) generator seed + b
  DreamParam param = DreamParam::Fourier;
  double lr = 0.05;          // Adam's learning rate
  int64_t jitter = 4;        // each step every image is rolled by up to this many pixels (0: none)
  double tv = 0.0;           // total-variation weight (mean |neighbour difference|, both axes)
  double l2 = 0.0;           // weight of mean((x - 1/2)^2)
  double diversity = 0.0;    // weight of the mean pairwise cosine (B >= 2) of the centred images or the Gram matrices
  DiversitySpace diversity_space = DiversitySpace::Pixels;  // Features: needs a TapFn's activations
  bool decorrelate = false;  // colour decorrelation before the sigmoid (Lucid defaults to on; docs/dream.md)
  double init_sd = 0.01;     // sd of the starting parameters (a near-grey image)
};

struct DreamResult {
  Tensor images;                  // float32 (B, 3, S, S) in [0, 1]
  std::vector<double> response;   // per image: the target of f(image) (no jitter), after the last step
  std::vector<double> loss;       // per step: the loss above (before that step's update), / B
  std::vector<double> objective;  // per step: the mean target over the images (jittered)
};

// The image of a frequency-space parameter: re, im (B, 3, S, S/2 + 1) -> sigmoid(C irfft2(s * re,
// s * im, S, ortho) / 4) (B, 3, S, S), s = fft_scale(S, S), C = decorrelate_colour (or the identity),
// in the parameters' dtype. Differentiable.
Tensor fourier_image(const Tensor& re, const Tensor& im, int64_t S, bool decorrelate = false);

// The normalised square root of the colour correlation matrix, Lucid's color_correlation_svd_sqrt
// divided by its largest column norm: row c gives RGB channel c from the decorrelated channels. (3, 3)
// float64. decorrelate_colour(t) (B, 3, H, W) -> y_c = sum_k M[c][k] t_k, in t's dtype. Differentiable.
Tensor colour_correlation_sqrt();
Tensor decorrelate_colour(const Tensor& t);

// The (B, B) cosines between the flattened Gram matrices of activations a (B, C, H, W) (G = F F^T,
// F the (C, H W) map), (B, T, D) tokens (G = F^T F, D x D) or (B, F) features (G = f f^T), computed
// without forming G when the positions are fewer than the channels. Differentiable.
Tensor gram_cosines(const Tensor& a);

// x (B, C, H, W) rolled cyclically by (dy, dx) (torch.roll over dims 2, 3). Differentiable.
Tensor roll2(const Tensor& x, int64_t dy, int64_t dx);

// The loss above for images x (B, 3, S, S) (differentiable) with the per-image shifts shifts[b] =
// {dy, dx}; target (1, V) weights. *targets (when given): the (B) targets of the jittered images.
// The feature-space diversity needs a TapFn that gives activations (an error otherwise).
Tensor dream_loss(const TapFn& f, const Tensor& x, const Tensor& target, const DreamOptions& opt,
                  const std::vector<std::array<int64_t, 2>>& shifts, std::vector<double>* targets = nullptr);
Tensor dream_loss(const ImageFn& f, const Tensor& x, const Tensor& target, const DreamOptions& opt,
                  const std::vector<std::array<int64_t, 2>>& shifts, std::vector<double>* targets = nullptr);

// Optimises opt.seeds images of size S (f's input size) for target (1, V) (voxel_targets /
// mean_target). Checks the options (steps >= 1, seeds >= 1, lr > 0, jitter in [0, S), weights >= 0
// and finite, diversity only with seeds >= 2). `progress` (optional) is called after each step with
// the step number (1-based) and that step's loss.
DreamResult dream(const TapFn& f, int64_t S, const Tensor& target, const DreamOptions& opt,
                  const std::function<void(int64_t, double)>& progress = {});
DreamResult dream(const ImageFn& f, int64_t S, const Tensor& target, const DreamOptions& opt,
                  const std::function<void(int64_t, double)>& progress = {});

// The target (1, V) of f on images (N, 3, S, S), `batch` images per forward pass, without recording: (N).
std::vector<double> target_values(const ImageFn& f, const Tensor& images, const Tensor& target, int64_t batch = 32);

// Pearson r of two equally long float64 vectors (NaN when either is constant).
double pearson(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace cortex::analysis
