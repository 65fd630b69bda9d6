#!/usr/bin/env bash
# scripts/gpu-ratios.py (the table that ends scripts/gpu-check.sh) on hand-made JSON: GEMM versions
# over cuBLAS per kind and size, conv hand over cuDNN by row name, labelled rows over peer cases;
# aggregates, error rows, unpaired rows and a broken file are left out.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
row() { printf '{"name": "%s", "run_type": "%s", "real_time": %s, "time_unit": "%s"%s}' "$@"; }
cat >"$d/bench_cuda_gemm.json" <<JSON
{"context": {}, "benchmarks": [
 $(row BM_cuda_gemm/version:0/n:4096/real_time iteration 2.5 ms ""),
 $(row BM_cuda_gemm/version:7/n:4096/real_time iteration 3.0 ms ""),
 $(row BM_cuda_gemm/version:1/n:4096/real_time iteration 250000 us ""),
 $(row BM_cuda_gemm_bf16/version:0/n:4096/real_time iteration 0.2 ms ""),
 $(row BM_cuda_gemm_bf16/version:7/n:4096/real_time iteration 0.3 ms ""),
 $(row BM_cuda_gemm/version:7/n:1024/real_time iteration 0.1 ms ""),
 $(row BM_cuda_gemm/version:7/n:4096/real_time_mean aggregate 9 ms "")]}
JSON
echo "{\"benchmarks\": [$(row BM_conv2d_cuda/0 iteration 4 ms "")]}" >"$d/bench_conv.hand.json"
echo "{\"benchmarks\": [$(row BM_conv2d_cuda/0 iteration 2 ms "")]}" >"$d/bench_conv.cudnn.json"
cat >"$d/bench_models.json" <<JSON
{"benchmarks": [$(row BM_backbone_cuda/0/256/real_time iteration 40 ms ', "label": "alexnet b256 cuda fp32"'),
 $(row BM_backbone_cuda/2/256/real_time iteration 0 ms ', "label": "vit_b_16 b256 cuda fp32", "error_occurred": true')]}
JSON
cat >"$d/peer_models.json" <<JSON
{"peer": "PyTorch eager", "results": [{"case": "alexnet b256 cuda fp32", "seconds": 0.032},
 {"case": "alexnet b256 cuda bf16", "seconds": 0.01}, {"case": "vit_b_16 b256 cuda fp32", "seconds": 0.2}]}
JSON
echo '{not json' >"$d/broken.json"
got=$(python3 "$root/scripts/gpu-ratios.py" "$d")
echo "$got"
want=(
  'gemm fp32  v7 n=4096               cuBLAS                   3.000       2.500     1.20'
  'gemm fp32  v1 n=4096               cuBLAS                 250.000       2.500   100.00'
  'gemm bf16  v7 n=4096               cuBLAS                   0.300       0.200     1.50'
  'conv       BM_conv2d_cuda/0        cuDNN                    4.000       2.000     2.00'
  'models     alexnet b256 cuda fp32  PyTorch eager           40.000      32.000     1.25'
)
squeezed=$(tr -s ' ' <<<"$got")  # column widths follow the longest name
for w in "${want[@]}"; do
  grep -qxF "$(tr -s ' ' <<<"$w")" <<<"$squeezed" || { echo "gpu_ratios.sh: missing line: $w" >&2; exit 1; }
done
[[ $(grep -c ' n=1024 \|vit_b_16\|bf16 *PyTorch' <<<"$got") == 0 ]] || { echo "gpu_ratios.sh: an unpaired or error row is listed" >&2; exit 1; }
[[ $(wc -l <<<"$got") == 8 ]] || { echo "gpu_ratios.sh: expected 8 lines (skip note, title, header, 5 rows)" >&2; exit 1; }
echo "gpu_ratios.sh: passed"
