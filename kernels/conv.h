// 2-D convolution and its two adjoints. Entry: kernels/conv.cpp; CPU: kernels/cpu/conv.cpp (im2col +
// GEMM, with kernels/cpu/conv_gemm.cpp on AVX-512). Layout NCHW; float32/float64.
#pragma once
#include "tensor/tensor.h"

// The parameter types live in namespace cortex (not kernels) on purpose: argument-dependent lookup
// would otherwise find kernels::conv2d next to the differentiable cortex::conv2d and make every
// unqualified call in user code ambiguous.
namespace cortex {
struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1, groups = 1;
};
}  // namespace cortex

namespace cortex::kernels {
using cortex::Conv2dParams;

// x (N, C, H, W), w (O, C/groups, KH, KW), bias (O) or undefined -> (N, O, OH, OW), im2col + GEMM.
// bf16 operands (all of them): float32 accumulation, a bf16 result (docs/bf16.md). The adjoints
// take float32 and float64 only (bf16 is for inference).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p);
// The adjoints: d(conv2d)/dx applied to gy (a transposed convolution) and d(conv2d)/dw applied to gy.
Tensor conv2d_input_grad(const Tensor& gy, const Tensor& w, const Shape& x_shape, const Conv2dParams& p);
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Shape& w_shape, const Conv2dParams& p);
// Output size of one spatial dim (PyTorch's rule); throws when the window does not fit. The
// arithmetic lives in kernels/shape.h with the other output sizes.
int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode = false);

}  // namespace cortex::kernels
