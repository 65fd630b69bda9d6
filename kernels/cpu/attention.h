// CPU fused attention (kernels/attention.h). The entry (kernels/attention.cpp) has checked shapes
// and dtypes and handled the empty cases (Lq, Lk or the batch 0); q, k, v may have any strides.
#pragma once
#include "kernels/attention.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

Attention attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& gout, double scale);
AttentionJvp attention_jvp(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& tq, const Tensor& tk,
                           const Tensor& tv, double scale);

}  // namespace cortex::kernels::cpu
