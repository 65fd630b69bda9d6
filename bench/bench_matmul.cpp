// Matmul benchmarks, each beside its plain Eigen peer in this binary (same threads, same data):
//   1024^3 float32: kernels::matmul vs Eigen Map * Map into a preallocated Map (target >= 80%);
//   the same with a transposed-view operand (read in place, no copy);
//   256 batched 64^3 products (one per thread) vs a loop of Eigen GEMMs;
//   linear (4096, 1024) x (1024, 1024)^T + b vs Eigen with the bias broadcast.
// Each peer is checked against the kernel once before timing; a mismatch fails the benchmark.
// Run: OMP_NUM_THREADS=2 bench_matmul --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized inside Eigen (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>
#include <cmath>

#include "kernels/matmul.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace cortex;

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapR = Eigen::Map<RowMat>;
using CMapR = Eigen::Map<const RowMat>;

Tensor rnd(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g, 0.0, 1.0, DType::Float32);
}

void set_flops(benchmark::State& st, double flops) {
  st.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

// max |a - b| / max |b| over two float32 buffers.
bool agree(const float* a, const float* b, int64_t n, double tol = 1e-4) {
  double d = 0, m = 0;
  for (int64_t i = 0; i < n; ++i) {
    d = std::max(d, std::abs(double(a[i]) - double(b[i])));
    m = std::max(m, std::abs(double(b[i])));
  }
  return d <= tol * std::max(m, 1.0);
}

constexpr int64_t kN = 1024;

void BM_matmul_cortex(benchmark::State& st) {
  const Tensor a = rnd({kN, kN}, 1), b = rnd({kN, kN}, 2);
  for (auto _ : st) benchmark::DoNotOptimize(kernels::matmul(a, b).raw_data());
  set_flops(st, 2.0 * kN * kN * kN);
}

void BM_matmul_eigen(benchmark::State& st) {
  const Tensor a = rnd({kN, kN}, 1), b = rnd({kN, kN}, 2);
  Tensor c = empty({kN, kN});
  CMapR A(a.data<float>(), kN, kN), B(b.data<float>(), kN, kN);
  MapR C(c.data<float>(), kN, kN);
  C.noalias() = A * B;
  if (!agree(kernels::matmul(a, b).data<float>(), c.data<float>(), kN * kN)) st.SkipWithError("peer mismatch");
  for (auto _ : st) {
    C.noalias() = A * B;
    benchmark::DoNotOptimize(C.data());
  }
  set_flops(st, 2.0 * kN * kN * kN);
}

void BM_matmul_cortex_transposed_b(benchmark::State& st) {
  const Tensor a = rnd({kN, kN}, 1), bt = rnd({kN, kN}, 2).t();  // column-major view
  for (auto _ : st) benchmark::DoNotOptimize(kernels::matmul(a, bt).raw_data());
  set_flops(st, 2.0 * kN * kN * kN);
}

void BM_matmul_eigen_transposed_b(benchmark::State& st) {
  const Tensor a = rnd({kN, kN}, 1), b = rnd({kN, kN}, 2);
  Tensor c = empty({kN, kN});
  CMapR A(a.data<float>(), kN, kN), B(b.data<float>(), kN, kN);
  MapR C(c.data<float>(), kN, kN);
  C.noalias() = A * B.transpose();
  if (!agree(kernels::matmul(a, b.t()).data<float>(), c.data<float>(), kN * kN)) st.SkipWithError("peer mismatch");
  for (auto _ : st) {
    C.noalias() = A * B.transpose();
    benchmark::DoNotOptimize(C.data());
  }
  set_flops(st, 2.0 * kN * kN * kN);
}

constexpr int64_t kB = 256, kS = 64;

void BM_bmm_small_cortex(benchmark::State& st) {
  const Tensor a = rnd({kB, kS, kS}, 3), b = rnd({kB, kS, kS}, 4);
  for (auto _ : st) benchmark::DoNotOptimize(kernels::matmul(a, b).raw_data());
  set_flops(st, 2.0 * kB * kS * kS * kS);
}

void BM_bmm_small_eigen(benchmark::State& st) {
  const Tensor a = rnd({kB, kS, kS}, 3), b = rnd({kB, kS, kS}, 4);
  Tensor c = empty({kB, kS, kS});
  auto run = [&] {
    for (int64_t i = 0; i < kB; ++i) {
      MapR C(c.data<float>() + i * kS * kS, kS, kS);
      C.noalias() = CMapR(a.data<float>() + i * kS * kS, kS, kS) * CMapR(b.data<float>() + i * kS * kS, kS, kS);
    }
  };
  run();
  if (!agree(kernels::matmul(a, b).data<float>(), c.data<float>(), kB * kS * kS)) st.SkipWithError("peer mismatch");
  for (auto _ : st) {
    run();
    benchmark::DoNotOptimize(c.raw_data());
  }
  set_flops(st, 2.0 * kB * kS * kS * kS);
}

constexpr int64_t kRows = 4096, kIn = 1024, kOut = 1024;

void BM_linear_cortex(benchmark::State& st) {
  const Tensor x = rnd({kRows, kIn}, 5), w = rnd({kOut, kIn}, 6), b = rnd({kOut}, 7);
  for (auto _ : st) benchmark::DoNotOptimize(kernels::linear(x, w, b).raw_data());
  set_flops(st, 2.0 * kRows * kIn * kOut);
}

void BM_linear_eigen(benchmark::State& st) {
  const Tensor x = rnd({kRows, kIn}, 5), w = rnd({kOut, kIn}, 6), b = rnd({kOut}, 7);
  Tensor y = empty({kRows, kOut});
  CMapR X(x.data<float>(), kRows, kIn), Wm(w.data<float>(), kOut, kIn);
  Eigen::Map<const Eigen::RowVectorXf> B(b.data<float>(), kOut);
  MapR Y(y.data<float>(), kRows, kOut);
  auto run = [&] {
    Y.rowwise() = B;
    Y.noalias() += X * Wm.transpose();
  };
  run();
  if (!agree(kernels::linear(x, w, b).data<float>(), y.data<float>(), kRows * kOut)) st.SkipWithError("peer mismatch");
  for (auto _ : st) {
    run();
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_flops(st, 2.0 * kRows * kIn * kOut);
}

}  // namespace

BENCHMARK(BM_matmul_cortex)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_matmul_eigen)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_matmul_cortex_transposed_b)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_matmul_eigen_transposed_b)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_bmm_small_cortex)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_bmm_small_eigen)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_linear_cortex)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_linear_eigen)->Unit(benchmark::kMillisecond)->UseRealTime();

CORTEX_BENCHMARK_MAIN();
