// CPU matrix products (Eigen GEMM). Entries with input checks: kernels/matmul.h (kernels/matmul.cpp).
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

// NumPy matmul of checked float32/float64 operands of one dtype (1-D promotion, broadcast batch dims).
Tensor matmul(const Tensor& a, const Tensor& b);
// y = x w^T + b for x (..., in), w (out, in), b (out) or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

}  // namespace cortex::kernels::cpu
