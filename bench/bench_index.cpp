// Index family benchmarks, each beside a plain peer in this binary (same threads, same data):
//   topk k=10 over the rows of a (10000, 4096) float32 matrix vs copying each row to (value, index)
//   pairs and std::partial_sort; gather along the last dim vs the obvious OpenMP loop.
// Each peer is checked against the kernel once before timing; a mismatch fails the benchmark.
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "kernels/index.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace cortex;

namespace {

constexpr int64_t kRows = 10000, kCols = 4096, kK = 10;

const Tensor& matrix() {  // (kRows, kCols) float32, N(0, 1)
  static const Tensor x = [] {
    Generator g(1);
    return randn({kRows, kCols}, g, 0.0, 1.0, DType::Float32);
  }();
  return x;
}

// The textbook top-k: per row, (value, index) pairs and std::partial_sort on the first k.
void topk_partial_sort(const float* x, int64_t rows, int64_t cols, int64_t k, float* vals, int64_t* idx) {
#pragma omp parallel
  {
    std::vector<std::pair<float, int64_t>> buf(cols);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < cols; ++i) buf[i] = {x[r * cols + i], i};
      std::partial_sort(buf.begin(), buf.begin() + k, buf.end(), [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
      });
      for (int64_t j = 0; j < k; ++j) {
        vals[r * k + j] = buf[j].first;
        idx[r * k + j] = buf[j].second;
      }
    }
  }
}

void BM_topk_cortex(benchmark::State& st) {
  const Tensor& x = matrix();
  for (auto _ : st) {
    kernels::TopK r = kernels::topk(x, kK, -1, true);
    benchmark::DoNotOptimize(r.values.raw_data());
  }
  st.SetBytesProcessed(st.iterations() * x.numel() * 4);
  st.counters["rows/s"] = benchmark::Counter(static_cast<double>(st.iterations() * kRows), benchmark::Counter::kIsRate);
}

void BM_topk_partial_sort_peer(benchmark::State& st) {
  const Tensor& x = matrix();
  std::vector<float> vals(kRows * kK);
  std::vector<int64_t> idx(kRows * kK);
  topk_partial_sort(x.data<float>(), kRows, kCols, kK, vals.data(), idx.data());
  if (kernels::topk(x, kK, -1, true).indices.to_vector<int64_t>() != idx) {
    st.SkipWithError("peer and kernel disagree");
    return;
  }
  for (auto _ : st) {
    topk_partial_sort(x.data<float>(), kRows, kCols, kK, vals.data(), idx.data());
    benchmark::DoNotOptimize(vals.data());
  }
  st.SetBytesProcessed(st.iterations() * x.numel() * 4);
  st.counters["rows/s"] = benchmark::Counter(static_cast<double>(st.iterations() * kRows), benchmark::Counter::kIsRate);
}

// index (kRows, m) int64 uniform in [0, kCols)
Tensor gather_index(int64_t m) {
  Generator g(2);
  return randint(0, kCols, {kRows, m}, g);
}

// Bytes moved by a gather of m per row: index read, x element read, out written.
int64_t gather_bytes(int64_t m) { return kRows * m * (8 + 4 + 4); }

void BM_gather_lastdim_cortex(benchmark::State& st) {
  const int64_t m = st.range(0);
  const Tensor& x = matrix();
  const Tensor idx = gather_index(m);
  for (auto _ : st) {
    Tensor out = kernels::gather(x, 1, idx);
    benchmark::DoNotOptimize(out.raw_data());
  }
  st.SetBytesProcessed(st.iterations() * gather_bytes(m));
}

void BM_gather_lastdim_loop_peer(benchmark::State& st) {
  const int64_t m = st.range(0);
  const Tensor& x = matrix();
  const Tensor idx = gather_index(m);
  const float* xp = x.data<float>();
  const int64_t* ip = idx.data<int64_t>();
  // A fresh output tensor per call, as the kernel returns one: both pay the same first-touch
  // page faults, so the ratio compares the loops.
  auto run = [&] {
    Tensor out = empty({kRows, m}, DType::Float32);
    float* op = out.data<float>();
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t j = 0; j < m; ++j) op[r * m + j] = xp[r * kCols + ip[r * m + j]];
    return out;
  };
  if (kernels::gather(x, 1, idx).to_vector<float>() != run().to_vector<float>()) {
    st.SkipWithError("peer and kernel disagree");
    return;
  }
  for (auto _ : st) {
    Tensor out = run();
    benchmark::DoNotOptimize(out.raw_data());
  }
  st.SetBytesProcessed(st.iterations() * gather_bytes(m));
}

}  // namespace

BENCHMARK(BM_topk_cortex)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_topk_partial_sort_peer)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_gather_lastdim_cortex)->Arg(512)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_gather_lastdim_loop_peer)->Arg(512)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

CORTEX_BENCHMARK_MAIN();
