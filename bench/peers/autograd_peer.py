#!/usr/bin/env python3
"""Peer of bench/bench_autograd.cpp's encoder Jacobian: d f / d z of the two-layer encoder
512 -> 1024 (sigmoid) -> 2000 for one stimulus, by torch.func: vmap(jacfwd) (forward mode, every
tangent in one batched pass) and vmap(jacrev) (reverse mode), under torch.no_grad as the C++
rows run under NoGradGuard. Weights drawn with the same shapes and scales (not
the same numbers).

--json PATH writes {"peer": ..., "results": [{"case": "encoder_jacobian forward <device>",
"seconds": best, "mean_seconds": mean, ...}, ...]}, the labels of bench_autograd's
BM_encoder_jacobian_*_cuda rows, so scripts/gpu-ratios.py pairs them; --cases, --min-time, --warmup as
in peer_protocol.py (scripts/bench_tables.py runs the CPU cases beside the *_nograd rows).

Usage: python3 bench/peers/autograd_peer.py [--device cuda] [--repeat 20] [--json out.json]
"""
import argparse

import torch
from torch.func import jacfwd, jacrev

import peer_protocol


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", default="")
    peer_protocol.add_arguments(ap)
    a = ap.parse_args()
    dev = torch.device(a.device)
    todo = peer_protocol.selected(a, [f"encoder_jacobian {m} {dev.type}" for m in ("forward", "reverse")])
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
        name = f"encoder_jacobian {mode} {dev.type}"
        if name not in todo:
            continue
        with torch.no_grad():
            assert fn(z).shape == (2000, 512)
            r = peer_protocol.measure(lambda: fn(z), a.repeat, a.min_time, a.warmup, sync)
        print(f"{name}: best {r['seconds'] * 1e3:.3f} ms, mean {r['mean_seconds'] * 1e3:.3f} ms "
              f"(torch.func jac{'fwd' if mode == 'forward' else 'rev'})")
        results.append({"case": name, **r})
    peer_protocol.write_json(a.json, f"torch.func {torch.__version__}", results, torch.get_num_threads(),
                             {"torch": torch.__version__})


if __name__ == "__main__":
    main()
