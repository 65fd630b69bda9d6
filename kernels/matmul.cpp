// Entries of kernels/matmul.h: input checks, then the kernel of the inputs' device through the
// backend tables (kernels/dispatch.h).
#include "kernels/matmul.h"

#include "kernels/autocast.h"
#include "kernels/checks.h"
#include "kernels/dispatch.h"
#include "kernels/shape.h"

namespace cortex::kernels {

Tensor matmul(const Tensor& a, const Tensor& b) {
  CORTEX_CHECK(a.defined() && b.defined(), "matmul: expected two defined tensors");
  // bf16: every operand bf16, the float32 kernel on the widened operands, one rounding (autocast.h).
  if (autocast::is_bf16(a)) {
    check_same_dtype("matmul", a, b);
    return autocast::round_bf16(matmul(autocast::widen(a), autocast::widen(b)));
  }
  CORTEX_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: expected operands with at least 1 dim, found shapes ",
               shape_str(a.shape()), " and ", shape_str(b.shape()));
  check_float("matmul", "a", a);
  check_same_dtype("matmul", a, b);
  const int64_t ka = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  CORTEX_CHECK(ka == kb, "matmul: expected the last dim of a to equal the ",
               b.dim() == 1 ? "size of b" : "second-to-last dim of b", ", found shapes ", shape_str(a.shape()),
               " and ", shape_str(b.shape()));
  matmul_batch_shape("matmul: batch dims", a.shape(), b.shape());
  return call(&Table::matmul, "matmul", a, b);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  CORTEX_CHECK(x.defined() && w.defined(), "linear: expected defined x and w");
  if (autocast::is_bf16(x)) {
    check_same_dtype("linear", x, w);
    if (b.defined()) check_same_dtype("linear", x, b);
    return autocast::round_bf16(linear(autocast::widen(x), autocast::widen(w), autocast::widen(b)));
  }
  CORTEX_CHECK(x.dim() >= 1, "linear: expected x of shape (..., in), found a 0-dim tensor");
  CORTEX_CHECK(w.dim() == 2, "linear: expected w of shape (out, in), found shape ", shape_str(w.shape()));
  check_float("linear", "x", x);
  check_same_dtype("linear", x, w);
  CORTEX_CHECK(x.size(-1) == w.size(1), "linear: expected x (..., ", w.size(1), ") to match w ",
               shape_str(w.shape()), ", found x of shape ", shape_str(x.shape()));
  if (b.defined()) {
    check_same_dtype("linear", x, b);
    CORTEX_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: expected bias of shape [", w.size(0),
                 "], found shape ", shape_str(b.shape()));
  }
  return call(&Table::linear, "linear", x, w, b);
}

}  // namespace cortex::kernels
