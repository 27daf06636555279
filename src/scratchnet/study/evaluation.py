"""The evaluate stage's tables: every run's test accuracy gathered into ablation tables.

Reads the run results of the train and ablate stages (layout.train_run / layout.ablate_run, one
JSON per ablation value holding all its seeds) and builds, with pandas:

- runs:    one row per (model, run, seed): the raw numbers, with MLflow run ids;
- summary: one row per (model, swept key, value): mean ± sample std over seeds that did not
           diverge. The baseline is the centre of every sweep, so its row appears in each
           sweep of its model with the value the baseline has for that key.

Only the entries listed in params.yaml are read: results of entries a user removed stay on
disk but no longer count.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from scratchnet.errors import MissingInputError
from scratchnet.study import layout
from scratchnet.study.params import BASELINE, MODELS, parse_entry

RUN_COLUMNS = ["model", "run", "param", "value", "seed", "test_acc", "final_val_acc",
               "diverged", "diverged_epoch", "mlflow_run_id"]
SUMMARY_COLUMNS = ["model", "param", "value", "is_baseline", "n_seeds", "test_acc_mean",
                   "test_acc_std", "test_acc_min", "test_acc_max", "n_diverged", "mlflow_run_ids"]


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MissingInputError(f"evaluate: {path} is missing; run its stage first (dvc repro)") from None


def ablation_runs(params: dict, root: Path = Path(".")) -> pd.DataFrame:
    rows = []
    for model in MODELS:
        for entry in params["ablate"][model]:
            result = _read(root / layout.ablate_run(model, entry))
            for rec in result["seeds"]:
                rows.append({
                    "model": model, "run": entry, "param": result["param"], "value": result["value"],
                    **{k: rec[k] for k in ("seed", "test_acc", "final_val_acc", "diverged",
                                           "diverged_epoch", "mlflow_run_id")},
                })
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def _sweeps(params: dict, model: str) -> list[str]:
    keys = [parse_entry(params, model, e)[0] for e in params["ablate"][model]]
    return list(dict.fromkeys(k for k in keys if k is not None))  # first-seen order


def ablation_summary(params: dict, runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for model in MODELS:
        base = runs[(runs.model == model) & (runs.run == BASELINE)]
        for param in _sweeps(params, model):
            sweep = runs[(runs.model == model) & (runs.param == param)]
            groups = [(params[model][param], True, base)]
            groups += [(value, False, g) for value, g in sweep.groupby("value", sort=False)]
            for value, is_baseline, group in groups:
                accs = group.test_acc.dropna()
                rows.append({
                    "model": model, "param": param, "value": value, "is_baseline": is_baseline,
                    "n_seeds": len(group),
                    "test_acc_mean": accs.mean() if len(accs) else float("nan"),
                    "test_acc_std": accs.std(ddof=1) if len(accs) > 1 else (0.0 if len(accs) else float("nan")),
                    "test_acc_min": accs.min() if len(accs) else float("nan"),
                    "test_acc_max": accs.max() if len(accs) else float("nan"),
                    "n_diverged": int(group.diverged.astype(bool).sum()),
                    "mlflow_run_ids": ";".join(group.mlflow_run_id.astype(str)),
                })
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    order = {m: i for i, m in enumerate(MODELS)}
    summary["_m"] = summary.model.map(order)
    summary["_p"] = [_sweeps(params, m).index(p) for m, p in zip(summary.model, summary.param)]
    return summary.sort_values(["_m", "_p", "value"]).drop(columns=["_m", "_p"]).reset_index(drop=True)


def markdown_tables(summary: pd.DataFrame) -> str:
    """One Markdown table per sweep: value | test accuracy mean ± std | seeds | diverged."""
    parts = []
    for (model, param), sweep in summary.groupby(["model", "param"], sort=False):
        table = pd.DataFrame({
            param: [f"{v:g}" + (" (baseline)" if b else "") for v, b in zip(sweep.value, sweep.is_baseline)],
            "test acc (mean ± std)": [_pm(m, s) for m, s in zip(sweep.test_acc_mean, sweep.test_acc_std)],
            "seeds": sweep.n_seeds.values,
            "diverged": sweep.n_diverged.values,
        })
        parts.append(f"### {model}: {param}\n\n{table.to_markdown(index=False)}\n")
    return "\n".join(parts)


def _pm(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "diverged"
    return f"{mean:.4f} ± {std:.4f}"


def metrics(params: dict, summary: pd.DataFrame, root: Path = Path(".")) -> dict:
    """What `dvc metrics show` lists: each baseline's test accuracy, and its seed spread."""
    out = {}
    for model in MODELS:
        train = _read(root / layout.train_run(model))
        base = _read(root / layout.ablate_run(model, BASELINE))
        out[model] = {
            "test_acc": train["test_acc_mean"],
            "ablation_baseline_mean": base["test_acc_mean"],
            "ablation_baseline_std": base["test_acc_std"],
        }
    return out

