"""The study rebuilt as a document from the pipeline's artifacts.

    from scratchnet.study.report import build_report, write_report
    report = build_report(root)      # reads every artifact under the project folder `root`
    write_report(report, root)       # writes layout.REPORT_MD, REPORT_HTML, REPORT_FIGURES/*.png

Every number and verdict comes from the evaluate stage's summary (`evaluation.Summary`, the
study's numbers inside it); the report renders it, with the artifacts it shows (the curves, the
fit, the data's provenance, the attack's files). It holds nothing about the run itself (no
time, host or run id), so the same artifacts give the same bytes. `report.markdown` refers to
its figures as files in REPORT_FIGURES; `report.html` embeds them (base64 data URIs). A missing
or malformed required artifact raises `ReportError` naming it; missing attack artifacts are
stated in Part 4.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scratchnet.errors import UserError
from scratchnet.files import read_json, write_bytes, write_text
from scratchnet.study import layout
from scratchnet.study.attack_study import SWEEP_COLUMNS
from scratchnet.study.evaluation import Summary, summary_from_json
from scratchnet.study.params import ParamsError, load_params
from scratchnet.study.report.document import Figure, figures_of, to_html, to_markdown

__all__ = ["Report", "ReportError", "build_report", "write_report", "PART_TITLES"]

TITLE = "scratchnet: neural networks from scratch on CIFAR-10 — study report"
PART_TITLES = {  # the parts around the models' own (the registry's ModelKind.part), in order
    "glance": "Results at a glance",
    "distance": "How far from the study",
    "fit": "Part 1: fitting by gradient descent",
    "attack": "Part 4: fooling images",
    "robustness": "Which choices make the network harder to fool?",
    "provenance": "Appendix A: provenance and environment",
    "mlflow": "Appendix B: MLflow runs behind the tables",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# What Part 1 reads of the fit's record (fitting.run_fit)
FIT_KEYS = "lr steps losses optimum_loss final_loss problem x y fitted optimum_fitted".split()
# What Part 4 reads of the attack's example record (attack_study.class_record)
ATTACK_EXAMPLE_KEYS = (
    "true_class target_class norm epsilon steps l2 linf probs_before probs_after pred_before pred_after fooled "
    "shown before attacked fooled_count share first_correct"
).split()


class ReportError(UserError, RuntimeError):
    """An artifact the report needs is missing or malformed; the message names the file."""


@dataclass
class Attack:
    example: dict | None = None
    sweep: list[dict] | None = None
    metrics: dict | None = None
    images: dict[str, bytes] = field(default_factory=dict)  # "original" | "adversarial" | "difference"
    success_png: bytes | None = None
    missing: list[str] = field(default_factory=list)  # paths of absent optional artifacts


@dataclass
class Artifacts:
    params: dict
    summary: Summary
    train: dict[str, dict]  # model -> its baseline run (layout.train_run): config, seeds[0] with its history
    provenance: dict
    processed: dict
    fit: dict
    attack: Attack


@dataclass(frozen=True)
class Report:
    markdown: str
    html: str
    figures: list[Figure]  # every figure, named as in REPORT_FIGURES
    summary: Summary


def _json(root: Path, rel: Path, keys: Sequence[str] = ()) -> dict:
    """The JSON object at root/rel with at least `keys`; ReportError naming rel otherwise."""
    try:
        data = read_json(root / rel)
    except FileNotFoundError:
        raise ReportError(f"report: {rel} is missing; run its stage first (dvc repro)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"report: {rel} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ReportError(f"report: {rel} must hold a JSON object, got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise ReportError(f"report: {rel} lacks key(s) {', '.join(missing)}")
    return data


def _png(root: Path, rel: Path) -> bytes:
    """The PNG's bytes; a file that is not a PNG is an error."""
    data = (root / rel).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ReportError(f"report: {rel} is not a PNG file (bad signature)")
    return data


def _attack_sweep(root: Path) -> list[dict]:
    rel = layout.ATTACK_SWEEP_CSV
    table = pd.read_csv(root / rel)
    missing = [c for c in SWEEP_COLUMNS if c not in table.columns]
    if missing:
        raise ReportError(f"report: {rel} lacks column(s) {', '.join(missing)}; expected {', '.join(SWEEP_COLUMNS)}")
    if not all(pd.api.types.is_numeric_dtype(table[c]) for c in ("epsilon", "success_rate", "median_l2", "n")):
        raise ReportError(f"report: {rel} holds a non-number in epsilon, success_rate, median_l2 or n")
    return [
        {
            "norm": r.norm,
            "mode": r.mode,
            "epsilon": float(r.epsilon),
            "success_rate": float(r.success_rate),
            "median_l2": None if pd.isna(r.median_l2) else float(r.median_l2),
            "n": int(r.n),
        }
        for r in table.itertuples()
    ]


def _attack(root: Path) -> Attack:
    """The attack stage's artifacts, each optional: the absent ones are listed in `missing`."""
    example, sweep, metrics, success = (
        layout.ATTACK_EXAMPLE,
        layout.ATTACK_SWEEP_CSV,
        layout.ATTACK_METRICS,
        layout.ATTACK_SUCCESS_PLOT,
    )
    paths = [example, sweep, metrics, *layout.ATTACK_IMAGES.values(), success]
    present = {rel for rel in paths if (root / rel).exists()}
    return Attack(
        example=_json(root, example, ATTACK_EXAMPLE_KEYS) if example in present else None,
        sweep=_attack_sweep(root) if sweep in present else None,
        metrics=_json(root, metrics) if metrics in present else None,
        images={name: _png(root, rel) for name, rel in layout.ATTACK_IMAGES.items() if rel in present},
        success_png=_png(root, success) if success in present else None,
        missing=[str(rel) for rel in paths if rel not in present],
    )


def load_artifacts(root: Path | str) -> Artifacts:
    """Reads every artifact under `root` (the project folder). Raises ReportError."""
    root = Path(root)
    try:
        params = load_params(root / layout.PARAMS)
    except ParamsError as err:
        raise ReportError(f"report: {err}") from None
    rel = layout.ABLATION_SUMMARY_JSON
    try:
        summary = summary_from_json(_json(root, rel))
    except (KeyError, TypeError) as err:
        raise ReportError(
            f"report: {rel} is malformed ({type(err).__name__}: {err}); rerun `dvc repro evaluate`"
        ) from None
    train = {m: _json(root, layout.train_run(m), ("config", "seeds")) for m in summary.models}
    for model, run in train.items():
        if not run["seeds"] or "history" not in run["seeds"][0]:
            raise ReportError(f"report: {layout.train_run(model)} has no seed with a per-epoch history")
    return Artifacts(
        params=params,
        summary=summary,
        train=train,
        provenance=_json(root, layout.PROVENANCE),
        processed=_json(root, layout.PROCESSED_META),
        fit=_json(root, layout.FIT_RESULT, FIT_KEYS),
        attack=_attack(root),
    )


def build_report(root: Path | str = ".") -> Report:
    """Builds the report from the artifacts under `root`. Writes nothing."""
    from scratchnet.study.report import appendix, robustness, sections  # they import this module's titles

    art = load_artifacts(root)
    blocks = [
        *sections.opening(art),
        *sections.fit_section(art),
        *[b for model in art.summary.models for b in sections.model_section(art, model)],
        *sections.attack_section(art),
        *robustness.robustness_section(art),
        *appendix.provenance(art),
        *appendix.mlflow_section(art),
    ]
    figures = figures_of(blocks)
    names = [f.name for f in figures]
    if len(set(names)) != len(names):
        raise ReportError(f"report: two figures share a file name: {sorted(names)}")
    figures_dir = Path(os.path.relpath(layout.REPORT_FIGURES, layout.REPORT_MD.parent)).as_posix()
    return Report(to_markdown(blocks, figures_dir), to_html(blocks, TITLE), figures, art.summary)


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
