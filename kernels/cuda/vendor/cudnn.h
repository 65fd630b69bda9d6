// The vendor seam of the CUDA backend's conv (GPU builds with cuDNN only: kernels/cuda/vendor/
// cudnn.cpp is compiled when CMake finds cuDNN, which defines CORTEX_HAVE_CUDNN): cuDNN behind three
// functions, so kernels/cuda/conv.cu needs no cuDNN header and the emulated build never sees one.
// conv.cu calls them when CORTEX_CONV=cudnn (docs/conv.md); the hand-written implicit GEMM is the
// default and the only path on the emulated device.
#pragma once

namespace cortex::kernels::cuda::vendor {

// One conv2d call, NCHW, contiguous operands, sizes already checked by the entry (each tensor has
// fewer than 2^31 elements). f64: float64 data and arithmetic, else float32.
struct ConvShape {
  int N, C, H, W, O, KH, KW, OH, OW, groups;
  int sh, sw, ph, pw, dh, dw;
  bool f64;
};

// y = conv2d(x, w) (+ bias[o] on channel o when bias is not null).
void conv_forward(const ConvShape& s, const void* x, const void* w, const void* bias, void* y);
// gx = conv2d_input_grad(gy, w): overwrites gx.
void conv_backward_data(const ConvShape& s, const void* gy, const void* w, void* gx);
// gw = conv2d_weight_grad(x, gy): overwrites gw.
void conv_backward_filter(const ConvShape& s, const void* x, const void* gy, void* gw);

}  // namespace cortex::kernels::cuda::vendor
