"""How far this reproduction is from the study: the one computation of that distance.

Pure on the typed summary (`evaluation.Summary`) and the study's published numbers
(`reference/study_numbers.yaml`, read by `load_study`). Used by the evaluate stage (its headline
metrics), the report (its "distance" section) and `bench/reproduction_distance.py`.

- An *entry* is one row of one of the study's ablation tables (model, swept key, value): 32 in
  the study, each sweep's table including the baseline's value. Ours is the summary row with
  the same value; the difference is ours (mean over converged seeds) − the study's.
- *Beyond noise*: |ours − study| > NOISE_FACTOR × our pooled seed std over the sweep. The
  study ran each value once, so its number carries about one seed's worth of noise; our seed
  std is the only estimate of it there is.
- A sweep *agrees on the best value* when, over the values both tables have, our best is the
  study's best, or our mean at the study's best is within our noise (NOISE_FACTOR × pooled
  std) of our best; with fewer than two shared values there is no verdict. It *agrees on the trend* when `analysis.trend` names the same direction
  (and, for a peak or a valley, the same turning value) for both over those values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from scratchnet.errors import UserError
from scratchnet.study import analysis
from scratchnet.study.evaluation import Summary, SweepRow, is_number, pct, value_text
from scratchnet.study.params import MODELS


class StudyNumbersError(UserError):
    """reference/study_numbers.yaml is missing or does not hold what the reproduction compares with."""


def same_value(a, b) -> bool:
    """Two hyper-parameter values are one: 1 and 1.0, 5e-3 and 0.005; labels by text."""
    if is_number(a) and is_number(b):
        return abs(float(a) - float(b)) <= 1e-9 * max(abs(float(a)), abs(float(b)), 1e-300)
    return str(a) == str(b)


# ------------------------------------------------------------------------------- the study's numbers


def _need(data, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(data, dict):
        raise StudyNumbersError(f"{where} must be a mapping")
    missing = [k for k in keys if k not in data]
    if missing:
        raise StudyNumbersError(f"{where} lacks key(s) {', '.join(missing)}")


def load_study(path: Path | str) -> dict:
    """The study's numbers (reference/study_numbers.yaml), checked for what the comparison reads:
    title, source, per model test_acc, baseline and ablation tables of {value, test_acc} rows."""
    path = Path(path)
    if not path.is_file():
        raise StudyNumbersError(f"{path} (the study's published numbers) is missing")
    try:
        study = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise StudyNumbersError(f"{path} is not valid YAML: {err}") from None
    _need(study, ("title", "source", *MODELS, "attack"), str(path))
    for model in MODELS:
        _need(study[model], ("test_acc", "baseline", "ablations"), f"{path} {model}")
        for param, table in study[model]["ablations"].items():
            _need(table, ("rows",), f"{path} {model}.ablations.{param}")
            for row in table["rows"]:
                _need(row, ("value", "test_acc"), f"{path} {model}.ablations.{param}.rows")
    return study


def study_rows(study: dict, model: str, param: str) -> list[SweepRow]:
    """The study's table for one sweep as rows (one run each, no std); [] if it has none."""
    table = study[model]["ablations"].get(param) or {"rows": []}
    return [SweepRow(r["value"], float(r["test_acc"]), None, 1) for r in table["rows"]]


# ------------------------------------------------------------------------------------- the distance


@dataclass(frozen=True)
class Entry:
    """One row of the study's tables beside ours. ours: None when we did not train the value."""

    model: str
    param: str
    value: float | int | str
    study: float
    ours: SweepRow | None
    noise: float | None  # NOISE_FACTOR x our pooled seed std over the sweep; None: no estimate

    @property
    def diff(self) -> float | None:
        """ours − study (fraction of 1); None when not trained or every seed diverged."""
        if self.ours is None or self.ours.mean is None:
            return None
        return self.ours.mean - self.study

    @property
    def diverged(self) -> bool:
        """Every seed of ours diverged where the study trained."""
        return self.ours is not None and self.ours.mean is None

    @property
    def beyond_noise(self) -> bool | None:
        if self.diff is None or self.noise is None:
            return None
        return abs(self.diff) > self.noise


@dataclass(frozen=True)
class SweepAgreement:
    model: str
    param: str
    ours_best: float | int | str | None  # over the values both tables have; None: fewer than two
    study_best: float | int | str | None
    best_agrees: bool | None  # None: fewer than two shared values with a result
    ours_trend: analysis.Trend
    study_trend: analysis.Trend

    @property
    def trend_agrees(self) -> bool | None:
        if self.ours_trend.kind in ("single", "unordered"):
            return None
        return (self.ours_trend.kind == self.study_trend.kind
                and same_value(self.ours_trend.turning_value, self.study_trend.turning_value))


@dataclass(frozen=True)
class Distance:
    entries: list[Entry]  # in the study's order: model, sweep, row
    sweeps: list[SweepAgreement]

    @property
    def compared(self) -> list[Entry]:
        return [e for e in self.entries if e.diff is not None]

    @property
    def mean_abs(self) -> float | None:
        """Mean |ours − study| over the compared entries (fraction of 1)."""
        diffs = [abs(e.diff) for e in self.compared]
        return sum(diffs) / len(diffs) if diffs else None

    @property
    def worst(self) -> Entry | None:
        return max(self.compared, key=lambda e: abs(e.diff), default=None)

    @property
    def beyond_noise(self) -> list[Entry]:
        return [e for e in self.compared if e.beyond_noise]

    @property
    def diverged(self) -> list[Entry]:
        return [e for e in self.entries if e.diverged]

    @property
    def sweeps_agreeing_best(self) -> int:
        return sum(1 for s in self.sweeps if s.best_agrees)

    @property
    def sweeps_agreeing_trend(self) -> int:
        return sum(1 for s in self.sweeps if s.trend_agrees)


def _ours_at(rows: list[SweepRow], value) -> SweepRow | None:
    return next((r for r in rows if same_value(r.value, value)), None)


def _agreement(model: str, param: str, ours: list[SweepRow], theirs: list[SweepRow],
               noise: float | None) -> SweepAgreement:
    pairs = [(o, t) for t in analysis.ordered(theirs)
             if (o := _ours_at(ours, t.value)) is not None and o.mean is not None]
    if len(pairs) < 2:  # one shared value is trivially "the best" of both: no claim
        none = analysis.Trend("single")
        return SweepAgreement(model, param, None, None, None, none, none)
    best_ours = max((o for o, _ in pairs), key=lambda r: r.mean)
    best_theirs = max((t for _, t in pairs), key=lambda r: r.mean)
    ours_at_theirs = _ours_at([o for o, _ in pairs], best_theirs.value)
    agrees = same_value(best_ours.value, best_theirs.value) or (
        noise is not None and best_ours.mean - ours_at_theirs.mean <= noise)
    values = [o.value for o, _ in pairs]
    return SweepAgreement(
        model, param, best_ours.value, best_theirs.value, agrees,
        analysis.trend(values, [o.mean for o, _ in pairs]),
        analysis.trend(values, [t.mean for _, t in pairs]),
    )


def distance(summary: Summary, study: dict, factor: float = analysis.NOISE_FACTOR) -> Distance:
    """Every entry of the study's tables against ours, and every sweep's agreement."""
    entries, sweeps = [], []
    for model in MODELS:
        for param in study[model]["ablations"]:
            ours = summary.get(model, {}).get(param, [])
            pooled = analysis.pooled_std(ours)
            noise = None if pooled is None else factor * pooled
            theirs = study_rows(study, model, param)
            entries += [Entry(model, param, t.value, t.mean, _ours_at(ours, t.value), noise) for t in theirs]
            if ours:
                sweeps.append(_agreement(model, param, ours, theirs, noise))
    return Distance(entries, sweeps)


def headline_metrics(test_acc: dict[str, float | None], dist: Distance) -> dict:
    """The study's few numbers for `dvc metrics show` and `dvc exp show` (metrics/study.json):
    `acc.<model>`, each baseline's test accuracy; `gap`, the mean |ours − study| over every
    compared ablation entry (fraction of 1; None when none is compared); `agree`, how many sweeps
    agree with the study's best value. Short names, so `dvc exp show --only-changed` fits 120
    columns beside the params an experiment changed. The seed spread, the worst entry and the
    per-model split are in the report and the evaluate stage's line; timings are not results."""
    def rounded(value: float | None) -> float | None:
        # 4 decimals (0.01 of a point) is finer than any seed noise, and keeps the table narrow
        return None if value is None else round(value, 4)

    return {"acc": {model: rounded(acc) for model, acc in test_acc.items()},
            "gap": rounded(dist.mean_abs), "agree": dist.sweeps_agreeing_best}


def summary_line(test_acc: dict[str, float | None], dist: Distance) -> str:
    """The evaluate stage's one line in `dvc repro`'s output (the tables are in its files)."""
    accs = ", ".join(f"{m} {'diverged' if a is None else pct(a)}" for m, a in test_acc.items())
    if dist.mean_abs is None:
        return f"test accuracy {accs}; no entry to compare with the study"
    worst = dist.worst
    return (f"test accuracy {accs}; vs the study: mean |diff| {100 * dist.mean_abs:.2f} pt over "
            f"{len(dist.compared)} entries, worst {100 * worst.diff:+.2f} pt ({worst.model} "
            f"{worst.param}={value_text(worst.value)}), {len(dist.beyond_noise)} beyond noise, "
            f"{dist.sweeps_agreeing_best} of {len(dist.sweeps)} sweeps agree on the best value")
