// cortex linbridge as a library call: a fitted encoding model's file (any readout cortex fit makes,
// on a frozen or fine-tuned backbone) and a subject folder -> the inherent/bias split of its
// Jacobian over the split's images (analysis/linbridge.h, docs/linbridge.md), per-voxel and per-ROI
// scores and r, and a report.
//
// The Jacobian is taken with respect to the readout's input (wrt "features": the standardised
// features of two-layer and linear encoders, the pooled features of ridge, the feature maps of map
// readouts flattened and concatenated in tap order, the grey image of the core) or to the
// normalised image through the backbone (wrt "pixels"). Paths: the two-layer closed form, the
// affine closed form (ridge and linear: JM constant), and linbridge_autodiff for everything else
// (and for every model with `autodiff`).
//
// Writes into `out` (each file through a temporary file and a rename, after everything is computed):
//   energy_share.npy, afd.npy, afd_slope.npy, r_full.npy, r_linear.npy, r2_full.npy, r2_linear.npy
//   (float64, one value per voxel; r_control.npy / r2_control.npy with a linear control model),
//   pred_linear.npy (float32 (images, voxels): the linear part's predictions), linbridge.json (the
//   same per-voxel values, per-ROI summaries, settings, time and memory), report.html; with
//   compressor "infonce" afd_down.npy, energy_share_down.npy (V) and inherent_down.npy (V, 8); and the
//   Jacobians to `save_jacobians` when given (docs/linbridge.md, "Saved Jacobians").
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "analysis/linbridge.h"
#include "data/dataset.h"

namespace cortex::analysis {

struct LinBridgeJob {
  std::string model;          // model.safetensors of cortex fit (any readout)
  std::string data;           // subject folder (Algonauts layout)
  std::string out;            // output folder
  std::string split = "test";  // whose images define E_z and are scored
  std::string linear_model;   // optional: a --readout linear fit on the same inputs, the paper's control
  std::string weights;        // the backbone's weights when they moved since the fit
  std::string device;         // where a frozen backbone extracts features (encoding/pipeline.h, device_option)
  std::string nc_units = "auto";
  std::string wrt = "features";  // features (the readout's input) or pixels (the normalised image)
  bool autodiff = false;      // the autodiff path even where a closed form exists
  bool float64 = false;       // Jacobians and model in float64 (checks; the closed forms are float64 anyway)
  std::string save_jacobians;  // .npy path for the Jacobians (empty: not saved)
  int64_t max_jacobian_bytes = int64_t(8) << 30;  // refuse a --save-jacobians file larger than this
  int64_t memory_budget = int64_t(1) << 30;        // the autodiff path's tangents and outputs per block
  bool energy_afd = false;    // also AFD on the stimulus-specific energy (afd_energy.npy; LinBridgeOptions::energy_afd)
  std::string compressor = "none";  // "infonce": also the learned compressor's scores (analysis/linbridge_down.h)
  uint64_t compressor_seed = 0;     // its projection, initial weights and pairs
  int64_t batch = 32;         // images per backbone pass
  int64_t block = 256;        // stimuli per block of the Jacobian statistics
  bool progress = true;       // a progress bar on stderr
};

struct LinBridgeSummary {
  nlohmann::json json;  // what linbridge.json holds
  std::string line;     // one line for the terminal
};

LinBridgeSummary run_linbridge(const LinBridgeJob& job);

// A fitted model file as the function LinBridge differentiates, over the images of d.
struct EncodingFunction {
  std::string readout;  // the model file's readout kind
  std::string wrt;      // "features" or "pixels"
  Tensor X;             // (N, ...) the stimuli in the coordinates of the Jacobian: (N, F) features or
                        // (N, 3, S, S) normalised images; float32 (float64 with `float64`)
  BatchFn f;            // rows of X -> (rows, V), differentiable, rows independent
  std::optional<TwoLayerParams> two_layer;  // wrt features of a two-layer encoder: its closed form
  Tensor affine_W, affine_b;                // wrt features of ridge / linear: f(z) = W z + b, W (V, F)
  std::shared_ptr<void> keep;               // owns the modules f calls
};
// Reads the model file and makes X from d's images (features through the file's backbone, taps,
// pooling and standardisation; or the prepared images). `who` starts error messages. `check`, when
// given, is called with (N, F, V) once the model is built and before the features of every image
// are made, so that a caller can refuse sizes early.
using SizeCheck = std::function<void(int64_t N, int64_t F, int64_t V)>;
EncodingFunction encoding_function(const std::string& model_path, const data::Dataset& d, const std::string& wrt,
                                   const std::string& weights, const std::string& device, int64_t batch,
                                   bool float64, const char* who = "linbridge", const SizeCheck& check = {});

// "1073741824", "512M", "8G", "64K" (powers of 1024; KiB, MiB, GiB also read) -> bytes; `flag` names
// the option in errors.
int64_t parse_bytes(const std::string& s, const char* flag);

}  // namespace cortex::analysis
