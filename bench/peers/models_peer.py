#!/usr/bin/env python3
"""Peer of bench/bench_models.cpp: the same backbones in PyTorch on the CPU, images/s.

AlexNet, ResNet-50 and ViT-B/16 at 224 px, batch 1 and 64, random weights, float32,
torch.inference_mode(), threads from OMP_NUM_THREADS (set it to 2 to match the C++ figures).
torchvision's models are used when torchvision is installed; otherwise the reference modules of
tests/data/make_fixtures.py, which have the same layers and arithmetic. ResNet-50's batch norms are
folded into the convs (torch.fx-free: by hand), as bench_models does.

Usage: OMP_NUM_THREADS=2 python3 bench/peers/models_peer.py [--repeat 3] [--batches 1,64]
"""
import argparse
import importlib.util
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
    args = ap.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, ctor in reference_models().items():
        model = ctor().eval()
        if name == "resnet50":
            model = fold_bn(model)
        for b in [int(v) for v in args.batches.split(",")]:
            x = torch.randn(b, 3, 224, 224)
            with torch.inference_mode():
                model(x)  # warm-up
                best = best_cpu = float("inf")
                for _ in range(args.repeat):
                    t, c = time.perf_counter(), time.process_time()
                    model(x)
                    best = min(best, time.perf_counter() - t)
                    best_cpu = min(best_cpu, time.process_time() - c)
            # CPU time is what to compare on a shared machine (with 1 thread it is the work done).
            print(f"{name} b{b}: {best * 1e3:.1f} ms, {b / best:.1f} images/s; "
                  f"cpu {best_cpu * 1e3:.1f} ms, {b / best_cpu:.1f} images/cpu-s")


if __name__ == "__main__":
    main()
