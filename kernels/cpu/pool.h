// CPU pooling kernels (kernels/pool.h). Inputs are 4-D (N, C, H, W); the entries in kernels/pool.cpp
// have checked dtypes and parameters and computed the output sizes (kernels/shape.h).
#pragma once
#include "kernels/pool.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

MaxPool max_pool2d(const Tensor& x, const Pool2dParams& p, int64_t out_h, int64_t out_w);
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p, int64_t out_h, int64_t out_w);
// gy (N, C, OH, OW) -> (N, C, H, W) = x_shape.
Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dParams& p);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor adaptive_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape);

}  // namespace cortex::kernels::cpu
