// CPU pooling kernels (kernels/nn.h). Inputs are 4-D (N, C, H, W); the entries in kernels/nn.cpp
// have checked dtypes and parameters and computed the output sizes with pool_out_size.
#pragma once
#include "kernels/nn.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

// PyTorch's pooling output size for one spatial dim: floor or ceil of (in + 2 pad - k) / stride,
// plus 1; with ceil_mode the last window must start inside the input or the left padding. Throws
// naming `op` when k or stride are not positive, pad is negative or more than k / 2, or the
// output would be empty.
int64_t pool_out_size(const char* op, int64_t in, int64_t k, int64_t stride, int64_t pad, bool ceil_mode);

MaxPool max_pool2d(const Tensor& x, const Pool2dParams& p, int64_t out_h, int64_t out_w);
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p, int64_t out_h, int64_t out_w);
// gy (N, C, OH, OW) -> (N, C, H, W) = x_shape.
Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dParams& p);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor adaptive_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape);

}  // namespace cortex::kernels::cpu
