// Reduction entry points: normalise the axes, check dtypes, then run the kernel of the input's
// device through the backend tables (kernels/dispatch.h).
#include "kernels/reduce.h"

#include <algorithm>
#include <cmath>

#include "kernels/checks.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {

const char* reduce_name(Reduce op) {
  switch (op) {
    case Reduce::Sum: return "sum";
    case Reduce::Mean: return "mean";
    case Reduce::Max: return "max";
    case Reduce::Min: return "min";
    case Reduce::Prod: return "prod";
    case Reduce::LogSumExp: return "logsumexp";
    case Reduce::Any: return "any";
    case Reduce::All: return "all";
  }
  return "reduce";
}

Shape reduction_axes(const Shape& dims, int64_t ndim, const char* op) {
  Shape axes;
  if (dims.empty()) {
    for (int64_t d = 0; d < ndim; ++d) axes.push_back(d);
    return axes;
  }
  // A 0-dim tensor accepts dim 0 or -1 (as PyTorch); it names the tensor itself, so no axis remains.
  std::vector<char> seen(static_cast<size_t>(std::max<int64_t>(ndim, 1)), 0);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, ndim, op);
    CORTEX_CHECK(!seen[w], op, ": dim ", d, " is repeated in dims ", shape_str(dims));
    seen[w] = 1;
    if (w < ndim) axes.push_back(w);
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

Shape reduced_shape(const Shape& in, const Shape& dims, bool keepdim) {
  const Shape axes = reduction_axes(dims, static_cast<int64_t>(in.size()), "reduced_shape");
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(in.size()); ++d) {
    if (!std::binary_search(axes.begin(), axes.end(), d))
      out.push_back(in[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

namespace {

bool is_numeric(DType dt) {
  return is_f32_f64(dt) || dt == DType::Int32 || dt == DType::Int64 || dt == DType::UInt8;
}

}  // namespace

Tensor reduce(Reduce op, const Tensor& x, const Shape& dims, bool keepdim) {
  const char* name = reduce_name(op);
  check_defined(name, "x", x);
  const Shape axes = reduction_axes(dims, x.dim(), name);
  const DType dt = x.dtype();
  switch (op) {
    case Reduce::Mean:
    case Reduce::LogSumExp: check_float(name, "x", x); break;
    case Reduce::Sum:
    case Reduce::Prod:
      CORTEX_CHECK(is_numeric(dt) || dt == DType::Bool, name,
                   ": expected a float32, float64, int32, int64, uint8 or bool tensor, found ", dtype_name(dt));
      break;
    case Reduce::Max:
    case Reduce::Min: {
      CORTEX_CHECK(is_numeric(dt), name, ": expected a float32, float64, int32, int64 or uint8 tensor, found ",
                   dtype_name(dt));
      int64_t n = 1;
      for (int64_t a : axes) n *= x.shape()[a];
      CORTEX_CHECK(n > 0, name, ": cannot reduce over an empty axis (shape ", shape_str(x.shape()), ", dims ",
                   shape_str(dims), ")");
      break;
    }
    case Reduce::Any:
    case Reduce::All: break;  // every dtype: nonzero is true
  }
  return call(&Table::reduce, name, op, x, axes, keepdim);
}

namespace {

Tensor arg_entry(const char* name, bool is_max, const Tensor& x, int64_t dim, bool keepdim) {
  check_defined(name, "x", x);
  CORTEX_CHECK(is_numeric(x.dtype()), name, ": expected a float32, float64, int32, int64 or uint8 tensor, found ",
               dtype_name(x.dtype()));
  const int64_t d = wrap_dim(dim, x.dim(), name);
  if (x.dim() > 0)
    CORTEX_CHECK(x.shape()[d] > 0, name, ": cannot reduce over dim ", dim, " of size 0 (shape ", shape_str(x.shape()),
                 ")");
  return is_max ? call(&Table::argmax, name, x, d, keepdim) : call(&Table::argmin, name, x, d, keepdim);
}

Tensor var_entry(const char* name, bool take_sqrt, const Tensor& x, const Shape& dims, int64_t correction,
                 bool keepdim) {
  check_defined(name, "x", x);
  check_float(name, "x", x);
  CORTEX_CHECK(correction >= 0, name, ": expected correction >= 0, found ", correction);
  const Shape axes = reduction_axes(dims, x.dim(), name);
  return call(&Table::var, name, x, axes, correction, keepdim, take_sqrt);
}

}  // namespace

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return arg_entry("argmax", true, x, dim, keepdim); }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return arg_entry("argmin", false, x, dim, keepdim); }

Tensor var(const Tensor& x, const Shape& dims, int64_t correction, bool keepdim) {
  return var_entry("var", false, x, dims, correction, keepdim);
}
Tensor std(const Tensor& x, const Shape& dims, int64_t correction, bool keepdim) {
  return var_entry("std", true, x, dims, correction, keepdim);
}

Tensor norm(const Tensor& x, double p, const Shape& dims, bool keepdim) {
  check_defined("norm", "x", x);
  check_float("norm", "x", x);
  CORTEX_CHECK(p > 0, "norm: expected p > 0 (or inf), found ", p);
  const Shape axes = reduction_axes(dims, x.dim(), "norm");
  return call(&Table::norm, "norm", x, p, axes, keepdim);
}

}  // namespace cortex::kernels
