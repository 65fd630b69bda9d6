#!/usr/bin/env bash
# Builds the emulated CUDA device's memory-traffic profiler (docs/profile.md) and runs its tests:
# clang with CORTEX_SIMT_PROFILE=ON in build-simt-profile/, filtered to the tensor core and the SIMT
# runtime (CORTEX_ONLY=simt) plus the profiler's own targets: cortex-profile, simt_profile_tests and
# tests/cli_profile.sh. About two minutes from scratch on 2 cores.
#   scripts/simt-profile.sh              build and test
#   scripts/simt-profile.sh KERNEL ...   build, then run cortex-profile KERNEL ... (e.g. gemm7 --shape 256,256,256)
# JOBS=n for the build's parallelism (default 2); CXX=clang++-NN for another clang.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-simt-profile
jobs=${JOBS:-2}
cxx=${CXX:-clang++}
if ! "$cxx" --version 2>/dev/null | grep -qi clang; then
  echo "simt-profile.sh: needs clang (found '$cxx'): the profiler relies on -fsanitize-coverage=trace-loads,trace-stores" >&2
  exit 2
fi
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" \
  -DCORTEX_SIMT_PROFILE=ON -DCORTEX_ONLY=simt -DCORTEX_CUDA=OFF -DCORTEX_HDF5=OFF -DCORTEX_BUILD_BENCH=OFF \
  >"$build.configure.log" 2>&1 || { cat "$build.configure.log" >&2; exit 2; }
cmake --build "$build" -j"$jobs" --target cortex-profile simt_profile_tests
profile=$build/kernels/cuda/simt/profile/cortex-profile
if [[ $# -gt 0 ]]; then
  exec "$profile" "$@"
fi
start=$(date +%s)
"$build/kernels/cuda/simt/profile/simt_profile_tests"
bash "$root/tests/cli_profile.sh" "$profile"
echo "simt-profile.sh: tests passed ($(($(date +%s) - start)) s)"
