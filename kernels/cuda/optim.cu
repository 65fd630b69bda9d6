// The optim family on CUDA and the emulated CUDA device: a fused Adam / AdamW step, one thread per
// element, reading p, g, m, v once and writing p, m, v once (the composed ops it replaces made a
// dozen passes). Each element is kernels/optim.h's adam_element, the CPU kernel's function: the
// same roundings in the same order (the _rn intrinsics on a GPU, which nvcc never fuses into an
// fma; the host build of this file has -ffp-contract=off, kernels/CMakeLists.txt), so results are
// the CPU's bit for bit on both devices. Operands go through an Indexer, so a strided parameter or
// a broadcast gradient needs no copy.
#include <array>
#include <cstdint>

#include "kernels/optim.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

__device__ __forceinline__ int64_t at(const Indexer& ix, int k, int64_t i) {
  return ix.ndim == 1 ? i * ix.strides[k][0] : ix.offset(k, i);
}

template <class T>
__global__ void adam_kernel(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ m, T* __restrict__ v,
                            Indexer ix, AdamCoefsT<T> c, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const int64_t op = at(ix, 0, i), om = at(ix, 2, i), ov = at(ix, 3, i);
  T pv = p[op], mv = m[om], vv = v[ov];
  adam_element<T>(pv, g[at(ix, 1, i)], mv, vv, c);
  p[op] = pv;
  m[om] = mv;
  v[ov] = vv;
}

template <class T>
void adam_launch(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamCoefs& coefs) {
  const int64_t n = param.numel();
  if (n == 0) return;
  const Indexer ix = make_indexer<4>(param.shape(), std::array<Shape, 4>{param.strides(), grad.strides(),
                                                                        exp_avg.strides(), exp_avg_sq.strides()});
  CORTEX_LAUNCH(adam_kernel<T>, blocks_for(n), kBlock, 0, stream(), param.data<T>(), grad.data<T>(), exp_avg.data<T>(),
                exp_avg_sq.data<T>(), ix, adam_coefs_as<T>(coefs), n);
}

}  // namespace

void adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamCoefs& c) {
  if (param.dtype() == DType::Float32) adam_launch<float>(param, grad, exp_avg, exp_avg_sq, c);
  else if (param.dtype() == DType::Float64) adam_launch<double>(param, grad, exp_avg, exp_avg_sq, c);
  else throw Error(detail::cat("adam_step: expected a float32 or float64 param, found ", dtype_name(param.dtype())));
}

}  // namespace cortex::kernels::CORTEX_BACKEND
