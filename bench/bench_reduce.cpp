// Reductions of a (8192, 1024) float32 matrix, the two layouts that matter: over the last dim
// (rows: a mean over features) and over dim 0 (columns: a mean over images), each beside a direct
// Eigen call in this binary (rowwise()/colwise() sum, which Eigen vectorises; OpenMP is not used
// by Eigen here, so the ratio also shows what the kernel's threading buys). Bytes = input read.
//   OMP_NUM_THREADS=2 ./bench_reduce --benchmark_min_time=0.3
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <Eigen/Core>

#include "kernels/reduce.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace cortex;

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
constexpr int64_t kRows = 8192, kCols = 1024;

Tensor input() {
  Generator g(7);
  return randn({kRows, kCols}, g, 0.0, 1.0, DType::Float32);
}
void bytes(benchmark::State& st) {
  st.SetBytesProcessed(st.iterations() * kRows * kCols * static_cast<int64_t>(sizeof(float)));
}

void BM_sum_lastdim_cortex(benchmark::State& st) {
  const Tensor x = input();
  for (auto _ : st) {
    Tensor y = kernels::reduce(kernels::Reduce::Sum, x, {1});
    benchmark::DoNotOptimize(y.raw_data());
  }
  bytes(st);
}

void BM_sum_lastdim_eigen(benchmark::State& st) {
  const Tensor x = input();
  Eigen::Map<const RowMat> m(x.data<float>(), kRows, kCols);
  for (auto _ : st) {
    Eigen::VectorXf y = m.rowwise().sum();
    benchmark::DoNotOptimize(y.data());
  }
  bytes(st);
}

void BM_sum_dim0_cortex(benchmark::State& st) {
  const Tensor x = input();
  for (auto _ : st) {
    Tensor y = kernels::reduce(kernels::Reduce::Sum, x, {0});
    benchmark::DoNotOptimize(y.raw_data());
  }
  bytes(st);
}

void BM_sum_dim0_eigen(benchmark::State& st) {
  const Tensor x = input();
  Eigen::Map<const RowMat> m(x.data<float>(), kRows, kCols);
  for (auto _ : st) {
    Eigen::RowVectorXf y = m.colwise().sum();
    benchmark::DoNotOptimize(y.data());
  }
  bytes(st);
}

}  // namespace

BENCHMARK(BM_sum_lastdim_cortex)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_sum_lastdim_eigen)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_sum_dim0_cortex)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_sum_dim0_eigen)->Unit(benchmark::kMillisecond)->UseRealTime();

CORTEX_BENCHMARK_MAIN();
