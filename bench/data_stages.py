"""Benchmark: wall time and peak memory of the fetch and preprocess stages, run as DVC runs them.

    .venv/bin/python bench/data_stages.py            # from the project root

Runs `python pipeline/fetch.py` then `python pipeline/preprocess.py` in the project root with
its params.yaml (so, by default, `auto` on the bundled mirror), each in its own process, and
prints a Markdown section for bench/RESULTS.md: per stage the wall time and peak resident
memory (the child's own ru_maxrss from wait4), then the counts the outputs hold.
Target (issue 3): both stages together under 30 s and 2 GB.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from scratchnet.study import layout  # noqa: E402


def run(stage: str) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one stage's process."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "pipeline" / f"{stage}.py")], cwd=ROOT, stderr=subprocess.DEVNULL
    )  # progress bars; the stage prints a summary
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"{stage} failed with exit code {child.returncode}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports KB


def per_class(counts: dict[str, int]) -> str:
    values = sorted(set(counts.values()))
    return f"{values[0]:,} per class" if len(values) == 1 else f"{min(values):,}-{max(values):,} per class"


def main() -> None:
    load = os.getloadavg()[0]  # other work on the 2 cores slows both stages
    results = {stage: run(stage) for stage in ("fetch", "preprocess")}
    provenance = json.loads((ROOT / layout.PROVENANCE).read_text())
    meta = json.loads((ROOT / layout.PROCESSED_META).read_text())
    X_train = np.load(ROOT / layout.split_arrays("train")[0], mmap_mode="r")

    total_s = sum(s for s, _ in results.values())
    peak_mb = max(mb for _, mb in results.values())
    lines = [
        "## Data stages",
        "",
        f"Command: `.venv/bin/python bench/data_stages.py` (runs `python pipeline/fetch.py` and "
        f"`python pipeline/preprocess.py` from the project root), {platform.machine()}, "
        f"{os.cpu_count()} cores (1-min load average {load:.1f} at start), "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        f"Source: data.source={provenance['source']} -> {provenance['dataset']} "
        f"({provenance['format']}, fell_back={provenance['fell_back']}).",
        "",
        "| stage | wall time (s) | peak RSS (MB) |",
        "| --- | ---: | ---: |",
        *(f"| {stage} | {s:.1f} | {mb:.0f} |" for stage, (s, mb) in results.items()),
        f"| both | {total_s:.1f} | {peak_mb:.0f} (max) |",
        "",
        "Counts: raw "
        + ", ".join(f"{split} {sum(c.values()):,} ({per_class(c)})" for split, c in provenance["counts"].items())
        + "; processed "
        + ", ".join(f"{split} {sum(c.values()):,}" for split, c in meta["counts"].items())
        + f" (X_train {X_train.shape} {X_train.dtype}).",
        "",
        f"Target: both stages under 30 s and 2 GB: {'met' if total_s < 30 and peak_mb < 2048 else 'NOT met'}.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
