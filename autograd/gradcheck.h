// Checks an op's derivatives against central finite differences in float64 (ARCHITECTURE.md's
// op contract). For f: inputs -> outputs it checks
//   1. VJP:  grad(<f(x), v>) == J^T v for a random cotangent v;
//   2. JVP:  jvp(f, x, t) == J t for a random tangent t;
//   3. the transpose identity <v, J t> == <J^T v, t> (between the two modes);
//   4. batched modes: the full Jacobian from stacked cotangents and from stacked tangents
//      (BatchedScope) both equal the numeric Jacobian (skipped when it would be large);
//   5. optionally second order: the VJP itself differentiated (grad of grad) against finite
//      differences of the VJP.
#pragma once
#include <string>

#include "autograd/autograd.h"

namespace cortex {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  bool check_jvp = true;
  bool check_batched = true;  // only when inputs and outputs have at most max_batched elements
  int64_t max_batched = 400;
  bool check_second_order = false;
  uint64_t seed = 1234;
};

// Returns "" when every check holds, else a description of the first failure.
// Inputs must be float64, on a device whose memory the host can read (cpu, emu); they are used
// as they are (non-contiguous views included), and the random directions go to their device.
std::string gradcheck(const Fn& f, const std::vector<Tensor>& inputs, const GradcheckOptions& opt = {});

}  // namespace cortex
