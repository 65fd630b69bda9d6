// Entry points of kernels/pool.h: max, average and adaptive average pooling and the adjoints. Each
// checks its inputs and sizes the output (kernels/shape.h), then runs the kernel of the inputs'
// device through the backend tables (kernels/dispatch.h). The kernels see batched (N, C, H, W)
// tensors: an unbatched (C, H, W) input is viewed with N = 1 here and the result viewed back.
#include "kernels/pool.h"

#include "kernels/checks.h"
#include "kernels/dispatch.h"
#include "kernels/shape.h"

namespace cortex::kernels {
namespace {

Tensor batched(const Tensor& x) { return x.dim() == 3 ? x.unsqueeze(0) : x; }
Tensor unbatched(const Tensor& y, int64_t in_dim) { return in_dim == 3 ? y.squeeze(0) : y; }
Shape batched(const Shape& s) {
  Shape b = s;
  if (b.size() == 3) b.insert(b.begin(), 1);
  return b;
}

// Pool inputs are (N, C, H, W) or unbatched (C, H, W), as in PyTorch.
void check_pool_input(const char* op, const Tensor& x) {
  check_float(op, "x", x);
  check_image_shape(op, "x", x.shape(), true);
}

// gy must be x_shape with the spatial dims replaced by (oh, ow).
void check_pool_grad(const char* op, const Tensor& gy, const Shape& x_shape, int64_t oh, int64_t ow) {
  Shape want = x_shape;
  want[want.size() - 2] = oh;
  want[want.size() - 1] = ow;
  CORTEX_CHECK(gy.shape() == want, op, ": expected gy of shape ", shape_str(want), " for x of shape ",
               shape_str(x_shape), ", found ", shape_str(gy.shape()));
}

}  // namespace

MaxPool max_pool2d(const Tensor& x, const Pool2dParams& p) {
  const char* op = "max_pool2d";
  check_pool_input(op, x);
  const Shape ys = pool2d_out_shape(op, x.shape(), p);
  MaxPool r = call(&Table::max_pool2d, op, batched(x), p, ys[ys.size() - 2], ys[ys.size() - 1]);
  return {unbatched(r.y, x.dim()), unbatched(r.indices, x.dim())};
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p) {
  const char* op = "avg_pool2d";
  check_pool_input(op, x);
  const Shape ys = pool2d_out_shape(op, x.shape(), p);
  return unbatched(call(&Table::avg_pool2d, op, batched(x), p, ys[ys.size() - 2], ys[ys.size() - 1]), x.dim());
}

Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dParams& p) {
  const char* op = "avg_pool2d_backward";
  check_float(op, "gy", gy);
  check_image_shape(op, "x_shape", x_shape, true);
  const Shape ys = pool2d_out_shape(op, x_shape, p);
  check_pool_grad(op, gy, x_shape, ys[ys.size() - 2], ys[ys.size() - 1]);
  return call(&Table::avg_pool2d_backward, op, batched(gy), batched(x_shape), p).view(x_shape);
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  const char* op = "adaptive_avg_pool2d";
  check_pool_input(op, x);
  CORTEX_CHECK(out_h >= 1 && out_w >= 1, op, ": expected a positive output size, found (", out_h, ", ", out_w,
               ")");
  return unbatched(call(&Table::adaptive_avg_pool2d, op, batched(x), out_h, out_w), x.dim());
}

Tensor adaptive_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  check_float(op, "gy", gy);
  check_image_shape(op, "x_shape", x_shape, true);
  CORTEX_CHECK(gy.dim() == static_cast<int64_t>(x_shape.size()) && gy.size(-1) >= 1 && gy.size(-2) >= 1, op,
               ": expected gy with the dims of x_shape ", shape_str(x_shape), " and a positive output size, found ",
               shape_str(gy.shape()));
  check_pool_grad(op, gy, x_shape, gy.size(-2), gy.size(-1));
  return call(&Table::adaptive_avg_pool2d_backward, op, batched(gy), batched(x_shape)).view(x_shape);
}

}  // namespace cortex::kernels
