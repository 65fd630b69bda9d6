#!/usr/bin/env python3
"""Peer of bench/bench_attribute.cpp: integrated gradients of one 224 px image over 50 steps
through AlexNet (random weights, torchvision's layer sizes up to features.9) + a Gaussian readout of
1,000 voxels at evaluation (grid_sample at the mean positions, align_corners=True, as
models::GaussianReadout), for one voxel, CPU, float32, in PyTorch eager. The path is Captum's batched
one (IntegratedGradients with internal_batch_size=None): all the scaled inputs b + a_k (x - b) in one
batch, one forward, torch.autograd.grad of the target's sum with respect to the batch, the weighted
sum over the path, times (x - b). The same 51 points and trapezoid weights as the C++ side (Captum's
default Gauss-Legendre rule would use 50 points: the same work to within 2 %).

Prints one line and, with --json PATH, writes peer_protocol.py's file (case "ig alexnet+gaussian
steps=50"). --cases, --min-time, --warmup as in peer_protocol.py.

Usage: python3 bench/peers/attribute_peer.py [--steps 50] [--threads 0] [--repeat 1] [--json out.json]
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

import peer_protocol


def alexnet_to_features9():
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True))


class Gaussian(nn.Module):
    def __init__(self, c, v, g):
        super().__init__()
        self.mu = nn.Parameter((torch.rand(v, 2, generator=g) * 2 - 1) * 0.5)
        self.features = nn.Parameter(torch.randn(v, c, generator=g) / c ** 0.5)
        self.bias = nn.Parameter(torch.zeros(v))

    def forward(self, m):
        b = m.shape[0]
        grid = self.mu.clamp(-1, 1).view(1, -1, 1, 2).expand(b, -1, -1, -1)
        s = F.grid_sample(m, grid, mode="bilinear", padding_mode="zeros", align_corners=True)  # (B, C, V, 1)
        return torch.einsum("bcv,vc->bv", s[..., 0], self.features) + self.bias


def integrated_gradients(f, x, b, target, steps):
    alpha = torch.linspace(0, 1, steps + 1).view(-1, 1, 1, 1)
    w = torch.full((steps + 1,), 1.0 / steps)
    w[0] = w[-1] = 0.5 / steps
    pts = (b + alpha * (x - b)).requires_grad_(True)
    y = f(pts)[:, target]
    (g,) = torch.autograd.grad(y.sum(), pts)
    attr = (x - b) * (g * w.view(-1, 1, 1, 1)).sum(0)
    return attr, y.detach()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1, help="timed passes (at least)")
    ap.add_argument("--json", default="")
    peer_protocol.add_arguments(ap)
    a = ap.parse_args()
    case = f"ig alexnet+gaussian steps={a.steps}"
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

    x = torch.rand(3, 224, 224, generator=g)
    b = torch.zeros(3, 224, 224)
    out = []
    r = peer_protocol.measure(lambda: out.append(integrated_gradients(f, x, b, 17, a.steps)), a.repeat, a.min_time,
                              a.warmup)
    attr, y = out[-1]
    err = abs(attr.double().sum().item() - (y[-1] - y[0]).item()) / abs((y[-1] - y[0]).item())
    print(f"{case} torch {torch.__version__} cpu ({torch.get_num_threads()} threads): "
          f"{r['mean_seconds'] * 1e3:.0f} ms per image, completeness error {100 * err:.3f}%")
    peer_protocol.write_json(a.json, f"torch {torch.__version__} (Captum-style batched path)",
                             [{"case": case, **r, "completeness_err": err}], torch.get_num_threads(),
                             {"torch": torch.__version__})


if __name__ == "__main__":
    main()
