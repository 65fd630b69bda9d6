#!/usr/bin/env bash
# Runs the emulated CUDA device's tests under a sanitizer, in forward and reverse schedule order,
# and exits non-zero on any failure or unexpected sanitizer report: under asan the runtime's own
# tests (tests/test_simt.cpp) and every CUDA kernel family's (tests/test_cuda_*.cpp, the kernels
# of kernels/cuda/ built for the emulated device); under tsan the runtime's tests (TSan costs
# about 3 MB per fiber: the small part).
#   scripts/simt-sanitize.sh asan   AddressSanitizer + UBSan (build-simt-asan/)
#   scripts/simt-sanitize.sh tsan   ThreadSanitizer           (build-simt-tsan/)
# JOBS=n for the build's parallelism (default 2); CXX=g++-NN for another GCC. GCC only: the layers
# are shared libraries linked with --no-undefined, and clang puts its ASan/TSan runtimes into
# executables only, so those libraries do not link with clang's sanitizers.
#
# The deliberately broken kernels are expected to be reported: under asan the dynamic shared
# memory overflow (ASan) and the static one (UBSan), under tsan the missing __syncthreads (TSan,
# a data race in the kernel); each is a death test of test_simt that passes only when the report
# appears. Everything else must run clean. A filtered build (CORTEX_ONLY=simt): the tensor core,
# the SIMT runtime and test_simt, about a minute on 2 cores from scratch.
set -euo pipefail
kind=${1:-}
# The kernel families with CUDA kernels and their emulated-device tests (kernels-layer only, so a
# filtered build holds them). Add a family's word and its test here when it gets kernels/cuda/<family>.cu.
families="elementwise;matmul;tensor_ops;reduce;nn;pool;index;conv;sample;sort;opt;attention;spectral;linalg"
kernel_tests=(test_cuda_elementwise test_cuda_matmul test_cuda_tensor_ops test_cuda_reduce test_cuda_nn test_cuda_pool test_cuda_index test_cuda_conv test_cuda_sample test_cuda_sort test_cuda_optim test_cuda_attention test_cuda_spectral test_cuda_linalg)
# The optim family's word is "opt": "optim" would also pull in the autograd layer (CMakeLists.txt),
# which a build of these families alone cannot link.
case "$kind" in
  asan) flags="-fsanitize=address,undefined -fno-sanitize-recover=all -DCORTEX_SIMT_UBSAN=1"
        only="simt;cuda_;$families"; tests=(test_simt "${kernel_tests[@]}") ;;
  tsan) flags="-fsanitize=thread"; only=simt; tests=(test_simt) ;;
  *) echo "usage: scripts/simt-sanitize.sh asan|tsan (found '${kind}')" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build-simt-$kind
jobs=${JOBS:-2}
cxx=${CXX:-g++}
if "$cxx" --version 2>/dev/null | grep -qi clang; then
  echo "simt-sanitize.sh: needs GCC (found $cxx): clang's sanitizer runtimes do not link into the layers' shared libraries" >&2
  exit 2
fi
flags="$flags -g -O1 -fno-omit-frame-pointer"

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="$flags" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="" -DCORTEX_ONLY="$only" -DCORTEX_CUDA=OFF -DCORTEX_HDF5=OFF \
  -DCORTEX_BUILD_BENCH=OFF >"$build.configure.log" 2>&1 || { cat "$build.configure.log" >&2; exit 2; }
cmake --build "$build" -j"$jobs" --target "${tests[@]}"

# halt_on_error: a report kills the process, so an unexpected one fails the run and the expected
# ones make their death tests pass.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
status=0
for t in "${tests[@]}"; do
  for order in forward reverse; do
    log=$build/$t-$order.log
    start=$(date +%s)
    if CORTEX_SIMT_ORDER=$order "$build/tests/$t" >"$log" 2>&1; then
      echo "simt-sanitize.sh $kind, $t, order $order: $(grep -E '^\[  PASSED' "$log") ($(($(date +%s) - start)) s)"
      # The death tests meant for this sanitizer must have run, not skipped.
      if [[ $t == test_simt ]] &&
        grep -E "SKIPPED \] .*(ReportedBy$( [[ $kind == asan ]] && echo '(Asan|Ubsan)' || echo 'Tsan'))" "$log"; then
        echo "simt-sanitize.sh: the $kind death tests were skipped: is the build instrumented?" >&2
        status=1
      fi
    else
      echo "simt-sanitize.sh $kind, $t, order $order: FAILED, log $log" >&2
      grep -E "FAILED|ERROR|WARNING: ThreadSanitizer|runtime error|SUMMARY" "$log" | head -n 20 >&2 || true
      status=1
    fi
  done
done
exit $status
