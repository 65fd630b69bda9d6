// The argument checks every kernel entry repeats, in one place. Each throws cortex::Error naming
// the op, what was expected and what was found. Family-specific checks stay in the entry files.
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels {

inline bool is_f32_f64(DType dt) { return dt == DType::Float32 || dt == DType::Float64; }
inline bool is_i32_i64(DType dt) { return dt == DType::Int32 || dt == DType::Int64; }

// `what` names the argument ("x", "w", "gy").
inline void check_defined(const char* op, const char* what, const Tensor& t) {
  CORTEX_CHECK(t.defined(), op, ": expected a defined tensor for ", what, ", found an undefined tensor");
}

// Defined, and float32 or float64.
inline void check_float(const char* op, const char* what, const Tensor& t) {
  check_defined(op, what, t);
  CORTEX_CHECK(is_f32_f64(t.dtype()), op, ": expected ", what, " to be float32 or float64, found ",
               dtype_name(t.dtype()));
}

// Both operands must have one dtype (no implicit promotion: a silent float64 upcast costs 2x).
inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  CORTEX_CHECK(a.dtype() == b.dtype(), op, ": expected operands of one dtype, found ", dtype_name(a.dtype()),
               " and ", dtype_name(b.dtype()));
}

// An optional parameter (a bias, a weight, running statistics): undefined, or of `shape` and `dt`.
inline void check_optional(const char* op, const char* what, const Tensor& t, const Shape& shape, DType dt) {
  if (!t.defined()) return;
  CORTEX_CHECK(t.dtype() == dt, op, ": expected ", what, " of dtype ", dtype_name(dt), ", found ",
               dtype_name(t.dtype()));
  CORTEX_CHECK(t.shape() == shape, op, ": expected ", what, " of shape ", shape_str(shape), ", found ",
               shape_str(t.shape()));
}

// A spatial shape (N, C, H, W), or (C, H, W) too when `unbatched_ok`, with non-empty H and W.
inline void check_image_shape(const char* op, const char* what, const Shape& s, bool unbatched_ok) {
  CORTEX_CHECK(s.size() == 4 || (unbatched_ok && s.size() == 3), op, ": expected ", what, " of shape (N, C, H, W)",
               unbatched_ok ? " or (C, H, W)" : "", ", found ", shape_str(s));
  shape_numel(s);
  CORTEX_CHECK(s[s.size() - 2] > 0 && s[s.size() - 1] > 0, op, ": expected ", what,
               " with non-empty spatial dims, found ", shape_str(s));
}

}  // namespace cortex::kernels
