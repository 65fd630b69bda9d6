#!/usr/bin/env bash
# The sharded jobs (docs/distributed.md) give the same bytes with 1, 2 and 3 MPI ranks as one plain
# process: cortex features, fit --readout ridge (its dual and primal forms), ncut --method nystrom,
# linbridge (closed form, autodiff in forward and reverse mode) and attribute on tiny simulated
# subjects, every output file compared with cmp (the JSON files and the report without their time
# and memory fields).
# Usage: tests/mpi_jobs.sh path/to/cortex ON|OFF   (ctest runs it as mpi_jobs, label mpi; the second
# argument says whether cortex was built with MPI). Exit 77 (skipped) without mpirun or MPI.
set -euo pipefail
cortex=$(realpath "$1")
if [[ ${2:-OFF} != ON ]]; then echo "mpi_jobs: SKIP: cortex was built without MPI (CORTEX_MPI)"; exit 77; fi
if ! command -v mpirun > /dev/null; then echo "mpi_jobs: SKIP: no mpirun (apt-get install openmpi-bin)"; exit 77; fi
data_dir=$(realpath "$(dirname "$0")/data")
tmp=$(mktemp -d)
[[ -n ${KEEP:-} ]] && echo "mpi_jobs: keeping $tmp"
trap '[[ -n ${KEEP:-} ]] || rm -rf "$tmp"' EXIT
cd "$tmp"
fail() { echo "mpi_jobs: FAIL: $*" >&2; exit 1; }
# Root in CI containers; one thread per rank (2 cores); no single-copy shared memory (containers
# often forbid the ptrace it needs).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
start=$SECONDS

# run NAME OUTDIR K ARGS...: cortex ARGS with K ranks (K = 0: a plain process, no mpirun).
run() {
  local name=$1 out=$2 k=$3
  shift 3
  if [[ $k == 0 ]]; then
    "$cortex" "$@" > "$out.stdout" 2> "$out.log" || { rc=$?; cat "$out.log" >&2; fail "$name as one process exited with $rc"; }
  else
    timeout -k 10 300 mpirun --oversubscribe --allow-run-as-root -np "$k" "$cortex" "$@" < /dev/null > "$out.stdout" 2> "$out.log" ||
      { rc=$?; cat "$out.log" >&2; fail "$name with $k ranks exited with $rc"; }
    [[ $k == 1 || $(grep -o "rank [0-9]*/$k: sent" "$out.log" | sort -u | wc -l) == "$k" ]] || { cat "$out.log" >&2; fail "$name: expected $k ranks"; }
  fi
}
# same NAME FILE...: every file of the K-rank runs equals the plain run's.
same() {
  local name=$1
  shift
  for k in 1 2 3; do
    for f in "$@"; do
      [[ -s "$name.0/$f" ]] || fail "$name: the plain run wrote no $f"
      cmp -s "$name.0/$f" "$name.$k/$f" || fail "$name: $f differs between one process and $k ranks"
    done
  done
  echo "mpi_jobs: $name: $# files identical with 1, 2 and 3 ranks ($((SECONDS - start)) s so far)"
}

"$cortex" simulate --out sim --train 300 --test 30 --voxels 300 --image-size 16 --seed 1 > /dev/null
data=sim/subj01

# features: 30 test images in 4 batches of 8, split over the ranks.
for k in 0 1 2 3; do
  mkdir -p feat.$k
  run features feat.$k $k features --config "$data_dir/models/alexnet.json" --weights "$data_dir/models/alexnet.safetensors" \
    --images "$data/test_split/test_images" --taps features.4 --image-size 64 --batch 8 --out feat.$k/f.safetensors
done
same feat f.safetensors

# fit --readout ridge on pixels at 16 px (256 features): 3 folds leave 200 training rows, the dual
# form (a 300 x 300 Gram in two column blocks); 10 folds leave 270, the primal form. 300 voxels in
# three blocks of 128.
for form in dual:3 primal:10; do
  for k in 0 1 2 3; do
    run "fit ${form%%:*}" "${form%%:*}.$k" $k fit --data "$data" --hemi both --tap pixels --image-size 16 \
      --folds "${form##*:}" --out "${form%%:*}.$k"
  done
  same "${form%%:*}" model.safetensors predictions.npy metrics.json
done

# ncut --method nystrom on the features (30 images x 7 x 7 = 1470 nodes), propagation in chunks of 50.
for k in 0 1 2 3; do
  mkdir -p ncut.$k
  run ncut ncut.$k $k ncut --input feat.0/f.safetensors --key features.4 --k 4 --method nystrom --samples 40 --knn 5 \
    --chunk 50 --out ncut.$k/e.safetensors
done
same ncut e.safetensors

# linbridge on a two-layer fit (trained as one process), 30 test images in blocks of 8.
"$cortex" fit --data "$data" --hemi both --tap pixels --image-size 16 --readout two-layer --hidden 16 --epochs 2 \
  --out two > /dev/null 2> two.log || { cat two.log >&2; fail "two-layer fit"; }
for k in 0 1 2 3; do
  run linbridge lb.$k $k linbridge --model two/model.safetensors --data "$data" --block 8 --energy-afd --out lb.$k
  jq 'del(.seconds, .ms_per_stimulus, .max_rss_bytes)' "lb.$k/linbridge.json" > "lb.$k/stats.json"
done
same lb energy_share.npy afd.npy afd_energy.npy afd_slope.npy r_full.npy r_linear.npy r2_full.npy r2_linear.npy pred_linear.npy stats.json

# linbridge's autodiff path, forward mode: a ridge fit on pooled pixels (256 inputs <= 300
# voxels) with --autodiff, 30 test images in blocks of 8 (4 units per pass).
"$cortex" fit --data "$data" --hemi both --tap pixels --image-size 16 --pool 4 --folds 3 --out rp > /dev/null 2> rp.log ||
  { cat rp.log >&2; fail "pooled ridge fit"; }
for k in 0 1 2 3; do
  run "linbridge forward" lf.$k $k linbridge --model rp/model.safetensors --data "$data" --block 8 --autodiff --energy-afd \
    --out lf.$k
  jq 'del(.seconds, .ms_per_stimulus, .max_rss_bytes)' "lf.$k/linbridge.json" > "lf.$k/stats.json"
done
same lf energy_share.npy afd.npy afd_energy.npy afd_slope.npy r_full.npy r_linear.npy pred_linear.npy stats.json

# A Gaussian readout on the tests' tiny AlexNet (64 px, features.4: 12 x 7 x 7) fitted on a smaller
# subject (6 voxels, 5 test images): linbridge's autodiff path in reverse mode, with respect to the readout's input and
# to the pixels, blocks of 2 stimuli (3 units per pass); attribute, one image per unit.
"$cortex" simulate --out small --train 24 --test 5 --voxels 6 --image-size 32 --seed 3 > /dev/null
small=small/subj01
"$cortex" fit --data "$small" --hemi both --config "$data_dir/models/alexnet.json" \
  --weights "$data_dir/models/alexnet.safetensors" --image-size 64 --tap features.4 --readout gaussian \
  --epochs 1 --out gauss > /dev/null 2> gauss.log || { cat gauss.log >&2; fail "gaussian fit"; }
for wrt in features pixels; do
  for k in 0 1 2 3; do
    run "linbridge --wrt $wrt" lg$wrt.$k $k linbridge --model gauss/model.safetensors --data "$small" --block 2 \
      --wrt $wrt --energy-afd --out lg$wrt.$k
    jq 'del(.seconds, .ms_per_stimulus, .max_rss_bytes)' "lg$wrt.$k/linbridge.json" > "lg$wrt.$k/stats.json"
  done
  same lg$wrt energy_share.npy afd.npy afd_energy.npy r_full.npy r_linear.npy pred_linear.npy stats.json
done

# attribute: the ridge fit on pixels (exact path integral) and the Gaussian readout, 3 images; the
# JSON and the report without their times.
"$cortex" fit --data "$small" --hemi both --tap pixels --image-size 16 --folds 3 --out sridge > /dev/null 2> sridge.log ||
  { cat sridge.log >&2; fail "ridge fit on the small subject"; }
for m in sridge:black gauss:mean; do
  name=attr-${m%%:*}
  for k in 0 1 2 3; do
    run "attribute ${m%%:*}" $name.$k $k attribute --model "${m%%:*}/model.safetensors" --images "$small" --index 0,2-3 \
      --voxels 0,4 --steps 3 --batch 8 --baseline "${m##*:}" --out $name.$k
    jq 'del(.seconds)' "$name.$k/attribution.json" > "$name.$k/stats.json"
    sed -E 's#<b>[-+.e0-9]+ s</b>#<b>(time)</b>#g' "$name.$k/report.html" > "$name.$k/report.txt"
  done
  same $name attributions.npy maps.npy overlay_i0_v0.png overlay_i2_v4.png overlay_i3_v0.png stats.json report.txt
done
echo "mpi_jobs: all jobs identical with 1, 2 and 3 ranks in $((SECONDS - start)) s"
