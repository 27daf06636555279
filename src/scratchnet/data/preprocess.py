"""From canonical pixels to the arrays every model trains on: uint8 splits plus statistics.

    train (raw)  --seeded permutation-->  val: val_size examples
                                          train: the rest (at most train_limit)
    test (raw)   --seeded subset------->  test: at most test_limit examples

Each split is stored as uint8 pixels, X (N, 3072) in HWC order, and y (N,) int64: the data on
disk, in memory and on the wire stays a quarter of the size of float32. Normalisation is each
model's own choice (params `<model>.normalize`, scratchnet.nn.Normalizer), applied per
mini-batch from the statistics stored here: per pixel position and channel, the mean and std
of the final training split only (val and test must not leak into them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_paths, json_text
from .cifar import PIXELS, RawDataset, class_counts
from .errors import DataError

_CHUNK = 4096  # images per block: bounds the float64 temporaries of the statistics to ~100 MB


@dataclass
class PixelStats:
    """Per-input statistics of the training split, in pixel units [0, 255], HWC order.

    mean, std: (3072,) float64 (population std). scratchnet.nn.Normalizer turns them into a
    model's input scaling.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, pixels: np.ndarray) -> PixelStats:
        """Statistics of `pixels` (N, ...) in [0, 255] flattening to 3072 values each,
        accumulated in float64 by blocks."""
        n = len(pixels)
        if n == 0:
            raise ValueError("cannot compute pixel statistics of no images")
        total = np.zeros(PIXELS)
        total_sq = np.zeros(PIXELS)
        for start in range(0, n, _CHUNK):
            block = pixels[start : start + _CHUNK].reshape(-1, PIXELS).astype(np.float64)
            total += block.sum(axis=0)
            total_sq += np.square(block).sum(axis=0)
        mean = total / n
        # E[x^2] - E[x]^2 is exact enough here: integer pixels, float64 sums below 2^53.
        std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
        return cls(mean, std)

    def save(self, path: str | Path) -> None:
        with atomic_paths({"stats": path}) as tmp:
            self._write(tmp["stats"])

    def _write(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, mean=self.mean, std=self.std)

    @classmethod
    def load(cls, path: str | Path) -> PixelStats:
        """Reads saved statistics; DataError naming `path` if missing or malformed."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                mean, std = npz["mean"], npz["std"]
        except (OSError, ValueError, KeyError, EOFError) as err:
            raise DataError(
                f"{path}: not readable pixel statistics (.npz with mean, std): {err}; run the preprocess stage"
            ) from None
        for name, array in (("mean", mean), ("std", std)):
            if array.dtype != np.float64 or array.shape != (PIXELS,) or not np.isfinite(array).all():
                raise DataError(
                    f"{path}: {name} is {array.dtype} {array.shape}; expected finite "
                    f"float64 ({PIXELS},); run the preprocess stage"
                )
        if (std < 0).any():
            raise DataError(f"{path}: std has negative entries; run the preprocess stage")
        return cls(mean, std)


def split_indices(
    n_train: int, n_test: int, *, val_size: int, train_limit: int | None, test_limit: int | None, seed: int
) -> dict[str, np.ndarray]:
    """Indices into the raw train ("train", "val") and raw test ("test") arrays, each sorted.

    One generator seeded with `seed` draws the train permutation first, then the test one, so
    the validation set depends only on (seed, n_train, val_size). Limits take a random subset
    (the raw order may be grouped by class, as the mirror's is).
    """
    if not 0 < val_size < n_train:
        raise DataError(
            f"preprocess.val_size is {val_size}; expected at least 1 and fewer than the {n_train} raw training examples"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_train)
    val, train = order[:val_size], order[val_size:]
    if train_limit is not None:
        train = train[:train_limit]
    test = np.arange(n_test)
    if test_limit is not None and test_limit < n_test:
        test = rng.permutation(n_test)[:test_limit]
    # Sorted, so that a split reads the raw arrays front to back.
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def write_processed(
    raw: RawDataset,
    provenance: dict,
    *,
    val_size: int,
    train_limit: int | None,
    test_limit: int | None,
    seed: int,
    split_paths: Callable[[str], tuple[Path, Path]],
    stats_path: str | Path,
    meta_path: str | Path,
) -> dict:
    """Splits, computes the training split's PixelStats, writes every output (all or none);
    returns the meta.

    Outputs: for each split X (N, 3072) uint8 .npy and y (N,) int64 .npy, the PixelStats at
    `stats_path`, and `meta_path` JSON {class_names, counts, seed, val_size, train_limit,
    test_limit, provenance}: a function of its inputs only (no time), like every DVC output.
    """
    index = split_indices(
        len(raw.x_train), len(raw.x_test), val_size=val_size, train_limit=train_limit, test_limit=test_limit, seed=seed
    )
    source = {"train": (raw.x_train, raw.y_train), "val": (raw.x_train, raw.y_train), "test": (raw.x_test, raw.y_test)}
    stats = PixelStats.fit(raw.x_train[index["train"]])

    outputs = {"stats": stats_path, "meta": meta_path}
    for split in index:
        outputs[f"X_{split}"], outputs[f"y_{split}"] = split_paths(split)
    with atomic_paths(outputs) as tmp:
        for split, rows in index.items():
            x_raw, y_raw = source[split]
            with open(tmp[f"X_{split}"], "wb") as f:
                np.save(f, x_raw[rows].reshape(len(rows), PIXELS), allow_pickle=False)
            with open(tmp[f"y_{split}"], "wb") as f:
                np.save(f, y_raw[rows], allow_pickle=False)
        stats._write(tmp["stats"])
        meta = {
            "class_names": list(raw.class_names),
            "counts": {s: class_counts(source[s][1][rows], raw.class_names) for s, rows in index.items()},
            "seed": seed,
            "val_size": val_size,
            "train_limit": train_limit,
            "test_limit": test_limit,
            "provenance": provenance,
        }
        tmp["meta"].write_text(json_text(meta))
    return meta
