#!/usr/bin/env python3
"""Peer of bench/bench_fft.cpp: rfft2, irfft2 and the pair (rfft2 then irfft2) of a (1, 3, H, W)
float32 image with norm="ortho", torch.fft on the CPU (pocketfft inside), at the sizes of the C++
cases (224 x 224 for all three, 225 x 225 and 97 x 97 for the pair). Each case is one call; the
timing loop is peer_protocol.measure, over --calls calls per pass.

Prints one line per case (wall and process CPU time per call) and, with --json PATH, writes
peer_protocol.py's file. --cases, --min-time, --warmup as in peer_protocol.py.

Usage: python3 bench/peers/fft_peer.py [--threads 1] [--calls 200] [--repeat 7] [--json out.json]
"""
import argparse

import torch

import peer_protocol


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--calls", type=int, default=200, help="calls per timed pass")
    ap.add_argument("--repeat", type=int, default=7, help="timed passes (at least)")
    ap.add_argument("--json", default="")
    peer_protocol.add_arguments(ap)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(7)
    cases = {}
    for name, (h, w), op in [("rfft2 224x224", (224, 224), "rfft2"), ("irfft2 224x224", (224, 224), "irfft2"),
                             ("rfft2+irfft2 224x224", (224, 224), "pair"), ("rfft2+irfft2 225x225", (225, 225), "pair"),
                             ("rfft2+irfft2 97x97", (97, 97), "pair")]:
        x = torch.randn(1, 3, h, w, generator=g)
        y = torch.fft.rfft2(x, norm="ortho")
        if op == "rfft2":
            fn = (lambda x=x: torch.fft.rfft2(x, norm="ortho"))
        elif op == "irfft2":
            fn = (lambda y=y, h=h, w=w: torch.fft.irfft2(y, s=(h, w), norm="ortho"))
        else:
            fn = (lambda x=x, h=h, w=w: torch.fft.irfft2(torch.fft.rfft2(x, norm="ortho"), s=(h, w), norm="ortho"))
        cases[name] = fn
    results = []
    for name in peer_protocol.selected(a, list(cases)):
        fn = cases[name]

        def many(fn=fn):
            for _ in range(a.calls):
                fn()

        r = peer_protocol.measure(many, a.repeat, a.min_time, a.warmup)
        r = {k: (v / a.calls if k.endswith("seconds") else v) for k, v in r.items()}
        print(f"{name}: torch {torch.__version__} cpu ({torch.get_num_threads()} threads): "
              f"best {r['seconds'] * 1e6:.0f} us, mean {r['mean_seconds'] * 1e6:.0f} us, "
              f"process CPU {r['mean_cpu_seconds'] * 1e6:.0f} us per call")
        results.append({"case": name, **r})
    peer_protocol.write_json(a.json, f"torch {torch.__version__}", results, torch.get_num_threads(),
                             {"torch": torch.__version__})


if __name__ == "__main__":
    main()
