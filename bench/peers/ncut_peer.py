#!/usr/bin/env python3
"""Peers of bench/bench_spectral.cpp: the same spectral-clustering problems in Python.

1. ncut-pytorch (pip package ncut-pytorch, the AlignedCut authors' library) end to end on the issue's
   CPU case: N = 100,000 nodes, d = 384, m = 4,096 samples, k = 20 eigenvectors, K = 10 neighbours,
   cosine affinity, on the CPU. Two settings: its defaults for the propagation (it propagates from an
   FPS subset of n_sample2 = 1,024 of the m samples), and n_sample2 = 4,096 (every sample, as
   cortex's propagate_knn does).
2. scikit-learn's SpectralEmbedding (normalised Laplacian, ARPACK) on a precomputed cosine affinity
   exp(-(1 - cos) / t), t = 1, at N = 5,000 and 10,000 (it needs the dense N x N matrix), beside
   cortex's exact method at the same sizes (BM_ncut_exact).

The features are drawn as bench_spectral draws them (50 unit-norm centres in R^384, noise
0.5 / sqrt(d) per coordinate, float32) with NumPy's generator: the same distribution, not the same
numbers. The threads follow OMP_NUM_THREADS (set it to 2 to match the C++ figures).

Known differences from cortex (docs/spectral.md): ncut-pytorch 3.x's cosine kernel is
exp(-(cos - 1)^2 / (2 sigma^2)) + 1e-3 with sigma = 0.5, it projects to 8 dimensions by a random
orthogonal projection (not PCA) before FPS, uses the fpsample package's bucket FPS, and solves the
subgraph with torch.svd_lowrank (randomized, q = k + 10). Timings are of the same problem size and
the same pipeline shape, not of identical arithmetic.

On a GPU (scripts/gpu-check.sh): --device cuda runs ncut-pytorch there (N = 1,000,000, d = 768 in
the GPU check); --json PATH writes {"peer": ..., "results": [{"case": "ncut N=<n> d=<d> m=<m> k=<k>
<device>", "seconds": best, ...}, {"case": "sklearn exact N=<n> d=<d> k=<k>", ...}]} (ncut-pytorch's
run with n_sample2 = m, the same propagation as cortex's, under the label bench_spectral gives its
device row, for scripts/gpu-ratios.py; scikit-learn's affinity + embedding together). Without the
ncut-pytorch package the ncut-pytorch part says so in one line and is skipped. --cases, --min-time,
--warmup as in peer_protocol.py (scripts/bench_tables.py: then a missing package is an error).

Usage: OMP_NUM_THREADS=2 python3 bench/peers/ncut_peer.py [--n 100000] [--repeat 2] [--skip-sklearn]
       python3 bench/peers/ncut_peer.py --device cuda --n 1000000 --d 768 --skip-sklearn --json out.json
"""
import argparse
import os
import platform

import numpy as np

import peer_protocol


def clustered(n, d, seed):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((50, d))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = rng.standard_normal((n, d)) * (0.5 / np.sqrt(d)) + c[np.arange(n) % 50]
    return x.astype(np.float32)


def run_ncut_pytorch(x, m, k, knn, n_sample2, a, device="cpu"):
    import torch
    from ncut_pytorch.ncuts.ncut_nystrom import ncut_fn
    from ncut_pytorch.utils.math import cosine_affinity

    X = torch.from_numpy(x)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    out = {}

    def once():
        out["r"] = ncut_fn(X, n_eig=k, affinity_fn=cosine_affinity, device=device, n_sample=m, n_neighbors=knn,
                           n_sample2=n_sample2)

    r = peer_protocol.measure(once, a.repeat, a.min_time, a.warmup, sync)
    vec = out["r"][0]
    assert vec.shape == (x.shape[0], k) and torch.isfinite(vec).all()
    return r


def run_sklearn(n, d, k, a):
    """The affinity (NumPy) and the embedding together, as cortex's exact ncut does both."""
    from sklearn.manifold import SpectralEmbedding

    x = clustered(n, d, 2).astype(np.float64)
    out = {}

    def once():
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        w = np.exp(-(1.0 - xn @ xn.T))  # t = 1, the diagonal is exp(0) = 1 as in cortex
        out["emb"] = SpectralEmbedding(n_components=k, affinity="precomputed", eigen_solver="arpack",
                                       random_state=0).fit_transform(w)

    r = peer_protocol.measure(once, a.repeat, a.min_time, a.warmup)
    assert out["emb"].shape == (n, k) and np.isfinite(out["emb"]).all()
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--m", type=int, default=4096)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--knn", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-ncut-pytorch", action="store_true")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--sklearn-sizes", type=int, nargs="*", default=[5000, 10000])
    ap.add_argument("--device", default="cpu", help="where ncut-pytorch runs: cpu or cuda")
    ap.add_argument("--json", default="", help="write the times here (scripts/gpu-ratios.py, scripts/bench_tables.py)")
    peer_protocol.add_arguments(ap)
    ap.set_defaults(warmup=0)  # each pass takes seconds
    a = ap.parse_args()

    import torch
    try:
        import sklearn
        sklearn_version = sklearn.__version__
    except ImportError:
        sklearn_version = "not installed"
        a.skip_sklearn = True

    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    try:
        import importlib.metadata as md
        ncut_version = md.version("ncut-pytorch")
    except Exception:  # the package is optional for the sklearn part
        ncut_version = "not installed"
    print(f"# {platform.processor() or platform.machine()}, {threads} threads, torch {torch.__version__}, "
          f"ncut-pytorch {ncut_version}, scikit-learn {sklearn_version}, device {a.device}")

    # Cases: ncut-pytorch propagating from all m samples (as cortex's BM_ncut_nystrom_N100k/0 does),
    # labelled as bench_spectral labels its device row; scikit-learn at each --sklearn-sizes N.
    dev = a.device.split(":")[0]
    nys = f"ncut N={a.n} d={a.d} m={a.m} k={a.k} {dev}"
    exact = {f"sklearn exact N={n} d={a.d} k={a.k}": n for n in a.sklearn_sizes}
    if a.cases:
        todo = set(peer_protocol.selected(a, [nys, *exact]))
        a.skip_ncut_pytorch = nys not in todo
        exact = {c: n for c, n in exact.items() if c in todo}
        for what, version in (("ncut-pytorch", ncut_version), ("scikit-learn", sklearn_version)):
            if version == "not installed" and (what == "ncut-pytorch" and nys in todo or what == "scikit-learn" and exact):
                raise SystemExit(f"ncut_peer.py: {what} is not installed, and --cases asks for it")
    results = []
    if not a.skip_ncut_pytorch and ncut_version == "not installed":
        print("ncut_peer.py: ncut-pytorch is not installed (pip install ncut-pytorch): its timing is skipped")
    elif not a.skip_ncut_pytorch:
        x = clustered(a.n, a.d, 1)
        settings = [(a.m, f"n_sample2 = {a.m}")] if a.cases else [(1024, "default n_sample2 = 1024"),
                                                                  (a.m, f"n_sample2 = {a.m}")]
        for n2, label in settings:
            r = run_ncut_pytorch(x, a.m, a.k, a.knn, n2, a, a.device)
            print(f"ncut-pytorch N={a.n} d={a.d} m={a.m} k={a.k} K={a.knn} ({label}) on {a.device}: best "
                  f"{r['seconds']:.2f} s, mean {r['mean_seconds']:.2f} s of {r['iterations']}")
            if n2 == a.m:
                results.append({"case": nys, **r})
    if not a.skip_sklearn:
        for case, n in exact.items():
            r = run_sklearn(n, a.d, a.k, a)
            print(f"sklearn SpectralEmbedding N={n} d={a.d} k={a.k}, affinity (numpy) included: best "
                  f"{r['seconds']:.2f} s, mean {r['mean_seconds']:.2f} s of {r['iterations']}")
            results.append({"case": case, **r})
    peer_protocol.write_json(a.json, f"ncut-pytorch {ncut_version}, scikit-learn {sklearn_version}", results, threads,
                             {"torch": torch.__version__, "numpy": np.__version__, "ncut-pytorch": ncut_version,
                              "scikit-learn": sklearn_version})


if __name__ == "__main__":
    main()
