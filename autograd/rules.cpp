#include "autograd/rules.h"

#include "autograd/ops.h"

namespace cortex::rules {

Tensor sum_to(const Tensor& d, const Shape& shape) {
  const int64_t b = nb();
  const Shape& ds = d.shape();
  const int64_t lead = static_cast<int64_t>(ds.size()) - b - static_cast<int64_t>(shape.size());
  CORTEX_CHECK(lead >= 0, "sum_to: derivative of shape ", shape_str(ds), " cannot be summed to ", shape_str(shape));
  Shape dims;
  for (int64_t i = 0; i < lead; ++i) dims.push_back(b + i);
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] == 1 && ds[b + lead + i] != 1) dims.push_back(b + lead + static_cast<int64_t>(i));
  Tensor r = dims.empty() ? d : sum(d, dims, true);
  return r.reshape(cat_shape(bshape(d), shape));
}

Tensor bpad(const Tensor& d, int64_t ndim) {
  if (!d.defined() || nb() == 0 || d.dim() - nb() >= ndim) return d;
  Shape padded = bshape(d);
  padded.insert(padded.end(), ndim - (d.dim() - nb()), 1);
  padded.insert(padded.end(), d.shape().begin() + nb(), d.shape().end());
  return d.reshape(padded);
}

Tensor bexpand(const Tensor& d, const Shape& shape) {
  // Right-align the primal part first: (B, 4) must become (B, 1, 4) before expanding to (B, 3, 4).
  const int64_t rank = d.dim() - nb();
  Tensor r = d;
  if (rank < static_cast<int64_t>(shape.size())) {
    Shape padded = bshape(d);
    padded.insert(padded.end(), shape.size() - rank, 1);
    padded.insert(padded.end(), d.shape().begin() + nb(), d.shape().end());
    r = d.reshape(padded);
  }
  return r.expand(cat_shape(bshape(d), shape));
}

Shape bperm(const Shape& perm) {
  Shape p;
  for (int64_t i = 0; i < nb(); ++i) p.push_back(i);
  for (int64_t d : perm) p.push_back(d + nb());
  return p;
}

Tensor tadd(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return add(a, b);
}

}  // namespace cortex::rules
