// Costs of the emulated CUDA device's SIMT runtime (kernels/cuda/simt/): what one __syncthreads,
// one warp shuffle and one launch cost per CUDA thread, and a 2^20-element reduction emulated
// beside the plain C++ loop. Emulator figures only: they say nothing about a GPU.
//   ./bench_simt --benchmark_min_time=0.3
// The per_thread_op counter is the time of one operation of one CUDA thread (seconds, SI suffix).
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <numeric>
#include <vector>

#include "kernels/cuda/cuda_compat.h"

namespace {

constexpr int kOps = 64;  // barriers or shuffles per thread per launch

__global__ void barriers(float* out) {
  __shared__ float s[1024];
  float v = static_cast<float>(threadIdx.x);
  for (int i = 0; i < kOps; ++i) {
    s[threadIdx.x] = v;
    __syncthreads();
    v += s[(threadIdx.x + 1) % blockDim.x];
  }
  out[threadIdx.x] = v;
}

__global__ void shuffles(float* out) {
  float v = static_cast<float>(threadIdx.x);
  for (int i = 0; i < kOps; ++i) v += __shfl_xor_sync(0xFFFFFFFFu, v, i & 31);
  out[threadIdx.x] = v;
}

__global__ void empty_kernel(float* out) {
  if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = 1.0f;
}

__global__ void reduce_sum(const float* __restrict__ x, int n, float* __restrict__ total) {
  __shared__ float warp_sums[32];
  float v = 0.0f;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) v += x[i];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, o);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    v = threadIdx.x < blockDim.x / 32 ? warp_sums[threadIdx.x] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xFFFFFFFFu, v, o);
    if (threadIdx.x == 0) atomicAdd(total, v);
  }
}

void per_thread_op(benchmark::State& st, double ops_per_iteration) {
  st.counters["per_thread_op"] =
      benchmark::Counter(ops_per_iteration, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_syncthreads(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0));
  std::vector<float> out(threads);
  for (auto _ : st) CORTEX_LAUNCH(barriers, dim3(1), dim3(threads), 0, nullptr, out.data());
  per_thread_op(st, static_cast<double>(kOps) * threads);
}

void BM_shuffle(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0));
  std::vector<float> out(threads);
  for (auto _ : st) CORTEX_LAUNCH(shuffles, dim3(1), dim3(threads), 0, nullptr, out.data());
  per_thread_op(st, static_cast<double>(kOps) * threads);
}

// range(0) blocks of range(1) threads, no barrier: the fast path.
void BM_launch(benchmark::State& st) {
  const int blocks = static_cast<int>(st.range(0)), threads = static_cast<int>(st.range(1));
  std::vector<float> out(1);
  for (auto _ : st) CORTEX_LAUNCH(empty_kernel, dim3(blocks), dim3(threads), 0, nullptr, out.data());
  per_thread_op(st, static_cast<double>(blocks) * threads);
}

constexpr int kReduceN = 1 << 20;

// range(0) blocks of 256 threads: the emulated cost follows the number of thread-sync points
// (about 6 a thread here), not the number of elements.
void BM_reduce_2_20_emulated(benchmark::State& st) {
  const int blocks = static_cast<int>(st.range(0));
  std::vector<float> x(kReduceN, 1.0f);
  for (auto _ : st) {
    float total = 0.0f;
    CORTEX_LAUNCH(reduce_sum, dim3(blocks), dim3(256), 0, nullptr, x.data(), kReduceN, &total);
    benchmark::DoNotOptimize(total);
  }
  st.SetBytesProcessed(st.iterations() * kReduceN * static_cast<int64_t>(sizeof(float)));
}

void BM_reduce_2_20_plain_cpp(benchmark::State& st) {
  std::vector<float> x(kReduceN, 1.0f);
  for (auto _ : st) {
    float total = 0.0f;
    for (float v : x) total += v;
    benchmark::DoNotOptimize(total);
  }
  st.SetBytesProcessed(st.iterations() * kReduceN * static_cast<int64_t>(sizeof(float)));
}

BENCHMARK(BM_syncthreads)->Arg(32)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_shuffle)->Arg(32)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_launch)->Args({1, 1})->Args({1, 256})->Args({64, 256})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_reduce_2_20_emulated)->Arg(256)->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_reduce_2_20_plain_cpp)->Unit(benchmark::kMillisecond);

}  // namespace

CORTEX_BENCHMARK_MAIN();
