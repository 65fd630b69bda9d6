// CUDA kernels for tests/test_simt.cpp: the same source is built by the host compiler for the
// emulated device (the tests) and by nvcc (tests/simt_kernels.cu, compiled in CUDA builds to
// prove it stays valid CUDA). Pointers are device pointers on a GPU, host pointers on the
// emulated device. The last four kernels are broken on purpose; the tests show each is caught.
#pragma once
#include "kernels/cuda/cuda_compat.h"

namespace simt_test {

// ---- warp and block reduction helpers
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, offset);
  return v;
}

// Sum of a block's values, valid in thread 0. blockDim.x must be a multiple of 32 (full masks).
__device__ float block_sum(float v) {
  __shared__ float warp_sums[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  const unsigned nwarps = blockDim.x / 32;
  v = threadIdx.x < nwarps ? warp_sums[threadIdx.x] : 0.0f;
  if (warp == 0) v = warp_sum(v);
  __syncthreads();  // warp_sums is reused by the next call
  return v;
}

// x (n) → partial[blockIdx.x] (each block's sum, deterministic) and *total (atomic, order varies).
__global__ void reduce_sum(const float* __restrict__ x, int n, float* __restrict__ partial, float* __restrict__ total) {
  float v = 0.0f;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
  v = block_sum(v);
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = v;
    atomicAdd(total, v);
  }
}

// ---- SGEMM with shared-memory tiles: C (M,N) = A (M,K) B (K,N), row-major. Block (8, 32): each
// thread owns 4 adjacent columns of one row of the 32x32 tile and loads 4 floats of each input
// tile, as one float4 when the 4 are in range and 16-byte aligned, else one by one (zero padded).
constexpr int kTile = 32;

__device__ __forceinline__ void load4(const float* __restrict__ src, int rows, int cols, int r, int c, float* dst) {
  const bool inside = r < rows && c + 3 < cols;
  const float* p = src + static_cast<long>(r) * cols + c;
  if (inside && (reinterpret_cast<unsigned long>(p) % 16) == 0) {
    const float4 q = *reinterpret_cast<const float4*>(p);
    dst[0] = q.x, dst[1] = q.y, dst[2] = q.z, dst[3] = q.w;
  } else {
    for (int j = 0; j < 4; ++j) dst[j] = (r < rows && c + j < cols) ? p[j] : 0.0f;
  }
}

__global__ void sgemm_tiled(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C, int M,
                            int N, int K) {
  __shared__ float As[kTile][kTile + 1];
  __shared__ float Bs[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;  // tx: 4-column group, ty: row in the tile
  const int row = blockIdx.y * kTile + ty, col = blockIdx.x * kTile + tx * 4;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int k0 = 0; k0 < K; k0 += kTile) {
    load4(A, M, K, row, k0 + tx * 4, &As[ty][tx * 4]);
    load4(B, K, N, k0 + ty, col, &Bs[ty][tx * 4]);
    __syncthreads();
    for (int k = 0; k < kTile; ++k) {
      const float a = As[ty][k];
      for (int j = 0; j < 4; ++j) acc[j] = fmaf(a, Bs[k][tx * 4 + j], acc[j]);
    }
    __syncthreads();
  }
  for (int j = 0; j < 4; ++j)
    if (row < M && col + j < N) C[static_cast<long>(row) * N + col + j] = acc[j];
}

// ---- softmax over the rows of x (rows, cols), one block per row. The row is cached in dynamic
// shared memory (cols floats) followed by one partial sum per warp. The maximum goes through a
// float atomicMax (CUDA has none) made of the integer ones: non-negative floats order like their
// bits as int, negative ones in reverse like their bits as unsigned (not for NaN).
__device__ void atomic_max_float(float* addr, float v) {
  if (v >= 0.0f) atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v));
  else atomicMin(reinterpret_cast<unsigned*>(addr), __float_as_uint(v));
}

__global__ void softmax_rows(const float* __restrict__ x, float* __restrict__ y, int cols) {
  CORTEX_DYNAMIC_SMEM(float, smem);
  float* row = smem;
  float* warp_sums = smem + cols;
  __shared__ float row_max;
  const float* xr = x + static_cast<long>(blockIdx.x) * cols;
  if (threadIdx.x == 0) row_max = -INFINITY;
  __syncthreads();
  float m = -INFINITY;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    row[i] = xr[i];
    m = fmaxf(m, row[i]);
  }
  atomic_max_float(&row_max, m);
  __syncthreads();
  const float mx = row_max;
  float s = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    row[i] = __expf(row[i] - mx);
    s += row[i];
  }
  s = warp_sum(s);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = s;
  __syncthreads();
  float total = 0.0f;
  for (unsigned w = 0; w < blockDim.x / 32; ++w) total += warp_sums[w];  // same order in every thread
  const float inv = __fdividef(1.0f, total);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) y[static_cast<long>(blockIdx.x) * cols + i] = row[i] * inv;
}

// ---- warp operations at their edges. out has 11 ints per thread.
__global__ void shuffle_edges(int* out) {
  const int t = threadIdx.x, lane = t % 32;
  int* o = out + 11 * t;
  const int v = 100 + t;
  o[0] = __shfl_up_sync(0xFFFFFFFFu, v, 3);           // lanes 0-2 keep their own value
  o[1] = __shfl_down_sync(0xFFFFFFFFu, v, 5);         // lanes 27-31 keep theirs
  o[2] = __shfl_xor_sync(0xFFFFFFFFu, v, 7);
  o[3] = __shfl_sync(0xFFFFFFFFu, v, (lane * 7) % 32);
  o[4] = __shfl_sync(0xFFFFFFFFu, v, 3, 8);           // lane 3 of each 8-lane segment
  o[5] = __shfl_up_sync(0xFFFFFFFFu, v, 2, 8);        // segment-relative lanes 0-1 keep theirs
  o[6] = __shfl_down_sync(0xFFFFFFFFu, v, 2, 8);      // segment-relative lanes 6-7 keep theirs
  o[7] = static_cast<int>(__ballot_sync(0xFFFFFFFFu, lane % 3 == 0));
  o[8] = __any_sync(0xFFFFFFFFu, lane == 31);
  o[9] = __all_sync(0xFFFFFFFFu, lane < 31);
  __syncwarp();
  // Half-warp groups with their own masks, one after the other.
  const unsigned half = lane < 16 ? 0x0000FFFFu : 0xFFFF0000u;
  o[10] = __shfl_xor_sync(half, v, 1);
}

// Exited threads count as arrived at __syncthreads (sm_70+): the tail of the last block leaves
// early and the rest still meets at the barrier.
__global__ void early_exit_barrier(const float* __restrict__ x, int n, float* __restrict__ y) {
  __shared__ float s[256];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  s[threadIdx.x] = x[i];
  __syncthreads();
  const int partner = threadIdx.x ^ 1;
  const int j = blockIdx.x * blockDim.x + partner;
  y[i] = s[threadIdx.x] + (j < n ? s[partner] : 0.0f);
}

// Atomics from every thread of every block: an increment through an atomicCAS loop (no plain
// read of the shared counter, which would race), integer max/min, exchange, float and double adds.
// out: [cas_count, max, min, exch_seen, exch_last], sums: [float, double].
__global__ void atomics_mix(int* out, float* fsum, double* dsum) {
  const int id = blockIdx.x * blockDim.x + threadIdx.x;
  int assumed = 0, old;
  while ((old = atomicCAS(&out[0], assumed, assumed + 1)) != assumed) assumed = old;
  atomicMax(&out[1], id * 7 % 1000);
  atomicMin(&out[2], 1000 - id);
  atomicExch(&out[4], id);
  atomicAdd(&out[3], 1);
  atomicAdd(fsum, 0.5f);
  atomicAdd(dsum, static_cast<double>(id));
}

// Barriers that vote: out has 4 ints per thread (count, and, or, or of all zeros).
__global__ void barrier_votes(const int* __restrict__ flags, int* __restrict__ out) {
  const int f = flags[threadIdx.x];
  const int count = __syncthreads_count(f);
  const int all = __syncthreads_and(f);
  const int any = __syncthreads_or(f);
  const int none = __syncthreads_or(0);
  int* o = out + 4 * threadIdx.x;
  o[0] = count, o[1] = all != 0, o[2] = any != 0, o[3] = none != 0;
}

// Thread 0 leaves before the barrier the others meet: the emulated device starts on its fast
// path (thread 0 met no barrier) and must fall back when thread 1 reaches one.
__global__ void late_barrier(const float* __restrict__ x, float* __restrict__ y) {
  __shared__ float s[64];
  if (threadIdx.x == 0) {
    y[0] = -1.0f;
    return;
  }
  s[threadIdx.x] = x[threadIdx.x];
  __syncthreads();
  y[threadIdx.x] = s[threadIdx.x] + s[threadIdx.x % (blockDim.x - 1) + 1];
}

// Elementwise: no barrier, so the emulated device runs it on the fast path.
__global__ void axpy(float a, const float* __restrict__ x, float* __restrict__ y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = fmaf(a, x[i], y[i]);
}

// Reads dynamic shared memory before writing it: shows the 0xFF fill (NaN for floats).
__global__ void read_uninitialised_smem(float* out) {
  CORTEX_DYNAMIC_SMEM(float, smem);
  out[threadIdx.x] = smem[threadIdx.x];
}

// ---- broken on purpose

// 1. A tree reduction with the barrier inside its loop missing: thread t reads s[t + stride]
// while thread t + stride may still be adding into it. The result depends on the schedule order,
// and TSan reports the race.
__global__ void broken_tree_sum_missing_barrier(const float* __restrict__ x, float* __restrict__ out) {
  __shared__ float s[256];
  const unsigned t = threadIdx.x;
  s[t] = x[t];
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride >>= 1) {
    if (t < stride) s[t] += s[t + stride];
    // missing: __syncthreads();
  }
  if (t == 0) *out = s[0];
}

// 2. Reads one float past the end of the dynamic shared memory (launched with blockDim.x floats).
__global__ void broken_smem_out_of_bounds(float* out) {
  CORTEX_DYNAMIC_SMEM(float, smem);
  smem[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = smem[threadIdx.x + 1];
}

// 2b. The same with a static __shared__ array (UBSan's bounds check sees its size).
__global__ void broken_static_smem_out_of_bounds(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x + 1];
}

// 3. A divergent barrier: half of the block waits at one __syncthreads, half at another.
constexpr int kDivergentBarrierLine = __LINE__ + 4;  // the first; the second is 3 lines below
__global__ void broken_divergent_barrier(float* out) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = 1.0f;
    __syncthreads();
  } else {
    out[threadIdx.x] = 2.0f;
    __syncthreads();
  }
}

// 4. Deadlock: warp 0 waits in a shuffle for a lane that waits at __syncthreads.
constexpr int kDeadlockBarrierLine = __LINE__ + 3;
__global__ void broken_deadlock(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x == 0) __syncthreads();
  else
    v = __shfl_xor_sync(0xFFFFFFFFu, v, 1);
  out[threadIdx.x] = v;
}

// 5. A shuffle whose mask names lanes that have exited.
__global__ void broken_mask_names_exited_lane(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_sync(0xFFFFFFFFu, static_cast<int>(threadIdx.x), 0);
}

// 6. A shuffle reading a lane outside its mask.
constexpr int kOutsideMaskLine = __LINE__ + 3;
__global__ void broken_shuffle_outside_mask(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_sync(0x0000FFFFu, static_cast<int>(threadIdx.x), 20);
}

}  // namespace simt_test
