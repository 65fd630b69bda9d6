// Joining, indexing and ordering ops: forward (kernels/index.h), VJP and JVP side by side.
// Indexing ops are linear in their float inputs: gather's adjoint is scatter_add, index_select's
// is index_add, cumsum's is a reversed cumsum. Index tensors are constants.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "autograd/rules.h"
#include "kernels/index.h"

namespace cortex {
namespace {
using Grads = std::vector<Tensor>;
using rules::bdim;
using rules::nb;

// An index tensor of a primal's rank, broadcast over the leading batch dim of derivative d.
Tensor bindex(const Tensor& index, const Tensor& d) {
  if (nb() == 0) return index;
  Shape s = rules::bshape(d);
  s.insert(s.end(), index.shape().begin(), index.shape().end());
  return index.unsqueeze(0).expand(s);
}
Tensor zeros_b(const Tensor& d_like, const Shape& primal_shape) {
  return zeros(rules::cat_shape(rules::bshape(d_like), primal_shape), d_like.dtype(), d_like.device());
}
}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  Tensor y = raw([&] { return kernels::concat(xs, dim); });
  const int64_t d = wrap_dim(dim, y.dim(), "concat");
  Shape sizes;
  std::vector<Shape> shapes;
  for (const Tensor& x : xs) {
    sizes.push_back(x.shape()[d]);
    shapes.push_back(x.shape());
  }
  const int64_t nd = y.dim();
  return record1(
      "concat", xs, y,
      [sizes, d, nd](const Grads& g, const Grads&) -> Grads {
        std::vector<Tensor> parts = kernels::split(g[0], sizes, bdim(d, nd));
        for (Tensor& p : parts) p = p.contiguous();
        return parts;
      },
      [shapes, d, nd](const Grads& t, const Grads&) -> Grads {
        Tensor any;
        for (const Tensor& ti : t)
          if (ti.defined()) any = ti;
        std::vector<Tensor> ts;
        for (size_t i = 0; i < t.size(); ++i) ts.push_back(t[i].defined() ? t[i] : zeros_b(any, shapes[i]));
        return {concat(ts, bdim(d, nd))};
      });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  CORTEX_CHECK(!xs.empty(), "stack: expected at least one tensor");
  const int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  for (const Tensor& x : xs) us.push_back(x.unsqueeze(d));
  return concat(us, d);
}

std::vector<Tensor> split(const Tensor& x, const Shape& sizes, int64_t dim) { return kernels::split(x, sizes, dim); }
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) { return kernels::chunk(x, chunks, dim); }

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor y = raw([&] { return kernels::gather(x, dim, index); });
  const int64_t d = wrap_dim(dim, x.dim(), "gather"), nd = x.dim();
  const Shape xs = x.shape();
  Tensor idx = detach(index);
  return record1(
      "gather", {x}, y,
      [idx, d, nd, xs](const Grads& g, const Grads&) -> Grads {
        return {scatter_add(zeros_b(g[0], xs), bdim(d, nd), bindex(idx, g[0]), g[0])};
      },
      [idx, d, nd](const Grads& t, const Grads&) -> Grads {
        return {t[0].defined() ? gather(t[0], bdim(d, nd), bindex(idx, t[0])) : Tensor()};
      });
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor y = raw([&] { return kernels::scatter_add(x, dim, index, src); });
  const int64_t d = wrap_dim(dim, x.dim(), "scatter_add"), nd = x.dim();
  const Shape xs = x.shape(), ss = src.shape();
  Tensor idx = detach(index);
  return record1(
      "scatter_add", {x, src}, y,
      [idx, d, nd](const Grads& g, const Grads&) -> Grads {
        return {g[0], gather(g[0], bdim(d, nd), bindex(idx, g[0]))};
      },
      [idx, d, nd, xs, ss](const Grads& t, const Grads&) -> Grads {
        const Tensor& any = t[0].defined() ? t[0] : t[1];
        if (!any.defined()) return {Tensor()};
        Tensor tx = t[0].defined() ? t[0] : zeros_b(any, xs);
        Tensor ts = t[1].defined() ? t[1] : zeros_b(any, ss);
        return {scatter_add(tx, bdim(d, nd), bindex(idx, ts), ts)};
      });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor y = raw([&] { return kernels::index_select(x, dim, index); });
  const int64_t d = wrap_dim(dim, x.dim(), "index_select"), nd = x.dim();
  const Shape xs = x.shape();
  Tensor idx = detach(index);
  return record1(
      "index_select", {x}, y,
      [idx, d, nd, xs](const Grads& g, const Grads&) -> Grads {
        return {index_add(zeros_b(g[0], xs), bdim(d, nd), idx, g[0])};
      },
      [idx, d, nd](const Grads& t, const Grads&) -> Grads {
        return {t[0].defined() ? index_select(t[0], bdim(d, nd), idx) : Tensor()};
      });
}

Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor y = raw([&] { return kernels::index_add(x, dim, index, src); });
  const int64_t d = wrap_dim(dim, x.dim(), "index_add"), nd = x.dim();
  const Shape xs = x.shape(), ss = src.shape();
  Tensor idx = detach(index);
  return record1(
      "index_add", {x, src}, y,
      [idx, d, nd](const Grads& g, const Grads&) -> Grads { return {g[0], index_select(g[0], bdim(d, nd), idx)}; },
      [idx, d, nd, xs, ss](const Grads& t, const Grads&) -> Grads {
        const Tensor& any = t[0].defined() ? t[0] : t[1];
        if (!any.defined()) return {Tensor()};
        Tensor tx = t[0].defined() ? t[0] : zeros_b(any, xs);
        Tensor ts = t[1].defined() ? t[1] : zeros_b(any, ss);
        return {index_add(tx, bdim(d, nd), idx, ts)};
      });
}

kernels::TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  // Indices from the kernel; values re-read with gather so they carry gather's derivatives.
  kernels::TopK r = raw([&] { return kernels::topk(x, k, dim, largest); });
  mark_blocked("topk (indices)", {x}, {r.indices});
  if (needs_autograd({x})) r.values = gather(x, dim, r.indices);
  return r;
}

kernels::TopK sort(const Tensor& x, int64_t dim, bool descending) {
  kernels::TopK r = raw([&] { return kernels::sort(x, dim, descending); });
  mark_blocked("sort (indices)", {x}, {r.indices});
  if (needs_autograd({x})) r.values = gather(x, dim, r.indices);
  return r;
}

Tensor cumsum(const Tensor& x, int64_t dim) {
  Tensor y = raw([&] { return kernels::cumsum(x, dim); });
  const int64_t d = wrap_dim(dim, x.dim(), "cumsum"), nd = x.dim();
  return record1(
      "cumsum", {x}, y,
      [d, nd](const Grads& g, const Grads&) -> Grads {
        const int64_t bd = bdim(d, nd);
        return {flip(cumsum(flip(g[0], bd), bd), bd)};  // suffix sums
      },
      [d, nd](const Grads& t, const Grads&) -> Grads { return {t[0].defined() ? cumsum(t[0], bdim(d, nd)) : Tensor()}; });
}

Tensor flip(const Tensor& x, int64_t dim) {
  Tensor y = raw([&] { return kernels::flip(x, dim); });
  const int64_t d = wrap_dim(dim, x.dim(), "flip"), nd = x.dim();
  return record1(
      "flip", {x}, y, [d, nd](const Grads& g, const Grads&) -> Grads { return {flip(g[0], bdim(d, nd))}; },
      [d, nd](const Grads& t, const Grads&) -> Grads { return {t[0].defined() ? flip(t[0], bdim(d, nd)) : Tensor()}; });
}

Tensor tril(const Tensor& x, int64_t k) {
  Tensor y = raw([&] { return kernels::tril(x, k); });
  return record1(
      "tril", {x}, y, [k](const Grads& g, const Grads&) -> Grads { return {tril(g[0], k)}; },
      [k](const Grads& t, const Grads&) -> Grads { return {t[0].defined() ? tril(t[0], k) : Tensor()}; });
}

Tensor triu(const Tensor& x, int64_t k) {
  Tensor y = raw([&] { return kernels::triu(x, k); });
  return record1(
      "triu", {x}, y, [k](const Grads& g, const Grads&) -> Grads { return {triu(g[0], k)}; },
      [k](const Grads& t, const Grads&) -> Grads { return {t[0].defined() ? triu(t[0], k) : Tensor()}; });
}

}  // namespace cortex
