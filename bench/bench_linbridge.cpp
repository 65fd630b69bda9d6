// The whole LinBridge analysis (analysis/linbridge.h: JM_inherent, per-voxel energy share, gains,
// AFD and the linear part's predictions) of the two-layer encoder F -> H (sigmoid) -> V over N
// stimuli by the closed form; the peer doing it the direct way (per-stimulus Jacobians by
// torch.func.vmap(jacfwd), then the reductions) is bench/peers/linbridge_peer.py with the same
// sizes. Counters: ms per stimulus, the working block's bytes, and the process's peak RSS after the
// row (getrusage; rows run in order of N, so growth between rows is what a larger N costs).
//
//   ./build/bench/bench_linbridge                    # 512-1024-20000 at N = 250 and 1000, 512-1024-2000 at N = 8
//   python3 bench/peers/linbridge_peer.py --n 1000   # the peer (same sizes by default)
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <string>

#include "analysis/linbridge.h"
#include "tensor/random.h"

namespace {

using namespace cortex;

void run_linbridge(benchmark::State& state, int64_t N, int64_t V) {
  const int64_t F = 512, H = 1024;
  Generator g(7);
  analysis::TwoLayerParams p;
  p.W1 = randn({H, F}, g, 0.0, 2.0 / std::sqrt(double(F)));
  p.b1 = randn({H}, g, 0.0, 0.5);
  p.W2 = randn({V, H}, g, 0.0, 1.0 / std::sqrt(double(H)));
  p.b2 = zeros({V});
  const Tensor Z = randn({N, F}, g, 0.0, 1.0);
  int64_t block = 0;
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const analysis::LinBridgeResult r = analysis::linbridge_two_layer(p, Z);
    benchmark::DoNotOptimize(r.afd.data<double>());
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    block = r.peak_bytes;
  }
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  state.counters["ms_per_stimulus"] = 1e3 * seconds / double(N);
  state.counters["block_MiB"] = double(block) / (1 << 20);
  state.counters["peak_rss_MiB"] = double(u.ru_maxrss) / 1024.0;
  state.SetLabel("F=512 H=1024 V=" + std::to_string(V) + " closed form");
}

void BM_linbridge_two_layer(benchmark::State& state) { run_linbridge(state, state.range(0), 20000); }
BENCHMARK(BM_linbridge_two_layer)->Arg(250)->Arg(1000)->Iterations(1)->UseRealTime()->Unit(benchmark::kSecond);

// The bench/tables.py row: N = 8 stimuli and 2,000 voxels, a size at which the direct-way peer
// (seconds per stimulus at V = 20,000) fits in a table of the default run; the N = 1,000 figures are
// in bench/NOTES.md.
void BM_linbridge_two_layer_v2000(benchmark::State& state) { run_linbridge(state, state.range(0), 2000); }
BENCHMARK(BM_linbridge_two_layer_v2000)->Arg(8)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

CORTEX_BENCHMARK_MAIN();
