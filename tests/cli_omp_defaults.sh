#!/usr/bin/env bash
# cortex starts with a short OpenMP spin (tensor/omp_defaults.h, docs/determinism.md) unless the user
# chose a wait policy: libgomp's own report (OMP_DISPLAY_ENV=verbose, printed when it loads) shows what
# the program runs with. The last report is the running program's (the first, before the restart,
# shows libgomp's defaults).
set -euo pipefail
cortex=$1
want=$(sed -n 's/.*kDefaultSpinCount = "\([0-9]*\)".*/\1/p' "$(dirname "$0")/../tensor/omp_defaults.h")
[[ -n $want ]] || { echo "FAIL: no kDefaultSpinCount in tensor/omp_defaults.h"; exit 1; }
spin() { env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u CORTEX_OMP_DEFAULTS OMP_DISPLAY_ENV=verbose "$@" 2>&1 \
  | sed -n "s/.*GOMP_SPINCOUNT = '\([0-9]*\)'.*/\1/p" | tail -1; }
got=$(spin "$cortex" --version)
[[ $got == "$want" ]] || { echo "FAIL: default spin count $got, expected $want"; exit 1; }
got=$(spin GOMP_SPINCOUNT=1234 "$cortex" --version)
[[ $got == 1234 ]] || { echo "FAIL: the user's GOMP_SPINCOUNT=1234 became $got"; exit 1; }
got=$(spin OMP_WAIT_POLICY=passive "$cortex" --version)
[[ $got == 0 ]] || { echo "FAIL: OMP_WAIT_POLICY=passive gave spin count $got, expected 0"; exit 1; }
got=$(spin CORTEX_OMP_DEFAULTS=0 "$cortex" --version)
[[ $got == 300000 ]] || { echo "FAIL: CORTEX_OMP_DEFAULTS=0 gave spin count $got, expected libgomp's 300000"; exit 1; }
# The restart keeps the arguments and the exit status.
"$cortex" --version | grep -q '^cortex ' || { echo "FAIL: --version after the restart"; exit 1; }
set +e
"$cortex" no-such-command >/dev/null 2>&1
rc=$?
set -e
[[ $rc != 0 ]] || { echo "FAIL: an unknown command exited 0"; exit 1; }
echo "cli_omp_defaults: ok (default GOMP_SPINCOUNT $want)"
