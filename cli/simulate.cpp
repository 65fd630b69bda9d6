// cortex simulate: writes a ground-truth dataset in the Algonauts 2023 layout (data/simulate.h):
//
//   cortex simulate --out DIR [--subject 1 --train 600 --test 100 --voxels 500 --image-size 64 --seed 0 --noise 1]
//
// --noise is the per-voxel signal-to-noise ratio of a single trial (signal sd / noise sd).
// --nsd also writes the training set as NSD users hold it, in subjXX/nsd/ (plain pairs with an
// HDF5 image brick, read by data::load_pairs): images.hdf5 ("imgBrick": the test images, then the
// training images), image_ids.npy (the brick image of each training row) and responses.npy
// (training responses, lh then rh columns). Needs a build with HDF5.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <numeric>

#include "autograd/ops.h"
#include "cli/commands.h"
#include "data/hdf5.h"
#include "data/simulate.h"
#include "tensor/io/npy.h"

namespace cortex::cli {

namespace fs = std::filesystem;

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
  auto nsd = std::make_shared<bool>(false);
  sub->add_flag("--nsd", *nsd, "Also write subjXX/nsd/: an NSD-style HDF5 image brick + image ids + responses");
  return [cfg, out, nsd] {
    const auto t0 = std::chrono::steady_clock::now();
    CORTEX_CHECK(!*nsd || data::hdf5_available(), "simulate: --nsd needs a build with HDF5 (install libhdf5-dev and ",
                 "reconfigure)");
    const data::Simulation sim = data::simulate(*cfg);
    const std::string dir = data::write_simulation(sim, *out);
    if (*nsd) {
      const fs::path n = fs::path(dir) / "nsd";
      fs::create_directories(n);
      data::write_image_brick((n / "images.hdf5").string(), "imgBrick", concat({sim.test_images, sim.train_images}, 0));
      std::vector<int64_t> ids(static_cast<size_t>(cfg->n_train));
      std::iota(ids.begin(), ids.end(), cfg->n_test);
      io::write_npy((n / "image_ids.npy").string(), from_vector(ids));
      // The columns in the order load_algonauts gives for --hemi both: lh voxels, then rh.
      std::vector<int64_t> cols;
      for (int h = 0; h < 2; ++h)
        for (size_t v = 0; v < sim.voxels.size(); ++v)
          if (sim.voxels[v].hemi == h) cols.push_back(static_cast<int64_t>(v));
      io::write_npy((n / "responses.npy").string(),
                    index_select(sim.train_fmri, 1, from_vector(cols, {static_cast<int64_t>(cols.size())}, DType::Int64)));
    }
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
