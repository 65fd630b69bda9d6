// Softmax and normalisation kernels: softmax, log_softmax, layer_norm, batch_norm. Entry:
// kernels/nn.cpp; CPU: kernels/cpu/nn.cpp. float32/float64. Convolution and pooling are their own
// families (kernels/conv.h, kernels/pool.h).
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// Normalises over the last `normalized_ndim` dims; weight/bias (the normalized shape) may be undefined.
// mean and rstd have x's shape with the normalised dims removed; autograd uses them.
struct LayerNorm {
  Tensor y, mean, rstd;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(y); f(mean); f(rstd); }
};
LayerNorm layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                     double eps = 1e-5);
// Inference batch norm over dim 1 (N, C, ...): (x - mean) / sqrt(var + eps) * weight + bias.
// weight/bias may be undefined.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps = 1e-5);

}  // namespace cortex::kernels
