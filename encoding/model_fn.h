// A fitted encoding model as one differentiable function of the image: pixels in [0, 1]
// float32 (B, 3, S, S) -> predicted voxels (B, V), through the backbone's own normalisation
// ((x - mean) / std, as encoding::to_model_input), the backbone (frozen, or fine-tuned and read
// from the model file) and the readout, every step an autograd op so that gradients with
// respect to the pixels exist (analysis/attribution.h). S is the model's input size (image_size,
// or core_size for --readout core); images of another size are resized (bilinear, uint8) first,
// as cortex predict does, so that f(load_pixels(...)) equals cortex predict's output.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "encoding/features.h"
#include "encoding/model_file.h"
#include "encoding/pipeline.h"
#include "models/backbone.h"
#include "models/readouts/readouts.h"
#include "tensor/tensor.h"

namespace cortex::encoding {

class ModelFn {
 public:
  // (B, 3, S, S) float32 pixels in [0, 1] -> (B, V) float32. Records on the autograd tape when
  // grad mode is on; the model's own parameters never require grad (only the pixels may).
  Tensor operator()(const Tensor& pixels) const;
  // The outputs and, from the same forward pass, the activations of the backbone's first tap (frozen
  // or fine-tuned) as the backbone gives them, before any pooling or standardisation: (B, C, H, W)
  // maps, or (B, T, D) tokens for a ViT tap. What cortex dream's feature-space diversity compares
  // (analysis::TapFn). A model without a backbone (--tap pixels, --readout core) has no tap: an error.
  std::pair<Tensor, Tensor> with_features(const Tensor& pixels) const;

  std::string path;          // the model file
  ModelSettings settings;    // as read from it
  EncodingSpec spec;         // what cortex predict would run (spec_of_model)
  int64_t size = 0;          // S: the input size
  int64_t voxels = 0;        // V
  Preprocessing prep;        // the normalisation statistics
  // What is inside (one of three forms):
  std::shared_ptr<models::Backbone> backbone;         // frozen backbone; null for pixels taps and core
  std::shared_ptr<models::Readout> readout;           // trained and Gaussian readouts; the fine-tuned net
  Tensor ridge_w, ridge_b;                            // ridge: (F, V) float32 weights and (V) intercept
  Tensor z_mean, z_std;                               // standardised readouts: (1, F) input statistics
  // Readout positions when the readout has them: (V, 2) float64 receptive-field centres in input
  // pixels (x = column, y = row; pixel centres at integers, 0..S-1), from Readout::rf_centres
  // mapped through the feature map's pixel grid; undefined otherwise.
  Tensor rf_centres_px() const;

 private:
  Tensor run(const Tensor& pixels, Tensor* tap) const;  // *tap (when given): the first tap's activations
};

// Reads a cortex fit model file and builds its function. weights: the backbone's weights when
// they moved since the fit (empty: the file's own, or its random:SEED). The backbone runs on the
// host in float32 whatever dtype the fit used (attribution needs float32 gradients); a bf16 fit is
// evaluated in float32 and says so on stderr.
ModelFn load_model_fn(const std::string& model_file, const std::string& weights = "");

// Images for a model of input size `size`, as float32 (N, 3, size, size) in [0, 1] (the uint8
// value / 255 after cortex predict's resize). `images`: a subject folder of the Algonauts layout
// (its test split's images), a folder of PNG/JPEG files, a uint8 (N, H, W[, 3]) .npy or an HDF5
// brick. rows: which images (empty: all). *names (when given): one label per returned image.
Tensor load_pixels(const std::string& images, int64_t size, const std::vector<int64_t>& rows = {},
                   std::vector<std::string>* names = nullptr);

// "3,7,10-12" -> {3, 7, 10, 11, 12}: each in [0, n) (n < 0: unchecked), no duplicates, in the
// order given. `flag` names the option in errors.
std::vector<int64_t> parse_index_list(const std::string& s, int64_t n, const char* flag = "--voxels");

// The ROI columns of a model's voxels: from `data` (a subject folder: its ROI masks for the model's
// hemi) when given, else from metrics.json beside the model file ("roi_columns", written by cortex
// fit). An error when neither has them.
std::map<std::string, std::vector<int64_t>> roi_columns(const ModelFn& f, const std::string& data = "");

}  // namespace cortex::encoding
