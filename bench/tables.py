"""The tables of bench/RESULTS.md: which C++ benchmark is run beside which peer, row by row.

scripts/bench_tables.py (what `make bench` runs) reads TABLES and, for every table, thread count and
round, runs the C++ binary on the table's rows, then the peer script on the same rows (cortex, peer,
cortex, peer, ...), and writes the tables. Adding a pair is one entry here:

  key       short name (TABLES=key1,key2 runs a subset; the JSON's key)
  title     the table's heading; about: one paragraph under it (what is measured, by whom)
  binary    the executable under <build>/bench/
  peer      None (a cortex-only table: the spread of its times) or
            {"script": path from the repository root, "args": [extra arguments],
             "needs": [Python modules; a row whose modules are missing is shown without its peer]}
            The script follows bench/peers/peer_protocol.py (--cases, --min-time, --warmup, --json).
  min_time  seconds of timed passes per round on each side (at least one pass); QUICK caps it at 0.1
  warmup    True: one untimed pass first on each side (False where a pass takes seconds and each
            allocates afresh, and the binary fixes its own iteration count)
  rows      [{"row": the row's name, "cortex": the Google Benchmark name (as in its JSON),
              "peer": the peer's case label, "quick": True to run it under QUICK=1,
              "needs": overrides the peer's needs for this row}]
  setup     optional: [a Python script from the repository root, its arguments], run once before the
            table's rounds (e.g. writing input files that both sides read); if it fails, so does the table
  threads   optional: this table's thread counts (default 1 and 2); THREADS=... on the command
            line sets every table's
"""

TORCH = ["torch"]

TABLES = [
    {
        "key": "backbones",
        "title": "Backbones: inference, 224 px, float32",
        "about": "bench/bench_models.cpp `BM_backbone` beside bench/peers/models_peer.py: the same architectures "
                 "in PyTorch eager (torchvision's, or tests/data/make_fixtures.py's identical modules when "
                 "torchvision is absent), random weights, `torch.inference_mode()`, ResNet-50's batch norms "
                 "folded on both sides. Goal (issue 15): ratio >= 1.0 in every row.",
        "binary": "bench_models",
        "peer": {"script": "bench/peers/models_peer.py", "args": ["--repeat", "1"], "needs": TORCH},
        # 1.5 s of passes per side and round: with 0.5 s a batch-1 ViT round was 3 passes, and its
        # ratio moved by 0.1 between rounds on this VM.
        "min_time": 1.5,
        "warmup": True,
        "rows": [
            {"row": "AlexNet, batch 1", "cortex": "BM_backbone/0/1/real_time", "peer": "alexnet b1 cpu fp32",
             "quick": True},
            {"row": "AlexNet, batch 64", "cortex": "BM_backbone/0/64/real_time", "peer": "alexnet b64 cpu fp32"},
            {"row": "ResNet-50, batch 1", "cortex": "BM_backbone/1/1/real_time", "peer": "resnet50 b1 cpu fp32"},
            {"row": "ResNet-50, batch 64", "cortex": "BM_backbone/1/64/real_time", "peer": "resnet50 b64 cpu fp32"},
            {"row": "ViT-B/16, batch 1", "cortex": "BM_backbone/2/1/real_time", "peer": "vit_b_16 b1 cpu fp32"},
            {"row": "ViT-B/16, batch 64", "cortex": "BM_backbone/2/64/real_time", "peer": "vit_b_16 b64 cpu fp32"},
        ],
    },
    {
        "key": "ridge",
        # Two threads only: analysis jobs run multi-threaded, and 1 + 2 threads would take the default
        # run past 15 minutes on 2 cores (the backbones at batch 64 take most of it).
        "threads": [2],
        "title": "Ridge regression, 5-fold CV over 10 penalties",
        "about": "bench/bench_ridge.cpp beside bench/peers/ridge_peer.py: `fit_ridge_cv` (one Gram matrix, a "
                 "float64 Cholesky per fold and penalty, docs/ridge.md) and the same algorithm in NumPy/SciPy "
                 "(LAPACK potrf/potrs); 2,000 images x 1,000 features x 5,000 voxels, float32, CV and refit.",
        "binary": "bench_ridge",
        "peer": {"script": "bench/peers/ridge_peer.py", "args": ["--repeat", "1"], "needs": ["numpy", "scipy"]},
        "min_time": 0.0,
        "warmup": False,
        "rows": [
            {"row": "2,000 x 1,000 x 5,000", "cortex": "BM_ridge_cv_scaled_small/iterations:1/real_time",
             "peer": "ridge_cv small"},
        ],
    },
    {
        "key": "ncut",
        # Two threads only: analysis jobs run multi-threaded, and 1 + 2 threads would take the default
        # run past 15 minutes on 2 cores (the backbones at batch 64 take most of it).
        "threads": [2],
        "title": "Spectral clustering (Ncut): Nystrom and exact",
        "about": "bench/bench_spectral.cpp beside bench/peers/ncut_peer.py. Nystrom (AlignedCut, FPS sampling): "
                 "N = 100,000 points, d = 384, m = 4,096 samples, k = 20, K = 10, against ncut-pytorch "
                 "propagating from all m samples as cortex does. Exact: N = 5,000, against NumPy's affinity + "
                 "scikit-learn's SpectralEmbedding (ARPACK). Same distributions, not the same numbers; the "
                 "arithmetic differs (docs/spectral.md).",
        "binary": "bench_spectral",
        "peer": {"script": "bench/peers/ncut_peer.py", "args": ["--repeat", "1", "--sklearn-sizes", "5000"],
                 "needs": ["torch", "ncut_pytorch"]},
        "min_time": 0.0,
        "warmup": False,
        "rows": [
            {"row": "Nystrom, N = 100,000, m = 4,096", "cortex": "BM_ncut_nystrom_N100k/0/iterations:2/real_time",
             "peer": "ncut N=100000 d=384 m=4096 k=20 cpu"},
            {"row": "exact, N = 5,000", "cortex": "BM_ncut_exact/5000/iterations:1/real_time",
             "peer": "sklearn exact N=5000 d=384 k=20", "needs": ["torch", "numpy", "sklearn"]},
        ],
    },
    {
        "key": "attention",
        "title": "Fused attention, ViT-B/16 shape (B x 12 heads x 197 tokens x 64), float32",
        "about": "bench/bench_attention.cpp (the fused kernel) beside bench/peers/attention_peer.py: PyTorch "
                 "`scaled_dot_product_attention` (forward under inference_mode; vjp by torch.func) and "
                 "torch.func.jvp through the math path (PyTorch's fused SDPA has no forward mode).",
        "binary": "bench_attention",
        "peer": {"script": "bench/peers/attention_peer.py", "args": ["--repeat", "1", "--device", "cpu",
                                                                     "--batches", "1,8"], "needs": TORCH},
        "min_time": 0.3,
        "warmup": True,
        "rows": [
            {"row": "forward, B = 1", "cortex": "BM_attention_forward/1/1/0", "peer": "fused forward b1 cpu",
             "quick": True},
            {"row": "forward, B = 8", "cortex": "BM_attention_forward/1/8/0", "peer": "fused forward b8 cpu"},
            {"row": "vjp, B = 8", "cortex": "BM_attention_grad/1/8/0", "peer": "fused vjp b8 cpu"},
            {"row": "jvp, B = 8", "cortex": "BM_attention_jvp/1/8/0", "peer": "fused jvp b8 cpu"},
        ],
    },
    {
        "key": "autograd",
        "title": "Encoder Jacobian (512 -> 1024 sigmoid -> 2000), one stimulus, float32",
        "about": "bench/bench_autograd.cpp `BM_encoder_jacobian_*_nograd` (`jacobian`, chunk 128, under "
                 "NoGradGuard) beside bench/peers/autograd_peer.py (torch.func jacfwd / jacrev, all tangents "
                 "in one vmap, under torch.no_grad).",
        "binary": "bench_autograd",
        "peer": {"script": "bench/peers/autograd_peer.py", "args": ["--repeat", "1"], "needs": TORCH},
        "min_time": 0.3,
        "warmup": True,
        "rows": [
            {"row": "forward mode", "cortex": "BM_encoder_jacobian_forward_nograd/real_time",
             "peer": "encoder_jacobian forward cpu", "quick": True},
            {"row": "reverse mode", "cortex": "BM_encoder_jacobian_reverse_nograd/real_time",
             "peer": "encoder_jacobian reverse cpu"},
        ],
    },
    {
        "key": "autodiff",
        "title": "Autodiff overhead (cortex only)",
        "about": "bench/bench_autograd.cpp: an MLP 512 -> 1024 -> 1024 -> 256 (GELU, batch 256, MSE) and a conv "
                 "net (3 convs 3x3, ReLU, max pool, GAP, linear; (8, 3, 64, 64), MSE); forward under "
                 "NoGradGuard, forward + backward to every parameter, and `jvp` with one input tangent. "
                 "Goals (issue 3): backward / forward <= 3 and JVP / forward <= 3 (docs/autodiff.md).",
        "binary": "bench_autograd",
        "peer": None,
        "min_time": 0.3,
        "warmup": True,
        "rows": [
            {"row": "MLP forward", "cortex": "BM_mlp_forward/real_time", "quick": True},
            {"row": "MLP forward + backward", "cortex": "BM_mlp_forward_backward/real_time"},
            {"row": "MLP jvp", "cortex": "BM_mlp_jvp/real_time"},
            {"row": "conv net forward", "cortex": "BM_convnet_forward/real_time"},
            {"row": "conv net forward + backward", "cortex": "BM_convnet_forward_backward/real_time"},
            {"row": "conv net jvp", "cortex": "BM_convnet_jvp/real_time"},
        ],
    },
    {
        "key": "image",
        # One thread: both decoders are single-threaded (a data loader decodes one image per worker).
        "threads": [1],
        "title": "Image decoding to RGB, 24 files a row, from bytes in memory",
        "about": "bench/bench_image.cpp (`io::decode_image`: libjpeg-turbo, libpng) beside "
                 "bench/peers/image_peer.py (PIL `Image.open(BytesIO).convert(\"RGB\")`, as torchvision's "
                 "pil_loader) on the same files, which the peer writes first when they are missing "
                 "($CORTEX_BENCH_IMAGES, default /tmp/cortex_bench_images): 500 x 375 photos as JPEG "
                 "(baseline 4:2:0 q90, 4:4:4 q95, progressive) and 425 x 425 RGB PNGs. A pass decodes the "
                 "row's 24 files (issue 22).",
        "binary": "bench_image",
        "setup": ["bench/peers/image_peer.py", "--ensure"],
        "peer": {"script": "bench/peers/image_peer.py", "args": ["--repeats", "1"], "needs": ["numpy", "PIL"]},
        "min_time": 0.3,
        "warmup": True,
        "rows": [
            {"row": "JPEG 4:2:0, q90", "cortex": "decode_case/jpeg_420_q90/real_time", "peer": "jpeg_420_q90",
             "quick": True},
            {"row": "JPEG 4:4:4, q95", "cortex": "decode_case/jpeg_444_q95/real_time", "peer": "jpeg_444_q95"},
            {"row": "JPEG progressive", "cortex": "decode_case/jpeg_progressive/real_time",
             "peer": "jpeg_progressive"},
            {"row": "PNG RGB", "cortex": "decode_case/png_rgb/real_time", "peer": "png_rgb"},
        ],
    },
    {
        "key": "linbridge",
        # Two threads only, like the other analyses; one small size, since the peer takes about a
        # second per stimulus even at 2,000 voxels.
        "threads": [2],
        "title": "LinBridge analysis of a two-layer encoder (512 -> 1024 sigmoid -> 2,000), N = 8 stimuli",
        "about": "bench/bench_linbridge.cpp `BM_linbridge_two_layer_v2000` (`linbridge_two_layer`, the closed "
                 "form, float64; docs/linbridge.md) beside bench/peers/linbridge_peer.py (per-stimulus "
                 "Jacobians by torch.func vmap(jacfwd) in chunks of 2, then the reductions), both at N = 8 and "
                 "2,000 voxels so that the peer fits in the default run. The closed form's cost is mostly "
                 "fixed and the peer's linear in N, so the ratio grows with N: the full size (20,000 voxels, "
                 "N = 250 and 1,000) is in bench/NOTES.md (issue 16).",
        "binary": "bench_linbridge",
        "peer": {"script": "bench/peers/linbridge_peer.py", "args": ["--n", "8", "--v", "2000", "--chunk", "2"],
                 "needs": TORCH},
        "min_time": 0.0,
        "warmup": True,
        "rows": [
            {"row": "N = 8, 2,000 voxels", "cortex": "BM_linbridge_two_layer_v2000/8/real_time",
             "peer": "linbridge 512-1024-2000 N=8", "quick": True},
        ],
    },
    {
        "key": "attribute",
        # Two threads only, like the other analyses.
        "threads": [2],
        "title": "Integrated gradients, one 224 px image, 50 steps, AlexNet + Gaussian readout (1,000 voxels)",
        "about": "bench/bench_attribute.cpp `BM_attribute_alexnet_gaussian` (`analysis::integrated_gradients`: "
                 "51 gradient evaluations, the default adaptive rule: a batch of 26 path points then 8 small "
                 "batches; the uniform trapezoid rule's 51 points in one batch as a second row; docs/attribution.md) "
                 "beside bench/peers/attribute_peer.py (the same model in PyTorch eager, random weights, the "
                 "Captum-style batched path: one forward of the scaled inputs, torch.autograd.grad) (issue 17).",
        "binary": "bench_attribute",
        "peer": {"script": "bench/peers/attribute_peer.py", "args": ["--repeat", "1"], "needs": TORCH},
        "min_time": 0.0,
        "warmup": True,
        "rows": [
            {"row": "AlexNet features.9 + Gaussian, 50 steps, adaptive", "cortex": "BM_attribute_alexnet_gaussian/0/real_time",
             "peer": "ig alexnet+gaussian steps=50", "quick": True},
            {"row": "AlexNet features.9 + Gaussian, 50 steps, trapezoid", "cortex": "BM_attribute_alexnet_gaussian/1/real_time",
             "peer": "ig alexnet+gaussian steps=50"},
        ],
    },
    {
        "key": "dream",
        # Two threads only, like the other analyses; one pass per round (a pass is 200 forward and
        # backward passes already), no warm-up pass.
        "threads": [2],
        "title": "Maximally exciting image, one 224 px image, 200 Adam steps, AlexNet + Gaussian readout (1,000 voxels)",
        "about": "bench/bench_dream.cpp `BM_dream_alexnet_gaussian` (`analysis::dream`: frequency-space "
                 "parameterisation, jitter 4 px, TV and L2 penalties, Adam; docs/dream.md) beside "
                 "bench/peers/dream_peer.py (the same model, parameterisation and loop in PyTorch eager: "
                 "torch.fft.irfft2, torch.roll, torch.optim.Adam) (issue 17).",
        "binary": "bench_dream",
        "peer": {"script": "bench/peers/dream_peer.py", "args": ["--repeat", "1"], "needs": TORCH},
        "min_time": 0.0,
        "warmup": False,
        "rows": [
            {"row": "AlexNet features.9 + Gaussian, 200 steps", "cortex": "BM_dream_alexnet_gaussian/200/real_time",
             "peer": "dream alexnet+gaussian steps=200"},
        ],
    },
]
