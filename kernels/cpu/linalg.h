// CPU dense linear algebra (Eigen decompositions). Entries with input checks: kernels/linalg.h.
// Inputs are checked 2-D float32/float64 tensors of the right shapes; these functions check the
// values (finite, symmetric, definite, non-singular) because only they read them.
#pragma once
#include "kernels/linalg.h"

namespace cortex::kernels::cpu {

Eigh eigh(const Tensor& a);
Eigh eigh_topk(const Tensor& a, int64_t k, bool largest);
Svd svd(const Tensor& a);
Tensor cholesky(const Tensor& a);
Tensor solve(const Tensor& a, const Tensor& b);
Tensor cholesky_solve(const Tensor& l, const Tensor& b);
Qr qr(const Tensor& a);

}  // namespace cortex::kernels::cpu
