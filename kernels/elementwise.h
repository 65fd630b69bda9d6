// Elementwise kernels: unary maps, binary maps with NumPy broadcasting, comparisons, where, clamp.
// CPU: kernels/cpu/elementwise.cpp. Inputs of a binary op must share dtype and device; outputs are
// new contiguous tensors. Float ops accept float32/float64; Neg/Abs/Sign/Add/Sub/Mul/Maximum/Minimum
// also int32/int64; comparisons accept every dtype but bool and return Bool.
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels {

enum class Unary {
  Neg, Exp, Log, Log1p, Expm1, Sqrt, Rsqrt, Reciprocal, Square, Abs, Sign, Sin, Cos, Tanh, Erf,
  Sigmoid, Relu,
  GeluErf,    // x * Phi(x)
  GeluTanh,   // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  QuickGelu,  // x * sigmoid(1.702 x)  (OpenAI CLIP)
  Elu,        // alpha = param
  Softplus,   // log(1 + exp(beta x)) / beta, beta = param; linear above beta x > 20 as PyTorch
  PowScalar,  // x ^ param
  Floor, Ceil, Round,
};
const char* unary_name(Unary op);
Tensor unary(Unary op, const Tensor& x, double param = 0.0);

enum class Binary { Add, Sub, Mul, Div, Pow, Maximum, Minimum, Atan2 };
const char* binary_name(Binary op);
Tensor binary(Binary op, const Tensor& a, const Tensor& b);

enum class Compare { Eq, Ne, Lt, Le, Gt, Ge };
Tensor compare(Compare op, const Tensor& a, const Tensor& b);  // -> Bool, broadcast

// cond (Bool, broadcast) ? a : b; a and b share dtype.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Clamp to [lo, hi]; NaN bounds mean no bound. NaN inputs stay NaN.
Tensor clamp(const Tensor& x, double lo, double hi);
// out = a + alpha * b (broadcast), the fused form optimizers and accumulation use.
Tensor axpy(const Tensor& a, double alpha, const Tensor& b);
// Bool ops.
Tensor logical_not(const Tensor& x);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor isnan(const Tensor& x);

}  // namespace cortex::kernels
