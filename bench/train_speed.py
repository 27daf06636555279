"""Training speed before and after the uint8 data contract, in one run (issue 10, issue 15).

    .venv/bin/python bench/train_speed.py              # full size: 49,000 x 3,072
    .venv/bin/python bench/train_speed.py --quick      # 4,900 rows, for a smoke test

Three ways to train one epoch of each of the study's baselines (softmax, batch 256; two-layer,
hidden 100, batch 128), timed in turn within each repeat, so the machine's load moves all
three alike and their ratios come from one run:

    before          the library as it was (`--before`, default dffdce7: the commit this change
                    started from, extracted with `git archive` and imported as a separate
                    package): float32 arrays normalised once up front, fused SGD step
                    (Network.train_step, BLAS beta = 1 through ctypes)
    float32 now     today's library on the same float32 arrays, model without a normaliser:
                    the one backward pass and cs231n's SGD step, no fused update
    uint8 now       today's library on uint8 pixels, the model normalising each mini-batch
                    itself (the study's code path)

`float32 now / before` isolates the fused step's share; `uint8 now / float32 now` the data
contract's. Everything runs single-threaded (threadpoolctl), the mode the ablations spend the
study's time in (one BLAS thread per seed). Each epoch is one real `train(..., epochs=1)` call
(gather, forward, backward, SGD, train accuracy, validation accuracy on 1,000 rows). Data:
CIFAR-shaped random pixels; the speed of a dense network does not depend on the values.
Times are the best of --repeats (the minimum is the least disturbed), medians shown too.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from scratchnet.data import PixelStats
from scratchnet.nn import Normalizer, build_model
from scratchnet.training import train

ROOT = Path(__file__).resolve().parents[1]
D, C, N_VAL = 3072, 10, 1000
CONFIGS = {  # the study's baselines (params.yaml): architecture, batch size, lr, normalize
    "softmax": ({"kind": "softmax", "init": "gaussian", "init_scale": 1e-3}, 256, 5e-3, "mean_std"),
    "twolayer": ({"kind": "twolayer", "hidden_dim": 100, "init": "he"}, 128, 0.1, "mean"),
}


def import_before(ref: str, into: Path):
    """The library at git `ref`, importable as `scratchnet_before` (its imports are relative)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, "src/scratchnet"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    shutil.move(into / "src" / "scratchnet", into / "scratchnet_before")
    sys.path.insert(0, str(into))
    return (importlib.import_module("scratchnet_before.nn"), importlib.import_module("scratchnet_before.training"))


def measure(n: int, repeats: int, before_ref: str) -> dict:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, D), dtype=np.uint8)
    y = rng.integers(0, C, n)
    val_pixels, y_val = rng.integers(0, 256, (N_VAL, D), dtype=np.uint8), rng.integers(0, C, N_VAL)
    stats = PixelStats.fit(pixels)
    with tempfile.TemporaryDirectory() as tmp:
        old_nn, old_training = import_before(before_ref, Path(tmp))
        rows = {}
        for kind, (config, batch_size, lr, method) in CONFIGS.items():
            norm = Normalizer(method, stats.mean, stats.std)
            # The old contract's arrays: the whole set normalised to float32 once (600 MB).
            X32, X32_val = norm.forward(pixels), norm.forward(val_pixels)
            paths = {
                "before": (
                    old_nn.build_model(config, input_dim=D, num_classes=C, seed=0),
                    old_training.train,
                    X32,
                    X32_val,
                ),
                "float32 now": (build_model(config, input_dim=D, num_classes=C, seed=0), train, X32, X32_val),
                "uint8 now": (
                    build_model(config, input_dim=D, num_classes=C, seed=0, normalizer=norm),
                    train,
                    pixels,
                    val_pixels,
                ),
            }
            times = {path: [] for path in paths}
            for rep in range(repeats + 1):  # the first round warms caches and is not counted
                for path, (model, train_fn, X, X_val) in paths.items():
                    result = train_fn(
                        model,
                        X,
                        y,
                        X_val,
                        y_val,
                        epochs=1,
                        lr=lr,
                        lr_decay=1.0,
                        batch_size=batch_size,
                        reg=0.0,
                        seed=rep,
                        progress=False,
                    )
                    if rep:
                        times[path].append(result.seconds)
            rows[kind] = {path: {"best": min(t), "median": statistics.median(t)} for path, t in times.items()}
            del X32, X32_val, paths
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4,900 rows instead of 49,000")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per path (best is reported)")
    parser.add_argument("--before", default="dffdce7", help="git ref of the library to compare against")
    args = parser.parse_args()
    n = 4_900 if args.quick else 49_000
    with threadpool_limits(limits=1):
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        rows = measure(n, args.repeats, args.before)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
        f"BLAS {blas[0].get('internal_api') if blas else '?'} {blas[0].get('version') if blas else ''}, "
        f"1 thread; N = {n:,} x {D}; before = {args.before}; best / median of {args.repeats}"
    )
    print(
        "| config | before: float32, fused step (s) | float32 now (s) | uint8 now (s) "
        "| speed-up: before / uint8 now | fused step's share: float32 now / before "
        "| data contract: float32 now / uint8 now |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, r in rows.items():
        b, f, u = (r[p]["best"] for p in ("before", "float32 now", "uint8 now"))
        cells = " | ".join(f"{r[p]['best']:.3f} / {r[p]['median']:.3f}" for p in ("before", "float32 now", "uint8 now"))
        print(f"| {kind} | {cells} | **{b / u:.2f}x** | {f / b:.2f} | {f / u:.2f}x |")


if __name__ == "__main__":
    main()
