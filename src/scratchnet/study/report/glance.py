"""The report's first two sections: the answer ("Results at a glance") and the reproduction's
distance from the study, both computed from `reproduction.distance` and the artifacts."""

from __future__ import annotations

from scratchnet.study import analysis
from scratchnet.study.params import MODELS
from scratchnet.study.plots import study as plots
from scratchnet.study.report.artifacts import Artifacts
from scratchnet.study.report.document import Block, Bullets, Heading, Paragraph, Table
from scratchnet.study.report.sections import success_at
from scratchnet.study.report.text import (MODEL_NAMES, PART_TITLES, acc_text, figure, mean_std_text, pct,
                                          points, value_text)
from scratchnet.study.reproduction import Distance, Entry, study_rows


def entry_name(e: Entry) -> str:
    return f"{e.model} `{e.param}={value_text(e.value)}`"


def yes_no(flag: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "—" if flag is None else yes if flag else no


def distance_sentence(dist: Distance) -> str:
    """The reproduction in one sentence: mean and worst distance, noise, agreement."""
    if dist.mean_abs is None:
        return "No ablation entry of the study has a result here to compare with."
    worst = dist.worst
    over = (f"Over the study's {len(dist.entries)} ablation entries" if len(dist.compared) == len(dist.entries)
            else f"Over the {len(dist.compared)} of the study's {len(dist.entries)} ablation entries that have a result here")
    text = (f"{over}, ours is on average **{100 * dist.mean_abs:.2f} points** from the study's test "
            f"accuracy (worst: {entry_name(worst)}, {points(worst.diff)}); "
            f"{len(dist.beyond_noise)} {'differs' if len(dist.beyond_noise) == 1 else 'differ'} by more than "
            "our seed noise. "
            f"**{dist.sweeps_agreeing_best} of {len(dist.sweeps)} sweeps** agree with the study on the best "
            f"value (or are within our noise of it), {dist.sweeps_agreeing_trend} on the trend's direction.")
    if dist.diverged:
        text += (" **Diverged here where the study trained**: "
                 + ", ".join(entry_name(e) for e in dist.diverged) + ".")
    return text


def baseline_noise(diff: float, std: float | None, n_converged: int) -> str:
    """Whether a baseline's gap to the study is within NOISE_FACTOR x our seed std."""
    if std is None or n_converged < 2:
        return "no noise estimate"
    noise = analysis.NOISE_FACTOR * std
    return (f"{'within' if abs(diff) <= noise else 'beyond'} noise "
            f"({analysis.NOISE_FACTOR:g} × std = {100 * noise:.2f} pt)")


def baselines_table(art: Artifacts) -> Table:
    rows = []
    for model in MODELS:
        res = art.models[model]
        ours, study = res.train["seeds"][0]["test_acc"], float(art.study[model]["test_acc"])
        seeds = res.baseline
        rows.append([
            MODEL_NAMES[model],
            "diverged" if ours is None else pct(ours),
            f"{mean_std_text(seeds.mean, seeds.std)} ({seeds.n_seeds} seeds)",
            pct(study),
            "—" if ours is None else points(ours - study),
            "—" if ours is None else baseline_noise(ours - study, seeds.std, seeds.n_converged),
        ])
    return Table(["baseline", "ours: test acc", "ours over seeds (ablation epochs)", "study", "ours − study",
                  "vs our seed noise"], rows, align="llrrrl")


def verdicts_table(art: Artifacts, dist: Distance) -> Table:
    """One row per sweep: our best value, the noise verdict, the study's best, agreement."""
    agreement = {(s.model, s.param): s for s in dist.sweeps}
    rows = []
    for model in MODELS:
        for param, sweep in art.models[model].sweeps.items():
            verdict = analysis.judge(sweep)
            theirs = analysis.judge(study_rows(art.study, model, param))
            agree = agreement.get((model, param))
            effect = ("all diverged" if verdict.best is None else "no noise estimate" if verdict.within_noise is None
                      else "within noise" if verdict.within_noise else "beyond noise")
            rows.append([
                f"{model} `{param}`",
                "—" if verdict.best is None else f"{value_text(verdict.best.value)} ({acc_text(verdict.best.mean)})",
                effect,
                "—" if theirs.best is None else f"{value_text(theirs.best.value)} ({acc_text(theirs.best.mean)})",
                yes_no(agree.best_agrees if agree else None),
                yes_no(agree.trend_agrees if agree else None),
            ])
    return Table(["sweep", "our best (mean)", "our effect", "study's best", "same best", "same trend"],
                 rows, align="llllll")


def attack_sentence(art: Artifacts) -> str:
    attack, study = art.attack, art.study.get("attack", {})
    if attack.example is None:
        return "**Attack**: not run (`dvc repro attack`)."
    ex = attack.example
    steps = int(ex["steps"])
    text = (f"**Attack**: one {ex['true_class']} test image pushed toward {ex['target_class']} by {steps} "
            f"targeted step{'s' if steps != 1 else ''} (L2 = {float(ex['l2']):.1f} pixel units; the study's: {study.get('l2', '?')}) is now "
            f"classified as {ex['pred_after']}: " + ("**fooled**." if ex["fooled"] else "**not fooled**."))
    at = None
    if attack.sweep is not None and study.get("l2") is not None:
        at = success_at(attack.sweep, "l2", "targeted", float(study["l2"]))
    if at is not None:
        text += (f" At the study's budget (L2 ε = {at['epsilon']:g}, the grid's first at or above "
                 f"{float(study['l2']):g}) the targeted attack fools {pct(at['success_rate'])} of {at['n']} test images.")
    return text


def reproduction_figure(dist: Distance) -> Block:
    shown = [e for e in dist.compared]
    fig = plots.reproduction_figure(
        [e.study for e in shown], [e.ours.mean for e in shown], [e.ours.std or 0.0 for e in shown],
        [e.model for e in shown], [e.beyond_noise is True for e in shown])
    return figure("reproduction.png", fig,
                  "Every ablation entry of the study: its test accuracy (x) against ours (y, mean ± std over seeds). "
                  "On the diagonal ours equals the study's; hollow markers differ by more than our seed noise.")


def glance_section(art: Artifacts, dist: Distance) -> list[Block]:
    return [
        Heading(2, PART_TITLES["glance"]),
        Paragraph(distance_sentence(dist)),
        baselines_table(art),
        verdicts_table(art, dist),
        Paragraph(attack_sentence(art)),
        reproduction_figure(dist),
    ]


def free_choices(params: dict) -> str:
    """What the study does not state, as this run chose it (params.yaml)."""
    parts = []
    for model in MODELS:
        section = params[model]
        parts.append(f"{MODEL_NAMES[model]}: input scaling `{section['normalize']}`, initialisation `{section['init']}`"
                     + (f" (scale {value_text(section['init_scale'])})" if section["init"] != "he" else ""))
    return ("**Free choices.** The study states neither its input scaling nor its initialisation; this run "
            "uses " + "; ".join(parts) + ". They are set once per model for all its entries (never per entry); "
            "the alternatives tried and their distances are in `bench/RESULTS.md`, measured with "
            "`bench/reproduction_distance.py`.")


def untrained_sweeps(dist: Distance) -> list[str]:
    """Sweeps of the study of which this run trained no value: 'twolayer `lr` (4 values)'."""
    trained = {(s.model, s.param) for s in dist.sweeps}
    counts: dict[tuple[str, str], int] = {}
    for e in dist.entries:
        if (e.model, e.param) not in trained:
            counts[(e.model, e.param)] = counts.get((e.model, e.param), 0) + 1
    return [f"{m} `{p}` ({n} values)" for (m, p), n in counts.items()]


def entries_table(dist: Distance) -> Table:
    """One row per entry of the sweeps this run trained (whole untrained sweeps are listed apart)."""
    trained = {(s.model, s.param) for s in dist.sweeps}
    rows = [[e.model, f"`{e.param}`", value_text(e.value),
             "not trained" if e.ours is None else mean_std_text(e.ours.mean, e.ours.std),
             acc_text(e.study), "—" if e.diff is None else points(e.diff),
             "diverged" if e.diverged else yes_no(e.beyond_noise, "**beyond**", "within")]
            for e in dist.entries if (e.model, e.param) in trained]
    return Table(["model", "sweep", "value", "ours (mean ± std)", "study", "ours − study", "vs noise"], rows,
                 align="lllrrrl")


def sweeps_table(dist: Distance) -> Table:
    rows = [[s.model, f"`{s.param}`", value_text(s.ours_best), value_text(s.study_best), yes_no(s.best_agrees),
             s.ours_trend.kind, s.study_trend.kind, yes_no(s.trend_agrees)] for s in dist.sweeps]
    return Table(["model", "sweep", "our best", "study's best", "agree", "our trend", "study's trend", "agree"],
                 rows, align="llrrllll")


def distance_section(art: Artifacts, dist: Distance) -> list[Block]:
    items = []
    if dist.mean_abs is not None:
        items.append(f"Mean |ours − study| over {len(dist.compared)} entries: **{100 * dist.mean_abs:.2f} pt**; "
                     f"worst {entry_name(dist.worst)}: {points(dist.worst.diff)}.")
    items.append(f"Beyond our noise: {len(dist.beyond_noise)} of {len(dist.compared)}"
                 + (": " + ", ".join(f"{entry_name(e)} ({points(e.diff)})" for e in dist.beyond_noise)
                    if dist.beyond_noise else "") + ".")
    items.append("Diverged here where the study trained: "
                 + (", ".join(entry_name(e) for e in dist.diverged) if dist.diverged else "none") + ".")
    untrained = untrained_sweeps(dist)
    if untrained:
        items.append("Sweeps of the study not run here (`ablate` in params.yaml): " + ", ".join(untrained) + ".")
    trained = {(s.model, s.param) for s in dist.sweeps}
    missing = [e for e in dist.entries if e.ours is None and (e.model, e.param) in trained]
    if missing:
        items.append("Values of the study not trained here: " + ", ".join(entry_name(e) for e in missing) + ".")
    items.append(f"Sweeps agreeing with the study on the best value (or within our noise of it): "
                 f"{dist.sweeps_agreeing_best} of {len(dist.sweeps)}; on the trend's direction: "
                 f"{dist.sweeps_agreeing_trend} of {len(dist.sweeps)}.")
    return [
        Heading(2, PART_TITLES["distance"]),
        Paragraph("Every row of the study's ablation tables (each includes the baseline's value) beside ours. "
                  "The study ran each value once, so its number carries about one seed's noise: an entry is "
                  f"**beyond noise** when |ours − study| exceeds {analysis.NOISE_FACTOR:g} × our pooled seed std "
                  "over its sweep. A sweep agrees on the best value when, over the values both tables have, our "
                  "best is the study's or our mean at the study's best is within that noise of our best; it "
                  "agrees on the trend when both rise, fall, peak (at the same value) or dip alike."),
        Bullets(items),
        entries_table(dist),
        sweeps_table(dist),
        Paragraph(free_choices(art.params)),
    ]
