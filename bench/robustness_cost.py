"""What measuring a run's robustness costs, on one thread, against what training it costs.

    python bench/robustness_cost.py ROOT [--epochs 30] [--repeat 3]

ROOT: a project folder whose fetch and preprocess stages have run (data/processed). Trains the
two baselines of ROOT's params.yaml (the ablation's epochs unless --epochs) through the
pipeline's own run function (classifier.train_classifier, robustness off), then times
classifier.run_robustness with ROOT's params `robustness` on each, single-threaded as the
sweep's workers run, best of --repeat. The study's budget (issue 24): robustness may add at
most 10% to the sweep's wall time, i.e. about 1.5 s per run beside ~17 s of training.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from scratchnet.study.classifier import run_robustness, train_classifier
from scratchnet.study.params import MODELS, load_params, run_config
from scratchnet.study.runs import load_splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.chdir(args.root)
    params = load_params()
    splits = load_splits()
    section = params["robustness"]
    print(f"robustness: {section}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for model in MODELS:
        epochs = args.epochs or params["ablate"]["epochs"][model]
        config = run_config(params, model, "baseline", epochs)
        with threadpool_limits(limits=1):
            started = time.perf_counter()
            record, _, network = train_classifier(model, config, 0, splits, progress=False)
            trained = time.perf_counter() - started
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                numbers = run_robustness(network, splits["test"], section, diverged=False)
                times.append(time.perf_counter() - started)
        print(
            f"{model}: {epochs} epochs in {trained:.1f} s, test_acc {record['test_acc']:.4f}; "
            f"robustness {numbers} in {min(times):.2f} s (best of {args.repeat}: "
            f"{', '.join(f'{t:.2f}' for t in times)})",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
