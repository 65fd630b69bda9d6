#!/usr/bin/env python3
"""Peer of bench/bench_ridge.cpp: 5-fold ridge CV with a per-voxel penalty in NumPy/SciPy.
Both run the same cross-validation: 5 shuffled folds, every one of 10 penalties (1e-2..1e7) scored
by R^2 on the held-out fold for every voxel (voxels in batches of 4,096), then a refit on all rows
with each voxel's best penalty. Same sizes and the same distribution as the C++ bench, not the same
numbers (NumPy draws the data and the folds).

--algo gram (default): the algorithm of models/readouts/ridge.cpp (docs/ridge.md): one float64 Gram
  of the globally centred features, per fold its exact centring corrections, per penalty a float64
  Cholesky (scipy.linalg.cho_factor / cho_solve, LAPACK potrf/potrs) giving the (nva, p) map M,
  and M @ (X_tr^T Y_tr) in float32 with the R^2 sums in float64. The dual form (n_tr < p) as there.
--algo svd: himalaya's solve_ridge_cv_svd, which ridge.cpp used before: one thin SVD of the
  centred training features per fold, float64 throughout.
--sklearn: also scikit-learn's RidgeCV(alpha_per_target=True): a different algorithm (efficient
  leave-one-out / GCV, no k-fold), given as the library reference users know.

Usage: OMP_NUM_THREADS=2 python3 bench/peers/ridge_peer.py [--case small|medium|full]
       [--algo gram|svd] [--sklearn] [--json out.json]
--cases "ridge_cv small;ridge_cv medium", --min-time, --warmup (default 0 here) and --json as in
peer_protocol.py: scripts/bench_tables.py runs it so, interleaved with bench_ridge.
"""
import argparse
import time

import numpy as np
import scipy
import scipy.linalg

import peer_protocol

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


def ridge_cv_gram(x, y, alphas, folds=5, seed=0, batch=4096):
    n, p = x.shape
    v = y.shape[1]
    dt = x.dtype
    perm = np.random.default_rng(seed).permutation(n)
    x64 = x.astype(np.float64)
    mx = x64.mean(0)
    xc64 = x64 - mx
    xc = xc64.astype(dt)
    my = y.mean(0, dtype=np.float64)
    bounds = [(n * f // folds, n * (f + 1) // folds) for f in range(folds)]
    primal = n - max(hi - lo for lo, hi in bounds) >= p
    gram = xc64.T @ xc64 if primal else xc64 @ xc64.T
    xty = None
    if primal:
        xty = np.empty((p, v), dt)
        for v0 in range(0, v, batch):
            xty[:, v0:v0 + batch] = xc.T @ (y[:, v0:v0 + batch] - my[v0:v0 + batch]).astype(dt)
    scores = np.zeros((len(alphas), v))
    for lo, hi in bounds:
        va = perm[lo:hi]
        tr = np.concatenate([perm[:lo], perm[hi:]])
        ntr = len(tr)
        if primal:
            mxf = xc64[tr].mean(0)
            xva64 = xc64[va]
            s = gram - xva64.T @ xva64 - ntr * np.outer(mxf, mxf)
            c = xva64 - mxf
            xva = xc[va]
        else:
            ktt, kvt = gram[np.ix_(tr, tr)], gram[np.ix_(va, tr)]
            rt, rv = ktt.mean(1), kvt.mean(1)
            kbar = rt.mean()
            s = ktt - rt[:, None] - rt[None, :] + kbar
            c = kvt - rv[:, None] - rt[None, :] + kbar
        eye = np.eye(len(s))
        maps = [scipy.linalg.cho_solve(scipy.linalg.cho_factor(s + alpha * eye, lower=True), c.T).T.astype(dt)
                for alpha in alphas]
        for v0 in range(0, v, batch):
            yb = (y[:, v0:v0 + batch] - my[v0:v0 + batch]).astype(dt)
            myf = yb[tr].mean(0, dtype=np.float64)
            yva = yb[va]
            t = yva.astype(np.float64) - myf
            const = (t == t[0]).all(0)
            sst = np.where(const, 1, ((t - t.mean(0)) ** 2).sum(0))
            if primal:
                rhs = (xty[:, v0:v0 + batch] - xva.T @ yva - ntr * np.outer(mxf, myf)).astype(dt)
            else:
                rhs = (yb[tr] - myf).astype(dt)
            for a, m in enumerate(maps):
                r2 = 1 - ((t - m @ rhs) ** 2).sum(0) / sst
                scores[a, v0:v0 + batch] += np.where(const, 0, r2) / folds
    best = scores.argmax(0)
    w = np.empty((p, v))
    for a in np.unique(best):
        cols = np.flatnonzero(best == a)
        cf = scipy.linalg.cho_factor(gram + alphas[a] * np.eye(len(gram)), lower=True)
        for c0 in range(0, len(cols), batch):
            cc = cols[c0:c0 + batch]
            if primal:
                w[:, cc] = scipy.linalg.cho_solve(cf, xty[:, cc].astype(np.float64))
            else:
                w[:, cc] = xc64.T @ scipy.linalg.cho_solve(cf, y[:, cc] - my[cc])
    b = my - mx @ w
    return w.astype(dt), b.astype(dt), alphas[best], scores


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="small", choices=CASES)
    ap.add_argument("--algo", default="gram", choices=("gram", "svd"))
    ap.add_argument("--sklearn", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="timed fits (at least)")
    ap.add_argument("--json", default="", help="write the times here (scripts/bench_tables.py)")
    peer_protocol.add_arguments(ap)
    ap.set_defaults(warmup=0)  # a fit takes seconds and allocates afresh each time, as bench_ridge's
    args = ap.parse_args()
    # Cases "ridge_cv <size>" (bench_ridge's BM_ridge_cv_scaled_<size>); --cases overrides --case.
    todo = peer_protocol.selected(args, [f"ridge_cv {c}" for c in CASES]) if args.cases else [f"ridge_cv {args.case}"]
    results = []
    for case in todo:
        name = case.split()[1]
        n, p, v = CASES[name]
        x, y = problem(n, p, v)
        fit = ridge_cv_gram if args.algo == "gram" else ridge_cv_svd
        r = peer_protocol.measure(lambda: fit(x, y, ALPHAS), args.repeat, args.min_time, args.warmup)
        print(f"numpy ridge_cv_{args.algo} {name} n={n} p={p} v={v}: {r['mean_seconds']:.2f} s "
              f"(cpu {r['mean_cpu_seconds']:.2f} s), {v / r['mean_seconds']:.0f} voxels/s")
        results.append({"case": case, **r})
        if args.sklearn:
            from sklearn.linear_model import RidgeCV
            t = time.perf_counter()
            RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(x, y)
            dt = time.perf_counter() - t
            print(f"sklearn RidgeCV(GCV, alpha_per_target) {name}: {dt:.2f} s, {v / dt:.0f} voxels/s")
    peer_protocol.write_json(args.json, f"NumPy {np.__version__} / SciPy {scipy.__version__} ({args.algo})", results,
                             None, {"numpy": np.__version__, "scipy": scipy.__version__})


if __name__ == "__main__":
    main()
