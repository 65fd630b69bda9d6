// The OpenMP wait policy the cortex programs start with (docs/determinism.md, "Graceful threading
// on shared cores").
//
// libgomp's threads spin after every parallel region before they sleep: about 300,000 pause
// loops by default (its own estimate: 3 ms). At batch 1 a forward pass is hundreds of short
// regions, and on a machine whose other cores are busy the spinning threads take the CPU from the
// ones doing the work: ResNet-50 at batch 1 on 2 threads went from 0.25 s on one thread to 1.6 s
// with the default, 0.17 s passive (docs/determinism.md has the table). A short spin keeps
// back-to-back regions quick on a quiet machine and gives the CPU back soon on a busy one.
//
// libgomp reads GOMP_SPINCOUNT and OMP_WAIT_POLICY once, when it is loaded, before main runs; a
// program can only choose them for itself by starting again with them set. That is what
// apply_omp_defaults does.
#pragma once

namespace cortex {

// The spin count the cortex programs use unless the user chose one.
inline constexpr const char* kDefaultSpinCount = "3000";

// Call first thing in main, before any OpenMP region or MPI. When none of OMP_WAIT_POLICY,
// GOMP_SPINCOUNT and CORTEX_OMP_DEFAULTS is set, sets GOMP_SPINCOUNT to kDefaultSpinCount and
// CORTEX_OMP_DEFAULTS=1 and executes /proc/self/exe again with the same arguments; returns only if
// nothing was to be done or the exec failed (then the program runs with libgomp's defaults).
// CORTEX_OMP_DEFAULTS=0 in the environment turns this off.
void apply_omp_defaults(char** argv);

}  // namespace cortex
