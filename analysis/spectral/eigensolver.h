// Top-k eigenpairs of a symmetric matrix: dense (kernels::eigh_topk, Eigen's full solver) and two
// matrix-free solvers that only see the matrix through products with blocks of vectors:
//   lanczos_topk   block Lanczos with full reorthogonalisation and thick restarts (Krylov-Schur
//                  for a symmetric operator; block 1 is plain thick-restart Lanczos, Wu & Simon 2000);
//                  the k algebraically largest eigenvalues.
//   subspace_topk  randomized block subspace iteration with Rayleigh-Ritz and a residual test
//                  (Halko, Martinsson & Tropp 2011, Alg. 4.4 iterated to convergence); the k
//                  eigenvalues of largest magnitude, which are the largest for a positive
//                  semi-definite operator (every normalised affinity of this module is one).
// Every result has eigenvalues sorted descending and the sign convention of kernels::eigh_topk:
// each vector's sum is positive (when the sum is zero to rounding, the first entry that is not).
#pragma once
#include <cstdint>
#include <functional>

#include "tensor/tensor.h"

namespace cortex::analysis::spectral {

struct Eigenpairs {
  Tensor values;           // (k), descending
  Tensor vectors;          // (n, k), orthonormal columns
  int64_t matvecs = 0;     // columns multiplied by the operator (a block of b counts b)
  int64_t iterations = 0;  // restarts (Lanczos) or iterations (subspace)
  double residual = 0;     // max_i |A v_i - lambda_i v_i| / max_j |lambda_j| as estimated at the end
  bool converged = true;
};

// y = A x for x (n, b), contiguous, of the solver's dtype; returns y (n, b) of that dtype.
using MatVec = std::function<Tensor(const Tensor& x)>;

struct EigOptions {
  DType dtype = DType::Float64;  // of the basis and of the blocks given to the operator
  double tol = 1e-8;             // on |A v - lambda v| / max |lambda| for each of the k pairs
  int64_t max_iter = 500;        // restarts (Lanczos) or iterations (subspace)
  int64_t block = 1;             // Lanczos block size b (columns per operator call)
  int64_t basis = 0;             // Lanczos basis size before a restart; 0: max(2k, k + 32) plus a block
  int64_t oversample = 0;        // subspace iteration: block = k + oversample; 0: max(k, 10)
  uint64_t seed = 0;             // of the random start block (Philox)
};

// Dense: the k largest eigenpairs of the symmetric a (n, n) through kernels::eigh_topk (Eigen's
// SelfAdjointEigenSolver, O(n^3)). Computed in a's dtype.
Eigenpairs eigh_topk_dense(const Tensor& a, int64_t k);
Eigenpairs lanczos_topk(int64_t n, int64_t k, const MatVec& matvec, const EigOptions& opt = {});
Eigenpairs subspace_topk(int64_t n, int64_t k, const MatVec& matvec, const EigOptions& opt = {});

// A MatVec over a dense symmetric a (n, n) (float32 or float64): one GEMM per block, computed in
// a's dtype, the block converted from and back to the solver's dtype when they differ.
MatVec dense_matvec(const Tensor& a);

// The cosine of the largest principal angle between the column spaces of a (n, ka) and b (n, kb)
// (float32/float64, any device, full column rank): the smallest singular value of Qa^T Qb with Qa,
// Qb orthonormal bases (Householder QR, float64), over min(ka, kb) angles; 1 when the spaces agree
// (one contains the other), 0 when some direction of one is orthogonal to the other. Compares
// eigenvector subspaces whatever the signs, order or rotation within the subspace.
double min_principal_cosine(const Tensor& a, const Tensor& b);

// Flips columns of v (n, k) in place to the sign convention above (v contiguous, float32/float64).
void fix_signs(Tensor& v);

}  // namespace cortex::analysis::spectral
