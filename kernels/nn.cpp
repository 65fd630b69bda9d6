// Entry points of kernels/nn.h other than convolution (kernels/conv.cpp): softmax, log_softmax,
// layer_norm, batch_norm and pooling. Each checks its inputs, then runs the CPU kernel; CUDA
// tensors take the host path until the family has CUDA kernels (kernels/dispatch.h).
#include "kernels/nn.h"

#include "kernels/cpu/nn.h"
#include "kernels/cpu/pool.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {
namespace {

void check_float(const char* op, const char* what, const Tensor& t) {
  CORTEX_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": expected ", what,
               " to be float32 or float64, found ", dtype_name(t.dtype()));
}

// An optional parameter (weight, bias, running stats): undefined, or `shape` and x's dtype.
void check_param(const char* op, const char* what, const Tensor& t, const Shape& shape, DType dt) {
  if (!t.defined()) return;
  CORTEX_CHECK(t.dtype() == dt, op, ": expected ", what, " of dtype ", dtype_name(dt), ", found ",
               dtype_name(t.dtype()));
  CORTEX_CHECK(t.shape() == shape, op, ": expected ", what, " of shape ", shape_str(shape), ", found ",
               shape_str(t.shape()));
}

Tensor softmax_entry(const char* op, const Tensor& x, int64_t dim, bool log) {
  const Device dev = detail::common_device(op, {&x});
  check_float(op, "x", x);
  const int64_t d = wrap_dim(dim, x.dim(), op);
  auto run = [&](const Tensor& h) { return log ? cpu::log_softmax(h, d) : cpu::softmax(h, d); };
  if (dev.is_cuda()) return detail::back(run(detail::host(x)), dev);
  return run(x);
}

// Pool inputs are (N, C, H, W) or unbatched (C, H, W), as in PyTorch.
void check_pool_input(const char* op, const Tensor& x) {
  check_float(op, "x", x);
  CORTEX_CHECK(x.dim() == 3 || x.dim() == 4, op, ": expected x of shape (N, C, H, W) or (C, H, W), found ",
               shape_str(x.shape()));
  CORTEX_CHECK(x.size(-1) > 0 && x.size(-2) > 0, op, ": expected non-empty spatial dims, found shape ",
               shape_str(x.shape()));
}
Tensor batched(const Tensor& x) { return x.dim() == 3 ? x.unsqueeze(0) : x; }
Tensor unbatched(const Tensor& y, int64_t in_dim) { return in_dim == 3 ? y.squeeze(0) : y; }
Shape batched(const Shape& s) {
  Shape b = s;
  if (b.size() == 3) b.insert(b.begin(), 1);
  return b;
}

void pool_out(const char* op, const Tensor& x, const Pool2dParams& p, int64_t& oh, int64_t& ow) {
  oh = cpu::pool_out_size(op, x.size(-2), p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode);
  ow = cpu::pool_out_size(op, x.size(-1), p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode);
}

// gy must be x_shape with the spatial dims replaced by (oh, ow); x_shape as check_pool_input.
void check_pool_grad(const char* op, const Tensor& gy, const Shape& x_shape, int64_t oh, int64_t ow) {
  Shape want = x_shape;
  want[want.size() - 2] = oh;
  want[want.size() - 1] = ow;
  CORTEX_CHECK(gy.shape() == want, op, ": expected gy of shape ", shape_str(want), " for x of shape ",
               shape_str(x_shape), ", found ", shape_str(gy.shape()));
}
void check_pool_x_shape(const char* op, const Shape& x_shape) {
  CORTEX_CHECK(x_shape.size() == 3 || x_shape.size() == 4, op,
               ": expected x_shape (N, C, H, W) or (C, H, W), found ", shape_str(x_shape));
  shape_numel(x_shape);
  CORTEX_CHECK(x_shape[x_shape.size() - 1] > 0 && x_shape[x_shape.size() - 2] > 0, op,
               ": expected non-empty spatial dims, found x_shape ", shape_str(x_shape));
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_entry("softmax", x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_entry("log_softmax", x, dim, true); }

LayerNorm layer_norm(const Tensor& x, int64_t normalized_ndim, const Tensor& weight, const Tensor& bias,
                     double eps) {
  const char* op = "layer_norm";
  const Device dev = detail::common_device(op, {&x, &weight, &bias});
  check_float(op, "x", x);
  CORTEX_CHECK(normalized_ndim >= 1 && normalized_ndim <= x.dim(), op, ": expected normalized_ndim in [1, ",
               x.dim(), "] for x of shape ", shape_str(x.shape()), ", found ", normalized_ndim);
  CORTEX_CHECK(eps >= 0, op, ": expected eps >= 0, found ", eps);
  const Shape norm(x.shape().end() - normalized_ndim, x.shape().end());
  check_param(op, "weight", weight, norm, x.dtype());
  check_param(op, "bias", bias, norm, x.dtype());
  if (dev.is_cuda()) {
    LayerNorm r = cpu::layer_norm(detail::host(x), normalized_ndim, detail::host(weight), detail::host(bias), eps);
    return {detail::back(r.y, dev), detail::back(r.mean, dev), detail::back(r.rstd, dev)};
  }
  return cpu::layer_norm(x, normalized_ndim, weight, bias, eps);
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const char* op = "batch_norm";
  const Device dev = detail::common_device(op, {&x, &running_mean, &running_var, &weight, &bias});
  check_float(op, "x", x);
  CORTEX_CHECK(x.dim() >= 2, op, ": expected x of shape (N, C, ...), found ", shape_str(x.shape()));
  CORTEX_CHECK(running_mean.defined() && running_var.defined(), op,
               ": expected running_mean and running_var, found an undefined tensor");
  CORTEX_CHECK(eps >= 0, op, ": expected eps >= 0, found ", eps);
  const Shape c{x.size(1)};
  check_param(op, "running_mean", running_mean, c, x.dtype());
  check_param(op, "running_var", running_var, c, x.dtype());
  check_param(op, "weight", weight, c, x.dtype());
  check_param(op, "bias", bias, c, x.dtype());
  if (dev.is_cuda())
    return detail::back(cpu::batch_norm(detail::host(x), detail::host(running_mean), detail::host(running_var),
                                        detail::host(weight), detail::host(bias), eps),
                        dev);
  return cpu::batch_norm(x, running_mean, running_var, weight, bias, eps);
}

MaxPool max_pool2d(const Tensor& x, const Pool2dParams& p) {
  const char* op = "max_pool2d";
  const Device dev = detail::common_device(op, {&x});
  check_pool_input(op, x);
  int64_t oh, ow;
  pool_out(op, x, p, oh, ow);
  MaxPool r = cpu::max_pool2d(batched(detail::host(x)), p, oh, ow);
  r = {unbatched(r.y, x.dim()), unbatched(r.indices, x.dim())};
  if (dev.is_cuda()) return {detail::back(r.y, dev), detail::back(r.indices, dev)};
  return r;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p) {
  const char* op = "avg_pool2d";
  const Device dev = detail::common_device(op, {&x});
  check_pool_input(op, x);
  int64_t oh, ow;
  pool_out(op, x, p, oh, ow);
  Tensor y = unbatched(cpu::avg_pool2d(batched(detail::host(x)), p, oh, ow), x.dim());
  return dev.is_cuda() ? detail::back(y, dev) : y;
}

Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dParams& p) {
  const char* op = "avg_pool2d_backward";
  const Device dev = detail::common_device(op, {&gy});
  check_float(op, "gy", gy);
  check_pool_x_shape(op, x_shape);
  const int64_t oh = cpu::pool_out_size(op, x_shape[x_shape.size() - 2], p.kernel_h, p.stride_h, p.pad_h,
                                        p.ceil_mode);
  const int64_t ow = cpu::pool_out_size(op, x_shape[x_shape.size() - 1], p.kernel_w, p.stride_w, p.pad_w,
                                        p.ceil_mode);
  check_pool_grad(op, gy, x_shape, oh, ow);
  const Tensor g = batched(detail::host(gy));
  Tensor gx = cpu::avg_pool2d_backward(g, batched(x_shape), p).view(x_shape);
  return dev.is_cuda() ? detail::back(gx, dev) : gx;
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  const char* op = "adaptive_avg_pool2d";
  const Device dev = detail::common_device(op, {&x});
  check_pool_input(op, x);
  CORTEX_CHECK(out_h >= 1 && out_w >= 1, op, ": expected a positive output size, found (", out_h, ", ", out_w,
               ")");
  Tensor y = unbatched(cpu::adaptive_avg_pool2d(batched(detail::host(x)), out_h, out_w), x.dim());
  return dev.is_cuda() ? detail::back(y, dev) : y;
}

Tensor adaptive_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  const Device dev = detail::common_device(op, {&gy});
  check_float(op, "gy", gy);
  check_pool_x_shape(op, x_shape);
  CORTEX_CHECK(gy.dim() == static_cast<int64_t>(x_shape.size()) && gy.size(-1) >= 1 && gy.size(-2) >= 1, op,
               ": expected gy with the dims of x_shape ", shape_str(x_shape), " and a positive output size, found ",
               shape_str(gy.shape()));
  check_pool_grad(op, gy, x_shape, gy.size(-2), gy.size(-1));
  const Tensor g = batched(detail::host(gy));
  Tensor gx = cpu::adaptive_avg_pool2d_backward(g, batched(x_shape)).view(x_shape);
  return dev.is_cuda() ? detail::back(gx, dev) : gx;
}

}  // namespace cortex::kernels
