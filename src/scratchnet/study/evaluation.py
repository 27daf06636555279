"""The evaluate stage's tables: every run's test accuracy gathered into ablation tables.

Reads the run results of the train and ablate stages (layout.train_run / layout.ablate_run, one
JSON per ablation entry holding all its seeds) and builds

- the typed summary (`summarize`): per model, per swept key, one `SweepRow` per value: mean ±
  sample std over the seeds that did not diverge. The baseline is the centre of every sweep, so
  its row appears in each sweep of its model with the value the baseline has for that key.
  The report and `scratchnet.study.reproduction` compute from this, never from the CSV.
- `runs_frame` / `summary_frame`: the same as tables (pandas) for the CSVs people and
  `dvc plots` read, at full precision.

Only the entries listed in params.yaml are read: results of entries a user removed stay on
disk but no longer count. Accuracies are fractions of 1 throughout.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scratchnet.errors import MissingInputError
from scratchnet.files import read_json
from scratchnet.study import layout
from scratchnet.study.params import BASELINE, MODELS, ablation_entries, parse_entry

RUN_COLUMNS = ["model", "run", "param", "value", "seed", "test_acc", "final_val_acc",
               "diverged", "diverged_epoch", "key"]
SUMMARY_COLUMNS = ["model", "param", "value", "is_baseline", "n_seeds", "test_acc_mean",
                   "test_acc_std", "test_acc_min", "test_acc_max", "n_diverged", "run_keys"]


@dataclass(frozen=True)
class SweepRow:
    """One value of a sweep. mean/std: test accuracy (fraction of 1) over the converged seeds,
    std the sample std (0.0 for one seed); both None when every seed diverged."""

    value: float | int | str
    mean: float | None
    std: float | None
    n_seeds: int
    n_diverged: int = 0
    is_baseline: bool = False
    min: float | None = None
    max: float | None = None
    run_ids: tuple[str, ...] = ()

    @property
    def n_converged(self) -> int:
        return self.n_seeds - self.n_diverged


# model -> swept key -> rows by increasing value (numbers) or in params order (labels)
Summary = dict[str, dict[str, list[SweepRow]]]


# ---------------------------------------------------------------------------------- formatting
# The one way numbers are written for people (tables, prose, the stage's line); CSVs keep
# full precision for machines.


def value_text(value) -> str:
    """A hyper-parameter value: 0.001, 128, 1 (for 1.0), 'he'; None as a dash."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:g}"


def acc_text(x: float | None) -> str:
    """An accuracy as the study printed it: 0.4107; None as a dash."""
    return "—" if x is None else f"{x:.4f}"


def mean_std_text(mean: float | None, std: float | None) -> str:
    """'0.4110 ± 0.0040'; 'all seeds diverged' when there is no mean."""
    if mean is None:
        return "all seeds diverged"
    return f"{mean:.4f} ± {std if std is not None else 0.0:.4f}"


def pct(x: float) -> str:
    """A fraction of 1 as a percentage: 41.07%."""
    return f"{100 * x:.2f}%"


# ---------------------------------------------------------------------------------- reading


def read_result(rel: Path, root: Path = Path(".")) -> dict:
    """A stage's JSON result under the project folder `root`; MissingInputError if absent."""
    try:
        return read_json(root / rel)
    except FileNotFoundError:
        raise MissingInputError(f"{rel} is missing; run its stage first (dvc repro)") from None


def ablation_results(params: dict, root: Path = Path(".")) -> dict[str, dict[str, dict]]:
    """model -> entry -> the ablate stage's JSON for it (all seeds inside)."""
    return {model: {entry: read_result(layout.ablate_run(model, entry), root) for entry in ablation_entries(params, model)}
            for model in MODELS}


# ---------------------------------------------------------------------------------- the summary


def mean_std(records: list[dict]) -> tuple[float | None, float | None]:
    """Mean and sample std of test accuracy over the seeds that did not diverge."""
    accs = [r["test_acc"] for r in records if r["test_acc"] is not None and not math.isnan(r["test_acc"])]
    if not accs:
        return None, None
    return statistics.fmean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0)


def _row(value, is_baseline: bool, records: list[dict]) -> SweepRow:
    accs = [r["test_acc"] for r in records if not r["diverged"] and r["test_acc"] is not None]
    mean, std = mean_std(records)
    return SweepRow(
        value=value,
        mean=mean,
        std=std,
        n_seeds=len(records),
        n_diverged=sum(1 for r in records if r["diverged"]),
        is_baseline=is_baseline,
        min=min(accs) if accs else None,
        max=max(accs) if accs else None,
        run_ids=tuple(str(r["key"]) for r in records),  # run keys: MLflow's scratchnet.run_key
    )


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def ordered(rows: list[SweepRow]) -> list[SweepRow]:
    """Rows by increasing value when every value is a number; else as given."""
    if all(is_number(r.value) for r in rows):
        return sorted(rows, key=lambda r: float(r.value))
    return list(rows)


def summarize(params: dict, results: dict[str, dict[str, dict]]) -> Summary:
    """The typed summary of `ablation_results`: per model, per swept key (in params order),
    the baseline's row and one row per value of that key."""
    summary: Summary = {}
    for model in MODELS:
        sweeps: dict[str, list[SweepRow]] = {}
        base = results[model][BASELINE]["seeds"]
        for entry in ablation_entries(params, model):
            key, value = parse_entry(params, model, entry)
            if key is None:
                continue
            if key not in sweeps:
                sweeps[key] = [_row(params[model][key], True, base)]
            sweeps[key].append(_row(value, False, results[model][entry]["seeds"]))
        summary[model] = {key: ordered(rows) for key, rows in sweeps.items()}
    return summary


def runs_frame(results: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """One row per (model, entry, seed): the raw numbers, with MLflow run ids."""
    rows = [{"model": model, "run": entry, "param": result["param"], "value": result["value"],
             **{k: rec[k] for k in RUN_COLUMNS[4:]}}
            for model, by_entry in results.items() for entry, result in by_entry.items()
            for rec in result["seeds"]]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def summary_frame(summary: Summary) -> pd.DataFrame:
    """The summary as layout.ABLATION_SUMMARY_CSV's table: one row per (model, param, value)."""
    rows = [[model, param, r.value, r.is_baseline, r.n_seeds, r.mean, r.std, r.min, r.max,
             r.n_diverged, ";".join(r.run_ids)]
            for model, sweeps in summary.items() for param, rows in sweeps.items() for r in rows]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def summary_from_frame(frame: pd.DataFrame) -> Summary:
    """The inverse of summary_frame, for a table read back with pandas (a finished run's
    layout.ABLATION_SUMMARY_CSV, as bench/reproduction_distance.py reads it)."""
    def number(x):
        return None if pd.isna(x) else float(x)

    def value(x):
        return int(x) if isinstance(x, float) and x.is_integer() else x

    summary: Summary = {}
    for r in frame.itertuples(index=False):
        ids = "" if pd.isna(r.run_keys) else str(r.run_keys)
        row = SweepRow(value(r.value), number(r.test_acc_mean), number(r.test_acc_std), int(r.n_seeds),
                       int(r.n_diverged), bool(r.is_baseline), number(r.test_acc_min), number(r.test_acc_max),
                       tuple(i for i in ids.split(";") if i))
        summary.setdefault(r.model, {}).setdefault(r.param, []).append(row)
    return summary


def summary_to_json(summary: Summary) -> dict:
    """The typed summary as JSON (layout.ABLATION_SUMMARY_JSON): numbers stay numbers, a
    diverged mean stays null, so the report reads back exactly what evaluate computed."""
    return {model: {param: [dataclasses.asdict(r) for r in rows] for param, rows in sweeps.items()}
            for model, sweeps in summary.items()}


def summary_from_json(data: dict) -> Summary:
    """The inverse of summary_to_json. Raises KeyError/TypeError on a malformed document."""
    return {model: {param: [SweepRow(**{**r, "run_ids": tuple(r["run_ids"])}) for r in rows]
                    for param, rows in sweeps.items()}
            for model, sweeps in data.items()}


def markdown_tables(summary: Summary) -> str:
    """One Markdown table per sweep: value | test accuracy mean ± std | seeds | diverged."""
    parts = []
    for model, sweeps in summary.items():
        for param, rows in sweeps.items():
            table = pd.DataFrame({
                param: [value_text(r.value) + (" (baseline)" if r.is_baseline else "") for r in rows],
                "test acc (mean ± std)": [mean_std_text(r.mean, r.std) for r in rows],
                "seeds": [r.n_seeds for r in rows],
                "diverged": [r.n_diverged for r in rows],
            })
            parts.append(f"### {model}: {param}\n\n{table.to_markdown(index=False)}\n")
    return "\n".join(parts)


def baseline_row(result: dict) -> SweepRow:
    """The baseline over the ablation seeds (the centre row of every sweep of its model), from
    its ablate JSON (`ablation_results(...)[model]["baseline"]`)."""
    return _row(None, True, result["seeds"])
