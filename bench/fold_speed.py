"""The epoch before and after folding the input scaling into the first layer (issue 26), beside
PyTorch, interleaved in one run.

    .venv/bin/python bench/fold_speed.py --data /path/to/project --torch /tmp/torchvenv/bin/python

Three implementations of one epoch of each of the study's baselines (softmax, batch 256,
`mean_std`; two-layer, hidden 100, batch 128, `mean`; lr as params.yaml), on the same uint8
pixels (the project's data/processed when --data is given, else CIFAR-shaped random pixels):

    before   the library at --before (default 996b591, extracted with `git archive` and imported
             as a separate package): each mini-batch cast, shifted and scaled (Normalizer.forward),
             then the first layer's GEMM
    now      this library: the batch only cast; the scaling folded into the first layer's GEMMs
             (nn.layers.scaled_affine_forward / _backward)
    torch    PyTorch CPU (bench/torch_epoch.py in its own venv, --torch), fed the whole set
             normalised to float32 up front, as a PyTorch user would

Each repeat runs, for 1 and 2 threads (threadpoolctl for ours, torch.set_num_threads) and each
config, one epoch of each implementation in turn, so the machine's load moves all three alike.
Each epoch of ours is one real `train(..., epochs=1)` call (gather, forward, backward, SGD, train
accuracy, validation accuracy on the validation split). Reported: best (least disturbed) and
median of --repeats epochs, and the ratios of the bests, in wall time and in process CPU time
(at 1 thread the CPU time is what other jobs on a shared machine disturb least; at 2 threads it
also counts BLAS threads spinning, so the wall time is the figure there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from scratchnet.data import PixelStats
from scratchnet.nn import Normalizer, build_model
from scratchnet.training import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import import_before  # noqa: E402  (bench/ is not a package)

D, C = 3072, 10
CONFIGS = {  # the study's baselines (params.yaml)
    "softmax": {
        "kind": "softmax",
        "init": "gaussian",
        "init_scale": 1e-3,
        "batch_size": 256,
        "lr": 5e-3,
        "normalize": "mean_std",
    },
    "twolayer": {
        "kind": "twolayer",
        "hidden_dim": 100,
        "init": "he",
        "batch_size": 128,
        "lr": 0.1,
        "normalize": "mean",
    },
}
ARCH_KEYS = ("kind", "hidden_dim", "init", "init_scale")
PATHS = ("before", "now", "torch")


def load_data(project: Path | None):
    if project is None:
        rng = np.random.default_rng(0)
        X, X_val = rng.integers(0, 256, (49_000, D), dtype=np.uint8), rng.integers(0, 256, (1_000, D), dtype=np.uint8)
        y, y_val = rng.integers(0, C, 49_000), rng.integers(0, C, 1_000)
        return X, y, X_val, y_val, PixelStats.fit(X), "random pixels"
    sys.path.insert(0, str(project / "src"))
    processed = project / "data" / "processed"
    arrays = {
        split: (np.load(processed / f"X_{split}.npy"), np.load(processed / f"y_{split}.npy"))
        for split in ("train", "val")
    }
    return (*arrays["train"], *arrays["val"], PixelStats.load(processed / "stats.npz"), f"{processed}")


class TorchWorker:
    """bench/torch_epoch.py in the torch venv, one epoch per request."""

    def __init__(self, python: str, X, y, X_val, y_val, stats, tmp: Path):
        data = tmp / "data.npz"
        configs = {k: {**c, "input_dim": D, "num_classes": C} for k, c in CONFIGS.items()}
        np.savez(data, X=X, y=y, X_val=X_val, y_val=y_val, mean=stats.mean, std=stats.std, configs=json.dumps(configs))
        script = Path(__file__).resolve().parent / "torch_epoch.py"
        self.proc = subprocess.Popen(
            [python, str(script), str(data)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.version = json.loads(self.proc.stdout.readline())["ready"]

    def epoch(self, config: str, threads: int) -> float:
        self.proc.stdin.write(json.dumps({"config": config, "threads": threads}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return answer["seconds"], answer["cpu"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def tables(times: dict, cpu_times: dict, threads: tuple[int, ...]) -> str:
    best = lambda d: {k: (min(v), statistics.median(v)) for k, v in d.items() if v}  # noqa: E731
    lines = []
    for title, table in (("wall seconds per epoch", best(times)), ("process CPU seconds per epoch", best(cpu_times))):
        lines += [
            f"\n{title}, best / median:\n",
            "| config | threads | before | now | torch | before / now | torch / now |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in CONFIGS:
            for t in threads:
                cell = {p: table.get((name, t, p)) for p in PATHS}
                if not cell["now"]:
                    continue
                now = cell["now"][0]
                text = " | ".join(f"{v[0]:.3f} / {v[1]:.3f}" if v else "-" for v in cell.values())
                ratio = lambda p: f"**{cell[p][0] / now:.2f}x**" if cell[p] else "-"  # noqa: E731
                lines.append(f"| {name} | {t} | {text} | {ratio('before')} | {ratio('torch')} |")
    return "\n".join(lines)


def measure(data, repeats: int, before_ref: str, torch_python: str | None, threads: tuple[int, ...]):
    X, y, X_val, y_val, stats, _ = data
    with tempfile.TemporaryDirectory() as tmp:
        old_nn, old_training = import_before(before_ref, Path(tmp))
        torch = TorchWorker(torch_python, X, y, X_val, y_val, stats, Path(tmp)) if torch_python else None
        runs = {}
        for name, c in CONFIGS.items():
            arch = {k: c[k] for k in ARCH_KEYS if k in c}
            runs[(name, "before")] = (
                old_nn.build_model(
                    arch, D, C, seed=0, normalizer=old_nn.Normalizer(c["normalize"], stats.mean, stats.std)
                ),
                old_training.train,
            )
            runs[(name, "now")] = (
                build_model(arch, D, C, seed=0, normalizer=Normalizer(c["normalize"], stats.mean, stats.std)),
                train,
            )
        times = {(name, t, p): [] for name in CONFIGS for t in threads for p in PATHS}
        cpu_times = {k: [] for k in times}  # process CPU seconds: less moved by other jobs at 1 thread
        for rep in range(repeats + 1):  # the first round warms caches and is not counted
            for t in threads:
                for name, c in CONFIGS.items():
                    for path in PATHS:
                        if path == "torch":
                            if torch is None:
                                continue
                            seconds, cpu = torch.epoch(name, t)
                        else:
                            model, train_fn = runs[(name, path)]
                            with threadpool_limits(limits=t, user_api="blas"):
                                cpu = time.process_time()
                                seconds = train_fn(
                                    model,
                                    X,
                                    y,
                                    X_val,
                                    y_val,
                                    epochs=1,
                                    lr=c["lr"],
                                    lr_decay=1.0,
                                    batch_size=c["batch_size"],
                                    reg=0.0,
                                    seed=rep,
                                    progress=False,
                                ).seconds
                                cpu = time.process_time() - cpu
                        if rep:
                            times[(name, t, path)].append(seconds)
                            cpu_times[(name, t, path)].append(cpu)
            print(f"repeat {rep}/{repeats} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
            if rep:  # the tables so far, so a run stopped early still has its numbers
                print(tables(times, cpu_times, threads), file=sys.stderr, flush=True)
        version = torch.version if torch else None
        if torch:
            torch.close()
    return times, cpu_times, version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a project folder with data/processed (default: random pixels)")
    parser.add_argument("--torch", help="python of a venv with PyTorch (default: no PyTorch column)")
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs per path (best is reported)")
    parser.add_argument("--before", default="996b591", help="git ref of the library to compare against")
    parser.add_argument("--threads", default="1,2", help="BLAS / torch thread counts, comma-separated")
    args = parser.parse_args()
    threads = tuple(int(t) for t in args.threads.split(","))
    data = load_data(args.data)
    load = os.getloadavg()[0]
    times, cpu_times, torch_version = measure(data, args.repeats, args.before, args.torch, threads)
    blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, BLAS "
        f"{blas[0].get('internal_api')} {blas[0].get('version')} ({blas[0].get('architecture')}), "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, torch {torch_version}; "
        f"data: {data[5]}; before = {args.before}; best / median of {args.repeats}; 1-min load at start {load:.1f}"
    )
    print(tables(times, cpu_times, threads))


if __name__ == "__main__":
    main()
