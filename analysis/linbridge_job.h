// cortex linbridge as a library call: a fitted two-layer (or linear) encoder's model file and a
// subject folder -> the inherent/bias split of its Jacobian over the split's images
// (analysis/linbridge.h, docs/linbridge.md), per-voxel and per-ROI scores and r, and a report.
//
// Writes into `out` (each file through a temporary file and a rename, after everything is computed):
//   energy_share.npy, afd.npy, afd_slope.npy, r_full.npy, r_linear.npy, r2_full.npy, r2_linear.npy
//   (float64, one value per voxel; r_control.npy / r2_control.npy with a linear control model),
//   pred_linear.npy (float32 (images, voxels): the linear part's predictions), linbridge.json (the
//   same per-voxel values, per-ROI summaries, settings, time and memory), report.html.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace cortex::analysis {

struct LinBridgeJob {
  std::string model;          // model.safetensors of cortex fit (--readout two-layer or linear)
  std::string data;           // subject folder (Algonauts layout)
  std::string out;            // output folder
  std::string split = "test";  // whose images define E_z and are scored
  std::string linear_model;   // optional: a --readout linear fit on the same inputs, the paper's control
  std::string weights;        // the backbone's weights when they moved since the fit
  std::string device;         // where the backbone runs (encoding/pipeline.h, device_option)
  std::string nc_units = "auto";
  int64_t batch = 32;         // images per backbone pass
  int64_t block = 256;        // stimuli per block of the Jacobian statistics
  bool progress = true;       // a progress bar on stderr
};

struct LinBridgeSummary {
  nlohmann::json json;  // what linbridge.json holds
  std::string line;     // one line for the terminal
};

LinBridgeSummary run_linbridge(const LinBridgeJob& job);

}  // namespace cortex::analysis
