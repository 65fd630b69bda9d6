// LinBridge's learned compressor (the paper's JM_down, issue 16 item 2b): each stimulus's Jacobian
// row of a voxel is sketched by a seeded Gaussian projection, a small MLP trained with symmetric
// InfoNCE maps the sketch to a unit vector, and the inherent part, the stimulus-specific share and
// AFD are taken in that embedding. Every choice is stated in docs/linbridge.md, "The learned
// compressor (JM_down)".
//
//   x_{n,v}   = JM_v(z_n) P / ||JM_inherent,v P||     (S = 32 columns; P (F, S) ~ N(0, 1/S), seeded)
//   e_{n,v}   = g(x_{n,v}) / ||g(x_{n,v})||            (g: S -> 64 tanh -> 8)
//   inherent_down_v = E_n e_{n,v};  dJM_down = e - inherent_down
//   energy_share_down_v = E||dJM_down||^2 / E||e||^2 = 1 - ||inherent_down_v||^2
//   afd_down_v = || least-squares slope (an 8-vector) of e_{n,v} on t = rank_v(n) / (N - 1) ||
#pragma once
#include <cstdint>
#include <vector>

#include "analysis/linbridge.h"
#include "tensor/tensor.h"

namespace cortex::analysis {

struct DownOptions {
  int64_t sketch = 32;         // columns of the projection P
  int64_t hidden = 64;         // the MLP's hidden units (tanh)
  int64_t dim = 8;             // the embedding's dimension
  double temperature = 0.1;    // InfoNCE's
  int64_t steps = 400;         // Adam steps
  int64_t batch = 256;         // positive pairs per step (the other pairs of the batch are the negatives)
  double lr = 1e-3;            // Adam's
  uint64_t seed = 0;           // P, the MLP's initial weights and the pairs drawn
};

struct DownResult {
  Tensor inherent_down;        // (V, dim) float64
  Tensor energy_share_down;    // (V) float64
  Tensor afd_down;             // (V) float64
  std::vector<double> loss;    // InfoNCE per step
};

// P (F, S): N(0, 1/S) entries from the counter-based generator seeded `seed` (the same on any device).
Tensor sketch_projection(int64_t F, int64_t S, uint64_t seed);

// The two-layer closed form's sketches JM_v(z_n) P = (W2[v] * s'(z_n)) (W1 P): (N, V, S) float32.
Tensor sketch_two_layer(const TwoLayerParams& p, const Tensor& Z, const Tensor& P);

// Accumulates one Jacobian piece of linbridge_autodiff (LinBridgeOptions::jacobian_sink) into the
// sketches `sk` (N, V, S) float64 (zeros to start): sk[n, v] += J_n[v, :] P over the piece's part.
void add_sketch(Tensor& sk, const JacobianPiece& piece, const Tensor& P);

// Trains the compressor on sketches (N >= 2, V, S) with positives that are neighbours in each
// voxel's order of predicted responses `pred` (N, V), then scores every voxel.
DownResult linbridge_down(const Tensor& sketches, const Tensor& pred, const DownOptions& opt = {});

}  // namespace cortex::analysis
