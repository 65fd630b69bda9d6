// The kernels the profiler knows by name (kernels/cuda/simt/profile/cases.cpp, docs/profile.md):
// the known-answer kernels of its tests and every numbered GEMM and attention version, each with
// its launch configuration and its declared FLOPs. Built only in the profiling build.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cuda/simt/profile.h"

namespace cortex::simt::profile {

struct Case {
  std::string name;
  std::string shape;                  // what --shape lists, e.g. "M,N,K"
  std::vector<int64_t> default_shape;
  std::string what;                   // one line
};
const std::vector<Case>& cases();

// Runs case `name` at `shape` (empty: its default) on fresh inputs (random values, 256-byte aligned
// buffers as cudaMalloc gives) and returns its recorded launches. Throws cortex::Error for an
// unknown name, a shape of the wrong length or a non-positive or unsupported size.
std::vector<KernelProfile> run_case(const std::string& name, std::vector<int64_t> shape);

}  // namespace cortex::simt::profile
