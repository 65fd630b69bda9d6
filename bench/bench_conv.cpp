// conv2d benchmarks, each beside the plain Eigen GEMM the convolution reduces to, in this binary
// (same threads): per image, w (O, C*KH*KW) times im2col (C*KH*KW, OH*OW), for the whole batch.
//   AlexNet conv2, batch 8: x (8, 64, 27, 27), w (192, 64, 5, 5), pad 2 -> GEMM 192 x 1600 x 729, x8
//   ResNet-50 layer2 3x3, batch 8: x (8, 128, 28, 28), w (128, 128, 3, 3), pad 1 -> 128 x 1152 x 784, x8
// The two adjoints (input grad, weight grad) do the same FLOPs and are timed beside them. The
// target is conv2d's FLOP rate >= 50% of the GEMM's.
// Run: OMP_NUM_THREADS=2 bench_conv --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized inside Eigen (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>

#include "kernels/conv.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace cortex;

namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Layer {
  int64_t N, C, H, W, O, K, pad;
  int64_t OH() const { return H + 2 * pad - K + 1; }
  int64_t OW() const { return W + 2 * pad - K + 1; }
  double flops() const { return 2.0 * N * O * (C * K * K) * (OH() * OW()); }
  kernels::Conv2dParams params() const {
    kernels::Conv2dParams p;
    p.pad_h = p.pad_w = pad;
    return p;
  }
};
const Layer kAlexNet2{8, 64, 27, 27, 192, 5, 2};
const Layer kResNet3x3{8, 128, 28, 28, 128, 3, 1};
const Layer& layer(int64_t i) { return i == 0 ? kAlexNet2 : kResNet3x3; }

Tensor rnd(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g, 0.0, 1.0, DType::Float32);
}

void set_flops(benchmark::State& st, const Layer& l) {
  st.counters["FLOP/s"] = benchmark::Counter(l.flops(), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(l.K == 5 ? "alexnet.conv2 b8" : "resnet50 3x3 b8");
}

void BM_conv2d(benchmark::State& st) {
  const Layer& l = layer(st.range(0));
  const Tensor x = rnd({l.N, l.C, l.H, l.W}, 1), w = rnd({l.O, l.C, l.K, l.K}, 2), b = rnd({l.O}, 3);
  for (auto _ : st) benchmark::DoNotOptimize(kernels::conv2d(x, w, b, l.params()).raw_data());
  set_flops(st, l);
}

// The peer: one (O, Kg) x (Kg, P) Eigen GEMM per image into a preallocated output (Eigen threads it).
void BM_gemm_peer(benchmark::State& st) {
  const Layer& l = layer(st.range(0));
  const int64_t Kg = l.C * l.K * l.K, P = l.OH() * l.OW();
  const Tensor a = rnd({l.O, Kg}, 4), col = rnd({l.N, Kg, P}, 5);
  Tensor y = empty({l.N, l.O, P});
  Eigen::Map<const RowMat> A(a.data<float>(), l.O, Kg);
  for (auto _ : st) {
    for (int64_t n = 0; n < l.N; ++n) {
      Eigen::Map<RowMat> Y(y.data<float>() + n * l.O * P, l.O, P);
      Y.noalias() = A * Eigen::Map<const RowMat>(col.data<float>() + n * Kg * P, Kg, P);
    }
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_flops(st, l);
}

void BM_conv2d_input_grad(benchmark::State& st) {
  const Layer& l = layer(st.range(0));
  const Tensor gy = rnd({l.N, l.O, l.OH(), l.OW()}, 1), w = rnd({l.O, l.C, l.K, l.K}, 2);
  for (auto _ : st)
    benchmark::DoNotOptimize(kernels::conv2d_input_grad(gy, w, {l.N, l.C, l.H, l.W}, l.params()).raw_data());
  set_flops(st, l);
}

void BM_conv2d_weight_grad(benchmark::State& st) {
  const Layer& l = layer(st.range(0));
  const Tensor x = rnd({l.N, l.C, l.H, l.W}, 1), gy = rnd({l.N, l.O, l.OH(), l.OW()}, 2);
  for (auto _ : st)
    benchmark::DoNotOptimize(kernels::conv2d_weight_grad(x, gy, {l.O, l.C, l.K, l.K}, l.params()).raw_data());
  set_flops(st, l);
}

}  // namespace

// Arg 0: AlexNet conv2; arg 1: ResNet-50 3x3.
BENCHMARK(BM_conv2d)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_gemm_peer)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_conv2d_input_grad)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_conv2d_weight_grad)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
