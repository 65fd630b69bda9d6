#!/usr/bin/env bash
# `cortex compare` end to end on two tiny fits of one simulated subject: the page and the JSON are
# written, the JSON's per-model mean r is fit's own, and fits of another subject or other voxels
# are refused in one line with nothing written.
# Usage: tests/cli_compare.sh path/to/cortex   (ctest runs it as cli_compare)
set -euo pipefail
cortex=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_compare: FAIL: $*" >&2; exit 1; }

sim() { "$cortex" simulate --out "$1" --train 80 --test 24 --voxels 24 --image-size 16 --seed "$2" > /dev/null; }
fit() {  # fit OUT DATA HEMI ARGS...
  local out=$1 data=$2 hemi=$3
  shift 3
  "$cortex" fit --data "$data/subj01" --hemi "$hemi" --tap pixels --folds 3 --out "$out" "$@" > /dev/null 2> "$out.log" ||
    { cat "$out.log" >&2; fail "fit $out"; }
}
sim sim 3
sim other 4
fit small sim both --image-size 16 --pool 2
fit large sim both --image-size 16 --pool 4
fit left sim lh --image-size 16 --pool 2
fit stranger other both --image-size 16 --pool 2

"$cortex" compare small large --out cmp > out.txt 2> err.txt || { cat err.txt >&2; fail "compare exited with $?"; }
grep -q "compare: large − small: mean gain in r" out.txt || fail "no summary line: $(cat out.txt)"
for f in compare.html compare.json; do [[ -s cmp/$f ]] || fail "compare wrote no $f"; done
[[ $(grep -o "<svg" cmp/compare.html | wc -l) -eq 3 ]] || fail "compare.html should hold scatter, flame and ROI bars"
grep -q "flame plot" cmp/compare.html || fail "compare.html has no flame plot"
jq -e '(.pairs | length == 1) and (.pairs[0].a == "small") and (.pairs[0].b == "large")
       and (.pairs[0].all.p | numbers) and (.pairs[0].all.wilcoxon.p | numbers) and (.pairs[0].rois | length > 0)
       and (.voxels == 24)' cmp/compare.json > /dev/null || fail "compare.json lacks the pair's tests"
for m in small large; do
  jq -e --argjson want "$(jq .mean_r "$m/metrics.json")" --arg m "$m" \
    '(.models[] | select(.name == $m) | .mean_r) - $want | fabs < 1e-12' cmp/compare.json > /dev/null ||
    fail "compare's mean r of $m is not fit's"
done
# --names, three fits (three pairs), and an existing --out is refreshed.
"$cortex" compare small large small --names a,b,c --out cmp > /dev/null 2>&1 || fail "compare with --names failed"
jq -e '.pairs | length == 3' cmp/compare.json > /dev/null || fail "three fits should give three pairs"

# refuse NAME NEEDLE ARGS...: compare fails with one line containing NEEDLE and writes nothing.
refuse() {
  local needle=$1
  shift
  if "$cortex" compare "$@" --out bad > /dev/null 2> err.txt; then fail "compare $* should have failed"; fi
  [[ $(wc -l < err.txt) -eq 1 ]] || { cat err.txt >&2; fail "compare $*: the error is not one line"; }
  grep -qF -- "$needle" err.txt || { cat err.txt >&2; fail "compare $*: expected '$needle'"; }
  [[ ! -e bad ]] || fail "compare $* left output behind"
  ls | grep -q '^bad\.tmp' && fail "compare $* left a temporary folder"
  return 0
}
refuse "scored on other test responses than small" small stranger
refuse "left has 14 voxels but small has 24" small left
refuse "no metrics.json" small sim
refuse "fits: At least 2 required" small
echo "cli_compare: ok"
