// Entry points of kernels/attention.h: check q, k, v (and the backward's and JVP's extra operands),
// answer the empty cases here (no kernel is launched for zero work), then run the kernel of the
// inputs' device through the backend tables (kernels/dispatch.h).
#include "kernels/attention.h"

#include <cmath>
#include <limits>

#include "kernels/autocast.h"
#include "kernels/checks.h"
#include "kernels/dispatch.h"
#include "kernels/shape.h"

namespace cortex::kernels {
namespace {

Shape with_last(Shape s, int64_t last) {
  s.back() = last;
  return s;
}
Shape rows_of(const Shape& s) { return Shape(s.begin(), s.end() - 1); }

void check_qkv(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  check_float(op, "q", q);
  check_float(op, "k", k);
  check_float(op, "v", v);
  check_same_dtype(op, q, k);
  check_same_dtype(op, q, v);
  bool ok = q.dim() >= 2 && k.dim() == q.dim() && v.dim() == q.dim();
  for (int64_t i = 0; ok && i < q.dim() - 2; ++i) ok = q.size(i) == k.size(i) && k.size(i) == v.size(i);
  ok = ok && k.size(-1) == q.size(-1) && v.size(-2) == k.size(-2);
  CORTEX_CHECK(ok, op, ": expected q (..., Lq, D), k (..., Lk, D), v (..., Lk, Dv) with the same leading dims, found q ",
               shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ", shape_str(v.shape()));
  CORTEX_CHECK(std::isfinite(scale), op, ": expected a finite scale, found ", scale);
}

// The same shape and dtype as `like` (named `what_like` in the message).
void check_like(const char* op, const char* what, const Tensor& t, const Shape& shape, DType dt) {
  check_defined(op, what, t);
  CORTEX_CHECK(t.dtype() == dt, op, ": expected ", what, " of dtype ", dtype_name(dt), ", found ",
               dtype_name(t.dtype()));
  CORTEX_CHECK(t.shape() == shape, op, ": expected ", what, " of shape ", shape_str(shape), ", found ",
               shape_str(t.shape()));
}

// No batch, no query row or no key: nothing for a kernel to do (D == 0 or Dv == 0 is not empty:
// with D == 0 every score is 0 and out is the mean of v's rows).
bool empty_case(const Tensor& q, const Tensor& k) {
  return q.size(-2) == 0 || k.size(-2) == 0 || shape_numel(Shape(q.shape().begin(), q.shape().end() - 2)) == 0;
}

}  // namespace

Attention attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  const char* op = "attention_forward";
  // bf16: q, k, v bf16, the float32 kernel on the widened operands, out rounded once to bf16; lse
  // (a per-row statistic, not an activation) stays float32 (autocast.h).
  if (autocast::is_bf16(q)) {
    check_defined(op, "k", k);
    check_defined(op, "v", v);
    check_same_dtype(op, q, k);
    check_same_dtype(op, q, v);
    Attention r = attention_forward(autocast::widen(q), autocast::widen(k), autocast::widen(v), scale);
    return {autocast::round_bf16(r.out), r.lse};
  }
  check_qkv(op, q, k, v, scale);
  if (empty_case(q, k)) {
    // The empty softmax: out = 0, lse = -inf (so a backward sees P = exp(S - lse) = 0 nowhere).
    return {zeros(with_last(q.shape(), v.size(-1)), q.dtype(), q.device()),
            full(rows_of(q.shape()), -std::numeric_limits<double>::infinity(), q.dtype(), q.device())};
  }
  return call(&Table::attention_forward, op, q, k, v, scale);
}

AttentionGrads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                  const Tensor& lse, const Tensor& gout, double scale) {
  const char* op = "attention_backward";
  check_qkv(op, q, k, v, scale);
  const Shape os = with_last(q.shape(), v.size(-1));
  check_like(op, "out", out, os, q.dtype());
  check_like(op, "gout", gout, os, q.dtype());
  check_like(op, "lse", lse, rows_of(q.shape()), q.dtype());
  if (empty_case(q, k))
    return {zeros(q.shape(), q.dtype(), q.device()), zeros(k.shape(), q.dtype(), q.device()),
            zeros(v.shape(), q.dtype(), q.device())};
  return call(&Table::attention_backward, op, q, k, v, out, lse, gout, scale);
}

AttentionJvp attention_jvp(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& tq, const Tensor& tk,
                           const Tensor& tv, double scale) {
  const char* op = "attention_jvp";
  check_qkv(op, q, k, v, scale);
  check_like(op, "tq", tq, q.shape(), q.dtype());
  check_like(op, "tk", tk, k.shape(), q.dtype());
  check_like(op, "tv", tv, v.shape(), q.dtype());
  if (empty_case(q, k)) {
    const Shape os = with_last(q.shape(), v.size(-1));
    return {zeros(os, q.dtype(), q.device()), zeros(os, q.dtype(), q.device())};
  }
  return call(&Table::attention_jvp, op, q, k, v, tq, tk, tv, scale);
}

}  // namespace cortex::kernels
