#!/usr/bin/env bash
# Runs every CPU benchmark binary once and keeps the JSON next to the console output, so
# bench/RESULTS.md can be regenerated from one command: make bench.
set -euo pipefail
build=${1:-build}
out=${OUT_DIR:-out/bench}
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
for b in "$build"/bench/bench_*; do
  [[ -x $b ]] || continue
  name=$(basename "$b")
  echo "== $name"
  "$b" --benchmark_min_time=${MIN_TIME:-0.5} --benchmark_out="$out/$name.json" --benchmark_out_format=json
done
echo "bench: JSON results in $out"
