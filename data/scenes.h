// Scenes with known pixel masks, for checking segmentation scores offline (docs/alignedcut.md,
// "Segmentation"). Each image is a textured background with 1..max_objects objects drawn on it
// (later ones occlude earlier ones); each object has a class 1..K, and each class its own texture:
//   class c (1..K): an oriented grating, orientation (c - 1) * 180deg / K, frequency
//     0.06 + 0.18 (c - 1) / max(1, K - 1) cycles per pixel, with its own colour (hue (c - 1) / K,
//     saturated), and per-object phase, a +-10deg orientation jitter and a small colour jitter;
//   background: per image, the sum of two low-contrast gratings of random orientation and
//     frequency in greyish colours (saturation <= 0.25);
//   everywhere: Gaussian pixel noise (sd `noise`, in 0..255 units).
// Shapes: ellipse, rotated rectangle, or a blob (an ellipse whose radius varies with the angle by
// two random harmonics). Sizes: semi-axes in [0.12, 0.3] * size.
// Labels: 0 background, c for class c; with border > 0, pixels within `border` pixels (Chebyshev)
// of a pixel of another label are set to 255 ("ignore"), as VOC marks object outlines.
// Everything is a pure function of (config, seed): the Philox stream of image i starts at block
// i << 24, so images do not depend on how many others are drawn.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace cortex::data {

struct SceneConfig {
  int64_t images = 16;
  int64_t size = 64;       // images are size x size
  int classes = 3;         // K, 1..254
  int max_objects = 3;     // objects per image: uniform in 1..max_objects
  int border = 0;          // ignore band half-width in pixels (0: none)
  double noise = 8.0;      // pixel noise sd (0..255 units)
  uint64_t seed = 0;
};

struct Scenes {
  SceneConfig config;
  Tensor images;  // uint8 (N, S, S, 3)
  Tensor labels;  // uint8 (N, S, S): 0 background, 1..K class, 255 ignore
  Tensor figure;  // uint8 (N, S, S): 0 background, 1 object, 255 ignore
};

Scenes simulate_scenes(const SceneConfig& cfg);

// Writes into dir (created if needed; every file through AtomicFile):
//   images.npy           uint8 (N, S, S, 3)
//   labels.npy, figure.npy   uint8 (N, S, S), the masks below as arrays
//   masks/NNNNN.png      class masks as VOC palette PNGs (io::write_index_mask, VOC colours)
//   figure/NNNNN.png     figure-ground masks (io::write_binary_mask)
//   scenes.json          the config and the class textures (orientation, frequency, colour)
void write_scenes(const Scenes& s, const std::string& dir);

}  // namespace cortex::data
