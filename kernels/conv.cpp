// Entries of kernels/conv.h: conv2d, its adjoints and conv_out_size. Each checks its inputs and
// the output shape (kernels/shape.h), then runs the kernel of the inputs' device through the
// backend tables (kernels/dispatch.h).
#include "kernels/conv.h"

#include "kernels/autocast.h"
#include "kernels/checks.h"
#include "kernels/dispatch.h"
#include "kernels/shape.h"

namespace cortex::kernels {
namespace {

void check_gy(const char* op, const Tensor& gy, const Shape& ys) {
  CORTEX_CHECK(gy.shape() == ys, op, ": expected gy of the output shape ", shape_str(ys), ", found ",
               shape_str(gy.shape()));
}

}  // namespace

int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode) {
  return conv_window_out_size("conv_out_size", "", in, k, stride, pad, dilation, ceil_mode);
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  // bf16: every operand bf16, the float32 kernel on the widened operands, one rounding (autocast.h).
  if (autocast::is_bf16(x)) {
    check_defined("conv2d", "w", w);
    check_same_dtype("conv2d", x, w);
    if (bias.defined()) check_same_dtype("conv2d", x, bias);
    return autocast::round_bf16(conv2d(autocast::widen(x), autocast::widen(w), autocast::widen(bias), p));
  }
  check_float("conv2d", "x", x);
  check_float("conv2d", "w", w);
  check_same_dtype("conv2d", x, w);
  conv2d_out_shape("conv2d", x.shape(), w.shape(), p);
  if (bias.defined()) {
    check_same_dtype("conv2d", x, bias);
    CORTEX_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), "conv2d: expected bias of shape [", w.size(0),
                 "], found shape ", shape_str(bias.shape()));
  }
  return call(&Table::conv2d, "conv2d", x, w, bias, p);
}

Tensor conv2d_input_grad(const Tensor& gy, const Tensor& w, const Shape& x_shape, const Conv2dParams& p) {
  check_float("conv2d_input_grad", "gy", gy);
  check_float("conv2d_input_grad", "w", w);
  check_same_dtype("conv2d_input_grad", gy, w);
  check_gy("conv2d_input_grad", gy, conv2d_out_shape("conv2d_input_grad", x_shape, w.shape(), p));
  return call(&Table::conv2d_input_grad, "conv2d_input_grad", gy, w, x_shape, p);
}

Tensor conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Shape& w_shape, const Conv2dParams& p) {
  check_float("conv2d_weight_grad", "x", x);
  check_float("conv2d_weight_grad", "gy", gy);
  check_same_dtype("conv2d_weight_grad", x, gy);
  check_gy("conv2d_weight_grad", gy, conv2d_out_shape("conv2d_weight_grad", x.shape(), w_shape, p));
  return call(&Table::conv2d_weight_grad, "conv2d_weight_grad", x, gy, w_shape, p);
}

}  // namespace cortex::kernels
