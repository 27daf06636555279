"""Where and from what the report was built: git commit, params hash, date, machine."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from scratchnet.study.identity import config_hash, git_commit


@dataclass(frozen=True)
class Environment:
    commit: str  # `git rev-parse HEAD` (+ "-dirty"), or "unknown" outside git
    params_hash: str  # the hash every MLflow run is tagged with (scratchnet.params_hash)
    date: str  # ISO 8601, UTC
    machine: dict[str, str]  # platform, python, numpy, CPUs, RAM


def ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX, or the value is unavailable
        return None


def machine() -> dict[str, str]:
    ram = ram_bytes()
    return {
        "platform": platform.platform(),
        "processor": platform.machine() or "unknown",
        "CPU cores": str(os.cpu_count() or "unknown"),
        "RAM": f"{ram / 2**30:.1f} GiB" if ram else "unknown",
        "Python": sys.version.split()[0],
        "NumPy": np.__version__,
    }


def environment(root: Path | str, params: dict) -> Environment:
    # The same helpers tag the MLflow runs, so the report shows exactly what the runs carry.
    return Environment(
        commit=git_commit(root),
        params_hash=config_hash(params),
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        machine=machine(),
    )
