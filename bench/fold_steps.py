"""The train step alone, before (996b591) vs now, in CPU time, finely interleaved (issue 26).

    .venv/bin/python bench/fold_steps.py PROJECT [ALTERNATIONS]

On a machine shared with other jobs, an epoch's wall time swings by 2-10x; this measures the
step itself (gather, forward, backward, SGD; no validation) in the thread's CPU time, alternating
the two libraries every 40 steps on the same mini-batches, single-threaded, and reports the
ratio of the minima, of the medians and the median of the paired ratios, each scaled to an
epoch of 49,000 rows. PROJECT: a project folder with data/processed (first 20,000 rows used).
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from threadpoolctl import threadpool_limits
from train_speed import import_before

from scratchnet.nn import Normalizer, build_model
from scratchnet.nn.optim import sgd_step

PROCESSED = sys.argv[1] + "/data/processed"
X = np.load(PROCESSED + "/X_train.npy", mmap_mode="r")
y = np.load(PROCESSED + "/y_train.npy")
X = np.ascontiguousarray(X[:20000])
st = np.load(PROCESSED + "/stats.npz")
mean, std = st["mean"], st["std"]
tmp = tempfile.mkdtemp()
old_nn, _ = import_before("996b591", Path(tmp))
cfgs = {
    "twolayer": ({"kind": "twolayer", "hidden_dim": 100}, 128, "mean", 0.1),
    "softmax": ({"kind": "softmax", "init": "gaussian"}, 256, "mean_std", 5e-3),
}
rng = np.random.default_rng(0)
with threadpool_limits(1):
    for name, (cfg, bs, method, lr) in cfgs.items():
        models = {
            "before": old_nn.build_model(cfg, 3072, 10, seed=0, normalizer=old_nn.Normalizer(method, mean, std)),
            "now": build_model(cfg, 3072, 10, seed=0, normalizer=Normalizer(method, mean, std)),
        }
        batch = np.empty((bs, 3072), np.uint8)
        times = {k: [] for k in models}
        steps = 40
        for rep in range(int(sys.argv[2]) if len(sys.argv) > 2 else 60):
            idxs = [rng.permutation(len(X))[:bs] for _ in range(steps)]
            for k, m in models.items():
                t = time.thread_time()
                for idx in idxs:
                    xb = np.take(X, idx, axis=0, out=batch, mode="clip")
                    loss, grads, scores = m.forward_backward(xb, y[idx], 0.0)
                    sgd_step(m.params, grads, lr)
                times[k].append((time.thread_time() - t) / steps * (49000 / bs))
        b, n = np.array(times["before"]), np.array(times["now"])
        print(
            f"{name}: per-epoch CPU s of the train step (gather+fwd+bwd+sgd), {len(b)} alternations of {steps} steps: "
            f"before min {b.min():.3f} median {np.median(b):.3f}; now min {n.min():.3f} median {np.median(n):.3f}; "
            f"ratio of mins {b.min() / n.min():.3f}, of medians {np.median(b) / np.median(n):.3f}, "
            f"median of paired ratios {np.median(b / n):.3f}",
            flush=True,
        )
