// conv2d benchmarks, each beside the plain Eigen GEMM the convolution reduces to, in this binary
// (same threads): per image, w (O, C*KH*KW) times im2col (C*KH*KW, OH*OW), for the whole batch.
//   AlexNet conv2, batch 8: x (8, 64, 27, 27), w (192, 64, 5, 5), pad 2 -> GEMM 192 x 1600 x 729, x8
//   ResNet-50 layer2 3x3, batch 8: x (8, 128, 28, 28), w (128, 128, 3, 3), pad 1 -> 128 x 1152 x 784, x8
// The two adjoints (input grad, weight grad) do the same FLOPs and are timed beside them. The
// target is conv2d's FLOP rate >= 50% of the GEMM's.
// Run: OMP_NUM_THREADS=2 bench_conv --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized inside Eigen (GCC bug 105593).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Core>

#include "kernels/conv.h"
#include "kernels/matmul.h"
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

// AlexNet's layers one by one at 224 px (forward, float32, with bias): where a backbone pass's
// time goes. range(0): conv1..conv5 (0-4), then classifier.1, .4, .6 (5-7); range(1): batch.
// Compare with torch.nn.Conv2d / Linear of the same shapes at the same thread count.
void BM_alexnet_layer(benchmark::State& st) {
  struct Conv {
    int64_t C, H, O, K, stride, pad;
  };
  const Conv convs[5] = {{3, 224, 64, 11, 4, 2}, {64, 27, 192, 5, 1, 2}, {192, 13, 384, 3, 1, 1},
                         {384, 13, 256, 3, 1, 1}, {256, 13, 256, 3, 1, 1}};
  const int64_t fc[3][2] = {{9216, 4096}, {4096, 4096}, {4096, 1000}};
  const int64_t i = st.range(0), n = st.range(1);
  if (i < 5) {
    const Conv& c = convs[i];
    kernels::Conv2dParams p;
    p.stride_h = p.stride_w = c.stride;
    p.pad_h = p.pad_w = c.pad;
    const Tensor x = rnd({n, c.C, c.H, c.H}, 1), w = rnd({c.O, c.C, c.K, c.K}, 2), b = rnd({c.O}, 3);
    for (auto _ : st) benchmark::DoNotOptimize(kernels::conv2d(x, w, b, p).raw_data());
    st.SetLabel("alexnet conv" + std::to_string(i + 1) + " b" + std::to_string(n));
  } else {
    const int64_t in = fc[i - 5][0], out = fc[i - 5][1];
    const Tensor x = rnd({n, in}, 1), w = rnd({out, in}, 2), b = rnd({out}, 3);
    for (auto _ : st) benchmark::DoNotOptimize(kernels::linear(x, w, b).raw_data());
    st.SetLabel("alexnet linear " + std::to_string(in) + "->" + std::to_string(out) + " b" + std::to_string(n));
  }
}

// AlexNet's conv input gradients at 224 px, batch 1 (float32): the backward of a dream or an
// integrated-gradients step (bench_dream). range(0): conv1..conv4 (0-3), the convs up to features.9.
void BM_alexnet_input_grad(benchmark::State& st) {
  struct Conv {
    int64_t C, H, O, K, stride, pad;
  };
  const Conv convs[4] = {{3, 224, 64, 11, 4, 2}, {64, 27, 192, 5, 1, 2}, {192, 13, 384, 3, 1, 1}, {384, 13, 256, 3, 1, 1}};
  const Conv& c = convs[st.range(0)];
  kernels::Conv2dParams p;
  p.stride_h = p.stride_w = c.stride;
  p.pad_h = p.pad_w = c.pad;
  const int64_t OH = (c.H + 2 * c.pad - c.K) / c.stride + 1;
  const Tensor gy = rnd({1, c.O, OH, OH}, 1), w = rnd({c.O, c.C, c.K, c.K}, 2);
  for (auto _ : st) benchmark::DoNotOptimize(kernels::conv2d_input_grad(gy, w, {1, c.C, c.H, c.H}, p).raw_data());
  st.counters["FLOP/s"] = benchmark::Counter(2.0 * c.O * c.C * c.K * c.K * OH * OH,
                                             benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel("alexnet conv" + std::to_string(st.range(0) + 1) + " input grad b1");
}

}  // namespace

// ResNet-50's distinct convs at batch 1 (BN folded, 224 px), to see which scale badly from one
// thread to two (the backbone row at batch 1, two threads). range(0): the layer below; the counter
// `count` is how many times the forward runs it.
void BM_resnet50_b1_layer(benchmark::State& st) {
  struct Conv {
    int64_t C, H, O, K, stride, pad, count;
  };
  const Conv convs[] = {
      {3, 224, 64, 7, 2, 3, 1},                                                                   // stem
      {64, 56, 64, 1, 1, 0, 1},   {64, 56, 64, 3, 1, 1, 3},  {64, 56, 256, 1, 1, 0, 4},  {256, 56, 64, 1, 1, 0, 2},
      {256, 56, 128, 1, 1, 0, 1}, {128, 56, 128, 3, 2, 1, 1}, {128, 28, 512, 1, 1, 0, 4}, {256, 56, 512, 1, 2, 0, 1},
      {512, 28, 128, 1, 1, 0, 3}, {128, 28, 128, 3, 1, 1, 3}, {512, 28, 256, 1, 1, 0, 1}, {256, 28, 256, 3, 2, 1, 1},
      {256, 14, 1024, 1, 1, 0, 6}, {512, 28, 1024, 1, 2, 0, 1}, {1024, 14, 256, 1, 1, 0, 5}, {256, 14, 256, 3, 1, 1, 5},
      {1024, 14, 512, 1, 1, 0, 1}, {512, 14, 512, 3, 2, 1, 1}, {512, 7, 2048, 1, 1, 0, 3}, {1024, 14, 2048, 1, 2, 0, 1},
      {2048, 7, 512, 1, 1, 0, 2}, {512, 7, 512, 3, 1, 1, 2}};
  const Conv& c = convs[st.range(0)];
  kernels::Conv2dParams p;
  p.stride_h = p.stride_w = c.stride;
  p.pad_h = p.pad_w = c.pad;
  const Tensor x = rnd({1, c.C, c.H, c.H}, 1), w = rnd({c.O, c.C, c.K, c.K}, 2), b = rnd({c.O}, 3);
  for (auto _ : st) benchmark::DoNotOptimize(kernels::conv2d(x, w, b, p).raw_data());
  st.counters["count"] = static_cast<double>(c.count);
  st.SetLabel(std::to_string(c.C) + "->" + std::to_string(c.O) + " " + std::to_string(c.K) + "x" + std::to_string(c.K) +
              " s" + std::to_string(c.stride) + " at " + std::to_string(c.H));
}
BENCHMARK(BM_resnet50_b1_layer)->DenseRange(0, 22)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_alexnet_input_grad)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_alexnet_layer)->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7}, {1, 64}})->Unit(benchmark::kMillisecond)->UseRealTime();

// Arg 0: AlexNet conv2; arg 1: ResNet-50 3x3.
BENCHMARK(BM_conv2d)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_gemm_peer)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_conv2d_input_grad)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_conv2d_weight_grad)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

CORTEX_BENCHMARK_MAIN();
