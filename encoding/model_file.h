// The model file written by cortex fit and read by cortex predict: a safetensors file whose
// tensors are the readout's state (and a fine-tuned backbone's) and whose string metadata records
// how its inputs were made. One documented, versioned format: docs/model-file.md lists every key.
// A reader refuses a file of another format_version, or one missing a key, with one line naming
// the file and the key.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::encoding {

// The format this build writes and reads (docs/model-file.md says what changed between versions).
inline constexpr int64_t kModelFormatVersion = 1;

// The settings a model file records (metadata keys of the same names).
struct ModelSettings {
  std::string readout;        // ridge, gaussian-fwrf, gaussian, factorized, fwrf, pooled-linear, two-layer, linear, core
  std::string arch, config;   // backbone preset, or (arch empty) a JSON config path
  std::string tap;            // comma-separated backbone layers, or "pixels"
  std::string weights;        // backbone weights file, or "random:SEED"
  std::string hemi;           // lh, rh or both: the response columns
  std::string loss;           // mse, l1 or poisson (poisson: elu + 1 output)
  int64_t pool = 4, image_size = 224, core_size = 32, hidden = 128;
  bool finetune = false;      // the backbone was trained and is in the file under "backbone."
  // The gaussian readout's options; optional keys (a file without them reads as these defaults).
  std::string gaussian_sigma = "isotropic";  // full, uncorrelated or isotropic
  int64_t shared_features = 0;               // 0: one feature vector per voxel
  bool position_mlp = false;                 // positions from the retinotopic MLP ("source_grid" in the file)
  std::string dtype = "fp32";                // the frozen backbone's compute dtype (optional key; docs/bf16.md)
};

// The metadata of a model file: every key of docs/model-file.md, format_version included.
std::map<std::string, std::string> model_metadata(const ModelSettings& s);

// The settings of a model file's metadata; `path` names the file in errors. Refuses a missing or
// other format_version, a missing key and a malformed integer or flag.
ModelSettings model_settings(const std::map<std::string, std::string>& meta, const std::string& path);

// Writes tensors + metadata atomically (a temporary file, then renamed).
void write_model_file(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const ModelSettings& s);

// Reads a model file: its tensors and settings (errors as model_settings).
std::pair<std::map<std::string, Tensor>, ModelSettings> read_model_file(const std::string& path);

}  // namespace cortex::encoding
