#!/usr/bin/env bash
# The README's main job. Until the encoding-model pipeline lands it shows the command-line tool
# on data it writes itself: help, a seeded array and a weights-style file, and what is inside them.
set -euo pipefail
build=${1:-build}
cortex="$build/cli/cortex"
out=${OUT_DIR:-out/demo}
mkdir -p "$out"
"$cortex" --help
"$cortex" --version
"$cortex" randn --shape 16,3,8,8 --seed 1 --out "$out/images.npy"
"$cortex" randn --shape 64,48 --names features.0.weight,features.0.bias --seed 2 --out "$out/weights.safetensors"
"$cortex" inspect "$out/images.npy" "$out/weights.safetensors"
echo "demo: files are in $out"
