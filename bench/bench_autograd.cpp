// What autodiff costs over the forward pass, float32 on the CPU, for the two model shapes of the
// encoding work: an MLP readout and a small conv net. Each model is timed
//   forward      under NoGradGuard (no tape): the reference;
//   fwd+bwd      forward with the tape, then backward of the loss to every parameter;
//   jvp          jvp with one tangent on the input (forward mode; tangents ride with the values).
// and the encoder Jacobian of the LinBridge analysis: d f / d z of a two-layer encoder
// 512 -> 1024 (sigmoid) -> 2000 voxels for one stimulus, by forward and by reverse mode, with grad
// mode on and under NoGradGuard (as inference code calls it).
// backward / forward = (fwd+bwd - forward) / forward; bench/NOTES.md reports both ratios.
//   OMP_NUM_THREADS=2 ./bench_autograd --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <optional>
#include <string>

#include "autograd/losses.h"
#include "autograd/ops.h"
#include "tensor/cuda_runtime.h"
#include "tensor/device.h"
#include "tensor/random.h"

using namespace cortex;

namespace {

// ---------------------------------------------------------------- MLP: 512 -> 1024 -> 1024 -> 256, batch 256

struct Mlp {
  Tensor x, y, w1, b1, w2, b2, w3, b3;
  Mlp() {
    Generator g(1);
    x = randn({256, 512}, g);
    y = randn({256, 256}, g);
    w1 = with_grad(randn({1024, 512}, g, 0, 0.04));
    b1 = with_grad(zeros({1024}));
    w2 = with_grad(randn({1024, 1024}, g, 0, 0.03));
    b2 = with_grad(zeros({1024}));
    w3 = with_grad(randn({256, 1024}, g, 0, 0.03));
    b3 = with_grad(zeros({256}));
  }
  Tensor out(const Tensor& in) const {
    Tensor h = gelu(linear(in, w1, b1));
    h = gelu(linear(h, w2, b2));
    return linear(h, w3, b3);
  }
  Tensor loss(const Tensor& in) const { return mse_loss(out(in), y); }
  std::vector<Tensor> params() const { return {w1, b1, w2, b2, w3, b3}; }
};

// ---------------------------------------------------------------- conv net on (8, 3, 64, 64)
// conv 3->32 k3 p1, relu, maxpool 2, conv 32->64 k3 p1, relu, maxpool 2, conv 64->64 k3 p1, relu,
// global average pool, linear 64->10.

struct ConvNet {
  Tensor x, y, c1, k1, c2, k2, c3, k3, w, b;
  Conv2dParams same;
  Pool2dParams pool;
  ConvNet() {
    Generator g(2);
    x = randn({8, 3, 64, 64}, g);
    y = randn({8, 10}, g);
    c1 = with_grad(randn({32, 3, 3, 3}, g, 0, 0.2));
    k1 = with_grad(zeros({32}));
    c2 = with_grad(randn({64, 32, 3, 3}, g, 0, 0.06));
    k2 = with_grad(zeros({64}));
    c3 = with_grad(randn({64, 64, 3, 3}, g, 0, 0.04));
    k3 = with_grad(zeros({64}));
    w = with_grad(randn({10, 64}, g, 0, 0.1));
    b = with_grad(zeros({10}));
    same.pad_h = same.pad_w = 1;
    pool.kernel_h = pool.kernel_w = pool.stride_h = pool.stride_w = 2;
  }
  Tensor out(const Tensor& in) const {
    Tensor h = max_pool2d(relu(conv2d(in, c1, k1, same)), pool);
    h = max_pool2d(relu(conv2d(h, c2, k2, same)), pool);
    h = relu(conv2d(h, c3, k3, same));
    h = adaptive_avg_pool2d(h, 1, 1).reshape({8, 64});
    return linear(h, w, b);
  }
  Tensor loss(const Tensor& in) const { return mse_loss(out(in), y); }
  std::vector<Tensor> params() const { return {c1, k1, c2, k2, c3, k3, w, b}; }
};

template <class M>
void forward(benchmark::State& st) {
  M m;
  for (auto _ : st) {
    NoGradGuard ng;
    Tensor l = m.loss(m.x);
    benchmark::DoNotOptimize(l.raw_data());
  }
}

template <class M>
void forward_backward(benchmark::State& st) {
  M m;
  const std::vector<Tensor> ps = m.params();
  for (auto _ : st) {
    Tensor l = m.loss(m.x);
    std::vector<Tensor> g = grad({l}, ps);
    benchmark::DoNotOptimize(g[0].raw_data());
  }
}

template <class M>
void forward_jvp(benchmark::State& st) {
  M m;
  Generator g(3);
  const Tensor t = randn(m.x.shape(), g);
  auto f = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{m.loss(in[0])}; };
  for (auto _ : st) {
    NoGradGuard ng;  // forward mode only: no tape for the parameters
    JvpResult r = jvp(f, {m.x}, {t});
    benchmark::DoNotOptimize(r.tangents[0].raw_data());
  }
}

// ---------------------------------------------------------------- encoder Jacobian

struct Encoder {
  Tensor z, w1, b1, w2, b2;
  explicit Encoder(Device d = Device::cpu()) {
    Generator g(4);
    z = randn({512}, g).to(d);
    w1 = randn({1024, 512}, g, 0, 0.04).to(d);
    b1 = zeros({1024}).to(d);
    w2 = randn({2000, 1024}, g, 0, 0.03).to(d);
    b2 = zeros({2000}).to(d);
  }
  Tensor operator()(const Tensor& in) const { return linear(sigmoid(linear(in, w1, b1)), w2, b2); }
};

void encoder_jacobian(benchmark::State& st, JacobianMode mode, bool nograd) {
  Encoder e;
  for (auto _ : st) {
    std::optional<NoGradGuard> ng;
    if (nograd) ng.emplace();
    Tensor j = jacobian(e, e.z, mode, 128);  // (2000, 512)
    benchmark::DoNotOptimize(j.raw_data());
  }
}

// On a CUDA device (scripts/gpu-check.sh), under NoGradGuard, labelled as bench/peers/autograd_peer.py
// names its cases (torch.func.vmap(jacfwd) / vmap(jacrev) of the same encoder) for
// scripts/gpu-ratios.py. Forward mode pushes all 512 tangents in one batched pass (chunk 512), as
// vmap(jacfwd) does.
void encoder_jacobian_cuda(benchmark::State& st, JacobianMode mode) {
  if (!cuda_available()) {
    st.SkipWithError("no CUDA device");
    return;
  }
  Encoder e(Device::cuda(0));
  NoGradGuard ng;
  const auto once = [&] {
    Tensor j = jacobian(e, e.z, mode, 512);  // (2000, 512)
    cuda::synchronize(0);
    return j;
  };
  once();  // warm-up: allocator, cuBLAS handle
  for (auto _ : st) benchmark::DoNotOptimize(once().raw_data());
  st.SetLabel(std::string("encoder_jacobian ") + (mode == JacobianMode::Forward ? "forward" : "reverse") + " cuda");
}
void BM_encoder_jacobian_forward_cuda(benchmark::State& st) { encoder_jacobian_cuda(st, JacobianMode::Forward); }
void BM_encoder_jacobian_reverse_cuda(benchmark::State& st) { encoder_jacobian_cuda(st, JacobianMode::Reverse); }

void BM_encoder_jacobian_forward(benchmark::State& st) { encoder_jacobian(st, JacobianMode::Forward, false); }
void BM_encoder_jacobian_reverse(benchmark::State& st) { encoder_jacobian(st, JacobianMode::Reverse, false); }
void BM_encoder_jacobian_forward_nograd(benchmark::State& st) { encoder_jacobian(st, JacobianMode::Forward, true); }
void BM_encoder_jacobian_reverse_nograd(benchmark::State& st) { encoder_jacobian(st, JacobianMode::Reverse, true); }

void BM_mlp_forward(benchmark::State& st) { forward<Mlp>(st); }
void BM_mlp_forward_backward(benchmark::State& st) { forward_backward<Mlp>(st); }
void BM_mlp_jvp(benchmark::State& st) { forward_jvp<Mlp>(st); }
void BM_convnet_forward(benchmark::State& st) { forward<ConvNet>(st); }
void BM_convnet_forward_backward(benchmark::State& st) { forward_backward<ConvNet>(st); }
void BM_convnet_jvp(benchmark::State& st) { forward_jvp<ConvNet>(st); }

}  // namespace

BENCHMARK(BM_mlp_forward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mlp_forward_backward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mlp_jvp)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_convnet_forward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_convnet_forward_backward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_convnet_jvp)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK(BM_encoder_jacobian_forward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_encoder_jacobian_reverse)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_encoder_jacobian_forward_nograd)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_encoder_jacobian_reverse_nograd)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_encoder_jacobian_forward_cuda)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_encoder_jacobian_reverse_cuda)->Unit(benchmark::kMillisecond)->UseRealTime();

CORTEX_BENCHMARK_MAIN();
