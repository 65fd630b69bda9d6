#!/usr/bin/env bash
# `cortex ncut` over several sources end to end (docs/spectral.md 7.1): one graph over two keys, the
# per-source PNG folders, the 2-D t-SNE scatter, the heatmap files, `cortex oracle-miou` scoring each
# source of the file (two copies of one array score the same), the one-line refusals, and the chain
# cortex concepts --write-aligned -> cortex ncut -> oracle-miou per layer and concepts --ncut.
# Usage: tests/cli_ncut_multi.sh path/to/cortex   (ctest runs it as cli_ncut_multi)
set -euo pipefail
cortex=$(realpath "$1")
models=$(realpath "$(dirname "$0")/data/models")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_ncut_multi: FAIL: $*" >&2; exit 1; }

"$cortex" simulate-scenes --out sc --images 3 --size 16 --classes 2 --border 1 --seed 4 > /dev/null
"$cortex" randn --shape 3,8,16,16 --names a b --out f.safetensors --seed 1 > /dev/null
"$cortex" randn --shape 3,5,16,16 --names a --out n.safetensors --seed 2 > /dev/null

# Two keys of one file: one graph of 2 x 3 x 16 x 16 nodes, pictures per source.
"$cortex" ncut --input f.safetensors --key a,b --k 4 --samples 200 --out j.safetensors --rgb-dir rgb \
  --tsne-dims 2 --tsne-samples 100 --heatmap "1:0,3,4;0,2,2" --heatmap-dir heat > out.txt 2> err.txt \
  || fail "ncut exited with $?: $(cat err.txt)"
grep -q "eigenvectors \[1536, 4\].*node_input \[1536\], node_position \[1536, 3\], rgb \[1536, 3\], tsne \[1536, 2\], heatmap \[2, 1536\]" out.txt \
  || fail "summary: $(cat out.txt)"
grep -q "one graph over 2 sources: \[1536, 8\]" err.txt || fail "log: $(cat err.txt)"
for f in rgb/input_00/image_0000.png rgb/input_01/image_0002.png rgb/tsne_2d.png heat/heatmap_00_input_00.npy \
         heat/heatmap_01_input_01.npy heat/heatmap_00/input_01/image_0002.png; do
  [ -s "$f" ] || fail "missing $f"
done
[ ! -e rgb/input_02 ] || fail "a third source folder"

# The same array twice (--input repeated): its two copies' rows are identical, so each source scores the same.
"$cortex" ncut --input f.safetensors --input f.safetensors --key a --k 4 --samples 200 --out d.safetensors \
  > /dev/null 2>&1 || fail "ncut (twice the same) exited with $?"
"$cortex" oracle-miou --eig d.safetensors --masks sc/figure --figure-ground --out s.json > o.txt \
  || fail "oracle-miou exited with $?"
a=$(sed -n 's/^input  0 .*oracle mIoU \([0-9.]*\).*/\1/p' o.txt)
b=$(sed -n 's/^input  1 .*oracle mIoU \([0-9.]*\).*/\1/p' o.txt)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "per-input scores differ or are missing: $(cat o.txt)"
grep -q "(grid 16x16)" o.txt || fail "grid: $(cat o.txt)"
grep -q '"per_input"' s.json && grep -q '"best_input": 0' s.json || fail "json: $(cat s.json)"

# --center: each source's mean row removed; the two copies still score the same.
"$cortex" oracle-miou --eig d.safetensors --masks sc/figure --figure-ground --center --out sc.json > oc.txt \
  || fail "oracle-miou --center exited with $?"
a=$(sed -n 's/^input  0 .*oracle mIoU \([0-9.]*\).*/\1/p' oc.txt)
b=$(sed -n 's/^input  1 .*oracle mIoU \([0-9.]*\).*/\1/p' oc.txt)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "--center: per-input scores differ or are missing: $(cat oc.txt)"
grep -q '"centred": true' sc.json || fail "--center json: $(cat sc.json)"

# float32 and float64 sources compute in float32.
"$cortex" randn --shape 3,8,16,16 --names a --dtype float64 --out g.safetensors --seed 3 > /dev/null
"$cortex" ncut --input f.safetensors,g.safetensors --key a --k 3 --samples 100 --out m.safetensors > /dev/null 2> em.txt \
  || fail "mixed dtypes exited with $?: $(cat em.txt)"
head -c 4000 m.safetensors | grep -aq '"eigenvectors":{"dtype":"F32","shape":\[1536,3\]' || fail "mixed dtypes: not float32"

# Refusals: different widths (naming the shapes and the way out), --grid with a multi-input file.
if "$cortex" ncut --input f.safetensors,n.safetensors --key a --out w.safetensors > /dev/null 2> e1.txt; then
  fail "different widths accepted"
fi
grep -q "\[3, 8, 16, 16\] (d = 8) and n.safetensors:a \[3, 5, 16, 16\] (d = 5).*channel-align" e1.txt || fail "width: $(cat e1.txt)"
[ ! -e w.safetensors ] || fail "output written on refusal"
if "$cortex" oracle-miou --eig d.safetensors --masks sc/figure --grid 16x16 > /dev/null 2> e2.txt; then
  fail "--grid accepted with a multi-input file"
fi
grep -q "each with its own grid" e2.txt || fail "grid refusal: $(cat e2.txt)"
if "$cortex" ncut --input f.safetensors --key a --out h.safetensors --heatmap 0,1,1 > /dev/null 2> e3.txt; then
  fail "--heatmap without --heatmap-dir accepted"
fi
grep -q "go together" e3.txt || fail "heatmap refusal: $(cat e3.txt)"
# After alignment, end to end with cortex concepts: a tiny channel-align fit, its aligned maps
# (--write-aligned) as two sources of one graph, oracle mIoU per layer on each layer's own grid, and
# concepts reading the file's tsne back (docs/alignedcut.md).
backbone=(--config "$models/alexnet.json" --weights "$models/alexnet.safetensors" --image-size 64)
"$cortex" simulate --out sim --train 60 --test 10 --voxels 20 --image-size 32 --seed 3 > /dev/null
"$cortex" fit --data sim/subj01 --hemi both --out fit "${backbone[@]}" --readout channel-align \
  --tap features.4,features.7 --hidden 16 --epochs 1 > /dev/null 2>&1 || fail "channel-align fit"
"$cortex" simulate-scenes --out scenes --images 6 --size 64 --classes 3 --seed 1 > /dev/null
"$cortex" features "${backbone[@]}" --no-crop --images scenes/images.npy --taps features.4,features.7 \
  --out feats.safetensors > /dev/null 2>&1 || fail "features"
con=(concepts --features feats.safetensors --key features.4,features.7 --model fit/model.safetensors --concepts 5
     --tsne-samples 300)
"$cortex" "${con[@]}" --out con --write-aligned > /dev/null 2>&1 || fail "concepts --write-aligned"
"$cortex" ncut --input con/aligned.safetensors --key features.4,features.7 --k 10 --tsne-dims 3 --tsne-samples 300 \
  --out al.safetensors > al.txt 2> /dev/null || fail "ncut on the aligned maps exited with $?"
grep -q "eigenvectors \[348, 10\].*node_input \[348\].*tsne \[348, 3\]" al.txt || fail "aligned: $(cat al.txt)"
"$cortex" oracle-miou --eig al.safetensors --masks scenes/figure --figure-ground > ao.txt || fail "oracle-miou (aligned)"
grep -q "^input  0 con/aligned.safetensors:features.4: .*(grid 7x7)" ao.txt && \
  grep -q "^input  1 con/aligned.safetensors:features.7: .*(grid 3x3)" ao.txt || fail "per-layer scores: $(cat ao.txt)"
"$cortex" "${con[@]}" --out con2 --ncut al.safetensors > /dev/null 2>&1 || fail "concepts --ncut"
grep -q "al.safetensors (its tsne)" con2/concepts.json || fail "concepts did not read the file's tsne"
echo "cli_ncut_multi: ok"
