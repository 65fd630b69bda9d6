// Entry points of kernels/spectral.h: argument checks, then the kernel of the inputs' device
// through the backend tables (kernels/dispatch.h).
#include "kernels/spectral.h"

#include <cmath>

#include "kernels/checks.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {

KnnAffinity knn_affinity(const Tensor& x, const Tensor& samples, int64_t k, const KnnAffinityParams& p) {
  const char* op = "knn_affinity";
  check_float(op, "x", x);
  check_float(op, "samples", samples);
  check_same_dtype(op, x, samples);
  CORTEX_CHECK(x.dim() == 2 && samples.dim() == 2 && x.size(1) == samples.size(1), op,
               ": expected x (N, d) and samples (m, d) with one d, found ", shape_str(x.shape()), " and ",
               shape_str(samples.shape()));
  CORTEX_CHECK(k >= 1 && k <= samples.size(0), op, ": expected k in [1, m = ", samples.size(0), "], found k = ", k);
  CORTEX_CHECK(p.kind == KnnKernel::Cosine || p.kind == KnnKernel::Rbf, op, ": expected a cosine or rbf kernel, found ",
               static_cast<int>(p.kind));
  CORTEX_CHECK(std::isfinite(p.t) && p.t > 0, op, ": expected ", p.kind == KnnKernel::Cosine ? "a temperature t" : "a sigma",
               " > 0, found ", p.t);
  return call(&Table::knn_affinity, op, x, samples, k, p);
}

Tensor knn_propagate(const Tensor& log_w, const Tensor& indices, const Tensor& values) {
  const char* op = "knn_propagate";
  check_float(op, "log_w", log_w);
  check_float(op, "values", values);
  check_same_dtype(op, log_w, values);
  check_defined(op, "indices", indices);
  CORTEX_CHECK(indices.dtype() == DType::Int64, op, ": expected int64 indices, found ", dtype_name(indices.dtype()));
  CORTEX_CHECK(log_w.dim() == 2 && indices.shape() == log_w.shape() && log_w.size(1) >= 1, op,
               ": expected log_w and indices of one shape (N, k) with k >= 1, found ", shape_str(log_w.shape()),
               " and ", shape_str(indices.shape()));
  CORTEX_CHECK(values.dim() == 2, op, ": expected values of shape (m, c), found ", shape_str(values.shape()));
  // A kernel cannot throw: the indices are checked here, on a host copy (N * k int64).
  const Tensor hi = indices.to(Device::cpu()).contiguous();
  const int64_t* pi = hi.data<int64_t>();
  const int64_t m = values.size(0);
  for (int64_t i = 0; i < hi.numel(); ++i)
    CORTEX_CHECK(pi[i] >= 0 && pi[i] < m, op, ": expected indices in [0, ", m, "), found ", pi[i], " in row ",
                 i / log_w.size(1));
  return call(&Table::knn_propagate, op, log_w, indices, values);
}

}  // namespace cortex::kernels
