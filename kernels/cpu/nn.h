// CPU kernels for softmax and normalisation (kernels/nn.h). The entries in kernels/nn.cpp have
// already checked dtypes, shapes and dims; these functions trust their arguments.
#pragma once
#include "kernels/nn.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

// dim is already wrapped into [0, max(ndim, 1)).
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// weight/bias are undefined or have x's last normalized_ndim dims as their shape.
LayerNorm layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias, double eps);
// x (N, C, ...); running_mean, running_var, weight, bias (C) (weight/bias may be undefined).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps);

}  // namespace cortex::kernels::cpu
