// softmax over the last dim of (4096, 1000) and layer_norm over the last dim of (8192, 768),
// float32, each beside two straightforward peers in this binary: a plain loop (std::exp, float
// sums) and an Eigen-array expression per block of rows, both split over rows with OpenMP like the
// kernel. Every variant allocates its output per call, as the kernel does. Bytes = read + write.
//   OMP_NUM_THREADS=2 ./bench_nn --benchmark_min_time=0.3
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

// GCC 12's false -Wmaybe-uninitialized inside its AVX-512 intrinsics when Eigen's exp is inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/nn.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace cortex;

namespace {

using RowArr = Eigen::Array<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int64_t kSoftRows = 4096, kSoftD = 1000, kLnRows = 8192, kLnD = 768;
constexpr int64_t kBlock = 64;  // rows per Eigen block

Tensor input(int64_t rows, int64_t D, uint64_t seed) {
  Generator g(seed);
  return randn({rows, D}, g, 0.0, 2.0, DType::Float32);
}
void bytes(benchmark::State& st, int64_t rows, int64_t D) {
  st.SetBytesProcessed(st.iterations() * 2 * rows * D * static_cast<int64_t>(sizeof(float)));
}

// ---------------------------------------------------------------- softmax

void BM_Softmax_Cortex(benchmark::State& st) {
  const Tensor x = input(kSoftRows, kSoftD, 1);
  for (auto _ : st) {
    Tensor y = kernels::softmax(x, -1);
    benchmark::DoNotOptimize(y.raw_data());
  }
  bytes(st, kSoftRows, kSoftD);
}

void BM_Softmax_PlainLoop(benchmark::State& st) {
  const Tensor x = input(kSoftRows, kSoftD, 1);
  const float* xp = x.data<float>();
  for (auto _ : st) {
    RowArr y(kSoftRows, kSoftD);
    float* yp = y.data();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < kSoftRows; ++r) {
      const float* a = xp + r * kSoftD;
      float* b = yp + r * kSoftD;
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < kSoftD; ++i) m = std::max(m, a[i]);
      float s = 0;
      for (int64_t i = 0; i < kSoftD; ++i) s += (b[i] = std::exp(a[i] - m));
      const float inv = 1.0f / s;
      for (int64_t i = 0; i < kSoftD; ++i) b[i] *= inv;
    }
    benchmark::DoNotOptimize(y.data());
  }
  bytes(st, kSoftRows, kSoftD);
}

void BM_Softmax_EigenArray(benchmark::State& st) {
  const Tensor x = input(kSoftRows, kSoftD, 1);
  const Eigen::Map<const RowArr> X(x.data<float>(), kSoftRows, kSoftD);
  for (auto _ : st) {
    RowArr y(kSoftRows, kSoftD);
#pragma omp parallel for schedule(static)
    for (int64_t r0 = 0; r0 < kSoftRows; r0 += kBlock) {
      const int64_t n = std::min(kBlock, kSoftRows - r0);
      auto xb = X.middleRows(r0, n);
      auto yb = y.middleRows(r0, n);
      yb = (xb.colwise() - xb.rowwise().maxCoeff()).exp();
      yb.colwise() /= yb.rowwise().sum();
    }
    benchmark::DoNotOptimize(y.data());
  }
  bytes(st, kSoftRows, kSoftD);
}

// ---------------------------------------------------------------- layer_norm

void BM_LayerNorm_Cortex(benchmark::State& st) {
  const Tensor x = input(kLnRows, kLnD, 2);
  Generator g(3);
  const Tensor w = randn({kLnD}, g), b = randn({kLnD}, g);
  for (auto _ : st) {
    kernels::LayerNorm r = kernels::layer_norm(x, 1, w, b);
    benchmark::DoNotOptimize(r.y.raw_data());
  }
  bytes(st, kLnRows, kLnD);
}

void BM_LayerNorm_PlainLoop(benchmark::State& st) {
  const Tensor x = input(kLnRows, kLnD, 2);
  Generator g(3);
  const Tensor w = randn({kLnD}, g), b = randn({kLnD}, g);
  const float *xp = x.data<float>(), *wp = w.data<float>(), *bp = b.data<float>();
  for (auto _ : st) {
    RowArr y(kLnRows, kLnD);
    Eigen::ArrayXf mean(kLnRows), rstd(kLnRows);
    float* yp = y.data();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < kLnRows; ++r) {
      const float* a = xp + r * kLnD;
      float s = 0;
      for (int64_t i = 0; i < kLnD; ++i) s += a[i];
      const float m = s / kLnD;
      float v = 0;
      for (int64_t i = 0; i < kLnD; ++i) v += (a[i] - m) * (a[i] - m);
      const float q = 1.0f / std::sqrt(v / kLnD + 1e-5f);
      mean[r] = m, rstd[r] = q;
      for (int64_t i = 0; i < kLnD; ++i) yp[r * kLnD + i] = (a[i] - m) * q * wp[i] + bp[i];
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(rstd.data());
  }
  bytes(st, kLnRows, kLnD);
}

void BM_LayerNorm_EigenArray(benchmark::State& st) {
  const Tensor x = input(kLnRows, kLnD, 2);
  Generator g(3);
  const Tensor w = randn({kLnD}, g), b = randn({kLnD}, g);
  const Eigen::Map<const RowArr> X(x.data<float>(), kLnRows, kLnD);
  const Eigen::Map<const Eigen::Array<float, 1, Eigen::Dynamic>> W(w.data<float>(), kLnD), B(b.data<float>(), kLnD);
  for (auto _ : st) {
    RowArr y(kLnRows, kLnD);
    Eigen::ArrayXf mean(kLnRows), rstd(kLnRows);
#pragma omp parallel for schedule(static)
    for (int64_t r0 = 0; r0 < kLnRows; r0 += kBlock) {
      const int64_t n = std::min(kBlock, kLnRows - r0);
      auto xb = X.middleRows(r0, n);
      auto yb = y.middleRows(r0, n);
      mean.segment(r0, n) = xb.rowwise().mean();
      yb = xb.colwise() - mean.segment(r0, n);
      rstd.segment(r0, n) = (yb.square().rowwise().mean() + 1e-5f).rsqrt();
      yb = (yb.colwise() * rstd.segment(r0, n)).rowwise() * W;
      yb.rowwise() += B;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(rstd.data());
  }
  bytes(st, kLnRows, kLnD);
}

}  // namespace

BENCHMARK(BM_Softmax_Cortex)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Softmax_PlainLoop)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Softmax_EigenArray)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LayerNorm_Cortex)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LayerNorm_PlainLoop)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LayerNorm_EigenArray)->Unit(benchmark::kMillisecond)->UseRealTime();

CORTEX_BENCHMARK_MAIN();
