// CPU kernels of the index family (kernels/index.h). The entries in kernels/index.cpp check
// dtypes, shapes and devices and wrap dims into [0, ndim) before calling these; the kernels check
// the index *values* themselves (they are the ones reading them) and throw naming the op and value.
// Inputs may be any strided view; outputs are new contiguous tensors.
#pragma once
#include <vector>

#include "kernels/index.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

// xs share dtype, ndim and every size except along dim.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);

// index has x's ndim, index.size(d) <= x.size(d) for d != dim; int32 or int64.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// index.size(d) <= src.size(d) for all d and <= x.size(d) for d != dim; x, src share dtype.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// index is 1-D.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// index is 1-D of length n; src is x's shape with size n along dim.
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

// 0 <= k <= x.size(dim).
TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest);
// values is left undefined when want_values is false (argsort).
TopK sort(const Tensor& x, int64_t dim, bool descending, bool want_values = true);
Tensor cumsum(const Tensor& x, int64_t dim);
Tensor flip(const Tensor& x, int64_t dim);
// x has at least 2 dims.
Tensor tril(const Tensor& x, int64_t k);
Tensor triu(const Tensor& x, int64_t k);

}  // namespace cortex::kernels::cpu
