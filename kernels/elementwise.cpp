// Elementwise entry points: check dtypes and shapes, then run the kernel of the inputs' device
// through the backend tables (kernels/dispatch.h).
#include "kernels/elementwise.h"

#include <cmath>

#include "kernels/checks.h"
#include "kernels/dispatch.h"
#include "kernels/shape.h"

namespace cortex::kernels {

const char* unary_name(Unary op) {
  switch (op) {
    case Unary::Neg: return "neg";
    case Unary::Exp: return "exp";
    case Unary::Log: return "log";
    case Unary::Log1p: return "log1p";
    case Unary::Expm1: return "expm1";
    case Unary::Sqrt: return "sqrt";
    case Unary::Rsqrt: return "rsqrt";
    case Unary::Reciprocal: return "reciprocal";
    case Unary::Square: return "square";
    case Unary::Abs: return "abs";
    case Unary::Sign: return "sign";
    case Unary::Sin: return "sin";
    case Unary::Cos: return "cos";
    case Unary::Tanh: return "tanh";
    case Unary::Erf: return "erf";
    case Unary::Sigmoid: return "sigmoid";
    case Unary::Relu: return "relu";
    case Unary::GeluErf: return "gelu";
    case Unary::GeluTanh: return "gelu_tanh";
    case Unary::QuickGelu: return "quick_gelu";
    case Unary::Elu: return "elu";
    case Unary::Softplus: return "softplus";
    case Unary::PowScalar: return "pow_scalar";
    case Unary::Floor: return "floor";
    case Unary::Ceil: return "ceil";
    case Unary::Round: return "round";
  }
  return "unary";
}

const char* binary_name(Binary op) {
  switch (op) {
    case Binary::Add: return "add";
    case Binary::Sub: return "sub";
    case Binary::Mul: return "mul";
    case Binary::Div: return "div";
    case Binary::Pow: return "pow";
    case Binary::Maximum: return "maximum";
    case Binary::Minimum: return "minimum";
    case Binary::Atan2: return "atan2";
  }
  return "binary";
}

namespace {

const char* compare_name(Compare op) {
  switch (op) {
    case Compare::Eq: return "eq";
    case Compare::Ne: return "ne";
    case Compare::Lt: return "lt";
    case Compare::Le: return "le";
    case Compare::Gt: return "gt";
    case Compare::Ge: return "ge";
  }
  return "compare";
}

}  // namespace

Tensor unary(Unary op, const Tensor& x, double param) {
  const char* name = unary_name(op);
  check_defined(name, "x", x);
  const bool int_ok = op == Unary::Neg || op == Unary::Abs || op == Unary::Sign;
  CORTEX_CHECK(is_f32_f64(x.dtype()) || (int_ok && is_i32_i64(x.dtype())), name, ": expected a ",
               int_ok ? "float32, float64, int32 or int64" : "float32 or float64", " tensor, found ",
               dtype_name(x.dtype()));
  if (op == Unary::Softplus)
    CORTEX_CHECK(param != 0.0 && std::isfinite(param), name, ": expected a finite nonzero beta, found ", param);
  return call(&Table::unary, name, op, x, param);
}

Tensor binary(Binary op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_defined(name, "a", a);
  check_defined(name, "b", b);
  check_same_dtype(name, a, b);
  const bool int_ok = op == Binary::Add || op == Binary::Sub || op == Binary::Mul || op == Binary::Maximum ||
                      op == Binary::Minimum;
  CORTEX_CHECK(is_f32_f64(a.dtype()) || (int_ok && is_i32_i64(a.dtype())), name, ": expected ",
               int_ok ? "float32, float64, int32 or int64" : "float32 or float64", " operands, found ",
               dtype_name(a.dtype()));
  broadcast_shapes(a.shape(), b.shape(), name);
  return call(&Table::binary, name, op, a, b);
}

Tensor compare(Compare op, const Tensor& a, const Tensor& b) {
  const char* name = compare_name(op);
  check_defined(name, "a", a);
  check_defined(name, "b", b);
  check_same_dtype(name, a, b);
  CORTEX_CHECK(a.dtype() != DType::Bool, name, ": expected numeric operands, found bool (use logical ops)");
  broadcast_shapes(a.shape(), b.shape(), name);
  return call(&Table::compare, name, op, a, b);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", "cond", cond);
  check_defined("where", "a", a);
  check_defined("where", "b", b);
  CORTEX_CHECK(cond.dtype() == DType::Bool, "where: expected a bool condition, found ", dtype_name(cond.dtype()));
  check_same_dtype("where", a, b);
  broadcast_shapes3(cond.shape(), a.shape(), b.shape(), "where");
  return call(&Table::where, "where", cond, a, b);
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  check_defined("clamp", "x", x);
  CORTEX_CHECK(is_f32_f64(x.dtype()) || is_i32_i64(x.dtype()),
               "clamp: expected a float32, float64, int32 or int64 tensor, found ", dtype_name(x.dtype()));
  CORTEX_CHECK(std::isnan(lo) || std::isnan(hi) || lo <= hi, "clamp: expected lo <= hi, found lo ", lo, " > hi ", hi);
  return call(&Table::clamp, "clamp", x, lo, hi);
}

Tensor axpy(const Tensor& a, double alpha, const Tensor& b) {
  check_defined("axpy", "a", a);
  check_defined("axpy", "b", b);
  check_same_dtype("axpy", a, b);
  CORTEX_CHECK(is_f32_f64(a.dtype()), "axpy: expected float32 or float64 operands, found ", dtype_name(a.dtype()));
  broadcast_shapes(a.shape(), b.shape(), "axpy");
  return call(&Table::axpy, "axpy", a, alpha, b);
}

Tensor logical_not(const Tensor& x) {
  check_defined("logical_not", "x", x);
  return call(&Table::logical_not, "logical_not", x);
}

Tensor logical_and(const Tensor& a, const Tensor& b) {
  check_defined("logical_and", "a", a);
  check_defined("logical_and", "b", b);
  broadcast_shapes(a.shape(), b.shape(), "logical_and");
  return call(&Table::logical_and, "logical_and", a, b);
}

Tensor logical_or(const Tensor& a, const Tensor& b) {
  check_defined("logical_or", "a", a);
  check_defined("logical_or", "b", b);
  broadcast_shapes(a.shape(), b.shape(), "logical_or");
  return call(&Table::logical_or, "logical_or", a, b);
}

Tensor isnan(const Tensor& x) {
  check_defined("isnan", "x", x);
  return call(&Table::isnan, "isnan", x);
}

}  // namespace cortex::kernels
