// Reductions over any set of axes. CPU: kernels/cpu/reduce.cpp.
// `dims` empty means all axes; negative axes count from the end; repeated axes are an error.
// float32 inputs accumulate in float64 so sums of millions of elements keep float32 accuracy.
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels {

enum class Reduce { Sum, Mean, Max, Min, Prod, LogSumExp, Any, All };
const char* reduce_name(Reduce op);
// Max/Min over an empty axis is an error; Sum over an empty axis is 0, Mean NaN, LogSumExp -inf.
Tensor reduce(Reduce op, const Tensor& x, const Shape& dims = {}, bool keepdim = false);
// Index (int64) of the max/min along one axis; the first one on ties; NaN counts as the max.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
// Variance with Bessel-style `correction` (0: population, 1: sample), two-pass for accuracy.
Tensor var(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
// p-norm (p = 1, 2, inf, or any p > 0).
Tensor norm(const Tensor& x, double p = 2.0, const Shape& dims = {}, bool keepdim = false);

// The shape a reduction produces (used by autograd to re-expand gradients).
Shape reduced_shape(const Shape& in, const Shape& dims, bool keepdim);
// Normalised, sorted, de-duplicated axes for `dims` on a tensor of `ndim` dims (empty -> all).
Shape reduction_axes(const Shape& dims, int64_t ndim, const char* op);

}  // namespace cortex::kernels
