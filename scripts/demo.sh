#!/usr/bin/env bash
# The README's main job: simulate a dataset whose voxels have known response functions, fit an
# encoding model to it from a backbone's features, evaluate it on held-out images and write the
# report. No downloads: the backbone has seeded random weights (pass WEIGHTS=alexnet.safetensors
# to use pretrained ones). Everything lands in $OUT_DIR (default out/demo).
set -euo pipefail
build=${1:-build}
cortex="$build/cli/cortex"
out=${OUT_DIR:-out/demo}
mkdir -p "$out"
start=$SECONDS
"$cortex" --version
"$cortex" simulate --out "$out/data" --train 600 --test 100 --voxels 500 --image-size 64 --seed 1
if [[ -n ${WEIGHTS:-} ]]; then backbone=(--weights "$WEIGHTS"); else backbone=(--random-weights 1); fi
"$cortex" fit --data "$out/data/subj01" --hemi both --arch alexnet "${backbone[@]}" --tap features.5 \
  --image-size 96 --pool 4 --out "$out/ridge" 2> "$out/ridge.log"
"$cortex" eval --pred "$out/ridge/predictions.npy" --data "$out/data/subj01" --hemi both \
  --out "$out/ridge/eval.json" --permutations 100
"$cortex" inspect "$out/ridge/model.safetensors" | head -n 4
echo "demo: done in $((SECONDS - start)) s; open $out/ridge/report.html in a browser"
