#!/usr/bin/env bash
# Regenerates bench/RESULTS.md (and bench/results.json): every C++ benchmark of bench/tables.py run
# beside its Python peer, interleaved, for ROUNDS rounds at each of THREADS (scripts/bench_tables.py).
#   scripts/bench.sh [BUILD_DIR]           what `make bench` runs (after building the bench targets)
#   scripts/bench.sh [BUILD_DIR] --check   a new run into out/bench/check/ (the settings of the committed
#                                          run), then whether each median falls within the spread
#                                          bench/results.json states (exit 1 if not); CHECK_AGAINST=DIR
#                                          checks against DIR/results.json instead (another
#                                          machine's table, e.g. bench/epyc-avx2); it also prints the
#                                          chance of all rows within from the rounds' count alone
# Settings (environment): ROUNDS (default 3; 2 with QUICK), THREADS (default "1 2"), QUICK=1 (a
# one-minute smoke run of the rows marked quick), TABLES=backbones,ridge (a subset), OUT_DIR (where
# RESULTS.md and results.json go; default bench/), NOTE="..." (conditions to state in the header, e.g.
# "loaded machine: other builds running"), WORK_DIR (the log of every run, bench.log; default out/bench).
# Peers need python3 with torch/numpy (some: scipy, scikit-learn, ncut-pytorch); a row whose peer's
# modules are missing is written without its ratio, saying which module is missing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=build
check=0
for a in "$@"; do
  case $a in
    --check) check=1 ;;
    -*) echo "bench.sh: unknown option $a (usage: scripts/bench.sh [BUILD_DIR] [--check])" >&2; exit 2 ;;
    *) build=$a ;;
  esac
done
command -v python3 >/dev/null || { echo "bench.sh: python3 is needed (it runs the peers)" >&2; exit 2; }

# The command as written in RESULTS.md's header: the settings that differ from the defaults.
env_prefix=""
[[ -n ${QUICK:-} && ${QUICK} != 0 ]] && env_prefix+="QUICK=1 "
[[ -n ${ROUNDS:-} ]] && env_prefix+="ROUNDS=$ROUNDS "
[[ -n ${THREADS:-} ]] && env_prefix+="THREADS=\"$THREADS\" "
[[ -n ${TABLES:-} ]] && env_prefix+="TABLES=$TABLES "
cmd="${env_prefix}scripts/bench.sh"
[[ $build != build ]] && cmd="$cmd $build"
[[ $cmd == scripts/bench.sh ]] && cmd="make bench   (= scripts/bench.sh build)"

build_abs=$build
[[ -d $build ]] && build_abs=$(cd "$build" && pwd)
args=(run --build "$build_abs" --command "$cmd" --note "${NOTE:-}" --work-dir "${WORK_DIR:-out/bench}")
[[ -n ${THREADS:-} ]] && args+=(--threads "$THREADS")
[[ -n ${ROUNDS:-} ]] && args+=(--rounds "$ROUNDS")
[[ -n ${QUICK:-} && ${QUICK} != 0 ]] && args+=(--quick)
[[ -n ${TABLES:-} ]] && args+=(--tables "$TABLES")
cd "$root"
if ((check)); then
  out=${OUT_DIR:-out/bench/check}
  rc=0
  # The committed run's rounds, threads and tables, unless the environment says otherwise.
  base=${CHECK_AGAINST:-bench}/results.json
  [[ -f $base ]] || { echo "bench.sh: no committed run to check against: $base not found" >&2; exit 2; }
  python3 scripts/bench_tables.py "${args[@]}" --like "$base" --out-dir "$out" || rc=$?
  python3 scripts/bench_tables.py compare "$out/results.json" "$base" || rc=1
  exit $rc
fi
exec python3 scripts/bench_tables.py "${args[@]}" --out-dir "${OUT_DIR:-bench}"
