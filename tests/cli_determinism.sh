#!/usr/bin/env bash
# `cortex fit` gives the same bytes at any thread count (docs/determinism.md): the three fits of
# `make demo` (scripts/demo.sh: ridge on pooled AlexNet features, a Gaussian readout, a trained
# conv core) at a small size, with OMP_NUM_THREADS = 1, 2, 3 and 8; predictions, model file and
# the metrics' r values must be identical.
# Usage: tests/cli_determinism.sh path/to/cortex   (ctest runs it as cli_determinism)
set -euo pipefail
cortex=$(realpath "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "cli_determinism: FAIL: $*" >&2; exit 1; }

OMP_NUM_THREADS=2 "$cortex" simulate --out sim --train 120 --test 30 --voxels 60 --image-size 32 --seed 1 > /dev/null
data=sim/subj01
backbone=(--arch alexnet --random-weights 1 --image-size 64)
declare -A args=(
  [ridge]="${backbone[*]} --tap features.5 --pool 4 --folds 3"
  [gaussian]="${backbone[*]} --readout gaussian --tap features.4 --epochs 2"
  [core]="--readout core --core-size 16 --epochs 2"
)
for name in ridge gaussian core; do
  for t in 1 2 3 8; do
    # shellcheck disable=SC2086
    OMP_NUM_THREADS=$t "$cortex" fit --data "$data" --hemi both --out "out/$name.$t" ${args[$name]} \
      > /dev/null 2> "log.$name.$t" || { cat "log.$name.$t" >&2; fail "fit $name with $t threads exited with $?"; }
    if [[ $t != 1 ]]; then
      for f in predictions.npy model.safetensors; do
        cmp -s "out/$name.1/$f" "out/$name.$t/$f" || fail "fit $name: $f differs between 1 and $t threads"
      done
      [[ $(jq -c '[.r, .r2, .mean_r]' "out/$name.1/metrics.json") == "$(jq -c '[.r, .r2, .mean_r]' "out/$name.$t/metrics.json")" ]] ||
        fail "fit $name: metrics differ between 1 and $t threads"
    fi
  done
  echo "cli_determinism: $name: identical with 1, 2, 3 and 8 threads"
done
