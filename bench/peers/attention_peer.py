#!/usr/bin/env python3
"""Peer of bench/bench_attention.cpp: scaled dot-product attention in PyTorch, ms per call.

ViT-B/16's shape, B x 12 heads x 197 tokens x 64, float32, q/k/v as selects of one packed
(B, L, 3 * 768) tensor permuted to (3, B, H, L, D), as the C++ benchmark builds them:
  forward   torch.nn.functional.scaled_dot_product_attention under torch.inference_mode()
            (the fused flash / memory-efficient kernel on CUDA, the math path on the CPU);
  vjp       torch.func.vjp through SDPA, pullback with one cotangent;
  jvp       torch.func.jvp through the *math* path (softmax(q k^T s) v written out): PyTorch's
            fused SDPA kernels have no forward-mode AD, which is what cortex's fused JVP adds.
Runs on cuda when present (timed with torch.cuda.synchronize around each call), else on the CPU,
threads from OMP_NUM_THREADS. Each figure: the best of --repeat passes of --iters calls after a warm-up.

Usage: OMP_NUM_THREADS=1 python3 bench/peers/attention_peer.py [--batches 1,8] [--repeat 3] [--iters 10]
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F

HEADS, TOKENS, HEAD = 12, 197, 64


def make(batch, device, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, TOKENS, 3 * HEADS * HEAD, generator=g).to(device)
    t = x.reshape(batch, TOKENS, 3, HEADS, HEAD).permute(2, 0, 3, 1, 4)
    return t[0], t[1], t[2]


def math_attention(q, k, v):
    s = 1.0 / math.sqrt(q.shape[-1])
    return torch.softmax((q @ k.transpose(-1, -2)) * s, dim=-1) @ v


def timed(fn, device, iters, repeat):
    fn()  # warm-up (and cuDNN / kernel selection)
    best = float("inf")
    for _ in range(repeat):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / iters)
    return best * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8 cpu; 1,8,64 cuda)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batches = [int(b) for b in (args.batches or ("1,8,64" if device == "cuda" else "1,8")).split(",")]
    print(f"# torch {torch.__version__} on {device}, threads {torch.get_num_threads()}")
    print(f"{'what':<34} {'ms':>9}")
    for b in batches:
        q, k, v = make(b, device, 3)
        tq, tk, tv = make(b, device, 4)

        def fwd():
            with torch.inference_mode():
                return F.scaled_dot_product_attention(q, k, v)

        def vjp():
            _, pull = torch.func.vjp(F.scaled_dot_product_attention, q, k, v)
            return pull(tq)

        def jvp():
            return torch.func.jvp(math_attention, (q, k, v), (tq, tk, tv))

        for name, fn in (("sdpa forward", fwd), ("sdpa vjp", vjp), ("math-path jvp", jvp)):
            print(f"{name + ' b' + str(b) + ' ' + device:<34} {timed(fn, device, args.iters, args.repeat):9.3f}")


if __name__ == "__main__":
    main()
