"""PyTorch's side of bench/fold_speed.py: one training epoch per request, as a PyTorch user writes it.

Runs in its own environment (PyTorch is not a dependency of this project):

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchvenv/bin/python bench/torch_epoch.py DATA.npz   # started by bench/fold_speed.py

DATA.npz holds the uint8 pixels, labels and per-pixel statistics bench/fold_speed.py trains on.
Each model's arrays are normalised to float32 ONCE, up front, the way a PyTorch user feeds a
network (so PyTorch pays no per-batch scaling); each epoch then gathers `X[idx]` mini-batches,
runs nn.Linear/ReLU/CrossEntropyLoss, backward and torch.optim.SGD, counts train accuracy from
the step's scores and the loss, and ends with the validation accuracy: the work our `train`
does per epoch. Protocol: a JSON line {"config": name, "threads": n} on stdin is answered with
{"seconds": s, "cpu": c} on stdout: the epoch's wall time and this process's CPU time,
measured here (no pipe time included).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from torch import nn


def build(config: dict) -> nn.Module:
    d, c = config["input_dim"], config["num_classes"]
    if config["kind"] == "softmax":
        return nn.Linear(d, c)
    return nn.Sequential(nn.Linear(d, config["hidden_dim"]), nn.ReLU(), nn.Linear(config["hidden_dim"], c))


def epoch(model, opt, X, y, X_val, y_val, batch_size: int, gen) -> float:
    started = time.perf_counter()
    loss_fn = nn.CrossEntropyLoss()
    n = len(X)
    order = torch.randperm(n, generator=gen)
    correct, loss_sum = 0, 0.0
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xb, yb = X[idx], y[idx]
        scores = model(xb)
        loss = loss_fn(scores, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item()
        correct += int((scores.argmax(1) == yb).sum())
    with torch.no_grad():
        val_acc = float((model(X_val).argmax(1) == y_val).float().mean())
    assert np.isfinite(loss_sum) and 0 <= val_acc <= 1
    return time.perf_counter() - started


def main() -> None:
    data = np.load(sys.argv[1], allow_pickle=False)
    configs = json.loads(str(data["configs"]))
    mean, std = data["mean"], data["std"]
    y, y_val = torch.from_numpy(data["y"].astype(np.int64)), torch.from_numpy(data["y_val"].astype(np.int64))
    runs, gen = {}, torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    for name, config in configs.items():
        scale = 255.0 if config["normalize"] == "mean" else np.maximum(std, 1.0)
        norm = lambda x: torch.from_numpy(((x - mean) / scale).astype(np.float32))  # noqa: E731
        model = build(config)
        runs[name] = (
            model,
            torch.optim.SGD(model.parameters(), lr=config["lr"]),
            norm(data["X"]),
            norm(data["X_val"]),
            config["batch_size"],
        )
    print(json.dumps({"ready": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        torch.set_num_threads(request["threads"])
        model, opt, X, X_val, batch_size = runs[request["config"]]
        cpu = time.process_time()
        seconds = epoch(model, opt, X, y, X_val, y_val, batch_size, gen)
        print(json.dumps({"seconds": seconds, "cpu": time.process_time() - cpu}), flush=True)


if __name__ == "__main__":
    main()
