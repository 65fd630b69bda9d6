// Ridge regression with a per-voxel penalty chosen by k-fold cross-validation (the CV of himalaya's
// solve_ridge_cv_svd, solved differently): for each fold and penalty one float64 Cholesky of the
// fold's Gram matrix (p x p, or n_tr x n_tr when a training fold has fewer rows than features),
// cut out of one Gram of all rows, gives every voxel's validation prediction; then a refit on all
// training data with each voxel's best penalty, one factorisation per penalty in use.
// Derivation, costs and the choice over one SVD per fold: docs/ridge.md.
//
// Precision: inputs may be float32 or float64. Centring, the Gram matrices, the factorisations and
// solves, the R^2 sums and the refit are float64 (small penalties sit near the bottom of the Gram's
// spectrum); the large products (X^T Y, and per penalty the (n_val, d) x (d, voxels) prediction) run
// in the input dtype, as himalaya does. Weights and intercept are returned in the input dtype.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::models {

struct RidgeCV {
  Tensor weights;     // (p, v), dtype of X
  Tensor intercept;   // (v), dtype of X
  Tensor best_alpha;  // (v) float64: the penalty with the highest mean CV score per voxel
  Tensor cv_scores;   // (n_alphas, v) float64: R^2 on held-out folds, averaged over folds
  std::vector<double> alphas;
};

// X (n, p), Y (n, v): float32 or float64, finite, same dtype, on one device (cpu, emu or cuda: the
// work goes through kernel entries, so it runs where the data is; weights and intercept come back
// on that device, best_alpha and cv_scores on the CPU). alphas: non-empty, each > 0.
// folds in [2, n]; rows are shuffled with `seed` before being cut into folds. voxel_batch > 0:
// at most this many voxels scored at once, in blocks of min(voxel_batch, max(128, ceil(v / 64)))
// voxels (memory per block at most 16 * voxel_batch * (n + d) bytes, d = min(p, n_tr)). Under MPI
// ranks the blocks, the Gram's column blocks and the refit's chunks are shared out and gathered in
// a fixed order, so the result is the same bits for any number of ranks (docs/distributed.md);
// besides, the fit holds a float64 Gram (d^2), X^T Y (p, v) when n_tr >= p, and a
// fold's n_alphas maps (n_val, d). The intercept is handled by centring X and Y with the
// training-fold means (the penalty does not shrink it). R^2 is taken about the validation fold's
// own mean; a voxel constant on a fold scores 0 there.
RidgeCV fit_ridge_cv(const Tensor& X, const Tensor& Y, const std::vector<double>& alphas, int folds,
                     uint64_t seed, int64_t voxel_batch = 4096);

// Closed-form ridge for one penalty (alpha >= 0; 0 gives least squares / minimum norm) with the
// intercept handled by centring: weights (p, v) = V diag(s/(s^2+alpha)) U^T Yc, intercept (v).
struct Ridge {
  Tensor weights, intercept;
};
Ridge fit_ridge(const Tensor& X, const Tensor& Y, double alpha);

// X (n, p) @ weights (p, v) + intercept (v), in the dtype of X.
Tensor ridge_predict(const Tensor& X, const Tensor& weights, const Tensor& intercept);
inline Tensor predict(const Tensor& X, const RidgeCV& m) { return ridge_predict(X, m.weights, m.intercept); }
inline Tensor predict(const Tensor& X, const Ridge& m) { return ridge_predict(X, m.weights, m.intercept); }

}  // namespace cortex::models
