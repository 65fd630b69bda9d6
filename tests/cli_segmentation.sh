#!/usr/bin/env bash
# `cortex simulate-scenes` and `cortex oracle-miou` end to end: the files a scene folder holds, the
# oracle mIoU of embeddings with known answers (one-hot of the figure mask: 1; constant: the mean
# class fraction, 0.5 for figure-ground) from a PNG folder and from .npy labels, and one-line
# refusals with no output written. Needs python3 with numpy to make the embeddings.
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

# Embeddings on an 8x8 grid (4x4-pixel cells): one-hot of the area-majority figure label (ignore
# cells get a third direction, which must not matter), and a constant.
python3 - <<'PY'
import numpy as np
f = np.load("sc/figure.npy")  # (3, 32, 32) uint8, 0/1/255
cells = f.reshape(3, 8, 4, 8, 4).transpose(0, 1, 3, 2, 4).reshape(3, 8, 8, 16)
lab = np.zeros((3, 8, 8), np.int64)
for idx in np.ndindex(3, 8, 8):
    v, c = np.unique(cells[idx], return_counts=True)
    lab[idx] = v[np.argmax(c)]  # the smallest label among the most frequent, as downsample_mask
e = np.zeros((3, 8, 8, 3), np.float32)
e[..., 0] = lab == 0; e[..., 1] = lab == 1; e[..., 2] = lab == 255
np.save("onehot.npy", e)
np.save("const.npy", np.ones((3 * 64, 5), np.float32))
np.save("const50.npy", np.ones((3 * 50, 5), np.float32))
PY
"$cortex" oracle-miou --eig onehot.npy --masks sc/figure --figure-ground --grid 8x8 --out s.json > o.txt \
  || fail "oracle-miou exited with $?"
grep -q "oracle mIoU 1.0000 over 2 classes (3 images, grid 8x8, k 3)" o.txt || fail "one-hot: $(cat o.txt)"
grep -q '"miou": 1.0' s.json || fail "json: $(cat s.json)"
# Class masks from .npy, default square grid: the one-hot of figure vs class labels 1..2 can only
# be perfect for the background.
"$cortex" oracle-miou --eig onehot.npy --masks sc/labels.npy > o2.txt || fail "npy masks exited with $?"
grep -q "class   0: IoU 1.0000" o2.txt || fail "background from npy: $(cat o2.txt)"
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
