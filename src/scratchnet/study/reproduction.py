"""How far this reproduction is from the study: the one computation of that distance.

Pure on our sweeps' rows and the study's published numbers (`load_study`); the evaluate stage
puts the result into the summary, where everything else reads it.

- An *entry* is one row of one of the study's ablation tables (model, swept key, value): 32 in
  the study, each sweep's table including the baseline's value. Ours is the summary row with
  the same value; the difference is ours (mean over converged seeds) − the study's.
- *Beyond noise*: |ours − study| > analysis.noise_threshold(our pooled seed std over the
  sweep). The study ran each value once, so its number carries about one seed's worth of
  noise; our seed std is the only estimate of it there is.
- A sweep *agrees on the best value* (the one rule; the report's glance table and its sections
  both print this value) when, over the values both tables have, our best is the study's best,
  or our mean at the study's best is within our noise of our best. It *agrees on the trend*
  when `analysis.trend` names the same direction (and, for a peak or a valley, the same turning
  value) for both over those values. Fewer than two shared values give neither verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scratchnet.errors import UserError
from scratchnet.study.analysis import SweepRow, Trend, Verdict, judge, ordered, same_value, scored_mean, trend


class StudyNumbersError(UserError):
    """reference/study_numbers.yaml is missing or does not hold what the reproduction compares with."""


def _need(data, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(data, dict):
        raise StudyNumbersError(f"{where} must be a mapping")
    missing = [k for k in keys if k not in data]
    if missing:
        raise StudyNumbersError(f"{where} lacks key(s) {', '.join(missing)}")


def load_study(path: Path | str, models) -> dict:
    """The study's numbers (reference/study_numbers.yaml), checked for what the comparison reads:
    title, source, attack, and for each of `models` the study has (a model it did not have has
    no section): test_acc, baseline and ablation tables of {value, test_acc} rows."""
    path = Path(path)
    if not path.is_file():
        raise StudyNumbersError(f"{path} (the study's published numbers) is missing")
    try:
        study = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise StudyNumbersError(f"{path} is not valid YAML: {err}") from None
    _need(study, ("title", "source", "attack"), str(path))
    for model in (m for m in models if m in study):
        _need(study[model], ("test_acc", "baseline", "ablations"), f"{path} {model}")
        for param, table in study[model]["ablations"].items():
            _need(table, ("rows",), f"{path} {model}.ablations.{param}")
            for row in table["rows"]:
                _need(row, ("value", "test_acc"), f"{path} {model}.ablations.{param}.rows")
    return study


def study_rows(table: dict | None) -> list[SweepRow]:
    """The study's table for one sweep as rows (one run each, no std); [] if it has none."""
    return [SweepRow(r["value"], float(r["test_acc"]), None, 1) for r in (table or {}).get("rows", [])]


@dataclass(frozen=True)
class Entry:
    """One row of the study's tables beside ours. ours: None when we did not train the value."""

    model: str
    param: str
    value: Any
    study: float
    ours: SweepRow | None
    diff: float | None  # ours − study (fraction of 1); None when not trained or every seed diverged
    beyond_noise: bool | None  # None: no difference or no noise estimate
    diverged: bool  # every seed of ours diverged where the study trained


@dataclass(frozen=True)
class Comparison:
    """One sweep of ours against the study's table for it."""

    study: Verdict  # the study's table on its own (best, trend), its spread judged against our noise
    entries: list[Entry]  # the study's rows, in its order
    ours_best: Any  # over the values both tables have; None: fewer than two
    study_best: Any
    best_agrees: bool | None  # None: fewer than two shared values with a result
    ours_trend: Trend
    study_trend: Trend
    trend_agrees: bool | None
    mean_diff: float | None  # mean of ours − study over the shared values
    conclusion: str | None  # the study's own sentence


def _ours_at(rows: list[SweepRow], value) -> SweepRow | None:
    return next((r for r in rows if same_value(r.value, value)), None)


def _entry(model: str, param: str, study: SweepRow, ours: SweepRow | None, noise: float | None) -> Entry:
    diff = None if ours is None or ours.mean is None else ours.mean - scored_mean(study)
    beyond = None if diff is None or noise is None else abs(diff) > noise
    diverged = ours is not None and ours.mean is None
    return Entry(model, param, study.value, scored_mean(study), ours, diff, beyond, diverged)


def compare(model: str, param: str, ours: list[SweepRow], mine: Verdict, table: dict) -> Comparison:
    """Our sweep (its rows and verdict) against the study's table {rows, conclusion}."""
    theirs = study_rows(table)
    entries = [_entry(model, param, t, _ours_at(ours, t.value), mine.noise) for t in theirs]
    pairs = [(o, t) for t in ordered(theirs) if (o := _ours_at(ours, t.value)) is not None and o.mean is not None]
    diffs = [e.diff for e in entries if e.diff is not None]
    values = [o.value for o, _ in pairs]
    ours_trend = trend(values, [scored_mean(o) for o, _ in pairs])
    study_trend = trend(values, [scored_mean(t) for _, t in pairs])
    ours_best = study_best = None
    best_agrees: bool | None = None
    trend_agrees: bool | None = None
    if len(pairs) >= 2:  # one shared value is trivially "the best" of both, and has no trend: no claim
        best = max((o for o, _ in pairs), key=scored_mean)
        ours_at_theirs, theirs_best = max(pairs, key=lambda p: scored_mean(p[1]))
        ours_best, study_best = best.value, theirs_best.value
        best_agrees = same_value(ours_best, study_best) or (
            mine.noise is not None and scored_mean(best) - scored_mean(ours_at_theirs) <= mine.noise
        )
        if ours_trend.kind != "unordered":
            trend_agrees = ours_trend.kind == study_trend.kind and same_value(
                ours_trend.turning_value, study_trend.turning_value
            )
    return Comparison(
        judge(theirs, noise_std=mine.pooled_std),
        entries,
        ours_best,
        study_best,
        best_agrees,
        ours_trend,
        study_trend,
        trend_agrees,
        math.fsum(diffs) / len(diffs) if diffs else None,
        table.get("conclusion"),
    )


@dataclass(frozen=True)
class Distance:
    """Every entry of the study's tables against ours, over every model the study had."""

    entries: list[Entry]  # in the study's order: model, sweep, row
    compared: int  # entries with a difference
    mean_abs: float | None  # mean |ours − study| over the compared entries (fraction of 1)
    worst: Entry | None
    beyond_noise: list[Entry]
    diverged: list[Entry]
    untrained_sweeps: list[str]  # 'twolayer `lr` (4 values)': a sweep of the study not run here
    missing: list[Entry]  # values of a sweep run here that were not trained
    sweeps: int  # sweeps of the study run here
    agree_best: int
    agree_trend: int


def compared_diff(entry: Entry) -> float:
    """entry.diff of an entry known to be compared (ours has a mean there)."""
    assert entry.diff is not None
    return entry.diff


def distance(sweeps: list[tuple[str, str, dict, Comparison | None]]) -> Distance:
    """The distance over the study's tables, in its order: (model, param, the study's table,
    our comparison or None for a sweep this run did not train: its entries count, untrained)."""
    entries = []
    for model, param, table, comparison in sweeps:
        entries += (
            comparison.entries if comparison else [_entry(model, param, t, None, None) for t in study_rows(table)]
        )
    comparisons = [c for *_, c in sweeps if c is not None]
    compared = [e for e in entries if e.diff is not None]
    return Distance(
        entries=entries,
        compared=len(compared),
        mean_abs=sum(abs(compared_diff(e)) for e in compared) / len(compared) if compared else None,
        worst=max(compared, key=lambda e: abs(compared_diff(e)), default=None),
        beyond_noise=[e for e in compared if e.beyond_noise],
        diverged=[e for e in entries if e.diverged],
        untrained_sweeps=[f"{m} `{p}` ({len(t['rows'])} values)" for m, p, t, c in sweeps if c is None],
        missing=[e for c in comparisons for e in c.entries if e.ours is None],
        sweeps=len(comparisons),
        agree_best=sum(1 for c in comparisons if c.best_agrees),
        agree_trend=sum(1 for c in comparisons if c.trend_agrees),
    )
