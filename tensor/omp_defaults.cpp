#include "tensor/omp_defaults.h"

#include <unistd.h>

#include <cstdlib>
#include <initializer_list>

namespace cortex {

void apply_omp_defaults(char** argv) {
  if (!argv || !argv[0]) return;
  for (const char* v : {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "CORTEX_OMP_DEFAULTS"})
    if (std::getenv(v)) return;
  if (setenv("GOMP_SPINCOUNT", kDefaultSpinCount, 1) != 0 || setenv("CORTEX_OMP_DEFAULTS", "1", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // The exec failed (no /proc): run on with libgomp's own settings, which it has already read.
  unsetenv("GOMP_SPINCOUNT");
}

}  // namespace cortex
