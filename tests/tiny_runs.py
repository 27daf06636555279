"""Tiny training runs for the run, sweep and cluster tests: a config that trains in ~0.1 s."""

import numpy as np

CONFIG = {
    "lr": 0.05,
    "lr_decay": 0.9,
    "batch_size": 32,
    "reg": 0.0,
    "hidden_dim": 16,
    "init": "he",
    "init_scale": 1e-3,
    "epochs": 2,
}


def splits(n=300, dim=48, seed=0):
    """{'train'|'val'|'test': (X (N, dim) float32 standard normal, y (N,) labels in 0..9)}."""
    rng = np.random.default_rng(seed)
    make = lambda k: (rng.standard_normal((k, dim), dtype=np.float32), rng.integers(0, 10, k))
    return {"train": make(n), "val": make(60), "test": make(60)}
