// Resampling kernels: grid_sample (bilinear or nearest), bilinear resize, padding. Entry: kernels/sample.cpp;
// CPU: kernels/cpu/sample.cpp.
// Semantics follow torch.nn.functional (grid_sample, interpolate(mode="bilinear"), pad).
#pragma once
#include "tensor/tensor.h"

// Parameter types in namespace cortex: see the note in kernels/conv.h.
namespace cortex {
enum class GridPadding { Zeros, Border };
// grid_sample's interpolation, as torch's mode="bilinear" / "nearest".
enum class GridMode { Bilinear, Nearest };
enum class PadMode { Constant, Reflect, Replicate };
}  // namespace cortex

namespace cortex::kernels {
using cortex::GridMode;
using cortex::GridPadding;
using cortex::PadMode;

// x (N, C, H, W), grid (N, Ho, Wo, 2) holding (x, y) in [-1, 1] -> (N, C, Ho, Wo).
// Nearest reads the pixel at the source coordinate rounded half to even (torch's nearbyint); its
// gradient w.r.t. the grid is 0 (NaN at a NaN coordinate, whose output is NaN in both modes).
Tensor grid_sample(const Tensor& x, const Tensor& grid, bool align_corners, GridPadding padding,
                   GridMode mode = GridMode::Bilinear);
struct GridSampleGrads {
  Tensor input, grid;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(input); f(grid); }
};
// grid_grad false: only the input gradient is computed, `grid` of the result is undefined (a
// sampling readout whose grid is fixed: the grid part is about half the work).
GridSampleGrads grid_sample_backward(const Tensor& gy, const Tensor& x, const Tensor& grid, bool align_corners,
                                     GridPadding padding, GridMode mode = GridMode::Bilinear, bool grid_grad = true);

// x (N, C, H, W) -> (N, C, out_h, out_w), bilinear, no antialiasing (F.interpolate semantics).
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners);
Tensor resize_bilinear_backward(const Tensor& gy, const Shape& x_shape, bool align_corners);

// pads: pairs from the last dim backwards, as F.pad: {left, right, top, bottom, ...}; negative pads crop.
Tensor pad(const Tensor& x, const Shape& pads, PadMode mode = PadMode::Constant, double value = 0.0);
// Adjoint of pad for any mode (sums the gradients of reflected/replicated cells into their sources).
Tensor pad_backward(const Tensor& gy, const Shape& x_shape, const Shape& pads, PadMode mode);

}  // namespace cortex::kernels
