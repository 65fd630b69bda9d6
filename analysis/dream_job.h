// cortex dream as a library call: a cortex fit model file -> maximally exciting images for one voxel
// or an ROI's mean (analysis/dream.h, docs/dream.md).
//
// Writes into `out`, after everything is computed (each file through a temporary file and a rename):
//   dream_<b>.png  each image (S x S, RGB);
//   dream.npy      float32 (B, 3, S, S) in [0, 1];
//   dream.json     the settings, each image's seed and predicted response, the loss trajectory and,
//                  with --images, the best of those images (the largest predicted target) and its response;
//   report.html    the contact sheet: each dream with its response beside the best image's, and the loss.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace cortex::analysis {

struct DreamJob {
  std::string model;        // model.safetensors of cortex fit (any readout)
  std::string roi;          // the target: an ROI's mean prediction,
  int64_t voxel = -1;       // or one voxel (a column of the model's output)
  std::string data;         // subject folder for the ROI masks (else metrics.json beside the model)
  std::string out;          // output folder
  std::string weights;      // the backbone's weights when they moved since the fit
  std::string images;       // optional: images whose best predicted target is shown beside the dreams
  int64_t steps = 200;
  int64_t seeds = 4;
  int64_t seed = 0;
  std::string param = "fourier";
  double lr = 0.05;
  int64_t jitter = 4;
  double tv = 0.0, l2 = 0.0, diversity = 0.0;
  std::string diversity_space = "pixels";  // or "features": the Gram matrices of the backbone's first tap
  bool decorrelate = false;                // Lucid's colour decorrelation (off by default: docs/dream.md)
  bool progress = true;     // a progress line on stderr every 10 % of the steps
};

struct DreamSummary {
  nlohmann::json json;  // what dream.json holds
  std::string line;     // one line for the terminal
};

DreamSummary run_dream(const DreamJob& job);

}  // namespace cortex::analysis
