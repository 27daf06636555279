"""Input scaling: the fixed first layer that maps pixels in [0, 255] to what a network computes on.

    mean:      x' = (x - mean) / 255
    mean_std:  x' = (x - mean) / std,  std floored at MIN_STD grey levels

`mean` and `std` are per input (pixel position and channel, HWC order), statistics of the
training split only (scratchnet.data.preprocess computes them). A Network carries its
Normalizer and saves it with its weights, so a model is always used with the scaling it was
trained with, and it takes raw pixels (uint8 or float) everywhere: training, evaluation, the
attacks, the MLflow model. The data stays uint8 on disk and in memory; only a mini-batch at a
time is ever made float.

A Network does not call `forward` on its batches: its first layer applies the scaling itself
(`shift_and_scale`, nn.layers.scaled_affine_forward), which saves two passes over every
batch. `forward` / `backward` are the explicit definition the folded layer is tested against.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

METHODS = ("mean", "mean_std")
# A pixel whose training std is below one grey level would have any tiny difference at test
# time (JPEG noise, an attack's step) blown up by 1/std; CIFAR's real stds are ~50-70.
MIN_STD = 1.0


class Normalizer:
    """x' = (x - mean) * inv_scale per input, with inv_scale = 1/255 or 1/max(std, MIN_STD).

    method: "mean" or "mean_std"; mean, std: (D,) pixel units (float64 is kept as given).
    """

    def __init__(self, method: str, mean: np.ndarray, std: np.ndarray):
        if method not in METHODS:
            raise ValueError(f"normalize must be one of {', '.join(METHODS)}; got {method!r}")
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if mean.ndim != 1 or std.shape != mean.shape or not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError(
                f"normaliser statistics must be finite (D,) arrays of one shape; got mean {mean.shape}, std {std.shape}"
            )
        self.method, self.mean, self.std = method, mean, std
        scale = np.full_like(mean, 255.0) if method == "mean" else np.maximum(std, MIN_STD)
        # Precomputed per dtype: a multiply is cheaper than a divide, and the float32 constants
        # keep a float32 batch float32 (a float64 constant would upcast every batch).
        self._constants: dict[np.dtype, tuple[np.ndarray, np.ndarray]] = {
            np.dtype(t): (mean.astype(t), (1.0 / scale).astype(t)) for t in (np.float32, np.float64)
        }

    def shift_and_scale(self, dtype: DTypeLike = np.float32) -> tuple[np.ndarray, np.ndarray | float]:
        """(m, s) with x' = (x - m) * s, in `dtype`: m (D,) the mean in pixel units; s the Python
        float 1/255 for "mean" (one scale for every input: a layer can apply it to its (N, M)
        output instead of to its weights), or (D,) 1/std for "mean_std"."""
        mean, inv_scale = self._constants[np.dtype(dtype)]
        return mean, (1.0 / 255.0 if self.method == "mean" else inv_scale)

    @property
    def dim(self) -> int:
        return self.mean.size

    def forward(self, x: np.ndarray, dtype: DTypeLike = np.float32, out: np.ndarray | None = None) -> np.ndarray:
        """x: (N, D) pixels, any real dtype (uint8 from the data) -> (N, D) `dtype`.

        Written into `out` ((N, D) of `dtype`, e.g. a reused batch buffer) when given, else
        into a new array. Applied per mini-batch, never to a whole training set: a plain cast
        (a fast SIMD loop for uint8) then two in-place passes over a batch that stays in
        cache; writing into a reused buffer saves the page faults of a fresh 1.5 MB array at
        every step. Cost: bench/train_speed.py.
        """
        mean, inv_scale = self._constants[np.dtype(dtype)]
        if out is None:
            out = np.empty(np.shape(x), dtype)
        np.copyto(out, x)
        np.subtract(out, mean, out=out)
        np.multiply(out, inv_scale, out=out)
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """dout: (N, D) gradient with respect to x' -> (N, D) gradient with respect to the pixels."""
        grad: np.ndarray = dout * self._constants[dout.dtype][1]
        return grad

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Normalizer)
            and self.method == other.method
            and np.array_equal(self.mean, other.mean)
            and np.array_equal(self.std, other.std)
        )

    def __repr__(self) -> str:
        return f"Normalizer({self.method!r}, D={self.dim})"
