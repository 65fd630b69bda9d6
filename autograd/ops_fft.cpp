// The 2-D real DFT pair: forward, VJP and JVP side by side. Derivations, conventions and cost:
// docs/autodiff.md, 4.13. On the CPU the forward is an FFT (kernels/fft.h, docs/fft.md); on the
// emulated device and CUDA it is the product with precomputed cos/sin matrices below
// (kernels/matmul.h), which tests/test_backend_ops.cpp compares with the CPU's FFT:
//
// With C_H[k,h] = cos(2 pi k h / H), S_H likewise (H x H), C_W[w,l] = cos(2 pi w l / W), S_W
// (W x Wf, Wf = W/2 + 1) and s the forward scale of the norm:
//   rfft2:  re = s (C_H x C_W - S_H x S_W),   im = -s (C_H x S_W + S_H x C_W)
//   irfft2: yr = C_H re - S_H im,  yi = C_H im + S_H re,  x = t (yr D C_W^T - yi D S_W^T)
// with t the inverse scale and D = diag(c), c_l = 1 at DC and (W even) Nyquist, 2 elsewhere (the
// Hermitian doubling; the imaginary parts of the DC and Nyquist columns after the H pass drop out
// because S_W is zero there, exactly as numpy.fft.irfft2 ignores them).
// Both maps are linear, so the JVP is the op applied to the tangent; the VJPs are the transposes:
//   rfft2:  gx = s * irfft2_unscaled(g / c)      irfft2: (gre, gim) = t * c * rfft2_unscaled(gx)
// written with the ops themselves, so derivatives of any order follow.
#include <cmath>
#include <vector>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "kernels/dispatch.h"
#include "kernels/elementwise.h"
#include "kernels/fft.h"
#include "kernels/matmul.h"

namespace cortex {
namespace {
using Grads = std::vector<Tensor>;
using kernels::Binary;

// cos or sin of 2 pi (i j mod n) / n for i < rows, j < cols, times `scale`: the index product is
// reduced modulo n in integers first, so the angle is exact before the one rounding of the trig.
// The n values are computed once and looked up (the trig calls, not the fill, dominated the op's
// time at 224 x 224 when every entry called sin/cos).
Tensor trig(int64_t rows, int64_t cols, int64_t n, bool sine, double scale, DType dt, Device dev) {
  std::vector<double> table(static_cast<size_t>(n));
  for (int64_t m = 0; m < n; ++m) {
    const double a = 2.0 * M_PI * static_cast<double>(m) / static_cast<double>(n);
    table[static_cast<size_t>(m)] = scale * (sine ? std::sin(a) : std::cos(a));
  }
  std::vector<double> v(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) v[static_cast<size_t>(i * cols + j)] = table[static_cast<size_t>((i * j) % n)];
  return from_vector(v, {rows, cols}, dt, dev);
}

// c_l of the half spectrum of a length-w signal: 1 at DC and (w even) Nyquist, 2 elsewhere.
Tensor hermitian_weights(int64_t w, DType dt, Device dev) {
  const int64_t wf = w / 2 + 1;
  std::vector<double> c(static_cast<size_t>(wf), 2.0);
  c[0] = 1.0;
  if (w % 2 == 0) c[static_cast<size_t>(wf - 1)] = 1.0;
  return from_vector(c, {wf}, dt, dev);
}

// The scale of the forward (rfft2) and inverse (irfft2) transforms of n = H W points.
double forward_scale(FftNorm norm, int64_t n) {
  switch (norm) {
    case FftNorm::Backward: return 1.0;
    case FftNorm::Ortho: return 1.0 / std::sqrt(static_cast<double>(n));
    case FftNorm::Forward: return 1.0 / static_cast<double>(n);
  }
  throw Error("rfft2: unknown norm");
}
double inverse_scale(FftNorm norm, int64_t n) {
  switch (norm) {
    case FftNorm::Backward: return 1.0 / static_cast<double>(n);
    case FftNorm::Ortho: return 1.0 / std::sqrt(static_cast<double>(n));
    case FftNorm::Forward: return 1.0;
  }
  throw Error("irfft2: unknown norm");
}

void check_float(const char* op, const char* what, const Tensor& t) {
  CORTEX_CHECK(t.defined(), op, ": expected ", what, " to be a defined tensor, found an undefined one");
  CORTEX_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": expected ", what,
               " of dtype float32 or float64, found ", dtype_name(t.dtype()));
}

Tensor kmm(const Tensor& a, const Tensor& b) { return kernels::matmul(a, b); }
Tensor kop(Binary op, const Tensor& a, const Tensor& b) { return kernels::binary(op, a, b); }

// The forward computations (no autograd): x (..., H, W) -> re, im (..., H, Wf), and back. The
// products with cos/sin matrices (any device; the only path off the CPU):
Spectrum2 rfft2_matmul(const Tensor& x, double s) {
  const int64_t h = x.size(-2), w = x.size(-1), wf = w / 2 + 1;
  const DType dt = x.dtype();
  const Device dev = x.device();
  const Tensor ch = trig(h, h, h, false, 1.0, dt, dev), sh = trig(h, h, h, true, 1.0, dt, dev);
  const Tensor a = kmm(x, trig(w, wf, w, false, s, dt, dev));  // s x C_W
  const Tensor b = kmm(x, trig(w, wf, w, true, s, dt, dev));   // s x S_W
  Spectrum2 out;
  out.re = kop(Binary::Sub, kmm(ch, a), kmm(sh, b));
  out.im = kernels::unary(kernels::Unary::Neg, kop(Binary::Add, kmm(ch, b), kmm(sh, a)));
  return out;
}

Tensor irfft2_matmul(const Tensor& re, const Tensor& im, int64_t w, double t) {
  const int64_t h = re.size(-2), wf = w / 2 + 1;
  const DType dt = re.dtype();
  const Device dev = re.device();
  const Tensor ch = trig(h, h, h, false, 1.0, dt, dev), sh = trig(h, h, h, true, 1.0, dt, dev);
  const Tensor yr = kop(Binary::Sub, kmm(ch, re), kmm(sh, im));
  const Tensor yi = kop(Binary::Add, kmm(ch, im), kmm(sh, re));
  // t D C_W^T and t D S_W^T (Wf x W): the weights c_l scale the rows.
  const Tensor c = hermitian_weights(w, dt, dev).unsqueeze(1);
  const Tensor p = kop(Binary::Mul, trig(wf, w, w, false, t, dt, dev), c);
  const Tensor q = kop(Binary::Mul, trig(wf, w, w, true, t, dt, dev), c);
  return kop(Binary::Sub, kmm(yr, p), kmm(yi, q));
}

// The FFT kernel where the device's backend has one (today the CPU's), the products elsewhere
// (rather than a host fallback of the FFT: the products run on the device).
Spectrum2 rfft2_raw(const Tensor& x, double s) {
  if (!kernels::table_for(x.device()).rfft2) return rfft2_matmul(x, s);
  kernels::RealSpectrum y = kernels::rfft2(x, s);
  return {y.re, y.im};
}
Tensor irfft2_raw(const Tensor& re, const Tensor& im, int64_t w, double t) {
  return kernels::table_for(re.device()).irfft2 ? kernels::irfft2(re, im, w, t) : irfft2_matmul(re, im, w, t);
}

}  // namespace

Spectrum2 rfft2(const Tensor& x, FftNorm norm) {
  check_float("rfft2", "x", x);
  CORTEX_CHECK(x.dim() >= 2 && x.size(-2) >= 1 && x.size(-1) >= 1,
               "rfft2: expected x of shape (..., H, W) with H, W >= 1, found ", shape_str(x.shape()));
  const int64_t h = x.size(-2), w = x.size(-1);
  const double s = forward_scale(norm, h * w);
  Spectrum2 y = raw([&] { return rfft2_raw(x, s); });
  std::vector<Tensor> outs = record(
      "rfft2", {x}, {y.re, y.im},
      [w, s](const Grads& g, const Grads&) -> Grads {
        // gx = s irfft2_unscaled(g / c): irfft2 with norm Forward is the unscaled inverse.
        const Tensor rc = reciprocal(hermitian_weights(w, g[0].dtype(), g[0].device()));
        Tensor gx = irfft2(mul(g[0], rc), mul(g[1], rc), w, FftNorm::Forward);
        return {s == 1.0 ? gx : mul(gx, s)};
      },
      [norm](const Grads& t, const Grads&) -> Grads {
        if (!t[0].defined()) return {Tensor(), Tensor()};
        Spectrum2 ty = rfft2(t[0], norm);
        return {ty.re, ty.im};
      });
  return {outs[0], outs[1]};
}

Tensor irfft2(const Tensor& re, const Tensor& im, int64_t w, FftNorm norm) {
  check_float("irfft2", "re", re);
  check_float("irfft2", "im", im);
  CORTEX_CHECK(w >= 1, "irfft2: expected an output width w >= 1, found w = ", w);
  CORTEX_CHECK(re.dim() >= 2 && re.size(-2) >= 1 && re.size(-1) == w / 2 + 1, "irfft2: expected re of shape (..., H, ",
               w / 2 + 1, ") with H >= 1 for w = ", w, " (w/2 + 1 columns), found ", shape_str(re.shape()));
  CORTEX_CHECK(im.shape() == re.shape(), "irfft2: expected im of the shape of re ", shape_str(re.shape()), ", found ",
               shape_str(im.shape()));
  CORTEX_CHECK(im.dtype() == re.dtype(), "irfft2: expected re and im of one dtype, found ", dtype_name(re.dtype()),
               " and ", dtype_name(im.dtype()));
  CORTEX_CHECK(im.device() == re.device(), "irfft2: expected re and im on one device, found ", re.device().str(),
               " and ", im.device().str());
  const int64_t h = re.size(-2);
  const double t = inverse_scale(norm, h * w);
  Tensor x = raw([&] { return irfft2_raw(re, im, w, t); });
  return record1(
      "irfft2", {re, im}, x,
      [w, t](const Grads& g, const Grads&) -> Grads {
        // (gre, gim) = t c rfft2_unscaled(gx): the Hermitian doubling appears as the weights c. One
        // rfft2 gives both, so both are returned (the engine drops the one no input needs) and the
        // rule keeps no reference to the inputs.
        Spectrum2 sp = rfft2(g[0], FftNorm::Backward);
        const Tensor c = mul(hermitian_weights(w, g[0].dtype(), g[0].device()), t);
        return {mul(sp.re, c), mul(sp.im, c)};
      },
      [w, norm](const Grads& tg, const Grads&) -> Grads {
        if (!tg[0].defined() && !tg[1].defined()) return {Tensor()};
        // An undefined tangent is zero; the other one gives the (possibly batched) shape.
        const Tensor tr = tg[0].defined() ? tg[0] : zeros_like(tg[1]);
        const Tensor ti = tg[1].defined() ? tg[1] : zeros_like(tg[0]);
        return {irfft2(tr, ti, w, norm)};
      });
}

Tensor fft_frequencies(int64_t h, int64_t w, DType dtype, Device device) {
  CORTEX_CHECK(h >= 1 && w >= 1, "fft_frequencies: expected H, W >= 1, found H = ", h, ", W = ", w);
  CORTEX_CHECK(dtype == DType::Float32 || dtype == DType::Float64,
               "fft_frequencies: expected dtype float32 or float64, found ", dtype_name(dtype));
  const int64_t wf = w / 2 + 1;
  std::vector<double> f(static_cast<size_t>(h * wf));
  for (int64_t k = 0; k < h; ++k) {
    // numpy.fft.fftfreq(H): 0, 1, ..., (H-1)/2, then -(H/2), ..., -1, over H.
    const double fy = static_cast<double>(k <= (h - 1) / 2 ? k : k - h) / static_cast<double>(h);
    for (int64_t l = 0; l < wf; ++l) {
      const double fx = static_cast<double>(l) / static_cast<double>(w);  // numpy.fft.rfftfreq(W)
      f[static_cast<size_t>(k * wf + l)] = std::sqrt(fy * fy + fx * fx);
    }
  }
  return from_vector(f, {h, wf}, dtype, device);
}

Tensor fft_scale(int64_t h, int64_t w, DType dtype, Device device) {
  CORTEX_CHECK(h >= 1 && w >= 1, "fft_scale: expected H, W >= 1, found H = ", h, ", W = ", w);
  Tensor f = fft_frequencies(h, w, DType::Float64, Device::cpu());
  const double floor_f = 1.0 / static_cast<double>(std::max(h, w));
  std::vector<double> v = f.to_vector<double>();
  for (double& x : v) x = 1.0 / std::max(x, floor_f);
  return from_vector(v, f.shape(), dtype, device);
}

}  // namespace cortex
