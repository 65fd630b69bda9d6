// Entry points of kernels/nn.h: softmax, log_softmax, layer_norm, batch_norm. Each checks its
// inputs, then runs the kernel of the inputs' device through the backend tables (kernels/dispatch.h).
#include "kernels/nn.h"

#include "kernels/checks.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {

Tensor softmax(const Tensor& x, int64_t dim) {
  check_float("softmax", "x", x);
  return call(&Table::softmax, "softmax", x, wrap_dim(dim, x.dim(), "softmax"));
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  check_float("log_softmax", "x", x);
  return call(&Table::log_softmax, "log_softmax", x, wrap_dim(dim, x.dim(), "log_softmax"));
}

LayerNorm layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                     double eps) {
  const char* op = "layer_norm";
  check_float(op, "x", x);
  CORTEX_CHECK(normalized_ndim >= 1 && normalized_ndim <= x.dim(), op, ": expected normalized_ndim in [1, ",
               x.dim(), "] for x of shape ", shape_str(x.shape()), ", found ", normalized_ndim);
  CORTEX_CHECK(eps >= 0, op, ": expected eps >= 0, found ", eps);
  const Shape norm(x.shape().end() - normalized_ndim, x.shape().end());
  check_optional(op, "weight", weight, norm, x.dtype());
  check_optional(op, "bias", bias, norm, x.dtype());
  return call(&Table::layer_norm, op, x, normalized_ndim, weight, bias, eps);
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const char* op = "batch_norm";
  check_float(op, "x", x);
  CORTEX_CHECK(x.dim() >= 2, op, ": expected x of shape (N, C, ...), found ", shape_str(x.shape()));
  CORTEX_CHECK(running_mean.defined() && running_var.defined(), op,
               ": expected running_mean and running_var, found an undefined tensor");
  CORTEX_CHECK(eps >= 0, op, ": expected eps >= 0, found ", eps);
  const Shape c{x.size(1)};
  check_optional(op, "running_mean", running_mean, c, x.dtype());
  check_optional(op, "running_var", running_var, c, x.dtype());
  check_optional(op, "weight", weight, c, x.dtype());
  check_optional(op, "bias", bias, c, x.dtype());
  return call(&Table::batch_norm, op, x, running_mean, running_var, weight, bias, eps);
}

}  // namespace cortex::kernels
