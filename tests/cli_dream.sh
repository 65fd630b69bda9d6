#!/usr/bin/env bash
# `cortex dream` end to end on a tiny simulated subject (a ridge fit on the pixels): a simple-cell voxel with the
# training images beside it (every dream above the best training image), an ROI's mean from
# metrics.json and from --data with the pixel parameterisation and every penalty; colour decorrelation and
# the feature-space diversity through a random AlexNet tap; the files
# (dream_<b>.png, dream.npy, dream.json, report.html with the contact sheet), the same seed giving
# the same bytes; wrong inputs refused in one line with nothing written.
# Usage: tests/cli_dream.sh path/to/cortex   (ctest runs it as cli_dream)
set -euo pipefail
cortex=$(realpath "$1")
source "$(dirname "$(realpath "$0")")/npy.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_dream: FAIL: $*" >&2; exit 1; }

"$cortex" simulate --out sim --train 300 --test 6 --voxels 16 --image-size 32 --seed 4 > /dev/null
data=sim/subj01
"$cortex" fit --data "$data" --hemi both --out ridge --tap pixels --image-size 32 --folds 3 > /dev/null 2> fit.log \
  || { cat fit.log >&2; fail "fit"; }
m=ridge/model.safetensors

"$cortex" dream --model $m --voxel 1 --jitter 1 --out d1 --seeds 3 --images "$data/training_split/training_images" \
  > out.txt 2> err.txt || { cat err.txt >&2; fail "dream exited with $?"; }
grep -q "dream: 3 images for voxel 1, 200 steps (fourier): predicted response" out.txt || fail "no summary: $(cat out.txt)"
grep -q "dream: step 200/200, loss" err.txt || fail "no progress on stderr"
[[ $(npy_shape d1/dream.npy) == "(3, 3, 32, 32)" ]] || fail "dream.npy shape $(npy_shape d1/dream.npy)"
for b in 0 1 2; do [[ -s d1/dream_$b.png ]] || fail "no dream_$b.png"; done
grep -q "data:image/png;base64" d1/report.html || fail "report.html lacks the contact sheet"
grep -q "best image train-" d1/report.html || fail "report.html lacks the best training image"
# Every dream drives the voxel above the best of the 300 training images; the loss trajectory is there.
jq -e '(.dreams | length == 3) and (.best_image.of == 300) and (.loss | length == 200)
       and ([.dreams[].response] | min) > .best_image.response and (.settings.param == "fourier")
       and (.settings.steps == 200) and (.target.voxel == 1) and (.dreams[2].seed == 2)' d1/dream.json > /dev/null \
  || fail "dream.json: $(jq -c '[.dreams, .best_image]' d1/dream.json)"
# The same seed: the same images, byte for byte.
"$cortex" dream --model $m --voxel 1 --jitter 1 --out d1b --seeds 3 > /dev/null 2>&1 || fail "second run"
cmp -s d1/dream.npy d1b/dream.npy || fail "the same seed gave other images"
# An ROI's mean (from metrics.json, then from --data), pixels, every penalty.
"$cortex" dream --model $m --roi simple --out d2 --param pixels --steps 30 --seeds 2 --seed 5 --lr 0.1 --jitter 2 \
  --tv 0.1 --l2 1 --diversity 0.5 > out2.txt 2>&1 || { cat out2.txt >&2; fail "dream --roi"; }
jq -e '(.target.roi == "simple") and (.settings.param == "pixels") and (.settings.diversity == 0.5)
       and (.dreams[1].seed == 6) and (.best_image == null)' d2/dream.json > /dev/null || fail "d2: $(jq -c .settings d2/dream.json)"
"$cortex" dream --model $m --roi complex --data "$data" --out d3 --steps 5 --seeds 1 > /dev/null 2>&1 || fail "--roi --data"
jq -e '.target.voxels | length == 4' d3/dream.json > /dev/null || fail "d3"

jq -e '(.settings.decorrelate == false) and (.settings.diversity_space == "pixels")' d1/dream.json > /dev/null \
  || fail "d1 defaults: $(jq -c .settings d1/dream.json)"
# The feature-space diversity through a backbone tap (random AlexNet features.1, ridge), colour decorrelated.
"$cortex" fit --data "$data" --hemi both --out rw --arch alexnet --random-weights 1 --tap features.1 --image-size 32 \
  --folds 3 > /dev/null 2> fit2.log || { cat fit2.log >&2; fail "fit alexnet"; }
"$cortex" dream --model rw/model.safetensors --voxel 1 --jitter 1 --out d4 --steps 20 --seeds 3 --diversity 1 \
  --diversity-space features --decorrelate > out4.txt 2>&1 || { cat out4.txt >&2; fail "dream --diversity-space features"; }
jq -e '(.settings.decorrelate == true) and (.settings.diversity_space == "features")
       and (.settings.diversity_layer == "features.1") and (.dreams | length == 3)
       and (.objective[-1] > .objective[0])' d4/dream.json > /dev/null || fail "d4: $(jq -c .settings d4/dream.json)"
grep -q "fourier, colour decorrelated" d4/report.html || fail "d4 report lacks the parameterisation"

# refuse NEEDLE ARGS...: dream fails with one line containing NEEDLE and writes nothing.
refuse() {
  local needle=$1
  shift
  if "$cortex" dream "$@" --out bad > /dev/null 2> err.txt; then fail "dream $* should have failed"; fi
  [[ $(wc -l < err.txt) -eq 1 ]] || { cat err.txt >&2; fail "dream $*: the error is not one line"; }
  grep -qF -- "$needle" err.txt || { cat err.txt >&2; fail "dream $*: expected '$needle'"; }
  [[ ! -e bad ]] || fail "dream $* left output behind"
  return 0
}
refuse "exactly one of --voxel and --roi" --model $m
refuse "exactly one of --voxel and --roi" --model $m --voxel 1 --roi simple
refuse "--voxel 16 is out of range" --model $m --voxel 16
refuse "no ROI 'V9'" --model $m --roi V9
refuse "--param: wavelet not in" --model $m --voxel 1 --param wavelet
refuse "--steps" --model $m --voxel 1 --steps 0
refuse "--lr" --model $m --voxel 1 --lr -1
refuse "--jitter must be below the image size 32" --model $m --voxel 1 --jitter 32
refuse "--diversity needs --seeds >= 2" --model $m --voxel 1 --seeds 1 --diversity 1
refuse "has no backbone (--tap pixels); use --diversity-space pixels" --model $m --voxel 1 --seeds 2 --diversity 1 \
  --diversity-space features
refuse "--diversity-space: tokens not in" --model $m --voxel 1 --diversity-space tokens
refuse "no-such" --model $m --voxel 1 --images no-such
refuse "no-such.safetensors" --model no-such.safetensors --voxel 1
refuse "--model is required" --voxel 1
echo "cli_dream: ok"
