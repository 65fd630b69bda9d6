// CPU resampling kernels (kernels/sample.h). The entries in kernels/sample.cpp have checked
// dtypes and shapes; these functions trust their arguments.
#pragma once
#include "kernels/sample.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

// x (N, C, H, W), grid (N, Ho, Wo, 2) -> (N, C, Ho, Wo).
Tensor grid_sample(const Tensor& x, const Tensor& grid, bool align_corners, GridPadding padding,
                   GridMode mode);
GridSampleGrads grid_sample_backward(const Tensor& gy, const Tensor& x, const Tensor& grid, bool align_corners,
                                     GridPadding padding, GridMode mode, bool grid_grad);

// x (N, C, H, W) -> (N, C, out_h, out_w); out_h, out_w >= 1 and H, W >= 1.
Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners);
Tensor resize_bilinear_backward(const Tensor& gy, const Shape& x_shape, bool align_corners);

// pads has even length <= 2 * x.dim(), checked against the mode's limits; any dtype.
Tensor pad(const Tensor& x, const Shape& pads, PadMode mode, double value);
// gy has the padded shape; float32/float64.
Tensor pad_backward(const Tensor& gy, const Shape& x_shape, const Shape& pads, PadMode mode);

}  // namespace cortex::kernels::cpu
