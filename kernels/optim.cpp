// Entry of the optim family: checks the tensors, computes the step's scalars once (so every
// backend rounds the same float64 values), then runs the kernel of the tensors' device through
// the backend tables (kernels/dispatch.h). The kernels write into param, exp_avg and exp_avg_sq.
#include "kernels/optim.h"

#include <cmath>

#include "kernels/checks.h"
#include "kernels/dispatch.h"

namespace cortex::kernels {
namespace {

// A tensor written in place must not alias itself: no stride 0 along a dim of size above 1.
void check_no_self_overlap(const char* what, const Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d)
    CORTEX_CHECK(t.size(d) <= 1 || t.stride(d) != 0, "adam_step: expected ", what,
                 " without repeated elements (it is written in place), found stride 0 in dim ", d, " of shape ",
                 shape_str(t.shape()));
}

}  // namespace

AdamCoefs adam_coefs(const AdamStep& s) {
  AdamCoefs c;
  if (s.weight_decay != 0) {
    c.decay = s.decoupled ? 2 : 1;
    c.wd = s.weight_decay;
    c.keep = 1.0 - s.lr * s.weight_decay;
  }
  const double w = 1.0 - s.beta1;
  c.lerp_from_m = w < 0.5;
  c.lerp_w = c.lerp_from_m ? w : 1.0 - w;
  c.beta2 = s.beta2;
  c.one_minus_beta2 = 1.0 - s.beta2;
  const double t = static_cast<double>(s.step);
  const double bc1 = 1.0 - std::pow(s.beta1, t), bc2 = 1.0 - std::pow(s.beta2, t);
  c.sqrt_bc2 = std::sqrt(bc2);
  c.eps = s.eps;
  c.step_size = s.lr / bc1;
  return c;
}

void adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamStep& s) {
  check_float("adam_step", "param", param);
  check_defined("adam_step", "grad", grad);
  check_defined("adam_step", "exp_avg", exp_avg);
  check_defined("adam_step", "exp_avg_sq", exp_avg_sq);
  const Tensor* others[] = {&grad, &exp_avg, &exp_avg_sq};
  const char* names[] = {"grad", "exp_avg", "exp_avg_sq"};
  for (int k = 0; k < 3; ++k) {
    const Tensor& t = *others[k];
    CORTEX_CHECK(t.dtype() == param.dtype(), "adam_step: expected ", names[k], " of param's dtype ",
                 dtype_name(param.dtype()), ", found ", dtype_name(t.dtype()));
    CORTEX_CHECK(t.shape() == param.shape(), "adam_step: expected ", names[k], " of param's shape ",
                 shape_str(param.shape()), ", found ", shape_str(t.shape()));
  }
  check_no_self_overlap("param", param);
  check_no_self_overlap("exp_avg", exp_avg);
  check_no_self_overlap("exp_avg_sq", exp_avg_sq);
  CORTEX_CHECK(param.storage() != exp_avg.storage() && param.storage() != exp_avg_sq.storage() &&
                   exp_avg.storage() != exp_avg_sq.storage(),
               "adam_step: expected param, exp_avg and exp_avg_sq in separate storages (each is written in place)");
  CORTEX_CHECK(s.step >= 1, "adam_step: expected step >= 1 (the number of this step), found ", s.step);
  CORTEX_CHECK(s.beta1 >= 0 && s.beta1 < 1 && s.beta2 >= 0 && s.beta2 < 1,
               "adam_step: expected beta1 and beta2 in [0, 1), found ", s.beta1, " and ", s.beta2);
  CORTEX_CHECK(std::isfinite(s.lr) && s.lr >= 0 && s.eps >= 0 && s.weight_decay >= 0,
               "adam_step: expected finite lr >= 0, eps >= 0 and weight_decay >= 0, found ", s.lr, ", ", s.eps,
               " and ", s.weight_decay);
  const AdamCoefs c = adam_coefs(s);
  call(&Table::adam_step, "adam_step", param, grad, exp_avg, exp_avg_sq, c);
  // Written in place, so their versions move, as with copy_: autograd refuses a saved tensor
  // changed since, and the version-keyed weight copies (models/layers.h, Bf16Copy) refresh.
  for (Tensor* t : {&param, &exp_avg, &exp_avg_sq}) t->storage()->version++;
}

}  // namespace cortex::kernels
