#!/usr/bin/env python3
"""Peer of bench/ncut_scale.cpp: one ncut-pytorch Nystrom run at a given size, one JSON line.

scripts/bench-ncut-scale.sh runs this and ncut_scale interleaved, one process per run, so that the
peak RSS (resource.getrusage ru_maxrss, the whole process, input included) is the run's own.
ncut-pytorch's ncut_fn with its cosine affinity on the CPU: n_sample = m (the library caps it at
N / 4), n_sample2 = m (it propagates from all m samples, as cortex's propagate_knn does; its default
is 1,024) and n_neighbors = K. The features are drawn as bench/ncut_scale.cpp draws them (C unit-norm
centres in R^d, node i in cluster i mod C, noise 0.5 / sqrt(d) per coordinate, float32) with NumPy's
generator, 4,096 rows at a time in float32 (no float64 copy of 2.4M x 768 to set the peak RSS): the
same distribution, not the same numbers. The known differences of the arithmetic (kernel, FPS,
randomized SVD): bench/peers/ncut_peer.py's docstring and docs/spectral.md.

Printed: {"impl": "ncut-pytorch", "n", "d", "m", "k", "knn", "clusters", "threads", "seconds" (wall
of ncut_fn), "cpu_seconds" (user + system of the process during it), "peak_rss_mb", "rss_before_mb"
(the peak just before ncut_fn: the input, torch and the fixed costs), "input_mb"} and
with --accuracy N_SUB: "acc_n", "acc_m", "acc_mean_cos", "acc_min_cos": the cosines of the principal
angles between the top-k subspaces of ncut-pytorch's Nystrom and an exact solve of its own problem on
the first N_SUB nodes (its cosine affinity on all N_SUB nodes, D^-1/2 W D^-1/2, the top-k eigenvectors
by scipy's eigsh). N_SUB must exceed 8,192: below that ncut_fn solves exactly, without sampling.

Usage: python3 bench/peers/ncut_scale_peer.py [--n 300000] [--d 768] [--m 4096] [--k 20] [--knn 10]
           [--seed 1] [--threads T] [--clusters 50] [--accuracy N_SUB]
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np


def clustered(n, d, nc, seed, chunk=4096):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((nc, d))
    c = (c / np.linalg.norm(c, axis=1, keepdims=True)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        x[r0:r1] = rng.standard_normal((r1 - r0, d), dtype=np.float32) * np.float32(0.5 / np.sqrt(d))
        x[r0:r1] += c[np.arange(r0, r1) % nc]
    return x


def cpu_seconds():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def principal_cosines(a, b):
    qa, _ = np.linalg.qr(np.asarray(a, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, dtype=np.float64))
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


def nystrom(X, a):
    from ncut_pytorch.ncuts.ncut_nystrom import ncut_fn
    from ncut_pytorch.utils.math import cosine_affinity

    vec, _ = ncut_fn(X, n_eig=a.k, affinity_fn=cosine_affinity, device="cpu", n_sample=a.m, n_neighbors=a.knn,
                     n_sample2=a.m)
    return vec


def exact(X, k):
    """ncut-pytorch's own graph on every node (its cosine kernel, sigma = 0.5 as ncut_fn picks it)."""
    import torch
    from scipy.sparse.linalg import eigsh
    from ncut_pytorch.utils.math import cosine_affinity, normalize_affinity

    with torch.no_grad():
        A = normalize_affinity(cosine_affinity(X, sigma=0.5)).numpy()
    _, v = eigsh(A, k=k, which="LA", tol=1e-6)
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--m", type=int, default=4096)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--knn", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: OMP_NUM_THREADS or every core)")
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--accuracy", type=int, default=0, metavar="N_SUB")
    a = ap.parse_args()
    for name in ("n", "d", "m", "k", "knn", "clusters"):
        if getattr(a, name) < 1:
            ap.error(f"--{name} expects an integer >= 1, found {getattr(a, name)}")
    if a.k > min(a.n, a.m):
        ap.error(f"--k expects at most min(--n, --m), found {a.k}")
    if a.accuracy and not 8192 < a.accuracy <= a.n:
        ap.error(f"--accuracy expects 8,192 < N_SUB <= --n (below 8,193 ncut_fn does not sample), found {a.accuracy}")

    import torch
    threads = a.threads or int(os.environ.get("OMP_NUM_THREADS", os.cpu_count()))
    torch.set_num_threads(threads)
    x = clustered(a.n, a.d, a.clusters, a.seed)
    X = torch.from_numpy(x)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the input, torch and the fixed costs
    c0, t0 = cpu_seconds(), time.perf_counter()
    vec = nystrom(X, a)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    if tuple(vec.shape) != (a.n, a.k) or not torch.isfinite(vec).all():
        sys.exit(f"ncut_scale_peer.py: ncut_fn returned {tuple(vec.shape)} (expected ({a.n}, {a.k})) "
                 "or non-finite values")
    out = {"impl": "ncut-pytorch", "n": a.n, "d": a.d, "m": a.m, "k": a.k, "knn": a.knn, "clusters": a.clusters,
           "threads": threads, "seconds": round(wall, 4), "cpu_seconds": round(cpu, 4), "peak_rss_mb": round(rss, 1),
           "rss_before_mb": round(rss0, 1), "input_mb": round(x.nbytes / 2**20, 1)}
    if a.accuracy:
        xs = X[:a.accuracy].contiguous()
        c = principal_cosines(nystrom(xs, a).numpy(), exact(xs, a.k))
        out.update({"acc_n": a.accuracy, "acc_m": min(a.m, a.accuracy // 4), "acc_mean_cos": round(float(c.mean()), 6),
                    "acc_min_cos": round(float(c.min()), 6)})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
