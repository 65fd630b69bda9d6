#!/usr/bin/env python3
"""Peer of bench/bench_image.cpp: PIL's decoding of the same files, timed the same way.

Both decode every file of one case from bytes already in memory to an RGB image (here
Image.open(BytesIO).convert("RGB"), what torchvision's pil_loader does; there io::decode_image
with ImageMode::RGB) on one thread, and report images per second over all files of the case.

The files are made here with PIL (--make, or on first use), 500 x 375 like an average ImageNet
photo and 425 x 425 like NSD's stimuli, with smooth colours, texture and edges:
  jpeg_420_q90     baseline JPEG, 4:2:0, quality 90 (PIL's default subsampling)
  jpeg_444_q95     baseline JPEG, 4:4:4, quality 95
  jpeg_progressive progressive JPEG, 4:2:0, quality 90
  png_rgb          8-bit RGB PNG (PIL's default compression)

Usage: OMP_NUM_THREADS=1 python3 bench/peers/image_peer.py [--dir DIR] [--make | --ensure] [--repeats N]
       [--cases "a;b"] [--min-time S] [--warmup N] [--json PATH]
       (DIR defaults to $CORTEX_BENCH_IMAGES or /tmp/cortex_bench_images; bench_image reads the same)
--make rewrites the files, then times them; --ensure writes them only where a case lacks files, then
exits (scripts/bench_tables.py runs it before the table, since bench_image runs first in each round).
Prints one JSON line per case: {"case", "images", "images_per_s", "ms_per_image", "spread",
"cpu_ms_per_image"} (images/s from wall time, its median over the timed passes and their range; the
process CPU time per image, mean over the passes, steadier on a loaded machine). --cases, --min-time,
--warmup and --json as in peer_protocol.py: a pass decodes every file of the case, as one iteration
of bench_image does, and --json writes the protocol's file (seconds per pass).
"""
import argparse
import io
import json
import os
import statistics
import time

import numpy as np
from PIL import Image

import peer_protocol

CASES = ["jpeg_420_q90", "jpeg_444_q95", "jpeg_progressive", "png_rgb"]
FILES_PER_CASE = 24


def photo(rng, h, w):
    low = rng.integers(0, 256, size=(h // 16 + 2, w // 16 + 2, 3)).astype(np.uint8)
    a = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC)).astype(np.int64)
    a += rng.integers(-12, 13, size=a.shape)
    a[h // 5: h // 2, w // 6: w // 2] = 235
    return np.clip(a, 0, 255).astype(np.uint8)


def make(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)

    def save(im, name, **kw):  # to a temporary name then renamed: a stopped run leaves no half file
        tmp = os.path.join(d, f".{name}.tmp{os.getpid()}")
        im.save(tmp, format="PNG" if name.endswith(".png") else "JPEG", **kw)
        os.replace(tmp, os.path.join(d, name))

    for i in range(FILES_PER_CASE):
        im = Image.fromarray(photo(rng, 375, 500))
        save(im, f"jpeg_420_q90_{i:02d}.jpg", quality=90)
        save(im, f"jpeg_444_q95_{i:02d}.jpg", quality=95, subsampling=0)
        save(im, f"jpeg_progressive_{i:02d}.jpg", quality=90, progressive=True)
        save(Image.fromarray(photo(rng, 425, 425)), f"png_rgb_{i:02d}.png")


def complete(d):
    return os.path.isdir(d) and all(len(files_of(d, c)) == FILES_PER_CASE for c in CASES)


def files_of(d, case):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.startswith(case + "_"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=os.environ.get("CORTEX_BENCH_IMAGES", "/tmp/cortex_bench_images"))
    ap.add_argument("--make", action="store_true", help="(re)write the files, then time them")
    ap.add_argument("--ensure", action="store_true", help="write the files if any case lacks them, then exit")
    ap.add_argument("--repeats", type=int, default=7, help="timed passes over each case's files (at least)")
    ap.add_argument("--json", default="")
    peer_protocol.add_arguments(ap)
    a = ap.parse_args()
    todo = peer_protocol.selected(a, CASES)
    if a.make or not complete(a.dir):
        make(a.dir)
    if a.ensure:
        return
    results = []
    for case in todo:
        blobs = [open(f, "rb").read() for f in files_of(a.dir, case)]
        times = []

        def decode_all():
            t0 = time.perf_counter()
            for b in blobs:
                Image.open(io.BytesIO(b)).convert("RGB")
            times.append(time.perf_counter() - t0)

        r = peer_protocol.measure(decode_all, a.repeats, a.min_time, a.warmup)
        rates = [len(blobs) / t for t in times[a.warmup:]]
        med = statistics.median(rates)
        print(json.dumps({"case": case, "images": len(blobs), "images_per_s": round(med, 1),
                          "ms_per_image": round(1000 / med, 3),
                          "spread": [round(min(rates), 1), round(max(rates), 1)],
                          "cpu_ms_per_image": round(1000 * r["mean_cpu_seconds"] / len(blobs), 3)}), flush=True)
        results.append({"case": case, **r, "images": len(blobs)})
    peer_protocol.write_json(a.json, f"Pillow {Image.__version__}", results, threads=None,
                             versions={"Pillow": Image.__version__, "numpy": np.__version__})

if __name__ == "__main__":
    main()
