#!/usr/bin/env python3
"""Regenerates bench/RESULTS.md: every C++ benchmark of bench/tables.py beside its peer, interleaved.

  bench_tables.py run     [--build build] [--rounds 3] [--threads 1,2] [--quick] [--tables k1,k2]
                          [--out-dir bench] [--work-dir out/bench] [--note TEXT] [--like results.json]
  bench_tables.py compare NEW.json BASELINE.json
                          whether each new median falls within the baseline's spread (exit 1 if not)
  bench_tables.py binaries
                          the bench targets the tables need (the Makefile builds them)
  bench_tables.py render  results.json RESULTS.md
                          the tables again from the raw numbers (after a change of layout)

For each table, thread count and round: the C++ binary on the table's rows, then the peer script on
the same rows (cortex, peer, cortex, peer, ...), each with OMP_NUM_THREADS (and the BLAS variables)
set to the thread count. A figure is the mean wall-clock time per pass within a round (Google
Benchmark's real_time; the peer's mean_seconds, bench/peers/peer_protocol.py); a row gives the median
over rounds of each side, the median of the per-round ratios peer / cortex (> 1: cortex faster) and
their spread (min-max). Writes <out-dir>/RESULTS.md and <out-dir>/results.json (every round's raw
numbers, the machine and the build), each to a temporary file then renamed; while it runs, the
tables done so far are in <work-dir>/RESULTS.partial.md (labelled incomplete). Needs only the standard
library; a row whose peer needs a missing Python module is shown with the reason and no ratio.
scripts/bench.sh is the front end (make bench); its header line is the command written in RESULTS.md.
"""
import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
QUICK_MIN_TIME = 0.1
QUICK_ROUNDS = 2
DEFAULT_THREADS = [1, 2]


def load_tables(path=os.path.join(ROOT, "bench", "tables.py")):
    spec = importlib.util.spec_from_file_location("bench_tables_spec", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    keys = [t["key"] for t in mod.TABLES]
    if len(set(keys)) != len(keys):
        raise SystemExit(f"bench/tables.py: duplicate table keys in {keys}")
    return mod.TABLES


# ---------------------------------------------------------------- what the run ran on

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def run_text(cmd, cwd=ROOT):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cmake_cache(build):
    cache = {}
    for line in read(os.path.join(build, "CMakeCache.txt")).splitlines():
        m = re.match(r"^([A-Za-z0-9_]+):[A-Z]+=(.*)$", line)
        if m:
            cache[m.group(1)] = m.group(2)
    return cache


def compile_flags(build, cache):
    """The flags bench_models.cpp was compiled with (compile_commands.json), optimisation and target ones."""
    try:
        with open(os.path.join(build, "compile_commands.json")) as f:
            cmds = json.load(f)
    except (OSError, ValueError):
        cmds = []
    for c in cmds:
        if c.get("file", "").endswith(os.path.join("bench", "bench_models.cpp")):
            words = shlex.split(c.get("command", "")) if "command" in c else c.get("arguments", [])
            keep = [w for w in words if re.match(r"^-(O\d?|Os|Ofast|march=|mtune=|mcpu=|f(?!diagnostics)|g\d?$|"
                                                 r"DNDEBUG|std=)", w)]
            return " ".join(dict.fromkeys(keep))
    bt = cache.get("CMAKE_BUILD_TYPE", "")
    flags = [cache.get("CMAKE_CXX_FLAGS", ""), cache.get(f"CMAKE_CXX_FLAGS_{bt.upper()}", "")]
    if cache.get("CORTEX_NATIVE", "ON").upper() in ("ON", "1", "TRUE"):
        flags.append("-march=native")
    return " ".join(f for f in flags if f)


def module_version(dist, module):
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "installed (version unknown)"


PY_PACKAGES = [("torch", "torch"), ("numpy", "numpy"), ("scipy", "scipy"), ("scikit-learn", "sklearn"),
               ("ncut-pytorch", "ncut_pytorch"), ("torchvision", "torchvision")]


def machine_info(build):
    cpuinfo = read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)
    osname = re.search(r'^PRETTY_NAME="?([^"\n]*)', read("/etc/os-release"), re.M)
    cache = cmake_cache(build)
    cxx = cache.get("CMAKE_CXX_COMPILER", "")
    status = run_text(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": run_text(["git", "rev-parse", "--short=9", "HEAD"]) or "unknown",
        "dirty_files": len(status.splitlines()) if status else 0,
        "cpu": model.group(1).strip() if model else platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "os": f"{osname.group(1) if osname else platform.system()}, Linux {platform.release()}",
        "compiler": (run_text([cxx, "--version"]).splitlines() or [cxx or "unknown"])[0],
        "build_type": cache.get("CMAKE_BUILD_TYPE", "unknown"),
        "flags": compile_flags(build, cache),
        "python": platform.python_version(),
        "packages": {d: module_version(d, m) for d, m in PY_PACKAGES},
        "openmp": openmp_setting(),
    }


def openmp_setting():
    """The OpenMP wait policy of the run: the user's, or what the cortex binaries start with."""
    chosen = [f"{v}={os.environ[v]}" for v in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if v in os.environ]
    if chosen:
        return "set for both sides: " + ", ".join(chosen)
    spin = re.search(r'kDefaultSpinCount = "(\d+)"', read(os.path.join(ROOT, "tensor", "omp_defaults.h")))
    return (f"cortex binaries GOMP_SPINCOUNT={spin.group(1) if spin else '?'} (tensor/omp_defaults.h); "
            "peers libgomp's default (300000)")


def loadavg():
    try:
        return float(read("/proc/loadavg").split()[0])
    except (IndexError, ValueError):
        return None


# ---------------------------------------------------------------- one side of one round

def thread_env(threads):
    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[v] = str(threads)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def run_logged(cmd, env, log):
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        tail = read(log).strip().splitlines()[-3:]
        raise RuntimeError(f"{os.path.basename(cmd[1] if cmd[0] == sys.executable else cmd[0])} exited with {rc}: "
                           + " | ".join(tail))


def run_cortex(binary, names, threads, min_time, warmup, work, log):
    out = os.path.join(work, "cortex.json")
    cmd = [binary, "--benchmark_filter=^(" + "|".join(re.escape(n) for n in names) + ")$",
           f"--benchmark_min_time={min_time}", f"--benchmark_min_warmup_time={1e-6 if warmup else 0}",
           f"--benchmark_out={out}", "--benchmark_out_format=json"]
    run_logged(cmd, thread_env(threads), log)
    with open(out) as f:
        doc = json.load(f)
    got = {}
    for b in doc.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration" or b["name"] not in names:
            continue
        if b.get("error_occurred"):
            raise RuntimeError(f"{b['name']}: {b.get('error_message', 'error')}")
        u = UNITS[b.get("time_unit", "ns")]
        got[b["name"]] = {"s": b["real_time"] * u, "cpu_s": b["cpu_time"] * u, "iterations": b["iterations"]}
    missing = [n for n in names if n not in got]
    if missing:
        raise RuntimeError(f"{os.path.basename(binary)} has no benchmark named {missing} (see bench/tables.py)")
    return got


def run_peer(peer, cases, threads, min_time, warmup, work, log):
    out = os.path.join(work, "peer.json")
    if os.path.exists(out):
        os.remove(out)
    cmd = [sys.executable, os.path.join(ROOT, peer["script"]), *peer.get("args", []), "--cases", ";".join(cases),
           "--min-time", str(min_time), "--warmup", "1" if warmup else "0", "--json", out]
    run_logged(cmd, thread_env(threads), log)
    with open(out) as f:
        doc = json.load(f)
    if doc.get("threads") not in (None, threads):
        raise RuntimeError(f"{peer['script']} ran with {doc['threads']} threads, not {threads}")
    got = {r["case"]: {"s": r["mean_seconds"], "cpu_s": r.get("mean_cpu_seconds"), "iterations": r["iterations"]}
           for r in doc.get("results", [])}
    missing = [c for c in cases if c not in got]
    if missing:
        raise RuntimeError(f"{peer['script']} gave no result for {missing}")
    return got, doc.get("peer", peer["script"])


# ---------------------------------------------------------------- the run

def summarise(row):
    rounds = row["rounds"]
    c = [r["cortex_s"] for r in rounds]
    row["cortex_median_s"] = statistics.median(c) if c else None
    row["cortex_min_s"], row["cortex_max_s"] = (min(c), max(c)) if c else (None, None)
    ratios = [r["ratio"] for r in rounds if r.get("ratio") is not None]
    if ratios:
        p = [r["peer_s"] for r in rounds if r.get("peer_s") is not None]
        row["peer_median_s"] = statistics.median(p)
        row["median_ratio"] = statistics.median(ratios)
        row["min_ratio"], row["max_ratio"] = min(ratios), max(ratios)
        cpu = [r["cpu_ratio"] for r in rounds if r.get("cpu_ratio") is not None]
        row["median_cpu_ratio"] = statistics.median(cpu) if cpu else None


def run(args):
    tables = load_tables(args.spec)
    if args.like:  # the settings of an earlier run, where not given (scripts/bench.sh --check)
        with open(args.like) as f:
            like = json.load(f)["settings"]
        args.rounds = args.rounds or like["rounds"]
        args.threads = args.threads or ",".join(map(str, like["threads"] or []))
        args.quick = args.quick or like["quick"]
        args.tables = args.tables or ",".join(like["tables"])
    if args.tables:
        want = args.tables.split(",")
        unknown = [k for k in want if k not in [t["key"] for t in tables]]
        if unknown:
            raise SystemExit(f"unknown table(s) {unknown}; bench/tables.py has {[t['key'] for t in tables]}")
        tables = [t for t in tables if t["key"] in want]
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else 3)
    # THREADS given: every table at those counts; otherwise a table's own "threads", else 1 and 2.
    threads_given = [int(t) for t in args.threads.replace(" ", ",").split(",") if t]
    build = os.path.abspath(args.build)
    os.makedirs(args.work_dir, exist_ok=True)
    log = os.path.join(os.path.abspath(args.work_dir), "bench.log")
    open(log, "w").close()

    plan = []  # (table, rows, threads, min_time)
    for t in tables:
        rows = [r for r in t["rows"] if r.get("quick") or not args.quick]
        if not rows:
            continue
        binary = os.path.join(build, "bench", t["binary"])
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"no {binary}: build it first (cmake --build {args.build} --target {t['binary']})")
        min_time = min(t["min_time"], QUICK_MIN_TIME) if args.quick else t["min_time"]
        plan.append((t, rows, threads_given or t.get("threads", DEFAULT_THREADS), min_time))
    steps = sum(len(th) * rounds for _, _, th, _ in plan)

    meta = machine_info(build)
    result = {"meta": meta, "settings": {"rounds": rounds, "threads": threads_given or None, "quick": args.quick,
                                         "tables": [t["key"] for t, _, _, _ in plan], "note": args.note,
                                         "command": args.command or shlex.join(sys.argv)},
              "load_start": loadavg(), "tables": []}
    started = time.monotonic()
    failures = []
    step = 0
    with tempfile.TemporaryDirectory(prefix="bench_tables.") as work:
        for t, rows, thread_counts, min_time in plan:
            peer = t.get("peer")
            trows = []
            for r in rows:
                needs = r.get("needs", peer["needs"] if peer else [])
                missing = [m for m in needs if importlib.util.find_spec(m) is None]
                skip = None if peer else "cortex only"
                if peer and missing:
                    skip = f"peer skipped: Python module{'s' if len(missing) > 1 else ''} {', '.join(missing)} " \
                           f"not installed"
                trows.append((r, skip))
            out_table = {"key": t["key"], "title": t["title"], "about": t.get("about", ""), "binary": t["binary"],
                         "peer_script": peer["script"] if peer else None, "min_time": min_time,
                         "warmup": t["warmup"], "peer": None, "rows": []}
            setup_err = None
            if t.get("setup"):  # e.g. input files both sides read; the binary runs first in each round
                try:
                    run_logged([sys.executable, os.path.join(ROOT, t["setup"][0]), *t["setup"][1:]],
                               thread_env(1), log)
                except RuntimeError as e:
                    setup_err = f"setup: {e}"
            for th in thread_counts:
                out_rows = [{"row": r["row"], "cortex": r["cortex"], "peer_case": r.get("peer"), "threads": th,
                             "peer_skipped": skip, "rounds": [], "error": None} for r, skip in trows]
                peer_cases = [r["peer"] for r, skip in trows if skip is None]
                for k in range(rounds):
                    step += 1
                    t0 = time.monotonic()
                    load = loadavg()
                    err = setup_err
                    try:
                        if err is None:
                            c = run_cortex(os.path.join(build, "bench", t["binary"]),
                                           [r["cortex"] for r, _ in trows], th, min_time, t["warmup"], work, log)
                            p = {}
                            if peer_cases:
                                p, out_table["peer"] = run_peer(peer, peer_cases, th, min_time, t["warmup"], work,
                                                                log)
                    except RuntimeError as e:
                        err = str(e)
                    for o, (r, skip) in zip(out_rows, trows):
                        if err:
                            o["error"] = err
                            continue
                        rec = {"round": k + 1, "load": load, "cortex_s": c[r["cortex"]]["s"],
                               "cortex_cpu_s": c[r["cortex"]]["cpu_s"], "cortex_iterations": c[r["cortex"]]["iterations"]}
                        if skip is None:
                            ps = p[r["peer"]]
                            rec.update({"peer_s": ps["s"], "peer_cpu_s": ps["cpu_s"], "peer_iterations": ps["iterations"],
                                        "ratio": ps["s"] / rec["cortex_s"]})
                            # Google Benchmark's CPU time is the main thread's: comparable with the
                            # peer's process CPU time only with one thread.
                            if th == 1 and ps["cpu_s"] and rec["cortex_cpu_s"] > 0:
                                rec["cpu_ratio"] = ps["cpu_s"] / rec["cortex_cpu_s"]
                        o["rounds"].append(rec)
                    status = f"error: {err}" if err else ", ".join(
                        f"{o['row']} {o['rounds'][-1]['ratio']:.2f}x" if "ratio" in o["rounds"][-1] else
                        f"{o['row']} {fmt_time(o['rounds'][-1]['cortex_s'])}" for o in out_rows)
                    print(f"[{step}/{steps}] {t['key']}, {th} thread{'s' if th > 1 else ''}, round {k + 1}/{rounds} "
                          f"({time.monotonic() - t0:.0f} s, load {load}): {status}", flush=True)
                    if err:
                        failures.append(f"{t['key']} ({th} threads): {err}")
                        break
                for o in out_rows:
                    summarise(o)
                out_table["rows"].extend(out_rows)
            result["tables"].append(out_table)
            if len(result["tables"]) < len(plan):
                # A long run that is stopped still leaves what it measured, labelled as incomplete.
                result["incomplete"] = f"{len(result['tables'])} of {len(plan)} tables done"
                write_results(result, args.work_dir, started, ".partial")
    result.pop("incomplete", None)
    os.makedirs(args.out_dir, exist_ok=True)
    write_results(result, args.out_dir, started)
    for f in ("RESULTS.partial.md", "results.partial.json"):
        if os.path.exists(os.path.join(args.work_dir, f)):
            os.remove(os.path.join(args.work_dir, f))
    print(f"bench_tables: {steps} rounds in {result['wall_s'] / 60:.1f} min; wrote "
          f"{os.path.join(args.out_dir, 'RESULTS.md')} and results.json (log: {log})")
    if failures:
        print("bench_tables: FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


def write_results(result, out_dir, started, suffix=""):
    result["load_end"] = loadavg()
    result["wall_s"] = time.monotonic() - started
    write_atomic(os.path.join(out_dir, f"results{suffix}.json"), json.dumps(result, indent=1) + "\n")
    write_atomic(os.path.join(out_dir, f"RESULTS{suffix}.md"), render(result) + kept_sections(out_dir))


# Sections other scripts write into RESULTS.md between these markers (scripts/bench-mpi.sh: the
# MPI strong-scaling table; scripts/bench-ncut-scale.sh: Ncut at 2.4M nodes) survive a regeneration.
KEPT = (("<!-- bench-mpi:begin -->", "<!-- bench-mpi:end -->"),
        ("<!-- bench-ncut-scale:begin -->", "<!-- bench-ncut-scale:end -->"))


def kept_sections(out_dir):
    try:
        with open(os.path.join(out_dir, "RESULTS.md")) as f:
            text = f.read()
    except OSError:
        return ""
    kept = ""
    for begin, end in KEPT:
        a, b = text.find(begin), text.find(end)
        kept += "\n" + text[a:b + len(end)] + "\n" if 0 <= a < b else ""
    return kept


def write_atomic(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------- RESULTS.md

def fmt_time(s):
    if s is None:
        return "—"
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    ms = s * 1e3
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def render(res):
    m, s = res["meta"], res["settings"]
    pk = ", ".join(f"{d} {v or 'not installed'}" for d, v in m["packages"].items())
    dirty = f" (uncommitted changes in {m['dirty_files']} tracked files)" if m["dirty_files"] else ""
    loads = [r["load"] for t in res["tables"] for row in t["rows"] for r in row["rounds"] if r.get("load") is not None]
    lines = [
        "# Benchmark results",
        "",
        "**Generated by `scripts/bench_tables.py`; do not edit by hand.** Notes, methods and older",
        "hand-measured figures (GPU, emulated device, accuracy tables) are in [NOTES.md](NOTES.md).",
        "",
        "Command:",
        "",
        f"    {s['command']}",
        "",
    ]
    if s.get("note"):
        lines += [f"**Conditions: {s['note']}**", ""]
    if res.get("incomplete"):
        lines += [f"**Incomplete run: {res['incomplete']} when it was written.**", ""]
    if s.get("quick"):
        lines += ["**QUICK smoke run: a subset of rows, short timings; not figures to quote.**", ""]
    lines += [
        "| | |",
        "| --- | --- |",
        f"| date | {m['date']} (the run took {res['wall_s'] / 60:.1f} min) |",
        f"| commit | {m['commit']}{dirty} |",
        f"| CPU | {m['cpu']}, {m['cpus']} logical CPUs, {m['memory_gb']} GB |",
        f"| system | {m['os']} |",
        f"| compiler | {m['compiler']}, {m['build_type']}: `{m['flags']}` |",
        f"| Python peers | Python {m['python']}, {pk} |",
        f"| OpenMP wait | {m.get('openmp', 'not recorded')} |",
        f"| load average (1 min) | {res['load_start']} at the start, {res['load_end']} at the end"
        + (f", {min(loads)}–{max(loads)} at the rounds' starts" if loads else "") + " (the run's own threads count) |",
        f"| method | {s['rounds']} round{'s' if s['rounds'] > 1 else ''} per row and thread count, each the C++ binary then the peer "
        f"(interleaved); thread counts: " + (', '.join(map(str, s['threads'])) if s['threads'] else
                                             "each table's (1 and 2 unless it says otherwise)") + " |",
        "",
        "Each figure is wall-clock time per pass (the mean of the passes of one round, after a warm-up pass",
        "where the table says so), and the median over the rounds. **ratio = peer time / cortex time**,",
        "the median of the per-round ratios: **above 1, cortex is faster**. spread: the smallest and largest",
        "per-round ratio. CPU ratio: the same with CPU time, one thread only (with more, Google Benchmark",
        "counts the main thread alone). The raw numbers of every round: [results.json](results.json).",
        "",
    ]
    for t in res["tables"]:
        lines += [f"## {t['title']}", "", t["about"], ""]
        extra = []
        if t["peer"]:
            extra.append(f"Peer: {t['peer']}.")
        timed = f"until {t['min_time']} s, at least one" if t["min_time"] > 0 else "one"
        extra.append(f"Timed passes per round: {timed}" + ("; one warm-up pass first." if t["warmup"] else
                                                              "; no warm-up pass."))
        lines += [" ".join(extra), ""]
        if t["peer_script"]:
            lines += ["| configuration | threads | cortex | peer | ratio | spread | CPU ratio |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        else:
            lines += ["| configuration | threads | cortex | spread (min–max) |", "| --- | ---: | ---: | ---: |"]
        order = {r: i for i, r in enumerate(dict.fromkeys(row["row"] for row in t["rows"]))}
        for row in sorted(t["rows"], key=lambda r: (order[r["row"]], r["threads"])):
            name, th = row["row"], row["threads"]
            if row.get("error"):
                cols = [f"failed: {row['error']}"] + [""] * (4 if t["peer_script"] else 1)
            elif not t["peer_script"]:
                cols = [fmt_time(row["cortex_median_s"]),
                        f"{fmt_time(row['cortex_min_s'])} – {fmt_time(row['cortex_max_s'])}"]
            elif row.get("peer_skipped"):
                cols = [fmt_time(row["cortex_median_s"]), row["peer_skipped"], "—", "—", "—"]
            else:
                cpu = row.get("median_cpu_ratio")
                cols = [fmt_time(row["cortex_median_s"]), fmt_time(row["peer_median_s"]),
                        f"**{row['median_ratio']:.2f}**", f"{row['min_ratio']:.2f}–{row['max_ratio']:.2f}",
                        f"{cpu:.2f}" if cpu is not None else "—"]
            lines.append(f"| {name} | {th} | " + " | ".join(cols) + " |")
        lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- compare

def within_probability(n_base, m_new):
    """The chance that the median of m_new rounds falls within the min-max of n_base rounds when every
    round is an independent draw from one continuous distribution (None for an even m_new, whose median
    is a mean of two). The new median lies below the baseline's minimum exactly when the k = (m+1)/2
    smallest of all n+m rounds are new ones: C(m, k) / C(n+m, k); above its maximum, the same. Five
    rounds against five: 5/6 per row. Derivation and the table of rounds: bench/NOTES.md."""
    if n_base < 1 or m_new < 1 or m_new % 2 == 0:
        return None
    k = (m_new + 1) // 2
    return 1.0 - 2.0 * math.comb(m_new, k) / math.comb(n_base + m_new, k)


def compare(new_path, base_path):
    with open(new_path) as f:
        new = json.load(f)
    with open(base_path) as f:
        base = json.load(f)
    index = {(t["key"], r["row"], r["threads"]): r for t in base["tables"] for r in t["rows"]}
    print(f"new run {new['meta']['commit']} ({new['meta']['date']}) against {base_path} "
          f"({base['meta']['commit']}, {base['meta']['date']}): is each new median within the baseline's spread?")
    within = outside = 0
    chance = 1.0  # of every compared row within, if rounds were independent draws (None: not computable)
    for t in new["tables"]:
        for r in t["rows"]:
            b = index.get((t["key"], r["row"], r["threads"]))
            what = f"{t['key']}: {r['row']}, {r['threads']} thread{'s' if r['threads'] > 1 else ''}"
            if b is None:
                print(f"  {what}: not in the baseline")
                continue
            if r.get("median_ratio") is not None and b.get("median_ratio") is not None:
                v, lo, hi, unit = r["median_ratio"], b["min_ratio"], b["max_ratio"], "ratio"
                fmt = "{:.2f}".format
            elif r.get("cortex_median_s") is not None and b.get("cortex_median_s") is not None:
                v, lo, hi, unit = r["cortex_median_s"], b["cortex_min_s"], b["cortex_max_s"], "cortex time"
                fmt = fmt_time
            else:
                print(f"  {what}: nothing to compare (a side was skipped or failed)")
                continue
            ok = lo <= v <= hi
            if chance is not None:
                p = within_probability(len(b["rounds"]), len(r["rounds"]))
                chance = None if p is None else chance * p
            within += ok
            outside += not ok
            print(f"  {what}: {unit} {fmt(v)}, baseline spread {fmt(lo)}–{fmt(hi)}: {'within' if ok else 'OUTSIDE'}")
    print(f"{within} within, {outside} outside the baseline's spread")
    if chance is not None and within + outside > 0:
        print(f"(were every round an independent draw from one distribution, all {within + outside} rows would "
              f"fall within with probability {chance:.2f}, from the rounds' counts alone; drift of the machine "
              f"between runs lowers it: bench/NOTES.md)")
    return 0 if outside == 0 and within > 0 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--build", default="build")
    r.add_argument("--rounds", type=int, default=0, help=f"default 3 ({QUICK_ROUNDS} with --quick)")
    r.add_argument("--threads", default="", help="comma-separated thread counts for every table "
                                                 "(default: each table's, else 1,2)")
    r.add_argument("--like", default="", help="take rounds, threads, quick and tables from this results.json")
    r.add_argument("--quick", action="store_true", help="the rows marked quick, min time capped at 0.1 s")
    r.add_argument("--tables", default="", help="comma-separated table keys (default: all)")
    r.add_argument("--out-dir", default=os.path.join(ROOT, "bench"))
    r.add_argument("--work-dir", default=os.path.join(ROOT, "out", "bench"))
    r.add_argument("--note", default="", help="conditions to state in the header (e.g. a loaded machine)")
    r.add_argument("--spec", default=os.path.join(ROOT, "bench", "tables.py"), help="the tables (tests use their own)")
    r.add_argument("--command", default="", help="the command to print in the header (scripts/bench.sh gives it)")
    sub.add_parser("binaries", help="the bench targets the tables need (make bench builds them)")
    rr = sub.add_parser("render", help="write RESULTS.md again from a results.json (after a change of layout)")
    rr.add_argument("results")
    rr.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("new")
    c.add_argument("baseline")
    a = ap.parse_args()
    if a.cmd == "binaries":
        print(" ".join(dict.fromkeys(t["binary"] for t in load_tables())))
        return 0
    if a.cmd == "render":
        with open(a.results) as f:
            write_atomic(a.out, render(json.load(f)))
        return 0
    return run(a) if a.cmd == "run" else compare(a.new, a.baseline)


if __name__ == "__main__":
    sys.exit(main())
