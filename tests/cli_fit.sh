#!/usr/bin/env bash
# The command line end to end on a small simulated subject: every readout of `cortex fit`, then
# `cortex predict` on the test images must reproduce fit's predictions byte for byte; the feature
# cache must give the same fit; an interrupted-then-resumed fit must end where an uninterrupted one
# does; a fine-tuned backbone must round-trip through its model file; and the mistakes users make
# must end with a one-line error and a non-zero exit, leaving no output behind.
# Usage: tests/cli_fit.sh path/to/cortex   (ctest runs it as cli_fit)
set -euo pipefail
cortex=$(realpath "$1")
source "$(dirname "$(realpath "$0")")/safetensors.sh"
models=$(realpath "$(dirname "$0")/data/models")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_fit: FAIL: $*" >&2; exit 1; }

"$cortex" simulate --out sim --train 160 --test 30 --voxels 40 --image-size 32 --seed 3 > /dev/null
data=sim/subj01
test_images=$data/test_split/test_images
backbone=(--arch alexnet --random-weights 1 --image-size 64)

# The keys fit and eval share (docs/encoding.md, "Metrics"; r and r2 per voxel, which cortex
# compare reads from fit's metrics.json), sorted; null for a missing key.
schema() {
  jq -S '{images, voxels, mean_r, mean_r2, noise_ceiling_was_percent, challenge_score, challenge_voxels_used,
          challenge_voxels_excluded, rois, r, r2}' "$1"
}

# fit NAME ARGS...: fits into out/NAME, checks its outputs, predicts and compares.
fit() {
  local name=$1
  shift
  "$cortex" fit --data "$data" --hemi both --out "out/$name" "$@" > "out.$name.txt" 2> "log.$name.txt" ||
    { cat "log.$name.txt" >&2; fail "fit $name exited with $?"; }
  for f in model.safetensors predictions.npy metrics.json report.html; do
    [[ -s out/$name/$f ]] || fail "fit $name wrote no $f"
  done
  grep -q '"mean_r": [-0-9]' "out/$name/metrics.json" || fail "fit $name: metrics.json has no numeric mean_r"
  grep -q "mean r" "out.$name.txt" || fail "fit $name printed no summary line"
  "$cortex" predict --model "out/$name/model.safetensors" --images "$test_images" --out "pred.$name.npy" > /dev/null 2>&1 ||
    fail "predict $name failed"
  cmp -s "pred.$name.npy" "out/$name/predictions.npy" || fail "predict $name differs from fit's predictions"
  # One metrics schema (analysis/scores.h): eval on fit's predictions reports the same keys and values.
  "$cortex" eval --pred "out/$name/predictions.npy" --data "$data" --hemi both --out "eval.$name.json" > /dev/null 2>&1 ||
    fail "eval $name failed"
  [[ $(schema "out/$name/metrics.json") == "$(schema "eval.$name.json")" ]] ||
    { diff <(schema "out/$name/metrics.json") <(schema "eval.$name.json") >&2; fail "fit $name and eval disagree"; }
  jq -e '(.mean_r | numbers) and (.challenge_score | numbers) and (.rois | length > 0)' "eval.$name.json" > /dev/null ||
    fail "eval $name: no mean_r, challenge_score or rois"
  echo "cli_fit: $name: $(cat "out.$name.txt")"
}

mkdir -p out
fit ridge "${backbone[@]}" --tap features.4,features.7 --pool 2 --folds 3
fit ridge-pixels --tap pixels --image-size 32 --folds 3
fit gaussian-fwrf "${backbone[@]}" --readout gaussian-fwrf --tap features.4 --grid 3 --sigmas 0.3 --alphas 1,100 --folds 3
fit gaussian "${backbone[@]}" --readout gaussian --tap features.4 --epochs 3
# The Gaussian readout's options round-trip through the model file (predict rebuilds the same readout).
fit gaussian-full-shared "${backbone[@]}" --readout gaussian --tap features.4 --epochs 2 --sigma full --shared-features 4
# npy_coords N FILE: a uint8 (N, 2) .npy of grid coordinates (v % 8, v / 8), for --position-mlp.
npy_coords() {
  local n=$1 h
  h="{'descr': '|u1', 'fortran_order': False, 'shape': ($n, 2), }"
  while (( (10 + ${#h} + 1) % 64 )); do h+=" "; done
  { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(( (${#h} + 1) % 256 )))\\x$(printf %02x $(( (${#h} + 1) / 256 )))"
    printf '%s\n' "$h"; for ((v = 0; v < n; ++v)); do printf "\\x$(printf %02x $((v % 8)))\\x$(printf %02x $((v / 8)))"; done; } > "$2"
}
npy_coords 40 coords.npy
fit gaussian-position-mlp "${backbone[@]}" --readout gaussian --tap features.4 --epochs 2 --sigma uncorrelated \
  --position-mlp coords.npy
jq -e '.__metadata__ | .gaussian_sigma == "full" and .shared_features == "4" and .position_mlp == "0"' \
  <(st_header out/gaussian-full-shared/model.safetensors) \
  > /dev/null || fail "the model file does not record --sigma full --shared-features 4"
# bf16 backbone (docs/bf16.md): recorded in the model file, predict follows it (fit() compares), and
# the features, so the predictions, differ from the float32 fit's.
fit ridge-bf16 "${backbone[@]}" --tap features.4,features.7 --pool 2 --folds 3 --dtype bf16
jq -e '.__metadata__ | .dtype == "bf16"' \
  <(st_header out/ridge-bf16/model.safetensors) \
  > /dev/null || fail "the model file does not record --dtype bf16"
cmp -s out/ridge-bf16/predictions.npy out/ridge/predictions.npy && fail "fit --dtype bf16 gave float32's predictions"
fit factorized "${backbone[@]}" --readout factorized --tap features.4 --epochs 3
fit fwrf "${backbone[@]}" --readout fwrf --tap features.1,features.4 --keep 0.5 --epochs 3
fit pooled-linear "${backbone[@]}" --readout pooled-linear --tap features.4,features.7 --epochs 3
fit two-layer "${backbone[@]}" --readout two-layer --tap features.4 --pool 2 --hidden 16 --epochs 3
fit linear "${backbone[@]}" --readout linear --tap features.4 --pool 2 --epochs 3 --optim adamw --weight-decay 0.01
fit core --readout core --core-size 16 --epochs 3
fit finetune "${backbone[@]}" --readout gaussian --tap features.4 --finetune --epochs 2 --batch 40
# Transfer (--init-from): a frozen core or backbone is bit-identical in the new model file; with
# --freeze none it trains further. part_bytes FILE PREFIX: every tensor named PREFIX*, hex, by name.
part_bytes() {
  local k
  for k in $(st_header "$1" | jq -r --arg p "$2" 'keys[] | select(startswith($p))'); do echo "$k $(st_hex "$1" "$k")"; done
}
fit core-frozen --readout core --core-size 16 --epochs 2 --init-from out/core/model.safetensors --freeze core --seed 5
fit core-tuned --readout core --core-size 16 --epochs 2 --init-from out/core/model.safetensors --freeze none --seed 5
[[ -n $(part_bytes out/core/model.safetensors core.) ]] || fail "no core tensors found in the core's model file"
[[ $(part_bytes out/core/model.safetensors core.) == $(part_bytes out/core-frozen/model.safetensors core.) ]] ||
  fail "--freeze core changed the loaded core"
[[ $(part_bytes out/core/model.safetensors core.) != $(part_bytes out/core-tuned/model.safetensors core.) ]] ||
  fail "--freeze none left the loaded core unchanged"
fit finetune-frozen --arch alexnet --image-size 64 --readout gaussian --tap features.4 --finetune --epochs 1 --batch 40 \
  --init-from out/finetune/model.safetensors --freeze backbone
[[ $(part_bytes out/finetune/model.safetensors backbone.) == $(part_bytes out/finetune-frozen/model.safetensors backbone.) ]] ||
  fail "--freeze backbone changed the loaded backbone"

# Receptive-field recovery is measured on a simulated subject for readouts with positions.
for name in core gaussian gaussian-fwrf factorized fwrf; do
  grep -q '"median_px": [0-9]' "out/$name/metrics.json" || fail "$name: no position_error in metrics.json"
done

# The feature cache: the first fit writes it, the second reads it and ends with the same model.
fit cached1 "${backbone[@]}" --readout gaussian --tap features.4 --epochs 3 --cache cache
grep -q "cached the train features" log.cached1.txt || fail "the first cached fit did not write the cache"
fit cached2 "${backbone[@]}" --readout gaussian --tap features.4 --epochs 3 --cache cache
grep -q "train features from the cache" log.cached2.txt || fail "the second cached fit did not read the cache"
cmp -s out/cached1/predictions.npy out/cached2/predictions.npy || fail "the cached fit differs"
cmp -s out/cached1/predictions.npy out/gaussian/predictions.npy || fail "the cached fit differs from the uncached one"
# Another tap is another cache entry.
fit cached3 "${backbone[@]}" --readout gaussian --tap features.1 --epochs 1 --cache cache
grep -q "cached the train features" log.cached3.txt || fail "a fit with another tap reused the cache"

# Interrupted after 2 epochs, resumed to 4: the same model as 4 epochs at once.
fit whole "${backbone[@]}" --readout fwrf --tap features.4 --epochs 4
"$cortex" fit --data "$data" --hemi both --out out/part "${backbone[@]}" --readout fwrf --tap features.4 --epochs 2 \
  > /dev/null 2>&1 || fail "the first half of the resumed fit failed"
fit part "${backbone[@]}" --readout fwrf --tap features.4 --epochs 4 --resume
cmp -s out/whole/predictions.npy out/part/predictions.npy || fail "the resumed fit differs from the uninterrupted one"

# --device emu: the frozen backbone runs on the emulated CUDA device, where an op without an emu
# kernel runs its CPU kernel on the same memory; `cortex --verbose` says which ops did (or that none
# did), and CORTEX_STRICT_DEVICE=1 refuses them, naming the op. A bad device name is a usage error.
"$cortex" --verbose predict --model out/ridge/model.safetensors --images "$test_images" --out pred.emu.npy \
  --device emu > out.emu.txt 2> log.emu.txt || { cat log.emu.txt >&2; fail "predict --device emu failed"; }
grep -q "predictions (ridge)" out.emu.txt || fail "predict --device emu printed no summary"
grep -Eq "^cortex: (no op fell back|ops that fell back)" log.emu.txt || fail "--verbose did not list the fallbacks"
if grep -q "^cortex: ops that fell back" log.emu.txt; then
  rc=0
  CORTEX_STRICT_DEVICE=1 "$cortex" predict --model out/ridge/model.safetensors --images "$test_images" \
    --out pred.strict.npy --device emu > /dev/null 2> err.strict.txt || rc=$?
  [[ $rc -eq 1 ]] && grep -q "no emu kernel" err.strict.txt || { cat err.strict.txt >&2; fail "strict mode ran a fallback"; }
  [[ ! -e pred.strict.npy ]] || fail "strict mode left pred.strict.npy"
fi
rc=0
"$cortex" predict --model out/ridge/model.safetensors --images "$test_images" --out pred.gpu.npy --device gpu \
  > /dev/null 2> err.device.txt || rc=$?
[[ $rc -eq 2 ]] && grep -q "expected 'cpu', 'emu'" err.device.txt || { cat err.device.txt >&2; fail "--device gpu"; }

# Splits from index files (1-D int64 .npy, written here byte by byte): on the Algonauts layout the
# indices select training_split rows (train, and val for early stopping); on plain pairs
# (an images/ folder + responses.npy) they also pick the test rows.
write_idx() {  # write_idx FILE i j k ...
  local f=$1
  shift
  local h="{'descr': '<i8', 'fortran_order': False, 'shape': ($#,), }"
  local total=$(((10 + ${#h} + 1 + 63) / 64 * 64))
  local hl=$((total - 10)) pad=$((total - 10 - ${#h} - 1))
  {
    printf '\x93NUMPY\x01\x00'
    printf "\\x$(printf %02x $((hl & 255)))\\x$(printf %02x $((hl >> 8)))"
    printf '%s%*s\n' "$h" "$pad" ''
    for i in "$@"; do
      for b in 0 1 2 3 4 5 6 7; do printf "\\x$(printf %02x $(((i >> (8 * b)) & 255)))"; done
    done
  } > "$f"
}
write_idx tr.npy $(seq 0 99)
write_idx va.npy $(seq 100 139)
write_idx te.npy $(seq 140 159)
fit idx "${backbone[@]}" --readout linear --tap features.4 --pool 2 --epochs 2 --train-idx tr.npy --val-idx va.npy
grep -q "140 training" log.idx.txt || fail "index files: expected 140 training + validation rows"
mkdir -p pairs/images
cp "$data"/training_split/training_images/*.png pairs/images/
cp "$data"/training_split/training_fmri/lh_training_fmri.npy pairs/responses.npy
"$cortex" fit --data pairs --out out/pairs "${backbone[@]}" --readout linear --tap features.4 --pool 2 --epochs 2 \
  --train-idx tr.npy --val-idx va.npy --test-idx te.npy > out.pairs.txt 2> log.pairs.txt || { cat log.pairs.txt >&2; fail "pairs fit"; }
grep -q "140 training and 20 test images" log.pairs.txt || fail "pairs with index files: wrong split sizes"

# NSD's layout (an HDF5 image brick + image ids + responses), where the build has HDF5: the same
# training rows as the Algonauts layout, so the same features; predict and features read bricks.
if "$cortex" simulate --out simnsd --train 160 --test 30 --voxels 40 --image-size 32 --seed 3 --nsd \
  > /dev/null 2> err.nsd.txt; then
  "$cortex" fit --data simnsd/subj01/nsd --out out/nsd "${backbone[@]}" --readout linear --tap features.4 --pool 2 \
    --epochs 2 --train-idx tr.npy --val-idx va.npy --test-idx te.npy > out.nsd.txt 2> log.nsd.txt ||
    { cat log.nsd.txt >&2; fail "fit on the NSD layout"; }
  # The same rows from PNG files must give byte-identical predictions.
  mkdir -p pairs2 && cp -r pairs/images pairs2/ && cp simnsd/subj01/nsd/responses.npy pairs2/
  "$cortex" fit --data pairs2 --out out/pairs2 "${backbone[@]}" --readout linear --tap features.4 --pool 2 --epochs 2 \
    --train-idx tr.npy --val-idx va.npy --test-idx te.npy > /dev/null 2>&1 || fail "fit on the PNG twin of the NSD layout"
  cmp -s out/nsd/predictions.npy out/pairs2/predictions.npy || fail "the NSD layout fit differs from the same rows as PNGs"
  "$cortex" predict --model out/nsd/model.safetensors --images simnsd/subj01/nsd/images.hdf5 --out pred.nsd.npy \
    > out.prednsd.txt 2>&1 || fail "predict on a brick"
  grep -q "\[190, 40\]" out.prednsd.txt || fail "predict on a brick: expected 190 x 40 predictions"
  # cortex features on the brick and on the same images as PNGs (test images first, as in the brick).
  mkdir -p both
  for f in simnsd/subj01/test_split/test_images/*.png; do cp "$f" "both/a_${f##*/}"; done
  for f in simnsd/subj01/training_split/training_images/*.png; do cp "$f" "both/b_${f##*/}"; done
  for src in simnsd/subj01/nsd/images.hdf5 both; do
    "$cortex" features --config "$models/alexnet.json" --weights "$models/alexnet.safetensors" --images "$src" \
      --taps features.4 --image-size 64 --out "f.${src##*/}.safetensors" > /dev/null 2>&1 || fail "features on $src"
  done
  # The tensors (the files' last bytes: 190 x (12 x 7 x 7 + 10) float32) must agree; the headers name the inputs.
  n=$((190 * (12 * 7 * 7 + 10) * 4))
  cmp -s <(tail -c $n f.images.hdf5.safetensors) <(tail -c $n f.both.safetensors) ||
    fail "features from the brick differ from the same images as PNGs"
  echo "cli_fit: nsd: $(cat out.nsd.txt)"
else
  grep -q "needs a build with HDF5" err.nsd.txt || { cat err.nsd.txt >&2; fail "simulate --nsd"; }
  echo "cli_fit: built without HDF5: NSD-style bricks not exercised"
fi

# Evaluation of a prediction file against the test responses.
"$cortex" eval --pred pred.core.npy --data "$data" --hemi both --out eval.json > /dev/null 2>&1 || fail "eval failed"
grep -q '"mean_r"' eval.json || fail "eval.json has no mean_r"

# Mistakes: exit code non-zero, one error line on stderr naming the problem, no output folder.
expect_error() {
  local want=$1
  shift
  local rc=0
  "$cortex" "$@" > /dev/null 2> err.txt || rc=$?
  [[ $rc -ne 0 ]] || fail "expected an error for: $*"
  # Progress lines may come first; the error is one line, the last.
  [[ $(grep -c "error" err.txt) -eq 1 ]] || { cat err.txt >&2; fail "expected one error line for: $*"; }
  tail -n 1 err.txt | grep -q -- "error: .*$want" || { cat err.txt >&2; fail "expected '$want' last for: $*"; }
  [[ ! -e out/bad ]] || fail "an output folder was left by: $*"
}
expect_error "readout must be one of" fit --data "$data" --out out/bad --readout lasso --tap features.4 "${backbone[@]}"
expect_error "reads one map" fit --data "$data" --out out/bad --readout gaussian --tap features.1,features.4 "${backbone[@]}"
expect_error "finetune" fit --data "$data" --out out/bad --readout ridge --tap features.4 --finetune "${backbone[@]}"
expect_error "dtype must be fp32 or bf16" fit --data "$data" --out out/bad --tap features.4 --dtype fp16 "${backbone[@]}"
expect_error "not with --finetune" fit --data "$data" --out out/bad --readout gaussian --tap features.4 --finetune --dtype bf16 "${backbone[@]}"
expect_error "applies to frozen backbones only" fit --data "$data" --out out/bad --readout gaussian --tap features.4 \
  --finetune --device emu "${backbone[@]}"
expect_error "not a directory" fit --data nowhere --out out/bad --tap features.4 "${backbone[@]}"
expect_error "unknown tap" fit --data "$data" --hemi both --out out/bad --tap features.99 "${backbone[@]}"
expect_error "poisson" fit --data "$data" --out out/bad --readout fwrf --tap features.4 --loss poisson "${backbone[@]}"
expect_error "appears twice or in two splits" fit --data "$data" --out out/bad --readout linear --tap features.4 \
  --train-idx tr.npy --val-idx tr.npy "${backbone[@]}"
expect_error "test-idx is for plain pairs" fit --data "$data" --out out/bad --tap features.4 --train-idx tr.npy \
  --test-idx te.npy "${backbone[@]}"
expect_error "optim must be adam or adamw" fit --data "$data" --out out/bad --readout linear --tap features.4 --optim sgd \
  "${backbone[@]}"
expect_error "sigma must be full, uncorrelated or isotropic" fit --data "$data" --out out/bad --readout gaussian \
  --tap features.4 --sigma round "${backbone[@]}"
expect_error "options of --readout gaussian" fit --data "$data" --out out/bad --readout factorized --tap features.4 \
  --shared-features 2 "${backbone[@]}"
expect_error "more groups than the 40 voxels" fit --data "$data" --hemi both --out out/bad --readout gaussian \
  --tap features.4 --shared-features 41 "${backbone[@]}"
expect_error "freeze keeps weights loaded by --init-from" fit --data "$data" --out out/bad --readout core --freeze core
expect_error "holds a ridge readout, not a trained core" fit --data "$data" --out out/bad --readout core \
  --init-from out/ridge/model.safetensors --freeze core
expect_error "holds no fine-tuned backbone" fit --data "$data" --out out/bad --readout gaussian --tap features.4 \
  --finetune --init-from out/gaussian/model.safetensors "${backbone[@]}"
expect_error "freeze backbone needs --finetune" fit --data "$data" --out out/bad --readout core \
  --init-from out/core/model.safetensors --freeze backbone
expect_error "init-from reuses a trained core" fit --data "$data" --out out/bad --readout ridge --tap features.4 \
  --init-from out/core/model.safetensors "${backbone[@]}"
npy_coords 10 coords10.npy
expect_error "expected (40 voxels, D) coordinates" fit --data "$data" --hemi both --out out/bad --readout gaussian \
  --tap features.4 --position-mlp coords10.npy "${backbone[@]}"
# The Gaussian readout's keys are optional (defaults: isotropic, 0, 0): a file without them still loads.
perl -0777 -pe 's/"gaussian_sigma":/"gaussian_sigmx":/; s/"shared_features":/"shared_featurex":/; s/"position_mlp":/"position_mlx":/' \
  out/gaussian/model.safetensors > nogauss.safetensors
! cmp -s nogauss.safetensors out/gaussian/model.safetensors || fail "could not edit the model file (nogauss)"
"$cortex" predict --model nogauss.safetensors --images "$test_images" --out pred.nogauss.npy > /dev/null 2>&1 ||
  fail "predict on a model file without the gaussian keys failed"
cmp -s pred.nogauss.npy out/gaussian/predictions.npy || fail "a model file without the gaussian keys predicts differently"
echo "not a model" > junk.safetensors
expect_error "junk.safetensors" predict --model junk.safetensors --images "$test_images" --out p.npy
[[ ! -e p.npy ]] || fail "predict left an output after an error"
# A model file of another format_version, or one missing a key (docs/model-file.md): one line, no output.
# Same-length edits of the metadata, so the header length stays right.
perl -0777 -pe 's/"format_version":"1"/"format_version":"7"/' out/ridge/model.safetensors > v7.safetensors
perl -0777 -pe 's/"tap":/"tqp":/' out/ridge/model.safetensors > notap.safetensors
for f in v7 notap; do ! cmp -s "$f.safetensors" out/ridge/model.safetensors || fail "could not edit the model file ($f)"; done
expect_error "format_version '7', this cortex reads version 1" predict --model v7.safetensors --images "$test_images" --out p.npy
[[ ! -e p.npy ]] || fail "predict left an output for a model file of another version"
expect_error "no 'tap' in its metadata" predict --model notap.safetensors --images "$test_images" --out p.npy
[[ ! -e p.npy ]] || fail "predict left an output for a model file missing a key"

# --readout channel-align (docs/alignedcut.md): two taps into one shared space of --hidden dims, L1
# by default; predict rebuilds it from the model file (fit() compares the predictions); refusals.
fit channel-align "${backbone[@]}" --readout channel-align --tap features.4,features.7 --hidden 16 --epochs 2 \
  --align-reg eigen=1,focal=0.5,k=4,nodes=60
jq -e '.__metadata__ | .readout == "channel-align" and .loss == "l1" and .hidden == "16"' \
  <(st_header out/channel-align/model.safetensors) \
  > /dev/null || fail "the channel-align model file does not record its readout, loss l1 and --hidden 16"
expect_error "one frozen backbone per fit" fit --data "$data" --out out/bad --readout channel-align --tap features.4 \
  --finetune "${backbone[@]}"
expect_error "unknown key 'eigne'" fit --data "$data" --out out/bad --readout channel-align --tap features.4 \
  --align-reg eigne=1 "${backbone[@]}"
expect_error "align-reg is an option of --readout channel-align" fit --data "$data" --out out/bad --readout ridge \
  --tap features.4 --align-reg eigen=1 "${backbone[@]}"
echo "cli_fit: all checks passed"
