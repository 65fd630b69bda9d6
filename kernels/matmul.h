// Matrix products. Entry: kernels/matmul.cpp; CPU: kernels/cpu/matmul.cpp (Eigen GEMM).
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels {

// NumPy matmul semantics: 1-D operands are promoted and the added dim removed; leading (batch)
// dims broadcast. Strided inputs (e.g. transposed views) are read without a copy where Eigen can.
Tensor matmul(const Tensor& a, const Tensor& b);
// y = x @ w^T + b for x (..., in), w (out, in), b (out) or undefined: the Linear layer's kernel.
// Both entries take float32, float64 or bfloat16 operands (all of one dtype); bf16 computes with
// float32 accumulation and returns bf16 (kernels/autocast.h, docs/bf16.md).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

}  // namespace cortex::kernels
