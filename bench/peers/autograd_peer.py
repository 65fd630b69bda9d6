#!/usr/bin/env python3
"""Peer of bench/bench_autograd.cpp's encoder Jacobian: d f / d z of the two-layer encoder
512 -> 1024 (sigmoid) -> 2000 for one stimulus, by torch.func: vmap(jacfwd) (forward mode, every
tangent in one batched pass) and vmap(jacrev) (reverse mode), under torch.no_grad as the C++
rows run under NoGradGuard. Weights drawn with the same shapes and scales (not
the same numbers).

--json PATH writes {"peer": ..., "results": [{"case": "encoder_jacobian forward <device>",
"seconds": best}, ...]}, the labels of bench_autograd's BM_encoder_jacobian_*_cuda rows, so
scripts/gpu-ratios.py pairs them.

Usage: python3 bench/peers/autograd_peer.py [--device cuda] [--repeat 20] [--json out.json]
"""
import argparse
import json
import time

import torch
from torch.func import jacfwd, jacrev


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(4)
    z = torch.randn(512, generator=g).to(dev)
    w1 = (torch.randn(1024, 512, generator=g) * 0.04).to(dev)
    b1 = torch.zeros(1024, device=dev)
    w2 = (torch.randn(2000, 1024, generator=g) * 0.03).to(dev)
    b2 = torch.zeros(2000, device=dev)

    def f(x):
        return torch.nn.functional.linear(torch.sigmoid(torch.nn.functional.linear(x, w1, b1)), w2, b2)

    results = []
    for mode, fn in (("forward", jacfwd(f)), ("reverse", jacrev(f))):
        with torch.no_grad():
            j = fn(z)  # warm-up
            assert j.shape == (2000, 512)
            sync()
            best = float("inf")
            for _ in range(a.repeat):
                t = time.perf_counter()
                fn(z)
                sync()
                best = min(best, time.perf_counter() - t)
        print(f"encoder_jacobian {mode} {dev.type}: {best * 1e3:.3f} ms (torch.func jac{'fwd' if mode == 'forward' else 'rev'})")
        results.append({"case": f"encoder_jacobian {mode} {dev.type}", "seconds": best})
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"peer": f"torch.func {torch.__version__}", "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
