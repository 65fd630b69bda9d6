#!/usr/bin/env bash
# `cortex simulate-scenes` and `cortex oracle-miou` end to end: the files a scene folder holds, the
# oracle mIoU of embeddings with known answers (constant: the mean class share, 0.5 for
# figure-ground) from a PNG folder and from .npy labels, and one-line
# refusals with no output written.
# Usage: tests/cli_segmentation.sh path/to/cortex   (ctest runs it as cli_segmentation)
set -euo pipefail
cortex=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_segmentation: FAIL: $*" >&2; exit 1; }

"$cortex" simulate-scenes --out sc --images 3 --size 32 --classes 2 --border 1 --seed 4 > out.txt \
  || fail "simulate-scenes exited with $?"
grep -q "wrote sc: 3 scenes of 32x32, 2 classes" out.txt || fail "summary: $(cat out.txt)"
for f in images.npy labels.npy figure.npy scenes.json masks/00000.png masks/00002.png figure/00001.png; do
  [ -s "sc/$f" ] || fail "missing sc/$f"
done
[ "$(ls sc/masks | wc -l)" = 3 ] || fail "expected 3 masks: $(ls sc/masks)"

# Constant embeddings (written here, no Python): every patch alike, so each class's best
# threshold takes all patches or none and its IoU is its share of the scored patches; the mIoU is
# the mean share, 1/2 for figure-ground and 1/3 for three classes. The one-hot (perfect) embedding's
# mIoU of 1 is test_segmentation's.
# npy_ones ROWS COLS FILE: a float32 (ROWS, COLS) .npy of ones.
npy_ones() {
  local h="{'descr': '<f4', 'fortran_order': False, 'shape': ($1, $2), }"
  while (( (10 + ${#h} + 1) % 64 )); do h+=" "; done
  { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $(( (${#h} + 1) % 256 )))\\x$(printf %02x $(( (${#h} + 1) / 256 )))"
    printf '%s\n' "$h"; printf '\x00\x00\x80\x3f%.0s' $(seq $(( $1 * $2 ))); } > "$3"
}
npy_ones 192 5 const.npy
npy_ones 150 5 const50.npy
"$cortex" oracle-miou --eig const.npy --masks sc/figure --figure-ground --grid 8x8 --out s.json > o.txt \
  || fail "oracle-miou exited with $?"
grep -q "oracle mIoU 0.5000 over 2 classes (3 images, grid 8x8, k 5)" o.txt || fail "constant, figure-ground: $(cat o.txt)"
grep -q '"miou": 0.5' s.json || fail "json: $(cat s.json)"
# Class masks from .npy, default square grid.
"$cortex" oracle-miou --eig const.npy --masks sc/labels.npy > o2.txt || fail "npy masks exited with $?"
grep -q "oracle mIoU 0.3333 over 3 classes" o2.txt || fail "constant, classes from npy: $(cat o2.txt)"
"$cortex" oracle-miou --eig const.npy --masks sc/figure --figure-ground > o3.txt || fail "const exited with $?"
grep -q "oracle mIoU 0.5000 over 2 classes" o3.txt || fail "constant: $(cat o3.txt)"

# Refusals: one line on stderr, non-zero exit, no JSON written.
refuse() {  # refuse NEEDLE ARGS...
  local needle=$1
  shift
  if "$cortex" oracle-miou "$@" --out bad.json > /dev/null 2> err.txt; then fail "accepted: $*"; fi
  [ "$(wc -l < err.txt)" = 1 ] || fail "expected one line for $*: $(cat err.txt)"
  grep -q -- "$needle" err.txt || fail "expected '$needle' for $*: $(cat err.txt)"
  [ ! -e bad.json ] || fail "bad.json written for $*"
}
mkdir -p two && cp sc/figure/00000.png sc/figure/00001.png two/
refuse "times 2 masks is 128 nodes, but the eigenvectors have 192" --eig const.npy --masks two --figure-ground --grid 8x8
refuse "not a square grid" --eig const50.npy --masks sc/figure
refuse "243 nodes, but the eigenvectors have 192" --eig const.npy --masks sc/figure --grid 9x9
refuse "--grid must be HxW" --eig const.npy --masks sc/figure --grid 8by8
mkdir -p empty
refuse "found none" --eig const.npy --masks empty
cp sc/images.npy img.npy
refuse "expected masks (N, H, W)" --eig const.npy --masks img.npy
echo "cli_segmentation: OK"
