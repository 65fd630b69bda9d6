#!/usr/bin/env python3
"""The table of ratios that ends scripts/gpu-check.sh: ours / peer, timed in the same run.

Reads every *.json in DIR (scripts/gpu-check.sh's $OUT) and pairs rows three ways:
  1. in-binary peers: bench_cuda_gemm rows BM_cuda_gemm[_<kind>]/version:V/n:N, version 0 being
     cuBLAS (through matmul) and 1..7 the hand-written versions: each version over version 0 of the
     same kind and n;
  2. the same Google Benchmark binary run twice, <bench>.<ours>.json beside <bench>.<peer>.json
     (bench_conv.hand.json beside bench_conv.cudnn.json, from CORTEX_CONV=hand / cudnn): rows of
     the same name;
  3. a Google Benchmark row whose label (benchmark::State::SetLabel) equals a peer script's case:
     peer_<name>.json written by bench/peers/*.py --json, {"peer": "...", "results": [{"case":
     "...", "seconds": ...}]}.
A ratio below 1 means ours is faster. Rows without a partner are not listed; a line says how many
rows were read, so an empty table is visibly empty. Standard library only (the GPU machine has
Python but maybe not jq).

Usage: scripts/gpu-ratios.py DIR
"""
import json
import os
import re
import sys

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"gpu-ratios: skipping {os.path.basename(path)}: {e}".splitlines()[0])
        return None


def bench_rows(doc):
    """(name, label, seconds) of each plain run of a Google Benchmark JSON (no aggregates, no errors)."""
    out = []
    for b in doc.get("benchmarks", []):
        if b.get("run_type") == "aggregate" or b.get("error_occurred"):
            continue
        t = b.get("real_time")
        if t is None:
            continue
        out.append((b.get("name", ""), b.get("label", ""), float(t) * UNIT.get(b.get("time_unit", "ns"), 1e-9)))
    return out


def main(argv):
    if len(argv) != 2 or not os.path.isdir(argv[1]):
        print("usage: gpu-ratios.py DIR (a directory of benchmark and peer JSON files)", file=sys.stderr)
        return 2
    d = argv[1]
    benches, peers = {}, {}
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".json"):
            continue
        doc = load(os.path.join(d, fn))
        if not isinstance(doc, dict):
            continue
        stem = fn[: -len(".json")]
        if "benchmarks" in doc:
            benches[stem] = bench_rows(doc)
        elif "results" in doc:
            peers[stem] = (doc.get("peer", stem), [(r["case"], float(r["seconds"])) for r in doc["results"]
                                                   if "case" in r and r.get("seconds") is not None])
    table = []  # (what, case, ours s, peer s, peer name)

    # 1. hand-written GEMM versions against cuBLAS, in bench_cuda_gemm.
    gemm = re.compile(r"^BM_cuda_gemm(?:_(\w+?))?/version:(\d+)/n:(\d+)")
    for stem, rows in benches.items():
        base = {}
        for name, _, s in rows:
            m = gemm.match(name)
            if m and m.group(2) == "0":
                base[(m.group(1) or "fp32", m.group(3))] = s
        for name, _, s in rows:
            m = gemm.match(name)
            if m and m.group(2) != "0" and (m.group(1) or "fp32", m.group(3)) in base:
                kind, n = m.group(1) or "fp32", m.group(3)
                table.append((f"gemm {kind}", f"v{m.group(2)} n={n}", s, base[(kind, n)], "cuBLAS"))

    # 2. one binary, two backends: <bench>.<ours>.json beside <bench>.<peer>.json.
    for ours_sfx, peer_sfx, peer_name in (("hand", "cudnn", "cuDNN"),):
        for stem, rows in benches.items():
            if not stem.endswith("." + ours_sfx):
                continue
            other = benches.get(stem[: -len(ours_sfx)] + peer_sfx)
            if other is None:
                continue
            theirs = {name: s for name, _, s in other}
            for name, _, s in rows:
                if name in theirs:
                    table.append((stem.split(".")[0].replace("bench_", ""), name, s, theirs[name], peer_name))

    # 3. labelled rows against the peer scripts' cases.
    by_label = {}
    for stem, rows in benches.items():
        for name, label, s in rows:
            if label:
                by_label.setdefault(label, (stem, s))
    for stem, (peer_name, cases) in sorted(peers.items()):
        for case, ps in cases:
            if case in by_label:
                bstem, s = by_label[case]
                table.append((bstem.split(".")[0].replace("bench_", ""), case, s, ps, peer_name))

    n_rows = sum(len(r) for r in benches.values()) + sum(len(c) for _, c in peers.values())
    print(f"ratios ours / peer (time; < 1: ours faster), from {len(benches)} benchmark and {len(peers)} peer "
          f"files, {n_rows} rows read in {d}")
    if not table:
        print("  (no row had a partner: nothing to compare)")
        return 0
    w0 = max(len("what"), max(len(t[0]) for t in table))
    w1 = max(len("case"), max(len(t[1]) for t in table))
    w4 = max(len("peer"), max(len(t[4]) for t in table))
    print(f"{'what':<{w0}}  {'case':<{w1}}  {'peer':<{w4}}  {'ours ms':>10}  {'peer ms':>10}  {'ratio':>7}")
    for what, case, s, ps, pn in table:
        ratio = s / ps if ps > 0 else float("inf")
        print(f"{what:<{w0}}  {case:<{w1}}  {pn:<{w4}}  {s * 1e3:>10.3f}  {ps * 1e3:>10.3f}  {ratio:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
