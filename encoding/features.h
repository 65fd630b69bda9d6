// Images into a backbone's activations, one code path for cortex fit, predict and features.
//
// Preprocessing comes from the backbone (models::Backbone::preprocess(): ImageNet statistics for
// torchvision / timm layouts, CLIP's for the CLIP layout) so that the same model sees the same
// input whichever command runs it. Geometry is the one choice left to the caller:
//   crop = false  the whole image resized (bilinear) to size x size: no part of the image is cut
//                 off, so a map cell keeps its place in the image (cortex fit / predict, whose
//                 receptive-field positions depend on it);
//   crop = true   the source library's transform: torchvision Resize(size * 256 / 224) (bilinear),
//                 CenterCrop(size); CLIP Resize(size) (bicubic), CenterCrop(size) (cortex features).
// Then ToTensor and Normalize with the backbone's statistics.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "models/backbone.h"
#include "tensor/tensor.h"

namespace cortex::encoding {

struct Preprocessing {
  models::Preprocess stats = models::Preprocess::ImageNet;  // whose mean / std normalise the input
  int64_t size = 224;                                       // the square input size
  bool crop = false;                                        // see the top of this file
};

// The preprocessing of backbone m (null: no backbone, ImageNet statistics) at this size.
Preprocessing preprocessing_for(const models::Backbone* m, int64_t size, bool crop);

// uint8 (H, W, 3) -> float32 (3, size, size): prepare_geometry then to_model_input, on the host.
Tensor prepare_image(const Tensor& img, const Preprocessing& p);
// The geometry of p alone (resize, and crop when p.crop) on a uint8 (H, W, 3) image, on the host:
// uint8 (size, size, 3).
Tensor prepare_geometry(const Tensor& img, const Preprocessing& p);
// ToTensor and Normalize with p's statistics on uint8 images (H, W, 3) or (N, H, W, 3), computed on
// the images' device with the tensor ops (a batch moved to a GPU as uint8 crosses the bus at a
// quarter of float32's bytes and is converted there): float32 (3, H, W) or (N, 3, H, W), the same
// bits as io::to_float_chw + io::normalize (a division by 255, then (x - mean) / std in float32).
Tensor to_model_input(const Tensor& images, const Preprocessing& p);
// Rows `rows` of d, prepared: float32 (B, 3, size, size).
Tensor prepare_rows(const data::Dataset& d, const std::vector<int64_t>& rows, const Preprocessing& p);

// What a readout reads: flat features (N, F), one map (N, C, H, W), one map per tap, the grey
// image (N, 1, S, S) for a data-driven core, or (fine-tuning) the prepared images (N, 3, S, S).
enum class Input { Flat, Map, Maps, Grey, Images };

// How the readout inputs of a dataset are made.
struct InputSpec {
  Input input = Input::Flat;
  std::vector<std::string> taps;  // backbone layers; {"pixels"}: the grey image itself
  int64_t pool = 4;               // Flat: each (C, H, W) map average-pooled to pool x pool
  Preprocessing prep;
  int64_t batch = 32;             // images per forward pass
  Device device = Device::cpu();  // where the backbone runs; the inputs come back to the host
  DType compute_dtype = DType::Float32;  // the backbone's GEMMs, convolutions and attention (docs/bf16.md)
  std::string readout;            // for error messages
};

// The readout's inputs for one prepared batch x (B, 3, S, S): one tensor, or one per tap (Maps).
// *first_tap (when given): the first tap's activations as the backbone gives them (m must be set).
std::vector<Tensor> inputs_of(models::Backbone* m, const Tensor& x, const InputSpec& s, Tensor* first_tap = nullptr);

// The readout's inputs for every row of d, in batches, with a progress line on stderr
// ("<prefix>: <what> features i/n images"). m may be null for Grey / pixels inputs.
std::vector<Tensor> readout_inputs(models::Backbone* m, const data::Dataset& d, const InputSpec& s, const char* what,
                                   const std::string& prefix = "fit");

// Activations at `taps` (plus "output") of n images, batch by batch (cortex features): batch_of(b, e)
// returns images [b, e) as a prepared float32 (e - b, 3, H, W) tensor on the host; each batch runs on
// `device` and comes back to the host. Progress on stderr.
std::map<std::string, Tensor> tap_activations(models::Backbone& m, int64_t n,
                                              const std::function<Tensor(int64_t, int64_t)>& batch_of,
                                              const std::vector<std::string>& taps, int64_t batch, Device device);

}  // namespace cortex::encoding
