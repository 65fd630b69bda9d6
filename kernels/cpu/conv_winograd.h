// Winograd F(2x2, 3x3) for the CPU float conv2d forward (Lavin & Gray 2016; derivation and
// measurements in docs/conv.md, "Winograd"). A 3x3, stride-1, undilated, ungrouped conv computes
// each 2x2 block of outputs from a 4x4 block of inputs with 16 multiplies per (input, output)
// channel pair instead of 36:
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A,
// where the 16 element-wise products, summed over the input channels, are 16 independent GEMMs
// (one per position xi of the 4x4 transformed tile) on the packed kernel of conv_gemm.h:
//   M_xi (O, tiles) = U_xi (O, C) V_xi (C, tiles).
// U (the filters' transforms) is written straight into that kernel's packed-A panels, V (the
// inputs' transforms) into its packed-B strips, 8 tiles per vector.
//
// The sums differ from the direct conv's (an output is no longer the sum of its 9 C products in
// order), so the bits do too; the error stays at the direct conv's scale (the transforms' entries
// are 0, +-1 and +-1/2; test_conv compares both with a float64 reference). Deterministic: every
// GEMM output is its in-order sum over C, whatever the thread count or the cut.
// CORTEX_CONV_WINOGRAD=0 in the environment (or set_enabled(false)) keeps every conv on the
// direct path.
#pragma once
#include <cstdint>

#include "kernels/cpu/conv_gemm.h"

#ifdef CORTEX_CONV_GEMM
namespace cortex::kernels::cpu::winograd {

struct Geometry {
  int64_t N, C, H, W, O, OH, OW, ph, pw;  // a 3x3 kernel, stride 1, dilation 1, one group
};

// Whether conv3x3 is used for this geometry (and is switched on). Depends on the shape of one
// image only, not on the batch size or the thread count.
bool pays(const Geometry& g);
// y (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C, 3, 3)) + bias (O, or null).
void conv3x3(const Geometry& g, const float* x, const float* w, const float* bias, float* y);

// The switch (initially on unless CORTEX_CONV_WINOGRAD=0); tests flip it to compare both paths.
bool enabled();
void set_enabled(bool on);

}  // namespace cortex::kernels::cpu::winograd
#endif
