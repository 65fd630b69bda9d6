// The hand-written SGEMM versions (kernels/cuda/gemm/, docs/gemm.md) timed on the emulated CUDA
// device, with the CPU GEMM (Eigen) beside them. EMULATOR FIGURES, NOT GPU FIGURES: the emulator
// runs one fiber per CUDA thread on one core and a barrier costs ~60 ns a thread, so these numbers
// say which version is cheapest to emulate (the default of the emulated device), nothing about a GPU.
//   ./bench_cuda_gemm --benchmark_min_time=0.2
// The GFLOPs counter is 2 M N K per second. In a CUDA build BM_cuda_gemm times the same versions
// and cuBLAS (version 0) on the GPU at 1024^3 and 4096^3 (wall time, synchronised after each
// call; it reports an error where no device is present): the GPU table of docs/gemm.md.
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include "kernels/cuda/gemm.h"
#include "kernels/matmul.h"
#include "tensor/cuda_runtime.h"
#include "tensor/device.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace {

using namespace cortex;
namespace K = cortex::kernels;

void flops(benchmark::State& st, int64_t n) {
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * n * n * n * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

Tensor square(int64_t n, uint64_t seed, Device dev) {
  Generator g(seed);
  return randn({n, n}, g, 0.0, 1.0, DType::Float32).to(dev);
}

// args: version, n (M = N = K = n)
void BM_emu_gemm(benchmark::State& st) {
  const int v = static_cast<int>(st.range(0));
  const int64_t n = st.range(1);
  const Tensor a = square(n, 1, Device::emu()), b = square(n, 2, Device::emu());
  Tensor c = empty({n, n}, DType::Float32, Device::emu());
  K::GemmArgs<float> g;
  g.M = g.N = g.K = n;
  g.A = a.data<float>(), g.a_rs = n, g.a_cs = 1;
  g.B = b.data<float>(), g.b_rs = n, g.b_cs = 1;
  g.C = c.data<float>(), g.ldc = n;
  for (auto _ : st) {
    K::emu::gemm(v, g);
    benchmark::DoNotOptimize(c.data<float>());
  }
  flops(st, n);
}
BENCHMARK(BM_emu_gemm)->ArgNames({"version", "n"})->ArgsProduct({{1, 2, 3, 4, 5, 6, 7}, {128, 256}})
    ->Unit(benchmark::kMillisecond);

// The CPU GEMM (Eigen, threaded by OpenMP as the CPU kernel is) on the same sizes.
void BM_cpu_gemm(benchmark::State& st) {
  const int64_t n = st.range(0);
  const Tensor a = square(n, 1, Device::cpu()), b = square(n, 2, Device::cpu());
  for (auto _ : st) benchmark::DoNotOptimize(K::matmul(a, b));
  flops(st, n);
}
BENCHMARK(BM_cpu_gemm)->ArgName("n")->Arg(128)->Arg(256)->Unit(benchmark::kMillisecond);

#ifdef CORTEX_WITH_CUDA
// args: version (0: cuBLAS, through matmul), n
void BM_cuda_gemm(benchmark::State& st) {
  if (!cuda_available()) {
    st.SkipWithError("no CUDA device");
    return;
  }
  const int v = static_cast<int>(st.range(0));
  const int64_t n = st.range(1);
  const Device gpu = Device::cuda(0);
  const Tensor a = square(n, 1, gpu), b = square(n, 2, gpu);
  Tensor c = empty({n, n}, DType::Float32, gpu);
  K::GemmArgs<float> g;
  g.M = g.N = g.K = n;
  g.A = a.data<float>(), g.a_rs = n, g.a_cs = 1;
  g.B = b.data<float>(), g.b_rs = n, g.b_cs = 1;
  g.C = c.data<float>(), g.ldc = n;
  K::cuda::set_gemm_version(K::kGemmVendor);
  const auto once = [&] {
    if (v == K::kGemmVendor)
      benchmark::DoNotOptimize(K::matmul(a, b));
    else
      K::cuda::gemm(v, g);
  };
  once();  // warm-up: module load, cuBLAS handle
  cuda::synchronize(0);
  for (auto _ : st) {
    once();
    cuda::synchronize(0);
  }
  K::cuda::set_gemm_version(-1);
  flops(st, n);
}
BENCHMARK(BM_cuda_gemm)->ArgNames({"version", "n"})->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7}, {1024, 4096}})
    ->UseRealTime()->Unit(benchmark::kMillisecond);
#endif

}  // namespace

CORTEX_BENCHMARK_MAIN();
