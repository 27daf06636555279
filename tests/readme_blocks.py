"""The README's code blocks, each with its marker: what tests/test_readme*.py run.

A block is a fenced one (```lang) or an indented one (4+ spaces after a blank line). The line
before it may mark it:
    <!-- readme-test: skip (why) -->   not run by the suite (a full run, a server, a cluster)
    <!-- readme-test: output -->       what a command prints, not a command
Every other block is run: shell (indented, `bash`) in the tiny study, `python` likewise,
`yaml` as a fragment of params.yaml.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = re.compile(r"<!-- readme-test: (skip \((?P<why>[^)]*)\)|output) -->")


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of its first line in README.md
    lang: str  # "shell", "python", "yaml"
    text: str
    marker: str | None  # "skip", "output" or None (run)
    why: str = ""


def blocks(path: Path = README) -> list[Block]:
    lines = path.read_text().splitlines()
    found, i = [], 0

    def marker_before(index: int) -> tuple[str | None, str]:
        j = index - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        match = MARKER.fullmatch(lines[j].strip()) if j >= 0 else None
        if not match:
            return None, ""
        return ("output", "") if match.group(1) == "output" else ("skip", match.group("why"))

    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang = line[3:].strip() or "shell"
            end = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
            kind, why = marker_before(i)
            found.append(
                Block(i + 2, "shell" if lang == "bash" else lang, "\n".join(lines[i + 1 : end]) + "\n", kind, why)
            )
            i = end + 1
            continue
        after = lines[i - 1].strip() if i > 0 else ""
        if line.startswith("    ") and line.strip() and (not after or MARKER.fullmatch(after)):
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            while not lines[end - 1].strip():
                end -= 1
            kind, why = marker_before(i)
            found.append(Block(i + 1, "shell", textwrap.dedent("\n".join(lines[i:end])) + "\n", kind, why))
            i = end
            continue
        i += 1
    return found
