#!/usr/bin/env bash
# `cortex concepts` end to end: simulated scenes through a tiny AlexNet, a tiny channel-align fit,
# then concepts and trajectories. Checked against recomputations (awk, float64) from the files
# (aligned activations W_l f_l, each concept's mean and std over its sphere, brain maps head.weight
# x mean, transition counts from the per-pixel trajectories); the --ncut path with a given embedding
# must give the same concepts; mistakes end with one line, a non-zero exit and no output folder.
# Usage: tests/cli_concepts.sh path/to/cortex   (ctest runs it as cli_concepts)
set -euo pipefail
cortex=$(realpath "$1")
source "$(dirname "$(realpath "$0")")/npy.sh"
source "$(dirname "$(realpath "$0")")/safetensors.sh"
models=$(realpath "$(dirname "$0")/data/models")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_concepts: FAIL: $*" >&2; exit 1; }
backbone=(--config "$models/alexnet.json" --weights "$models/alexnet.safetensors" --image-size 64)

"$cortex" simulate --out sim --train 60 --test 10 --voxels 20 --image-size 32 --seed 3 > /dev/null
"$cortex" fit --data sim/subj01 --hemi both --out fit "${backbone[@]}" --readout channel-align \
  --tap features.4,features.7 --hidden 16 --epochs 1 > /dev/null 2>&1 || fail "channel-align fit"
"$cortex" fit --data sim/subj01 --hemi both --out ridge "${backbone[@]}" --tap features.4,features.7 --pool 2 \
  --folds 2 > /dev/null 2>&1 || fail "ridge fit"
"$cortex" simulate-scenes --out scenes --images 6 --size 64 --classes 3 --seed 1 > /dev/null
"$cortex" features "${backbone[@]}" --no-crop --images scenes/images.npy --taps features.4,features.7 \
  --out feats.safetensors > /dev/null 2>&1 || fail "features"
printf '{"v": [20]}' > badrois.json
printf '{"early": [0, 1, 2, 3, 4], "late": [10, 11, 12, 19]}' > rois.json

run=(concepts --features feats.safetensors --key features.4,features.7 --model fit/model.safetensors --concepts 5
     --tsne-samples 300)
"$cortex" "${run[@]}" --out con --images scenes/images.npy --rois rois.json --write-aligned > out.txt 2> log.txt ||
  { cat log.txt >&2; fail "concepts exited with $?"; }
grep -q "5 concepts over 348 nodes" out.txt || fail "summary: $(cat out.txt)"
for f in concepts.npy nearest.npy embedding.npy concept_mean.npy concept_std.npy brain_maps.npy transitions.npy \
         trajectories.npy concepts.json report.html aligned.safetensors pictures/brain_maps.png pictures/transitions_00.png \
         pictures/mask_layer00_image0000.png pictures/mask_layer01_image0005.png; do
  [[ -s con/$f ]] || fail "no con/$f"
done
grep -q "Brain maps, mean per ROI" con/report.html || fail "report.html has no ROI bars"
ls con/*.tmp* con/pictures/*.tmp* > /dev/null 2>&1 && fail "temporary files left behind"

# safetensors readers and a writer for the checks below (bash, od and awk: the tests never need
# Python; st_header and the .npy readers are in tests/safetensors.sh and tests/npy.sh).
# st_vals FILE NAME ODTYPE: one tensor's values.
st_vals() {
  local n=$(( $(od -An -t u8 -N 8 "$1") )) off
  off=$(st_header "$1" | grep -o "\"$2\":{[^}]*}" | grep -o '"data_offsets":\[[0-9]*,[0-9]*\]' | grep -o '[0-9]*,[0-9]*')
  [[ -n $off ]] || fail "no tensor $2 in $1"
  od -An -v -t "$3" -j $((8 + n + ${off%,*})) -N $((${off#*,} - ${off%,*})) "$1" | tr -s ' ' '\n' | grep -v '^$'
}
# st_write OUT NAME:DTYPE:SHAPE:RAWFILE...: a safetensors file of raw little-endian tensors.
st_write() {
  local out=$1 header="{" off=0 sep="" spec name dtype shape raw n
  shift
  for spec in "$@"; do
    IFS=: read -r name dtype shape raw <<< "$spec"
    n=$(stat -c %s "$raw")
    header+="$sep\"$name\":{\"dtype\":\"$dtype\",\"shape\":[$shape],\"data_offsets\":[$off,$((off + n))]}"
    off=$((off + n)) sep=","
  done
  header+="}"
  while (( ${#header} % 8 )); do header+=" "; done
  { printf "$(printf '%016x' ${#header} | sed -E 's/(..)(..)(..)(..)(..)(..)(..)(..)/\\x\8\\x\7\\x\6\\x\5\\x\4\\x\3\\x\2\\x\1/')"
    printf '%s' "$header"
    for spec in "$@"; do cat "${spec##*:}"; done; } > "$out"
}
# i8_raw V...: int64 little-endian bytes of the given values (0 or 1 here).
i8_raw() { local v; for v in "$@"; do printf "\\x0$v\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; done; }

C=5 D=16 V=20 N=348
# Brain maps are head.weight x each concept's mean: (C, V) = (C, D) (V, D)^T. (od prints float32 in
# their shortest form, which awk reads as a double 1e-8 away: hence the tolerances below.)
npy_vals con/concept_mean.npy > mean.txt
npy_vals con/concept_std.npy > std.txt
npy_vals con/brain_maps.npy > maps.txt
st_vals fit/model.safetensors head.weight f4 > headw.txt
awk -v C=$C -v D=$D -v V=$V 'FILENAME == ARGV[1] { m[FNR - 1] = $1; next } FILENAME == ARGV[2] { w[FNR - 1] = $1; next }
  { x[FNR - 1] = $1 }
  END { for (c = 0; c < C; ++c) for (v = 0; v < V; ++v) {
          s = 0; for (d = 0; d < D; ++d) s += m[c * D + d] * w[v * D + d]
          e = s - x[c * V + v]; if (e < 0) e = -e; a = s < 0 ? -s : s
          if (e > 1e-6 * (1 + a)) { print "brain map", c, v, s, x[c * V + v]; bad = 1 } }
        exit bad }' mean.txt headw.txt maps.txt || fail "brain maps are not head.weight x concept means"

# Nearest centre, the median radius and the sphere members, from the embedding and concepts.json.
npy_vals con/embedding.npy > emb.txt
npy_vals con/nearest.npy > near.txt
npy_vals con/concepts.npy > member.txt
centres=$(grep -o '"centre_node": [0-9]*' con/concepts.json | grep -o '[0-9]*$' | tr '\n' ' ')
radius=$(grep -m1 -o '"radius": [-0-9.e+]*' con/concepts.json | grep -o '[-0-9.e+]*$')
awk -v cen="$centres" 'FILENAME == ARGV[1] { e[FNR - 1] = $1; next } { near[FNR - 1] = $1 }
  END { C = split(cen, c, " "); n = length(near)
        for (i = 0; i < n; ++i) { best = -1
          for (k = 1; k <= C; ++k) { d = 0; for (j = 0; j < 3; ++j) d += (e[i * 3 + j] - e[c[k] * 3 + j]) ^ 2
            if (best < 0 || d < bd) { best = k - 1; bd = d } }
          if (best != near[i]) { print "node", i, "nearest", best, "file says", near[i]; exit 1 }
          printf "%.17g\n", sqrt(bd) > "dmin.txt" } }' emb.txt near.txt || fail "nearest centres"
median=$(sort -g dmin.txt | awk '{ v[NR] = $1 } END { printf "%.17g", (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
awk -v a="$median" -v b="$radius" 'BEGIN { e = a - b; exit !(e < 1e-12 && e > -1e-12) }' ||
  fail "radius $radius is not the median nearest-centre distance $median"
paste dmin.txt near.txt member.txt | awk -v r="$radius" '{ want = ($1 <= r) ? $2 : -1; if (want != $3) exit 1 }' ||
  fail "sphere members"

st_vals con/aligned.safetensors features.4 f4 > al0.txt
st_vals con/aligned.safetensors features.7 f4 > al1.txt
# The aligned maps are W_l f_l (align.l (16, c_l) times the tap's (6, c_l, h, w) maps).
for l in 0 1; do
  key=$( ((l == 0)) && echo features.4 || echo features.7) cin=$( ((l == 0)) && echo 12 || echo 16) P=$( ((l == 0)) && echo 49 || echo 9)
  st_vals feats.safetensors $key f4 > f$l.txt
  st_vals fit/model.safetensors align.$l f4 > w$l.txt
  awk -v D=$D -v K=$cin -v P=$P 'FILENAME == ARGV[1] { f[FNR - 1] = $1; next } FILENAME == ARGV[2] { w[FNR - 1] = $1; next }
    { a[FNR - 1] = $1 }
    END { for (b = 0; b < 6; ++b) for (d = 0; d < D; ++d) for (p = 0; p < P; ++p) {
            s = 0; for (k = 0; k < K; ++k) s += w[d * K + k] * f[(b * K + k) * P + p]
            e = s - a[(b * D + d) * P + p]; if (e * e > 1e-10 * (1 + s * s)) { print b, d, p, s, a[(b * D + d) * P + p]; exit 1 } } }' \
    f$l.txt w$l.txt al$l.txt || fail "aligned $key is not align.$l x the features"
done

# Each concept's mean and std over its sphere, from the aligned maps (node order: layer, image, row, col).
awk -v C=$C -v D=$D 'FILENAME == ARGV[1] { a0[FNR - 1] = $1; next } FILENAME == ARGV[2] { a1[FNR - 1] = $1; next }
  FILENAME == ARGV[3] { mem[FNR - 1] = $1; next } FILENAME == ARGV[4] { m[FNR - 1] = $1; next } { sd[FNR - 1] = $1 }
  function z(node, d,   b, p) {  # features.4 maps are (6, 16, 7, 7), features.7 (6, 16, 3, 3)
    if (node < 294) { b = int(node / 49); p = node % 49; return a0[(b * D + d) * 49 + p] }
    node -= 294; b = int(node / 9); p = node % 9; return a1[(b * D + d) * 9 + p] }
  END { for (c = 0; c < C; ++c) for (d = 0; d < D; ++d) {
          n = 0; s = 0; q = 0
          for (i = 0; i < 348; ++i) if (mem[i] == c) { x = z(i, d); n++; s += x; q += x * x }
          if (n == 0) { print "empty concept", c; exit 1 }
          mu = s / n; var = q / n - mu * mu; sdv = sqrt(var > 0 ? var : 0)
          e1 = mu - m[c * D + d]; e2 = sdv - sd[c * D + d]
          if (e1 * e1 > 1e-10 * (1 + mu * mu) || e2 * e2 > 1e-8 * (1 + sdv * sdv)) {
            print "concept", c, "channel", d, mu, m[c * D + d], sdv, sd[c * D + d]; exit 1 } } }' \
  al0.txt al1.txt member.txt mean.txt std.txt || fail "concept means and stds disagree with the aligned maps"

# Trajectories on the finer (7 x 7) grid: the layer-1 (3 x 3) cell of (i, j) is ((2i+1)*3 // 14, ...);
# transitions are their row-normalised counts.
npy_vals con/trajectories.npy > traj.txt
npy_vals con/transitions.npy > trans.txt
[[ $(npy_shape con/trajectories.npy) == "(6, 7, 7, 2)" && $(npy_shape con/transitions.npy) == "(1, 5, 5)" ]] ||
  fail "trajectory shapes $(npy_shape con/trajectories.npy) $(npy_shape con/transitions.npy)"
awk -v C=$C 'FILENAME == ARGV[1] { near[FNR - 1] = $1; next } FILENAME == ARGV[2] { t[FNR - 1] = $1; next } { T[FNR - 1] = $1 }
  END { for (b = 0; b < 6; ++b) for (i = 0; i < 7; ++i) for (j = 0; j < 7; ++j) {
          k = ((b * 7 + i) * 7 + j) * 2; ii = int((2 * i + 1) * 3 / 14); jj = int((2 * j + 1) * 3 / 14)
          if (t[k] != near[(b * 7 + i) * 7 + j] || t[k + 1] != near[294 + (b * 3 + ii) * 3 + jj]) { print "cell", b, i, j; exit 1 }
          cnt[t[k], t[k + 1]]++; row[t[k]]++ }
        for (a = 0; a < C; ++a) for (c = 0; c < C; ++c) {
          want = row[a] > 0 ? cnt[a, c] / row[a] : 0; e = want - T[a * C + c]
          if (e * e > 1e-20) { print "transition", a, c, want, T[a * C + c]; exit 1 } } }' \
  near.txt traj.txt trans.txt || fail "trajectories or transitions"
echo "cli_concepts: recomputed checks passed (radius $radius)"

# --ncut: a file with the same embedding as its tsne (and node_input) gives the same concepts.
npy_raw con/embedding.npy > emb.raw
head -c $((300 * 3 * 8)) emb.raw > emb300.raw
i8_raw $(for ((i = 0; i < N; ++i)); do (( i < 294 )) && echo 0 || echo 1; done) > ni.raw
i8_raw $(for ((i = 0; i < N; ++i)); do (( i < 294 || i == 300 )) && echo 0 || echo 1; done) > ni_bad.raw
st_write eig.safetensors eigenvectors:F64:$N,3:emb.raw tsne:F64:$N,3:emb.raw node_input:I64:$N:ni.raw
st_write eig_badinput.safetensors eigenvectors:F64:$N,3:emb.raw node_input:I64:$N:ni_bad.raw
st_write eig_short.safetensors eigenvectors:F64:300,3:emb300.raw
cp con/embedding.npy emb64.npy
"$cortex" "${run[@]}" --out con2 --ncut eig.safetensors > out2.txt 2> log2.txt || { cat log2.txt >&2; fail "concepts --ncut"; }
grep -q "its tsne" con2/concepts.json || fail "--ncut did not use the file's tsne"
cmp -s con/concepts.npy con2/concepts.npy || fail "--ncut with the same embedding gave other concepts"
cmp -s con/brain_maps.npy con2/brain_maps.npy || fail "--ncut with the same embedding gave other brain maps"
"$cortex" "${run[@]}" --out con3 --ncut eig.safetensors --space eigenvectors --tsne-dims 2 > /dev/null 2>&1 ||
  fail "concepts --space eigenvectors"
grep -q '"space": "eigenvectors"' con3/concepts.json || fail "--space eigenvectors not recorded"

# expect_error TEXT ARGS...: exit non-zero, one line on stderr containing TEXT, no output folder.
expect_error() {
  local text=$1
  shift
  rm -rf bad
  if "$cortex" "$@" --out bad > /dev/null 2> err.txt; then fail "expected an error for: $*"; fi
  [[ $(wc -l < err.txt) -eq 1 ]] || { cat err.txt >&2; fail "expected one line of error for: $*"; }
  grep -qF -- "$text" err.txt || fail "expected '$text' in: $(cat err.txt)"
  [[ ! -e bad ]] || fail "an output folder was left after: $*"
}
base=(concepts --features feats.safetensors --model fit/model.safetensors --concepts 5 --tsne-samples 300)
expect_error "expected a channel-align model file" concepts --features feats.safetensors --key features.4,features.7 \
  --model ridge/model.safetensors
expect_error "aligns taps 'features.4,features.7', --key gives 'features.7,features.4'" "${base[@]}" \
  --key features.7,features.4
expect_error "has no tensor 'features.9'" "${base[@]}" --key features.4,features.9
expect_error "expected (348, k)" "${base[@]}" --key features.4,features.7 --ncut eig_short.safetensors
expect_error "node 300 comes from input 0, expected layer 1" "${base[@]}" --key features.4,features.7 \
  --ncut eig_badinput.safetensors
expect_error "expected uint8 (6, H, W, 3) images" "${base[@]}" --key features.4,features.7 --images emb64.npy
expect_error "expected 1 <= concepts <= N = 348, found 400" concepts --features feats.safetensors \
  --model fit/model.safetensors --key features.4,features.7 --concepts 400 --tsne-samples 300
expect_error "expected a voxel column in [0, 20)" "${base[@]}" --key features.4,features.7 --rois badrois.json
echo "cli_concepts: all checks passed"
