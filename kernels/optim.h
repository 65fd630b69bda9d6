// Fused optimizer steps: one pass over a parameter and its state, in place. Entry:
// kernels/optim.cpp; CPU: kernels/cpu/optim.cpp; CUDA and the emulated device: kernels/cuda/optim.cu.
// autograd/optim.cpp's Adam and AdamW call adam_step for float32 and float64 parameters.
//
// Every backend computes each element with adam_element below, so they agree bit for bit: the
// same sequence of roundings in the parameter's dtype as autograd/optim.cpp's composed ops did
// (each op rounded to T, scalars rounded to T first, no fused multiply-add: the host sources are
// built with -ffp-contract=off, kernels/CMakeLists.txt, and the device uses the _rn intrinsics).
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/tensor.h"

#if defined(__CUDACC__)
#define CORTEX_OPTIM_HD __host__ __device__
#else
#define CORTEX_OPTIM_HD
#endif

// Parameter type in namespace cortex: see the note in kernels/conv.h.
namespace cortex {
// One Adam (decoupled = false) or AdamW (decoupled = true) step, as torch.optim with amsgrad off.
// step is t, the number of this step (1 on the first).
struct AdamStep {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  int64_t step = 1;
  bool decoupled = false;
};
// The step's scalars, computed once by the entry on the host in float64 (as autograd/optim.cpp
// did), so every backend gets the same ones; the kernels round them to the parameter's dtype.
struct AdamCoefs {
  int decay = 0;            // 0: none, 1: L2 through the gradient (Adam), 2: decoupled (AdamW)
  double wd = 0;            // Adam's L2 factor
  double keep = 1;          // AdamW's 1 - lr*wd
  bool lerp_from_m = true;  // lerp weight w = 1 - beta1 < 0.5: m + (g - m)*w, else g - (g - m)*(1 - w)
  double lerp_w = 0;        // w or 1 - w, whichever the chosen form multiplies by
  double beta2 = 0, one_minus_beta2 = 0;
  double sqrt_bc2 = 1;      // sqrt(1 - beta2^t)
  double eps = 0;
  double step_size = 0;     // lr / (1 - beta1^t)
};

}  // namespace cortex

namespace cortex::kernels {
using cortex::AdamStep;
using cortex::AdamCoefs;

// In place, elementwise (all four of one shape and dtype, float32 or float64, on one device):
//   decay   Adam:  g = g + wd*p          AdamW: p = p * (1 - lr*wd)      (skipped when wd == 0)
//   m = lerp(m, g, 1 - beta1)            (PyTorch's lerp: from the nearer end)
//   v = beta2*v + (1 - beta2)*g*g
//   p = p - lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)
// grad may be any view (a broadcast .grad included); param, exp_avg and exp_avg_sq must not
// overlap themselves or each other.
void adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamStep& s);

// The scalars of step s (what the entry passes to the backends).
AdamCoefs adam_coefs(const AdamStep& s);

// The coefficients rounded to the parameter's dtype once, as the composed ops' scalar tensors were.
template <class T>
struct AdamCoefsT {
  int decay;
  bool lerp_from_m;
  T wd, keep, lerp_w, beta2, one_minus_beta2, sqrt_bc2, eps, step_size;
};
template <class T>
AdamCoefsT<T> adam_coefs_as(const AdamCoefs& c) {
  return {c.decay,
          c.lerp_from_m,
          static_cast<T>(c.wd),
          static_cast<T>(c.keep),
          static_cast<T>(c.lerp_w),
          static_cast<T>(c.beta2),
          static_cast<T>(c.one_minus_beta2),
          static_cast<T>(c.sqrt_bc2),
          static_cast<T>(c.eps),
          static_cast<T>(c.step_size)};
}

// Correctly rounded operations in T that a compiler may not fuse.
namespace rn {
template <class T>
CORTEX_OPTIM_HD inline T add(T a, T b) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(T) == 4) return __fadd_rn(a, b);
  else return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
template <class T>
CORTEX_OPTIM_HD inline T sub(T a, T b) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(T) == 4) return __fsub_rn(a, b);
  else return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
template <class T>
CORTEX_OPTIM_HD inline T mul(T a, T b) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(T) == 4) return __fmul_rn(a, b);
  else return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
template <class T>
CORTEX_OPTIM_HD inline T div(T a, T b) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(T) == 4) return __fdiv_rn(a, b);
  else return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
template <class T>
CORTEX_OPTIM_HD inline T sqrt(T a) {
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(T) == 4) return __fsqrt_rn(a);
  else return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
}  // namespace rn

// One element: p, m, v updated in place from g, in autograd/optim.cpp's order of operations.
template <class T>
CORTEX_OPTIM_HD inline void adam_element(T& p, T g, T& m, T& v, const AdamCoefsT<T>& c) {
  if (c.decay == 1) g = rn::add(g, rn::mul(p, c.wd));
  else if (c.decay == 2) p = rn::mul(p, c.keep);
  const T d = rn::sub(g, m);
  m = c.lerp_from_m ? rn::add(m, rn::mul(d, c.lerp_w)) : rn::sub(g, rn::mul(d, c.lerp_w));
  v = rn::add(rn::mul(v, c.beta2), rn::mul(rn::mul(g, g), c.one_minus_beta2));
  const T denom = rn::add(rn::div(rn::sqrt(v), c.sqrt_bc2), c.eps);
  p = rn::sub(p, rn::mul(rn::div(m, denom), c.step_size));
}

}  // namespace cortex::kernels
