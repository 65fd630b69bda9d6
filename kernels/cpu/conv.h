// CPU 2-D convolution and its two adjoints (im2col + Eigen GEMM). Entries with input checks:
// kernels/conv.h (kernels/conv.cpp); these take checked shapes and parameters.
#pragma once
#include "kernels/conv.h"

namespace cortex::kernels::cpu {

// x (N, C, H, W), w (O, C/groups, KH, KW), bias (O) or undefined -> y (N, O, OH, OW).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p);
// gy (N, O, OH, OW), w -> gx of x_shape: the transposed convolution (col2im of w^T gy).
Tensor conv2d_input_grad(const Tensor& gy, const Tensor& w, const Shape& x_shape, const Conv2dParams& p);
// x, gy (N, O, OH, OW) -> gw of w_shape: gy im2col(x)^T summed over the batch.
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Shape& w_shape, const Conv2dParams& p);

}  // namespace cortex::kernels::cpu
