#!/usr/bin/env python3
"""Peer of bench/bench_ridge.cpp: ridge CV by SVD in NumPy, the same algorithm as
models/readouts/ridge.cpp (and himalaya's solve_ridge_cv_svd): 5 shuffled folds, one thin SVD of
the centred training features per fold, every one of 10 penalties (1e-2..1e7) scored by R^2 on the
held-out fold for every voxel (voxels in batches of 4,096), then a refit on all rows with each
voxel's best penalty. float32 inputs, float64 arithmetic (as the C++ code). Same sizes and the same
distribution as the C++ bench, not the same numbers.

Also, with --sklearn, scikit-learn's RidgeCV(alpha_per_target=True): a different algorithm
(efficient leave-one-out / GCV, no k-fold), given as the library reference users know.

Usage: OMP_NUM_THREADS=2 python3 bench/peers/ridge_peer.py [--case small|medium|full] [--sklearn]
"""
import argparse
import time

import numpy as np

CASES = {"small": (2000, 1000, 5000), "medium": (4000, 2000, 10000), "full": (10000, 4000, 20000)}
ALPHAS = np.logspace(-2, 7, 10)


def problem(n, p, v, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p), dtype=np.float32)
    w = rng.standard_normal((p, v), dtype=np.float32) / np.sqrt(p)
    y = x @ w + 2.0 * rng.standard_normal((n, v), dtype=np.float32)
    return x, y


def ridge_cv_svd(x, y, alphas, folds=5, seed=0, batch=4096):
    n, p = x.shape
    v = y.shape[1]
    perm = np.random.default_rng(seed).permutation(n)
    scores = np.zeros((len(alphas), v))
    x64 = x.astype(np.float64)
    for f in range(folds):
        va = perm[n * f // folds:n * (f + 1) // folds]
        tr = np.setdiff1d(perm, va)
        xtr = x64[tr]
        mx = xtr.mean(0)
        xtr -= mx
        xva = x64[va] - mx
        u, s, vh = np.linalg.svd(xtr, full_matrices=False)
        xvv = xva @ vh.T
        for v0 in range(0, v, batch):
            yb = y[:, v0:v0 + batch].astype(np.float64)
            ytr = yb[tr]
            my = ytr.mean(0)
            ytr -= my
            yva = yb[va] - my
            sst = ((yva - yva.mean(0)) ** 2).sum(0)
            uty = u.T @ ytr
            for a, alpha in enumerate(alphas):
                pred = xvv @ ((s / (s * s + alpha))[:, None] * uty)
                r2 = 1 - ((yva - pred) ** 2).sum(0) / np.where(sst > 0, sst, 1)
                scores[a, v0:v0 + batch] += np.where(sst > 0, r2, 0) / folds
    best = alphas[scores.argmax(0)]
    mx = x64.mean(0)
    u, s, vh = np.linalg.svd(x64 - mx, full_matrices=False)
    w = np.empty((p, v))
    b = np.empty(v)
    for v0 in range(0, v, batch):
        yb = y[:, v0:v0 + batch].astype(np.float64)
        my = yb.mean(0)
        d = s[:, None] / (s[:, None] ** 2 + best[None, v0:v0 + batch])
        w[:, v0:v0 + batch] = vh.T @ (d * (u.T @ (yb - my)))
        b[v0:v0 + batch] = my - mx @ w[:, v0:v0 + batch]
    return w.astype(np.float32), b.astype(np.float32), best, scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="small", choices=CASES)
    ap.add_argument("--sklearn", action="store_true")
    args = ap.parse_args()
    n, p, v = CASES[args.case]
    x, y = problem(n, p, v)
    t = time.perf_counter()
    ridge_cv_svd(x, y, ALPHAS)
    dt = time.perf_counter() - t
    print(f"numpy ridge_cv_svd {args.case} n={n} p={p} v={v}: {dt:.2f} s, {v / dt:.0f} voxels/s")
    if args.sklearn:
        from sklearn.linear_model import RidgeCV
        t = time.perf_counter()
        RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(x, y)
        dt = time.perf_counter() - t
        print(f"sklearn RidgeCV(GCV, alpha_per_target) {args.case}: {dt:.2f} s, {v / dt:.0f} voxels/s")


if __name__ == "__main__":
    main()
