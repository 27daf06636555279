"""The report's "Which choices make the network harder to fool?": every sweep's robustness.

Renders what the evaluate stage's summary holds (`Sweep.robustness`, `Summary.robustness_ranking`,
judged in analysis.robustness_of by the accuracy tables' noise rule): per sweep a table, a
sentence and a figure of accuracy beside targeted attack success; first, the sweeps ranked by
how much they move that success. The words are pure functions of those numbers.
"""

from __future__ import annotations

from scratchnet.attacks import NORMS
from scratchnet.study.analysis import NOISE_RULE, Effect, Robustness, same_value
from scratchnet.study.evaluation import Sweep, mean_std_text, value_text
from scratchnet.study.plots import study as plots
from scratchnet.study.report import PART_TITLES, Artifacts
from scratchnet.study.report.document import Block, Bullets, Heading, Paragraph, Table
from scratchnet.study.report.sections import baseline_value, figure, file_stem, noise_rule, row_label

FINDING_WORDS = {  # Robustness.finding -> the sweep's verdict as the report prints it
    "more robust": "harder to fool",
    "less robust": "easier to fool",
    "both": "harder to fool at some values, easier at others",
    "within noise": "within noise",
    "all diverged": "all diverged",
    "no claim": "no claim",
    None: "not measured",
}


def finding_words(r: Robustness | None) -> str:
    return FINDING_WORDS[None if r is None else r.finding]


EFFECT_PHRASES = {  # (Effect.fooled, Effect.accuracy), each change beyond noise -> what the value does
    (-1, 1): "harder to fool and more accurate",
    (-1, 0): "harder to fool at no cost in accuracy",
    (-1, None): "harder to fool",
    (-1, -1): "trades accuracy for robustness",
    (1, -1): "easier to fool and less accurate",
    (1, 0): "easier to fool at no gain in accuracy",
    (1, None): "easier to fool",
    (1, 1): "trades robustness for accuracy",
    (0, 1): "changes accuracy only",
    (0, -1): "changes accuracy only",
    (0, 0): "changes neither beyond noise",
    (0, None): "changes neither beyond noise",
}


def effect_phrase(e: Effect) -> str:
    """What one value does against the baseline; no claim without a judged targeted success."""
    return "no claim" if e.fooled is None else EFFECT_PHRASES[e.fooled, e.accuracy]


def robustness_sentence(param: str, r: Robustness | None, factor: float) -> str:
    """The sweep's robustness in a sentence or two, from its verdict and each value's effect."""
    head = f"**{finding_words(r).capitalize()}**"
    if r is None:
        return (
            f"{head}: the runs of this sweep carry no robustness (`robustness.enabled` is off in "
            "params.yaml, or they ran before it was measured)."
        )
    v = r.verdict
    if v.best is None:
        return f"{head}: every run of this sweep diverged, so there is no network to attack."
    if r.finding == "no claim":
        return (
            f"{head}: targeted success spans {v.spread:.4f}, but "
            + (
                "with fewer than two measured seeds per value there is no seed-to-seed noise estimate"
                if v.within_noise is None
                else "the baseline has no measured run to compare with"
            )
            + ", so no claim is made."
        )
    rule = noise_rule(v, factor)
    if r.finding == "within noise":
        return (
            f"{head}: targeted success spans {v.spread:.4f} across the values of `{param}`, "
            + (
                f"not more than {rule}"
                if v.within_noise
                else f"more than {rule}, yet no value differs from the baseline by more than that"
            )
            + f"; no value of `{param}` makes the network harder or easier to fool beyond seed noise."
        )
    groups: dict[str, list[str]] = {}
    for e in r.effects:
        groups.setdefault(effect_phrase(e), []).append(f"`{param}={value_text(e.value)}`")
    return (
        f"{head}: targeted success spans {v.spread:.4f}, more than {rule}. Against the baseline: "
        + "; ".join(f"{', '.join(values)}: {phrase}" for phrase, values in groups.items())
        + "."
    )


def sweep_blocks(art: Artifacts, model: str, sweep: Sweep, budget: float) -> list[Block]:
    m, param, r = art.summary.models[model], sweep.param, sweep.robustness
    blocks: list[Block] = [
        Heading(3, f"{m.title}: `{param}`"),
        Paragraph(robustness_sentence(param, r, art.summary.noise_factor)),
    ]
    if r is None:
        return blocks
    effects = iter(r.effects)  # one per row but the baseline's, in the rows' order
    body = [
        [
            row_label(a),
            mean_std_text(a.mean, a.std),
            mean_std_text(f.mean, f.std),
            "—" if b.mean is None else f"{b.mean:.1f} ± {b.std:.1f}",
            f"{f.n_converged} of {f.n_seeds}",
            "baseline" if a.is_baseline else effect_phrase(next(effects)),
        ]
        for a, f, b in zip(sweep.rows, r.fooled, r.budget)
    ]
    fig = plots.robustness_figure(
        param,
        [a.value for a in sweep.rows],
        ([a.mean for a in sweep.rows], [a.std for a in sweep.rows]),
        ([f.mean for f in r.fooled], [f.std for f in r.fooled]),
        budget=budget,
        baseline=baseline_value(sweep),
        title=f"{m.title}: accuracy and robustness vs {param}",
    )
    return blocks + [
        Table(
            [param, "test acc", "targeted success", "median fooling budget", "seeds measured", "against the baseline"],
            body,
            align="lrrrrl",
        ),
        figure(
            f"robust_{model}_{file_stem(param)}.png",
            fig,
            f"{m.title}: test accuracy (left) and targeted attack success at budget {budget:g} (right, lower is "
            f"harder to fool) vs {param}, mean ± std over seeds.",
        ),
    ]


def robustness_section(art: Artifacts) -> list[Block]:
    summary, section = art.summary, art.params["robustness"]  # load_params requires every key
    budget, norm = float(section["budget"]), section["norm"]
    study = summary.study.get("attack", {}).get("l2")
    studys = " (the study's single step)" if norm == "l2" and study is not None and same_value(budget, study) else ""
    blocks: list[Block] = [Heading(2, PART_TITLES["robustness"])]
    sweeps = summary.sweeps()
    if not any(s.robustness is not None for _, s in sweeps):
        return blocks + [
            Paragraph(
                "**Robustness was not measured**: no run of the sweeps carries it (`robustness.enabled` in "
                "params.yaml turns it on; `dvc repro` then measures every run without retraining it)."
            )
        ]
    blocks += [
        Paragraph(
            f"Beyond the study: every trained network of every sweep is attacked right after training, on "
            f"the same {section['sample_size']} test images (those it classifies correctly), by "
            f"targeted PGD ({section['steps']} steps) with an {NORMS[norm].label} budget of {budget:g} pixel "
            f"units{studys}. "
            "**Targeted success** is the share it fools (lower: harder to fool); the **median fooling "
            "budget** is the median over those images of the smallest budget of a short grid that fools "
            f"the image (pixel units; higher: harder to fool). Reading rule, as for accuracy: {NOISE_RULE}; "
            "a value changes a number when its mean differs from the baseline's by more than that noise."
        ),
        Paragraph(
            "**Sweeps by how much they move targeted success** (beyond noise first, then by spread):"
            if summary.robustness_ranking
            else "No sweep has a robustness spread to rank."
        ),
    ]
    if summary.robustness_ranking:
        rows = []
        for i, (model, param) in enumerate(summary.robustness_ranking, 1):
            r = summary.models[model].sweeps[param].robustness
            assert r is not None  # robustness_ranking only ranks sweeps that have one
            rows.append([str(i), f"{model} `{param}`", f"{r.verdict.spread:.4f}", finding_words(r)])
        blocks.append(Table(["rank", "sweep", "spread of targeted success", "robustness"], rows, align="rlrl"))
    unranked = [
        f"{m} `{s.param}` ({finding_words(s.robustness)})"
        for m, s in sweeps
        if (m, s.param) not in summary.robustness_ranking
    ]
    if unranked:
        blocks.append(Bullets(["Not ranked: " + ", ".join(unranked) + "."]))
    for model, sweep in sweeps:
        blocks += sweep_blocks(art, model, sweep, budget)
    return blocks
