// Entry points of kernels/fft.h: argument checks, then the kernel of the inputs' device through the
// backend tables (kernels/dispatch.h).
#include "kernels/fft.h"

#include <cmath>

#include "kernels/checks.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {

RealSpectrum rfft2(const Tensor& x, double scale) {
  const char* op = "rfft2";
  check_float(op, "x", x);
  CORTEX_CHECK(x.dim() >= 2 && x.size(-2) >= 1 && x.size(-1) >= 1, op,
               ": expected x of shape (..., H, W) with H, W >= 1, found ", shape_str(x.shape()));
  CORTEX_CHECK(std::isfinite(scale), op, ": expected a finite scale, found ", scale);
  return call(&Table::rfft2, op, x, scale);
}

Tensor irfft2(const Tensor& re, const Tensor& im, int64_t w, double scale) {
  const char* op = "irfft2";
  check_float(op, "re", re);
  check_float(op, "im", im);
  check_same_dtype(op, re, im);
  CORTEX_CHECK(w >= 1, op, ": expected an output width w >= 1, found w = ", w);
  CORTEX_CHECK(re.dim() >= 2 && re.size(-2) >= 1 && re.size(-1) == w / 2 + 1, op, ": expected re of shape (..., H, ",
               w / 2 + 1, ") with H >= 1 for w = ", w, ", found ", shape_str(re.shape()));
  CORTEX_CHECK(im.shape() == re.shape(), op, ": expected im of the shape of re ", shape_str(re.shape()), ", found ",
               shape_str(im.shape()));
  CORTEX_CHECK(std::isfinite(scale), op, ": expected a finite scale, found ", scale);
  return call(&Table::irfft2, op, re, im, w, scale);
}

}  // namespace cortex::kernels
