"""What identifies a run's inputs: the code's git commit and a hash of its configuration.

Kept free of MLflow so the report (and anything else) can name them without importing it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any


def config_hash(config: Any) -> str:
    """12 hex digits of the sha256 of `config` as canonical JSON (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def git_commit(root: Path | str = ".") -> str:
    """HEAD's commit, with '-dirty' when tracked files differ from it; 'unknown' outside git."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")
