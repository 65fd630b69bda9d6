// Spectral clustering benchmarks (analysis/spectral, docs/spectral.md has the figures):
//   end to end, the CPU case: N = 100,000 nodes, d = 384, m = 4,096 samples, k = 20, K = 10,
//     AlignedCut Nystrom with FPS and with random sampling (counters: each phase's seconds);
//   its phases alone: FPS, the subgraph's affinity + normalisation, the subgraph's top-20
//     eigenpairs (Lanczos, block 1 and 16, and subspace iteration) beside the plain peer, Eigen's
//     SelfAdjointEigenSolver on the same m x m matrix, and the KNN propagation beside its floor, the
//     (N x d) x (d x m) similarity GEMM alone in chunks (every exact KNN has to do it);
//   Fowlkes et al.'s Nystrom at N = 100,000 with m = 1,024 (its cost grows as N m^2);
//   the exact method at N = 5,000, 10,000 and 20,000 (N^2 memory).
// The features are 50 Gaussian clusters in R^384 (float32), made once. Every case runs a fixed
// number of iterations (they take seconds each). Peers are checked against the code once first.
// Run: OMP_NUM_THREADS=2 bench_spectral   (about 4 minutes on 2 cores)
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // Eigen + GCC 12 AVX-512 (GCC bug 105593)
#endif
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <cmath>
#include <vector>

#include "analysis/spectral/affinity.h"
#include "analysis/spectral/eigensolver.h"
#include "analysis/spectral/ncut.h"
#include "analysis/spectral/nystrom.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace cortex;
using namespace cortex::analysis::spectral;

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int64_t kN = 100000, kD = 384, kM = 4096, kK = 20, kKnn = 10;

// n points around 50 unit-norm centres in R^d, noise 0.5 / sqrt(d) per coordinate (float32).
Tensor clustered(int64_t n, int64_t d, uint64_t seed) {
  Generator g(seed);
  const Tensor c = randn({50, d}, g, 0.0, 1.0, DType::Float32);
  Tensor x = randn({n, d}, g, 0.0, 0.5 / std::sqrt(double(d)), DType::Float32);
  const float* pc = c.data<float>();
  float* px = x.data<float>();
  std::vector<float> norm(50);
  for (int64_t j = 0; j < 50; ++j) {
    double s = 0;
    for (int64_t e = 0; e < d; ++e) s += double(pc[j * d + e]) * pc[j * d + e];
    norm[j] = static_cast<float>(1 / std::sqrt(s));
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t e = 0; e < d; ++e) px[i * d + e] += pc[(i % 50) * d + e] * norm[i % 50];
  return x;
}

const Tensor& features() {
  static const Tensor x = clustered(kN, kD, 1);
  return x;
}

// The FPS sample of the end-to-end case, its rows and their normalised affinity (m x m, float32).
struct Subgraph {
  Tensor idx, xs, a;
};
const Subgraph& subgraph() {
  static const Subgraph s = [] {
    Subgraph r;
    FpsOptions f;
    f.unit_rows = true;
    r.idx = farthest_point_sampling(features(), kM, 0, f);
    r.xs = empty({kM, kD});
    const std::vector<int64_t> v = r.idx.to_vector<int64_t>();
    for (int64_t i = 0; i < kM; ++i) r.xs.select(0, i).copy_(features().select(0, v[i]));
    r.a = ncut_normalize(affinity(r.xs, Affinity::Cosine, 1.0)).a;
    return r;
  }();
  return s;
}

void phase_counters(benchmark::State& st, const NcutTimings& t) {
  st.counters["prepare_s"] = t.prepare;
  st.counters["sampling_s"] = t.sampling;
  st.counters["affinity_s"] = t.affinity;
  st.counters["eigensolve_s"] = t.eigensolve;
  st.counters["propagate_s"] = t.propagate;
}

// ---- end to end ----

void BM_ncut_nystrom_N100k(benchmark::State& st) {
  const Tensor& x = features();
  NcutOptions o;
  o.k = kK;
  o.method = NcutMethod::Nystrom;
  o.samples = kM;
  o.knn = kKnn;
  o.sampling = st.range(0) == 0 ? Sampling::Fps : Sampling::Random;
  NcutResult r;
  for (auto _ : st) {
    r = ncut(x, o);
    benchmark::DoNotOptimize(r.eigenvectors.raw_data());
  }
  phase_counters(st, r.timings);
  st.counters["lanczos_matvecs"] = double(r.solve.matvecs);
  st.SetLabel(st.range(0) == 0 ? "fps" : "random");
}

void BM_ncut_fowlkes_N100k_m1024(benchmark::State& st) {
  NcutOptions o;
  o.k = kK;
  o.method = NcutMethod::Fowlkes;
  o.samples = 1024;
  NcutResult r;
  for (auto _ : st) {
    r = ncut(features(), o);
    benchmark::DoNotOptimize(r.eigenvectors.raw_data());
  }
  phase_counters(st, r.timings);
}

void BM_ncut_exact(benchmark::State& st) {
  const int64_t n = st.range(0);
  const Tensor x = features().narrow(0, 0, n).contiguous();
  NcutOptions o;
  o.k = kK;
  o.method = NcutMethod::Exact;
  NcutResult r;
  for (auto _ : st) {
    r = ncut(x, o);
    benchmark::DoNotOptimize(r.eigenvectors.raw_data());
  }
  phase_counters(st, r.timings);
  st.counters["lanczos_matvecs"] = double(r.solve.matvecs);
}

// ---- phases ----

void BM_fps_N100k_m4096(benchmark::State& st) {
  FpsOptions f;
  f.unit_rows = true;
  for (auto _ : st) benchmark::DoNotOptimize(farthest_point_sampling(features(), kM, 0, f).raw_data());
}

void BM_subgraph_affinity_m4096(benchmark::State& st) {
  const Tensor& xs = subgraph().xs;
  for (auto _ : st) benchmark::DoNotOptimize(ncut_normalize(affinity(xs, Affinity::Cosine, 1.0)).a.raw_data());
}

// arg 0: solver (0 Lanczos, 1 subspace); arg 1: block size for Lanczos
void BM_subgraph_eigs_m4096(benchmark::State& st) {
  const Tensor& a = subgraph().a;
  EigOptions o;
  o.dtype = DType::Float32;
  o.tol = 1e-5;
  o.block = st.range(1);
  Eigenpairs e;
  for (auto _ : st) {
    e = st.range(0) == 0 ? lanczos_topk(kM, kK, dense_matvec(a), o) : subspace_topk(kM, kK, dense_matvec(a), o);
    benchmark::DoNotOptimize(e.vectors.raw_data());
  }
  if (!e.converged) st.SkipWithError("did not converge");
  st.counters["matvecs"] = double(e.matvecs);
  st.counters["residual"] = e.residual;
  st.SetLabel(st.range(0) == 0 ? "lanczos" : "subspace");
}

// The peer: Eigen's dense symmetric solver on the same matrix (all m eigenpairs, float32), checked
// once against Lanczos's top 20 eigenvalues.
void BM_subgraph_eigs_m4096_eigen_peer(benchmark::State& st) {
  const Tensor& a = subgraph().a;
  const Eigen::Map<const RowMat> A(a.data<float>(), kM, kM);
  const Eigenpairs ref = lanczos_topk(kM, kK, dense_matvec(a), EigOptions{.dtype = DType::Float32, .tol = 1e-5});
  for (auto _ : st) {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXf> es(A);
    benchmark::DoNotOptimize(es.eigenvectors().data());
    for (int64_t j = 0; j < kK; ++j)
      if (std::abs(es.eigenvalues()(kM - 1 - j) - ref.values.data<float>()[j]) > 1e-4f)
        st.SkipWithError("the peer's eigenvalues differ from Lanczos's");
  }
}

void BM_propagate_N100k_m4096(benchmark::State& st) {
  const Subgraph& s = subgraph();
  Generator g(3);
  const Tensor v = randn({kM, kK}, g, 0.0, 1.0, DType::Float32);
  for (auto _ : st)
    benchmark::DoNotOptimize(propagate_knn(v, features(), s.xs, kKnn, Affinity::Cosine, 1.0).raw_data());
}

// The floor of the propagation: the similarity GEMM alone, chunk by chunk (8192 rows), no top-K.
void BM_propagate_gemm_floor(benchmark::State& st) {
  const Subgraph& s = subgraph();
  const Eigen::Map<const RowMat> X(features().data<float>(), kN, kD), Y(s.xs.data<float>(), kM, kD);
  RowMat S(8192, kM);
  for (auto _ : st) {
    for (int64_t r0 = 0; r0 < kN; r0 += 8192) {
      const int64_t cn = std::min<int64_t>(8192, kN - r0);
      S.topRows(cn).noalias() = X.middleRows(r0, cn) * Y.transpose();
      benchmark::DoNotOptimize(S.data());
    }
  }
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * kN * kM * kD, benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_ncut_nystrom_N100k)->Arg(0)->Arg(1)->Iterations(2)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_ncut_fowlkes_N100k_m1024)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_ncut_exact)->Arg(5000)->Arg(10000)->Arg(20000)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_fps_N100k_m4096)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_subgraph_affinity_m4096)->Iterations(3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_subgraph_eigs_m4096)
    ->Args({0, 1})
    ->Args({0, 16})
    ->Args({1, 0})
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_subgraph_eigs_m4096_eigen_peer)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_propagate_N100k_m4096)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_propagate_gemm_floor)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
CORTEX_BENCHMARK_MAIN();
