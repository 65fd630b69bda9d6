// Entries of the index family: check inputs, wrap dims, then run the kernel of the inputs' device
// through the backend tables (kernels/dispatch.h). split and chunk only make views, so they run on
// any device without a kernel.
#include "kernels/index.h"

#include <algorithm>

#include "kernels/checks.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {
namespace {

void check_index_dtype(const char* op, const Tensor& index) {
  CORTEX_CHECK(index.dtype() == DType::Int64 || index.dtype() == DType::Int32, op,
               ": expected an int64 or int32 index, found ", dtype_name(index.dtype()));
}

// scatter_add, index_add, cumsum, topk and sort work on these.
void check_num_dtype(const char* op, const Tensor& x) {
  const DType d = x.dtype();
  CORTEX_CHECK(d == DType::Float32 || d == DType::Float64 || d == DType::Int32 || d == DType::Int64, op,
               ": expected a float32, float64, int32 or int64 tensor, found ", dtype_name(d));
}

// A 0-dim tensor is treated as shape [1] (dim 0 or -1), and the result viewed back.
Tensor as_1d(const Tensor& t) { return t.dim() == 0 ? t.reshape({1}) : t; }

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  CORTEX_CHECK(!xs.empty(), "concat: expected at least one tensor, found an empty list");
  for (size_t i = 0; i < xs.size(); ++i) CORTEX_CHECK(xs[i].defined(), "concat: input ", i, " is an undefined tensor");
  const Tensor& a = xs[0];
  CORTEX_CHECK(a.dim() > 0, "concat: cannot concatenate 0-dim tensors (input 0 has shape [])");
  const int64_t d = wrap_dim(dim, a.dim(), "concat");
  for (size_t i = 1; i < xs.size(); ++i) {
    const Tensor& b = xs[i];
    CORTEX_CHECK(b.dtype() == a.dtype(), "concat: expected tensors of one dtype, found ", dtype_name(a.dtype()),
                 " (input 0) and ", dtype_name(b.dtype()), " (input ", i, ")");
    CORTEX_CHECK(b.device() == a.device(), "concat: expected tensors on one device, found ", a.device().str(),
                 " (input 0) and ", b.device().str(), " (input ", i, ")");
    CORTEX_CHECK(b.dim() == a.dim(), "concat: expected tensors with ", a.dim(), " dims, found input ", i,
                 " with shape ", shape_str(b.shape()));
    for (int64_t k = 0; k < a.dim(); ++k)
      CORTEX_CHECK(k == d || b.size(k) == a.size(k), "concat: sizes must match except along dim ", d,
                   ", found ", shape_str(a.shape()), " (input 0) and ", shape_str(b.shape()), " (input ", i, ")");
  }
  return call(&Table::concat, "concat", xs, d);
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  CORTEX_CHECK(!xs.empty(), "stack: expected at least one tensor, found an empty list");
  for (size_t i = 0; i < xs.size(); ++i) CORTEX_CHECK(xs[i].defined(), "stack: input ", i, " is an undefined tensor");
  const int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  us.reserve(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    CORTEX_CHECK(xs[i].shape() == xs[0].shape(), "stack: expected tensors of one shape, found ",
                 shape_str(xs[0].shape()), " (input 0) and ", shape_str(xs[i].shape()), " (input ", i, ")");
    us.push_back(xs[i].unsqueeze(d));
  }
  return concat(us, d);
}

std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim) {
  check_defined("split", "x", x);
  CORTEX_CHECK(x.dim() > 0, "split: expected a tensor with at least one dim, found shape []");
  const int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    CORTEX_CHECK(s >= 0, "split: sizes must be >= 0, found ", shape_str(sizes));
    total += s;
  }
  CORTEX_CHECK(total == x.size(d), "split: sizes ", shape_str(sizes), " sum to ", total, " but dim ", d,
               " has size ", x.size(d));
  std::vector<Tensor> out;
  out.reserve(sizes.size());
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(d, at, s));
    at += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined("chunk", "x", x);
  CORTEX_CHECK(x.dim() > 0, "chunk: expected a tensor with at least one dim, found shape []");
  CORTEX_CHECK(chunks > 0, "chunk: expected chunks > 0, found ", chunks);
  const int64_t d = wrap_dim(dim, x.dim(), "chunk");
  const int64_t n = x.size(d);
  // As torch.chunk: pieces of ceil(n / chunks), the last one smaller, so there may be fewer than
  // `chunks` pieces; an empty dim gives `chunks` empty pieces.
  if (n == 0) return split(x, Shape(chunks, 0), d);
  const int64_t each = (n + chunks - 1) / chunks;
  Shape sizes;
  for (int64_t at = 0; at < n; at += each) sizes.push_back(std::min(each, n - at));
  return split(x, sizes, d);
}

Tensor gather(const Tensor& x_in, int64_t dim, const Tensor& index_in) {
  check_defined("gather", "x", x_in);
  check_defined("gather", "index", index_in);
  check_index_dtype("gather", index_in);
  CORTEX_CHECK(index_in.dim() == x_in.dim(), "gather: expected an index with x's ", x_in.dim(), " dims, found shape ",
               shape_str(index_in.shape()));
  const Tensor x = as_1d(x_in), index = as_1d(index_in);
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  for (int64_t k = 0; k < x.dim(); ++k)
    CORTEX_CHECK(k == d || index.size(k) <= x.size(k), "gather: index shape ", shape_str(index.shape()),
                 " exceeds x shape ", shape_str(x.shape()), " in dim ", k, " (only dim ", d, " may be larger)");
  Tensor out = call(&Table::gather, "gather", x, d, index);
  return out.view(index_in.shape());
}

Tensor scatter_add(const Tensor& x_in, int64_t dim, const Tensor& index_in, const Tensor& src_in) {
  check_defined("scatter_add", "x", x_in);
  check_defined("scatter_add", "index", index_in);
  check_defined("scatter_add", "src", src_in);
  check_num_dtype("scatter_add", x_in);
  check_index_dtype("scatter_add", index_in);
  check_same_dtype("scatter_add", x_in, src_in);
  CORTEX_CHECK(index_in.dim() == x_in.dim() && src_in.dim() == x_in.dim(), "scatter_add: expected x, index and src with one ndim, found ",
               shape_str(x_in.shape()), ", ", shape_str(index_in.shape()), " and ", shape_str(src_in.shape()));
  const Tensor x = as_1d(x_in), index = as_1d(index_in), src = as_1d(src_in);
  const int64_t d = wrap_dim(dim, x.dim(), "scatter_add");
  for (int64_t k = 0; k < x.dim(); ++k) {
    CORTEX_CHECK(index.size(k) <= src.size(k), "scatter_add: index shape ", shape_str(index.shape()),
                 " exceeds src shape ", shape_str(src.shape()), " in dim ", k);
    CORTEX_CHECK(k == d || index.size(k) <= x.size(k), "scatter_add: index shape ", shape_str(index.shape()),
                 " exceeds x shape ", shape_str(x.shape()), " in dim ", k, " (only dim ", d, " may be larger)");
  }
  Tensor out = call(&Table::scatter_add, "scatter_add", x, d, index, src);
  return out.view(x_in.shape());
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined("index_select", "x", x);
  check_defined("index_select", "index", index);
  check_index_dtype("index_select", index);
  CORTEX_CHECK(x.dim() > 0, "index_select: expected x with at least one dim, found shape []");
  CORTEX_CHECK(index.dim() == 1, "index_select: expected a 1-D index, found shape ", shape_str(index.shape()));
  const int64_t d = wrap_dim(dim, x.dim(), "index_select");
  return call(&Table::index_select, "index_select", x, d, index);
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  check_defined("index_add", "x", x);
  check_defined("index_add", "index", index);
  check_defined("index_add", "src", src);
  check_num_dtype("index_add", x);
  check_index_dtype("index_add", index);
  check_same_dtype("index_add", x, src);
  CORTEX_CHECK(x.dim() > 0, "index_add: expected x with at least one dim, found shape []");
  CORTEX_CHECK(index.dim() == 1, "index_add: expected a 1-D index, found shape ", shape_str(index.shape()));
  const int64_t d = wrap_dim(dim, x.dim(), "index_add");
  Shape want = x.shape();
  want[d] = index.size(0);
  CORTEX_CHECK(src.shape() == want, "index_add: expected src of shape ", shape_str(want), " (x's shape with the index length along dim ",
               d, "), found ", shape_str(src.shape()));
  return call(&Table::index_add, "index_add", x, d, index, src);
}

TopK topk(const Tensor& x_in, int64_t k, int64_t dim, bool largest) {
  check_defined("topk", "x", x_in);
  check_num_dtype("topk", x_in);
  const Tensor x = as_1d(x_in);
  const int64_t d = wrap_dim(dim, x.dim(), "topk");
  CORTEX_CHECK(k >= 0 && k <= x.size(d), "topk: k ", k, " is out of range for dim ", d, " of size ", x.size(d),
               " (expected 0 <= k <= size)");
  TopK r = call(&Table::topk, "topk", x, k, d, largest);
  if (x_in.dim() == 0 && k == 1) r = {r.values.view({}), r.indices.view({})};
  return r;
}

TopK sort(const Tensor& x_in, int64_t dim, bool descending) {
  check_defined("sort", "x", x_in);
  check_num_dtype("sort", x_in);
  const Tensor x = as_1d(x_in);
  const int64_t d = wrap_dim(dim, x.dim(), "sort");
  TopK r = call(&Table::sort, "sort", x, d, descending, true);
  return {r.values.view(x_in.shape()), r.indices.view(x_in.shape())};
}

Tensor argsort(const Tensor& x_in, int64_t dim, bool descending) {
  check_defined("argsort", "x", x_in);
  check_num_dtype("argsort", x_in);
  const Tensor x = as_1d(x_in);
  const int64_t d = wrap_dim(dim, x.dim(), "argsort");
  Tensor idx = call(&Table::sort, "argsort", x, d, descending, false).indices;
  return idx.view(x_in.shape());
}

Tensor cumsum(const Tensor& x_in, int64_t dim) {
  check_defined("cumsum", "x", x_in);
  check_num_dtype("cumsum", x_in);
  const Tensor x = as_1d(x_in);
  const int64_t d = wrap_dim(dim, x.dim(), "cumsum");
  Tensor out = call(&Table::cumsum, "cumsum", x, d);
  return out.view(x_in.shape());
}

Tensor flip(const Tensor& x_in, int64_t dim) {
  check_defined("flip", "x", x_in);
  const Tensor x = as_1d(x_in);
  const int64_t d = wrap_dim(dim, x.dim(), "flip");
  Tensor out = call(&Table::flip, "flip", x, d);
  return out.view(x_in.shape());
}

Tensor tril(const Tensor& x, int64_t k) {
  check_defined("tril", "x", x);
  CORTEX_CHECK(x.dim() >= 2, "tril: expected a tensor with at least 2 dims, found shape ", shape_str(x.shape()));
  return call(&Table::tril, "tril", x, k);
}

Tensor triu(const Tensor& x, int64_t k) {
  check_defined("triu", "x", x);
  CORTEX_CHECK(x.dim() >= 2, "triu: expected a tensor with at least 2 dims, found shape ", shape_str(x.shape()));
  return call(&Table::triu, "triu", x, k);
}

}  // namespace cortex::kernels
