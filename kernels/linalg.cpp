// Entries of kernels/linalg.h: input checks, then the CPU kernels (kernels/cpu/matmul.cpp,
// kernels/cpu/linalg.cpp). CUDA inputs take the host path until the family has CUDA kernels.
#include "kernels/linalg.h"

#include "kernels/cpu/linalg.h"
#include "kernels/cpu/matmul.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {
namespace {

void check_float(const char* op, const char* name, const Tensor& t) {
  CORTEX_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": expected ", name,
               " of dtype float32 or float64, found ", dtype_name(t.dtype()));
}

void check_matrix(const char* op, const char* name, const Tensor& t) {
  CORTEX_CHECK(t.defined(), op, ": expected a tensor for ", name, ", found an undefined tensor");
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
  CORTEX_CHECK(b.defined(), op, ": expected a tensor for b, found an undefined tensor");
  CORTEX_CHECK(b.dim() == 1 || b.dim() == 2, op, ": expected b of shape (n) or (n, k), found shape ",
               shape_str(b.shape()));
  detail::check_same_dtype(op, a, b);
  CORTEX_CHECK(b.size(0) == a.size(0), op, ": expected b with ", a.size(0), " rows to match a ",
               shape_str(a.shape()), ", found shape ", shape_str(b.shape()));
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  CORTEX_CHECK(a.defined() && b.defined(), "matmul: expected two defined tensors");
  const Device dev = detail::common_device("matmul", {&a, &b});
  CORTEX_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: expected operands with at least 1 dim, found shapes ",
               shape_str(a.shape()), " and ", shape_str(b.shape()));
  check_float("matmul", "a", a);
  detail::check_same_dtype("matmul", a, b);
  const int64_t ka = a.size(-1), kb = b.dim() == 1 ? b.size(0) : b.size(-2);
  CORTEX_CHECK(ka == kb, "matmul: expected the last dim of a to equal the ",
               b.dim() == 1 ? "size of b" : "second-to-last dim of b", ", found shapes ", shape_str(a.shape()),
               " and ", shape_str(b.shape()));
  if (a.dim() > 2 || b.dim() > 2) {
    const Shape ba(a.shape().begin(), a.shape().end() - std::min<int64_t>(a.dim(), 2));
    const Shape bb(b.shape().begin(), b.shape().end() - std::min<int64_t>(b.dim(), 2));
    broadcast_shapes(ba, bb, "matmul: batch dims");
  }
  if (dev.is_cuda()) return detail::back(cpu::matmul(detail::host(a), detail::host(b)), dev);
  return cpu::matmul(a, b);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  CORTEX_CHECK(x.defined() && w.defined(), "linear: expected defined x and w");
  const Device dev = detail::common_device("linear", {&x, &w, &b});
  CORTEX_CHECK(x.dim() >= 1, "linear: expected x of shape (..., in), found a 0-dim tensor");
  CORTEX_CHECK(w.dim() == 2, "linear: expected w of shape (out, in), found shape ", shape_str(w.shape()));
  check_float("linear", "x", x);
  detail::check_same_dtype("linear", x, w);
  CORTEX_CHECK(x.size(-1) == w.size(1), "linear: expected x (..., ", w.size(1), ") to match w ",
               shape_str(w.shape()), ", found x of shape ", shape_str(x.shape()));
  if (b.defined()) {
    detail::check_same_dtype("linear", x, b);
    CORTEX_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: expected bias of shape [", w.size(0),
                 "], found shape ", shape_str(b.shape()));
  }
  if (dev.is_cuda())
    return detail::back(cpu::linear(detail::host(x), detail::host(w), detail::host(b)), dev);
  return cpu::linear(x, w, b);
}

Eigh eigh(const Tensor& a) {
  check_square("eigh", "a", a);
  const Device dev = detail::common_device("eigh", {&a});
  if (dev.is_cuda()) {
    Eigh r = cpu::eigh(detail::host(a));
    return {detail::back(r.values, dev), detail::back(r.vectors, dev)};
  }
  return cpu::eigh(a);
}

Eigh eigh_topk(const Tensor& a, int64_t k, bool largest) {
  check_square("eigh_topk", "a", a);
  CORTEX_CHECK(k >= 0 && k <= a.size(0), "eigh_topk: expected k in [0, ", a.size(0), "] for a ",
               shape_str(a.shape()), ", found k = ", k);
  const Device dev = detail::common_device("eigh_topk", {&a});
  if (dev.is_cuda()) {
    Eigh r = cpu::eigh_topk(detail::host(a), k, largest);
    return {detail::back(r.values, dev), detail::back(r.vectors, dev)};
  }
  return cpu::eigh_topk(a, k, largest);
}

Svd svd(const Tensor& a) {
  check_matrix("svd", "a", a);
  const Device dev = detail::common_device("svd", {&a});
  if (dev.is_cuda()) {
    Svd r = cpu::svd(detail::host(a));
    return {detail::back(r.u, dev), detail::back(r.s, dev), detail::back(r.vh, dev)};
  }
  return cpu::svd(a);
}

Tensor cholesky(const Tensor& a) {
  check_square("cholesky", "a", a);
  const Device dev = detail::common_device("cholesky", {&a});
  if (dev.is_cuda()) return detail::back(cpu::cholesky(detail::host(a)), dev);
  return cpu::cholesky(a);
}

Tensor solve(const Tensor& a, const Tensor& b) {
  check_square("solve", "a", a);
  check_rhs("solve", a, b);
  const Device dev = detail::common_device("solve", {&a, &b});
  if (dev.is_cuda()) return detail::back(cpu::solve(detail::host(a), detail::host(b)), dev);
  return cpu::solve(a, b);
}

Tensor cholesky_solve(const Tensor& l, const Tensor& b) {
  check_square("cholesky_solve", "l", l);
  check_rhs("cholesky_solve", l, b);
  const Device dev = detail::common_device("cholesky_solve", {&l, &b});
  if (dev.is_cuda()) return detail::back(cpu::cholesky_solve(detail::host(l), detail::host(b)), dev);
  return cpu::cholesky_solve(l, b);
}

Qr qr(const Tensor& a) {
  check_matrix("qr", "a", a);
  const Device dev = detail::common_device("qr", {&a});
  if (dev.is_cuda()) {
    Qr r = cpu::qr(detail::host(a));
    return {detail::back(r.q, dev), detail::back(r.r, dev)};
  }
  return cpu::qr(a);
}

}  // namespace cortex::kernels
