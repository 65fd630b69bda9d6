// Ridge CV throughput (models/readouts/ridge: one Gram matrix, a float64 Cholesky per fold and
// penalty, the per-penalty products in float32; docs/ridge.md): 5 folds, 10 penalties (logspace
// 1e-2..1e7), every voxel, then the refit with each voxel's penalty.
// Counter: voxels/s over the whole fit_ridge_cv call (CV + refit). Peer: bench/peers/ridge_peer.py
// (NumPy/SciPy, the same algorithm by default, himalaya's SVD one with --algo svd; scikit-learn's
// RidgeCV for reference), run right after this.
//   Full case of the issue: n = 10,000 images, p = 4,000 features, v = 20,000 voxels (BM_ridge_cv_full,
//     opt-in: CORTEX_BENCH_FULL=1; ~1.2e13 multiply-adds, 8e12 of them the per-penalty products).
//   Scaled cases (n, p, v) = (2,000, 1,000, 5,000) and (4,000, 2,000, 10,000).
// Run: OMP_NUM_THREADS=2 bench_ridge --benchmark_filter=scaled
#include "tensor/omp_defaults.h"
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "models/readouts/ridge.h"
#include "tensor/random.h"

using namespace cortex;

namespace {

std::vector<double> alphas10() {
  std::vector<double> a;
  for (int i = 0; i < 10; ++i) a.push_back(std::pow(10.0, -2.0 + i));
  return a;
}

// Features (n, p) float32 and responses (n, v) = X W + noise, float32 (as fMRI arrays are stored).
void make_problem(int64_t n, int64_t p, int64_t v, Tensor& X, Tensor& Y) {
  Generator g(1);
  X = randn({n, p}, g);
  const Tensor W = randn({p, v}, g, 0.0, 1.0 / std::sqrt(static_cast<double>(p)));
  Y = models::ridge_predict(X, W, zeros({v}));
  const Tensor e = randn({n, v}, g);
  float* y = Y.data<float>();
  const float* en = e.data<float>();
  for (int64_t i = 0; i < n * v; ++i) y[i] += 2.0f * en[i];
}

void run(benchmark::State& st, int64_t n, int64_t p, int64_t v) {
  Tensor X, Y;
  make_problem(n, p, v, X, Y);
  const auto alphas = alphas10();
  for (auto _ : st) {
    auto r = models::fit_ridge_cv(X, Y, alphas, 5, 0, 4096);
    benchmark::DoNotOptimize(r.weights.raw_data());
  }
  st.counters["voxels_per_s"] = benchmark::Counter(static_cast<double>(v), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_ridge_cv_scaled_small(benchmark::State& st) { run(st, 2000, 1000, 5000); }
void BM_ridge_cv_scaled_medium(benchmark::State& st) { run(st, 4000, 2000, 10000); }
void BM_ridge_cv_full(benchmark::State& st) { run(st, 10000, 4000, 20000); }

}  // namespace

BENCHMARK(BM_ridge_cv_scaled_small)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_ridge_cv_scaled_medium)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

// The full case runs only when asked for (CORTEX_BENCH_FULL=1): it alone takes minutes and several GB
// here, and `make bench` runs every suite.
int main(int argc, char** argv) {
  cortex::apply_omp_defaults(argv);  // the wait policy cortex runs with (tensor/omp_defaults.h)
  const char* full = std::getenv("CORTEX_BENCH_FULL");
  if (full && std::string(full) == "1")
    benchmark::RegisterBenchmark("BM_ridge_cv_full", BM_ridge_cv_full)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
