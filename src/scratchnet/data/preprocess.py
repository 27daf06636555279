"""From canonical pixels to the float32 arrays every model trains on.

    train (raw)  --seeded permutation-->  val: val_size examples
                                          train: the rest (at most train_limit)
    test (raw)   --seeded subset------->  test: at most test_limit examples

Normalisation statistics come from the final training split only (val and test must not leak
into them), per pixel position and channel:

    mean:      X = (x - mean) / 255
    mean_std:  X = (x - mean) / std,  std floored at MIN_STD pixel levels

The `Normalizer` is saved beside the arrays so that attacks can move between pixel space
[0, 255] and model space in both directions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .cifar import IMAGE_SHAPE, PIXELS, RawDataset, class_counts
from .errors import DataError
from ..files import atomic_paths, json_text

METHODS = ("mean", "mean_std")
# A pixel whose training std is below one grey level would have any tiny difference at test
# time (JPEG noise, an attack's step) blown up by 1/std; CIFAR's real stds are ~50-70.
MIN_STD = 1.0
_CHUNK = 4096  # images per block: bounds the float temporaries to ~100 MB


@dataclass
class Normalizer:
    """Per-pixel affine map between pixel space and model space.

    mean:  (3072,) float32, pixel units [0, 255], HWC flattening order
    scale: (3072,) float32, pixel units per model unit (255 for "mean", the std for "mean_std")
    """

    mean: np.ndarray
    scale: np.ndarray
    method: str

    @classmethod
    def fit(cls, pixels: np.ndarray, method: str) -> "Normalizer":
        """Statistics of `pixels` (N, 32, 32, 3) in [0, 255], accumulated in float64 by blocks."""
        if method not in METHODS:
            raise ValueError(f"normalize is {method!r}; expected one of {METHODS}")
        n = len(pixels)
        if n == 0:
            raise ValueError("cannot fit a Normalizer on no images")
        total = np.zeros(PIXELS)
        total_sq = np.zeros(PIXELS)
        for start in range(0, n, _CHUNK):
            block = pixels[start:start + _CHUNK].reshape(-1, PIXELS).astype(np.float64)
            total += block.sum(axis=0)
            total_sq += np.square(block).sum(axis=0)
        mean = total / n
        if method == "mean":
            scale = np.full(PIXELS, 255.0)
        else:
            # E[x^2] - E[x]^2 is exact enough here: integer pixels, float64 sums below 2^53.
            std = np.sqrt(np.maximum(total_sq / n - mean**2, 0.0))
            scale = np.maximum(std, MIN_STD)
        return cls(mean.astype(np.float32), scale.astype(np.float32), method)

    def forward(self, pixels: np.ndarray) -> np.ndarray:
        """pixels (N, 32, 32, 3), uint8 or float in [0, 255] -> X (N, 3072) float32 model space."""
        pixels = np.asarray(pixels)
        if pixels.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"pixels have shape {pixels.shape}; expected (N, 32, 32, 3)")
        flat = pixels.reshape(len(pixels), PIXELS).astype(np.float32)
        flat -= self.mean
        flat /= self.scale
        return flat

    def inverse(self, X: np.ndarray) -> np.ndarray:
        """X (N, 3072) model space -> pixels (N, 32, 32, 3) float32, not clipped to [0, 255]."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != PIXELS:
            raise ValueError(f"X has shape {X.shape}; expected (N, {PIXELS})")
        return (X * self.scale + self.mean).reshape(len(X), *IMAGE_SHAPE)

    def save(self, path: str | Path) -> None:
        with atomic_paths({"stats": path}) as tmp:
            self._write(tmp["stats"])

    def _write(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, mean=self.mean, scale=self.scale, method=np.array(self.method))

    @classmethod
    def load(cls, path: str | Path) -> "Normalizer":
        """Reads a saved Normalizer; DataError naming `path` if it is missing or malformed."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as npz:
                mean, scale, method = npz["mean"], npz["scale"], str(npz["method"])
        except (OSError, ValueError, KeyError, EOFError) as err:
            raise DataError(
                f"{path}: not a readable normaliser (.npz with mean, scale, method): {err}; "
                f"run the preprocess stage"
            ) from None
        for name, array in (("mean", mean), ("scale", scale)):
            if array.dtype != np.float32 or array.shape != (PIXELS,) or not np.isfinite(array).all():
                raise DataError(f"{path}: {name} is {array.dtype} {array.shape}; expected finite float32 ({PIXELS},)")
        if method not in METHODS or (scale <= 0).any():
            raise DataError(f"{path}: method {method!r} with min scale {scale.min()}; expected "
                            f"one of {METHODS} and scale > 0")
        return cls(mean, scale, method)


def split_indices(n_train: int, n_test: int, *, val_size: int, train_limit: int | None,
                  test_limit: int | None, seed: int) -> dict[str, np.ndarray]:
    """Indices into the raw train ("train", "val") and raw test ("test") arrays, each sorted.

    One generator seeded with `seed` draws the train permutation first, then the test one, so
    the validation set depends only on (seed, n_train, val_size). Limits take a random subset
    (the raw order may be grouped by class, as the mirror's is).
    """
    if not 0 < val_size < n_train:
        raise DataError(
            f"preprocess.val_size is {val_size}; expected at least 1 and fewer than the "
            f"{n_train} raw training examples"
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
    normalize: str,
    seed: int,
    split_paths: Callable[[str], tuple[Path, Path]],
    stats_path: str | Path,
    meta_path: str | Path,
) -> dict:
    """Splits, fits the Normalizer on train, writes every output (all or none); returns the meta.

    Outputs: for each split X (N, 3072) float32 .npy and y (N,) int64 .npy, the Normalizer at
    `stats_path`, and `meta_path` JSON {class_names, counts, normalize, seed, val_size,
    train_limit, test_limit, provenance, seconds}.
    """
    start = time.perf_counter()
    index = split_indices(len(raw.x_train), len(raw.x_test), val_size=val_size,
                          train_limit=train_limit, test_limit=test_limit, seed=seed)
    source = {"train": (raw.x_train, raw.y_train), "val": (raw.x_train, raw.y_train),
              "test": (raw.x_test, raw.y_test)}
    normalizer = Normalizer.fit(raw.x_train[index["train"]], normalize)

    outputs = {"stats": stats_path, "meta": meta_path}
    for split in index:
        outputs[f"X_{split}"], outputs[f"y_{split}"] = split_paths(split)
    with atomic_paths(outputs) as tmp:
        for split, rows in index.items():
            x_raw, y_raw = source[split]
            _write_normalized(tmp[f"X_{split}"], x_raw, rows, normalizer)
            with open(tmp[f"y_{split}"], "wb") as f:
                np.save(f, y_raw[rows], allow_pickle=False)
        normalizer._write(tmp["stats"])
        meta = {
            "class_names": list(raw.class_names),
            "counts": {s: class_counts(source[s][1][rows], raw.class_names) for s, rows in index.items()},
            "normalize": normalize,
            "seed": seed,
            "val_size": val_size,
            "train_limit": train_limit,
            "test_limit": test_limit,
            "provenance": provenance,
            "seconds": round(time.perf_counter() - start, 3),
        }
        tmp["meta"].write_text(json_text(meta))
    return meta


def _write_normalized(path: Path, pixels: np.ndarray, index: np.ndarray, normalizer: Normalizer) -> None:
    """Writes normalizer.forward(pixels[index]) as a (len(index), 3072) float32 .npy, by blocks.

    Streaming blocks to the file keeps the full float32 array (600 MB for CIFAR-10's train
    split) out of memory; the result is an ordinary .npy that `np.load(mmap_mode="r")` maps.
    """
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
              "fortran_order": False, "shape": (len(index), PIXELS)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for start in range(0, len(index), _CHUNK):
            f.write(normalizer.forward(pixels[index[start:start + _CHUNK]]).data)

