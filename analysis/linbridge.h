// LinBridge: the Jacobian JM(z) = df/dz of an encoding model split into its inherent part, shared
// by every stimulus, and the stimulus-specific bias, and the per-voxel nonlinearity scores built on
// that split. Definitions, derivations and what each statistic is optimal for: docs/linbridge.md.
//
//   JM_inherent = E_z[JM(z)]            (expectation over the analysed stimuli)
//   dJM(z)      = JM(z) - JM_inherent
//   share_v     = E||dJM_v||_F^2 / E||JM_v||_F^2      (stimulus-specific share of voxel v's energy)
//   gain_v(z)   = <dJM_v(z), JM_inherent_v> / ||JM_inherent_v||^2  (relative change of voxel v's
//                 local gain along its inherent direction; 0 for a linear voxel)
//   AFD_v       = |slope| of the least-squares line of gain_v(z_n) on t_n = rank_v(n) / (N - 1),
//                 the stimuli ordered by voxel v's predicted response (the paper's AFD, with the
//                 scalar and the normalisation stated)
//   f_lin(z)    = f(zbar) + JM_inherent (z - zbar)    (the model's linear part)
//
// Two paths with the same results:
//   - linbridge_two_layer: the closed form for f(z) = W2 sigmoid(W1 z + b1) + b2 (TwoLayerEncoder):
//     JM(z) = W2 diag(s'(h)) W1, so a stimulus's bias is the H-vector d(z) = s'(h(z)) - E s' and
//     every statistic is an H x H or V x H product: no N x V x F (nor V x F per stimulus) tensor.
//   - linbridge_autodiff: any function from a batch of stimuli (B, ...) to responses (B, V) whose
//     rows do not interact (a readout on features, or a backbone and readout from pixels): per
//     stimulus Jacobians by the engine's forward or reverse transforms (whichever needs fewer
//     passes), a block of stimuli sharing each basis direction, inside a memory budget, streamed
//     into per-voxel float64 accumulators (two passes: JM_inherent, then the gains).
// Both keep the (N, V) predictions (r needs them and AFD ranks them); no other buffer grows with N.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::analysis {

// The parameters of f(z) = W2 sigmoid(W1 z + b1) + b2: W1 (H, F), b1 (H), W2 (V, H), b2 (V), any
// float dtype (used in float64).
struct TwoLayerParams {
  Tensor W1, b1, W2, b2;
};

// One piece of a block's Jacobians as the autodiff path computes it (float64, row-major
// (k, count, width)): stimuli [first, first + count) and, in forward mode, the input directions
// [j0, j0 + k) (piece[i, n, :] = J_{first+n}[:, j0 + i], width V); in reverse mode the voxels
// [j0, j0 + k) (piece[i, n, :] = J_{first+n}[j0 + i, :], width F).
struct JacobianPiece {
  int64_t first, count, j0, k, width;
  bool forward;
  const double* data;
};

struct LinBridgeOptions {
  int64_t block = 256;                      // stimuli per block (closed form)
  int64_t memory_budget = int64_t(1) << 30;  // bytes for the autodiff path's tangents and outputs per pass
  bool keep_gain = false;                    // keep gain_v(z_n) (N, V) in the result
  // Also AFD on the stimulus-specific energy (afd_energy below). Its closed form costs V H^2 per
  // stimulus (the other statistics cost H (F + V)); the autodiff path's extra cost is small.
  bool energy_afd = false;
  // Called after each block with (stimuli done, total work) over all passes; may be empty.
  std::function<void(int64_t done, int64_t total)> progress;
  // The autodiff path hands every Jacobian piece of its first pass here (each stimulus and
  // direction exactly once), e.g. to stream the (N, V, F) Jacobians to disk; may be empty.
  std::function<void(const JacobianPiece&)> jacobian_sink;
};

struct LinBridgeResult {
  Tensor z_mean;         // (F) float64: zbar, over the analysed stimuli
  Tensor inherent;       // (V, F) float64: JM_inherent
  Tensor energy_total;   // (V) float64: E||JM_v||_F^2
  Tensor energy_bias;    // (V) float64: E||dJM_v||_F^2
  Tensor energy_share;   // (V) float64: energy_bias / energy_total (0 where the total is 0)
  Tensor afd;            // (V) float64
  Tensor afd_slope;      // (V) float64: the signed slope (AFD is its absolute value)
  Tensor pred_full;      // (N, V) float32: f(z_n)
  Tensor pred_linear;    // (N, V) float32: f_lin(z_n)
  Tensor gain;           // (N, V) float32 with keep_gain, else undefined
  // With energy_afd (docs/linbridge.md, "AFD on the stimulus-specific energy"): the least-squares
  // slope of e_v(z) = ||dJM_v(z)||^2 / E||JM_v||^2 (whose mean over stimuli is the energy share) on
  // the same t as AFD, and its absolute value; (V) float64, else undefined.
  Tensor afd_energy, afd_energy_slope;
  // The autodiff path: Jacobian passes (basis directions x blocks) and which mode it chose.
  std::string mode;      // "closed-form", "forward" or "reverse"
  int64_t peak_bytes = 0;  // the largest working buffer held for one block (tangents + outputs)
};

// The closed form. Z: (N >= 2, F) stimuli (already standardised as the model's inputs are).
LinBridgeResult linbridge_two_layer(const TwoLayerParams& p, const Tensor& Z, const LinBridgeOptions& opt = {});

// The linear encoder f(z) = W z + b, W (V, F): JM = W for every stimulus, so the bias, the share,
// the gains and AFD are exactly 0, JM_inherent = W and f_lin = f.
LinBridgeResult linbridge_linear(const Tensor& W, const Tensor& b, const Tensor& Z, const LinBridgeOptions& opt = {});

// Rows-independent model: X (N, ...) -> (N, V). The Jacobian of each stimulus is taken with respect
// to its own input x_n (numel F per stimulus); float32 or float64 inputs.
using BatchFn = std::function<Tensor(const Tensor&)>;
LinBridgeResult linbridge_autodiff(const BatchFn& f, const Tensor& X, const LinBridgeOptions& opt = {});

// AFD from (N, V) gains and predictions (used by both paths; exposed for tests): per voxel, the
// least-squares slope of gain on rank / (N - 1) of the prediction (ties broken by stimulus index).
Tensor afd_slopes(const Tensor& gain, const Tensor& pred);

// Area under the ROC curve of `score` separating positives from negatives (ties count one half):
// the probability that a random positive scores above a random negative.
double roc_auc(const std::vector<double>& positives, const std::vector<double>& negatives);

}  // namespace cortex::analysis
