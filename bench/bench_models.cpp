// End-to-end inference throughput of the backbones (images/s) with random weights of the real
// shapes, CPU, float32, no autograd: AlexNet, ResNet-50 (batch norm folded, as a deployment would)
// and ViT-B/16 (torchvision layout) at 224 px, batch 1 and 64. The peer is
// bench/peers/models_peer.py (PyTorch, same models, same threads, torch.inference_mode).
// On a CUDA device, BM_backbone_cuda: batch 256 (scripts/gpu-check.sh; skipped without a GPU).
// Run: OMP_NUM_THREADS=2 bench_models --benchmark_min_time=2   (batch 64 takes seconds per pass)
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <string>

#include "autograd/autograd.h"
#include "models/cnn.h"
#include "models/vit.h"
#include "tensor/cuda_runtime.h"
#include "tensor/device.h"
#include "tensor/random.h"

using namespace cortex;
using namespace cortex::models;

namespace {

std::shared_ptr<Backbone> make(int64_t which) {
  std::shared_ptr<Backbone> m;
  if (which == 0) {
    m = std::make_shared<AlexNet>();
  } else if (which == 1) {
    m = std::make_shared<ResNet>(resnet_spec("resnet50"));
  } else {
    m = std::make_shared<ViT>(ViTSpec{});  // vit_b_16: 768 wide, 12 blocks, 12 heads, patch 16, 224 px
  }
  init_random(*m, 1);
  if (which == 1) m->fold_batchnorm();
  return m;
}

const char* kNames[] = {"alexnet", "resnet50", "vit_b_16"};

// range(0): model, range(1): batch size.
void BM_backbone(benchmark::State& st) {
  auto m = make(st.range(0));
  const int64_t batch = st.range(1);
  Generator g(2);
  Tensor x = randn({batch, 3, 224, 224}, g);
  NoGradGuard ng;
  for (auto _ : st) {
    Tensor y = (*m)(x);
    benchmark::DoNotOptimize(y.raw_data());
  }
  st.counters["images/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(std::string(kNames[st.range(0)]) + " b" + std::to_string(batch));
}

BENCHMARK(BM_backbone)
    ->ArgsProduct({{0, 1, 2}, {1, 64}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// On a CUDA device (scripts/gpu-check.sh): batch 256, float32, the model moved with Module::to and
// the input made there; each pass is synchronised. Labelled as bench/peers/models_peer.py --device
// cuda names its cases, so scripts/gpu-ratios.py pairs them with PyTorch eager.
void BM_backbone_cuda(benchmark::State& st) {
  if (!cuda_available()) {
    st.SkipWithError("no CUDA device");
    return;
  }
  const Device gpu = Device::cuda(0);
  auto m = make(st.range(0));
  m->to(gpu);
  const int64_t batch = st.range(1);
  Generator g(2);
  const Tensor x = randn({batch, 3, 224, 224}, g, 0.0, 1.0, DType::Float32, gpu);
  NoGradGuard ng;
  const auto once = [&] {
    Tensor y = (*m)(x);
    cuda::synchronize(0);
    return y;
  };
  once();  // warm-up: allocator, cuBLAS / cuDNN handles
  for (auto _ : st) benchmark::DoNotOptimize(once().raw_data());
  st.counters["images/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(std::string(kNames[st.range(0)]) + " b" + std::to_string(batch) + " cuda fp32");
}

BENCHMARK(BM_backbone_cuda)->ArgsProduct({{0, 1, 2}, {256}})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

CORTEX_BENCHMARK_MAIN();
