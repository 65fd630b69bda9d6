// CPU kernels of the optim family (kernels/optim.h). The entry (kernels/optim.cpp) has checked
// shapes, dtypes (float32/float64) and aliasing, and computed the step's scalars.
#pragma once
#include "kernels/optim.h"
#include "tensor/tensor.h"

namespace cortex::kernels::cpu {

// In place: param, exp_avg and exp_avg_sq updated from grad (kernels/optim.h's adam_element).
void adam_step(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamCoefs& c);

}  // namespace cortex::kernels::cpu
