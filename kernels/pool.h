// 2-D pooling: max, average, adaptive average, and the adjoints autograd uses. Entry:
// kernels/pool.cpp; CPU: kernels/cpu/pool.cpp. Inputs (N, C, H, W) or unbatched (C, H, W), as in
// PyTorch; float32/float64.
#pragma once
#include "tensor/tensor.h"

// Parameter type in namespace cortex: see the note in kernels/conv.h.
namespace cortex {
struct Pool2dParams {
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg pool only
};
}  // namespace cortex

namespace cortex::kernels {
using cortex::Pool2dParams;

// indices: int64, flat index h * W + w of the max within each (n, c) plane, as PyTorch returns.
struct MaxPool {
  Tensor y, indices;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(y); f(indices); }
};
MaxPool max_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p);
Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dParams& p);
// PyTorch's adaptive bins: start = floor(i * H / OH), end = ceil((i + 1) * H / OH).
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor adaptive_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape);

}  // namespace cortex::kernels
