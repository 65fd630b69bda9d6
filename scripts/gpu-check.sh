#!/usr/bin/env bash
# The checks only a real GPU can give (../shared/GPU.md): run on a machine with an NVIDIA GPU, from
# the project root, after ../shared/tools/pack-device-deps.sh has packed the Debian dependencies
# into .deps/ (the GPU machine has no network and none of them). It
#   1. configures (-DCMAKE_PREFIX_PATH=$PWD/.deps, sm_90) and builds with every core;
#   2. runs the op-by-backend test (tests/test_backend_ops: every op on cpu, emu and cuda, strict
#      device mode) and the model fixtures on cuda;
#   3. runs the kernel benchmarks that are built (the hand-written GEMM versions beside cuBLAS in
#      bench_cuda_gemm, bench_matmul, bench_models; the fused attention versions in bench_attention
#      beside bench/peers/attention_peer.py), JSON under $OUT;
# and writes every log under $OUT (default out/gpu-check), ending with one table of results.
# Without a GPU it stops at once, saying why, with exit code 3.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
  echo "gpu-check.sh: no NVIDIA GPU on this machine (nvidia-smi lists none): nothing to check here" >&2
  exit 3
fi
out=${OUT:-out/gpu-check}
mkdir -p "$out"
build=${BUILD:-build-gpu}
deps=$root/.deps
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
nvidia-smi -L | tee "$out/gpu.txt"
summary=()
step() {  # step NAME COMMAND...: runs it with its log under $out, records pass/fail
  local name=$1
  shift
  local start=$SECONDS
  if "$@" >"$out/$name.log" 2>&1; then
    summary+=("$(printf '%-28s passed  %5d s' "$name" $((SECONDS - start)))")
  else
    summary+=("$(printf '%-28s FAILED  %5d s  (%s)' "$name" $((SECONDS - start)) "$out/$name.log")")
  fi
}
step configure cmake -S . -B "$build" -DCMAKE_PREFIX_PATH="$deps" -DCMAKE_CUDA_ARCHITECTURES=90 -DCORTEX_CUDA=ON \
  -DCORTEX_HDF5=OFF
step build cmake --build "$build" -j "$(nproc)"
# cuda is among the devices test_backend_ops runs when a GPU is present (cuda_available()).
step backend_ops env CORTEX_STRICT_DEVICE=0 "$build/tests/test_backend_ops"
for t in test_dispatch test_models_cnn test_models_vit test_simt; do
  [[ -x $build/tests/$t ]] && step "$t" "$build/tests/$t"
done
for b in bench_cuda_gemm bench_models bench_matmul bench_attention; do
  [[ -x $build/bench/$b ]] && step "$b" "$build/bench/$b" --benchmark_min_time=0.2 --benchmark_format=json \
    --benchmark_out="$out/$b.json"
done
# The fused attention's forward versions 1 and 2 (bench_attention above ran the default, 3), and its
# PyTorch peer (SDPA, torch.func.jvp through the math path) on the same GPU when torch is installed.
for v in 1 2; do
  [[ -x $build/bench/bench_attention ]] && step "bench_attention_v$v" env CORTEX_ATTENTION=$v \
    "$build/bench/bench_attention" --benchmark_filter=forward --benchmark_min_time=0.2 --benchmark_format=json \
    --benchmark_out="$out/bench_attention_v$v.json"
done
python3 -c "import torch" 2>/dev/null && step attention_peer python3 bench/peers/attention_peer.py
echo
echo "gpu-check.sh: results (logs in $out)"
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
grep -h "^\[ backend \] .*cuda" "$out/backend_ops.log" 2>/dev/null | head -n 20
! grep -q FAILED "$out/summary.txt"
