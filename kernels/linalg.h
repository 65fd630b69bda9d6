// Matrix products and dense linear algebra. CPU: kernels/cpu/matmul.cpp and kernels/cpu/linalg.cpp (Eigen).
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels {

// NumPy matmul semantics: 1-D operands are promoted and the added dim removed; leading (batch)
// dims broadcast. Strided inputs (e.g. transposed views) are read without a copy where Eigen can.
Tensor matmul(const Tensor& a, const Tensor& b);
// y = x @ w^T + b for x (..., in), w (out, in), b (out) or undefined: the Linear layer's kernel.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);

// Symmetric eigendecomposition of a (n, n): eigenvalues ascending, eigenvectors in the columns.
struct Eigh { Tensor values, vectors; };
Eigh eigh(const Tensor& a);
// The k largest (or smallest) eigenpairs, values sorted descending for largest (ascending for
// smallest), each vector's sign fixed so that its sum is positive (ties: first non-zero entry positive).
Eigh eigh_topk(const Tensor& a, int64_t k, bool largest = true);
// Thin SVD of a (m, n): u (m, r), s (r) descending, vh (r, n), r = min(m, n).
struct Svd { Tensor u, s, vh; };
Svd svd(const Tensor& a);
// Lower Cholesky factor of a symmetric positive definite matrix; throws when it is not.
Tensor cholesky(const Tensor& a);
// Solves a x = b for square a (n, n) and b (n) or (n, k), with partial-pivoting LU; throws when singular.
Tensor solve(const Tensor& a, const Tensor& b);
// Solves (l l^T) x = b given the lower Cholesky factor l.
Tensor cholesky_solve(const Tensor& l, const Tensor& b);
// Reduced QR of a (m, n): q (m, r), r (r, n), r = min(m, n); diag(r) >= 0.
struct Qr { Tensor q, r; };
Qr qr(const Tensor& a);

}  // namespace cortex::kernels
