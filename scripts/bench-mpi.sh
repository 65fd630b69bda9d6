#!/usr/bin/env bash
# Strong scaling of the sharded jobs (docs/distributed.md) on this machine: each job on one
# simulated problem as one plain process and with 2 MPI ranks (mpirun, one OpenMP thread per rank),
# wall-clock time of the whole command (process start, input reading and output writing included)
# and the bytes each rank sent and received (counted by dist/comm.cpp, printed by cortex at exit).
# Writes the table into bench/RESULTS.md between the bench-mpi markers (kept by make bench).
# Usage: scripts/bench-mpi.sh [build-dir]   (ROUNDS=3: the median of that many runs per row)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$root/build}")
cortex=$build/cli/cortex
rounds=${ROUNDS:-3}
[[ -x $cortex ]] || { echo "bench-mpi: no $cortex (cmake --build $build --target cortex)" >&2; exit 1; }
command -v mpirun > /dev/null || { echo "bench-mpi: no mpirun (apt-get install openmpi-bin)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "bench-mpi: no /usr/bin/time (apt-get install time)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
models=$root/tests/data/models
load0=$(cut -d' ' -f1 /proc/loadavg)

echo "bench-mpi: simulating the data" >&2
"$cortex" simulate --out sim --train 1200 --test 600 --voxels 4000 --image-size 32 --seed 1 > /dev/null
data=sim/subj01
"$cortex" fit --data "$data" --hemi both --tap pixels --image-size 16 --readout two-layer --hidden 128 --epochs 2 \
  --out two > /dev/null 2>&1
"$cortex" features --config "$models/alexnet.json" --weights "$models/alexnet.safetensors" \
  --images "$data/test_split/test_images" --taps features.4 --image-size 64 --out f.safetensors > /dev/null 2>&1

declare -A jobs=(
  [features]="features --config $models/alexnet.json --weights $models/alexnet.safetensors --images $data/training_split/training_images --taps features.4 --image-size 64 --batch 16 --out OUT/f.safetensors"
  [fit_ridge]="fit --data $data --hemi both --tap pixels --image-size 32 --folds 5 --out OUT"
  [ncut_nystrom]="ncut --input f.safetensors --key features.4 --k 10 --method nystrom --samples 1000 --knn 10 --chunk 1024 --out OUT/e.safetensors"
  [linbridge]="linbridge --model two/model.safetensors --data $data --block 64 --out OUT"
  [linbridge_autodiff]="linbridge --model two/model.safetensors --data $data --block 64 --autodiff --out OUT"
  [attribute]="attribute --model two/model.safetensors --images $data --index 0-99 --voxels 0-7 --steps 50 --out OUT"
)
declare -A what=(
  [features]="1200 images, tiny AlexNet (tests/data/models) at 64 px, batches of 16"
  [fit_ridge]="1200 x 1024 pixels -> 4000 voxels, 5 folds x 8 penalties (dual form)"
  [ncut_nystrom]="29,400 nodes x 12 dims, m = 1000 samples, k = 10, KNN 10"
  [linbridge]="600 stimuli, two-layer 256 -> 128 -> 4000, closed form"
  [linbridge_autodiff]="the same by autodiff (forward mode, 256 directions per stimulus)"
  [attribute]="100 images x 8 voxels, 50 steps, the same two-layer model on 16 px pixels"
)
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rows=""
for job in features fit_ridge ncut_nystrom linbridge linbridge_autodiff attribute; do
  declare -A t=() c=()
  for k in 1 2; do
    times=() cpus=()
    for r in $(seq "$rounds"); do
      out=out.$job.$k.$r
      mkdir -p "$out"
      # shellcheck disable=SC2086
      args=${jobs[$job]//OUT/$out}
      # Wall-clock and CPU seconds (user + system of every rank: mpirun waits for them).
      if [[ $k == 1 ]]; then
        /usr/bin/time -f "%e %U %S" -o "$out.time" "$cortex" $args > /dev/null 2> "$out.log"
      else
        /usr/bin/time -f "%e %U %S" -o "$out.time" mpirun --oversubscribe --allow-run-as-root -np "$k" "$cortex" $args \
          > /dev/null 2> "$out.log"
      fi
      times+=("$(awk '{print $1}' "$out.time")")
      cpus+=("$(awk '{print $2 + $3}' "$out.time")")
    done
    t[$k]=$(printf '%s\n' "${times[@]}" | median)
    c[$k]=$(printf '%s\n' "${cpus[@]}" | median)
  done
  # Bytes of rank 0 and rank 1 in the last 2-rank round (MB).
  log=out.$job.2.$rounds.log
  r0=$(grep -o "rank 0/2: sent [0-9.]* MB, received [0-9.]* MB" "$log" | sed 's/rank 0\/2: //')
  r1=$(grep -o "rank 1/2: sent [0-9.]* MB, received [0-9.]* MB" "$log" | sed 's/rank 1\/2: //')
  sp=$(awk -v a="${t[1]}" -v b="${t[2]}" 'BEGIN {printf "%.2f", a / b}')
  rows+="| ${job//_/ } | ${what[$job]} | $(printf %.2f "${t[1]}") | $(printf %.2f "${t[2]}") | $sp | $(printf %.2f "${c[1]}") | $(printf %.2f "${c[2]}") | $r0 | $r1 |"$'\n'
  echo "bench-mpi: $job: 1 process ${t[1]} s (CPU ${c[1]} s), 2 ranks ${t[2]} s (CPU ${c[2]} s); rank 0 $r0; rank 1 $r1" >&2
done
load1=$(cut -d' ' -f1 /proc/loadavg)
/usr/bin/time -f "%e" -o startup.time mpirun --oversubscribe --allow-run-as-root -np 2 true
startup=$(cat startup.time)

section="<!-- bench-mpi:begin -->
## MPI ranks: strong scaling of the sharded jobs, CPU, 1 process vs 2 ranks

**CPU figures on the shared 2-vCPU build machine** (load average $load0 at the start, $load1 at
the end; other sessions were building), $(date -u '+%Y-%m-%d %H:%M UTC'), commit
$(git -C "$root" rev-parse --short HEAD). Written by \`scripts/bench-mpi.sh\` (not by make bench,
which keeps this section). Wall-clock seconds of the whole command, the median of $rounds runs;
one OpenMP thread per rank (\`OMP_NUM_THREADS=1\`), so 2 ranks can use both cores when they are
free; speed-up = 1 process / 2 ranks, wall-clock. On a loaded machine the wall-clock mostly
measures the other sessions: read the CPU columns (user + system seconds of all ranks together;
a rank waiting in MPI spins and counts), whose growth from 1 to 2 ranks is the work the ranks
repeat plus the waiting. \`mpirun -np 2\` alone (start-up and exit of two empty processes) took
${startup} s. Bytes: what each rank handed to MPI and got from it (dist/comm.cpp counts the
payload and 8-byte length headers; a broadcast counts the root's bytes once per receiving rank).
The problems are kept small (seconds), so each rank's fixed costs (process start-up, reading
the inputs, the parts every rank repeats: docs/distributed.md) weigh heavily; they say little
about scaling at size. What each job moves, as formulas, and how it scales to 64 ranks:
docs/distributed.md.

| job | problem | 1 process (s) | 2 ranks (s) | speed-up | CPU, 1 process (s) | CPU, 2 ranks (s) | rank 0 | rank 1 |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows}<!-- bench-mpi:end -->"
res=$root/bench/RESULTS.md
python3 - "$res" "$section" <<'PY'
import sys
path, section = sys.argv[1], sys.argv[2]
text = open(path).read()
a, b = text.find("<!-- bench-mpi:begin -->"), text.find("<!-- bench-mpi:end -->")
if 0 <= a < b:
    text = text[:a] + section + text[b + len("<!-- bench-mpi:end -->"):]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path + ".tmp", "w").write(text)
import os
os.replace(path + ".tmp", path)
PY
echo "bench-mpi: wrote the table into $res" >&2
