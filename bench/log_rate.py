"""The sweep driver's MLflow logging rate: how many finished runs per second one stage process
can log (Tracker.log_run), the one writer every worker's results pass through.

    .venv/bin/python bench/log_rate.py          # 60 runs into a fresh SQLite store in a temp dir
    .venv/bin/python bench/log_rate.py 200

Each record is a two-layer run of 30 epochs (150 epoch metrics, test_acc, 12 params, the
study's tags, curve.csv). Reports: ms per new run; a second Tracker's one search of the store
(logged_keys); ms per already-logged run (the rerun case: nothing is written).
"""

import os
import sys
import tempfile
import time

from scratchnet.study.tracking import Tracker, sweep_tags


def record(i: int) -> dict:
    history = [
        {"epoch": e, "loss": 1.0 / e, "train_acc": 0.5, "val_acc": 0.4, "lr": 0.1 * 0.9**e} for e in range(1, 31)
    ]
    return {
        "seed": i % 3,
        "test_acc": 0.5,
        "diverged": False,
        "diverged_epoch": None,
        "history": history,
        "key": f"run-{i}",
    }


def facts(i: int) -> dict:
    return {"started": 1.7e9 + i, "ended": 1.7e9 + i + 30, "worker": "host:1"}


PARAMS = {
    "lr": 0.1,
    "lr_decay": 0.9,
    "batch_size": 128,
    "reg": 0.0,
    "hidden_dim": 100,
    "init": "he",
    "init_scale": 1e-3,
    "epochs": 30,
    "seed": 0,
    "model": "twolayer",
    "train_size": 49000,
}
TAGS = {
    "scratchnet.model": "twolayer",
    "scratchnet.stage": "ablate",
    "scratchnet.git_commit": "0" * 40,
    **sweep_tags("twolayer", "lr", "lr=0.05", []),
}


def main(n: int) -> None:
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the SQLite store's artifacts go to ./mlruns
        tracker = Tracker("log-rate", root=tmp)
        tracker.logged_keys()
        started = time.perf_counter()
        for i in range(n):
            tracker.log_run(record(i), facts(i), run_name=f"run {i}", params=PARAMS, tags=TAGS)
        new = time.perf_counter() - started

        started = time.perf_counter()
        again = Tracker("log-rate", root=tmp)
        found = len(again.logged_keys())
        search = time.perf_counter() - started
        started = time.perf_counter()
        for i in range(n):
            again.log_run(record(i), facts(i), run_name=f"run {i}", params=PARAMS, tags=TAGS)
        rerun = time.perf_counter() - started
    print(
        f"{n} runs: {new / n * 1000:.0f} ms per new run ({n / new:.1f} runs/s); "
        f"new Tracker + one search finding {found} runs: {search * 1000:.0f} ms; "
        f"{rerun / n * 1000:.2f} ms per already-logged run"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
