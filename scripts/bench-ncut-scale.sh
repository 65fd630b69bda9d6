#!/usr/bin/env bash
# Issue #18's Ncut case at scale: one graph of up to 2,400,000 nodes (1,000 images x 197 patches x
# 12 layers), d = 768, AlignedCut Nystrom (m = 4,096, k = 20, K = 10) on the CPU, cortex
# (bench/ncut_scale.cpp) against ncut-pytorch (bench/peers/ncut_scale_peer.py) in the same run:
# wall and CPU seconds of the Ncut call, peak RSS of each process (one process per run, the sides
# interleaved size by size), and the accuracy of each side's Nystrom against its own exact solve on a
# subsample (cosines of the principal angles between the top-k subspaces). The features are C
# Gaussian clusters (C = k by default, so that the top-k subspace is well defined and the accuracy
# means something: with more clusters than k it is a near-degenerate choice among many). Writes the
# table into bench/RESULTS.md between the bench-ncut-scale markers (kept by make bench).
#
# Usage: scripts/bench-ncut-scale.sh [--build DIR] [--sizes 300000,600000,1200000,2400000] [--d 768]
#          [--m 4096] [--k 20] [--knn 10] [--clusters 20] [--accuracy 20000 (0: none)] [--threads T]
#          [--rounds 1] [--results FILE (default bench/RESULTS.md)] [--search-dims 64]
# --search-dims P: cortex's propagation searches neighbours on the sample's top P principal axes
# (NcutOptions::search_dims, docs/spectral.md; 0: all d features); its accuracy line is measured with it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build sizes=300000,600000,1200000,2400000 d=768 m=4096 k=20 knn=10 clusters=20 acc=20000
threads=${OMP_NUM_THREADS:-$(nproc)} rounds=1 res=$root/bench/RESULTS.md search=64
usage() { sed -n '/^# Usage:/,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  [[ $# -ge 2 ]] || { echo "bench-ncut-scale: $1 expects a value" >&2; usage; }
  case $1 in
    --build) build=$2 ;; --sizes) sizes=$2 ;; --d) d=$2 ;; --m) m=$2 ;; --k) k=$2 ;; --knn) knn=$2 ;;
    --clusters) clusters=$2 ;; --accuracy) acc=$2 ;; --threads) threads=$2 ;; --rounds) rounds=$2 ;;
    --results) res=$2 ;; --search-dims) search=$2 ;;
    *) echo "bench-ncut-scale: unknown flag '$1'" >&2; usage ;;
  esac
  shift 2
done
[[ $sizes =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "bench-ncut-scale: --sizes expects N,N,..., found '$sizes'" >&2; exit 2; }
for v in "$d" "$m" "$k" "$knn" "$clusters" "$acc" "$threads" "$rounds" "$search"; do
  [[ $v =~ ^[0-9]+$ ]] || { echo "bench-ncut-scale: expected a non-negative integer, found '$v'" >&2; exit 2; }
done
cortex=$(realpath -m "$build/bench/ncut_scale")
peer=$root/bench/peers/ncut_scale_peer.py
[[ -x $cortex ]] || { echo "bench-ncut-scale: no $cortex (cmake --build $build --target ncut_scale)" >&2; exit 1; }
python3 -c "import torch, ncut_pytorch, scipy" 2> /dev/null ||
  { echo "bench-ncut-scale: python3 with torch, scipy and ncut-pytorch is needed for the peer" >&2; exit 1; }
[[ -f $res ]] || { echo "bench-ncut-scale: no $res" >&2; exit 1; }
export OMP_NUM_THREADS=$threads
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
load0=$(cut -d' ' -f1 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
common=(--d "$d" --m "$m" --k "$k" --knn "$knn" --clusters "$clusters" --threads "$threads")

# One run: its JSON line (or {"impl", "n", "failed": exit status}) appended to $tmp/runs.jsonl.
run() {
  local impl=$1 n=$2 rc=0
  shift 2
  echo "bench-ncut-scale: $impl N = $n $*" >&2
  if [[ $impl == cortex ]]; then
    "$cortex" --n "$n" "${common[@]}" --search-dims "$search" "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
  else
    python3 "$peer" --n "$n" "${common[@]}" "$@" > "$tmp/out" 2> "$tmp/err" || rc=$?
  fi
  if [[ $rc == 0 ]]; then
    tail -n 1 "$tmp/out" | tee -a "$tmp/runs.jsonl" >&2
  else
    echo "bench-ncut-scale: $impl N = $n failed (exit $rc): $(tail -n 3 "$tmp/err")" >&2
    echo "{\"impl\": \"$impl\", \"n\": $n, \"failed\": $rc}" >> "$tmp/runs.jsonl"
  fi
}
for n in ${sizes//,/ }; do
  for _ in $(seq "$rounds"); do
    run cortex "$n"
    run ncut-pytorch "$n"
  done
done
if ((acc > 0)); then
  run cortex "$acc" --accuracy "$acc"
  run ncut-pytorch "$acc" --accuracy "$acc"
fi
load1=$(cut -d' ' -f1 /proc/loadavg)

machine="$(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
commit=$(git -C "$root" rev-parse --short HEAD)
dirty=$(git -C "$root" status --porcelain --untracked-files=no | wc -l)
[[ $dirty == 0 ]] || commit="$commit (+ uncommitted changes in $dirty tracked files)"
versions=$(python3 -c "import importlib.metadata as md, torch; print(f\"ncut-pytorch {md.version('ncut-pytorch')}, torch {torch.__version__}\")")
python3 - "$res" "$tmp/runs.jsonl" "$machine" "$commit" "$started" "$load0" "$load1" "$versions" "$rounds" <<'PY'
import json, os, statistics, sys, textwrap
path, runs_path, machine, commit, started, load0, load1, versions, rounds = sys.argv[1:]
runs = [json.loads(line) for line in open(runs_path)]
main = [r for r in runs if "acc_n" not in r]
acc = {r["impl"]: r for r in runs if "acc_n" in r}
first = next((r for r in main if "failed" not in r), None)
if first is None:
    sys.exit("bench-ncut-scale: every run failed; RESULTS.md is left as it was")
sizes = list(dict.fromkeys(r["n"] for r in main))

def side(impl, n):
    rs = [r for r in main if r["impl"] == impl and r["n"] == n]
    ok = [r for r in rs if "failed" not in r]
    if not ok:
        return None, f"failed (exit {rs[0]['failed']})" if rs else "—"
    return {"s": statistics.median(r["seconds"] for r in ok), "cpu": statistics.median(r["cpu_seconds"] for r in ok),
            "mb": max(r["peak_rss_mb"] for r in ok), "mb0": max(r["rss_before_mb"] for r in ok),
            "input": ok[0]["input_mb"]}, None

rows, fits = [], {"cortex": [], "ncut-pytorch": []}
for n in sizes:
    c, cerr = side("cortex", n)
    p, perr = side("ncut-pytorch", n)
    cells = [f"{n:,}", f"{c['input']:,.0f}" if c else f"{p['input']:,.0f}" if p else "—"]
    cells += [f"{c['s']:.1f}" if c else cerr, f"{p['s']:.1f}" if p else perr,
              f"**{p['s'] / c['s']:.2f}**" if c and p else "—",
              f"{c['cpu']:.1f}" if c else "—", f"{p['cpu']:.1f}" if p else "—",
              f"{c['mb']:,.0f} ({c['mb0']:,.0f})" if c else "—", f"{p['mb']:,.0f} ({p['mb0']:,.0f})" if p else "—",
              f"{c['mb'] / (n / 1000):.2f}" if c else "—", f"{p['mb'] / (n / 1000):.2f}" if p else "—"]
    rows.append("| " + " | ".join(cells) + " |")
    for impl, s in (("cortex", c), ("ncut-pytorch", p)):
        if s:
            fits[impl].append((n, s["mb"]))

def slope(points):
    """Least-squares MB per 1,000 nodes and intercept MB of the peak RSS against N."""
    if len(points) < 2:
        return "—"
    xs, ys = [p[0] / 1000 for p in points], [p[1] for p in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    fit = f"{b:.2f} MB per 1,000 nodes + {my - b * mx:,.0f} MB"
    if len(points) == 2:
        return fit + " (two sizes: the line through both)"
    worst = max(abs(y - (my + b * (x - mx))) / y for x, y in zip(xs, ys))
    return fit + f" (largest deviation from the line {100 * worst:.1f}%)"

def acc_line(impl):
    r = acc.get(impl)
    if r is None:
        return f"{impl}: not measured"
    return (f"{impl}: mean cos {r['acc_mean_cos']:.5f}, min cos {r['acc_min_cos']:.5f} "
            f"(N_sub = {r['acc_n']:,}, m = {r['acc_m']:,})")

d, m, k, knn, cl, th = (first[f] for f in ("d", "m", "k", "knn", "clusters", "threads"))
sd = next((r.get("search_dims", 0) for r in main if r["impl"] == "cortex" and "failed" not in r), 0)
search = (f"its neighbour search on the sample's top {sd} principal axes (`--search-dims {sd}`)" if sd else "its neighbour search on all d features")
fill = lambda t: textwrap.fill(" ".join(t.split()), 100, break_on_hyphens=False)
intro = fill(f"""**CPU figures** on {machine}; {started}, commit {commit}; load average {load0} at the start,
{load1} at the end; {versions}. Written by `scripts/bench-ncut-scale.sh` (not by make bench, which
keeps this section). One graph of N nodes (issue #18: 1,000 images x 197 patches x 12 layers =
2,364,000 ≈ 2.4M), d = {d}, float32, {cl} Gaussian clusters (bench/ncut_scale.cpp), AlignedCut
Nystrom with m = {m:,} FPS samples, k = {k}, K = {knn}, cosine affinity, {th} threads on each side.
cortex: `bench/ncut_scale.cpp`, {search}; peer: ncut-pytorch's `ncut_fn` (`bench/peers/ncut_scale_peer.py`,
n_sample = n_sample2 = m, n_neighbors = K; same distribution, not the same numbers; its kernel, FPS
and randomized SVD differ: docs/spectral.md). One process per run, the sides interleaved size by
size; seconds: wall-clock of the Ncut call alone (the drawing of the features excluded), the median
of {rounds} run(s); CPU: user + system seconds of the process during the call; peak: the process's
maximum RSS (getrusage), the N x d input included; in brackets the same just before the call (the
input, the runtime: for the peer Python and torch). ratio = peer s / cortex s.""")
memory = fill(f"""Peak RSS against N (least squares): cortex {slope(fits["cortex"])}; ncut-pytorch
{slope(fits["ncut-pytorch"])}. The input alone is {4 * d / 1024 / 1024 * 1000:.2f} MB per 1,000 nodes.""")
accuracy = fill(f"""Accuracy, each side's Nystrom (the settings above) against its own exact solve on the first N_sub
nodes (cosines of the principal angles between the top-{k} subspaces; cortex: its exact method, the
full affinity and block Lanczos; ncut-pytorch: its own kernel on the full N_sub x N_sub graph,
D^-1/2 W D^-1/2, scipy eigsh): {acc_line("cortex")}; {acc_line("ncut-pytorch")}.""")
section = f"""<!-- bench-ncut-scale:begin -->
## Ncut at scale: Nystrom up to {max(sizes):,} nodes, d = {d}, against ncut-pytorch (CPU)

{intro}

| N | input MB | cortex s | peer s | ratio | cortex CPU s | peer CPU s | cortex peak MB | peer peak MB | cortex MB / 1,000 nodes | peer MB / 1,000 nodes |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

{memory}

{accuracy}
<!-- bench-ncut-scale:end -->"""
text = open(path).read()
a, b = text.find("<!-- bench-ncut-scale:begin -->"), text.find("<!-- bench-ncut-scale:end -->")
if 0 <= a < b:
    text = text[:a] + section + text[b + len("<!-- bench-ncut-scale:end -->"):]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
with open(path + ".tmp", "w") as f:
    f.write(text)
os.replace(path + ".tmp", path)
print(section)
PY
echo "bench-ncut-scale: wrote the table into $res" >&2
