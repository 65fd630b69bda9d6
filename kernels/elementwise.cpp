// Elementwise entry points: check dtypes, shapes and devices, then run the CPU kernel (CUDA tensors
// take the host path until the family has CUDA kernels; see kernels/dispatch.h).
#include "kernels/elementwise.h"

#include <cmath>

#include "kernels/cpu/elementwise.h"
#include "kernels/dispatch.h"

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

bool is_f32_f64(DType dt) { return dt == DType::Float32 || dt == DType::Float64; }
bool is_i32_i64(DType dt) { return dt == DType::Int32 || dt == DType::Int64; }

void check_defined(const char* op, std::initializer_list<const Tensor*> ts) {
  for (const Tensor* t : ts) CORTEX_CHECK(t->defined(), op, ": expected a defined tensor, found an undefined one");
}

}  // namespace

Tensor unary(Unary op, const Tensor& x, double param) {
  const char* name = unary_name(op);
  check_defined(name, {&x});
  const bool int_ok = op == Unary::Neg || op == Unary::Abs || op == Unary::Sign;
  CORTEX_CHECK(is_f32_f64(x.dtype()) || (int_ok && is_i32_i64(x.dtype())), name, ": expected a ",
               int_ok ? "float32, float64, int32 or int64" : "float32 or float64", " tensor, found ",
               dtype_name(x.dtype()));
  if (op == Unary::Softplus)
    CORTEX_CHECK(param != 0.0 && std::isfinite(param), name, ": expected a finite nonzero beta, found ", param);
  const Device dev = detail::common_device(name, {&x});
  if (dev.is_cuda()) return detail::back(cpu::unary(op, detail::host(x), param), dev);
  return cpu::unary(op, x, param);
}

Tensor binary(Binary op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_defined(name, {&a, &b});
  detail::check_same_dtype(name, a, b);
  const bool int_ok = op == Binary::Add || op == Binary::Sub || op == Binary::Mul || op == Binary::Maximum ||
                      op == Binary::Minimum;
  CORTEX_CHECK(is_f32_f64(a.dtype()) || (int_ok && is_i32_i64(a.dtype())), name, ": expected ",
               int_ok ? "float32, float64, int32 or int64" : "float32 or float64", " operands, found ",
               dtype_name(a.dtype()));
  broadcast_shapes(a.shape(), b.shape(), name);
  const Device dev = detail::common_device(name, {&a, &b});
  if (dev.is_cuda()) return detail::back(cpu::binary(op, detail::host(a), detail::host(b)), dev);
  return cpu::binary(op, a, b);
}

Tensor compare(Compare op, const Tensor& a, const Tensor& b) {
  const char* name = compare_name(op);
  check_defined(name, {&a, &b});
  detail::check_same_dtype(name, a, b);
  CORTEX_CHECK(a.dtype() != DType::Bool, name, ": expected numeric operands, found bool (use logical ops)");
  broadcast_shapes(a.shape(), b.shape(), name);
  const Device dev = detail::common_device(name, {&a, &b});
  if (dev.is_cuda()) return detail::back(cpu::compare(op, detail::host(a), detail::host(b)), dev);
  return cpu::compare(op, a, b);
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", {&cond, &a, &b});
  CORTEX_CHECK(cond.dtype() == DType::Bool, "where: expected a bool condition, found ", dtype_name(cond.dtype()));
  detail::check_same_dtype("where", a, b);
  broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  const Device dev = detail::common_device("where", {&cond, &a, &b});
  if (dev.is_cuda())
    return detail::back(cpu::where(detail::host(cond), detail::host(a), detail::host(b)), dev);
  return cpu::where(cond, a, b);
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  check_defined("clamp", {&x});
  CORTEX_CHECK(is_f32_f64(x.dtype()) || is_i32_i64(x.dtype()),
               "clamp: expected a float32, float64, int32 or int64 tensor, found ", dtype_name(x.dtype()));
  CORTEX_CHECK(std::isnan(lo) || std::isnan(hi) || lo <= hi, "clamp: expected lo <= hi, found lo ", lo, " > hi ", hi);
  const Device dev = detail::common_device("clamp", {&x});
  if (dev.is_cuda()) return detail::back(cpu::clamp(detail::host(x), lo, hi), dev);
  return cpu::clamp(x, lo, hi);
}

Tensor axpy(const Tensor& a, double alpha, const Tensor& b) {
  check_defined("axpy", {&a, &b});
  detail::check_same_dtype("axpy", a, b);
  CORTEX_CHECK(is_f32_f64(a.dtype()), "axpy: expected float32 or float64 operands, found ", dtype_name(a.dtype()));
  broadcast_shapes(a.shape(), b.shape(), "axpy");
  const Device dev = detail::common_device("axpy", {&a, &b});
  if (dev.is_cuda()) return detail::back(cpu::axpy(detail::host(a), alpha, detail::host(b)), dev);
  return cpu::axpy(a, alpha, b);
}

Tensor logical_not(const Tensor& x) {
  check_defined("logical_not", {&x});
  const Device dev = detail::common_device("logical_not", {&x});
  if (dev.is_cuda()) return detail::back(cpu::logical_not(detail::host(x)), dev);
  return cpu::logical_not(x);
}

Tensor logical_and(const Tensor& a, const Tensor& b) {
  check_defined("logical_and", {&a, &b});
  broadcast_shapes(a.shape(), b.shape(), "logical_and");
  const Device dev = detail::common_device("logical_and", {&a, &b});
  if (dev.is_cuda()) return detail::back(cpu::logical_and(detail::host(a), detail::host(b)), dev);
  return cpu::logical_and(a, b);
}

Tensor logical_or(const Tensor& a, const Tensor& b) {
  check_defined("logical_or", {&a, &b});
  broadcast_shapes(a.shape(), b.shape(), "logical_or");
  const Device dev = detail::common_device("logical_or", {&a, &b});
  if (dev.is_cuda()) return detail::back(cpu::logical_or(detail::host(a), detail::host(b)), dev);
  return cpu::logical_or(a, b);
}

Tensor isnan(const Tensor& x) {
  check_defined("isnan", {&x});
  const Device dev = detail::common_device("isnan", {&x});
  if (dev.is_cuda()) return detail::back(cpu::isnan(detail::host(x)), dev);
  return cpu::isnan(x);
}

}  // namespace cortex::kernels
