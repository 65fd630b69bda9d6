#!/usr/bin/env python3
"""Peer of bench/bench_dream.cpp: a maximally exciting image, 200 Adam steps (lr 0.05) on one 224 px
image through AlexNet (random weights, torchvision's layer sizes up to features.9) + a Gaussian readout
of 1,000 voxels at evaluation (grid_sample at the mean positions, align_corners=True, as
models::GaussianReadout), for one voxel, CPU, float32, in PyTorch eager. The same parameterisation and
loss as analysis::dream (docs/dream.md): a half spectrum (1, 3, 224, 113) re and im, start N(0, 0.01),
scaled by 1 / max(|f|, 1/224), torch.fft.irfft2 with norm="ortho", / 4, sigmoid; each step the image
rolled by up to 4 px (torch.roll), loss = -target + 0.01 TV + 0.01 mean((x - 1/2)^2), torch.optim.Adam.

Prints one line and, with --json PATH, writes peer_protocol.py's file (case "dream alexnet+gaussian
steps=200"). --cases, --min-time, --warmup as in peer_protocol.py.

Usage: python3 bench/peers/dream_peer.py [--steps 200] [--threads 0] [--repeat 1] [--json out.json]
"""
import argparse

import torch

import peer_protocol
from attribute_peer import Gaussian, alexnet_to_features9


def fft_scale(h, w):
    fy = torch.fft.fftfreq(h).view(-1, 1)
    fx = torch.fft.rfftfreq(w).view(1, -1)
    return 1.0 / torch.maximum(torch.sqrt(fy * fy + fx * fx), torch.tensor(1.0 / max(h, w)))


def dream(f, size, target, steps, lr=0.05, jitter=4, tv=0.01, l2=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    wf = size // 2 + 1
    re = (torch.randn(1, 3, size, wf, generator=g) * 0.01).requires_grad_(True)
    im = (torch.randn(1, 3, size, wf, generator=g) * 0.01).requires_grad_(True)
    s = fft_scale(size, size)
    opt = torch.optim.Adam([re, im], lr=lr)

    def image():
        return torch.sigmoid(torch.fft.irfft2(torch.complex(re * s, im * s), s=(size, size), norm="ortho") / 4)

    for _ in range(steps):
        x = image()
        dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=g).tolist()
        y = f(torch.roll(x, (dy, dx), (2, 3)))[:, target]
        loss = -y.sum()
        loss = loss + tv * ((x[:, :, 1:] - x[:, :, :-1]).abs().mean((1, 2, 3))
                            + (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean((1, 2, 3))).sum()
        loss = loss + l2 * ((x - 0.5) ** 2).mean((1, 2, 3)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = image()
        return x, f(x)[0, target].item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="timed passes (at least)")
    ap.add_argument("--json", default="")
    peer_protocol.add_arguments(ap)
    a = ap.parse_args()
    case = f"dream alexnet+gaussian steps={a.steps}"
    if not peer_protocol.selected(a, [case]):
        return
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(1)  # the layers' default initialisation draws from the global generator
    g = torch.Generator().manual_seed(1)
    backbone = alexnet_to_features9().eval()
    readout = Gaussian(256, 1000, g).eval()
    for p in list(backbone.parameters()) + list(readout.parameters()):
        p.requires_grad_(False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    sd = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def f(p):
        return readout(backbone((p - mean) / sd))

    out = []
    r = peer_protocol.measure(lambda: out.append(dream(f, 224, 17, a.steps)), a.repeat, a.min_time, a.warmup)
    x, resp = out[-1]
    print(f"{case} torch {torch.__version__} cpu ({torch.get_num_threads()} threads): "
          f"{r['mean_seconds'] * 1e3:.0f} ms per image, final response {resp:.4g}")
    peer_protocol.write_json(a.json, f"torch {torch.__version__}", [{"case": case, **r, "response": resp}],
                             torch.get_num_threads(), {"torch": torch.__version__})


if __name__ == "__main__":
    main()
