// Helpers for writing VJP/JVP rules that are correct both for plain derivatives (shape of the
// primal) and batched ones (an extra leading dim, inside a BatchedScope; see autograd.h).
#pragma once
#include "autograd/autograd.h"

namespace cortex::rules {

// Number of leading batch dims on derivative tensors right now (0 or 1).
inline int64_t nb() { return derivative_batch_dims(); }
// The leading batch shape of a derivative tensor d: {} or {B}.
inline Shape bshape(const Tensor& d) { return Shape(d.shape().begin(), d.shape().begin() + nb()); }
inline Shape cat_shape(const Shape& a, const Shape& b) {
  Shape s = a;
  s.insert(s.end(), b.begin(), b.end());
  return s;
}
// Axis `d` of a primal with `ndim` dims, as an axis of a derivative tensor.
inline int64_t bdim(int64_t d, int64_t ndim) { return wrap_dim(d, ndim) + nb(); }
// Axes list shifted likewise.
inline Shape bdims(const Shape& dims, int64_t ndim) {
  Shape out;
  for (int64_t d : dims) out.push_back(bdim(d, ndim));
  return out;
}
// Reshape / expand a derivative tensor to (batch, *shape).
inline Tensor breshape(const Tensor& d, const Shape& shape) { return d.reshape(cat_shape(bshape(d), shape)); }
// Reshape d to (batch of `like`, *shape): for results computed on a flattened derivative (whose
// leading dim is no longer the batch), e.g. pooling applied to (batch * N * C, H, W) planes.
inline Tensor breshape_as(const Tensor& d, const Tensor& like, const Shape& shape) {
  return d.reshape(cat_shape(bshape(like), shape));
}
// Sums a derivative that was broadcast from `shape` back to (batch, *shape) (differentiable).
Tensor sum_to(const Tensor& d, const Shape& shape);
// Expands a derivative of shape (batch, *from) that broadcasts to (batch, *shape).
Tensor bexpand(const Tensor& d, const Shape& shape);
// A primal `p` aligned to broadcast against a batched derivative (a no-op: leading dims broadcast).
// Permutation of a primal's dims applied to a derivative tensor.
Shape bperm(const Shape& perm);
// A derivative of a primal with fewer dims than `ndim`, given size-1 dims after the batch dim so
// that it right-aligns against ndim-dim primals: (B, 5, 1) -> (B, 1, 5, 1) for ndim 3. Plain
// derivatives broadcast on their own; batched ones would otherwise align B with a primal dim.
Tensor bpad(const Tensor& d, int64_t ndim);
// Sum of tangents where undefined means zero (result undefined when both are).
Tensor tadd(const Tensor& a, const Tensor& b);

}  // namespace cortex::rules
