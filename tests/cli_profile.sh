#!/usr/bin/env bash
# cortex-profile end to end (the profiling build, scripts/simt-profile.sh): a table per launch with
# the counts and the labelled estimate, and the refusals. $1: the cortex-profile binary.
set -euo pipefail
bin=$1
fail() { echo "cli_profile.sh: $*" >&2; exit 1; }
out=$("$bin" copy --shape 4096 --gpu h200)
grep -q "kernel prof_copy" <<<"$out" || fail "no table for prof_copy: $out"
grep -Eq "global load +128 +4096 +16384 +512 +4.00 +100.0" <<<"$out" || fail "copy: expected 128 requests, 4 sectors each: $out"
grep -q "ESTIMATE for h200" <<<"$out" || fail "no labelled estimate: $out"
"$bin" --list | grep -q "^gemm7 " || fail "--list lacks gemm7"
out=$("$bin" transpose --shape 64)
grep -Eq "shared load +128 +4096 +16384 +4096 +3968 +32" <<<"$out" || fail "transpose: expected 32-way conflicts: $out"
set +e
msg=$("$bin" gemm9 2>&1); rc=$?
[[ $rc == 1 && $msg == *"unknown kernel"* ]] || fail "gemm9: expected exit 1 naming the unknown kernel, got $rc: $msg"
msg=$("$bin" gemm1 --shape 4,x 2>&1); rc=$?
[[ $rc == 1 && $msg == *"--shape"* ]] || fail "bad shape: expected exit 1, got $rc: $msg"
msg=$("$bin" copy --gpu a100 2>&1); rc=$?
[[ $rc == 1 && $msg == *"h100 or h200"* ]] || fail "bad gpu: expected exit 1, got $rc: $msg"
echo "cli_profile.sh: passed"
