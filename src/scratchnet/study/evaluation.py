"""The evaluate stage's one summary: every number and verdict the study states, computed once.

`build_summary` turns the ablate and train stages' results and the study's numbers into the
typed `Summary`: per model, its baseline against the study and, per swept key, one `SweepRow`
per value (the baseline's row, the centre of every sweep, in each) with the sweep's verdict,
comparison with the study and robustness; then the distance from the study and the sweeps
ranked by how much they move robustness. Evaluate writes it as JSON; the report, the headline
metrics and the tables only render it. Accuracies are fractions of 1 throughout.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from scratchnet.errors import MissingInputError
from scratchnet.files import read_json
from scratchnet.study import analysis, layout
from scratchnet.study.params import BASELINE, REGISTRY, ablation_entries, parse_entry
from scratchnet.study.reproduction import Comparison, Distance, compare, compared_diff, distance

# ---------------------------------------------------------------------------------- formatting
# The one way numbers are written for people (tables, prose, the stage's line).


def value_text(value) -> str:
    """A hyper-parameter value: 0.001, 128, 1 (for 1.0), 'he', [512, 256]; None as a dash."""
    if value is None:
        return "—"
    return f"{value:g}" if analysis.is_number(value) else str(value)


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


def points(diff: float) -> str:
    """A difference of accuracies in percentage points, signed: '+0.06 pt'."""
    return f"{100 * diff:+.2f} pt"


# ---------------------------------------------------------------------------------- the summary


@dataclass(frozen=True)
class Sweep:
    param: str
    rows: list[analysis.SweepRow]  # by increasing value (numbers) or in params order (labels)
    verdict: analysis.Verdict
    study: Comparison | None  # None: the study has no table for this sweep
    robustness: analysis.Robustness | None = None  # None: not measured (params robustness.enabled off)


@dataclass(frozen=True)
class ModelSummary:
    name: str
    title: str
    part: str | None  # its part of the study (the registry's); None: a model the study did not have
    test_acc: float | None  # the train stage's baseline run; None: it diverged
    baseline: analysis.SweepRow  # the baseline over the ablation seeds
    study_test_acc: float | None  # None: the study did not have this model
    diff: float | None  # test_acc − study_test_acc
    noise: float | None  # analysis.noise_threshold(baseline.std), with >= 2 converged seeds
    within_noise: bool | None  # |diff| <= noise
    sweeps: dict[str, Sweep]  # in params order
    study: dict | None  # the study's baseline hyper-parameters and ablation_epochs


@dataclass(frozen=True)
class Summary:
    noise_factor: float
    models: dict[str, ModelSummary]  # params["models"], in order
    distance: Distance
    study: dict  # the study's title, source, fit and attack numbers
    robustness_ranking: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # analysis.robustness_ranking

    def sweeps(self):
        """(model, Sweep) for every sweep of every model."""
        return [(m, s) for m, ms in self.models.items() for s in ms.sweeps.values()]


def read_result(rel: Path, root: Path = Path(".")) -> dict:
    """A stage's JSON result under the project folder `root`; MissingInputError if absent."""
    try:
        return read_json(root / rel)
    except FileNotFoundError:
        raise MissingInputError(f"{rel} is missing; run its stage first (dvc repro)") from None


def ablation_results(params: dict, root: Path = Path(".")) -> dict[str, dict[str, dict]]:
    """model -> entry -> the ablate stage's JSON for it (all seeds inside)."""
    return {
        model: {entry: read_result(layout.ablate_run(model, entry), root) for entry in ablation_entries(params, model)}
        for model in params["models"]
    }


def model_sweeps(
    params: dict, model: str, results: dict[str, dict]
) -> dict[str, list[tuple[analysis.SweepRow, list[dict]]]]:
    """Per swept key (in params order) the baseline's row and one row per value of that key
    (analysis.ordered), each with its seeds' records."""
    sweeps: dict[str, list[tuple[analysis.SweepRow, list[dict]]]] = {}
    base = results[BASELINE]["seeds"]
    for entry in ablation_entries(params, model):
        key, value = parse_entry(params, model, entry)
        if key is not None:
            sweeps.setdefault(key, [(analysis.row_of(params[model][key], base, True), base)])
            sweeps[key].append((analysis.row_of(value, results[entry]["seeds"]), results[entry]["seeds"]))
    return {key: analysis.ordered(pairs, lambda p: p[0].value) for key, pairs in sweeps.items()}


def build_summary(params: dict, results: dict[str, dict[str, dict]], train: dict[str, dict], study: dict) -> Summary:
    """results: ablation_results; train: model -> its train stage's run JSON; study: load_study."""
    models, distance_sweeps = {}, []
    for model in params["models"]:
        theirs = study.get(model) or {}
        tables = theirs.get("ablations", {})
        sweeps = {}
        for param, pairs in model_sweeps(params, model, results[model]).items():
            rows = [r for r, _ in pairs]
            verdict = analysis.judge(rows)
            comparison = compare(model, param, rows, verdict, tables[param]) if param in tables else None
            robustness = analysis.robustness_of(rows, verdict.noise, [records for _, records in pairs])
            sweeps[param] = Sweep(param, rows, verdict, comparison, robustness)
        distance_sweeps += [(model, p, t, sweeps[p].study if p in sweeps else None) for p, t in tables.items()]
        test_acc = train[model]["seeds"][0]["test_acc"]
        baseline = analysis.row_of(None, results[model][BASELINE]["seeds"], True)
        study_acc = theirs.get("test_acc")
        diff = None if test_acc is None or study_acc is None else test_acc - study_acc
        noise = analysis.noise_threshold(baseline.std) if baseline.n_converged >= 2 else None
        within = None if diff is None or noise is None else abs(diff) <= noise
        setup = {k: theirs[k] for k in ("baseline", "ablation_epochs") if k in theirs} if theirs else None
        title, part = REGISTRY[model].title, REGISTRY[model].part
        models[model] = ModelSummary(
            model, title, part, test_acc, baseline, study_acc, diff, noise, within, sweeps, setup
        )
    return Summary(
        analysis.NOISE_FACTOR,
        models,
        distance(distance_sweeps),
        {k: study[k] for k in ("title", "source", "fit", "attack") if k in study},
        analysis.robustness_ranking(
            [(m, s.param, s.robustness) for m, ms in models.items() for s in ms.sweeps.values()]
        ),
    )


# ------------------------------------------------------------------------------ JSON, typed


def _typed(tp, data):
    """`data` (as json.load gives it) as the type `tp`: dataclasses, lists, tuples, dicts, unions."""
    if data is None:
        return None
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        classes = [a for a in args if dataclasses.is_dataclass(a)]
        return _typed(classes[0], data) if classes else data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: _typed(hints[f.name], data[f.name]) for f in dataclasses.fields(tp)})
    if origin in (list, tuple):
        return origin(_typed(args[0], x) for x in data)
    if origin is dict:
        return {k: _typed(args[1], v) for k, v in data.items()}
    return data


def summary_to_json(summary: Summary) -> dict:
    return dataclasses.asdict(summary)


def summary_from_json(data: dict) -> Summary:
    """The inverse of summary_to_json. Raises KeyError/TypeError on a malformed document."""
    return _typed(Summary, data)


# ------------------------------------------------------------------------------ tables, metrics

SEED_COLUMNS = ["seed", "test_acc", "final_val_acc", "diverged", "diverged_epoch", "key"]  # each seed's record's
RUN_COLUMNS = ["model", "run", "param", "value", *SEED_COLUMNS]
SUMMARY_COLUMNS = ["model", "param", "value", "is_baseline", "n_seeds", "test_acc_mean", "test_acc_std", "n_diverged"]


def runs_frame(results: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """One row per (model, entry, seed): the raw numbers, each run named by its run key."""
    rows = [
        {
            "model": model,
            "run": entry,
            "param": result["param"],
            "value": result["value"],
            **{k: rec.get(k) for k in SEED_COLUMNS},
        }
        for model, by_entry in results.items()
        for entry, result in by_entry.items()
        for rec in result["seeds"]
    ]
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def summary_frame(summary: Summary) -> pd.DataFrame:
    """The rows as layout.ABLATION_SUMMARY_CSV's table: one row per (model, param, value)."""
    rows = [
        [model, sweep.param, r.value, r.is_baseline, r.n_seeds, r.mean, r.std, r.n_diverged]
        for model, sweep in summary.sweeps()
        for r in sweep.rows
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def markdown_tables(summary: Summary) -> str:
    """One Markdown table per sweep, with targeted attack success where it was measured."""
    parts = []
    for model, sweep in summary.sweeps():
        columns = {
            sweep.param: [value_text(r.value) + (" (baseline)" if r.is_baseline else "") for r in sweep.rows],
            "test acc (mean ± std)": [mean_std_text(r.mean, r.std) for r in sweep.rows],
            "seeds": [r.n_seeds for r in sweep.rows],
            "diverged": [r.n_diverged for r in sweep.rows],
        }
        if sweep.robustness:
            columns["targeted attack success (mean ± std)"] = [
                mean_std_text(f.mean, f.std) for f in sweep.robustness.fooled
            ]
        table = pd.DataFrame(columns).to_markdown(index=False)
        parts.append(f"### {model}: {sweep.param}\n\n{table}\n")
    return "\n".join(parts)


def headline_metrics(summary: Summary) -> dict:
    """metrics/study.json for `dvc metrics show` and `dvc exp show`: `acc.<model>`, each
    baseline's test accuracy; `gap`, the mean |ours − study| over the compared entries (None:
    none compared); `agree`, how many sweeps agree with the study's best value. Short names, so
    `dvc exp show --only-changed` fits 120 columns beside the params an experiment changed."""

    def rounded(value: float | None) -> float | None:
        # 4 decimals (0.01 of a point) is finer than any seed noise, and keeps the table narrow
        return None if value is None else round(value, 4)

    return {
        "acc": {model: rounded(m.test_acc) for model, m in summary.models.items()},
        "gap": rounded(summary.distance.mean_abs),
        "agree": summary.distance.agree_best,
    }


def summary_line(summary: Summary) -> str:
    """The evaluate stage's one line in `dvc repro`'s output (the tables are in its files)."""
    dist = summary.distance
    accs = ", ".join(f"{m} {'diverged' if s.test_acc is None else pct(s.test_acc)}" for m, s in summary.models.items())
    if dist.mean_abs is None:
        return f"test accuracy {accs}; no entry to compare with the study"
    worst = dist.worst
    assert worst is not None  # a mean_abs: some entry was compared
    return (
        f"test accuracy {accs}; vs the study: mean |diff| {100 * dist.mean_abs:.2f} pt over "
        f"{dist.compared} entries, worst {points(compared_diff(worst))} ({worst.model} "
        f"{worst.param}={value_text(worst.value)}), {len(dist.beyond_noise)} beyond noise, "
        f"{dist.agree_best} of {dist.sweeps} sweeps agree on the best value"
    )
