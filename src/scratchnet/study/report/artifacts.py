"""Reading every artifact the report is built from, under one project root.

Required artifacts (data provenance, the fit, the baselines, the ablations, the evaluate
stage's tables, the study's numbers, params.yaml) raise `ReportError` naming the file and what
was expected when missing or malformed. The attack's artifacts are optional: a missing one is
recorded in `Attack.missing` and its section says so; a present but corrupt one is an error.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scratchnet.study import layout
from scratchnet.study.params import MODELS, ParamsError, ablation_entries, load_params
from scratchnet.errors import UserError

PARAMS_FILE = layout.PARAMS
ATTACK_SUCCESS_PLOT = layout.ATTACK_SUCCESS_PLOT

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY_COLUMNS = ("model", "param", "value", "is_baseline", "n_seeds", "test_acc_mean",
                   "test_acc_std", "test_acc_min", "test_acc_max", "n_diverged", "mlflow_run_ids")
RUNS_COLUMNS = ("model", "run", "param", "value", "seed", "test_acc", "final_val_acc",
                "diverged", "diverged_epoch", "mlflow_run_id")
CURVE_COLUMNS = ("epoch", "train_acc", "val_acc")
ATTACK_SWEEP_COLUMNS = ("norm", "epsilon", "mode", "success_rate", "median_l2", "n")


class ReportError(UserError, RuntimeError):
    """An artifact the report needs is missing or malformed; the message names the file."""


# ------------------------------------------------------------------------------ parsing helpers


def number(text: str | None) -> float | None:
    """A CSV cell as a float; None for an empty cell or NaN (pandas writes NaN as '')."""
    if text is None or str(text).strip() in ("", "nan", "NaN", "None"):
        return None
    x = float(text)
    return None if math.isnan(x) else x


def value_of(text: str) -> float | int | str:
    """A swept value as written in the CSV: '128' -> 128, '0.001' -> 0.001, 'he' -> 'he'."""
    try:
        x = float(text)
    except ValueError:
        return text
    return int(x) if x.is_integer() and "." not in text and "e" not in text.lower() else x


def truth(text: str) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


def read_json(root: Path, rel: Path) -> dict:
    path = root / rel
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"report: {rel} is missing; run its stage first (dvc repro)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"report: {rel} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ReportError(f"report: {rel} must hold a JSON object, got {type(data).__name__}")
    return data


def read_csv(root: Path, rel: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    path = root / rel
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            header = reader.fieldnames or []
    except FileNotFoundError:
        raise ReportError(f"report: {rel} is missing; run its stage first (dvc repro)") from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise ReportError(f"report: {rel} lacks column(s) {', '.join(missing)}; expected {', '.join(columns)}")
    return rows


def need(data: dict, keys: tuple[str, ...], rel: Path | str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise ReportError(f"report: {rel} lacks key(s) {', '.join(missing)}")


def read_png(root: Path, rel: Path) -> bytes | None:
    """The PNG's bytes, None if absent; a file that is not a PNG is an error."""
    path = root / rel
    if not path.exists():
        return None
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ReportError(f"report: {rel} is not a PNG file (bad signature)")
    return data


# ----------------------------------------------------------------------------------- artifacts


@dataclass(frozen=True)
class SummaryRow:
    """One row of layout.ABLATION_SUMMARY_CSV; accuracies are fractions of 1."""

    model: str
    param: str
    value: float | int | str
    is_baseline: bool
    n_seeds: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n_diverged: int
    run_ids: tuple[str, ...]


@dataclass
class ModelResults:
    train: dict  # layout.train_run(model)
    curve: list[dict[str, float]]  # layout.train_history(model): epoch, train_acc, val_acc (, loss, lr)
    ablations: dict[str, dict]  # entry ("baseline", "reg=0.001", ...) -> layout.ablate_run JSON
    sweeps: dict[str, list[SummaryRow]]  # param -> rows, in the CSV's order
    runs: list[dict]  # this model's rows of layout.ABLATION_RUNS_CSV
    metrics: dict  # layout.METRICS[model]


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
    models: dict[str, ModelResults]
    evaluate_seconds: float | None
    attack: Attack


def _summary(root: Path) -> dict[str, dict[str, list[SummaryRow]]]:
    sweeps: dict[str, dict[str, list[SummaryRow]]] = {}
    for i, r in enumerate(read_csv(root, layout.ABLATION_SUMMARY_CSV, SUMMARY_COLUMNS), start=2):
        try:
            row = SummaryRow(
                model=r["model"], param=r["param"], value=value_of(r["value"]),
                is_baseline=truth(r["is_baseline"]), n_seeds=int(float(r["n_seeds"])),
                mean=number(r["test_acc_mean"]), std=number(r["test_acc_std"]),
                min=number(r["test_acc_min"]), max=number(r["test_acc_max"]),
                n_diverged=int(float(r["n_diverged"] or 0)),
                run_ids=tuple(x for x in (r["mlflow_run_ids"] or "").split(";") if x),
            )
        except ValueError as err:
            raise ReportError(f"report: {layout.ABLATION_SUMMARY_CSV} line {i} is malformed: {err}") from None
        sweeps.setdefault(row.model, {}).setdefault(row.param, []).append(row)
    return sweeps


def _curve(root: Path, model: str) -> list[dict[str, float]]:
    rel = layout.train_history(model)
    rows = read_csv(root, rel, CURVE_COLUMNS)
    if not rows:
        raise ReportError(f"report: {rel} has no epochs")
    try:
        return [{k: number(v) for k, v in r.items()} for r in rows]
    except ValueError as err:
        raise ReportError(f"report: {rel} holds a non-number: {err}") from None


def _study(root: Path) -> dict:
    rel = layout.STUDY_NUMBERS
    try:
        study = yaml.safe_load((root / rel).read_text())
    except FileNotFoundError:
        raise ReportError(f"report: {rel} (the study's published numbers) is missing") from None
    except yaml.YAMLError as err:
        raise ReportError(f"report: {rel} is not valid YAML: {err}") from None
    if not isinstance(study, dict):
        raise ReportError(f"report: {rel} must be a mapping")
    need(study, ("source", *MODELS, "attack"), rel)
    for model in MODELS:
        need(study[model], ("test_acc", "baseline", "ablations"), f"{rel} {model}")
        for param, table in study[model]["ablations"].items():
            need(table, ("rows",), f"{rel} {model}.ablations.{param}")
            for row in table["rows"]:
                need(row, ("value", "test_acc"), f"{rel} {model}.ablations.{param}.rows")
    return study


def _attack(root: Path) -> Attack:
    attack = Attack()
    if (root / layout.ATTACK_EXAMPLE).exists():
        attack.example = read_json(root, layout.ATTACK_EXAMPLE)
        need(attack.example, ("true_class", "target_class", "norm", "epsilon", "steps", "l2", "linf",
                              "probs_before", "probs_after", "pred_before", "pred_after", "fooled"),
             layout.ATTACK_EXAMPLE)
    else:
        attack.missing.append(str(layout.ATTACK_EXAMPLE))
    if (root / layout.ATTACK_SWEEP_CSV).exists():
        rows = read_csv(root, layout.ATTACK_SWEEP_CSV, ATTACK_SWEEP_COLUMNS)
        try:
            attack.sweep = [
                {"norm": r["norm"], "mode": r["mode"], "epsilon": float(r["epsilon"]),
                 "success_rate": float(r["success_rate"]), "median_l2": number(r["median_l2"]),
                 "n": int(float(r["n"]))}
                for r in rows
            ]
        except ValueError as err:
            raise ReportError(f"report: {layout.ATTACK_SWEEP_CSV} holds a non-number: {err}") from None
    else:
        attack.missing.append(str(layout.ATTACK_SWEEP_CSV))
    if (root / layout.ATTACK_METRICS).exists():
        attack.metrics = read_json(root, layout.ATTACK_METRICS)
    else:
        attack.missing.append(str(layout.ATTACK_METRICS))
    for name, rel in layout.ATTACK_IMAGES.items():
        png = read_png(root, rel)
        if png is None:
            attack.missing.append(str(rel))
        else:
            attack.images[name] = png
    attack.success_png = read_png(root, ATTACK_SUCCESS_PLOT)
    if attack.success_png is None:
        attack.missing.append(str(ATTACK_SUCCESS_PLOT))
    return attack


RUN_KEYS = ("model", "config", "seeds", "test_acc_mean", "test_acc_std", "mlflow_experiment_id",
            "tracking_uri", "seconds")


def load_artifacts(root: Path | str) -> Artifacts:
    """Reads every artifact under `root` (the project folder). Raises ReportError."""
    root = Path(root)
    try:
        params = load_params(root / PARAMS_FILE)
    except ParamsError as err:
        raise ReportError(f"report: {err}") from None
    summary = _summary(root)
    runs = read_csv(root, layout.ABLATION_RUNS_CSV, RUNS_COLUMNS)
    metrics = read_json(root, layout.METRICS)

    models = {}
    for model in MODELS:
        train = read_json(root, layout.train_run(model))
        need(train, RUN_KEYS, layout.train_run(model))
        ablations = {}
        for entry in ablation_entries(params, model):
            rel = layout.ablate_run(model, entry)
            ablations[entry] = read_json(root, rel)
            need(ablations[entry], RUN_KEYS + ("param", "value", "mlflow_parent_run_id"), rel)
        if model not in metrics:
            raise ReportError(f"report: {layout.METRICS} lacks the key {model!r}")
        models[model] = ModelResults(
            train=train,
            curve=_curve(root, model),
            ablations=ablations,
            sweeps=summary.get(model, {}),
            runs=[r for r in runs if r["model"] == model],
            metrics=metrics[model],
        )

    fit = read_json(root, layout.FIT_RESULT)
    need(fit, ("lr", "steps", "losses", "optimum_loss", "final_loss"), layout.FIT_RESULT)
    return Artifacts(
        root=root,
        params=params,
        provenance=read_json(root, layout.PROVENANCE),
        processed=read_json(root, layout.PROCESSED_META),
        fit=fit,
        study=_study(root),
        models=models,
        evaluate_seconds=metrics.get("seconds"),
        attack=_attack(root),
    )


def scalar_items(data: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Flattens nested dicts to (dotted key, scalar) pairs, leaving out lists and `skip` keys."""
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            if k in skip:
                continue
            out.extend(scalar_items(v, f"{prefix}{k}.", skip) if isinstance(v, dict) else
                       [] if isinstance(v, list) else [(f"{prefix}{k}", v)])
    return out
