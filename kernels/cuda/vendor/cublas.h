// The vendor seam of the CUDA backend's GEMM (GPU builds only: kernels/cuda/vendor/*.cpp are
// compiled when CORTEX_HAVE_CUDA): cuBLAS behind two functions, so kernels/cuda/matmul.cu needs no
// cuBLAS header and the emulated build never sees one.
#pragma once
#include <cstdint>

#include "kernels/cuda/gemm.h"

namespace cortex::kernels::cuda::vendor {

// Whether sgemm can run these products: every operand has a unit stride, no batch stride is 0
// (with batch > 1) and every size fits cuBLAS's int.
bool can_sgemm(const GemmArgs<float>& g, int64_t batch, int64_t sa, int64_t sb);

// For i < batch: C_i = A_i B_i (+ C_i when accumulate) with A_i = g.A + i * sa, B_i = g.B + i * sb,
// C_i = g.C + i * sc, in float32 (TF32 tensor cores when tf32() is on). g.bias is ignored (the
// caller writes it into C and accumulates). Throws unless can_sgemm.
void sgemm(const GemmArgs<float>& g, int64_t batch, int64_t sa, int64_t sb, int64_t sc, bool accumulate);

// TF32 for float32 GEMMs: off by default (results then match the hand-written kernels to float32
// rounding); env CORTEX_TF32=1 turns it on, set_tf32 overrides the environment.
void set_tf32(bool on);
bool tf32();

}  // namespace cortex::kernels::cuda::vendor
