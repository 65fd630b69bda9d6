#!/usr/bin/env bash
# `cortex linbridge` end to end on a tiny simulated subject: a two-layer fit on pixels and a linear
# control fit, then the per-voxel .npy files, linbridge.json (its mean r of the full model must be
# fit's own test r) and report.html are written; a linear model file has no stimulus-specific part;
# ridge goes through the affine closed form, --autodiff gives the closed form's scores, --wrt pixels
# and --save-jacobians write what linbridge.json says; wrong inputs are refused in one line with
# nothing written.
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

# Ridge: the affine closed form; its compact Jacobian (V, F) = (24, 256) float64 is saved.
"$cortex" linbridge --model ridge/model.safetensors --data "$data" --out lb-ridge --save-jacobians ridge-J.npy \
  > /dev/null 2> err.txt || { cat err.txt >&2; fail "linbridge on ridge"; }
jq -e '(.path == "closed-form affine") and ([.energy_share[], .afd[]] | max == 0) and (.jacobians.shape == [24, 256])
       and (.jacobians.dtype == "float64")' lb-ridge/linbridge.json > /dev/null || fail "ridge: $(jq -c '{path, jacobians}' lb-ridge/linbridge.json)"
# npy_size FILE DATA_BYTES: the file is a format 1.0 header (a multiple of 64 bytes) plus the data.
npy_size() { local s; s=$(stat -c %s "$1"); (( s > $2 && (s - $2) % 64 == 0 && s - $2 <= 256 )); }
npy_size ridge-J.npy $((24 * 256 * 8)) || fail "ridge-J.npy has $(stat -c %s ridge-J.npy) bytes"
# --autodiff on the two-layer model: the closed form's scores (float32 Jacobians: to 1e-4).
"$cortex" linbridge --model two/model.safetensors --data "$data" --out lb-ad --autodiff --memory-budget 64K \
  --save-jacobians two-J.npy > /dev/null 2> err.txt || { cat err.txt >&2; fail "linbridge --autodiff"; }
jq -e '(.path == "autodiff") and (.mode == "reverse") and (.wrt == "features") and (.peak_working_bytes <= 65536)
       and (.max_rss_bytes > 0) and (.ms_per_stimulus | numbers) and (.jacobians.shape == [30, 24, 256])' \
  lb-ad/linbridge.json > /dev/null || fail "--autodiff: $(jq -c '{path, mode, peak_working_bytes, jacobians}' lb-ad/linbridge.json)"
jq -e --slurpfile c lb/linbridge.json '[range(24) as $i | (.energy_share[$i] - $c[0].energy_share[$i]) | fabs] | max < 1e-4' \
  lb-ad/linbridge.json > /dev/null || fail "--autodiff and the closed form disagree"
npy_size two-J.npy $((30 * 24 * 256 * 4)) || fail "two-J.npy has $(stat -c %s two-J.npy) bytes"
# --wrt pixels: through the standardiser and the grey conversion to the (3, 16, 16) image.
"$cortex" linbridge --model two/model.safetensors --data "$data" --out lb-px --wrt pixels > /dev/null 2> err.txt ||
  { cat err.txt >&2; fail "linbridge --wrt pixels"; }
# A pass through the model holds at most --batch (32) image-direction pairs, whatever --memory-budget.
jq -e '(.path == "autodiff") and (.wrt == "pixels") and (.features == 768) and (.peak_working_bytes <= 32 * (768 + 24) * 4)' \
  lb-px/linbridge.json > /dev/null || fail "--wrt pixels: $(jq -c '{path, wrt, features, peak_working_bytes}' lb-px/linbridge.json)"
jq -e --slurpfile c lb/linbridge.json '[range(24) as $i | (.r_full[$i] - $c[0].r_full[$i]) | fabs] | max < 1e-5' \
  lb-px/linbridge.json > /dev/null || fail "--wrt pixels changes the model's predictions"

# --energy-afd: AFD on the stimulus-specific energy, the same from the closed form and --autodiff.
"$cortex" linbridge --model two/model.safetensors --data "$data" --out lb-e --energy-afd > /dev/null 2>&1 || fail "--energy-afd"
"$cortex" linbridge --model two/model.safetensors --data "$data" --out lb-e-ad --energy-afd --autodiff > /dev/null 2>&1 ||
  fail "--energy-afd --autodiff"
[[ -s lb-e/afd_energy.npy ]] || fail "--energy-afd wrote no afd_energy.npy"
jq -e --slurpfile a lb-e-ad/linbridge.json '(.afd_energy | length == 24) and (.rois.simple.mean_afd_energy | numbers) and
       ([range(24) as $i | (.afd_energy[$i] - $a[0].afd_energy[$i]) | fabs] | max < 1e-4)' lb-e/linbridge.json > /dev/null ||
  fail "--energy-afd: closed form and autodiff disagree"

# --compressor infonce: JM_down's scores.
"$cortex" linbridge --model two/model.safetensors --data "$data" --out lb-down --compressor infonce > /dev/null 2> err.txt ||
  { cat err.txt >&2; fail "linbridge --compressor infonce"; }
for f in afd_down energy_share_down inherent_down; do [[ -s lb-down/$f.npy ]] || fail "--compressor wrote no $f.npy"; done
jq -e '(.compressor.kind == "infonce") and (.afd_down | length == 24) and (.rois.simple.mean_afd_down | numbers)
       and (.compressor.loss_last < .compressor.loss_first)' lb-down/linbridge.json > /dev/null ||
  fail "--compressor: $(jq -c '.compressor' lb-down/linbridge.json)"

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
refuse "--wrt must be features or pixels, found 'logits'" --model two/model.safetensors --data "$data" --wrt logits
refuse "above --max-jacobian-bytes 1024" --model two/model.safetensors --data "$data" --autodiff \
  --save-jacobians bad.npy --max-jacobian-bytes 1K
[[ ! -e bad.npy ]] && ! ls bad.npy.tmp.* > /dev/null 2>&1 || fail "a refused --save-jacobians left a file"
refuse "below one direction of one stimulus" --model two/model.safetensors --data "$data" --autodiff --memory-budget 8
refuse "--compressor must be none or infonce" --model two/model.safetensors --data "$data" --compressor pca
refuse "--memory-budget expects" --model two/model.safetensors --data "$data" --memory-budget lots
refuse "expected linear" --model two/model.safetensors --linear two/model.safetensors --data "$data"
refuse "--model is required" --data "$data"
refuse "nope" --model nope/model.safetensors --data "$data"
echo "cli_linbridge: ok"
