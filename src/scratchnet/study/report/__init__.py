"""The study rebuilt as a document from the pipeline's artifacts.

    from scratchnet.study.report import build_report, write_report
    report = build_report(root)      # reads every artifact under the project folder `root`
    write_report(report, root)       # writes layout.REPORT_MD, REPORT_HTML, REPORT_FIGURES/*.png

`report.markdown` refers to its figures as files in REPORT_FIGURES; `report.html` embeds them
(base64 data URIs) and references nothing outside itself. A missing or malformed required
artifact raises `ReportError` naming it; missing attack artifacts are stated in Part 4.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scratchnet.study import layout
from scratchnet.files import write_bytes, write_text
from scratchnet.study.report.artifacts import Artifacts, ReportError, load_artifacts
from scratchnet.study.report.document import Block, Figure, to_html, to_markdown
from scratchnet.study.report.environment import Environment, environment
from scratchnet.study.report.sections import PART_TITLES, TITLE, document

__all__ = ["Report", "ReportError", "build_report", "write_report", "PART_TITLES"]


@dataclass(frozen=True)
class Report:
    markdown: str
    html: str
    figures: list[Figure]  # every figure, named as in REPORT_FIGURES
    blocks: list[Block]
    environment: Environment


def build_report(root: Path | str = ".") -> Report:
    """Builds the report from the artifacts under `root`. Writes nothing."""
    root = Path(root)
    art: Artifacts = load_artifacts(root)
    env = environment(root, art.params)
    blocks, figures = document(art, env)
    names = [f.name for f in figures]
    if len(set(names)) != len(names):
        raise ReportError(f"report: two figures share a file name: {sorted(names)}")
    figures_dir = Path(os.path.relpath(layout.REPORT_FIGURES, layout.REPORT_MD.parent)).as_posix()
    return Report(
        markdown=to_markdown(blocks, figures_dir),
        html=to_html(blocks, TITLE),
        figures=figures,
        blocks=blocks,
        environment=env,
    )


def write_report(report: Report, root: Path | str = ".") -> list[Path]:
    """Writes every figure, then the Markdown and the HTML, each atomically; removes figures
    of an earlier build that this one no longer has. Returns the paths written."""
    root = Path(root)
    figures_dir = root / layout.REPORT_FIGURES
    written = []
    for fig in report.figures:
        write_bytes(figures_dir / fig.name, fig.png)
        written.append(figures_dir / fig.name)
    keep = {fig.name for fig in report.figures}
    for stale in figures_dir.glob("*.png"):
        if stale.name not in keep:
            stale.unlink()
    for rel, text in ((layout.REPORT_MD, report.markdown), (layout.REPORT_HTML, report.html)):
        write_text(root / rel, text)
        written.append(root / rel)
    return written
