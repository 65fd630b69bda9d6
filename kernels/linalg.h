// Dense linear algebra: decompositions and solves. Entry: kernels/linalg.cpp; CPU:
// kernels/cpu/linalg.cpp (Eigen). Matrix products are their own family (kernels/matmul.h).
#pragma once
#include "tensor/tensor.h"

namespace cortex::kernels {

// Symmetric eigendecomposition of a (n, n): eigenvalues ascending, eigenvectors in the columns.
struct Eigh {
  Tensor values, vectors;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(values); f(vectors); }
};
Eigh eigh(const Tensor& a);
// The k largest (or smallest) eigenpairs, values sorted descending for largest (ascending for
// smallest), each vector's sign fixed so that its sum is positive (ties: first non-zero entry positive).
Eigh eigh_topk(const Tensor& a, int64_t k, bool largest = true);
// Thin SVD of a (m, n): u (m, r), s (r) descending, vh (r, n), r = min(m, n).
struct Svd {
  Tensor u, s, vh;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(u); f(s); f(vh); }
};
Svd svd(const Tensor& a);
// Lower Cholesky factor of a symmetric positive definite matrix a (n, n), or of each matrix of a
// batch (..., n, n); throws when one is not. The strict upper triangle of the result is zero.
Tensor cholesky(const Tensor& a);
// Solves a x = b for square a (n, n) and b (n) or (n, k), with partial-pivoting LU; throws when singular.
Tensor solve(const Tensor& a, const Tensor& b);
// Solves (l l^T) x = b given the lower Cholesky factor l (n, n) and b (n) or (n, k); batched: l
// (..., n, n) with b (..., n) or (..., n, k), the same batch dims (an expanded b is fine). Only
// the lower triangle of l is used.
Tensor cholesky_solve(const Tensor& l, const Tensor& b);
// Reduced QR of a (m, n): q (m, r), r (r, n), r = min(m, n); diag(r) >= 0.
struct Qr {
  Tensor q, r;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(q); f(r); }
};
Qr qr(const Tensor& a);

}  // namespace cortex::kernels
