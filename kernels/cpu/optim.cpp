// CPU kernel of the optim family: one pass over (p, g, m, v), OpenMP over elements. Built with
// -ffp-contract=off (kernels/CMakeLists.txt) so that adam_element's roundings are the composed
// ops' (no a*b + c fused into one fma).
#include "kernels/cpu/optim.h"

#include <array>

#include "tensor/strided.h"

namespace cortex::kernels::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;

template <class T>
void adam_loop(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamCoefs& coefs) {
  const AdamCoefsT<T> c = adam_coefs_as<T>(coefs);
  T* p = param.data<T>();
  const T* g = grad.data<T>();
  T* m = exp_avg.data<T>();
  T* v = exp_avg_sq.data<T>();
  const int64_t n = param.numel();
  if (param.is_contiguous() && grad.is_contiguous() && exp_avg.is_contiguous() && exp_avg_sq.is_contiguous()) {
#pragma omp parallel for schedule(static) if (n >= kGrain)
    for (int64_t i = 0; i < n; ++i) adam_element<T>(p[i], g[i], m[i], v[i], c);
    return;
  }
  const auto plan = make_plan<4>(param.shape(), std::array<Shape, 4>{param.strides(), grad.strides(), exp_avg.strides(),
                                                                     exp_avg_sq.strides()});
  strided_for<4>(plan, [&](int64_t cnt, const std::array<int64_t, 4>& off, const std::array<int64_t, 4>& st) {
    for (int64_t i = 0; i < cnt; ++i)
      adam_element<T>(p[off[0] + i * st[0]], g[off[1] + i * st[1]], m[off[2] + i * st[2]], v[off[3] + i * st[3]], c);
  });
}

}  // namespace

void adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamCoefs& c) {
  if (param.numel() == 0) return;
  if (param.dtype() == DType::Float32) adam_loop<float>(param, grad, exp_avg, exp_avg_sq, c);
  else if (param.dtype() == DType::Float64) adam_loop<double>(param, grad, exp_avg, exp_avg_sq, c);
  else throw Error(detail::cat("adam_step: expected a float32 or float64 param, found ", dtype_name(param.dtype())));
}

}  // namespace cortex::kernels::cpu
