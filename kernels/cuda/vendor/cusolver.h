// The vendor seam of the CUDA backend's dense linear algebra (GPU builds only: kernels/cuda/vendor/
// *.cpp are compiled when CORTEX_HAVE_CUDA): cuSOLVER's Cholesky (potrf) and symmetric
// eigensolvers (syevd, syevdx) behind a few functions, so kernels/cuda/linalg.cu needs no cuSOLVER
// header and the emulated build never sees one. Matrices are row-major n x n in device memory,
// the symmetric input given by its lower triangle (cuSOLVER reads it as the column-major upper one).
// Every function synchronises with the device before it returns (it reads cuSOLVER's info).
#pragma once
#include <cstdint>

namespace cortex::kernels::cuda::vendor {

// In place: `a`'s row-major lower triangle (the column-major upper one) holds a symmetric matrix;
// on return it holds the lower Cholesky factor L (a = L L^T) and the strict upper triangle is
// untouched. Returns cuSOLVER's info: 0, or i > 0 when the leading minor of order i is not
// positive definite. Throws on a cuSOLVER or CUDA error.
int potrf_lower(float* a, int64_t n);
int potrf_lower(double* a, int64_t n);

// Symmetric eigendecomposition of the symmetric matrix in `a`'s row-major lower triangle, in place: eigenvalues
// ascending into w (n); row i of `a` becomes the eigenvector of w[i] (cuSOLVER writes V
// column-major, which is V^T row-major). Throws when it does not converge.
void syevd(float* a, int64_t n, float* w);
void syevd(double* a, int64_t n, double* w);

// Eigenpairs lo..hi (0-based, inclusive, in ascending order of eigenvalue) of the symmetric
// matrix in `a`'s row-major lower triangle: values into w (hi - lo + 1), their eigenvectors into the first hi - lo + 1 rows
// of `a` (one per row, as syevd). Throws when it does not converge.
void syevdx(float* a, int64_t n, int64_t lo, int64_t hi, float* w);
void syevdx(double* a, int64_t n, int64_t lo, int64_t hi, double* w);

}  // namespace cortex::kernels::cuda::vendor
