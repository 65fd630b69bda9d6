#!/usr/bin/env bash
# The BOLDreams pruning study end to end on a small simulated subject (analysis/prune_sweep.h):
# cortex fit --readout fwrf --keep F --finetune ranks channels on the backbone as loaded (the same
# channels the frozen fit keeps, though computed batch by batch from spatial means), round-trips
# through predict; cortex prune-sweep writes one ordinary fit per fraction, identical to cortex fit
# with that --keep, resumes without refitting, refuses other settings in the same folder and bad
# fractions with one line, leaving nothing behind.
# Usage: tests/cli_pruning.sh path/to/cortex   (ctest runs it as cli_pruning)
set -euo pipefail
cortex=$(realpath "$1")
source "$(dirname "$(realpath "$0")")/safetensors.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_pruning: FAIL: $*" >&2; exit 1; }

"$cortex" simulate --out sim --train 120 --test 24 --voxels 24 --image-size 32 --seed 4 > /dev/null
data=sim/subj01
test_images=$data/test_split/test_images
base=(--data "$data" --hemi both --arch alexnet --random-weights 1 --image-size 64 --epochs 1 --batch 24)
common=("${base[@]}" --readout fwrf --tap features.1,features.4)

tensor_shape() { st_header "$1" | jq -c --arg k "$2" '.[$k].shape'; }  # tensor_shape FILE NAME

# Frozen and fine-tuned --keep 0.25 keep the same channels (64 and 192 in alexnet's features.1, .4).
"$cortex" fit "${common[@]}" --keep 0.25 --out frozen > /dev/null 2> log.frozen || { cat log.frozen >&2; fail "frozen --keep fit"; }
"$cortex" fit "${common[@]}" --keep 0.25 --finetune --out tuned > /dev/null 2> log.tuned || { cat log.tuned >&2; fail "--keep --finetune fit"; }
[[ $(tensor_shape frozen/model.safetensors keep.0) == "[16]" && $(tensor_shape frozen/model.safetensors keep.1) == "[48]" ]] ||
  fail "the frozen fit does not keep 16 and 48 channels"
for l in 0 1; do
  k=$(st_hex frozen/model.safetensors keep.$l)
  [[ -n $k && $k == "$(st_hex tuned/model.safetensors readout.keep.$l)" ]] ||
    fail "tap $l: the fine-tuned fit keeps other channels than the frozen fit"
done
"$cortex" predict --model tuned/model.safetensors --images "$test_images" --out pred.tuned.npy > /dev/null 2>&1 ||
  fail "predict with the pruned fine-tuned model failed"
cmp -s pred.tuned.npy tuned/predictions.npy || fail "predict differs from the pruned fine-tuned fit's predictions"

# The sweep: each fraction is the fit of that --keep, byte for byte.
"$cortex" prune-sweep "${common[@]}" --finetune --fractions 0.25,1 --out sweep > out.sweep 2> log.sweep ||
  { cat log.sweep >&2; fail "prune-sweep failed"; }
grep -q "prune-sweep: mean r  1: [-0-9.]*  0.25: [-0-9.]*; results in sweep" out.sweep || { cat out.sweep >&2; fail "no summary line"; }
for f in sweep.json sweep.csv report.html sweep-settings.json keep-1/model.safetensors keep-0.25/metrics.json; do
  [[ -s sweep/$f ]] || fail "prune-sweep wrote no $f"
done
cmp -s sweep/keep-0.25/predictions.npy tuned/predictions.npy || fail "the sweep's keep-0.25 differs from fit --keep 0.25"
"$cortex" fit "${common[@]}" --finetune --out full > /dev/null 2> log.full || { cat log.full >&2; fail "unpruned fit"; }
cmp -s sweep/keep-1/predictions.npy full/predictions.npy || fail "the sweep's keep-1 differs from the unpruned fit"
jq -e '(.fractions | map(.fraction)) == [1, 0.25] and (.fractions[1].channels_kept == [16, 48])
       and (.fractions[0].channels_kept == []) and (.fractions[0].mean_r | numbers)
       and (.fractions[1].rois | length > 0)' sweep/sweep.json > /dev/null || fail "sweep.json: $(cat sweep/sweep.json)"
r=$(jq -r '.mean_r' tuned/metrics.json)
grep -q "^0.25,all,$(printf '%.6g' "$r")" sweep/sweep.csv || fail "sweep.csv does not hold keep 0.25's mean r $r"
grep -q "<svg" sweep/report.html || fail "the sweep's report has no plot"

# Resumed: nothing refit, the same sweep.json.
cp sweep/sweep.json first.json
"$cortex" prune-sweep "${common[@]}" --finetune --fractions 0.25,1 --out sweep > /dev/null 2> log.again || fail "resumed sweep failed"
[[ $(grep -c "done earlier" log.again) -eq 2 ]] || { cat log.again >&2; fail "the resumed sweep refit a fraction"; }
cmp -s first.json sweep/sweep.json || fail "the resumed sweep wrote another sweep.json"

# Mistakes: one line, non-zero, and no new folder.
expect_error() {
  local want=$1
  shift
  if "$cortex" "$@" > /dev/null 2> err.txt; then fail "expected an error for: $*"; fi
  tail -n 1 err.txt | grep -q -- "error: .*$want" || { cat err.txt >&2; fail "expected '$want' for: $*"; }
}
expect_error "holds a sweep with other settings" prune-sweep "${common[@]}" --fractions 0.25,1 --out sweep
expect_error "every fraction must be in (0, 1\]" prune-sweep "${common[@]}" --fractions 0.5,0 --out bad
expect_error "fractions expects numbers" prune-sweep "${common[@]}" --fractions 0.5,half --out bad
expect_error "repeats a value" prune-sweep "${common[@]}" --fractions 0.5,0.5 --out bad
expect_error "prunes the channels of --readout fwrf" prune-sweep "${base[@]}" --readout gaussian --tap features.4 --out bad
expect_error "keep is what the sweep varies" prune-sweep "${common[@]}" --keep 0.5 --out bad
expect_error "unknown tap" prune-sweep "${base[@]}" --tap features.99 --fractions 0.5 --out bad
expect_error "option of --readout fwrf" fit "${base[@]}" --readout gaussian --tap features.4 --keep 0.5 --out bad
[[ ! -e bad ]] || fail "a refused command left an output folder"
echo "cli_pruning: passed ($(jq -c '[.fractions[] | {fraction, mean_r}]' sweep/sweep.json))"
