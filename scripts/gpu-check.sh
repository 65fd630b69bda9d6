#!/usr/bin/env bash
# The checks only a real GPU can give (../shared/GPU.md): run on a machine with an NVIDIA GPU, from
# the project root, after ../shared/tools/pack-device-deps.sh has packed the Debian dependencies
# into .deps/ (the GPU machine has no network and none of them). It
#   1. configures (-DCMAKE_PREFIX_PATH=$PWD/.deps, sm_90, benchmarks on) and builds with every core;
#   2. runs the op-by-backend test (tests/test_backend_ops: every op on cpu, emu and cuda) and the
#      whole-model fixtures on cuda (tests/test_models_emu with CORTEX_MODELS_DEVICE=cuda, strict
#      device mode), plus the CPU fixture tests;
#   3. times ours and the peers in the same run, each writing JSON under $OUT:
#        GEMM versions 1..7 against cuBLAS (bench_cuda_gemm; fp32, and TF32 / bf16 rows where the
#          bench has them),
#        conv, hand-written against cuDNN (bench_conv run with CORTEX_CONV=igemm and =cudnn; its cuda
#          rows, when it has some),
#        attention forward against PyTorch SDPA and the attention JVP against torch.func.jvp (math
#          path) (bench_attention + bench/peers/attention_peer.py, when present),
#        AlexNet, ResNet-50, ViT-B/16 inference at batch 256 against PyTorch eager (bench_models
#          BM_backbone_cuda + bench/peers/models_peer.py --device cuda),
#        the encoder Jacobian against torch.func vmap(jacfwd) / vmap(jacrev) (bench_autograd
#          *_cuda + bench/peers/autograd_peer.py),
#        Nystrom Ncut at N = 1M, d = 768 against ncut-pytorch (bench_spectral rows matching N1M,
#          when it has them, + bench/peers/ncut_peer.py, which says so when ncut-pytorch is absent);
#   3b. compares the emulated device's memory-traffic counts with Nsight Compute's (ncu-compare.sh,
#      when ncu and clang are present);
#   4. ends with one table of ratios ours / peer (scripts/gpu-ratios.py over the JSON files).
# A missing binary or peer is skipped with one line; a failing step is recorded and the rest runs.
# Every log goes under $OUT (default out/gpu-check); BUILD names the build folder (default build-gpu),
# PYTHON the interpreter with torch (default python3). Exit status: 0 when every step that ran
# passed, 1 otherwise, 3 (at once) without a GPU.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q "^GPU"; then
  echo "gpu-check.sh: no NVIDIA GPU on this machine (nvidia-smi lists none): nothing to check here" >&2
  exit 3
fi
out=${OUT:-out/gpu-check}
mkdir -p "$out"
out=$(cd "$out" && pwd)
build=${BUILD:-build-gpu}
deps=$root/.deps
export LD_LIBRARY_PATH=$deps/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
py=${PYTHON:-python3}
nvidia-smi -L | tee "$out/gpu.txt"
summary=()
note() {  # note NAME TEXT: a step that did not run, and why
  summary+=("$(printf '%-30s skipped  %s' "$1" "$2")")
  echo "gpu-check.sh: $1 skipped: $2"
}
step() {  # step NAME COMMAND...: runs it with its log under $out, records pass/fail
  local name=$1
  shift
  local start=$SECONDS
  echo "gpu-check.sh: $name ..."
  if "$@" >"$out/$name.log" 2>&1; then
    summary+=("$(printf '%-30s passed  %5d s' "$name" $((SECONDS - start)))")
  else
    summary+=("$(printf '%-30s FAILED  %5d s  (%s)' "$name" $((SECONDS - start)) "$out/$name.log")")
  fi
}
bin() { [[ -x $build/$1 ]]; }
# gbench NAME BINARY FILTER [ENV=VALUE...]: a Google Benchmark binary's rows matching FILTER, JSON to
# $out/NAME.json; skipped with a line when the binary or such rows are missing.
gbench() {
  local name=$1 b=$2 filter=$3
  shift 3
  if ! bin "bench/$b"; then
    note "$name" "no $build/bench/$b (not built)"
    return
  fi
  if ! "$build/bench/$b" --benchmark_list_tests --benchmark_filter="$filter" 2>/dev/null | grep -q .; then
    note "$name" "$b has no rows matching '$filter'"
    return
  fi
  step "$name" env "$@" "$build/bench/$b" --benchmark_filter="$filter" --benchmark_min_time=0.2 \
    --benchmark_format=console --benchmark_out_format=json --benchmark_out="$out/$name.json"
}
# peer NAME SCRIPT ARGS...: a PyTorch peer writing $out/peer_NAME.json; skipped when the script or torch
# is missing.
peer() {
  local name=$1 script=$2
  shift 2
  if [[ ! -f $script ]]; then
    note "peer_$name" "no $script"
  elif ! "$py" -c "import torch" >/dev/null 2>&1; then
    note "peer_$name" "$py cannot import torch"
  else
    step "peer_$name" "$py" "$script" "$@" --json "$out/peer_$name.json"
  fi
}

# ---- 1. build (GPU_CHECK_NO_BUILD=1: use $build as it is, e.g. for a second run on the same machine)
if [[ ${GPU_CHECK_NO_BUILD:-0} == 1 ]]; then
  note build "GPU_CHECK_NO_BUILD=1: using $build as it is"
else
  step configure cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$deps" \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCORTEX_CUDA=ON -DCORTEX_BUILD_BENCH=ON -DCORTEX_HDF5=OFF
  step build cmake --build "$build" -j "$(nproc)"
fi

# ---- 2. correctness on the GPU
# cuda is among the devices test_backend_ops runs when a GPU is present (cuda_available()).
if bin tests/test_backend_ops; then
  step backend_ops env CORTEX_STRICT_DEVICE=0 "$build/tests/test_backend_ops"
else
  note backend_ops "no $build/tests/test_backend_ops"
fi
if bin tests/test_models_emu; then
  step models_on_cuda env CORTEX_MODELS_DEVICE=cuda "$build/tests/test_models_emu"
  step models_on_emu "$build/tests/test_models_emu"
else
  note models_on_cuda "no $build/tests/test_models_emu"
fi
for t in test_dispatch test_models_cnn test_models_vit test_simt test_encoding_device gpu_test_cuda_conv gpu_test_cuda_gemm; do
  if bin "tests/$t"; then step "$t" "$build/tests/$t"; else note "$t" "no $build/tests/$t"; fi
done

# ---- 3. timings, ours and the peers side by side
gbench bench_cuda_gemm bench_cuda_gemm 'BM_cuda_gemm'
gbench bench_conv.igemm bench_conv 'cuda' CORTEX_CONV=igemm
gbench bench_conv.cudnn bench_conv 'cuda' CORTEX_CONV=cudnn
gbench bench_attention bench_attention 'cuda'
peer attention bench/peers/attention_peer.py --device cuda
gbench bench_models bench_models 'BM_backbone_cuda'
peer models bench/peers/models_peer.py --device cuda --batches 256 --dtype fp32,bf16
gbench bench_autograd bench_autograd 'encoder_jacobian.*_cuda'
peer autograd bench/peers/autograd_peer.py --device cuda
gbench bench_spectral bench_spectral 'N1M'
peer ncut bench/peers/ncut_peer.py --device cuda --n 1000000 --d 768 --skip-sklearn --repeat 1

# ---- 3b. the emulated device's memory-traffic counts (docs/profile.md) against Nsight Compute's for
# GEMM 1-7 and attention 1-3, and our roofline estimates against ncu's kernel times
# (scripts/ncu-compare.sh; needs ncu, and clang for the profiling build).
if ! command -v ncu >/dev/null 2>&1; then
  note ncu_compare "ncu (Nsight Compute) is not installed"
elif ! command -v clang++ >/dev/null 2>&1; then
  note ncu_compare "no clang++ for the profiling build (scripts/simt-profile.sh)"
elif ! bin bench/bench_cuda_gemm; then
  note ncu_compare "no $build/bench/bench_cuda_gemm (not built)"
else
  step simt_profile env JOBS="$(nproc)" scripts/simt-profile.sh
  step ncu_compare scripts/ncu-compare.sh "$build" "$out/ncu"
  cat "$out/ncu/ncu_compare.txt" 2>/dev/null
fi

# ---- 4. results
echo
echo "gpu-check.sh: steps (logs in $out)"
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
grep -h "^\[ backend \] .*cuda" "$out/backend_ops.log" 2>/dev/null | head -n 20
grep -h "^\[ fallbacks \]" "$out/models_on_cuda.log" 2>/dev/null
echo
"$py" scripts/gpu-ratios.py "$out" | tee "$out/ratios.txt"
! grep -q FAILED "$out/summary.txt"
