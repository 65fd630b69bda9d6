// Fused scaled dot-product attention, flash-attention style: forward (with the per-row log-sum-exp
// the backward needs), backward, and forward-mode JVP, none of which stores the (Lq, Lk) score
// matrix. Entry: kernels/attention.cpp; CPU: kernels/cpu/attention.cpp; CUDA and the emulated
// device: kernels/cuda/attention.cu (numbered versions in kernels/cuda/attention/). Derivations and
// the versions: docs/attention.md.
//
// Shapes: q (*lead, Lq, D), k (*lead, Lk, D), v (*lead, Lk, Dv) with the same leading dims, any
// strides (the ViT passes selects of a packed qkv tensor); float32 or float64, one dtype.
//   S = scale q k^T,  P = softmax_rows(S),  out = P v  (*lead, Lq, Dv),  lse = logsumexp_rows(S)  (*lead, Lq).
// Lk == 0 gives out = 0 and lse = -inf (the empty softmax), as the composite softmax(q k^T) v does.
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels {

struct Attention {
  Tensor out, lse;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(out); f(lse); }
};
struct AttentionGrads {
  Tensor dq, dk, dv;
  template <class F> void for_each_tensor(F&& f) { f(dq); f(dk); f(dv); }
};
struct AttentionJvp {
  Tensor out, tout;
  template <class F> void for_each_tensor(F&& f) { f(out); f(tout); }
};

// bf16 q, k, v: float32 arithmetic, out in bf16, lse in float32 (docs/bf16.md); the backward and
// JVP take float32 and float64 only.
Attention attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale);
// The cotangents of q, k, v given gout (the cotangent of out) and the forward's out and lse.
AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& gout, double scale);
// out and its tangent tout = d out (q + e tq, k + e tk, v + e tv) / de in one pass (tangents of the
// shapes of q, k, v; pass zeros for an input without one).
AttentionJvp attention_jvp(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& tq, const Tensor& tk,
                           const Tensor& tv, double scale);

}  // namespace cortex::kernels
