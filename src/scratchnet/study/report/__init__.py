"""The study rebuilt as a document from the pipeline's artifacts.

    from scratchnet.study.report import build_report, write_report
    report = build_report(root)      # reads every artifact under the project folder `root`
    write_report(report, root)       # writes layout.REPORT_MD, REPORT_HTML, REPORT_FIGURES/*.png

`report.markdown` refers to its figures as files in REPORT_FIGURES; `report.html` embeds them
(base64 data URIs) and references nothing outside itself. A missing or malformed required
artifact raises `ReportError` naming it; missing attack artifacts are stated in Part 4.
The report opens with the answer (results at a glance, the distance from the study) and
ends with the appendix (provenance, timings, MLflow run ids).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scratchnet.files import write_bytes, write_text
from scratchnet.study import layout
from scratchnet.study.params import MODELS
from scratchnet.study.report import appendix, glance, sections
from scratchnet.study.report.artifacts import Artifacts, ReportError, load_artifacts
from scratchnet.study.report.document import Block, Figure, Heading, Paragraph, figures_of, to_html, to_markdown
from scratchnet.study.report.environment import Environment, environment
from scratchnet.study.report.text import PART_TITLES, TITLE
from scratchnet.study.reproduction import distance

__all__ = ["Report", "ReportError", "build_report", "write_report", "PART_TITLES"]


@dataclass(frozen=True)
class Report:
    markdown: str
    html: str
    figures: list[Figure]  # every figure, named as in REPORT_FIGURES
    blocks: list[Block]
    environment: Environment


def document(art: Artifacts, env: Environment) -> list[Block]:
    """Every section in order: the answer first, the parts of the study, then the appendix."""
    dist = distance(art.summary, art.study)
    return [
        Heading(1, TITLE),
        Paragraph(f"A reproduction of the study “{art.study['title'].strip()}” (its text: "
                  f"`reference/study-report.txt`; its numbers as data: `{layout.STUDY_NUMBERS}`). Rebuilt by "
                  "the `report` stage from the pipeline's artifacts: every number and every sentence of "
                  "interpretation below is computed from them. Edit `params.yaml` and run `dvc repro` to "
                  "rebuild it; do not edit it by hand."),
        *glance.glance_section(art, dist),
        *glance.distance_section(art, dist),
        *sections.fit_section(art),
        *[block for model in MODELS for block in sections.model_section(art, model)],
        *sections.attack_section(art),
        *appendix.provenance(art, env),
        *appendix.timings(art),
        *appendix.mlflow_section(art),
    ]


def build_report(root: Path | str = ".") -> Report:
    """Builds the report from the artifacts under `root`. Writes nothing."""
    root = Path(root)
    art = load_artifacts(root)
    env = environment(root, art.params)
    blocks = document(art, env)
    figures = figures_of(blocks)
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
