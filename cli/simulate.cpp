// cortex simulate: writes a ground-truth dataset in the Algonauts 2023 layout (data/simulate.h):
//
//   cortex simulate --out DIR [--subject 1 --train 600 --test 100 --voxels 500 --image-size 64 --seed 0 --noise 1]
//
// --noise is the per-voxel signal-to-noise ratio of a single trial (signal sd / noise sd).
#include <chrono>
#include <iostream>

#include "cli/commands.h"
#include "data/simulate.h"

namespace cortex::cli {

Run add_simulate(CLI::App& app) {
  auto* sub = app.add_subcommand("simulate", "Write a simulated dataset with known voxel models (Algonauts layout)");
  auto cfg = std::make_shared<data::SimConfig>();
  auto out = std::make_shared<std::string>();
  sub->add_option("--out", *out, "Output folder (subjXX/ is created inside)")->required();
  sub->add_option("--subject", cfg->subject, "Subject number (folder subjXX)")->capture_default_str();
  sub->add_option("--train", cfg->n_train, "Training images")->capture_default_str();
  sub->add_option("--test", cfg->n_test, "Test images (each shown --repeats times)")->capture_default_str();
  sub->add_option("--voxels", cfg->voxels, "Voxels over both hemispheres")->capture_default_str();
  sub->add_option("--image-size", cfg->image_size, "Image side in pixels")->capture_default_str();
  sub->add_option("--seed", cfg->seed, "Philox seed")->capture_default_str();
  sub->add_option("--noise", cfg->snr, "Single-trial SNR (signal sd / noise sd)")->capture_default_str();
  sub->add_option("--repeats", cfg->repeats, "Trials per test image")->capture_default_str();
  return [cfg, out] {
    const auto t0 = std::chrono::steady_clock::now();
    const data::Simulation sim = data::simulate(*cfg);
    const std::string dir = data::write_simulation(sim, *out);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::vector<double> nc = sim.noise_ceiling.to_vector<double>();
    double mean_nc = 0;
    for (double v : nc) mean_nc += v / nc.size();
    std::cout << "wrote " << dir << ": " << cfg->n_train << " train + " << cfg->n_test << " test images, "
              << cfg->voxels << " voxels, mean noise ceiling " << mean_nc << " (" << s << " s)\n";
    return 0;
  };
}

}  // namespace cortex::cli
