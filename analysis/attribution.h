// Integrated gradients (Sundararajan et al. 2017) of an encoding model with respect to its input
// pixels, for any linear combination of its outputs: one voxel, an ROI's mean, or each voxel of a
// list (targets as rows of weights over the voxels). The maths, the quadrature rules, the
// completeness check and why ReLU kinks cost accuracy: docs/attribution.md.
//
//   IG_i(x) = (x_i - b_i) * integral_0^1 d f(b + a (x - b)) / d x_i da
//          ~= (x_i - b_i) * sum_{k=0..m} w_k g_i(a_k)
//
// with m + 1 nodes a_k and weights w_k of the rule (uniform trapezoid, adaptive trapezoid, or
// Gauss-Legendre). The path points go through the model `batch` at a time; with a fixed rule each
// target's gradient is one backward pass of the same forward with the weights in the cotangent;
// the adaptive rule keeps each node's gradient until its grid is final. Gradients are
// taken with cortex::grad (nothing accumulates in any .grad), so the same call twice gives the same
// map (BOLDreams' code accumulated .grad across calls without zeroing it).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::analysis {

// (B, 3, S, S) float32 pixels in [0, 1] -> (B, V): e.g. an encoding::ModelFn.
using ImageFn = std::function<Tensor(const Tensor&)>;

// The rule for the path integral (docs/attribution.md, "Quadrature rules"). All three use
// steps + 1 gradient evaluations, so they cost the same at equal steps.
//   trapezoid: a_k = k / steps, uniform;
//   adaptive: the trapezoid rule on a grid refined where it is wrong: steps / 2 uniform intervals,
//     then `rounds` rounds that bisect the intervals whose exact error |trapezoid - (F(a_r) - F(a_l))|
//     is largest. Each target has its own grid (its own forward passes), so a target's map does not
//     depend on the other targets of the call;
//   gausslegendre: steps + 1 Gauss-Legendre nodes on [0, 1] (Captum's default), plus one forward
//     pass of x and the baseline for the completeness check.
enum class Quadrature { Trapezoid, Adaptive, GaussLegendre };
Quadrature parse_quadrature(const std::string& s);  // "trapezoid", "adaptive" or "gausslegendre"
const char* quadrature_name(Quadrature q);

struct IGOptions {
  int64_t steps = 50;  // m: intervals of the trapezoid rule; every rule takes m + 1 gradient evaluations
  int64_t batch = 32;  // path points per forward pass
  Quadrature rule = Quadrature::Adaptive;
  int64_t rounds = 8;   // adaptive: refinement rounds (each one batch of new nodes)
  int64_t initial = 0;  // adaptive: intervals of the first, uniform grid (0: steps / 2; at most steps)
  // adaptive: after the `steps` intervals, keep bisecting (rounds of max(4, intervals / 8) nodes) while
  // a target's completeness error |sum - (f(x) - f(b))| exceeds tol max(|f(x) - f(b)|, tol_floor[k]),
  // up to max_steps intervals (0: 8 steps). 0: exactly `steps` intervals. ReLU models need it for
  // 1% on every target (docs/attribution.md, "A tolerance instead of a budget"). tol_floor (empty,
  // or one per target): the scale below which |f(x) - f(b)| does not shrink the allowed error, e.g.
  // the target's prediction sd over a set of images (cortex attribute's choice): without it a target
  // with f(x) close to f(b) would need an exact sum.
  double tol = 0;
  int64_t max_steps = 0;
  std::vector<double> tol_floor;
};

struct IGResult {
  Tensor attr;                      // float32 (K, 3, S, S): the attributions, one map per target
  std::vector<double> f_x, f_base;  // per target: f(x) and f(baseline) (the path's end points)
  std::vector<double> total;        // per target: the sum of the attributions (float64)
  std::vector<double> abs_error;    // |total - (f_x - f_base)|
  std::vector<double> rel_error;    // abs_error / |f_x - f_base| (infinite when f_x == f_base and abs_error > 0)
  Quadrature rule = Quadrature::Adaptive;
  std::vector<std::vector<double>> nodes;  // per target: the path positions a in [0, 1] evaluated, increasing
};

// x, baseline: float32 (3, S, S); targets: (K, V) weights over f's V outputs (one-hot rows for
// voxels, 1 / |ROI| on an ROI's columns). Checks shapes, steps >= 1, batch >= 1, finite inputs.
IGResult integrated_gradients(const ImageFn& f, const Tensor& x, const Tensor& baseline, const Tensor& targets,
                              const IGOptions& opt = {});

// Targets: one-hot rows for `voxels` of V, or one row 1 / |cols| on `cols` (an ROI's mean).
Tensor voxel_targets(const std::vector<int64_t>& voxels, int64_t V);
Tensor mean_target(const std::vector<int64_t>& cols, int64_t V);

// Baselines. black: zeros; mean: the per-pixel mean of a set of images (given as `mean_image`);
// blur: x blurred by a Gaussian of sigma `blur_sigma` pixels (the image's structure removed, its
// local colour kept).
enum class Baseline { Black, Mean, Blur };
Baseline parse_baseline(const std::string& s);  // "black", "mean" or "blur"
const char* baseline_name(Baseline b);
// The sigma of the blurred baseline for an image of size S: S / 8 pixels (docs/attribution.md).
double blur_baseline_sigma(int64_t S);
Tensor make_baseline(Baseline b, const Tensor& x, const Tensor& mean_image, double blur_sigma);

// A Gaussian blur of (C, H, W) float maps, per channel, separable, in float64, the kernel cut at
// 3 sigma and renormalised where it leaves the image (so a constant image stays constant).
// sigma == 0: a copy. Returns float32.
Tensor gaussian_blur(const Tensor& maps, double sigma);

// The display map of attributions (3, S, S) (BOLDreams' option): the mean over colour channels
// when channel_mean (-> (1, S, S)), then blurred by blur_sigma (0: not blurred).
Tensor postprocess(const Tensor& attr, bool channel_mean, double blur_sigma);

// Where a map (S, S) (or (C, S, S): channels summed) points, in pixels (x = column, y = row):
// the argmax of |map| after a Gaussian smoothing of `smooth` pixels, and the centre of mass of
// |map|^2 (squared, so the diffuse low tail weighs little).
std::array<double, 2> attribution_peak(const Tensor& map, double smooth);
std::array<double, 2> attribution_centre_of_mass(const Tensor& map);

// An overlay for a PNG: the image (3, S, S) in [0, 1] as grey, the map (S, S) on top (red positive,
// blue negative, opacity |a| / max |a|), each pixel repeated `scale` times: uint8 (S*scale, S*scale, 3).
Tensor overlay(const Tensor& pixels, const Tensor& map, int64_t scale);

}  // namespace cortex::analysis
