"""Weight initialisation: He or small Gaussian, drawn from a seeded generator.

Biases always start at zero. Weights are drawn in float64 and then cast, so a float32 and a
float64 model built from the same seed hold the same numbers up to rounding (which lets a
float64 gradient check stand in for the float32 model that is trained).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike

INITS = ("he", "gaussian")


def weight_std(init: str, fan_in: int, init_scale: float) -> float:
    """Standard deviation of a weight of a layer with `fan_in` inputs.

    he:       sqrt(2 / fan_in), which keeps the variance of ReLU activations constant from layer
              to layer (He et al., 2015); `init_scale` is ignored.
    gaussian: init_scale (the cs231n default is 1e-3), whatever the layer size.
    """
    if init == "he":
        return math.sqrt(2.0 / fan_in)
    if init == "gaussian":
        return float(init_scale)
    raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")


def init_weight(
    rng: np.random.Generator, fan_in: int, fan_out: int, init: str, init_scale: float, dtype: DTypeLike
) -> np.ndarray:
    """A (fan_in, fan_out) weight matrix ~ N(0, weight_std^2), as `dtype`."""
    std = weight_std(init, fan_in, init_scale)
    return (std * rng.standard_normal((fan_in, fan_out))).astype(dtype)
