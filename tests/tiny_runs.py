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


def pixel_data(n: int, seed: int, noise: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """(X (n, 3072) uint8 pixels, y (n,)): ten class prototypes plus noise, learnable in 2 epochs."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(99).uniform(80, 175, (10, 3072))
    y = rng.integers(0, 10, n)
    x = np.clip(prototypes[y] + rng.normal(0, noise, (n, 3072)), 0, 255).round().astype(np.uint8)
    return x, y
