// The 2-D real DFT pair (autograd/ops_fft.cpp) at the size of the dream parameterisation,
// (1, 3, 224, 224) float32 on the CPU: rfft2, irfft2 and the pair, through the ops (no autograd
// recording: no input requires a gradient). On the CPU the ops run the FFT kernel of
// kernels/cpu/fft.cpp; before it they were products with cos/sin matrices (figures in bench/NOTES.md,
// "dream", and docs/fft.md). The peer is bench/peers/fft_peer.py (torch.fft, the same cases).
//
//   OMP_NUM_THREADS=1 ./build/bench/bench_fft
//   python3 bench/peers/fft_peer.py --threads 1
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include "autograd/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace cortex;

namespace {

Tensor image(int64_t h, int64_t w) {
  Generator g(7);
  return randn({1, 3, h, w}, g);
}

void BM_rfft2(benchmark::State& st) {
  const Tensor x = image(st.range(0), st.range(1));
  for (auto _ : st) {
    Spectrum2 y = rfft2(x, FftNorm::Ortho);
    benchmark::DoNotOptimize(y.re.raw_data());
  }
}
void BM_irfft2(benchmark::State& st) {
  const Spectrum2 y = rfft2(image(st.range(0), st.range(1)), FftNorm::Ortho);
  for (auto _ : st) {
    Tensor x = irfft2(y.re, y.im, st.range(1), FftNorm::Ortho);
    benchmark::DoNotOptimize(x.raw_data());
  }
}
void BM_rfft2_irfft2(benchmark::State& st) {
  const Tensor x = image(st.range(0), st.range(1));
  for (auto _ : st) {
    Spectrum2 y = rfft2(x, FftNorm::Ortho);
    Tensor z = irfft2(y.re, y.im, st.range(1), FftNorm::Ortho);
    benchmark::DoNotOptimize(z.raw_data());
  }
}
BENCHMARK(BM_rfft2)->Args({224, 224})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_irfft2)->Args({224, 224})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_rfft2_irfft2)->Args({224, 224})->Args({225, 225})->Args({97, 97})->Unit(benchmark::kMicrosecond);

}  // namespace

CORTEX_BENCHMARK_MAIN();
