"""What every peer shares with scripts/bench_tables.py (which runs it beside the C++ benchmark) and
scripts/gpu-ratios.py (which reads its JSON): the case filter, the timing loop and the JSON file.

--cases "a;b"  runs only the named cases (the labels of the "case" fields); an unknown name is an
               error, so a typo in bench/tables.py fails loudly instead of leaving a row empty.
--min-time S   after the --repeat passes, keeps timing passes until S seconds have gone by; the
               C++ side does the same with --benchmark_min_time (at least one pass either way).
--warmup N     untimed passes first (default 1; the C++ side: --benchmark_min_warmup_time).

JSON: {"peer": "<library and version>", "threads": n, "versions": {...}, "results": [{"case": ...,
"seconds": best pass, "mean_seconds": mean of the timed passes, "iterations": passes,
"mean_cpu_seconds": the process's CPU time per pass, every thread}]}.
bench_tables.py compares mean_seconds with Google Benchmark's real_time (also a mean per pass);
gpu-ratios.py reads seconds. Written to a temporary file and renamed.
"""
import json
import os
import time


def add_arguments(ap):
    ap.add_argument("--cases", default="", help="';'-separated case labels to run (default: every case)")
    ap.add_argument("--min-time", type=float, default=0.0,
                    help="time passes until this many seconds have gone by (after --repeat passes)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes before timing")


def selected(args, known):
    """The cases to run, in the order of `known`; exits naming any requested case it does not know."""
    if not args.cases:
        return list(known)
    want = [c for c in args.cases.split(";") if c]
    unknown = [c for c in want if c not in known]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; this peer knows {list(known)}")
    return [c for c in known if c in want]


def measure(fn, repeat, min_time=0.0, warmup=1, sync=lambda: None):
    """Warm-up passes, then at least `repeat` (>= 1) timed passes and until `min_time` seconds."""
    for _ in range(warmup):
        fn()
        sync()
    times = []
    start, cpu = time.perf_counter(), time.process_time()
    while len(times) < max(1, repeat) or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return {"seconds": min(times), "mean_seconds": sum(times) / len(times), "iterations": len(times),
            "mean_cpu_seconds": (time.process_time() - cpu) / len(times)}


def write_json(path, peer, results, threads=None, versions=None):
    if not path:
        return
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump({"peer": peer, "threads": threads, "versions": versions or {}, "results": results}, f, indent=1)
    os.replace(tmp, path)
