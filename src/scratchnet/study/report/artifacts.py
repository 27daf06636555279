"""Reading every artifact the report is built from, under one project root.

Typed artifacts are read as their producers wrote them: JSON through `scratchnet.files.read_json`
(the baselines' curves come from their run JSONs, the ablation summary from the evaluate stage's
`evaluation.summary_from_json`), the study's numbers through `reproduction.load_study`. The one
table only written as CSV, the attack's sweep, is read by pandas with its columns checked.

Required artifacts (data provenance, the fit, the baselines, the ablations, the evaluate
stage's summary, the study's numbers, params.yaml) raise `ReportError` naming the file and what
was expected when missing or malformed. The attack's artifacts are optional: a missing one is
recorded in `Attack.missing` and its section says so; a present but corrupt one is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from scratchnet.errors import UserError
from scratchnet.files import read_json
from scratchnet.study import layout
from scratchnet.study.evaluation import Summary, SweepRow, baseline_row, summary_from_json
from scratchnet.study.params import BASELINE, MODELS, ParamsError, ablation_entries, load_params
from scratchnet.study.reproduction import StudyNumbersError, load_study

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ATTACK_SWEEP_COLUMNS = ("norm", "epsilon", "mode", "success_rate", "median_l2", "n")
# What the report reads of every run record (pipeline/train.py and pipeline/ablate.py write them).
RUN_KEYS = ("model", "config", "seeds")


class ReportError(UserError, RuntimeError):
    """An artifact the report needs is missing or malformed; the message names the file."""


def _json(root: Path, rel: Path, keys: tuple[str, ...] = ()) -> dict:
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


def _png(root: Path, rel: Path) -> bytes | None:
    """The PNG's bytes, None if absent; a file that is not a PNG is an error."""
    path = root / rel
    if not path.exists():
        return None
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ReportError(f"report: {rel} is not a PNG file (bad signature)")
    return data


# ----------------------------------------------------------------------------------- artifacts


@dataclass
class ModelResults:
    train: dict  # layout.train_run(model)
    curve: list[dict]  # the baseline's completed epochs: epoch, loss, train_acc, val_acc, lr
    ablations: dict[str, dict]  # entry ("baseline", "reg=0.001", ...) -> layout.ablate_run JSON
    sweeps: dict[str, list[SweepRow]]  # param -> rows by increasing value (evaluate's summary)
    baseline: SweepRow  # the baseline over the ablation seeds


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
    root: Path
    params: dict
    provenance: dict
    processed: dict
    fit: dict
    study: dict
    summary: Summary
    models: dict[str, ModelResults]
    attack: Attack


def _summary(root: Path) -> Summary:
    rel = layout.ABLATION_SUMMARY_JSON
    try:
        return summary_from_json(_json(root, rel))
    except (KeyError, TypeError) as err:
        raise ReportError(f"report: {rel} is malformed ({type(err).__name__}: {err}); rerun `dvc repro evaluate`") from None


def _attack_sweep(root: Path) -> list[dict]:
    rel = layout.ATTACK_SWEEP_CSV
    table = pd.read_csv(root / rel)
    missing = [c for c in ATTACK_SWEEP_COLUMNS if c not in table.columns]
    if missing:
        raise ReportError(f"report: {rel} lacks column(s) {', '.join(missing)}; expected {', '.join(ATTACK_SWEEP_COLUMNS)}")
    if not all(pd.api.types.is_numeric_dtype(table[c]) for c in ("epsilon", "success_rate", "median_l2", "n")):
        raise ReportError(f"report: {rel} holds a non-number in epsilon, success_rate, median_l2 or n")
    return [{"norm": r.norm, "mode": r.mode, "epsilon": float(r.epsilon), "success_rate": float(r.success_rate),
             "median_l2": None if pd.isna(r.median_l2) else float(r.median_l2), "n": int(r.n)}
            for r in table.itertuples()]


def _attack(root: Path) -> Attack:
    attack = Attack()
    if (root / layout.ATTACK_EXAMPLE).exists():
        attack.example = _json(root, layout.ATTACK_EXAMPLE, (
            "true_class", "target_class", "norm", "epsilon", "steps", "l2", "linf", "probs_before",
            "probs_after", "pred_before", "pred_after", "fooled"))
    else:
        attack.missing.append(str(layout.ATTACK_EXAMPLE))
    if (root / layout.ATTACK_SWEEP_CSV).exists():
        attack.sweep = _attack_sweep(root)
    else:
        attack.missing.append(str(layout.ATTACK_SWEEP_CSV))
    if (root / layout.ATTACK_METRICS).exists():
        attack.metrics = _json(root, layout.ATTACK_METRICS)
    else:
        attack.missing.append(str(layout.ATTACK_METRICS))
    for name, rel in layout.ATTACK_IMAGES.items():
        png = _png(root, rel)
        if png is None:
            attack.missing.append(str(rel))
        else:
            attack.images[name] = png
    attack.success_png = _png(root, layout.ATTACK_SUCCESS_PLOT)
    if attack.success_png is None:
        attack.missing.append(str(layout.ATTACK_SUCCESS_PLOT))
    return attack


def _model(root: Path, params: dict, model: str, sweeps: dict[str, list[SweepRow]]) -> ModelResults:
    train = _json(root, layout.train_run(model), RUN_KEYS)
    ablations = {entry: _json(root, layout.ablate_run(model, entry), RUN_KEYS + ("param", "value"))
                 for entry in ablation_entries(params, model)}
    if not train["seeds"] or "history" not in train["seeds"][0]:
        raise ReportError(f"report: {layout.train_run(model)} has no seed with a per-epoch history")
    curve = train["seeds"][0]["history"]  # empty when the run diverged in its first epoch
    return ModelResults(train=train, curve=curve, ablations=ablations, sweeps=sweeps,
                        baseline=baseline_row(ablations[BASELINE]))


def load_artifacts(root: Path | str) -> Artifacts:
    """Reads every artifact under `root` (the project folder). Raises ReportError."""
    root = Path(root)
    try:
        params = load_params(root / layout.PARAMS)
        study = load_study(root / layout.STUDY_NUMBERS)
    except (ParamsError, StudyNumbersError) as err:
        raise ReportError(f"report: {err}") from None
    summary = _summary(root)
    models = {model: _model(root, params, model, summary.get(model, {})) for model in MODELS}
    return Artifacts(
        root=root,
        params=params,
        provenance=_json(root, layout.PROVENANCE),
        processed=_json(root, layout.PROCESSED_META),
        fit=_json(root, layout.FIT_RESULT, ("lr", "steps", "losses", "optimum_loss", "final_loss")),
        study=study,
        summary=summary,
        models=models,
        attack=_attack(root),
    )
