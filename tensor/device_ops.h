// The seam through which the tensor layer runs its own device work (copies, fills, ramps, random
// numbers) as device kernels.
//
// Why a seam: Tensor::copy_, clone, contiguous, to(dtype), fill_, full/zeros/ones, arange,
// linspace, eye, rand and randn live in tensor/, and the layer rule (ARCHITECTURE.md) forbids
// tensor/ to call kernels/. So tensor/ owns this table of function pointers, one per device type,
// and kernels/ fills it when its library loads (kernels/cuda/tensor_ops.cu registers the emulated
// device in every build and CUDA in CUDA builds, from a static initialiser).
//
// How it is used: CPU tensors never look at the table (a device-type branch only; the CPU code is
// unchanged). For an emu or CUDA tensor, the op runs the registered function; when that slot is
// null it does what it did before the seam (emu: host code on the host memory; CUDA: a round trip
// through the host) and, before that, calls `note_fallback(op, device)`. kernels/ registers its
// kernels::detail::note_fallback there, so such a fallback is counted in kernels::fallback_stats()
// and refused in strict mode like any kernel op's. The fallback counter stays in one place
// (kernels/), and tensor/ only holds a pointer. With nothing registered at all (a program that
// links cortex_tensor alone) the pointer is null and the tensor layer behaves as it always did.
#pragma once
#include <cstdint>

#include "tensor/device.h"

namespace cortex {

class Tensor;

struct DeviceTensorOps {
  // dst = src converted to dst's dtype. src already has dst's shape (a broadcast source is an
  // expanded view with stride 0) and lives on dst's device; either may have any strides. Every
  // pair of dtypes, with the CPU's conversions (tensor.cpp's convert).
  void (*copy)(const Tensor& dst, const Tensor& src) = nullptr;
  // Every element of dst (any strides) = value converted to dst's dtype.
  void (*fill)(const Tensor& dst, double value) = nullptr;
  // dst contiguous 1-D: dst[i] = arange_value(start, step, i), converted (tensor/ramp.h).
  void (*arange)(const Tensor& dst, double start, double step) = nullptr;
  // dst contiguous 1-D: dst[i] = linspace_value(start, stop, numel, i), converted (tensor/ramp.h).
  void (*linspace)(const Tensor& dst, double start, double stop) = nullptr;
  // dst contiguous float32/float64: element i as rand/randn compute it for (seed, first block
  // `base`) (tensor/random.h's philox_uniform_value / philox_normal_value).
  void (*philox_uniform)(const Tensor& dst, uint64_t seed, uint64_t base, double low, double high) = nullptr;
  void (*philox_normal)(const Tensor& dst, uint64_t seed, uint64_t base, double mean, double std) = nullptr;
  // Called before a host fallback of `op` on `device`: counts it, and throws in strict mode.
  void (*note_fallback)(const char* op, Device device) = nullptr;
};

// Replaces the table of one device type (kernels/ calls this while its library loads).
void set_device_tensor_ops(Device::Type type, const DeviceTensorOps& ops);
// The table of one device type (all null when nothing registered).
const DeviceTensorOps& device_tensor_ops(Device::Type type);

}  // namespace cortex
