// CPU elementwise kernels (OpenMP over strided_for rows; Eigen packet math for the transcendental
// functions). Called by kernels/elementwise.cpp after it has checked dtypes, shapes and devices.
// Inputs may be any strided views; outputs are new contiguous CPU tensors.
#pragma once
#include "kernels/elementwise.h"

namespace cortex::kernels::cpu {

Tensor unary(Unary op, const Tensor& x, double param);
// a and b share a dtype; they are broadcast here (NumPy rules).
Tensor binary(Binary op, const Tensor& a, const Tensor& b);
Tensor compare(Compare op, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// lo/hi NaN mean no bound on that side.
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor axpy(const Tensor& a, double alpha, const Tensor& b);
// Truth of any dtype: nonzero (and NaN) is true.
Tensor logical_not(const Tensor& x);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor isnan(const Tensor& x);

}  // namespace cortex::kernels::cpu
