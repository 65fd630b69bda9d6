// CPU kernels of kernels/spectral.h. The entries (kernels/spectral.cpp) have checked dtypes, shapes,
// k and t, and the indices of knn_propagate.
#pragma once
#include "kernels/spectral.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

KnnAffinity knn_affinity(const Tensor& x, const Tensor& samples, int64_t k, const KnnAffinityParams& p);
Tensor knn_propagate(const Tensor& log_w, const Tensor& indices, const Tensor& values);

}  // namespace cortex::kernels::cpu
