// Joining, splitting, indexing and ordering. Entry: kernels/index.cpp; CPU: kernels/cpu/index.cpp.
// Index tensors are int64 (int32 accepted); out-of-range indices throw, naming the op and value.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace cortex::kernels {

Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
// Views of x: pieces of `sizes` along dim (sizes must sum to the dim's size).
std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);

// torch.gather: out[i][j][k] = x[index[i][j][k]][j][k] for dim 0, etc. index has x's ndim.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// out = x.clone(); out[index[i][j][k]][j][k] += src[i][j][k] (dim 0). The adjoint of gather.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// Rows (along dim) picked by a 1-D index.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out = x.clone(); out.select(dim, index[i]) += src.select(dim, i). The adjoint of index_select.
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);

struct TopK {
  Tensor values, indices;
  // Every tensor of the result, for the dispatcher that moves results between devices (kernels/dispatch.h).
  template <class F> void for_each_tensor(F&& f) { f(values); f(indices); }
};
// k largest (or smallest) along dim; sorted; ties keep the lower index first.
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
// Stable sort along dim; NaN sorts last ascending (first descending), as NumPy.
TopK sort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor cumsum(const Tensor& x, int64_t dim);
Tensor flip(const Tensor& x, int64_t dim);
// Lower / upper triangle of the last two dims (others zeroed), diagonal offset k as NumPy.
Tensor tril(const Tensor& x, int64_t k = 0);
Tensor triu(const Tensor& x, int64_t k = 0);

}  // namespace cortex::kernels
