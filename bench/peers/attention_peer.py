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
threads from OMP_NUM_THREADS. Each figure: the mean of --repeat calls (and until --min-time) after a
warm-up. Cases are labelled as bench_attention labels its fused rows ("fused forward b8 cpu"); --json,
--cases, --min-time, --warmup as in peer_protocol.py (scripts/bench_tables.py, scripts/gpu-ratios.py).

Usage: OMP_NUM_THREADS=1 python3 bench/peers/attention_peer.py [--batches 1,8] [--repeat 10] [--device cpu]
"""
import argparse
import math

import torch
import torch.nn.functional as F

import peer_protocol

HEADS, TOKENS, HEAD = 12, 197, 64


def make(batch, device, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, TOKENS, 3 * HEADS * HEAD, generator=g).to(device)
    t = x.reshape(batch, TOKENS, 3, HEADS, HEAD).permute(2, 0, 3, 1, 4)
    return t[0], t[1], t[2]


def math_attention(q, k, v):
    s = 1.0 / math.sqrt(q.shape[-1])
    return torch.softmax((q @ k.transpose(-1, -2)) * s, dim=-1) @ v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1,8 cpu; 1,8,64 cuda)")
    ap.add_argument("--repeat", type=int, default=10, help="timed calls (at least)")
    ap.add_argument("--device", default="", help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--json", default="", help="write the times here (scripts/bench_tables.py, scripts/gpu-ratios.py)")
    peer_protocol.add_arguments(ap)
    args = ap.parse_args()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    batches = [int(b) for b in (args.batches or ("1,8,64" if device == "cuda" else "1,8")).split(",")]
    # The labels bench_attention gives its fused rows, so both scripts pair them.
    case = lambda what, b: f"fused {what} b{b} {device}"  # noqa: E731
    known = [case(w, b) for b in batches for w in ("forward", "vjp", "jvp")]
    todo = peer_protocol.selected(args, known)
    print(f"# torch {torch.__version__} on {device}, threads {torch.get_num_threads()}")
    print(f"{'what':<34} {'ms':>9}")
    results = []
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

        for what, name, fn in (("forward", "sdpa forward", fwd), ("vjp", "sdpa vjp", vjp), ("jvp", "math-path jvp", jvp)):
            if case(what, b) not in todo:
                continue
            r = peer_protocol.measure(fn, args.repeat, args.min_time, args.warmup, sync)
            print(f"{name + ' b' + str(b) + ' ' + device:<34} {r['mean_seconds'] * 1e3:9.3f}")
            results.append({"case": case(what, b), **r})
    peer_protocol.write_json(args.json, f"PyTorch {torch.__version__}", results, torch.get_num_threads(),
                             {"torch": torch.__version__})


if __name__ == "__main__":
    main()
