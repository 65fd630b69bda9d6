// cortex attribute as a library call: a cortex fit model file and some images -> integrated-gradients
// maps (analysis/attribution.h, docs/attribution.md) for each voxel of a list or an ROI's mean.
//
// Writes into `out`, after everything is computed (each file through a temporary file and a rename):
//   attributions.npy  float32 (N images, K targets, 3, S, S): the attributions, which sum to
//                     f(x) - f(baseline) per image and target (the completeness check);
//   maps.npy          float32 (N, K, C, S, S): the display maps (C = 1 with --channel-mean, else 3),
//                     blurred by --blur-sigma when given;
//   overlay_<image>_<target>.png  each map (channels summed) over the image, red positive, blue negative;
//   attribution.json  settings, per image and target f(x), f(baseline), the sum, the completeness
//                     error and the map's peak; the largest and median errors;
//   report.html       the overlays and the completeness table.
// Under MPI ranks (mpirun / srun, docs/distributed.md) each rank computes whole images (one image per
// unit); rank 0 gathers them in image order and alone writes the files, the same bytes as one process.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace cortex::analysis {

struct AttributeJob {
  std::string model;            // model.safetensors of cortex fit (any readout, fine-tuned or not)
  std::string images;           // subject folder (its test split), image folder, .npy or HDF5 brick
  std::string index;            // which images, e.g. "0,3-5" (empty: all)
  std::string voxels;           // "3,7,10-12": one map per voxel
  std::string roi;              // or one map for the ROI's mean
  std::string data;             // subject folder for the ROI masks (else metrics.json beside the model)
  std::string out;              // output folder
  std::string weights;          // the backbone's weights when they moved since the fit
  std::string baseline = "black";  // black, mean (of the images given) or blur
  int64_t steps = 50;           // path intervals: steps + 1 gradient evaluations per image and target group
  std::string quadrature = "adaptive";  // trapezoid, adaptive or gausslegendre (analysis/attribution.h)
  double tol = 0.01;            // adaptive: refine past `steps` until every completeness error is within tol (0: off)
  int64_t max_steps = 0;        // adaptive with tol: at most this many intervals (0: 8 steps)
  int64_t batch = 32;           // path points per forward pass
  bool channel_mean = false;    // maps averaged over colour channels
  double blur_sigma = 0;        // maps blurred by this Gaussian sigma in pixels (0: not blurred)
};

struct AttributeSummary {
  nlohmann::json json;  // what attribution.json holds
  std::string line;     // one line for the terminal (with the completeness error)
};

AttributeSummary run_attribute(const AttributeJob& job);

}  // namespace cortex::analysis
