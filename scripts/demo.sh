#!/usr/bin/env bash
# The README's main job: simulate a dataset whose voxels have known response functions, fit an
# encoding model to it from a backbone's features, evaluate it on held-out images, write the
# report, and compare the three fits on one page (cortex compare). No downloads: the backbone has
# seeded random weights (pass WEIGHTS=alexnet.safetensors to use pretrained ones). Everything
# lands in $OUT_DIR (default out/demo).
set -euo pipefail
build=${1:-build}
cortex="$build/cli/cortex"
out=${OUT_DIR:-out/demo}
mkdir -p "$out"
start=$SECONDS
"$cortex" --version
"$cortex" simulate --out "$out/data" --train 600 --test 100 --voxels 500 --image-size 64 --seed 1
if [[ -n ${WEIGHTS:-} ]]; then backbone=(--weights "$WEIGHTS"); else backbone=(--random-weights 1); fi
data="$out/data/subj01"
# 1. ridge with cross-validated per-voxel penalties on pooled AlexNet features
"$cortex" fit --data "$data" --hemi both --arch alexnet "${backbone[@]}" --tap features.5 \
  --image-size 96 --pool 4 --out "$out/ridge" 2> "$out/ridge.log"
# 2. a Gaussian readout (Lurz et al. 2020) on the unpooled map of the layer before
"$cortex" fit --data "$data" --hemi both --readout gaussian --arch alexnet "${backbone[@]}" --tap features.4 \
  --image-size 96 --epochs 30 --out "$out/gaussian" 2> "$out/gaussian.log"
# 3. a data-driven core: a 3-layer conv net trained from the images, with a Gaussian readout
"$cortex" fit --data "$data" --hemi both --readout core --core-size 32 --epochs 20 --out "$out/core" 2> "$out/core.log"
# the fitted model applied to images again (here the test images), then scored on its own
"$cortex" predict --model "$out/core/model.safetensors" --images "$data/test_split/test_images" --out "$out/core/predict.npy"
"$cortex" eval --pred "$out/core/predict.npy" --data "$data" --hemi both --out "$out/core/eval.json"
"$cortex" eval --pred "$out/ridge/predictions.npy" --data "$data" --hemi both \
  --out "$out/ridge/eval.json" --permutations 100
# Where the core's Gaussian readout put the receptive fields, against the planted centres.
grep -h "receptive-field centres" "$out/core.log" || true
# The three models side by side: scatter of r per pair, the flame plot, ROI bars, paired tests.
"$cortex" compare "$out/ridge" "$out/gaussian" "$out/core" --out "$out/compare"
echo "demo: done in $((SECONDS - start)) s; reports: $out/{ridge,gaussian,core}/report.html and the comparison" \
  "$out/compare/compare.html (open in a browser)"
