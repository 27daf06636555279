"""Training speed: epoch time of the study's two configurations vs this machine's GEMM peak.

    .venv/bin/python bench/train_speed.py            # full size: 49,000 x 3,072 float32
    .venv/bin/python bench/train_speed.py --quick    # 4,900 rows, for a smoke test

Data: CIFAR-shaped random float32 (N x 3072, 1,000 validation rows, 10 classes); the speed of
a dense network does not depend on the values. Each epoch is one call of
scratchnet.training.train(epochs=1) on the real code path: mini-batch gather, forward,
backward, SGD update, train accuracy from the batch scores, validation accuracy.

FLOPs counted: only the GEMMs, 2*m*n*k each, that an epoch actually performs:
    forward   X_b @ W1 (+ h @ W2)                       every training batch
    backward  X_b^T @ dh1 (dW1), h^T @ dscores (dW2), dscores @ W2^T (dh)
              (no dX: the first layer's input gradient is never computed)
    validation forward on the 1,000 validation rows
Elementwise work (bias, ReLU, softmax, the update, the gather) is not counted as FLOPs: it is
the overhead that keeps an epoch from reaching the GEMM peak.

Update paths: every epoch is timed twice, interleaved, with the trainer's fused SGD step (each
weight gradient added into its weight by the GEMM that computes it, BLAS beta = 1:
scratchnet.nn.blas) and with the same step in NumPy alone (blas.numpy_only(): gradient array,
then a separate update pass), so their ratio comes from one run.

Peak: the best time of a large square float32 GEMM (np.matmul, n = 4096 by default) in the
same process, right before the epochs, with the same BLAS threads. Times are the best of
--repeats runs (the machine is shared; the minimum is the least disturbed), medians shown too.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are read by OpenBLAS when it loads. If either is set,
the script also re-runs itself in a child process with both unset and reports both runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from scratchnet.nn import blas, build_model
from scratchnet.training import train

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
D, C, N_VAL = 3072, 10, 1000
CONFIGS = {  # the study's baselines (params.yaml): kind, architecture, batch size, lr
    "softmax": ({"kind": "softmax", "init": "gaussian", "init_scale": 1e-3}, 256, 5e-3),
    "twolayer": ({"kind": "twolayer", "hidden_dim": 100, "init": "he"}, 128, 0.1),
}


def blas_info() -> dict:
    try:
        from threadpoolctl import threadpool_info
        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            p = pools[0]
            return {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture",
                                          "threading_layer")}
    except ImportError:
        pass
    config = np.show_config(mode="dicts") if np.lib.NumpyVersion(np.__version__) >= "1.26.0" else {}
    blas = config.get("Build Dependencies", {}).get("blas", {})
    return {"name": blas.get("name"), "version": blas.get("version"), "num_threads": "unknown"}


def gemm_peak(n: int, repeats: int) -> float:
    """Best GFLOP/s of an n x n x n float32 matmul (2 n^3 FLOPs)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)  # warm-up: threads started, pages touched
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def epoch_flops(kind: str, n: int, batch_size: int, hidden: int = 100) -> float:
    """GEMM FLOPs of one epoch, as counted in the module docstring."""
    if kind == "softmax":
        train_gemms = 2 * n * D * C * 2  # forward X_b @ W1, backward X_b^T @ dscores
        val = 2 * N_VAL * D * C
    else:
        train_gemms = 2 * n * (D * hidden + hidden * C) + 2 * n * (D * hidden + 2 * hidden * C)
        val = 2 * N_VAL * (D * hidden + hidden * C)
    return float(train_gemms + val)


def gemms_alone(kind: str, X: np.ndarray, X_val: np.ndarray, batch_size: int, hidden: int = 100) -> float:
    """Seconds for exactly the GEMMs of one epoch (same shapes, same count), back to back on
    contiguous slices into preallocated outputs: no gather, no elementwise work, no update.
    The ceiling any implementation of this epoch on this BLAS could reach."""
    rng = np.random.default_rng(1)
    dims = [D, C] if kind == "softmax" else [D, hidden, C]
    Ws = [0.01 * rng.standard_normal((a, b), dtype=np.float32) for a, b in zip(dims[:-1], dims[1:])]
    outs = [np.empty((batch_size, b), np.float32) for b in dims[1:]]
    grads = [np.empty_like(W) for W in Ws]
    start = time.perf_counter()
    for s in range(0, len(X), batch_size):
        xb = X[s:s + batch_size]
        m = len(xb)
        acts = [xb]
        for W, out in zip(Ws, outs):  # forward
            acts.append(np.matmul(acts[-1], W, out=out[:m]))
        delta = acts[-1]
        for i in range(len(Ws) - 1, -1, -1):  # backward: dW_i, and d(input) except for layer 1
            np.matmul(acts[i].T, delta, out=grads[i])
            if i:
                delta = np.matmul(delta, Ws[i].T, out=outs[i - 1][:m])
    for s in range(0, len(X_val), 2048):  # validation forward, as accuracy() batches it
        h = X_val[s:s + 2048]
        for W in Ws:
            h = h @ W
    return time.perf_counter() - start


def gather_strategies(X: np.ndarray, batch_size: int, repeats: int) -> dict:
    """Seconds per epoch of data movement alone: per-batch np.take into one buffer (what the
    trainer does) vs one permuted copy of X per epoch followed by contiguous slices."""
    n = len(X)
    order = np.random.default_rng(0).permutation(n)
    buf = np.empty((batch_size, X.shape[1]), X.dtype)

    def per_batch():
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            np.take(X, idx, axis=0, out=buf[:len(idx)], mode="clip")

    def per_epoch_copy():
        Xp = X[order]
        for s in range(0, n, batch_size):
            Xp[s:s + batch_size]

    return {name: min(_timed(fn) for _ in range(repeats))
            for name, fn in (("per_batch_take", per_batch), ("per_epoch_permuted_copy", per_epoch_copy))}


def concurrent_seeds(X, y, X_val, y_val, peak: float, single_epoch_s: float,
                     seeds: int = 3, epochs: int = 3) -> dict:
    """The ablation stage's mode: `seeds` two-layer runs side by side (a sweep on the local
    executor: one forked, single-threaded process each). Wall time of the whole call, so fork,
    the per-process warm-up and the test evaluation are all charged to it."""
    import tempfile

    from scratchnet.study.cache import RunCache
    from scratchnet.study.runs import RunSpec
    from scratchnet.study.sweep import LocalExecutor, run_sweep

    config = {"hidden_dim": 100, "init": "he", "init_scale": 1e-3, "lr": 1e-3, "lr_decay": 1.0,
              "batch_size": 128, "reg": 0.0, "epochs": epochs}
    splits = {"train": (X, y), "val": (X_val, y_val), "test": (X_val, y_val)}
    walls = {}
    for path in ("fused", "numpy"):
        with (blas.numpy_only() if path == "numpy" else contextlib.nullcontext()):
            started = time.perf_counter()
            specs = [RunSpec("twolayer", f"concurrent ({path})", config, s) for s in range(seeds)]
            with tempfile.TemporaryDirectory() as cache, LocalExecutor(splits, workers=seeds) as pool:
                run_sweep(specs, pool, cache=RunCache(cache, retrain=True), data="bench",
                          train_size=len(y))
            walls[path] = time.perf_counter() - started
    wall = walls["fused"]
    flops = seeds * epochs * epoch_flops("twolayer", len(y), 128)
    return {
        "seeds": seeds, "epochs": epochs, "wall_s": wall, "numpy_update_wall_s": walls["numpy"],
        "epoch_s_per_run_equivalent": wall / (seeds * epochs),
        "gflops": flops / wall / 1e9,
        "fraction_of_peak": flops / wall / 1e9 / peak,
        "speedup_vs_one_after_another": seeds * epochs * single_epoch_s / wall,
    }


def measure(n: int, repeats: int, peak_n: int) -> dict:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, D), dtype=np.float32)
    y = rng.integers(0, C, n)
    X_val, y_val = rng.standard_normal((N_VAL, D), dtype=np.float32), rng.integers(0, C, N_VAL)
    peak = gemm_peak(peak_n, repeats)
    rows = {}
    for kind, (config, batch_size, lr) in CONFIGS.items():
        model = build_model(config, input_dim=D, num_classes=C, seed=0)
        seconds, numpy_seconds = [], []
        for rep in range(repeats + 1):  # the first epoch warms caches and is not counted
            for path, times in (("fused", seconds), ("numpy", numpy_seconds)):
                with (blas.numpy_only() if path == "numpy" else contextlib.nullcontext()):
                    result = train(model, X, y, X_val, y_val, epochs=1, lr=lr, lr_decay=1.0,
                                   batch_size=batch_size, reg=0.0, seed=rep, progress=False)
                if rep:
                    times.append(result.seconds)
        flops = epoch_flops(kind, n, batch_size)
        best = min(seconds)
        ceiling = min(gemms_alone(kind, X, X_val, batch_size) for _ in range(repeats))
        rows[kind] = {
            "batch_size": batch_size,
            "epoch_s_best": best,
            "epoch_s_median": statistics.median(seconds),
            "samples_per_s": n / best,
            "gflop_per_epoch": flops / 1e9,
            "gflops": flops / best / 1e9,
            "fraction_of_peak": flops / best / 1e9 / peak,
            "numpy_update_epoch_s_best": min(numpy_seconds),
            "numpy_update_fraction_of_peak": flops / min(numpy_seconds) / 1e9 / peak,
            "gemms_alone_s": ceiling,
            "gemms_alone_fraction_of_peak": flops / ceiling / 1e9 / peak,
        }
    return {
        "n": n,
        "peak_gflops": peak,
        "concurrent": concurrent_seeds(X, y, X_val, y_val, peak, rows["twolayer"]["epoch_s_best"]),
        "peak_gemm_n": peak_n,
        "repeats": repeats,
        "configs": rows,
        "gather_s": gather_strategies(X, 128, repeats),
        "blas": blas_info(),
        "env": {k: os.environ.get(k) for k in OPENBLAS_VARS},
    }


def report(r: dict, label: str) -> None:
    print(f"\n== {label}: N = {r['n']:,} x {D}, float32; BLAS {r['blas']}; env {r['env']}")
    print(f"float32 GEMM peak ({r['peak_gemm_n']}^3 matmul, best of {r['repeats']}): {r['peak_gflops']:.1f} GFLOP/s")
    print(f"update path: {blas.backend()} (fused); NumPy-only for comparison")
    print("| config | batch | epoch s (best / median) | samples/s | GFLOP/epoch | GFLOP/s | of peak "
          "| NumPy-only update: s, of peak | its GEMMs alone: s, of peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, c in r["configs"].items():
        print(f"| {kind} | {c['batch_size']} | {c['epoch_s_best']:.3f} / {c['epoch_s_median']:.3f} | "
              f"{c['samples_per_s']:,.0f} | {c['gflop_per_epoch']:.2f} | {c['gflops']:.1f} | "
              f"{100 * c['fraction_of_peak']:.0f}% | {c['numpy_update_epoch_s_best']:.3f}, "
              f"{100 * c['numpy_update_fraction_of_peak']:.0f}% | {c['gemms_alone_s']:.3f}, "
              f"{100 * c['gemms_alone_fraction_of_peak']:.0f}% |")
    c = r["concurrent"]
    print(f"ablation mode, {c['seeds']} two-layer seeds side by side (a local sweep, one single-threaded "
          f"process each), {c['epochs']} epochs: {c['wall_s']:.2f} s wall = {c['epoch_s_per_run_equivalent']:.3f} s "
          f"per epoch of work, {c['gflops']:.1f} GFLOP/s, {100 * c['fraction_of_peak']:.0f}% of peak, "
          f"{c['speedup_vs_one_after_another']:.2f}x the same seeds one after another; "
          f"with the NumPy-only update {c['numpy_update_wall_s']:.2f} s wall")
    g = r["gather_s"]
    print(f"mini-batch gather, one epoch at batch 128: per-batch np.take {g['per_batch_take']:.3f} s, "
          f"one permuted copy per epoch {g['per_epoch_permuted_copy']:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4,900 rows instead of 49,000")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per config (best is reported)")
    parser.add_argument("--peak-n", type=int, default=4096, help="size of the square GEMM for the peak")
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON only")
    args = parser.parse_args()
    n = 4_900 if args.quick else 49_000

    result = measure(n, args.repeats, args.peak_n)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}")
    report(result, "as run")
    if any(os.environ.get(k) for k in OPENBLAS_VARS):
        env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_VARS}
        cmd = [sys.executable, __file__, "--json", "--repeats", str(args.repeats), "--peak-n", str(args.peak_n)]
        if args.quick:
            cmd.append("--quick")
        child = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
        report(child, f"with {' and '.join(OPENBLAS_VARS)} unset")


if __name__ == "__main__":
    main()
