// The values of arange and linspace, element by element. The CPU (tensor.cpp) and the device
// kernels (kernels/cuda/tensor_ops.cu) call these same functions, so both round the same
// expression the same way (the compiler contracts `start + i * step` into one fma wherever it
// does so for the CPU, and nvcc contracts it too).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define CORTEX_HD __host__ __device__
#else
#define CORTEX_HD
#endif

namespace cortex {

CORTEX_HD inline double arange_value(double start, double step, int64_t i) {
  return start + static_cast<double>(i) * step;
}

// Element i of linspace(start, stop, steps): the last one is exactly stop.
CORTEX_HD inline double linspace_value(double start, double stop, int64_t steps, int64_t i) {
  if (steps > 1 && i == steps - 1) return stop;
  return steps == 1 ? start : start + (stop - start) * static_cast<double>(i) / static_cast<double>(steps - 1);
}

}  // namespace cortex
