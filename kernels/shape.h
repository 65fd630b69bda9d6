// Backend-neutral shape arithmetic of the kernel families, in one place: convolution and pooling
// output sizes, matmul's batch broadcasting and batch plan, reduction output shapes, three-way
// broadcasting, padded shapes. The entries (kernels/<family>.cpp) use it to check arguments and size outputs; the backends (kernels/cpu/,
// and the CUDA kernels) use the same functions, so no backend has its own copy of a size rule.
// Two-operand NumPy broadcasting is cortex::broadcast_shapes (tensor/tensor.h).
#pragma once
#include <algorithm>
#include <cstddef>

#include "kernels/conv.h"
#include "kernels/pool.h"
#include "kernels/sample.h"
#include "tensor/tensor.h"

namespace cortex::kernels {

// Output size of one spatial dim of a convolution (PyTorch's rule); `op` names the caller and `dim`
// (" (height)", " (width)" or "") the dim in the error.
inline int64_t conv_window_out_size(const char* op, const char* dim, int64_t in, int64_t k, int64_t stride,
                                    int64_t pad, int64_t dilation, bool ceil_mode) {
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

// Checks x_shape (N, C, H, W) against w_shape (O, C/groups, KH, KW) and the parameters; returns
// the output shape (N, O, OH, OW).
inline Shape conv2d_out_shape(const char* op, const Shape& xs, const Shape& ws, const Conv2dParams& p) {
  CORTEX_CHECK(p.stride_h >= 1 && p.stride_w >= 1, op, ": expected strides >= 1, found (", p.stride_h, ", ",
               p.stride_w, ")");
  CORTEX_CHECK(p.pad_h >= 0 && p.pad_w >= 0, op, ": expected paddings >= 0, found (", p.pad_h, ", ", p.pad_w, ")");
  CORTEX_CHECK(p.dilation_h >= 1 && p.dilation_w >= 1, op, ": expected dilations >= 1, found (", p.dilation_h,
               ", ", p.dilation_w, ")");
  CORTEX_CHECK(p.groups >= 1, op, ": expected groups >= 1, found ", p.groups);
  CORTEX_CHECK(xs.size() == 4, op, ": expected x to be 4-D (N, C, H, W), found shape ", shape_str(xs));
  CORTEX_CHECK(ws.size() == 4, op, ": expected w to be 4-D (O, C/groups, KH, KW), found shape ", shape_str(ws));
  for (int64_t d : xs) CORTEX_CHECK(d >= 0, op, ": expected non-negative sizes in x, found ", shape_str(xs));
  for (int64_t d : ws) CORTEX_CHECK(d >= 0, op, ": expected non-negative sizes in w, found ", shape_str(ws));
  const int64_t G = p.groups;
  CORTEX_CHECK(xs[1] % G == 0, op, ": expected the input channels (", xs[1], ") to be divisible by groups (", G,
               ")");
  CORTEX_CHECK(ws[0] % G == 0, op, ": expected the output channels (", ws[0], ") to be divisible by groups (", G,
               ")");
  CORTEX_CHECK(ws[1] * G == xs[1], op, ": expected w of shape (O, C/groups = ", xs[1] / G,
               ", KH, KW) for x of shape ", shape_str(xs), ", found w of shape ", shape_str(ws));
  const int64_t oh = conv_window_out_size(op, " (height)", xs[2], ws[2], p.stride_h, p.pad_h, p.dilation_h, false);
  const int64_t ow = conv_window_out_size(op, " (width)", xs[3], ws[3], p.stride_w, p.pad_w, p.dilation_w, false);
  return {xs[0], ws[0], oh, ow};
}

// Pooling's output size for one spatial dim (PyTorch's rule): floor or ceil of
// (in + 2 pad - k) / stride, plus 1; with ceil_mode the last window must start inside the input
// or the left padding. Throws naming `op` when k or stride are not positive, pad is negative or
// more than k / 2, or the output would be empty.
inline int64_t pool_out_size(const char* op, int64_t in, int64_t k, int64_t stride, int64_t pad, bool ceil_mode) {
  CORTEX_CHECK(k > 0, op, ": expected a positive kernel size, found ", k);
  CORTEX_CHECK(stride > 0, op, ": expected a positive stride, found ", stride);
  CORTEX_CHECK(pad >= 0 && pad <= k / 2, op, ": expected padding in [0, kernel / 2] = [0, ", k / 2, "], found ",
               pad);
  // Floor division rounding toward -inf: the numerator is negative when the kernel exceeds the padded input.
  const int64_t a = in + 2 * pad - k + (ceil_mode ? stride - 1 : 0);
  int64_t out = a / stride - ((a % stride != 0) && (a < 0)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  CORTEX_CHECK(out >= 1, op, ": expected an output size of at least 1, found ", out, " (input size ", in,
               ", kernel ", k, ", stride ", stride, ", padding ", pad, ")");
  return out;
}

// x_shape (..., H, W) with the spatial dims replaced by the pooled sizes.
inline Shape pool2d_out_shape(const char* op, const Shape& x_shape, const Pool2dParams& p) {
  CORTEX_CHECK(x_shape.size() >= 2, op, ": expected a shape (..., H, W), found ", shape_str(x_shape));
  Shape out = x_shape;
  const size_t h = out.size() - 2, w = out.size() - 1;
  out[h] = pool_out_size(op, x_shape[h], p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode);
  out[w] = pool_out_size(op, x_shape[w], p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode);
  return out;
}

// The broadcast batch dims of a matmul of shapes a and b (all but the last two dims of each; a
// 1-D operand has none).
inline Shape matmul_batch_shape(const char* op, const Shape& a, const Shape& b) {
  const auto batch = [](const Shape& s) { return Shape(s.begin(), s.end() - std::min<size_t>(s.size(), 2)); };
  return broadcast_shapes(batch(a), batch(b), op);
}

// The batched products of a matmul, as both backends run them: 1-D operands promoted (a (k) ->
// (1, k), b (k) -> (k, 1)), the batch dims broadcast, and the operands expanded to the batch so a
// broadcast batch dim has stride 0 (product i reads its matrices at offset_of(i, batch, *_batch_strides)).
// a and b are the promoted operands, as the backend wants them laid out (the CPU makes an operand
// that Eigen cannot map contiguous first); a_vector / b_vector say whether they were 1-D.
struct MatmulBatches {
  int64_t m = 0, k = 0, n = 0;
  int64_t count = 0;               // products: the batch's element count
  Shape batch;                     // broadcast batch dims
  Shape full_shape;                // (batch..., m, n): what the products fill, row-major
  Shape result_shape;              // full_shape without the dims added for 1-D operands
  Tensor a, b;                     // expanded to (batch..., m, k) and (batch..., k, n)
  Shape a_batch_strides, b_batch_strides;
};

inline Tensor matmul_promote_a(const Tensor& a) { return a.dim() == 1 ? a.unsqueeze(0) : a; }
inline Tensor matmul_promote_b(const Tensor& b) { return b.dim() == 1 ? b.unsqueeze(1) : b; }

inline MatmulBatches matmul_batches(const Tensor& a, const Tensor& b, bool a_vector, bool b_vector) {
  MatmulBatches p;
  p.m = a.size(-2), p.k = a.size(-1), p.n = b.size(-1);
  p.batch = matmul_batch_shape("matmul", a.shape(), b.shape());
  const size_t nb = p.batch.size();
  p.full_shape = p.result_shape = p.batch;
  p.full_shape.push_back(p.m);
  p.full_shape.push_back(p.n);
  if (!a_vector) p.result_shape.push_back(p.m);
  if (!b_vector) p.result_shape.push_back(p.n);
  p.count = shape_numel(p.batch);
  if (p.count == 0 || p.m == 0 || p.n == 0) return p;
  // Broadcast views: a batch dim of stride 0 reads the same matrix for every index.
  Shape ea = p.batch, eb = p.batch;
  ea.insert(ea.end(), {p.m, p.k});
  eb.insert(eb.end(), {p.k, p.n});
  p.a = a.expand(ea);
  p.b = b.expand(eb);
  p.a_batch_strides.assign(p.a.strides().begin(), p.a.strides().begin() + static_cast<std::ptrdiff_t>(nb));
  p.b_batch_strides.assign(p.b.strides().begin(), p.b.strides().begin() + static_cast<std::ptrdiff_t>(nb));
  return p;
}

// A reduction's output shapes (axes normalised: sorted, unique, in range): keepdim=true keeps every
// dim with the reduced ones set to 1; keepdim=false drops them.
inline Shape reduce_keepdim_shape(const Shape& in, const Shape& axes) {
  Shape s = in;
  for (int64_t a : axes) s[a] = 1;
  return s;
}
inline Shape reduce_drop_axes(const Shape& in, const Shape& axes) {
  Shape s;
  for (int64_t d = 0; d < static_cast<int64_t>(in.size()); ++d)
    if (!std::binary_search(axes.begin(), axes.end(), d)) s.push_back(in[d]);
  return s;
}

// NumPy broadcasting of three shapes (where's condition and operands).
inline Shape broadcast_shapes3(const Shape& a, const Shape& b, const Shape& c, const char* op) {
  return broadcast_shapes(broadcast_shapes(a, b, op), c, op);
}

// The shape of x_shape padded by `pads` (pairs from the last dim backwards, as F.pad; negative
// pads crop); checks the pads against F.pad's rules for the mode.
inline Shape padded_shape(const char* op, const Shape& x_shape, const Shape& pads, PadMode mode) {
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

}  // namespace cortex::kernels
