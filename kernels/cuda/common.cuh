// What every CUDA kernel source (kernels/cuda/<family>.cu) shares. Each source is compiled twice
// (../shared/SIMT.md): by nvcc into namespace cortex::kernels::cuda for real GPUs, and by the host
// compiler into cortex::kernels::emu for the emulated CUDA device (kernels/CMakeLists.txt makes a
// one-line wrapper that includes the .cu). Write the host-side launchers inside
// `namespace cortex::kernels::CORTEX_BACKEND { ... }` with the signature of the op's line in
// kernels/ops.def, and add CORTEX_CUDA_OP(family, op) to kernels/cuda/ops.def.
//
// Include order: standard and project headers first, this header last. On the host,
// cuda_compat.h defines CUDA's keywords as macros (__shared__, threadIdx, ...), which must not
// reach the standard library's headers.
#pragma once
#include <array>
#include <cstdint>

#include "tensor/strided.h"
#include "tensor/tensor.h"
// (last)
#include "kernels/cuda/cuda_compat.h"

#ifdef __CUDACC__
#define CORTEX_BACKEND cuda
#else
#define CORTEX_BACKEND emu
#endif

namespace cortex::kernels::CORTEX_BACKEND {

// Threads a block for the one-element-per-thread kernels (elementwise, copies).
constexpr unsigned kBlock = 256;
// Operands and dims an Indexer carries by value into a kernel.
constexpr int kMaxOperands = 4;
constexpr int kMaxDims = 8;

// Blocks of `threads` that cover n elements (at least 1: a grid dimension of 0 is a launch error;
// kernels test i < n).
inline unsigned blocks_for(int64_t n, unsigned threads = kBlock) {
  const int64_t b = (n + threads - 1) / threads;
  CORTEX_CHECK(b <= 2147483647, "CUDA kernel: ", n, " elements need more blocks than a grid holds");
  return static_cast<unsigned>(b < 1 ? 1 : b);
}

// |v| of a stride (host side: the launchers order dims by it).
inline int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

// Maps the linear index of an element of `shape` (row-major) to the element offsets of up to
// kMaxOperands strided operands viewed at that shape (broadcast operands have stride 0). Dims that
// are contiguous in every operand are merged first (tensor/strided.h's plan), so a contiguous
// operation is one dim and the division loop runs once.
struct Indexer {
  int ndim = 1;
  int nops = 0;
  int64_t sizes[kMaxDims] = {1};
  int64_t strides[kMaxOperands][kMaxDims] = {};
  __host__ __device__ __forceinline__ int64_t offset(int k, int64_t i) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t s = sizes[d];
      off += (i % s) * strides[k][d];
      i /= s;
    }
    return off;
  }
};

// From the operands' strides at `shape` (broadcast dims already 0).
template <size_t N>
Indexer make_indexer(const Shape& shape, const std::array<Shape, N>& strides) {
  static_assert(N <= kMaxOperands, "make_indexer: too many operands");
  const StridedPlan<N> p = make_plan<N>(shape, strides);
  CORTEX_CHECK(static_cast<int>(p.shape.size()) <= kMaxDims, "CUDA kernel: at most ", kMaxDims,
               " non-mergeable dims, found ", p.shape.size());
  Indexer ix;
  ix.ndim = static_cast<int>(p.shape.size());
  ix.nops = static_cast<int>(N);
  for (int d = 0; d < ix.ndim; ++d) {
    ix.sizes[d] = p.shape[d] == 0 ? 1 : p.shape[d];
    for (size_t k = 0; k < N; ++k) ix.strides[k][d] = p.strides[k][d];
  }
  return ix;
}

// From the operands themselves; an operand of another shape must broadcast to `shape` (expand
// checks it and names both).
template <size_t N>
Indexer make_indexer(const Shape& shape, const std::array<const Tensor*, N>& ops) {
  std::array<Shape, N> st;
  for (size_t k = 0; k < N; ++k) {
    const Tensor& t = *ops[k];
    st[k] = t.shape() == shape ? t.strides() : t.expand(shape).strides();
  }
  return make_indexer<N>(shape, st);
}

// The stream kernels run on (the default stream; the emulated device runs every launch at once).
inline Stream stream() { return Stream{}; }

}  // namespace cortex::kernels::CORTEX_BACKEND
