// Entry points of kernels/sample.h: grid_sample, bilinear resize, pad and their adjoints. Each
// checks its inputs, then runs the kernel of the inputs' device through the backend tables
// (kernels/dispatch.h).
#include "kernels/sample.h"

#include "kernels/checks.h"
#include "kernels/dispatch.h"
#include "kernels/shape.h"

namespace cortex::kernels {
namespace {

void check_grid(const char* op, const Tensor& x, const Tensor& grid) {
  check_float(op, "x", x);
  check_image_shape(op, "x", x.shape(), false);
  check_float(op, "grid", grid);
  check_same_dtype(op, x, grid);
  CORTEX_CHECK(grid.dim() == 4 && grid.size(0) == x.size(0) && grid.size(3) == 2, op, ": expected grid of shape (",
               x.size(0), ", Ho, Wo, 2) for x of shape ", shape_str(x.shape()), ", found ", shape_str(grid.shape()));
}

}  // namespace

Tensor grid_sample(const Tensor& x, const Tensor& grid, bool align_corners, GridPadding padding, GridMode mode) {
  const char* op = "grid_sample";
  check_grid(op, x, grid);
  return call(&Table::grid_sample, op, x, grid, align_corners, padding, mode);
}

GridSampleGrads grid_sample_backward(const Tensor& gy, const Tensor& x, const Tensor& grid, bool align_corners,
                                     GridPadding padding, GridMode mode, bool grid_grad) {
  const char* op = "grid_sample_backward";
  check_grid(op, x, grid);
  check_float(op, "gy", gy);
  check_same_dtype(op, x, gy);
  const Shape want{x.size(0), x.size(1), grid.size(1), grid.size(2)};
  CORTEX_CHECK(gy.shape() == want, op, ": expected gy of shape ", shape_str(want), ", found ",
               shape_str(gy.shape()));
  return call(&Table::grid_sample_backward, op, gy, x, grid, align_corners, padding, mode, grid_grad);
}

Tensor resize_bilinear(const Tensor& x, int64_t out_h, int64_t out_w, bool align_corners) {
  const char* op = "resize_bilinear";
  check_float(op, "x", x);
  check_image_shape(op, "x", x.shape(), false);
  CORTEX_CHECK(out_h >= 1 && out_w >= 1, op, ": expected a positive output size, found (", out_h, ", ", out_w,
               ")");
  return call(&Table::resize_bilinear, op, x, out_h, out_w, align_corners);
}

Tensor resize_bilinear_backward(const Tensor& gy, const Shape& x_shape, bool align_corners) {
  const char* op = "resize_bilinear_backward";
  check_float(op, "gy", gy);
  check_image_shape(op, "x_shape", x_shape, false);
  CORTEX_CHECK(gy.dim() == 4 && gy.size(0) == x_shape[0] && gy.size(1) == x_shape[1] && gy.size(2) >= 1 &&
                   gy.size(3) >= 1,
               op, ": expected gy of shape (", x_shape[0], ", ", x_shape[1], ", out_h >= 1, out_w >= 1), found ",
               shape_str(gy.shape()));
  return call(&Table::resize_bilinear_backward, op, gy, x_shape, align_corners);
}

Tensor pad(const Tensor& x, const Shape& pads, PadMode mode, double value) {
  const char* op = "pad";
  check_defined(op, "x", x);
  padded_shape(op, x.shape(), pads, mode);
  return call(&Table::pad, op, x, pads, mode, value);
}

Tensor pad_backward(const Tensor& gy, const Shape& x_shape, const Shape& pads, PadMode mode) {
  const char* op = "pad_backward";
  check_float(op, "gy", gy);
  shape_numel(x_shape);
  const Shape want = padded_shape(op, x_shape, pads, mode);
  CORTEX_CHECK(gy.shape() == want, op, ": expected gy of the padded shape ", shape_str(want), ", found ",
               shape_str(gy.shape()));
  return call(&Table::pad_backward, op, gy, x_shape, pads, mode);
}

}  // namespace cortex::kernels
