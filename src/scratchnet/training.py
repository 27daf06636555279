"""The mini-batch training loop: SGD over a seeded permutation, per-epoch history, divergence.

    result = train(model, X_train, y_train, X_val, y_val, epochs=30, lr=0.1, lr_decay=0.9,
                   batch_size=128, reg=0.0, seed=0)
    result.history[-1]   # {"epoch": 30, "loss": ..., "train_acc": ..., "val_acc": ..., "lr": ...}

Each epoch visits every training example once, in an order drawn from
np.random.default_rng(seed); the last mini-batch of an epoch holds the remainder. The
learning rate of epoch k is lr * lr_decay ** (k - 1). `train_acc` is the fraction of training
examples the model classified correctly at the moment each was used for a step (from the
scores the step computed anyway), so it costs no second pass over the training set and
trails the end-of-epoch model slightly. `val_acc` is the end-of-epoch model on the validation
set, evaluated in batches so memory stays flat.

A NaN or infinite loss (or weights) stops training: `diverged` is True, `diverged_epoch` is
the epoch it happened in, and `history` holds the completed epochs before it (all finite, so
the history always serialises to strict JSON). No exception is raised: a diverged run is a
result an ablation records, not a crash.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Callable

import numpy as np
from tqdm import tqdm

from .nn.optim import decayed_lr


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # one record per completed epoch
    diverged: bool = False
    diverged_epoch: int | None = None  # 1-based epoch whose loss became NaN/inf
    seconds: float = 0.0  # wall time of the whole run, evaluation included


def accuracy(model, X: np.ndarray, y: np.ndarray, batch_size: int = 2048) -> float:
    """Fraction of rows of X (N, D) that `model` classifies as y (N,), in batches."""
    y = np.asarray(y)
    if len(y) != len(X) or len(y) == 0:
        raise ValueError(f"accuracy needs as many labels as rows, at least one; got {len(X)} rows, {len(y)} labels")
    return float(np.count_nonzero(model.predict(X, batch_size) == y) / len(y))


def _check(name: str, value, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"train: {name} must be {expected}; got {value!r}")


def _is_int(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v)


def train(model, X_train, y_train, X_val, y_val, *, epochs: int, lr: float, lr_decay: float,
          batch_size: int, reg: float, seed: int, progress: bool = True, desc: str | None = None,
          on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Trains `model` in place by mini-batch SGD; returns its per-epoch history.

    X_train: (N, D) model-space floats (an ndarray or a memory map), y_train: (N,) int labels;
    X_val, y_val likewise. reg: L2 coefficient, loss += reg * 0.5 * sum(W**2) over weights.
    on_epoch(record) is called after each completed epoch with the history record.
    """
    _check("epochs", epochs, _is_int(epochs) and epochs >= 1, "a whole number >= 1")
    _check("batch_size", batch_size, _is_int(batch_size) and batch_size >= 1, "a whole number >= 1")
    _check("lr", lr, _is_real(lr) and lr > 0, "a positive number")
    _check("lr_decay", lr_decay, _is_real(lr_decay) and lr_decay > 0, "a positive number")
    _check("reg", reg, _is_real(reg) and reg >= 0, "a number >= 0")
    for split, X, y in (("train", X_train, y_train), ("val", X_val, y_val)):
        if getattr(X, "ndim", None) != 2 or X.shape[1] != model.input_dim:
            raise ValueError(f"train: X_{split} must have shape (N, {model.input_dim}); "
                             f"got {getattr(X, 'shape', type(X).__name__)}")
        if len(y) != len(X) or len(y) == 0:
            raise ValueError(f"train: X_{split} has {len(X)} rows but y_{split} has {len(y)} labels "
                             "(need the same number, at least one)")
    y_train = np.asarray(y_train)
    if X_train.dtype != model.dtype:  # one cast up front, never a per-batch float64 round trip
        X_train = X_train.astype(model.dtype)

    n, dim = X_train.shape
    rng = np.random.default_rng(seed)
    # One reusable mini-batch buffer, filled by np.take(..., out=) from each batch's indices.
    # Measured against one permuted copy of X per epoch (bench/train_speed.py): ~0.07 s vs
    # ~0.15 s of data movement per CIFAR epoch, because the gathered batch is still in cache
    # when the forward GEMM reads it, and no second 600 MB copy of the training set is made.
    batch = np.empty((min(batch_size, n), dim), dtype=model.dtype)

    result = TrainResult()
    started = time.perf_counter()
    bar = tqdm(range(1, epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=True)
    # A diverging run overflows exp/matmul before its loss turns inf; the check below turns
    # that into a recorded result, so NumPy's per-operation warnings would only be noise.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in bar:
            epoch_lr = decayed_lr(lr, lr_decay, epoch)
            order = rng.permutation(n)
            loss_sum, num_batches, correct = 0.0, 0, 0
            finite = True
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                # mode="clip": indices from a permutation are always in range, and the default
                # mode="raise" would stage the gather through a temporary buffer.
                xb = np.take(X_train, idx, axis=0, out=batch[:len(idx)], mode="clip")
                yb = y_train[idx]
                loss, scores = model.train_step(xb, yb, lr=epoch_lr, reg=reg)
                if not math.isfinite(loss):
                    finite = False
                    break
                loss_sum += loss
                num_batches += 1
                correct += int(np.count_nonzero(scores.argmax(axis=1) == yb))
            # The last step of an epoch can overflow the weights after a finite loss.
            if not finite or not all(np.isfinite(p).all() for p in model.params.values()):
                result.diverged, result.diverged_epoch = True, epoch
                bar.set_postfix_str(f"diverged at epoch {epoch}")
                break
            record = {
                "epoch": epoch,
                "loss": loss_sum / num_batches,
                "train_acc": correct / n,
                "val_acc": accuracy(model, X_val, y_val),
                "lr": epoch_lr,
            }
            result.history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.4f}", train_acc=f"{record['train_acc']:.4f}",
                            val_acc=f"{record['val_acc']:.4f}")
            if on_epoch is not None:
                on_epoch(record)
    bar.close()
    result.seconds = time.perf_counter() - started
    return result
