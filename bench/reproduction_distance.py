"""The reproduction's distance from the study, measured on finished runs' results.

    .venv/bin/python bench/reproduction_distance.py [PROJECT ...]

PROJECT: a project folder after `dvc repro` (it reads PROJECT/results/evaluate/ablation_summary.csv),
default the current folder. For each, prints the per-entry table (ours mean ± std over seeds,
the study, the difference in points, the noise verdict) and the sweeps' agreement; with several
projects (say, one per alternative setting tried), a last table compares them one line each.
The numbers are `scratchnet.study.reproduction.distance`, the computation the evaluate stage
and the report use, against this repository's reference/study_numbers.yaml.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from scratchnet.study import evaluation, layout, reproduction  # noqa: E402


def entries_table(dist: reproduction.Distance) -> str:
    lines = ["| model | sweep | value | ours | study | ours − study | vs noise |", "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for e in dist.entries:
        ours = "not trained" if e.ours is None else evaluation.mean_std_text(e.ours.mean, e.ours.std)
        diff = "—" if e.diff is None else f"{100 * e.diff:+.2f} pt"
        noise = "diverged" if e.diverged else {None: "—", True: "beyond", False: "within"}[e.beyond_noise]
        lines.append(f"| {e.model} | {e.param} | {evaluation.value_text(e.value)} | {ours} | {e.study:.4f} | {diff} | {noise} |")
    return "\n".join(lines)


def sweeps_table(dist: reproduction.Distance) -> str:
    lines = ["| model | sweep | our best | study's best | best agrees | our trend | study's trend |", "| --- | --- | ---: | ---: | --- | --- | --- |"]
    for s in dist.sweeps:
        lines.append(f"| {s.model} | {s.param} | {evaluation.value_text(s.ours_best)} | "
                     f"{evaluation.value_text(s.study_best)} | {s.best_agrees} | {s.ours_trend.kind} | {s.study_trend.kind} |")
    return "\n".join(lines)


def headline(name: str, dist: reproduction.Distance) -> str:
    """| run | mean |diff| | worst | beyond noise | diverged | sweeps agreeing (best, trend) |"""
    if dist.mean_abs is None:
        return f"| {name} | — | — | — | {len(dist.diverged)} | 0, 0 |"
    w = dist.worst
    return (f"| {name} | {100 * dist.mean_abs:.2f} pt over {len(dist.compared)} | {100 * w.diff:+.2f} pt "
            f"({w.model} {w.param}={evaluation.value_text(w.value)}) | {len(dist.beyond_noise)} | {len(dist.diverged)} | "
            f"{dist.sweeps_agreeing_best} of {len(dist.sweeps)}, {dist.sweeps_agreeing_trend} of {len(dist.sweeps)} |")


def main(projects: list[str]) -> None:
    study = reproduction.load_study(ROOT / layout.STUDY_NUMBERS)
    rows = []
    for project in projects or ["."]:
        path = Path(project) / layout.ABLATION_SUMMARY_CSV
        if not path.exists():
            sys.exit(f"reproduction_distance: {path} is missing; run `dvc repro evaluate` in {project} first")
        dist = reproduction.distance(evaluation.summary_from_frame(pd.read_csv(path)), study)
        print(f"## {path}\n\n{entries_table(dist)}\n\n{sweeps_table(dist)}\n")
        rows.append(headline(project, dist))
    print("| run | mean abs(ours − study) | worst | beyond noise | diverged | sweeps agreeing (best, trend) |")
    print("| --- | ---: | --- | ---: | ---: | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
