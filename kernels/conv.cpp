// Entries of the convolution part of kernels/nn.h (conv2d, its adjoints, conv_out_size): input
// checks, then kernels/cpu/conv.cpp. CUDA inputs take the host path until the family has CUDA
// kernels. softmax, normalisation and pooling entries live in kernels/nn.cpp.
#include "kernels/cpu/conv.h"
#include "kernels/dispatch.h"
#include "kernels/nn.h"

namespace cortex::kernels {
namespace {

// PyTorch's output size; `op` names the caller in the error.
int64_t out_size(const char* op, const char* dim, int64_t in, int64_t k, int64_t stride, int64_t pad,
                 int64_t dilation, bool ceil_mode) {
  CORTEX_CHECK(in >= 0 && k >= 1 && stride >= 1 && pad >= 0 && dilation >= 1, op,
               ": expected input size >= 0, kernel size >= 1, stride >= 1, padding >= 0 and dilation >= 1",
               dim, ", found input ", in, ", kernel ", k, ", stride ", stride, ", padding ", pad, ", dilation ",
               dilation);
  // Start of the last window that fits in the padded input; negative when none fits.
  const int64_t last = in + 2 * pad - dilation * (k - 1) - 1;
  CORTEX_CHECK(last >= 0, op, ": expected the dilated kernel (", dilation * (k - 1) + 1,
               ") to fit in the padded input", dim, " (", in + 2 * pad, "), found an output size < 1");
  int64_t out = (ceil_mode ? (last + stride - 1) / stride : last / stride) + 1;
  // ceil_mode may add a window only if it starts inside the input or the left padding.
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

void check_params(const char* op, const Conv2dParams& p) {
  CORTEX_CHECK(p.stride_h >= 1 && p.stride_w >= 1, op, ": expected strides >= 1, found (", p.stride_h, ", ",
               p.stride_w, ")");
  CORTEX_CHECK(p.pad_h >= 0 && p.pad_w >= 0, op, ": expected paddings >= 0, found (", p.pad_h, ", ", p.pad_w, ")");
  CORTEX_CHECK(p.dilation_h >= 1 && p.dilation_w >= 1, op, ": expected dilations >= 1, found (", p.dilation_h,
               ", ", p.dilation_w, ")");
  CORTEX_CHECK(p.groups >= 1, op, ": expected groups >= 1, found ", p.groups);
}

void check_float(const char* op, const char* name, const Tensor& t) {
  CORTEX_CHECK(t.defined(), op, ": expected a tensor for ", name, ", found an undefined tensor");
  CORTEX_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": expected ", name,
               " of dtype float32 or float64, found ", dtype_name(t.dtype()));
}

void check_4d_shape(const char* op, const char* name, const Shape& s) {
  CORTEX_CHECK(s.size() == 4, op, ": expected ", name, " to be 4-D (", name[0] == 'x' ? "N, C, H, W" : "O, C/groups, KH, KW",
               "), found shape ", shape_str(s));
  for (int64_t d : s) CORTEX_CHECK(d >= 0, op, ": expected non-negative sizes in ", name, ", found ", shape_str(s));
}

// Checks x_shape against w_shape and the parameters; returns the output shape (N, O, OH, OW).
Shape conv_shape(const char* op, const Shape& xs, const Shape& ws, const Conv2dParams& p) {
  check_params(op, p);
  check_4d_shape(op, "x", xs);
  check_4d_shape(op, "w", ws);
  const int64_t G = p.groups;
  CORTEX_CHECK(xs[1] % G == 0, op, ": expected the input channels (", xs[1], ") to be divisible by groups (", G,
               ")");
  CORTEX_CHECK(ws[0] % G == 0, op, ": expected the output channels (", ws[0], ") to be divisible by groups (", G,
               ")");
  CORTEX_CHECK(ws[1] * G == xs[1], op, ": expected w of shape (O, C/groups = ", xs[1] / G,
               ", KH, KW) for x of shape ", shape_str(xs), ", found w of shape ", shape_str(ws));
  const int64_t oh = out_size(op, " (height)", xs[2], ws[2], p.stride_h, p.pad_h, p.dilation_h, false);
  const int64_t ow = out_size(op, " (width)", xs[3], ws[3], p.stride_w, p.pad_w, p.dilation_w, false);
  return {xs[0], ws[0], oh, ow};
}

void check_gy(const char* op, const Tensor& gy, const Shape& ys) {
  CORTEX_CHECK(gy.shape() == ys, op, ": expected gy of the output shape ", shape_str(ys), ", found ",
               shape_str(gy.shape()));
}

}  // namespace

int64_t conv_out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation, bool ceil_mode) {
  return out_size("conv_out_size", "", in, k, stride, pad, dilation, ceil_mode);
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dParams& p) {
  check_float("conv2d", "x", x);
  check_float("conv2d", "w", w);
  const Device dev = detail::common_device("conv2d", {&x, &w, &bias});
  detail::check_same_dtype("conv2d", x, w);
  conv_shape("conv2d", x.shape(), w.shape(), p);
  if (bias.defined()) {
    detail::check_same_dtype("conv2d", x, bias);
    CORTEX_CHECK(bias.dim() == 1 && bias.size(0) == w.size(0), "conv2d: expected bias of shape [", w.size(0),
                 "], found shape ", shape_str(bias.shape()));
  }
  if (dev.is_cuda())
    return detail::back(cpu::conv2d(detail::host(x), detail::host(w), detail::host(bias), p), dev);
  return cpu::conv2d(x, w, bias, p);
}

Tensor conv2d_input_grad(const Tensor& gy, const Tensor& w, const Shape& x_shape, const Conv2dParams& p) {
  check_float("conv2d_input_grad", "gy", gy);
  check_float("conv2d_input_grad", "w", w);
  const Device dev = detail::common_device("conv2d_input_grad", {&gy, &w});
  detail::check_same_dtype("conv2d_input_grad", gy, w);
  check_gy("conv2d_input_grad", gy, conv_shape("conv2d_input_grad", x_shape, w.shape(), p));
  if (dev.is_cuda()) return detail::back(cpu::conv2d_input_grad(detail::host(gy), detail::host(w), x_shape, p), dev);
  return cpu::conv2d_input_grad(gy, w, x_shape, p);
}

Tensor conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Shape& w_shape, const Conv2dParams& p) {
  check_float("conv2d_weight_grad", "x", x);
  check_float("conv2d_weight_grad", "gy", gy);
  const Device dev = detail::common_device("conv2d_weight_grad", {&x, &gy});
  detail::check_same_dtype("conv2d_weight_grad", x, gy);
  check_gy("conv2d_weight_grad", gy, conv_shape("conv2d_weight_grad", x.shape(), w_shape, p));
  if (dev.is_cuda())
    return detail::back(cpu::conv2d_weight_grad(detail::host(x), detail::host(gy), w_shape, p), dev);
  return cpu::conv2d_weight_grad(x, gy, w_shape, p);
}

}  // namespace cortex::kernels
