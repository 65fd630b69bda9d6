// Entries of kernels/linalg.h: input checks, then the kernel of the inputs' device through the
// backend tables (kernels/dispatch.h).
#include "kernels/linalg.h"

#include "kernels/checks.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {
namespace {

void check_matrix(const char* op, const char* name, const Tensor& t) {
  check_defined(op, name, t);
  CORTEX_CHECK(t.dim() == 2, op, ": expected ", name, " to be 2-D, found shape ", shape_str(t.shape()));
  check_float(op, name, t);
}

void check_square(const char* op, const char* name, const Tensor& t) {
  check_matrix(op, name, t);
  CORTEX_CHECK(t.size(0) == t.size(1), op, ": expected ", name, " to be square, found shape ",
               shape_str(t.shape()));
}

// b (n) or (n, k) for an (n, n) system.
void check_rhs(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, "b", b);
  CORTEX_CHECK(b.dim() == 1 || b.dim() == 2, op, ": expected b of shape (n) or (n, k), found shape ",
               shape_str(b.shape()));
  check_same_dtype(op, a, b);
  CORTEX_CHECK(b.size(0) == a.size(0), op, ": expected b with ", a.size(0), " rows to match a ",
               shape_str(a.shape()), ", found shape ", shape_str(b.shape()));
}

// a (..., n, n): a square matrix or a batch of them.
void check_square_batch(const char* op, const char* name, const Tensor& t) {
  check_defined(op, name, t);
  CORTEX_CHECK(t.dim() >= 2, op, ": expected ", name, " of shape (..., n, n), found shape ", shape_str(t.shape()));
  check_float(op, name, t);
  CORTEX_CHECK(t.size(-1) == t.size(-2), op, ": expected ", name, " to be square, found shape ", shape_str(t.shape()));
}

// For l (..., n, n): b (..., n) or (..., n, k) with l's batch dims.
void check_batch_rhs(const char* op, const Tensor& l, const Tensor& b) {
  if (l.dim() == 2) return check_rhs(op, l, b);
  check_defined(op, "b", b);
  check_same_dtype(op, l, b);
  const Shape batch(l.shape().begin(), l.shape().end() - 2);
  const bool vec = b.dim() == l.dim() - 1, mat = b.dim() == l.dim();
  CORTEX_CHECK((vec || mat) && Shape(b.shape().begin(), b.shape().begin() + static_cast<int64_t>(batch.size())) == batch &&
                   b.size(static_cast<int64_t>(batch.size())) == l.size(-1),
               op, ": expected b of shape ", shape_str(batch), " + (", l.size(-1), ") or (", l.size(-1),
               ", k) to match l ", shape_str(l.shape()), ", found shape ", shape_str(b.shape()));
}

}  // namespace

Eigh eigh(const Tensor& a) {
  check_square("eigh", "a", a);
  return call(&Table::eigh, "eigh", a);
}

Eigh eigh_topk(const Tensor& a, int64_t k, bool largest) {
  check_square("eigh_topk", "a", a);
  CORTEX_CHECK(k >= 0 && k <= a.size(0), "eigh_topk: expected k in [0, ", a.size(0), "] for a ",
               shape_str(a.shape()), ", found k = ", k);
  return call(&Table::eigh_topk, "eigh_topk", a, k, largest);
}

Svd svd(const Tensor& a) {
  check_matrix("svd", "a", a);
  return call(&Table::svd, "svd", a);
}

Tensor cholesky(const Tensor& a) {
  check_square_batch("cholesky", "a", a);
  return call(&Table::cholesky, "cholesky", a);
}

Tensor solve(const Tensor& a, const Tensor& b) {
  check_square("solve", "a", a);
  check_rhs("solve", a, b);
  return call(&Table::solve, "solve", a, b);
}

Tensor cholesky_solve(const Tensor& l, const Tensor& b) {
  check_square_batch("cholesky_solve", "l", l);
  check_batch_rhs("cholesky_solve", l, b);
  return call(&Table::cholesky_solve, "cholesky_solve", l, b);
}

Qr qr(const Tensor& a) {
  check_matrix("qr", "a", a);
  return call(&Table::qr, "qr", a);
}

}  // namespace cortex::kernels
