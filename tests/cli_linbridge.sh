#!/usr/bin/env bash
# `cortex linbridge` end to end on a tiny simulated subject: a two-layer fit on pixels and a linear
# control fit, then the per-voxel .npy files, linbridge.json (its mean r of the full model must be
# fit's own test r) and report.html are written; a linear model file has no stimulus-specific part;
# wrong inputs are refused in one line with nothing written.
# Usage: tests/cli_linbridge.sh path/to/cortex   (ctest runs it as cli_linbridge)
set -euo pipefail
cortex=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_linbridge: FAIL: $*" >&2; exit 1; }

"$cortex" simulate --out sim --train 120 --test 30 --voxels 24 --image-size 16 --seed 3 > /dev/null
data=sim/subj01
fit() {  # fit OUT ARGS...
  local out=$1
  shift
  "$cortex" fit --data "$data" --hemi both --tap pixels --image-size 16 --pool 4 --out "$out" "$@" > /dev/null \
    2> "$out.log" || { cat "$out.log" >&2; fail "fit $out"; }
}
fit two --readout two-layer --hidden 16 --epochs 4
fit lin --readout linear --epochs 4
fit ridge --folds 3

"$cortex" linbridge --model two/model.safetensors --data "$data" --linear lin/model.safetensors --out lb \
  > out.txt 2> err.txt || { cat err.txt >&2; fail "linbridge exited with $?"; }
grep -q "linbridge: 24 voxels over 30 images: mean energy share" out.txt || fail "no summary line: $(cat out.txt)"
grep -q "linbridge: \[" err.txt || fail "no progress bar on stderr"
for f in energy_share afd afd_slope r_full r_linear r2_full r2_linear r_control r2_control pred_linear; do
  [[ -s lb/$f.npy ]] || fail "linbridge wrote no $f.npy"
done
[[ -s lb/report.html && -s lb/linbridge.json ]] || fail "no report.html or linbridge.json"
[[ $(grep -o "<svg" lb/report.html | wc -l) -ge 7 ]] || fail "report.html lacks its plots"
grep -q "Full model against its linear part" lb/report.html || fail "report.html has no full-vs-linear scatter"
jq -e '(.voxels == 24) and (.images == 30) and (.energy_share | length == 24) and (.afd | length == 24)
       and ([.energy_share[] | select(. < 0 or . > 1)] | length == 0) and ([.afd[] | select(. < 0)] | length == 0)
       and (.rois | has("simple") and has("complex")) and (.rois.simple.mean_r_control | numbers)
       and (.mode == "closed-form")' lb/linbridge.json > /dev/null || fail "linbridge.json lacks its fields"
# The full model's r is the model's own: fit's per-voxel test r.
jq -e --slurpfile m two/metrics.json '[range(24) as $i | (.r_full[$i] - $m[0].r[$i]) | fabs] | max < 1e-5' \
  lb/linbridge.json > /dev/null || fail "linbridge's r of the full model differs from fit's"
# A linear encoder is its own linear part: share and AFD are 0, r_linear = r_full.
"$cortex" linbridge --model lin/model.safetensors --data "$data" --out lb-lin > /dev/null 2>&1 || fail "linbridge on linear"
jq -e '([.energy_share[], .afd[]] | max == 0) and ([range(24) as $i | (.r_full[$i] - .r_linear[$i]) | fabs] | max < 1e-6)' \
  lb-lin/linbridge.json > /dev/null || fail "a linear model should have no stimulus-specific part"

# refuse NEEDLE ARGS...: linbridge fails with one line containing NEEDLE and writes nothing.
refuse() {
  local needle=$1
  shift
  if "$cortex" linbridge "$@" --out bad > /dev/null 2> err.txt; then fail "linbridge $* should have failed"; fi
  [[ $(wc -l < err.txt) -eq 1 ]] || { cat err.txt >&2; fail "linbridge $*: the error is not one line"; }
  grep -qF -- "$needle" err.txt || { cat err.txt >&2; fail "linbridge $*: expected '$needle'"; }
  [[ ! -e bad ]] || fail "linbridge $* left output behind"
  return 0
}
refuse "is a 'ridge' readout" --model ridge/model.safetensors --data "$data"
refuse "expected linear" --model two/model.safetensors --linear two/model.safetensors --data "$data"
refuse "--model is required" --data "$data"
refuse "nope" --model nope/model.safetensors --data "$data"
echo "cli_linbridge: ok"
