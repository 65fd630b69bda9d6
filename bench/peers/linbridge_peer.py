#!/usr/bin/env python3
"""Peer of bench/bench_linbridge.cpp: the whole LinBridge analysis (JM_inherent, per-voxel energy
share E||dJM_v||^2 / E||JM_v||^2, the gains <dJM_v(z), JM_inherent_v> / ||JM_inherent_v||^2 and AFD
along each voxel's predicted-response order; docs/linbridge.md) for the two-layer encoder
F -> H (sigmoid) -> V over N stimuli, done the direct way: per-stimulus Jacobians (V, F) with
torch.func.vmap(jacfwd(f)) over chunks of stimuli, then the reductions (pass 1: sum of J and of
J^2; pass 2: the gains, which need JM_inherent). Memory holds one chunk's Jacobians,
chunk * V * F floats. Weights drawn with the scales of bench_linbridge (not the same numbers).

Prints one line per run and, with --json PATH, writes peer_protocol.py's file: {"peer": ...,
"results": [{"case": "linbridge F-H-V N=n", "seconds": best pass, "mean_seconds": ...,
"ms_per_stimulus": ..., "jacobian_chunk_bytes": ...}]}. --cases, --min-time as in peer_protocol.py (the
one case is the label above, for the sizes given); --warmup N runs N warm-up passes over the first
2 * chunk stimuli only (a full pass takes seconds per stimulus), 1 by default.

Usage: python3 bench/peers/linbridge_peer.py [--n 1000] [--f 512] [--h 1024] [--v 20000]
       [--chunk 4] [--device cpu] [--threads 0] [--repeat 1] [--json out.json]
       (bench/tables.py runs it at --n 8 --v 2000 beside bench_linbridge's BM_linbridge_two_layer_v2000)
"""
import argparse

import torch
from torch.func import jacfwd, vmap

import peer_protocol


def analysis(f, z, chunk, sync):
    n = z.shape[0]
    with torch.no_grad():
        pred = f(z)
        jac = vmap(jacfwd(f))
        jsum = None
        sq = None
        for s in range(0, n, chunk):
            j = jac(z[s:s + chunk]).double()  # (c, V, F)
            jsum = j.sum(0) if jsum is None else jsum + j.sum(0)
            q = (j * j).sum((0, 2))
            sq = q if sq is None else sq + q
        jbar = jsum / n
        norm2 = (jbar * jbar).sum(1)
        share = (sq / n - norm2) / (sq / n)
        gains = []
        for s in range(0, n, chunk):
            j = jac(z[s:s + chunk]).double()
            gains.append(torch.einsum("cvf,vf->cv", j - jbar, jbar) / norm2)
        gain = torch.cat(gains)
        ranks = pred.argsort(0).argsort(0).double() / (n - 1) - 0.5
        slope = (ranks * gain).sum(0) / (n * (n + 1) / (12.0 * (n - 1)))
        afd = slope.abs()
        sync()
    return share, afd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--f", type=int, default=512)
    ap.add_argument("--h", type=int, default=1024)
    ap.add_argument("--v", type=int, default=20000)
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="timed passes (at least)")
    ap.add_argument("--json", default="")
    peer_protocol.add_arguments(ap)
    a = ap.parse_args()
    case = f"linbridge {a.f}-{a.h}-{a.v} N={a.n}"
    if not peer_protocol.selected(a, [case]):
        return
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(7)
    w1 = (torch.randn(a.h, a.f, generator=g) / a.f ** 0.5 * 2).to(dev)
    b1 = (torch.randn(a.h, generator=g) * 0.5).to(dev)
    w2 = (torch.randn(a.v, a.h, generator=g) / a.h ** 0.5).to(dev)
    b2 = torch.zeros(a.v, device=dev)
    z = torch.randn(a.n, a.f, generator=g).to(dev)

    def f(x):
        return torch.nn.functional.linear(torch.sigmoid(torch.nn.functional.linear(x, w1, b1)), w2, b2)

    for _ in range(a.warmup):
        analysis(f, z[: min(a.n, 2 * a.chunk)], a.chunk, sync)
    out = []
    r = peer_protocol.measure(lambda: out.append(analysis(f, z, a.chunk, sync)), a.repeat, a.min_time, 0)
    share, afd = out[-1]
    sec = r["mean_seconds"]
    chunk_bytes = a.chunk * a.v * a.f * 8
    print(f"{case} torch.func vmap(jacfwd) {dev.type} ({torch.get_num_threads()} threads): {sec:.2f} s, "
          f"{sec / a.n * 1e3:.1f} ms per stimulus, one chunk's Jacobians {chunk_bytes / 2**20:.0f} MiB "
          f"(mean share {share.mean():.4f}, mean AFD {afd.mean():.4f})")
    peer_protocol.write_json(a.json, f"torch.func {torch.__version__}",
                             [{"case": case, **r, "ms_per_stimulus": sec / a.n * 1e3,
                               "jacobian_chunk_bytes": chunk_bytes}], torch.get_num_threads(),
                             {"torch": torch.__version__})


if __name__ == "__main__":
    main()
