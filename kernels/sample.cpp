// Entry points of kernels/sample.h: grid_sample, bilinear resize, pad and their adjoints. Each
// checks its inputs, then runs the CPU kernel; CUDA tensors take the host path until the family
// has CUDA kernels (kernels/dispatch.h).
#include "kernels/sample.h"

#include "kernels/cpu/sample.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {
namespace {

void check_float(const char* op, const char* what, const Tensor& t) {
  CORTEX_CHECK(t.defined(), op, ": expected ", what, " to be a defined tensor");
  CORTEX_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": expected ", what,
               " to be float32 or float64, found ", dtype_name(t.dtype()));
}

void check_image_shape(const char* op, const char* what, const Shape& s) {
  CORTEX_CHECK(s.size() == 4, op, ": expected ", what, " of shape (N, C, H, W), found ", shape_str(s));
  shape_numel(s);
  CORTEX_CHECK(s[2] > 0 && s[3] > 0, op, ": expected ", what, " with non-empty spatial dims, found ", shape_str(s));
}

void check_grid(const char* op, const Tensor& x, const Tensor& grid) {
  check_float(op, "x", x);
  check_image_shape(op, "x", x.shape());
  check_float(op, "grid", grid);
  detail::check_same_dtype(op, x, grid);
  CORTEX_CHECK(grid.dim() == 4 && grid.size(0) == x.size(0) && grid.size(3) == 2, op, ": expected grid of shape (",
               x.size(0), ", Ho, Wo, 2) for x of shape ", shape_str(x.shape()), ", found ", shape_str(grid.shape()));
}

// The padded shape of x_shape; checks the pads against F.pad's rules for the mode.
Shape padded_shape(const char* op, const Shape& x_shape, const Shape& pads, PadMode mode) {
  const int64_t nd = static_cast<int64_t>(x_shape.size());
  const int64_t np = static_cast<int64_t>(pads.size());
  CORTEX_CHECK(np % 2 == 0 && np <= 2 * nd, op, ": expected an even number of pads, at most 2 per dim (",
               2 * nd, " for shape ", shape_str(x_shape), "), found ", np);
  Shape out = x_shape;
  for (int64_t k = 0; 2 * k < np; ++k) {
    const int64_t d = nd - 1 - k, n = x_shape[d], l = pads[2 * k], r = pads[2 * k + 1];
    int64_t size = 0;
    CORTEX_CHECK(!__builtin_add_overflow(n, l, &size) && !__builtin_add_overflow(size, r, &size) && size >= 0, op,
                 ": expected pads (", l, ", ", r, ") to leave a non-negative size for dim ", d, " of shape ",
                 shape_str(x_shape));
    if (mode == PadMode::Reflect)
      CORTEX_CHECK(l < n && r < n, op, ": reflect padding expects pads smaller than the dim, found pads (", l, ", ",
                   r, ") for dim ", d, " of size ", n);
    if (mode == PadMode::Replicate)
      CORTEX_CHECK(n > 0 || size == 0, op, ": replicate padding expects a non-empty dim, found dim ", d,
                   " of size 0 padded by (", l, ", ", r, ")");
    out[d] = size;
  }
  shape_numel(out);
  return out;
}

}  // namespace

Tensor grid_sample(const Tensor& x, const Tensor& grid, bool align_corners, GridPadding padding) {
  const char* op = "grid_sample";
  const Device dev = detail::common_device(op, {&x, &grid});
  check_grid(op, x, grid);
  if (dev.is_cuda())
    return detail::back(cpu::grid_sample(detail::host(x), detail::host(grid), align_corners, padding), dev);
  return cpu::grid_sample(x, grid, align_corners, padding);
}

GridSampleGrads grid_sample_backward(const Tensor& gy, const Tensor& x, const Tensor& grid, bool align_corners,
                                     GridPadding padding) {
  const char* op = "grid_sample_backward";
  const Device dev = detail::common_device(op, {&gy, &x, &grid});
  check_grid(op, x, grid);
  check_float(op, "gy", gy);
  detail::check_same_dtype(op, x, gy);
  const Shape want{x.size(0), x.size(1), grid.size(1), grid.size(2)};
  CORTEX_CHECK(gy.shape() == want, op, ": expected gy of shape ", shape_str(want), ", found ",
               shape_str(gy.shape()));
  if (dev.is_cuda()) {
    GridSampleGrads r = cpu::grid_sample_backward(detail::host(gy), detail::host(x), detail::host(grid),
                                                  align_corners, padding);
    return {detail::back(r.input, dev), detail::back(r.grid, dev)};
  }
  return cpu::grid_sample_backward(gy, x, grid, align_corners, padding);
}

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  const char* op = "resize_bilinear";
  const Device dev = detail::common_device(op, {&x});
  check_float(op, "x", x);
  check_image_shape(op, "x", x.shape());
  CORTEX_CHECK(out_h >= 1 && out_w >= 1, op, ": expected a positive output size, found (", out_h, ", ", out_w,
               ")");
  if (dev.is_cuda()) return detail::back(cpu::resize_bilinear(detail::host(x), out_h, out_w, align_corners), dev);
  return cpu::resize_bilinear(x, out_h, out_w, align_corners);
}

Tensor resize_bilinear_backward(const Tensor& gy, const Shape& x_shape, bool align_corners) {
  const char* op = "resize_bilinear_backward";
  const Device dev = detail::common_device(op, {&gy});
  check_float(op, "gy", gy);
  check_image_shape(op, "x_shape", x_shape);
  CORTEX_CHECK(gy.dim() == 4 && gy.size(0) == x_shape[0] && gy.size(1) == x_shape[1] && gy.size(2) >= 1 &&
                   gy.size(3) >= 1,
               op, ": expected gy of shape (", x_shape[0], ", ", x_shape[1], ", out_h >= 1, out_w >= 1), found ",
               shape_str(gy.shape()));
  if (dev.is_cuda()) return detail::back(cpu::resize_bilinear_backward(detail::host(gy), x_shape, align_corners), dev);
  return cpu::resize_bilinear_backward(gy, x_shape, align_corners);
}

Tensor pad(const Tensor& x, const Shape& pads, PadMode mode, double value) {
  const char* op = "pad";
  const Device dev = detail::common_device(op, {&x});
  padded_shape(op, x.shape(), pads, mode);
  if (dev.is_cuda()) return detail::back(cpu::pad(detail::host(x), pads, mode, value), dev);
  return cpu::pad(x, pads, mode, value);
}

Tensor pad_backward(const Tensor& gy, const Shape& x_shape, const Shape& pads, PadMode mode) {
  const char* op = "pad_backward";
  const Device dev = detail::common_device(op, {&gy});
  check_float(op, "gy", gy);
  shape_numel(x_shape);
  const Shape want = padded_shape(op, x_shape, pads, mode);
  CORTEX_CHECK(gy.shape() == want, op, ": expected gy of the padded shape ", shape_str(want), ", found ",
               shape_str(gy.shape()));
  if (dev.is_cuda()) return detail::back(cpu::pad_backward(detail::host(gy), x_shape, pads, mode), dev);
  return cpu::pad_backward(gy, x_shape, pads, mode);
}

}  // namespace cortex::kernels
