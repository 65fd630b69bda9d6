#!/usr/bin/env bash
# Compares the emulated device's memory-traffic counts (cortex-profile, docs/profile.md) with Nsight
# Compute's for the same kernels on a real GPU: GEMM versions 1-7 (bench_cuda_gemm at n = 1024) and
# attention forward versions 1-3 (bench_attention, CORTEX_ATTENTION=v). Called by scripts/gpu-check.sh
# when a GPU, ncu and clang are present; never runs in CI (no GPU there).
#   scripts/ncu-compare.sh GPU_BUILD OUT_DIR
# Per-request figures (sectors per global request, shared wavefronts and bank conflicts per shared
# request) depend on the access pattern, not the size, so ours are taken at a smaller shape the
# emulator runs in seconds (GEMM 256^3, attention B = 1, L = 197, D = 64); the tables also give
# ncu's kernel time beside our roofline estimate scaled to ncu's shape (GEMM counts grow as n^3).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:?usage: scripts/ncu-compare.sh GPU_BUILD OUT_DIR}
out=${2:?usage: scripts/ncu-compare.sh GPU_BUILD OUT_DIR}
mkdir -p "$out"
profile=$root/build-simt-profile/kernels/cuda/simt/profile/cortex-profile
[[ -x $profile ]] || { echo "ncu-compare.sh: no $profile (run scripts/simt-profile.sh first)" >&2; exit 2; }
command -v ncu >/dev/null || { echo "ncu-compare.sh: ncu is not installed" >&2; exit 2; }
metrics=l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum
metrics+=,l1tex__t_requests_pipe_lsu_mem_global_op_st.sum,l1tex__t_sectors_pipe_lsu_mem_global_op_st.sum
metrics+=,smsp__inst_executed_op_shared_ld.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum
metrics+=,l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum
metrics+=,smsp__inst_executed_op_shared_st.sum,l1tex__data_pipe_lsu_wavefronts_mem_shared_op_st.sum
metrics+=,dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum

# ncu_value CSV METRIC: the metric's value in ncu's raw CSV (header row, units row, one row per launch).
ncu_value() {
  local csv=$1 metric=$2 header row i
  header=$(grep -m1 '"Kernel Name"' "$csv") || { echo "nan"; return; }
  row=$(grep -A2 -m1 '"Kernel Name"' "$csv" | tail -n 1)
  local -a h r
  split_csv "$header" h
  split_csv "$row" r
  for i in "${!h[@]}"; do
    if [[ ${h[$i]} == "$metric" ]]; then echo "${r[$i]//,/}"; return; fi
  done
  echo "nan"
}
split_csv() {  # split_csv LINE ARRAY: fields of a CSV line whose every field is quoted
  local s=${1%$'\r'}
  s=${s#\"}
  s=${s%\"}
  s=${s//\",\"/$'\x1f'}
  IFS=$'\x1f' read -r -a "$2" <<<"$s"
}
# ours FILE ROW COLUMN: a number from cortex-profile's table (row "global load", column 1 = requests).
ours() { awk -v row="$2" -v col="$3" 'index($0, "  " row " ") == 1 { n = split(substr($0, length(row) + 3), f, " "); print f[col]; exit }' "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "nan" || b == "nan") print "-"; else printf "%.2f", a / b }'; }
estimate_us() { awk '/estimate/ { for (i = 1; i <= NF; ++i) if ($i == "estimate") { v = $(i + 1); u = $(i + 2); sub(",", "", u); print (u == "ms" ? v * 1000 : v); exit } }' "$1"; }

status=0
table=$out/ncu_compare.txt
{
  printf '%-6s | %-23s | %-23s | %-23s | %-23s | %s\n' kernel "global ld sect/req" "global st sect/req" \
    "shared ld wavefr./req" "shared ld confl./req" "time: ncu us / our estimate us"
  printf '%-6s | %11s %11s | %11s %11s | %11s %11s | %11s %11s |\n' "" ncu ours ncu ours ncu ours ncu ours
} >"$table"
run_one() {  # run_one NAME OUR_SHAPE SCALE KERNEL_REGEX ENV... -- COMMAND...
  local name=$1 shape=$2 scale=$3 regex=$4
  shift 4
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  local csv=$out/ncu_$name.csv ourf=$out/profile_$name.txt
  if ! env "${envs[@]}" ncu --csv --page raw --metrics "$metrics" --kernel-name "regex:$regex" --launch-count 1 \
    "$@" >"$csv" 2>"$out/ncu_$name.log"; then
    echo "ncu-compare.sh: ncu failed for $name (log $out/ncu_$name.log)" >&2
    status=1
    return
  fi
  if ! "$profile" "$name" --shape "$shape" --gpu h200 >"$ourf" 2>&1; then
    echo "ncu-compare.sh: cortex-profile failed for $name ($ourf)" >&2
    status=1
    return
  fi
  local n_ldr n_lds n_str n_sts n_sh n_shw n_shc t_ns
  n_ldr=$(ncu_value "$csv" l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum)
  n_lds=$(ncu_value "$csv" l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum)
  n_str=$(ncu_value "$csv" l1tex__t_requests_pipe_lsu_mem_global_op_st.sum)
  n_sts=$(ncu_value "$csv" l1tex__t_sectors_pipe_lsu_mem_global_op_st.sum)
  n_sh=$(ncu_value "$csv" smsp__inst_executed_op_shared_ld.sum)
  n_shw=$(ncu_value "$csv" l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum)
  n_shc=$(ncu_value "$csv" l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum)
  t_ns=$(ncu_value "$csv" gpu__time_duration.sum)
  local est
  est=$(estimate_us "$ourf")
  printf '%-6s | %11s %11s | %11s %11s | %11s %11s | %11s %11s | %s / %s\n' "$name" \
    "$(ratio "$n_lds" "$n_ldr")" "$(ours "$ourf" "global load" 5)" \
    "$(ratio "$n_sts" "$n_str")" "$(ours "$ourf" "global store" 5)" \
    "$(ratio "$n_shw" "$n_sh")" "$(ratio "$(ours "$ourf" "shared load" 4)" "$(ours "$ourf" "shared load" 1)")" \
    "$(ratio "$n_shc" "$n_sh")" "$(ratio "$(ours "$ourf" "shared load" 5)" "$(ours "$ourf" "shared load" 1)")" \
    "$(awk -v t="$t_ns" 'BEGIN { printf "%.1f", t / 1000 }')" \
    "$(awk -v e="$est" -v s="$scale" 'BEGIN { printf "%.1f", e * s }')" >>"$table"
}
for v in 1 2 3 4 5 6 7; do
  # ncu's time unit for gpu__time_duration is ns in the raw page; our estimate at 256^3 x 64 = 1024^3.
  run_one "gemm$v" 256,256,256 64 "gemm${v}_" -- "$build/bench/bench_cuda_gemm" \
    --benchmark_filter="BM_cuda_gemm/version:$v/n:1024\$" --benchmark_min_time=0.01
done
for v in 1 2 3; do
  # bench_attention's cuda forward at batch 1: 12 heads of 197 x 64, i.e. 12 times our one head.
  run_one "attn$v" 1,197,64 12 "attn${v}_" CORTEX_ATTENTION=$v -- "$build/bench/bench_attention" \
    --benchmark_filter='BM_attention_forward.*/1/1/1' --benchmark_min_time=0.01
done
cat "$table"
echo "ncu-compare.sh: the time column is ncu's kernel time against our roofline ESTIMATE scaled to its shape"
exit $status
