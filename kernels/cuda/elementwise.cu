// Elementwise kernels on CUDA and the emulated CUDA device (kernels/cuda/common.cuh says how one
// source serves both). One thread per output element; strided and broadcast operands are read
// through an Indexer, so no operand is copied to contiguous memory first.
#include "kernels/elementwise.h"
// (last: see common.cuh)
#include "kernels/cuda/common.cuh"

namespace cortex::kernels::CORTEX_BACKEND {
namespace {

// out[i] = isnan(x[i]): out is contiguous, x any strides.
template <class T>
__global__ void isnan_kernel(bool* __restrict__ out, const T* __restrict__ x, Indexer ix, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const T v = x[ix.offset(0, i)];
  out[i] = v != v;
}

}  // namespace

Tensor isnan(const Tensor& x) {
  Tensor out = empty(x.shape(), DType::Bool, x.device());
  const int64_t n = x.numel();
  if (n == 0) return out;
  if (!is_floating(x.dtype()) || x.dtype() == DType::BFloat16 || x.dtype() == DType::Float16) {
    // integers and bools are never NaN; the half types go through float32 (their NaNs survive)
    if (!is_floating(x.dtype())) return out.fill_(0.0);
    return isnan(x.to(DType::Float32));
  }
  const Indexer ix = make_indexer<1>(x.shape(), {&x});
  if (x.dtype() == DType::Float32)
    CORTEX_LAUNCH(isnan_kernel<float>, blocks_for(n), kBlock, 0, stream(), out.data<bool>(),
                  static_cast<const float*>(x.raw_data()), ix, n);
  else
    CORTEX_LAUNCH(isnan_kernel<double>, blocks_for(n), kBlock, 0, stream(), out.data<bool>(),
                  static_cast<const double*>(x.raw_data()), ix, n);
  return out;
}

}  // namespace cortex::kernels::CORTEX_BACKEND
