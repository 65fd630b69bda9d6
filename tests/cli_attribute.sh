#!/usr/bin/env bash
# `cortex attribute` end to end on a tiny simulated subject: a ridge fit on pixels (exact
# completeness: a linear model), the data-driven core (ELU: smooth, the completeness error is below
# 1 % at 64 steps) and a Gaussian readout on a random AlexNet (ReLU kinks: the error is reported),
# voxel lists and an ROI (from metrics.json and from --data), each baseline; then the files: attributions.npy, maps.npy (one channel with --channel-mean), the PNG
# overlays, attribution.json (completeness per image and target) and report.html; wrong inputs are
# refused in one line with nothing written.
# Usage: tests/cli_attribute.sh path/to/cortex   (ctest runs it as cli_attribute)
set -euo pipefail
cortex=$(realpath "$1")
source "$(dirname "$(realpath "$0")")/npy.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_attribute: FAIL: $*" >&2; exit 1; }

"$cortex" simulate --out sim --train 80 --test 6 --voxels 16 --image-size 32 --seed 4 > /dev/null
data=sim/subj01
fit() {  # fit OUT ARGS...
  local out=$1
  shift
  "$cortex" fit --data "$data" --hemi both --out "$out" "$@" > /dev/null 2> "$out.log" || { cat "$out.log" >&2; fail "fit $out"; }
}
fit ridge --tap pixels --image-size 32 --folds 3
fit core --readout core --core-size 16 --epochs 2
fit gauss --arch alexnet --random-weights 1 --image-size 64 --tap features.4 --readout gaussian --epochs 2


"$cortex" attribute --model ridge/model.safetensors --images "$data" --index 0,2 --voxels 1,5-6 --out a1 \
  > out.txt 2> err.txt || { cat err.txt >&2; fail "attribute exited with $?"; }
grep -q "attribute: 2 images x 3 targets, 50 steps, black baseline: completeness error largest" out.txt \
  || fail "no summary line: $(cat out.txt)"
[[ $(grep -c "completeness error" err.txt) -eq 6 ]] || fail "expected one completeness line per image and target"
[[ $(npy_shape a1/attributions.npy) == "(2, 3, 3, 32, 32)" ]] || fail "attributions.npy shape $(npy_shape a1/attributions.npy)"
[[ $(npy_shape a1/maps.npy) == "(2, 3, 3, 32, 32)" ]] || fail "maps.npy shape"
for f in overlay_i0_v1 overlay_i0_v5 overlay_i2_v6; do [[ -s a1/$f.png ]] || fail "no $f.png"; done
[[ -s a1/report.html ]] || fail "no report.html"
grep -q "data:image/png;base64" a1/report.html || fail "report.html lacks the overlays"
# A linear model: the trapezoid rule is exact, so the sums are f(x) - f(b) to float rounding.
jq -e '(.completeness.max_rel_error < 1e-4) and (.completeness.max_scaled_error < 1e-4) and (.results | length == 2) and (.results[1].index == 2)
       and (.results[0].targets | length == 3) and (.steps == 50) and (.baseline == "black") and (.rule == "adaptive")' a1/attribution.json \
  > /dev/null || fail "attribution.json: $(jq -c .completeness a1/attribution.json)"
# f(x) is the model's prediction: cortex predict's value for image 0, voxel 5.
"$cortex" predict --model ridge/model.safetensors --images "$data/test_split/test_images" --out pred.npy > /dev/null 2>&1
fx=$(jq '.results[0].targets[1].f_x' a1/attribution.json)
p=$(npy_f4 pred.npy 5 1)  # pred (6 images, 16 voxels): image 0, voxel 5
awk -v a="$fx" -v b="$p" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4) }' || fail "f(x) $fx differs from cortex predict's $p"
# Image 1, voxel 6 (target 2): the attributions, summed here in float64, are f(x) - f(baseline).
want=$(jq '.results[1].targets[2] | .f_x - .f_baseline' a1/attribution.json)
sum=$(npy_f4 a1/attributions.npy $(( (1 * 3 + 2) * 3 * 32 * 32 )) $((3 * 32 * 32)) | awk '{ s += $1 } END { printf "%.9g", s }')
awk -v a="$sum" -v b="$want" 'BEGIN { d = a - b; d = d < 0 ? -d : d; m = b < 0 ? -b : b; exit !(d <= 1e-6 + 1e-4 * m) }' ||
  fail "the attributions sum to $sum, f(x) - f(baseline) is $want"

# A smooth nonlinear model (ELU core), an ROI from metrics.json, the blurred baseline, the display options.
"$cortex" attribute --model core/model.safetensors --images "$data" --roi simple --out a2 \
  --baseline blur --steps 64 --channel-mean --blur-sigma 2 > out2.txt 2> err2.txt \
  || { cat err2.txt >&2; fail "attribute --roi exited with $?"; }
grep -q "6 images x 1 target, 64 steps, blur baseline" out2.txt || fail "no summary line: $(cat out2.txt)"
[[ $(npy_shape a2/maps.npy) == "(6, 1, 1, 16, 16)" ]] || fail "maps.npy with --channel-mean: $(npy_shape a2/maps.npy)"
[[ -s a2/overlay_i1_roi-simple.png ]] || fail "no ROI overlay"
jq -e '(.completeness.max_rel_error < 0.01) and (.completeness.max_scaled_error <= .completeness.max_rel_error)
       and (.results[0].targets[0].scaled_error | numbers) and (.targets[0].roi == "simple") and (.baseline_sigma == 2)' \
  a2/attribution.json > /dev/null || fail "ROI run: $(jq -c '.completeness' a2/attribution.json)"
# The ROI from the subject's masks, and the mean baseline.
"$cortex" attribute --model gauss/model.safetensors --images "$data" --index 0 --roi complex --data "$data" \
  --baseline mean --steps 8 --quadrature gausslegendre --out a3 > a3.out 2>&1 || fail "attribute --roi --data"
jq -e '.baseline == "mean" and .rule == "gausslegendre" and (.targets[0].voxels | length == 4) and (.completeness.max_rel_error | numbers)
       and (.results[0].targets[0].abs_error | numbers)' a3/attribution.json > /dev/null || fail "a3"
grep -q "completeness error largest" a3.out || fail "a ReLU model's completeness error is not printed"
# The ReLU model at 64 steps: the default tolerance (1% of max(|f(x) - f(b)|, the prediction sd)) keeps
# refining the targets that need it, so every one is within it; with --tol 0 each takes exactly 65.
"$cortex" attribute --model gauss/model.safetensors --images "$data" --voxels 0-15 --steps 64 --out a4 > a4.out 2>&1 \
  || fail "attribute --tol: $(cat a4.out)"
jq -e '(.tol == 0.01) and (.completeness.max_scaled_error <= 0.01) and (.evaluations.median >= 65)
       and ([.results[].targets[].evaluations] | all(. >= 65 and . <= 513))' a4/attribution.json > /dev/null \
  || fail "tol: $(jq -c '[.completeness, .evaluations]' a4/attribution.json)"
"$cortex" attribute --model gauss/model.safetensors --images "$data" --voxels 0-15 --steps 64 --tol 0 --out a5 > a5.out 2>&1 \
  || fail "attribute --tol 0: $(cat a5.out)"
jq -e '(.tol == null) and (.evaluations.max == 65) and (.evaluations.median == 65)' a5/attribution.json > /dev/null \
  || fail "tol 0: $(jq -c .evaluations a5/attribution.json)"

# refuse NEEDLE ARGS...: attribute fails with one line containing NEEDLE and writes nothing.
refuse() {
  local needle=$1
  shift
  if "$cortex" attribute "$@" --out bad > /dev/null 2> err.txt; then fail "attribute $* should have failed"; fi
  [[ $(wc -l < err.txt) -eq 1 ]] || { cat err.txt >&2; fail "attribute $*: the error is not one line"; }
  grep -qF -- "$needle" err.txt || { cat err.txt >&2; fail "attribute $*: expected '$needle'"; }
  [[ ! -e bad ]] || fail "attribute $* left output behind"
  return 0
}
m=ridge/model.safetensors
refuse "exactly one of --voxels and --roi" --model $m --images "$data"
refuse "exactly one of --voxels and --roi" --model $m --images "$data" --voxels 1 --roi simple
refuse "--voxels: index 16 is out of range" --model $m --images "$data" --voxels 3,16
refuse "--voxels expects indices like" --model $m --images "$data" --voxels 3,x
refuse "no ROI 'V9'" --model $m --images "$data" --roi V9
refuse "image 9 is out of range" --model $m --images "$data" --voxels 1 --index 9
refuse "--baseline: white not in" --model $m --images "$data" --voxels 1 --baseline white
refuse "--steps" --model $m --images "$data" --voxels 1 --steps 0
refuse "--max-steps" --model $m --images "$data" --voxels 1 --steps 16 --max-steps 8
refuse "--quadrature: simpson not in" --model $m --images "$data" --voxels 1 --quadrature simpson
refuse "no-such.safetensors" --model no-such.safetensors --images "$data" --voxels 1
refuse "--model is required" --images "$data" --voxels 1
echo "cli_attribute: ok"
