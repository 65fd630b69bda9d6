// What the reduction kernels (kernels/cuda/reduce.cu) and the softmax/normalisation kernels
// (kernels/cuda/nn.cu) share: offsets of strided operands, warp and block folds with a fixed
// combination order, and the row geometry of a reduction.
//
// Determinism: every fold below combines partial results in an order fixed by the shape alone
// (lane order in a shfl_down tree, then warp order in a block), never by which thread or block
// happens to run first, and no float atomics are used. So a kernel gives bit-identical results in
// every schedule order of the emulated device and on every run on a GPU.
//
// Include after the project headers and after kernels/cuda/common.cuh (which must come last of
// the headers that are not CUDA sources).
#pragma once

// Unrolls a loop under nvcc; the host compiler decides for itself.
#ifdef __CUDACC__
#define CORTEX_UNROLL _Pragma("unroll")
#else
#define CORTEX_UNROLL
#endif

namespace cortex::kernels::CORTEX_BACKEND {
namespace red {

constexpr unsigned kFull = 0xFFFFFFFFu;
constexpr unsigned kWarp = 32;
// Threads of a block when one block folds one row (long rows), and the warps it holds.
constexpr unsigned kRowBlock = 256;
constexpr unsigned kRowWarps = kRowBlock / kWarp;
// Warps of a block when one warp folds one row (short rows).
constexpr unsigned kWarpsPerBlock = 4;
// Rows longer than this are folded by a whole block instead of one warp.
constexpr int64_t kWarpRowMax = 1024;
// Rows of at most this many elements are folded by one thread (when there are a warp's worth).
constexpr int64_t kShortRow = 16;

// Offset of element i (row-major over ix.sizes) in operand k. The loop is unrolled over the fixed
// kMaxDims so that nvcc reads the Indexer's arrays with constant indices (kernel parameters in
// the constant bank, no local-memory copy of the struct).
__device__ __forceinline__ int64_t offset(const Indexer& ix, int k, int64_t i) {
  if (ix.ndim == 1) return i * ix.strides[k][0];
  int64_t off = 0;
CORTEX_UNROLL
  for (int d = kMaxDims - 1; d >= 0; --d) {
    if (d < ix.ndim) {
      const int64_t s = ix.sizes[d];
      off += (i % s) * ix.strides[k][d];
      i /= s;
    }
  }
  return off;
}

// Warp shuffles of the accumulator types: CUDA has no 1- or 2-byte shuffle, so those go as int.
template <class A>
__device__ __forceinline__ A shfl_down(A v, unsigned delta) {
  if constexpr (sizeof(A) < 4)
    return static_cast<A>(__shfl_down_sync(kFull, static_cast<int>(v), delta));
  else
    return __shfl_down_sync(kFull, v, delta);
}

// Folds one value per lane of a full warp; lane 0 gets ((v0 + v16) + (v8 + v24)) + ... (a fixed
// tree), the other lanes partial folds.
template <class Op, class A>
__device__ __forceinline__ A warp_fold(const Op& op, A v) {
CORTEX_UNROLL
  for (unsigned d = kWarp / 2; d > 0; d /= 2) v = op.comb(v, shfl_down(v, d));
  return v;
}

// Folds one value per thread of a block of kRowBlock threads; every thread gets the result. The
// warps' results are folded by warp 0 in warp order. `sm` holds kRowWarps + 1 values.
template <class Op, class A>
__device__ __forceinline__ A block_fold(const Op& op, A v, A* sm) {
  const unsigned lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_fold(op, v);
  if (lane == 0) sm[warp] = v;
  __syncthreads();
  if (warp == 0) {
    A w = lane < kRowWarps ? sm[lane] : op.init();
    w = warp_fold(op, w);
    if (lane == 0) sm[kRowWarps] = w;
  }
  __syncthreads();
  const A r = sm[kRowWarps];
  // The next fold of this block may overwrite sm only after every thread has read the result.
  __syncthreads();
  return r;
}

}  // namespace red
}  // namespace cortex::kernels::CORTEX_BACKEND
