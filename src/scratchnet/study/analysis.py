"""The numbers behind every sentence of interpretation: best value, noise, trend.

Pure functions on a sweep's rows (`evaluation.SweepRow`: one per value, mean ± std over seeds),
so each claim of the report, and the reproduction's distance from the study, can be checked
against the table beside it and tested on made-up numbers. The study's own tables are rows
with one seed and no std.

The noise rule: a sweep's effect is "within noise" when the spread of its means (max - min) is
not larger than NOISE_FACTOR times the pooled seed-to-seed standard deviation. The pooled std
weights each value's sample variance by its degrees of freedom (converged seeds - 1); with
fewer than two converged seeds per value there is no noise estimate and no verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scratchnet.study.evaluation import SweepRow, is_number, ordered

NOISE_FACTOR = 2.0
NOISE_RULE = (
    f"a sweep's differences are called **within noise** when the spread of its means "
    f"(max − min) is not larger than {NOISE_FACTOR:g} × the pooled seed-to-seed standard "
    "deviation (the square root of the seeds' sample variances averaged with weights "
    "n_converged − 1)"
)


@dataclass(frozen=True)
class Trend:
    kind: str  # "increasing" | "decreasing" | "peak" | "valley" | "flat" | "mixed" | "unordered" | "single"
    turning_value: float | str | None = None  # the value at the peak or valley


@dataclass(frozen=True)
class Verdict:
    best: SweepRow | None  # highest mean; None if no value has one
    worst: SweepRow | None
    spread: float | None  # max - min of the means
    pooled_std: float | None
    within_noise: bool | None  # None: noise cannot be estimated
    trend: Trend


def pooled_std(rows: list[SweepRow]) -> float | None:
    """sqrt(sum((n_i - 1) s_i^2) / sum(n_i - 1)) over values with >= 2 converged seeds."""
    dof = sum(r.n_converged - 1 for r in rows if r.std is not None and r.n_converged >= 2)
    if dof == 0:
        return None
    ss = sum((r.n_converged - 1) * r.std**2 for r in rows if r.std is not None and r.n_converged >= 2)
    return math.sqrt(ss / dof)


def trend(values: list, means: list[float]) -> Trend:
    """Direction of `means` along `values` (already in increasing order when numeric).

    Equal neighbours count as neither up nor down; one change of direction makes a peak or a
    valley at the value where it turns; more changes make a mixed pattern.
    """
    if len(means) < 2:
        return Trend("single")
    if not all(is_number(v) for v in values):
        return Trend("unordered")
    steps = [b - a for a, b in zip(means, means[1:])]
    signs = [s for s in ((d > 0) - (d < 0) for d in steps) if s != 0]
    if not signs:
        return Trend("flat")
    changes = sum(1 for a, b in zip(signs, signs[1:]) if a != b)
    if changes == 0:
        return Trend("increasing" if signs[0] > 0 else "decreasing")
    if changes == 1:
        kind = "peak" if signs[0] > 0 else "valley"
        pick = max if kind == "peak" else min
        turning = pick(range(len(means)), key=lambda i: means[i])
        return Trend(kind, values[turning])
    return Trend("mixed")


def judge(rows: list[SweepRow], factor: float = NOISE_FACTOR) -> Verdict:
    """The verdict on one sweep: rows in any order, with means and stds over seeds."""
    rows = ordered(rows)
    scored = [r for r in rows if r.mean is not None and math.isfinite(r.mean)]
    if not scored:
        return Verdict(None, None, None, pooled_std(rows), None, Trend("single"))
    best = max(scored, key=lambda r: r.mean)
    worst = min(scored, key=lambda r: r.mean)
    spread = best.mean - worst.mean
    noise = pooled_std(scored)
    within = None if noise is None or len(scored) < 2 else spread <= factor * noise
    return Verdict(best, worst, spread, noise, within, trend([r.value for r in scored], [r.mean for r in scored]))


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
