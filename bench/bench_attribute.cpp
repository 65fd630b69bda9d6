// Integrated gradients of one image over 50 steps (51 gradient evaluations) through AlexNet (random
// weights, 224 px, up to
// features.9) + a Gaussian readout of 1,000 voxels at evaluation, for one voxel, CPU, float32:
// analysis::integrated_gradients (analysis/attribution.h, docs/attribution.md). Arg 0: the default
// rule, adaptive (a batch of 26 uniform path points, then 8 rounds of about 3 new points each, one
// forward and one backward per batch); arg 1: the uniform trapezoid rule (the 51 points in one batch,
// as the peer). The peer is
// bench/peers/attribute_peer.py: the same model in PyTorch eager and the Captum-style batched path
// (all the scaled inputs in one batch, torch.autograd.grad of the target's sum).
//
//   OMP_NUM_THREADS=2 ./build/bench/bench_attribute
//   python3 bench/peers/attribute_peer.py --threads 2
#include <benchmark/benchmark.h>

#include "bench/bench_main.h"

#include <string>

#include "analysis/attribution.h"
#include "autograd/autograd.h"
#include "autograd/ops.h"
#include "models/cnn.h"
#include "models/readouts/readouts.h"
#include "tensor/random.h"

using namespace cortex;

namespace {

void BM_attribute_alexnet_gaussian(benchmark::State& st) {
  const int64_t steps = 50, V = 1000;
  const bool adaptive = st.range(0) == 0;
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
  Generator g(3);
  const Tensor img = rand({3, 224, 224}, g), base = zeros({3, 224, 224});
  const Tensor t = analysis::voxel_targets({17}, V);
  analysis::IGOptions o;
  o.steps = steps;
  o.batch = steps + 1;  // the whole (first) path in one batch, as Captum's default internal_batch_size
  o.rule = adaptive ? analysis::Quadrature::Adaptive : analysis::Quadrature::Trapezoid;
  double err = 0;
  for (auto _ : st) {
    const analysis::IGResult r = analysis::integrated_gradients(f, img, base, t, o);
    benchmark::DoNotOptimize(r.attr.raw_data());
    err = r.rel_error[0];
  }
  st.counters["completeness_err"] = err;
  st.SetLabel("alexnet features.9 + gaussian V=1000, " + std::to_string(steps) + " steps, " +
              analysis::quadrature_name(o.rule));
}
BENCHMARK(BM_attribute_alexnet_gaussian)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

CORTEX_BENCHMARK_MAIN();
