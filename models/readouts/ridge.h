// Ridge regression with a per-voxel penalty chosen by k-fold cross-validation, in the manner of
// himalaya's solve_ridge_cv_svd: one thin SVD of the training features per fold serves every
// penalty and every voxel (voxels in batches to bound memory), then a refit on all training data
// with each voxel's best penalty.
//
// Precision: inputs may be float32 or float64. Centring, the SVDs, the projections U^T Y and the
// validation scores are computed in float64 (the spectrum s/(s^2+alpha) loses digits in float32
// when alpha spans many decades); weights and intercept are returned in the input dtype.
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

// X (n, p), Y (n, v): float32 or float64, finite, same dtype, CPU. alphas: non-empty, each > 0.
// folds in [2, n]; rows are shuffled with `seed` before being cut into folds. voxel_batch > 0:
// voxels scored at once (memory ~ 8 * voxel_batch * (n + rank) bytes). The intercept is handled by
// centring X and Y with the training-fold means (the penalty does not shrink it).
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
