"""The numbers behind every sentence of interpretation: a sweep's rows, noise, best value, trend.

Pure functions on a sweep's rows (`SweepRow`: one per value, mean ± std over seeds), so each
claim of the report can be checked against the table beside it and tested on made-up numbers.
The study's own tables are rows with one seed and no std. The noise rule (NOISE_RULE, as the
report states it) is applied in one place, `noise_threshold`; with fewer than two converged
seeds per value there is no noise estimate and no verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")
NOISE_FACTOR = 2.0
NOISE_RULE = (
    f"a difference is called **within noise** when it is not larger than {NOISE_FACTOR:g} × our "
    "seed-to-seed standard deviation; a sweep's spread (max − min of its means) is set against "
    "the pooled std (the square root of the seeds' sample variances averaged with weights "
    "n_converged − 1)"
)


@dataclass(frozen=True)
class Diverged:
    seed: int
    epoch: int | None


@dataclass(frozen=True)
class SweepRow:
    """One value of a sweep. mean/std: test accuracy (fraction of 1) over the converged seeds,
    std the sample std (0.0 for one seed); both None when every seed diverged. value: a number,
    a label, or a list (an MLP's hidden sizes)."""

    value: Any
    mean: float | None
    std: float | None
    n_seeds: int
    n_diverged: int = 0
    is_baseline: bool = False
    diverged: tuple[Diverged, ...] = ()  # which seeds diverged, in which epoch

    @property
    def n_converged(self) -> int:
        return self.n_seeds - self.n_diverged


def row_of(value, records: list[dict], is_baseline: bool = False, metric=lambda r: r["test_acc"]) -> SweepRow:
    """The row of one value from its seeds' records: mean and sample std of metric(record)
    (default: test accuracy) over the converged seeds that have it; a seed without a finite
    number counts in n_diverged (its noise is not estimated), `diverged` names the diverged."""
    xs = [x for r in records if not r["diverged"] and is_number(x := metric(r))]
    mean = statistics.fmean(xs) if xs else None
    std = statistics.stdev(xs) if len(xs) > 1 else 0.0 if xs else None
    diverged = tuple(Diverged(r["seed"], r.get("diverged_epoch")) for r in records if r["diverged"])
    return SweepRow(value, mean, std, len(records), len(records) - len(xs), is_baseline, diverged)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def same_value(a, b) -> bool:
    """Two hyper-parameter values are one: 1 and 1.0, 5e-3 and 0.005; labels and lists by text."""
    if is_number(a) and is_number(b):
        return abs(float(a) - float(b)) <= 1e-9 * max(abs(float(a)), abs(float(b)), 1e-300)
    return str(a) == str(b)


def ordered(rows: list[T], value: Callable[[T], Any] = attrgetter("value")) -> list[T]:
    """Rows by increasing value(row) when every value is a number; else as given."""
    if all(is_number(value(r)) for r in rows):
        return sorted(rows, key=lambda r: float(value(r)))
    return list(rows)


def noise_threshold(std: float | None) -> float | None:
    """NOISE_FACTOR × std: the largest difference still called within noise; None: no estimate."""
    return None if std is None else NOISE_FACTOR * std


@dataclass(frozen=True)
class Trend:
    kind: str  # "increasing" | "decreasing" | "peak" | "valley" | "flat" | "mixed" | "unordered" | "single"
    turning_value: Any = None  # the value at the peak or valley


@dataclass(frozen=True)
class Verdict:
    best: SweepRow | None  # highest mean; None if no value has one
    worst: SweepRow | None
    ties: int  # how many values share the best mean (1: a single best)
    spread: float | None  # max - min of the means
    pooled_std: float | None
    noise: float | None  # noise_threshold(pooled_std)
    within_noise: bool | None  # spread <= noise; None: noise cannot be estimated
    trend: Trend


def pooled_std(rows: list[SweepRow]) -> float | None:
    """sqrt(sum((n_i - 1) s_i^2) / sum(n_i - 1)) over values with >= 2 converged seeds."""
    used = [(r.n_converged - 1, r.std) for r in rows if r.std is not None and r.n_converged >= 2]
    dof = sum(d for d, _ in used)
    return math.sqrt(sum(d * std**2 for d, std in used) / dof) if dof else None


def trend(values: list, means: list[float]) -> Trend:
    """Direction of `means` along `values` (already in increasing order when numeric).

    Equal neighbours count as neither up nor down; one change of direction makes a peak or a
    valley at the value where it turns; more changes make a mixed pattern.
    """
    if len(means) < 2:
        return Trend("single")
    if not all(is_number(v) for v in values):
        return Trend("unordered")
    signs = [s for s in ((b > a) - (b < a) for a, b in zip(means, means[1:])) if s != 0]
    if not signs:
        return Trend("flat")
    changes = sum(1 for a, b in zip(signs, signs[1:]) if a != b)
    if changes == 0:
        return Trend("increasing" if signs[0] > 0 else "decreasing")
    if changes == 1:
        kind = "peak" if signs[0] > 0 else "valley"
        pick = max if kind == "peak" else min
        return Trend(kind, values[pick(range(len(means)), key=lambda i: means[i])])
    return Trend("mixed")


def scored_mean(row: SweepRow) -> float:
    """row.mean of a row known to have one: a row `judge` scored, or a study row (its one run)."""
    assert row.mean is not None
    return row.mean


def judge(rows: list[SweepRow], noise_std: float | None = None) -> Verdict:
    """The verdict on one sweep (rows in any order). noise_std: the seed std to judge the spread
    against; by default the rows' own pooled std (the study's one-run rows are judged against ours)."""
    rows = ordered(rows)
    scored = [r for r in rows if r.mean is not None and math.isfinite(r.mean)]
    pooled = pooled_std(scored) if noise_std is None else noise_std
    noise = noise_threshold(pooled)
    if not scored:
        return Verdict(None, None, 0, None, pooled, noise, None, Trend("single"))
    best = max(scored, key=scored_mean)
    worst = min(scored, key=scored_mean)
    spread = scored_mean(best) - scored_mean(worst)
    within = None if noise is None or len(scored) < 2 else spread <= noise
    ties = sum(1 for r in scored if r.mean == best.mean)
    direction = trend([r.value for r in scored], [scored_mean(r) for r in scored])
    return Verdict(best, worst, ties, spread, pooled, noise, within, direction)


TREND_PHRASES = {
    "increasing": "test accuracy increases as `{p}` grows",
    "decreasing": "test accuracy decreases as `{p}` grows",
    "peak": "test accuracy rises then falls as `{p}` grows, peaking at `{p}={v}`",
    "valley": "test accuracy falls then rises as `{p}` grows, lowest at `{p}={v}`",
    "flat": "test accuracy is the same at every value of `{p}`",
    "mixed": "test accuracy goes up and down as `{p}` grows, with no single direction",
    "unordered": "the values of `{p}` have no order, so there is no trend to state",
    "single": "there is only one value of `{p}` with a result, so there is no trend",
}


def describe_trend(t: Trend, param: str, fmt=str) -> str:
    """A phrase such as 'test accuracy decreases as `batch_size` grows'; fmt writes the turning value."""
    return TREND_PHRASES[t.kind].format(p=param, v=fmt(t.turning_value))


# ---------------------------------------------------------------------------------- robustness
# A sweep's robustness is judged as its accuracy is (`judge`, the one noise rule).


def change(row: SweepRow, base: SweepRow | None, noise: float | None) -> int | None:
    """+1 (row's mean above the baseline's by more than noise), -1 (below), 0 (within noise);
    None: a mean missing or no noise estimate."""
    if base is None or row.mean is None or base.mean is None or noise is None:
        return None
    diff = row.mean - base.mean
    return 0 if abs(diff) <= noise else 1 if diff > 0 else -1


@dataclass(frozen=True)
class Effect:
    """One swept value against the baseline, each number's `change` under its own noise."""

    value: Any
    accuracy: int | None  # test accuracy: +1 more accurate
    fooled: int | None  # targeted success at the budget: -1 harder to fool (more robust)


@dataclass(frozen=True)
class Robustness:
    """A sweep's robustness, rows in the order of its accuracy rows. fooled: targeted attack
    success at the budget (fraction of 1 of the images each run classifies correctly), budget:
    the median smallest budget that fools an image (pixel units); each mean ± std over seeds."""

    fooled: list[SweepRow]
    budget: list[SweepRow]
    verdict: Verdict  # judge(fooled): its best is the value fooled most, its worst the most robust
    effects: list[Effect]  # every value but the baseline's, in row order

    @property
    def finding(self) -> str:
        """The sweep in a word: 'all diverged' | 'no claim' (no noise estimate, or no baseline to
        compare with) | 'within noise' | 'more robust' | 'less robust' | 'both' (some values
        more robust than the baseline, some less)."""
        if self.verdict.best is None:
            return "all diverged"
        if self.verdict.within_noise is None or all(e.fooled is None for e in self.effects):
            return "no claim"
        more, less = (any(e.fooled == sign for e in self.effects) for sign in (-1, 1))
        if self.verdict.within_noise or not (more or less):
            return "within noise"
        return "both" if more and less else "more robust" if more else "less robust"


def robustness_of(
    accuracy: list[SweepRow], accuracy_noise: float | None, records: list[list[dict]]
) -> Robustness | None:
    """A sweep's robustness from its rows of test accuracy (and that sweep's noise) and each
    row's seed records (record["robustness"]: n, targeted, untargeted, median_budget, or None).
    None: not measured (no record has robustness, and not every run diverged)."""
    flat = [r for rs in records for r in rs]
    if all(r.get("robustness") is None for r in flat) and not all(r["diverged"] for r in flat):
        return None

    def rows(name: str) -> list[SweepRow]:
        return [
            row_of(a.value, rs, a.is_baseline, lambda r: (r.get("robustness") or {}).get(name))
            for a, rs in zip(accuracy, records)
        ]

    fooled, budget = rows("targeted"), rows("median_budget")
    verdict = judge(fooled)
    base_acc, base_fooled = next(((a, f) for a, f in zip(accuracy, fooled) if a.is_baseline), (None, None))
    effects = [
        Effect(a.value, change(a, base_acc, accuracy_noise), change(f, base_fooled, verdict.noise))
        for a, f in zip(accuracy, fooled)
        if not a.is_baseline
    ]
    return Robustness(fooled, budget, verdict, effects)


def robustness_ranking(sweeps: list[tuple[str, str, Robustness | None]]) -> list[tuple[str, str]]:
    """(model, param) of the sweeps with a robustness spread, by how much the swept value moves
    targeted success: beyond noise first, then the rest, each by decreasing spread."""
    scored = [
        (m, p, r.verdict.within_noise, r.verdict.spread)
        for m, p, r in sweeps
        if r is not None and r.verdict.spread is not None
    ]
    scored.sort(key=lambda s: (s[2] is not False, -s[3]))
    return [(m, p) for m, p, *_ in scored]
