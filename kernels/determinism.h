// Deterministic mode for device kernels (docs/determinism.md).
//
// Device kernels that accumulate floats with atomics (their order follows the schedule; the
// list is in docs/determinism.md) take a slower path with a fixed order instead when the mode is
// on. It starts as CORTEX_DETERMINISTIC=1 in the environment says (unset or 0: off; anything else
// is an error); set_deterministic overrides it for the whole process. CPU kernels are
// deterministic in either mode, at any thread count.
#pragma once

namespace cortex::kernels {

void set_deterministic(bool on);
bool deterministic();

}  // namespace cortex::kernels
