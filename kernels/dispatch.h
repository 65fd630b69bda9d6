// How a kernel entry picks its backend (ARCHITECTURE.md: the device of the inputs decides).
//
// Each family has an entry file kernels/<family>.cpp that checks the inputs and then calls
// cpu::<op> (kernels/cpu/<family>.cpp) or, for CUDA tensors, the family's CUDA kernel. Until a
// family has its CUDA kernels, its CUDA inputs take the host path through run_on_host: the
// numbers are right and the cost is two copies, so a model never has to branch on the device.
#pragma once
#include <initializer_list>
#include <tuple>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace cortex::kernels::detail {

// The device shared by every defined tensor; throws naming `op` when they differ.
inline Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    if (!first) first = t;
    else
      CORTEX_CHECK(t->device() == first->device(), op, ": expected all tensors on one device, found ",
                   first->device().str(), " and ", t->device().str());
  }
  return first ? first->device() : Device::cpu();
}

// Both operands must have one dtype (no implicit promotion: a silent float64 upcast costs 2x).
inline void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  CORTEX_CHECK(a.dtype() == b.dtype(), op, ": expected operands of one dtype, found ", dtype_name(a.dtype()),
               " and ", dtype_name(b.dtype()));
}

inline Tensor host(const Tensor& t) { return t.defined() ? t.to(Device::cpu()) : t; }
inline Tensor back(const Tensor& t, Device d) { return t.defined() ? t.to(d) : t; }
inline std::vector<Tensor> back(const std::vector<Tensor>& ts, Device d) {
  std::vector<Tensor> out;
  for (const Tensor& t : ts) out.push_back(back(t, d));
  return out;
}

}  // namespace cortex::kernels::detail
