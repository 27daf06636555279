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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from tqdm import tqdm

from .nn.optim import decayed_lr, sgd_step

if TYPE_CHECKING:
    from .nn.models import Network


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)  # one record per completed epoch
    diverged: bool = False
    diverged_epoch: int | None = None  # 1-based epoch whose loss became NaN/inf
    seconds: float = 0.0  # wall time of the whole run, evaluation included


def accuracy(model: Network, X: np.ndarray, y: np.ndarray, batch_size: int = 2048) -> float:
    """Fraction of rows of X (N, D) that `model` classifies as y (N,), in batches (so a
    uint8 memory map is normalised batch by batch, never as a whole)."""
    return float(np.count_nonzero(model.predict(X, batch_size) == y) / len(y))


def train(
    model: Network,
    X_train: np.ndarray,
    y_train: ArrayLike,
    X_val: np.ndarray,
    y_val: np.ndarray,
    *,
    epochs: int,
    lr: float,
    lr_decay: float,
    batch_size: int,
    reg: float,
    seed: int,
    progress: bool = True,
    desc: str | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Trains `model` in place by mini-batch SGD; returns its per-epoch history.

    X_train: (N, D) inputs as the model takes them (uint8 pixels for a model with an input
    normalizer: each mini-batch is normalised on its way in), an ndarray or a memory map;
    y_train: (N,) int labels; X_val, y_val likewise. reg: L2 coefficient, loss += reg * 0.5 *
    sum(W**2) over weights. on_epoch(record) is called after each completed epoch.
    The arguments are trusted: params.yaml and build_model validate them at the edges.
    """
    y_train = np.asarray(y_train)
    n, dim = X_train.shape
    rng = np.random.default_rng(seed)
    # One reusable mini-batch buffer in the data's own dtype (uint8 pixels: a quarter of the
    # bytes of float32), filled by np.take(..., out=) from each batch's indices. Measured
    # against one permuted copy of X per epoch (bench/train_speed.py): ~0.07 s vs ~0.15 s of
    # data movement per float32 CIFAR epoch, because the gathered batch is still in cache when
    # the model reads it, and no second copy of the training set is made.
    batch = np.empty((min(batch_size, n), dim), dtype=X_train.dtype)

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
                idx = order[start : start + batch_size]
                # mode="clip": indices from a permutation are always in range, and the default
                # mode="raise" would stage the gather through a temporary buffer.
                xb = np.take(X_train, idx, axis=0, out=batch[: len(idx)], mode="clip")
                yb = y_train[idx]
                loss, grads, scores = model.forward_backward(xb, yb, reg)
                if not math.isfinite(loss):
                    finite = False
                    break
                sgd_step(model.params, grads, epoch_lr)
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
            bar.set_postfix(
                loss=f"{record['loss']:.4f}", train_acc=f"{record['train_acc']:.4f}", val_acc=f"{record['val_acc']:.4f}"
            )
            if on_epoch is not None:
                on_epoch(record)
    bar.close()
    result.seconds = time.perf_counter() - started
    return result
