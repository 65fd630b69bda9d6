// A maximally exciting image: 200 Adam steps on one 224 px image in the frequency-space
// parameterisation (a half spectrum scaled by fft_scale, ortho irfft2, / 4, sigmoid), jitter of up to
// 4 px, TV and L2 penalties, through AlexNet (random weights, up to features.9) + a Gaussian readout
// of 1,000 voxels at evaluation, for one voxel, CPU, float32: analysis::dream (analysis/dream.h,
// docs/dream.md). The peer is bench/peers/dream_peer.py: the same model and loop in PyTorch eager
// (torch.fft.irfft2, torch.roll, torch.optim.Adam).
//
//   OMP_NUM_THREADS=2 ./build/bench/bench_dream
//   python3 bench/peers/dream_peer.py --threads 2
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <string>

#include "analysis/dream.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "models/cnn.h"
#include "models/readouts/readouts.h"

using namespace cortex;

namespace {

void run(benchmark::State& st, analysis::DreamParam param) {
  const int64_t steps = st.range(0), V = 1000;
  std::shared_ptr<models::Backbone> bb = std::make_shared<models::AlexNet>();
  models::init_random(*bb, 1);
  models::GaussianReadout ro(models::MapShape{256, 13, 13}, V, models::GaussSigma::Isotropic, 0.1, false, {}, 2);
  bb->train(false), ro.train(false);
  bb->requires_grad(false), ro.requires_grad(false);
  const Tensor mean = from_vector(std::vector<float>{0.485f, 0.456f, 0.406f}, {1, 3, 1, 1});
  const Tensor sd = from_vector(std::vector<float>{0.229f, 0.224f, 0.225f}, {1, 3, 1, 1});
  const analysis::ImageFn f = [&](const Tensor& p) {
    const Tensor x = div(sub(p, mean), sd);
    return ro.read({bb->features(x, {"features.9"}).at("features.9")});
  };
  const Tensor t = analysis::voxel_targets({17}, V);
  analysis::DreamOptions o;
  o.steps = steps, o.seeds = 1, o.param = param, o.lr = 0.05, o.jitter = 4, o.tv = 0.01,
  o.l2 = 0.01;
  double resp = 0;
  for (auto _ : st) {
    const analysis::DreamResult r = analysis::dream(f, 224, t, o);
    benchmark::DoNotOptimize(r.images.raw_data());
    resp = r.response[0];
  }
  st.counters["response"] = resp;
  st.SetLabel(std::string("alexnet features.9 + gaussian V=1000, ") + analysis::dream_param_name(param) + ", " +
              std::to_string(steps) + " steps");
}

void BM_dream_alexnet_gaussian(benchmark::State& st) { run(st, analysis::DreamParam::Fourier); }
// The same with the pixel parameterisation: the difference is the cost of the DFT pair (an FFT on
// the CPU since bench/NOTES.md's FFT note; products with cos/sin matrices before).
void BM_dream_alexnet_gaussian_pixels(benchmark::State& st) { run(st, analysis::DreamParam::Pixels); }
BENCHMARK(BM_dream_alexnet_gaussian)->Arg(200)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_dream_alexnet_gaussian_pixels)->Arg(200)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

CORTEX_BENCHMARK_MAIN();
