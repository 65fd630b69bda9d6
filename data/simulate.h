// The ground-truth simulator: procedural images, voxels of known kinds with retinotopic receptive
// fields, single-trial noise and a noise ceiling, written in the Algonauts 2023 layout (DATA.md)
// so the same readers, fits and metrics run on data whose answer is known.
//
// Voxel kinds (each kind is one ROI):
//   simple     linear Gabor: r = <G, gray>                 (G: unit-norm Gabor, zero beyond 3 sigma)
//   complex    Gabor energy: r = sqrt(<G0, gray>^2 + <G90, gray>^2)
//   normalized divisive normalisation: E_theta^2 / (1 + mean over 4 orientations theta + k pi/4 of E^2)
//   category   a fixed random 2-layer conv net (3x3, ReLU, 2x2 pool, 3x3, ReLU) pooled by the voxel's
//              Gaussian receptive field with random channel weights
// gray = mean of R, G, B / 255, float64, (S, S). Positions x, y are in pixels (column, row).
// Voxels with x < S/2 (left visual field) go to rh, the rest to lh, as in cortex. Every voxel is then
// standardised over the training images (gain, offset), so a single trial has noise sd 1 / snr.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::data {

struct SimConfig {
  int subject = 1;
  int64_t n_train = 600;
  int64_t n_test = 100;
  int64_t voxels = 500;
  int64_t image_size = 64;
  uint64_t seed = 0;
  double snr = 1.0;   // per voxel: noise sd = sd of the noiseless training responses / snr
  int repeats = 3;    // single trials per test image; test_fmri is their mean
};

enum class VoxelKind : int32_t { Simple = 0, Complex = 1, Normalized = 2, Category = 3 };
const char* kind_name(VoxelKind k);  // "simple", ...

struct Voxel {
  VoxelKind kind;
  double x, y, size;       // receptive field centre (pixels) and Gabor / Gaussian sigma (pixels)
  double orientation;      // radians
  double frequency;        // cycles per pixel
  double phase;            // radians (simple cells)
  double gain, offset;     // response = gain * model + offset
  double noise_sd;
  int hemi;                // 0 lh, 1 rh
  int64_t hemi_index;      // column within its hemisphere's arrays
};

// A unit-L2-norm Gabor on an (S, S) grid, float64, exactly zero where |dx| or |dy| > 3 sigma.
Tensor gabor_filter(int64_t size, double x, double y, double sigma, double theta, double freq, double phase);
// uint8 (H, W, C) -> float64 (H, W), mean over channels / 255.
Tensor image_to_gray(const Tensor& img);
// One procedural uint8 (S, S, 3) image: image i of the stream for `seed` (1/f noise, gratings,
// shapes, textures in turn by a seeded draw).
Tensor procedural_image(int64_t size, uint64_t seed, int64_t i);

struct Simulation {
  SimConfig config;
  std::vector<Voxel> voxels;
  Tensor train_images, test_images;  // uint8 (N, S, S, 3)
  Tensor train_clean, test_clean;    // float64 (N, V) noiseless responses, global voxel order
  Tensor train_fmri;                 // float32 (N, V) one noisy trial
  Tensor test_trials;                // float32 (M, R, V)
  Tensor test_fmri;                  // float32 (M, V) mean of the trials
  Tensor noise_ceiling;              // float64 (V,) estimated from the trials (noise_ceiling_from_trials)
};

// Noiseless responses of `voxels` to uint8 images (N, S, S, 3): float64 (N, V).
Tensor voxel_responses(const std::vector<Voxel>& voxels, const Tensor& images, uint64_t seed);

Simulation simulate(const SimConfig& cfg);

// NSD/Algonauts noise ceiling from repeated trials (M images, R repeats, V voxels), as a fraction:
// noise var = mean over images of the across-repeat variance (ddof 1); signal var = max(0, variance
// of all trials - noise var); ncsnr = sqrt(signal / noise); NC = ncsnr^2 / (ncsnr^2 + 1/R).
Tensor noise_ceiling_from_trials(const Tensor& trials);

// Writes `sim` as subjXX/ under out_dir (Algonauts layout, roi_masks/{lh,rh}.sim-kinds_challenge_space.npy
// + mapping_sim-kinds.json, ground_truth.json, ground_truth.npz). Every file goes through AtomicFile.
// Returns the subject folder.
std::string write_simulation(const Simulation& sim, const std::string& out_dir);

// The planted voxels of a subject folder written by write_simulation (its ground_truth.json), in
// the column order load_algonauts gives for `hemi` ("lh", "rh" or "both": lh columns, then rh),
// and the simulated image size (positions are in its pixels).
struct GroundTruth {
  int64_t image_size = 0;
  std::vector<Voxel> voxels;
};
GroundTruth read_ground_truth(const std::string& subject_dir, const std::string& hemi);

}  // namespace cortex::data
