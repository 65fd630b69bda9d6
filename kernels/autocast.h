// bfloat16 operands of the GEMM, convolution and attention entries (docs/bf16.md): the entry widens
// them to float32 (exact: a bf16 is the top half of a float32), runs the float32 kernel of the
// operands' device, and rounds the result to bf16 once. The float32 kernel accumulates in float32,
// so the arithmetic is that of a bf16 GEMM with float32 accumulation.
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels::autocast {

inline bool is_bf16(const Tensor& t) { return t.defined() && t.dtype() == DType::BFloat16; }
// An undefined optional operand (a missing bias) stays undefined.
inline Tensor widen(const Tensor& t) { return t.defined() ? t.to(DType::Float32) : t; }
inline Tensor round_bf16(const Tensor& t) { return t.to(DType::BFloat16); }

}  // namespace cortex::kernels::autocast
