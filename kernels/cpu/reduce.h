// CPU reductions. Called by kernels/reduce.cpp after it has checked the inputs; `axes` are already
// normalised by reduction_axes (sorted, in range, no repeats; empty = nothing reduced on a 0-dim
// tensor). Inputs may be any strided views; outputs are new contiguous CPU tensors.
#pragma once
#include "kernels/reduce.h"

namespace cortex::kernels::cpu {

// Sum/Prod of integer or bool inputs give int64; Max/Min keep the dtype; Any/All give Bool.
Tensor reduce(Reduce op, const Tensor& x, const Shape& axes, bool keepdim);
// `dim` already wrapped; argmin treats NaN as the largest value (header contract).
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim);
Tensor var(const Tensor& x, const Shape& axes, int64_t correction, bool keepdim, bool take_sqrt);
Tensor norm(const Tensor& x, double p, const Shape& axes, bool keepdim);

}  // namespace cortex::kernels::cpu
