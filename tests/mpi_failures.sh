#!/usr/bin/env bash
# Failures under MPI ranks (docs/distributed.md): a rank that fails ends every rank with a non-zero
# exit and its error on one line, without a hang (also when it fails after the last collective, or
# cannot parse its arguments); ranks started with different arguments are
# refused; a job that is not sharded is refused under several ranks; nothing is written.
# Usage: tests/mpi_failures.sh path/to/cortex ON|OFF   (ctest: mpi_failures, label mpi; exit 77 =
# skipped without mpirun or an MPI build).
set -euo pipefail
cortex=$(realpath "$1")
if [[ ${2:-OFF} != ON ]]; then echo "mpi_failures: SKIP: cortex was built without MPI (CORTEX_MPI)"; exit 77; fi
if ! command -v mpirun > /dev/null; then echo "mpi_failures: SKIP: no mpirun (apt-get install openmpi-bin)"; exit 77; fi
data_dir=$(realpath "$(dirname "$0")/data")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "mpi_failures: FAIL: $*" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# timeout -k: mpirun itself is killed if it does not end on SIGTERM; stdin from /dev/null (mpirun
# forwards stdin to rank 0).
mpi=(timeout -k 10 60 mpirun --oversubscribe --allow-run-as-root --quiet)

"$cortex" simulate --out sim --train 40 --test 12 --voxels 8 --image-size 16 --seed 1 > /dev/null
imgs=sim/subj01/test_split/test_images
feats=(features --config "$data_dir/models/alexnet.json" --weights "$data_dir/models/alexnet.safetensors"
  --taps features.4 --image-size 64 --batch 4)

# A corrupt last image: only the last rank reads it (12 images, 3 batches, one per rank).
last=$(ls "$imgs" | sort | tail -1)
echo "not a png" > "$imgs/$last"
set +e
"${mpi[@]}" -np 3 "$cortex" "${feats[@]}" --images "$imgs" --out bad.safetensors < /dev/null > out.txt 2> err.txt
rc=$?
set -e
[[ $rc != 124 && $rc != 137 ]] || fail "a failing rank left the others hanging (timeout)"
[[ $rc != 0 ]] || fail "a failing rank gave exit code 0"
n=$(grep -c "cortex: rank 2: error: .*$last" err.txt || true)
[[ $n == 1 ]] || { cat err.txt >&2; fail "expected one line 'cortex: rank 2: error: ... $last', found $n"; }
grep -q "cortex: rank [01]: error" err.txt && fail "ranks 0 and 1 did not fail, yet printed an error"
[[ ! -e bad.safetensors ]] || fail "a failed job wrote its output"
echo "mpi_failures: a failing rank ends all 3 with exit $rc: $(grep -o 'cortex: rank 2.*' err.txt)"

# A failure after the last collective: only rank 0 writes, and its rename fails (a directory has the
# output's name); the others, done with their part, must still end with exit 1.
mkdir out.safetensors
set +e
"${mpi[@]}" -np 3 "$cortex" "${feats[@]}" --images sim/subj01/training_split/training_images --out out.safetensors \
  < /dev/null > out.txt 2> err.txt
rc=$?
set -e
[[ $rc != 124 && $rc != 137 ]] || fail "rank 0 failing after the last collective left the others hanging (timeout)"
[[ $rc != 0 ]] || fail "rank 0 failing after the last collective gave exit code 0"
[[ $(grep -c "cortex: rank 0: error: .*out.safetensors" err.txt) == 1 ]] ||
  { cat err.txt >&2; fail "expected one error line from rank 0 about out.safetensors"; }
grep -q "cortex: rank [12]: error" err.txt && fail "ranks 1 and 2 did not fail, yet printed an error"
rmdir out.safetensors
echo "mpi_failures: rank 0 failing after the last collective ends all 3 with exit $rc"

# A bad flag on rank 1 only (an MPMD launch): it cannot take part in the start-up checks; rank 0,
# waiting there, must end too.
set +e
"${mpi[@]}" -np 1 "$cortex" "${feats[@]}" --images "$imgs" --out a.safetensors : \
  -np 1 "$cortex" "${feats[@]}" --no-such-flag --images "$imgs" --out a.safetensors < /dev/null > out.txt 2> err.txt
rc=$?
set -e
[[ $rc != 0 && $rc != 124 && $rc != 137 ]] || fail "a bad flag on rank 1: exit code $rc"
[[ $(grep -c "cortex: rank 1: .*--no-such-flag" err.txt) == 1 ]] ||
  { cat err.txt >&2; fail "a bad flag on rank 1: expected one line from rank 1 naming it"; }
grep -q "cortex: rank 0: " err.txt && { cat err.txt >&2; fail "a bad flag on rank 1: rank 0 printed a line"; }
[[ ! -e a.safetensors ]] || fail "a job with a bad flag wrote its output"
echo "mpi_failures: a bad flag on rank 1 ends both ranks with exit $rc"

# Different arguments on rank 1 (an MPMD launch): every rank refuses, one line each.
good=sim/subj01/training_split/training_images
set +e
"${mpi[@]}" -np 1 "$cortex" "${feats[@]}" --images "$good" --out a.safetensors : \
  -np 1 "$cortex" "${feats[@]}" --images "$good" --out b.safetensors < /dev/null > out.txt 2> err.txt
rc=$?
set -e
[[ $rc != 0 && $rc != 124 && $rc != 137 ]] || fail "different arguments: exit code $rc"
for r in 0 1; do
  n=$(grep -c "cortex: rank $r: refused: rank 1 was started with different arguments" err.txt || true)
  [[ $n == 1 ]] || { cat err.txt >&2; fail "different arguments: expected one refusal line from rank $r, found $n"; }
done
[[ ! -e a.safetensors && ! -e b.safetensors ]] || fail "a refused job wrote its output"
echo "mpi_failures: different arguments refused on both ranks"

# A job that is not sharded (a trained readout; eval) is refused under several ranks.
set +e
"${mpi[@]}" -np 2 "$cortex" fit --data sim/subj01 --hemi both --tap pixels --image-size 16 --readout linear \
  --epochs 1 --out lin < /dev/null > out.txt 2> err.txt
rc=$?
set -e
[[ $rc != 0 && $rc != 124 && $rc != 137 ]] || fail "fit --readout linear under 2 ranks: exit code $rc"
[[ $(grep -c "cortex: rank [01]: error: fit: --readout linear is not sharded over MPI ranks" err.txt) -ge 1 ]] ||
  { cat err.txt >&2; fail "fit --readout linear under 2 ranks: no refusal line"; }
[[ ! -e lin/model.safetensors ]] || fail "a refused fit wrote a model"
set +e
"${mpi[@]}" -np 2 "$cortex" eval --pred nothing.npy --data sim/subj01 --out e.json < /dev/null > out.txt 2> err.txt
rc=$?
set -e
[[ $rc != 0 && $rc != 124 && $rc != 137 ]] || fail "eval under 2 ranks: exit code $rc"
[[ $(grep -c "cortex: rank [01]: eval: not sharded over MPI ranks" err.txt) == 2 ]] ||
  { cat err.txt >&2; fail "eval under 2 ranks: expected one refusal line per rank"; }
echo "mpi_failures: unsharded jobs refused under 2 ranks"
