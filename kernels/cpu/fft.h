// CPU kernels of kernels/fft.h (algorithm: docs/fft.md). The entries (kernels/fft.cpp) have checked
// dtypes, shapes, w and the scale.
#pragma once
#include "kernels/fft.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

RealSpectrum rfft2(const Tensor& x, double scale);
Tensor irfft2(const Tensor& re, const Tensor& im, int64_t w, double scale);

}  // namespace cortex::kernels::cpu
