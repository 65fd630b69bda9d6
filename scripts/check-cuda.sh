#!/usr/bin/env bash
# CI's checks of the CUDA kernel sources that need no GPU (issue 12, ../shared/SIMT.md):
#   1. lint: GPU-only constructs (inline asm, <<<...>>>, wgmma, mma.sync, raw extern __shared__)
#      appear only in the few files allowed to hold them, so everything else builds and runs on the
#      emulated CUDA device;
#   2. nvcc compiles every kernels/cuda/*.cu for sm_80 and sm_90 with -Xptxas -v; the script prints
#      registers, shared memory and spills per kernel, and fails on any spill in a GEMM, reduction, attention or conv
#      kernel (their speed depends on staying in registers). Skipped, saying why, without nvcc.
# Usage: scripts/check-cuda.sh [lint|nvcc|all]   (default all)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
what=${1:-all}
status=0

lint() {
  # file -> the constructs it may hold
  local -A allowed=(
    [kernels/cuda/cuda_compat.h]='<<<|extern __shared__'
    [kernels/cuda/simt/fiber.cpp]='asm'
  )
  local pattern='(^|[^A-Za-z_])(asm|__asm__)[[:space:]]*(volatile|__volatile__)?[[:space:]]*\(|<<<|wgmma|mma\.sync|extern[[:space:]]+__shared__|setmaxnreg|cp\.async\.bulk|mbarrier'
  local bad=0 f hits
  while IFS= read -r f; do
    hits=$(grep -nE "$pattern" "$f" | grep -vE '^[0-9]+:[[:space:]]*//' || true)
    [[ -z $hits ]] && continue
    if [[ -n ${allowed[$f]:-} ]]; then
      hits=$(grep -vE "${allowed[$f]}" <<<"$hits" || true)
      [[ -z $hits ]] && continue
    fi
    echo "check-cuda.sh lint: $f holds a GPU-only construct outside the files allowed to (scripts/check-cuda.sh):" >&2
    echo "$hits" | sed 's/^/    /' >&2
    bad=1
  done < <(git ls-files --cached --others --exclude-standard 'kernels/*' 'tests/*' 'bench/*' 'models/*' 'autograd/*' 'analysis/*' | grep -E '\.(cu|cuh|h|hpp|cpp)$')
  if ((bad)); then status=1; else echo "check-cuda.sh lint: no GPU-only construct outside the allowed files"; fi
}

nvcc_report() {
  local nvcc
  nvcc=$(command -v nvcc || true)
  [[ -z $nvcc && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
  if [[ -z $nvcc ]]; then
    echo "check-cuda.sh nvcc: skipped: no CUDA toolkit (nvcc) on this machine"
    return
  fi
  local out=${BUILD_DIR:-build}/check-cuda
  mkdir -p "$out"
  local cu log any=0
  printf '%-7s %-58s %5s %7s %s\n' arch kernel regs smem spills
  for cu in kernels/cuda/*.cu; do
    [[ -e $cu ]] || continue
    any=1
    log=$out/$(basename "$cu" .cu).ptxas.log
    if ! "$nvcc" -std=c++20 -I. -Xptxas -v -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
        -c "$cu" -o "$out/$(basename "$cu" .cu).o" >"$log" 2>&1; then
      echo "check-cuda.sh nvcc: $cu does not compile:" >&2
      grep -E "error" "$log" | head -n 20 >&2
      status=1
      continue
    fi
    # ptxas prints, per kernel and arch: "Compiling entry function 'NAME' for 'sm_XX'", then the
    # spill line, then "Used R registers, ... N bytes smem".
    awk -v file="$cu" '
      /Compiling entry function/ { match($0, /function \x27[^\x27]+\x27/); fn = substr($0, RSTART + 10, RLENGTH - 11);
                                   match($0, /for \x27sm_[0-9]+\x27/); arch = substr($0, RSTART + 5, RLENGTH - 6) }
      /spill stores/ { split($0, a, ","); st = a[2] + 0; ld = a[3] + 0; gsub(/[^0-9]/, "", a[2]); gsub(/[^0-9]/, "", a[3]); st = a[2] + 0; ld = a[3] + 0 }
      /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); regs = substr($0, RSTART + 5, RLENGTH - 15) + 0;
                                smem = 0; if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH - 11) + 0;
                                print arch "\t" fn "\t" regs "\t" smem "\t" st + ld }' "$log" >"$log.tsv"
    while IFS=$'\t' read -r arch fn regs smem spill; do
      local name
      name=$(c++filt "$fn" 2>/dev/null | sed -E 's/\(anonymous namespace\):://g; s/^void //; s/cortex::kernels::(cuda|emu):://g; s/\(.*$//' |
        cut -c1-58)
      printf '%-7s %-58s %5s %7s %s\n' "$arch" "$name" "$regs" "$smem" "$spill"
      if ((spill > 0)) && grep -qiE 'gemm|sgemm|reduce|reduction|softmax|norm|attention|attn|conv' <<<"$fn$cu"; then
        echo "check-cuda.sh nvcc: $name ($arch, $cu) spills $spill bytes to local memory" >&2
        status=1
      fi
    done <"$log.tsv"
  done
  ((any)) || echo "check-cuda.sh nvcc: no kernels/cuda/*.cu to compile"
}

case "$what" in
  lint) lint ;;
  nvcc) nvcc_report ;;
  all) lint; nvcc_report ;;
  *) echo "usage: scripts/check-cuda.sh [lint|nvcc|all] (found '$what')" >&2; exit 2 ;;
esac
if ((status)); then echo "check-cuda.sh: FAILED" >&2; else echo "check-cuda.sh: passed"; fi
exit $status
