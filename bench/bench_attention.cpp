// Scaled dot-product attention at ViT-B/16's shape, B x 12 heads x 197 tokens x 64, float32:
// the fused op (kernels/attention.h through scaled_dot_product_attention) against the composite
// softmax(q k^T s) v it replaced, for the forward (inference), the gradient (reverse) and a JVP
// (forward mode), on the CPU and, when a GPU is present, on CUDA. q, k, v are selects of a packed
// (3, B, H, L, D) permutation of one (B, L, 3 * H * D) tensor, exactly as models/layers.cpp passes
// them. The peer is bench/peers/attention_peer.py (PyTorch SDPA and torch.func.jvp through its math
// path, same shapes); scripts/gpu-check.sh runs both on a lent GPU.
// Run: OMP_NUM_THREADS=1 bench_attention --benchmark_min_time=1
//      CORTEX_ATTENTION=1|2|3 bench_attention --benchmark_filter=forward   (the CUDA forward versions)
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <cmath>
#include <string>

#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "tensor/cuda_runtime.h"
#include "tensor/random.h"

using namespace cortex;

namespace {

constexpr int64_t kHeads = 12, kTokens = 197, kHead = 64;

struct Qkv {
  Tensor q, k, v, tq, tk, tv;
};
Qkv make(int64_t batch, Device dev) {
  Generator g(3);
  Tensor x = randn({batch, kTokens, 3 * kHeads * kHead}, g).to(dev);
  Tensor t = x.reshape({batch, kTokens, 3, kHeads, kHead}).permute({2, 0, 3, 1, 4});
  Tensor tx = randn({batch, kTokens, 3 * kHeads * kHead}, g).to(dev);
  Tensor tt = tx.reshape({batch, kTokens, 3, kHeads, kHead}).permute({2, 0, 3, 1, 4});
  return {t.select(0, 0), t.select(0, 1), t.select(0, 2), tt.select(0, 0), tt.select(0, 1), tt.select(0, 2)};
}

Tensor composite(const Tensor& q, const Tensor& k, const Tensor& v) {
  return matmul(softmax(mul(matmul(q, k.transpose(-1, -2)), 1.0 / std::sqrt(double(kHead))), -1), v);
}
Tensor fused(const Tensor& q, const Tensor& k, const Tensor& v) { return scaled_dot_product_attention(q, k, v); }

void sync(Device dev) {
  if (dev.is_cuda()) cuda::synchronize(dev.index);
}

// range(0): 1 fused, 0 composite; range(1): batch; range(2): 0 cpu, 1 cuda, 2 the emulated device
// (the CUDA kernels run on the CPU: a correctness vehicle, its times say nothing about a GPU's).
Device device_of(benchmark::State& st) {
  return st.range(2) == 1 ? Device::cuda() : st.range(2) == 2 ? Device::emu() : Device::cpu();
}
std::string label(benchmark::State& st, const char* what) {
  const char* dev[] = {" cpu", " cuda", " emu"};
  return std::string(st.range(0) ? "fused " : "composite ") + what + " b" + std::to_string(st.range(1)) +
         dev[st.range(2)];
}

void BM_attention_forward(benchmark::State& st) {
  const Device dev = device_of(st);
  const Qkv a = make(st.range(1), dev);
  NoGradGuard ng;
  for (auto _ : st) {
    Tensor o = st.range(0) ? fused(a.q, a.k, a.v) : composite(a.q, a.k, a.v);
    sync(dev);
    benchmark::DoNotOptimize(o.raw_data());
  }
  st.SetLabel(label(st, "forward"));
}

void BM_attention_grad(benchmark::State& st) {
  const Device dev = device_of(st);
  const Qkv a = make(st.range(1), dev);
  for (auto _ : st) {
    std::vector<Tensor> g = vjp([&](const std::vector<Tensor>& in) {
                              return std::vector<Tensor>{st.range(0) ? fused(in[0], in[1], in[2])
                                                                     : composite(in[0], in[1], in[2])};
                            }, {a.q, a.k, a.v})
                                .pullback({a.tq});
    sync(dev);
    benchmark::DoNotOptimize(g[0].raw_data());
  }
  st.SetLabel(label(st, "vjp"));
}

void BM_attention_jvp(benchmark::State& st) {
  const Device dev = device_of(st);
  const Qkv a = make(st.range(1), dev);
  NoGradGuard ng;
  for (auto _ : st) {
    JvpResult r = jvp([&](const std::vector<Tensor>& in) {
      return std::vector<Tensor>{st.range(0) ? fused(in[0], in[1], in[2]) : composite(in[0], in[1], in[2])};
    }, {a.q, a.k, a.v}, {a.tq, a.tk, a.tv});
    sync(dev);
    benchmark::DoNotOptimize(r.tangents[0].raw_data());
  }
  st.SetLabel(label(st, "jvp"));
}

void args(benchmark::internal::Benchmark* b) {
  b->ArgsProduct({{0, 1}, {1, 8}, {0}});
  b->ArgsProduct({{1}, {1}, {2}});  // CORTEX_ATTENTION=1..3 picks the forward version
  if (cuda_available()) b->ArgsProduct({{0, 1}, {1, 8, 64}, {1}});
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_attention_forward)->Apply(args);
BENCHMARK(BM_attention_grad)->Apply(args);
BENCHMARK(BM_attention_jvp)->Apply(args);

}  // namespace

CORTEX_BENCHMARK_MAIN();
