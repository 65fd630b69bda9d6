#!/usr/bin/env bash
# `cortex concepts` end to end: simulated scenes through a tiny AlexNet, a tiny channel-align fit,
# then concepts and trajectories. Checked against NumPy recomputations from the input files
# (aligned activations W_l f_l, each concept's mean and std over its sphere, brain maps head.weight
# x mean, transition counts from the per-pixel trajectories); the --ncut path with a given embedding
# must give the same concepts; mistakes end with one line, a non-zero exit and no output folder.
# Usage: tests/cli_concepts.sh path/to/cortex   (ctest runs it as cli_concepts; needs python3 + numpy)
set -euo pipefail
cortex=$(realpath "$1")
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

python3 - <<'EOF' || fail "the outputs disagree with NumPy recomputations"
import json, struct, numpy as np

def safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    dt = {"F32": np.float32, "F64": np.float64, "I64": np.int64}
    return {k: np.frombuffer(b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dt[v["dtype"]]).reshape(v["shape"])
            for k, v in h.items() if k != "__metadata__"}

f, m = safetensors("feats.safetensors"), safetensors("fit/model.safetensors")
keys = ["features.4", "features.7"]
z = np.concatenate([np.einsum("dc,bchw->bhwd", m[f"align.{l}"].astype(np.float64), f[k].astype(np.float64))
                    .reshape(-1, m["align.0"].shape[0]) for l, k in enumerate(keys)])
al = safetensors("con/aligned.safetensors")
for l, k in enumerate(keys):
    ref = np.einsum("dc,bchw->bdhw", m[f"align.{l}"].astype(np.float64), f[k].astype(np.float64))
    assert al[k].shape == ref.shape and np.allclose(al[k], ref, rtol=1e-5, atol=1e-5), k
member, near = np.load("con/concepts.npy"), np.load("con/nearest.npy")
mean, std, maps = np.load("con/concept_mean.npy"), np.load("con/concept_std.npy"), np.load("con/brain_maps.npy")
emb, j = np.load("con/embedding.npy"), json.load(open("con/concepts.json"))
C = 5
assert z.shape == (348, 16) and member.shape == (348,) and emb.shape == (348, 3), (z.shape, member.shape, emb.shape)
cen = np.array([c["centre_node"] for c in j["list"]])
d = np.linalg.norm(emb[:, None, :] - emb[cen][None], axis=2)
assert (near == d.argmin(1)).all(), "nearest centre"
r = np.quantile(d.min(1), 0.5)
assert abs(j["radius"] - r) < 1e-12, (j["radius"], r)
assert (member == np.where(d.min(1) <= r, near, -1)).all(), "sphere members"
for c in range(C):
    zc = z[member == c]
    assert len(zc) == j["list"][c]["count"] >= 1
    assert np.allclose(mean[c], zc.mean(0), rtol=1e-5, atol=1e-5), c
    assert np.allclose(std[c], zc.std(0), rtol=1e-4, atol=1e-5), c
ref = mean @ m["head.weight"].astype(np.float64).T
assert np.allclose(maps, ref, rtol=1e-12, atol=1e-12), "brain maps"
assert np.allclose(np.array([c["brain_map"] for c in j["list"]]), maps)
# Trajectories on the finer (7x7) grid: layer 1 (3x3) cell of (i, j) is ((2i+1)*3 // 14, ...).
tr, T = np.load("con/trajectories.npy"), np.load("con/transitions.npy")
assert tr.shape == (6, 7, 7, 2) and T.shape == (1, C, C)
a = near[:294].reshape(6, 7, 7)
b = near[294:].reshape(6, 3, 3)
idx = (2 * np.arange(7) + 1) * 3 // 14
assert (tr[..., 0] == a).all() and (tr[..., 1] == b[:, idx][:, :, idx]).all(), "trajectories"
cnt = np.zeros((C, C))
np.add.at(cnt, (tr[..., 0].ravel(), tr[..., 1].ravel()), 1)
rows = cnt.sum(1, keepdims=True)
assert np.allclose(T[0], np.where(rows > 0, cnt / np.maximum(rows, 1), 0)), "transitions"
print(f"cli_concepts: numpy checks passed (radius {r:.4f}, members {[c['count'] for c in j['list']]})")
np.save("emb64.npy", emb)
EOF

# --ncut: a file with the same embedding as its tsne (and node_input) gives the same concepts.
python3 - <<'EOF'
import json, struct, numpy as np
emb = np.load("emb64.npy")
def write(path, arrays):
    header, off, blobs = {}, 0, []
    for k, a in arrays.items():
        b = np.ascontiguousarray(a).tobytes()
        header[k] = {"dtype": {"float64": "F64", "float32": "F32", "int64": "I64"}[str(a.dtype)], "shape": list(a.shape),
                     "data_offsets": [off, off + len(b)]}
        off += len(b); blobs.append(b)
    h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
ni = np.concatenate([np.zeros(294, np.int64), np.ones(54, np.int64)])
write("eig.safetensors", {"eigenvectors": emb.astype(np.float32), "tsne": emb, "node_input": ni})
ni[300] = 0
write("eig_badinput.safetensors", {"eigenvectors": emb.astype(np.float32), "node_input": ni})
write("eig_short.safetensors", {"eigenvectors": emb[:300].astype(np.float32)})
EOF
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
