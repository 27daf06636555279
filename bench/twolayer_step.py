"""Where a two-layer training step's time goes (issue 26): the whole step against its two
first-layer GEMMs alone, one BLAS thread, thread CPU time, interleaved.

    .venv/bin/python bench/twolayer_step.py [--steps 383] [--repeats 9]

The step is what training.train runs per mini-batch of the two-layer baseline (hidden 100,
batch 128, `mean` scaling, reg 0): gather the uint8 rows, forward_backward, sgd_step. The
GEMMs are the same two products on arrays of the same shapes and dtypes: xm (129, 3072) @ W
(3072, 100) and xm.T @ g (129, 100). Pixels are random uint8 (the time does not depend on them).
Reported: per epoch of `--steps` steps, the best of `--repeats` (least disturbed), and the
share of the step outside the two GEMMs.
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from scratchnet.data import PixelStats
from scratchnet.nn import Normalizer, build_model
from scratchnet.nn.optim import sgd_step

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=383)  # 49,000 / 128
parser.add_argument("--repeats", type=int, default=9)
args = parser.parse_args()

rng = np.random.default_rng(0)
n, d, batch = 49_000, 3072, 128
X = rng.integers(0, 256, (n, d), dtype=np.uint8)
y = rng.integers(0, 10, n)
stats = PixelStats(mean=X[:5000].mean(axis=0), std=X[:5000].std(axis=0) + 1)
model = build_model(
    {"kind": "twolayer", "hidden_dim": 100, "init": "he", "init_scale": 1e-3},
    input_dim=d,
    num_classes=10,
    seed=0,
    normalizer=Normalizer("mean", stats.mean, stats.std),
)
buf = np.empty((batch, d), np.uint8)
xm = np.empty((batch + 1, d), np.float32)
W = model.params["W1"].copy()
g = rng.standard_normal((batch + 1, 100)).astype(np.float32)


def steps() -> float:
    t = time.thread_time()
    for _ in range(args.steps):
        idx = rng.integers(0, n, batch)
        xb = np.take(X, idx, axis=0, out=buf, mode="clip")
        _, grads, _ = model.forward_backward(xb, y[idx], 0.0)
        sgd_step(model.params, grads, 1e-3)
    return time.thread_time() - t


def gemms() -> float:
    t = time.thread_time()
    for _ in range(args.steps):
        a = xm @ W
        dw = xm.T @ g
    del a, dw
    return time.thread_time() - t


with threadpool_limits(limits=1):
    steps(), gemms()  # warm-up
    whole, alone = [], []
    for _ in range(args.repeats):
        whole.append(steps())
        alone.append(gemms())
best_step, best_gemm = min(whole), min(alone)
print(f"step (gather, forward_backward, sgd_step): {best_step:.3f} s per {args.steps} steps (best of {args.repeats})")
print(f"the two GEMMs alone:                       {best_gemm:.3f} s")
print(f"outside the GEMMs: {best_step - best_gemm:.3f} s = {100 * (1 - best_gemm / best_step):.0f}% of the step")
