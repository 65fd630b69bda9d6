// The 2-D real FFT pair over the last two dims (numpy.fft.rfft2 / irfft2 conventions, scaled by a
// given factor). The differentiable ops, their norms and derivatives are autograd/ops_fft.cpp
// (docs/autodiff.md, 4.13); the algorithm is docs/fft.md. Entry: kernels/fft.cpp; CPU:
// kernels/cpu/fft.cpp. The CPU is the only backend: on the emulated device and CUDA the ops compute
// the DFT as products with cos/sin matrices instead, so these entries are called with CPU tensors
// (another device would run the CPU kernel as a counted host fallback).
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels {

// A half spectrum: re, im (..., H, W/2 + 1).
struct RealSpectrum {
  Tensor re, im;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(re); f(im); }
};

// x real (..., H, W), float32 or float64, any strides, H, W >= 1 -> scale * X[k, l] for l <= W/2,
// X = sum_{h, w} x[h, w] exp(-2 pi i (k h / H + l w / W)); contiguous, in x's dtype.
RealSpectrum rfft2(const Tensor& x, double scale);
// re, im (..., H, w/2 + 1) of one float dtype, any strides -> the real (..., H, w)
//   scale * sum_{k, l} c_l Re(Y[k, l] exp(2 pi i (k h / H + l w' / w)))
// (c_l = 1 at DC and, w even, Nyquist, 2 elsewhere): numpy.fft.irfft2(Y, s=(H, w)) * H * w * scale,
// which ignores the imaginary parts of the DC and Nyquist columns after the pass over H.
Tensor irfft2(const Tensor& re, const Tensor& im, int64_t w, double scale);

}  // namespace cortex::kernels
