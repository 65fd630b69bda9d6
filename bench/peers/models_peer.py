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
b<batch> <device> <dtype>", "seconds": best, "mean_seconds": mean, ...}]}, the cases bench_models
labels its rows with, so scripts/gpu-ratios.py pairs them; --cases, --min-time, --warmup as in
peer_protocol.py (scripts/bench_tables.py runs it so, interleaved with bench_models).

Usage: OMP_NUM_THREADS=2 python3 bench/peers/models_peer.py [--repeat 3] [--batches 1,64] [--cases "alexnet b1 cpu fp32"]
       python3 bench/peers/models_peer.py --device cuda --batches 256 [--dtype fp32,bf16] --json out.json
"""
import argparse
import importlib.util
import os
import sys
import time
import types

import torch

import peer_protocol


def reference_models():
    try:
        import torchvision.models as tvm
        return {"alexnet": tvm.alexnet, "resnet50": tvm.resnet50, "vit_b_16": tvm.vit_b_16}
    except ImportError:
        path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "make_fixtures.py")
        if importlib.util.find_spec("safetensors") is None:
            # make_fixtures imports safetensors only to write fixture files, which the peer never does.
            st = types.ModuleType("safetensors.torch")
            st.save_file = None
            sys.modules["safetensors"] = types.ModuleType("safetensors")
            sys.modules["safetensors.torch"] = st
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
    ap.add_argument("--json", default="", help="write the times here (scripts/bench_tables.py, scripts/gpu-ratios.py)")
    peer_protocol.add_arguments(ap)
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    batches = [int(v) for v in args.batches.split(",")]
    ctors = reference_models()
    case = lambda name, b, dn: f"{name} b{b} {dev.type} {dn}"  # noqa: E731 (bench_models' labels)
    known = [case(n, b, dn) for n in ctors for dn in args.dtype.split(",") for b in batches]
    todo = set(peer_protocol.selected(args, known))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}")
    results = []
    for name, ctor in ctors.items():
        if not any(c.startswith(name + " ") for c in todo):
            continue  # ViT-B/16 alone takes seconds to build
        base = ctor().eval()
        if name == "resnet50":
            base = fold_bn(base)
        for dn in args.dtype.split(","):
            model = base.to(device=dev, dtype=dtypes[dn])
            for b in batches:
                if case(name, b, dn) not in todo:
                    continue
                x = torch.randn(b, 3, 224, 224, device=dev, dtype=dtypes[dn])
                c0 = time.process_time()
                with torch.inference_mode():
                    r = peer_protocol.measure(lambda: model(x), args.repeat, args.min_time, args.warmup, sync)
                # With 1 thread, CPU time is the work done (what to compare on a shared machine).
                cpu = (time.process_time() - c0) / (r["iterations"] + args.warmup)
                print(f"{name} b{b} {dn}: best {r['seconds'] * 1e3:.1f} ms, mean {r['mean_seconds'] * 1e3:.1f} ms "
                      f"of {r['iterations']}, {b / r['seconds']:.1f} images/s; cpu {cpu * 1e3:.1f} ms per pass")
                results.append({"case": case(name, b, dn), **r})
    peer_protocol.write_json(args.json, f"PyTorch {torch.__version__} eager", results, torch.get_num_threads(),
                             {"torch": torch.__version__})


if __name__ == "__main__":
    main()
