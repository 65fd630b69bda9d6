#!/usr/bin/env bash
# `make bench`'s generator end to end on a QUICK run (one thread, two rounds, the rows marked quick):
# scripts/bench.sh writes a well-formed RESULTS.md and results.json into a temporary directory (never
# the repository's), each ratio is peer / cortex of its round, `compare` passes a run against itself
# and fails it against a baseline whose spreads exclude it, and a peer whose Python module is missing
# leaves its row without a ratio, saying so; the chance `compare` states matches counting (this part
# needs no torch). Skipped (exit 77) without python3 or torch.
# Usage: tests/bench_tables.sh BUILD_DIR   (the bench_models, bench_attention, bench_autograd targets built)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:?usage: bench_tables.sh BUILD_DIR}" && pwd)
command -v python3 >/dev/null || { echo "SKIP: no python3 (the peers are Python)"; exit 77; }
# within_probability (what `compare` states as the chance of a rerun landing inside the spreads) against
# counting: every way the n + m pooled rounds' ranks split between baseline and new run is equally likely.
python3 - "$root/scripts" <<'PY'
import itertools, math, sys
sys.path.insert(0, sys.argv[1])
import bench_tables
for n, m in [(1, 1), (1, 3), (3, 3), (5, 5), (5, 3), (3, 7), (7, 5), (4, 5)]:
    inside = total = 0
    for new in itertools.combinations(range(n + m), m):
        base = sorted(set(range(n + m)) - set(new))
        total += 1
        inside += base[0] <= new[m // 2] <= base[-1]
    p = bench_tables.within_probability(n, m)
    assert math.isclose(p, inside / total, abs_tol=1e-12), (n, m, p, inside / total)
assert math.isclose(bench_tables.within_probability(5, 5), 5 / 6) and bench_tables.within_probability(5, 4) is None
print("within_probability: matches counting")
PY
python3 -c "import torch, numpy" 2>/dev/null || { echo "SKIP: python3 has no torch/numpy (the peers need them)"; exit 77; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
repo_results=$(sha1sum "$root/bench/RESULTS.md" 2>/dev/null || true)

# Its own four tables (bench/tables.py's others need more binaries; the same code renders them).
QUICK=1 ROUNDS=2 THREADS=1 TABLES=backbones,attention,autograd,autodiff OUT_DIR="$d/out" WORK_DIR="$d/work" NOTE="ctest smoke run" \
  "$root/scripts/bench.sh" "$build" | tee "$d/console.txt"
md=$d/out/RESULTS.md
[[ -s $md && -s $d/out/results.json ]] || fail "no RESULTS.md / results.json in $d/out"
[[ -z $(find "$d/out" -name '*.tmp*') ]] || fail "a temporary file was left behind"
[[ $(sha1sum "$root/bench/RESULTS.md" 2>/dev/null || true) == "$repo_results" ]] || fail "the repository's RESULTS.md changed"
grep -q '^    QUICK=1 ROUNDS=2 THREADS="1" TABLES=backbones,attention,autograd,autodiff scripts/bench.sh ' "$md" || fail "the header does not give the command"
grep -q 'Conditions: ctest smoke run' "$md" || fail "the header does not state the conditions"
for h in '## Backbones' '## Fused attention' '## Encoder Jacobian' '## Autodiff overhead'; do
  grep -q "^$h" "$md" || fail "no table '$h'"
done
grep -Eq '^\| AlexNet, batch 1 \| 1 \| [0-9.]+ ms \| [0-9.]+ ms \| \*\*[0-9]+\.[0-9]{2}\*\* \| [0-9.]+–[0-9.]+ \| [0-9.]+ \|$' "$md" ||
  fail "the AlexNet row is not 'name | threads | cortex | peer | **ratio** | spread | CPU ratio'"
grep -Eq '^\| MLP forward \| 1 \| [0-9.]+ ms \| [0-9.]+ ms – [0-9.]+ ms \|$' "$md" || fail "the cortex-only row is malformed"

python3 - "$d/out/results.json" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
m = r["meta"]
assert m["commit"] != "unknown" and m["cpu"] and m["compiler"] and "-O" in m["flags"], m
assert m["packages"]["torch"], m["packages"]
rows = [row for t in r["tables"] for row in t["rows"]]
assert len(rows) == 4, [row["row"] for row in rows]
for row in rows:
    assert row["threads"] == 1 and not row["error"] and len(row["rounds"]) == 2, row
    for k in row["rounds"]:
        assert k["cortex_s"] > 0 and k["cortex_iterations"] >= 1, k
        if not row["peer_skipped"]:
            assert abs(k["ratio"] - k["peer_s"] / k["cortex_s"]) < 1e-12, k
    if not row["peer_skipped"]:
        ratios = [k["ratio"] for k in row["rounds"]]
        assert row["median_ratio"] == statistics.median(ratios) and row["min_ratio"] == min(ratios), row
print("results.json: well formed")
PY

# compare: a run is within its own spread; a baseline whose spreads exclude it fails.
python3 "$root/scripts/bench_tables.py" compare "$d/out/results.json" "$d/out/results.json" >"$d/self.txt" ||
  { cat "$d/self.txt"; fail "compare of a run with itself failed"; }
grep -q '^4 within, 0 outside' "$d/self.txt" || fail "compare did not count 4 rows within"
python3 - "$d/out/results.json" "$d/shifted.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for t in r["tables"]:
    for row in t["rows"]:
        for k in ("min_ratio", "max_ratio", "cortex_min_s", "cortex_max_s"):
            if row.get(k) is not None:
                row[k] *= 10
json.dump(r, open(sys.argv[2], "w"))
PY
if python3 "$root/scripts/bench_tables.py" compare "$d/out/results.json" "$d/shifted.json" >"$d/shifted.txt"; then
  fail "compare accepted medians outside the baseline's spread"
fi
grep -q '^0 within, 4 outside' "$d/shifted.txt" || { cat "$d/shifted.txt"; fail "compare did not find 4 rows outside"; }

# A peer whose module is missing: the row keeps cortex's time and says which module it lacks.
cat >"$d/spec.py" <<'PY'
TABLES = [{"key": "missing", "title": "Missing peer", "about": "a test", "binary": "bench_autograd",
           "peer": {"script": "bench/peers/autograd_peer.py", "args": [], "needs": ["no_such_module_cortex"]},
           "min_time": 0.0, "warmup": False,
           "rows": [{"row": "forward mode", "cortex": "BM_encoder_jacobian_forward_nograd/real_time",
                     "peer": "encoder_jacobian forward cpu", "quick": True}]}]
PY
python3 "$root/scripts/bench_tables.py" run --build "$build" --spec "$d/spec.py" --quick --rounds 1 --threads 1 \
  --out-dir "$d/missing" --work-dir "$d/work" >/dev/null
grep -Eq '^\| forward mode \| 1 \| [0-9.]+ ms \| peer skipped: Python module no_such_module_cortex not installed \| — \| — \| — \|$' \
  "$d/missing/RESULTS.md" || { cat "$d/missing/RESULTS.md"; fail "the missing peer is not reported in its row"; }
# Sections written by other scripts (bench-mpi.sh, bench-ncut-scale.sh) survive a regeneration.
mkdir -p "$d/kept"
printf '%s\n' '# old' '<!-- bench-mpi:begin -->' MPI '<!-- bench-mpi:end -->' x '<!-- bench-ncut-scale:begin -->' NCUT \
  '<!-- bench-ncut-scale:end -->' >"$d/kept/RESULTS.md"
python3 - "$root/scripts" "$d/kept" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import bench_tables
k = bench_tables.kept_sections(sys.argv[2])
assert "MPI" in k and "NCUT" in k and "# old" not in k and "x\n" not in k, k
PY

# bench/ncut_scale (scripts/bench-ncut-scale.sh's cortex side): its flags are checked.
if [[ -x $build/bench/ncut_scale ]]; then
  "$build/bench/ncut_scale" --help | grep -q '^usage: ncut_scale' || fail "ncut_scale --help gives no usage"
  for bad in "--bogus 1" "--n 0" "--n 10 --k 20" "--n 100 --accuracy 101" "--m"; do
    # shellcheck disable=SC2086
    rc=0; "$build/bench/ncut_scale" $bad >/dev/null 2>"$d/err" || rc=$?
    [[ $rc == 2 && -s $d/err ]] || fail "ncut_scale $bad: expected exit 2 with a message, found exit $rc"
  done
fi
echo "bench_tables.sh: OK"
