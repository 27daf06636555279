"""The study's classifiers: one class, `Network`, an affine-ReLU stack with a softmax on top.

    softmax   x -> affine -> softmax                       (params W1, b1)
    twolayer  x -> affine -> ReLU -> affine -> softmax     (W1, b1, W2, b2)
    mlp       x -> [affine -> ReLU] * len(hidden_dims) -> affine -> softmax

Build one with `build_model(config, ...)`, save it with `model.save(path)`, get it back with
`load_model(path)` (the one way to load; `build_model.load` is gone). Given a `Normalizer`
(nn/normalize.py), a network takes raw pixels, its first layer applies the scaling
(layers.scaled_affine_forward: folded into the GEMM, no scaled copy of the batch), and its
file carries that scaling. The loss is the mean softmax
cross-entropy plus L2 weight decay, `reg * 0.5 * sum(W**2)` summed over the weight matrices
(biases are not regularised): the convention of the study, so `reg` means what it means there.
"""

from __future__ import annotations

import json
import math
import zipfile
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..files import atomic_paths
from .init import INITS, init_weight
from .layers import (
    AffineCache,
    ScaledAffineCache,
    affine_backward,
    affine_forward,
    relu_backward,
    relu_forward,
    scaled_affine_backward,
    scaled_affine_forward,
)
from .losses import l2_regularization, softmax, softmax_cross_entropy
from .normalize import Normalizer

KINDS = ("softmax", "twolayer", "mlp")
DEFAULTS = {"init": "he", "init_scale": 1e-3}
_KIND_KEYS = {"softmax": (), "twolayer": ("hidden_dim",), "mlp": ("hidden_dims",)}
_FORMAT = "scratchnet-model-v1"
# One layer's caches: its affine's (the scaled one's on a first layer with a normalizer) and
# its ReLU's (None on the last layer, which has no ReLU).
_LayerCache = tuple[AffineCache | ScaledAffineCache, np.ndarray | None]


class Network:
    """A trained or freshly built classifier. Create with `build_model` or `load_model`.

    params:  dict name -> ndarray; "W{i}": (fan_in, fan_out), "b{i}": (fan_out,), i = 1..L,
             all of one dtype (float32 by default, float64 for gradient checks).
    config:  the architecture dict, with defaults filled in.
    metadata: a JSON-serialisable dict carried through save/load (e.g. the training params).
    normalizer: the fixed input scaling (scratchnet.nn.normalize), or None.

    Inputs X are (N, D): pixels in [0, 255] (uint8 or float) when the network has a
    normalizer, which the first layer applies to each batch cast to the network's dtype; otherwise values
    the first layer takes as they are (cast to the network's dtype, never the other way).
    Methods trust their arguments: shapes, label ranges and dtypes are checked where data
    enters the program (params, loaded files, build_model), not on every mini-batch.
    """

    def __init__(
        self,
        config: dict[str, Any],
        params: dict[str, np.ndarray],
        metadata: dict[str, Any] | None = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        self.config = config
        self.params = params
        self.metadata = dict(metadata or {})
        self.normalizer = normalizer
        # With a normalizer: the current batch cast to the network's dtype, followed by one row
        # holding the normalizer's mean, the input of the first layer (layers.scaled_affine_forward).
        # Reused from call to call (a fresh 1.5 MB array per step costs its page faults); no
        # array a method returns refers to it, so overwriting it at the next call is safe.
        self._xm = np.empty((0, self.input_dim), self.dtype)

    # --- shape facts -------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.params) // 2

    @property
    def input_dim(self) -> int:
        return int(self.params["W1"].shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.params[f"W{self.num_layers}"].shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.params["W1"].dtype

    def __repr__(self) -> str:
        dims = [self.input_dim] + [self.params[f"W{i}"].shape[1] for i in range(1, self.num_layers + 1)]
        return (
            f"Network(kind={self.config['kind']!r}, dims={'-'.join(map(str, dims))}, "
            f"dtype={self.dtype}, normalize={getattr(self.normalizer, 'method', None)!r})"
        )

    # --- forward / backward ------------------------------------------------------------
    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, list[_LayerCache]]:
        """X: (N, D) inputs -> scores (N, C) and the per-layer caches [(affine_cache, relu_cache|None)]."""
        caches: list[_LayerCache] = []
        last = self.num_layers
        affine_cache: AffineCache | ScaledAffineCache
        if self.normalizer is not None:
            # The scaling happens inside the first layer (folded into its GEMM), so the batch
            # is only cast, in one pass, never shifted and scaled as a whole.
            n = len(X)
            if n + 1 > len(self._xm):
                self._xm = np.empty((n + 1, self.input_dim), self.dtype)
            xm = self._xm[: n + 1]
            shift, scale = self.normalizer.shift_and_scale(self.dtype)
            np.copyto(xm[:n], X)
            xm[n] = shift
        else:
            h = X if X.dtype == self.dtype else X.astype(self.dtype)
        for i in range(1, last + 1):
            if i == 1 and self.normalizer is not None:
                h, affine_cache = scaled_affine_forward(xm, self.params["W1"], self.params["b1"], scale)
            else:
                h, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            relu_cache = None
            if i < last:
                h, relu_cache = relu_forward(h)
            caches.append((affine_cache, relu_cache))
        return h, caches

    def _backward(
        self, dscores: np.ndarray, caches: list[_LayerCache], input_grad: bool
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """dscores: (N, C) -> (grads, dX): grads like params; dX (N, D) d/d inputs, or None.

        The one backward pass. input_grad=False skips the first layer's input gradient (a GEMM
        as large as the forward one) that training never uses.
        """
        grads: dict[str, np.ndarray] = {}
        dout: np.ndarray | None = dscores
        for i in range(self.num_layers, 0, -1):
            assert dout is not None  # each layer above the first hands its input gradient down
            affine_cache, relu_cache = caches[i - 1]
            if relu_cache is not None:
                dout = relu_backward(dout, relu_cache)
            # The cache names its layer: (xm, w scaled, s) is the first layer's with a normalizer.
            if len(affine_cache) == 3:
                dout, grads["W1"], grads["b1"] = scaled_affine_backward(dout, affine_cache, input_grad=input_grad)
            else:
                dout, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(
                    dout, affine_cache, input_grad=input_grad or i > 1
                )
        return grads, dout

    def scores(self, X: np.ndarray) -> np.ndarray:
        """X: (N, D) -> (N, C) logits."""
        return self._forward(X)[0]

    def probabilities(self, X: np.ndarray) -> np.ndarray:
        """X: (N, D) -> (N, C) softmax probabilities (rows sum to 1)."""
        return softmax(self.scores(X))

    def predict(self, X: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """X: (N, D) -> (N,) int64 predicted classes, computed `batch_size` rows at a time so
        memory stays flat however large X is (X may be a memory map of uint8 pixels)."""
        n = len(X)
        out = np.empty(n, dtype=np.int64)
        for start in range(0, n, batch_size):
            out[start : start + batch_size] = self.scores(X[start : start + batch_size]).argmax(axis=1)
        return out

    def forward_backward(
        self, X: np.ndarray, y: np.ndarray, reg: float = 0.0
    ) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
        """(loss, grads, scores) on the batch X (N, D), y (N,) ints in [0, C).

        loss = mean cross-entropy + reg * 0.5 * sum_i sum(W_i**2) (biases not regularised);
        grads has the keys and shapes of params; scores (N, C) are returned so the trainer
        counts correct predictions without a second forward pass.
        """
        scores, caches = self._forward(X)
        loss, dscores = softmax_cross_entropy(scores, y)
        grads, _ = self._backward(dscores, caches, input_grad=False)
        if reg:
            for i in range(1, self.num_layers + 1):
                penalty, dw = l2_regularization(self.params[f"W{i}"], reg)
                loss += penalty
                grads[f"W{i}"] += dw
        return loss, grads, scores

    def loss(self, X: np.ndarray, y: np.ndarray, reg: float = 0.0) -> tuple[float, dict[str, np.ndarray]]:
        """(loss, grads): mean cross-entropy + reg * 0.5 * sum(W**2) over weights, not biases."""
        loss, grads, _ = self.forward_backward(X, y, reg)
        return loss, grads

    def input_gradient(self, X: np.ndarray, y: ArrayLike) -> np.ndarray:
        """d loss_i / d x_i for every example: X (N, D), y (N,) -> (N, D), no regularisation.

        Row i is the gradient of example i's own cross-entropy with respect to its own input
        (pixels, through the normalizer, when the network has one), i.e. the gradient of the
        SUM of per-example losses (not the mean, which would shrink each row by 1/N).
        Ascending it makes example i more wrong (an untargeted attack).
        """
        scores, caches = self._forward(X)
        _, dscores = softmax_cross_entropy(scores, np.asarray(y), reduction="sum")
        dX = self._backward(dscores, caches, input_grad=True)[1]
        assert dX is not None  # input_grad=True: the first layer's input gradient is computed
        return dX

    def targeted_input_gradient(self, X: np.ndarray, target: ArrayLike) -> np.ndarray:
        """Gradient of each example's cross-entropy toward class `target`: X (N, D) -> (N, D).

        target: one class index for all rows, or (N,) ints. Descending this gradient moves
        every x toward being classified as its target (a targeted attack).
        """
        target = np.asarray(target)
        if target.ndim == 0:
            target = np.full(len(X), int(target), dtype=np.int64)
        return self.input_gradient(X, target)

    # --- persistence -------------------------------------------------------------------
    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
        """Writes a plain .npz (no pickle) at `path`, atomically.

        Holds every param array, the architecture config and `metadata` as JSON text, and the
        normalizer (method, mean, std) if there is one. Given metadata becomes model.metadata;
        metadata=None saves the model's current one. Loadable with np.load(path, allow_pickle=False).
        """
        if metadata is not None:
            self.metadata = dict(metadata)
        try:
            meta_json = json.dumps(self.metadata)
        except (TypeError, ValueError) as err:
            raise ValueError(f"model metadata for {path} must be JSON-serialisable: {err}") from None
        arrays = {
            **self.params,
            "__format__": np.array(_FORMAT),
            "__config__": np.array(json.dumps(self.config)),
            "__metadata__": np.array(meta_json),
        }
        if self.normalizer is not None:
            arrays.update(
                {
                    "__normalize__": np.array(self.normalizer.method),
                    "__input_mean__": self.normalizer.mean,
                    "__input_std__": self.normalizer.std,
                }
            )
        with atomic_paths({"model": path}) as tmp:
            with open(tmp["model"], "wb") as f:  # a file object: given a name, np.savez appends ".npz"
                # ignore: numpy's stub types savez's keywords with its allow_pickle: bool, so mypy
                # refuses any **dict of arrays (a name "allow_pickle" never occurs among ours)
                np.savez(f, **arrays)  # type: ignore[arg-type]


def _normalise_config(config: object) -> tuple[dict[str, Any], list[int]]:
    """Checks an architecture dict; returns it with defaults filled in, and the hidden sizes."""
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"model config must be a dict with a 'kind' ({', '.join(KINDS)}); got {config!r}")
    kind = config["kind"]
    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")
    allowed = {"kind", *DEFAULTS, *_KIND_KEYS[kind]}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(unknown)} in {kind} model config; allowed: {', '.join(sorted(allowed))}"
        )
    missing = [k for k in _KIND_KEYS[kind] if k not in config]
    if missing:
        raise ValueError(f"{kind} model config needs {', '.join(missing)}")
    full = {**DEFAULTS, **config}
    if full["init"] not in INITS:
        raise ValueError(f"model config init must be one of {', '.join(INITS)}; got {full['init']!r}")
    scale = full["init_scale"]
    if isinstance(scale, bool) or not isinstance(scale, Real) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"model config init_scale must be a positive number; got {scale!r}")
    full["init_scale"] = float(scale)

    def size(value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"model config {key} must be a whole number >= 1; got {value!r}")
        return int(value)

    if kind == "twolayer":
        full["hidden_dim"] = size(full["hidden_dim"], "hidden_dim")
        hidden = [full["hidden_dim"]]
    elif kind == "mlp":
        if not isinstance(full["hidden_dims"], (list, tuple)):
            raise ValueError(f"model config hidden_dims must be a list of sizes; got {full['hidden_dims']!r}")
        hidden = [size(h, "hidden_dims") for h in full["hidden_dims"]]
        full["hidden_dims"] = hidden
    else:
        hidden = []
    return full, hidden


def _float_dtype(dtype: DTypeLike) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}")
    return dtype


def build_model(
    config: dict[str, Any],
    input_dim: int = 3072,
    num_classes: int = 10,
    seed: int = 0,
    dtype: DTypeLike = np.float32,
    normalizer: Normalizer | None = None,
) -> Network:
    """A freshly initialised Network.

    config: {"kind": "softmax"|"twolayer"|"mlp", "hidden_dim": int (twolayer),
             "hidden_dims": [int, ...] (mlp), "init": "he"|"gaussian" (default "he"),
             "init_scale": float (std of "gaussian", default 1e-3)}; any other key is an error.
    normalizer: the input scaling (its statistics have input_dim entries), so the network
             takes pixels; None: it takes its inputs as they are.
    Weights come from np.random.default_rng(seed); biases are zero.
    """
    config, hidden = _normalise_config(config)
    dtype = _float_dtype(dtype)
    for name, value in (("input_dim", input_dim), ("num_classes", num_classes)):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1; got {value!r}")
    if normalizer is not None and normalizer.dim != input_dim:
        raise ValueError(f"the normalizer has statistics for {normalizer.dim} inputs; input_dim is {input_dim}")
    rng = np.random.default_rng(seed)
    dims = [int(input_dim), *hidden, int(num_classes)]
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:]), start=1):
        params[f"W{i}"] = init_weight(rng, fan_in, fan_out, config["init"], config["init_scale"], dtype)
        params[f"b{i}"] = np.zeros(fan_out, dtype=dtype)
    return Network(config, params, normalizer=normalizer)


def load_model(path: str | Path) -> Network:
    """Reads a model written by `Network.save` (never unpickles anything)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"model file {path} does not exist") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz model file: {err}") from None
    if str(arrays.pop("__format__", "")) != _FORMAT:
        raise ValueError(f"{path} is not a scratchnet model (no '{_FORMAT}' marker)")
    try:
        config = json.loads(str(arrays.pop("__config__")))
        metadata = json.loads(str(arrays.pop("__metadata__")))
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: missing or corrupt model config/metadata: {err}") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: model metadata must be a JSON object; got {type(metadata).__name__}")
    try:
        config, hidden = _normalise_config(config)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    normalizer = None
    if "__normalize__" in arrays:
        try:
            normalizer = Normalizer(
                str(arrays.pop("__normalize__")), arrays.pop("__input_mean__"), arrays.pop("__input_std__")
            )
        except (KeyError, ValueError) as err:
            raise ValueError(f"{path}: missing or corrupt input normalizer: {err}") from None
    num_layers = len(hidden) + 1
    expected = {f"{p}{i}" for i in range(1, num_layers + 1) for p in "Wb"}
    if set(arrays) != expected:
        raise ValueError(f"{path}: params {sorted(arrays)} do not match a {config['kind']} model ({sorted(expected)})")
    dims = [arrays["W1"].shape[0], *hidden, arrays[f"W{num_layers}"].shape[-1]]
    dtype = arrays["W1"].dtype
    for i in range(1, num_layers + 1):
        w, b = arrays[f"W{i}"], arrays[f"b{i}"]
        if w.shape != (dims[i - 1], dims[i]) or b.shape != (dims[i],):
            raise ValueError(f"{path}: W{i} {w.shape} / b{i} {b.shape} do not fit layer sizes {dims}")
        if w.dtype != dtype or b.dtype != dtype:
            raise ValueError(f"{path}: params must share one dtype; W1 is {dtype}, W{i}/b{i} are {w.dtype}/{b.dtype}")
    try:
        _float_dtype(dtype)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if normalizer is not None and normalizer.dim != dims[0]:
        raise ValueError(f"{path}: the input normalizer has {normalizer.dim} entries; W1 takes {dims[0]} inputs")
    return Network(config, arrays, metadata, normalizer)
