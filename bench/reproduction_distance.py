"""The reproduction's distance from the study, measured on finished runs' results.

    .venv/bin/python bench/reproduction_distance.py [PROJECT ...]

PROJECT: a project folder after `dvc repro` (it reads the evaluate stage's summary,
PROJECT/results/evaluate/ablation_summary.json),
default the current folder. For each, prints the per-entry table (ours mean ± std over seeds,
the study, the difference in points, the noise verdict) and the sweeps' agreement; with several
projects (say, one per alternative setting tried), a last table compares them one line each.
The numbers are the summary's (`scratchnet.study.reproduction.distance`, computed once by the
evaluate stage against reference/study_numbers.yaml); this script only prints them.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from scratchnet.files import read_json  # noqa: E402
from scratchnet.study import evaluation, layout, reproduction  # noqa: E402


def entries_table(dist: reproduction.Distance) -> str:
    lines = [
        "| model | sweep | value | ours | study | ours − study | vs noise |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for e in dist.entries:
        ours = "not trained" if e.ours is None else evaluation.mean_std_text(e.ours.mean, e.ours.std)
        diff = "—" if e.diff is None else f"{100 * e.diff:+.2f} pt"
        noise = "diverged" if e.diverged else {None: "—", True: "beyond", False: "within"}[e.beyond_noise]
        lines.append(
            f"| {e.model} | {e.param} | {evaluation.value_text(e.value)} | {ours} | {e.study:.4f} | {diff} | {noise} |"
        )
    return "\n".join(lines)


def sweeps_table(summary: evaluation.Summary) -> str:
    lines = [
        "| model | sweep | our best | study's best | best agrees | our trend | study's trend |",
        "| --- | --- | ---: | ---: | --- | --- | --- |",
    ]
    for model, sweep in summary.sweeps():
        if (c := sweep.study) is not None:
            lines.append(
                f"| {model} | {sweep.param} | {evaluation.value_text(c.ours_best)} | "
                f"{evaluation.value_text(c.study_best)} | {c.best_agrees} | {c.ours_trend.kind} | {c.study_trend.kind} |"
            )
    return "\n".join(lines)


def headline(name: str, dist: reproduction.Distance) -> str:
    """| run | mean |diff| | worst | beyond noise | diverged | sweeps agreeing (best, trend) |"""
    if dist.mean_abs is None:
        return f"| {name} | — | — | — | {len(dist.diverged)} | 0, 0 |"
    w = dist.worst
    return (
        f"| {name} | {100 * dist.mean_abs:.2f} pt over {dist.compared} | {100 * w.diff:+.2f} pt "
        f"({w.model} {w.param}={evaluation.value_text(w.value)}) | {len(dist.beyond_noise)} | {len(dist.diverged)} | "
        f"{dist.agree_best} of {dist.sweeps}, {dist.agree_trend} of {dist.sweeps} |"
    )


def main(projects: list[str]) -> None:
    rows = []
    for project in projects or ["."]:
        path = Path(project) / layout.ABLATION_SUMMARY_JSON
        if not path.exists():
            sys.exit(f"reproduction_distance: {path} is missing; run `dvc repro evaluate` in {project} first")
        summary = evaluation.summary_from_json(read_json(path))
        print(f"## {path}\n\n{entries_table(summary.distance)}\n\n{sweeps_table(summary)}\n")
        rows.append(headline(project, summary.distance))
    print("| run | mean abs(ours − study) | worst | beyond noise | diverged | sweeps agreeing (best, trend) |")
    print("| --- | ---: | --- | ---: | ---: | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
