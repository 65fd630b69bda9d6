#!/usr/bin/env python3
"""Peer of bench/bench_models.cpp: the same backbones in PyTorch on the CPU, images/s.

AlexNet, ResNet-50 and ViT-B/16 at 224 px, batch 1 and 64, random weights, float32,
torch.inference_mode(), threads from OMP_NUM_THREADS (set it to 2 to match the C++ figures).
torchvision's models are used when torchvision is installed; otherwise the reference modules of
tests/data/make_fixtures.py, which have the same layers and arithmetic. ResNet-50's batch norms are
folded into the convs (torch.fx-free: by hand), as bench_models does.

On a GPU (--device cuda, scripts/gpu-check.sh): PyTorch eager on the same device, float32 or
bfloat16 (--dtype bf16: weights and input cast, as autocast-free bf16 inference), timed with
synchronisation around each pass. --json PATH writes {"peer": ..., "results": [{"case": "<model>
b<batch> <device> <dtype>", "seconds": best}]}, the cases bench_models labels its rows with, so
scripts/gpu-ratios.py pairs them.

Usage: OMP_NUM_THREADS=2 python3 bench/peers/models_peer.py [--repeat 3] [--batches 1,64]
       python3 bench/peers/models_peer.py --device cuda --batches 256 [--dtype fp32,bf16] --json out.json
"""
import argparse
import importlib.util
import json
import os
import time

import torch


def reference_models():
    try:
        import torchvision.models as tvm
        return {"alexnet": tvm.alexnet, "resnet50": tvm.resnet50, "vit_b_16": tvm.vit_b_16}
    except ImportError:
        path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "make_fixtures.py")
        spec = importlib.util.spec_from_file_location("make_fixtures", path)
        fx = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fx)
        return {
            "alexnet": lambda: fx.AlexNet(),
            "resnet50": lambda: fx.ResNet(fx.Bottleneck, [3, 4, 6, 3], [64, 128, 256, 512], 64, 1000),
            "vit_b_16": lambda: fx.TorchvisionViT(224, 16, 12, 768, 12, 3072, 1000),
        }


def fold_bn(model):
    """Folds every BatchNorm2d that directly follows a Conv2d in a module's attribute order."""
    for mod in model.modules():
        children = list(mod.named_children())
        for (na, a), (nb, b) in zip(children, children[1:]):
            if isinstance(a, torch.nn.Conv2d) and isinstance(b, torch.nn.BatchNorm2d):
                s = b.weight / torch.sqrt(b.running_var + b.eps)
                a.weight.data *= s.reshape(-1, 1, 1, 1)
                bias = a.bias if a.bias is not None else torch.zeros_like(b.running_mean)
                a.bias = torch.nn.Parameter(b.bias + (bias - b.running_mean) * s)
                setattr(mod, nb, torch.nn.Identity())
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="fp32", help="comma-separated: fp32, bf16")
    ap.add_argument("--json", default="", help="write the best times here (scripts/gpu-ratios.py reads them)")
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}")
    results = []
    for name, ctor in reference_models().items():
        base = ctor().eval()
        if name == "resnet50":
            base = fold_bn(base)
        for dn in args.dtype.split(","):
            model = base.to(device=dev, dtype=dtypes[dn])
            for b in [int(v) for v in args.batches.split(",")]:
                x = torch.randn(b, 3, 224, 224, device=dev, dtype=dtypes[dn])
                with torch.inference_mode():
                    model(x)  # warm-up
                    sync()
                    best = best_cpu = float("inf")
                    for _ in range(args.repeat):
                        t, c = time.perf_counter(), time.process_time()
                        model(x)
                        sync()
                        best = min(best, time.perf_counter() - t)
                        best_cpu = min(best_cpu, time.process_time() - c)
                # CPU time is what to compare on a shared machine (with 1 thread it is the work done).
                print(f"{name} b{b} {dn}: {best * 1e3:.1f} ms, {b / best:.1f} images/s; "
                      f"cpu {best_cpu * 1e3:.1f} ms, {b / best_cpu:.1f} images/cpu-s")
                results.append({"case": f"{name} b{b} {dev.type} {dn}", "seconds": best})
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"peer": f"PyTorch {torch.__version__} eager", "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
