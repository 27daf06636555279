"""The report's sections, each a plain function from the artifacts to a list of blocks.

Every sentence that interprets a result renders a number or a verdict of the evaluate stage's
summary (`evaluation.Summary`), never computes one: the glance table and a sweep's section print
the same agreement, the same noise verdict, the same trend. Figures are blocks like any other;
the report collects them from the blocks.
"""

from __future__ import annotations

import math
from collections import defaultdict

from scratchnet.study import layout
from scratchnet.study.analysis import NOISE_RULE, SweepRow, Verdict, describe_trend, same_value, scored_mean
from scratchnet.study.attack_study import example_sentence
from scratchnet.study.evaluation import ModelSummary, Summary, Sweep, acc_text, mean_std_text, pct, points, value_text
from scratchnet.study.params import entry_name
from scratchnet.study.plots import png_bytes
from scratchnet.study.plots import study as plots
from scratchnet.study.report import PART_TITLES, TITLE, Artifacts
from scratchnet.study.report.document import Block, Bullets, Figure, FigureRow, Heading, Paragraph, Table, table_of
from scratchnet.study.reproduction import Comparison, Distance, Entry, compared_diff


def figure(name: str, fig, caption: str) -> Figure:
    """A matplotlib figure as the report's figure block, rendered to PNG once."""
    return Figure(name, png_bytes(fig), caption)


def file_stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def kv_table(pairs, key_header: str) -> Table:
    return Table([key_header, "value"], [[f"`{k}`", value_text(v)] for k, v in pairs], align="ll")


def yes_no(flag: bool | None, yes: str = "yes", no: str = "no") -> str:
    return "—" if flag is None else yes if flag else no


def row_label(row: SweepRow) -> str:
    return value_text(row.value) + (" (baseline)" if row.is_baseline else "")


def baseline_value(sweep: Sweep):
    """The baseline's value of the swept parameter; None when the sweep does not hold it."""
    return next((r.value for r in sweep.rows if r.is_baseline), None)


def noise_rule(v: Verdict, factor: float) -> str:
    """The noise a spread is judged against, with its numbers: "2 × the pooled seed std (…)"."""
    return f"{factor:g} × the pooled seed std ({factor:g} × {v.pooled_std:.4f} = {v.noise:.4f})"


def entry_label(e: Entry) -> str:
    """How the report names one entry of the study's tables: 'softmax `lr=0.05`'."""
    return f"{e.model} `{e.param}={value_text(e.value)}`"


# The words of each verdict, one function each: the glance table and the sections both call them.


def effect_words(v: Verdict) -> str:
    if v.best is None:
        return "all diverged"
    return "no noise estimate" if v.within_noise is None else "within noise" if v.within_noise else "beyond noise"


def agreement_sentence(c: Comparison) -> str:
    if c.best_agrees is None:
        return "Fewer than two values with a result are shared with the study: no claim on the best value."
    if c.best_agrees:
        return (
            f"Ours agrees with the study on the best value (over the shared values ours is best at "
            f"{value_text(c.ours_best)}, the study at {value_text(c.study_best)}: the same, or within our noise)."
        )
    return (
        f"Ours finds a different best value: {value_text(c.ours_best)} where the study has "
        f"{value_text(c.study_best)}, beyond our noise."
    )


# ------------------------------------------------------------------------------ the opening


def distance_sentence(dist: Distance) -> str:
    """The reproduction in one sentence: mean and worst distance, noise, agreement."""
    if dist.mean_abs is None:
        return "No ablation entry of the study has a result here to compare with."
    assert dist.worst is not None  # a mean_abs: some entry was compared
    total = len(dist.entries)
    over = (
        f"Over the study's {total} ablation entries"
        if dist.compared == total
        else f"Over the {dist.compared} of the study's {total} ablation entries that have a result here"
    )
    n = len(dist.beyond_noise)
    text = (
        f"{over}, ours is on average **{100 * dist.mean_abs:.2f} points** from the study's test "
        f"accuracy (worst: {entry_label(dist.worst)}, {points(compared_diff(dist.worst))}); "
        f"{n} {'differs' if n == 1 else 'differ'} by more than our seed noise. "
        f"**{dist.agree_best} of {dist.sweeps} sweeps** agree with the study on the best "
        f"value (or are within our noise of it), {dist.agree_trend} on the trend's direction."
    )
    if dist.diverged:
        text += " **Diverged here where the study trained**: " + ", ".join(entry_label(e) for e in dist.diverged) + "."
    return text


def baseline_noise_words(m: ModelSummary, factor: float) -> str:
    if m.diff is None:
        return "—"
    if m.within_noise is None:
        return "no noise estimate"
    assert m.noise is not None  # within_noise was judged against it
    return f"{'within' if m.within_noise else 'beyond'} noise ({factor:g} × std = {100 * m.noise:.2f} pt)"


def baselines_table(summary: Summary) -> Table:
    return table_of(
        summary.models.values(),
        [
            ("baseline", "l", lambda m: m.title),
            ("ours: test acc", "l", lambda m: "diverged" if m.test_acc is None else pct(m.test_acc)),
            (
                "ours over seeds (ablation epochs)",
                "r",
                lambda m: f"{mean_std_text(m.baseline.mean, m.baseline.std)} ({m.baseline.n_seeds} seeds)",
            ),
            ("study", "r", lambda m: "—" if m.study_test_acc is None else pct(m.study_test_acc)),
            ("ours − study", "r", lambda m: "—" if m.diff is None else points(m.diff)),
            ("vs our seed noise", "l", lambda m: baseline_noise_words(m, summary.noise_factor)),
        ],
    )


def verdicts_table(summary: Summary) -> Table:
    """One row per sweep: our best value, the noise verdict, the study's best, agreement."""

    def best(p) -> str:
        return "—" if p is None else f"{value_text(p.value)} ({acc_text(p.mean)})"

    rows = [
        [
            f"{model} `{s.param}`",
            best(s.verdict.best),
            effect_words(s.verdict),
            best(s.study and s.study.study.best),
            yes_no(s.study and s.study.best_agrees),
            yes_no(s.study and s.study.trend_agrees),
        ]
        for model, s in summary.sweeps()
    ]
    return Table(
        ["sweep", "our best (mean)", "our effect", "study's best", "same best", "same trend"], rows, align="llllll"
    )


def at_study_budget(sweep: list[dict] | None, mode: str, study: dict) -> dict | None:
    """The attack sweep's L2 row in `mode` at the grid's smallest budget at or above the study's
    step (study["l2"], pixel units); None without a sweep, a study step or such a budget."""
    if sweep is None or study.get("l2") is None:
        return None
    rows = sorted((r for r in sweep if r["norm"] == "l2" and r["mode"] == mode), key=lambda r: r["epsilon"])
    return next((r for r in rows if r["epsilon"] >= float(study["l2"])), None)


def attack_sentence(art: Artifacts) -> str:
    ex, study = art.attack.example, art.summary.study.get("attack", {})
    if ex is None:
        return "**Attack**: not run (`dvc repro attack`)."
    text = f"**Attack**: {example_sentence(ex)} " + claim_sentence(ex)
    at = at_study_budget(art.attack.sweep, "targeted", study)
    if at is not None:
        text += (
            f" At the study's budget (L2 ε = {at['epsilon']:g}, the grid's first at or above "
            f"{float(study['l2']):g}) the targeted attack fools {pct(at['success_rate'])} of {at['n']} test images."
        )
    return text


def entries_table(dist: Distance) -> Table:
    """One row per entry of the sweeps this run trained (whole untrained sweeps are listed apart)."""
    return table_of(
        [e for e in dist.entries if e.diff is not None or e.diverged or e in dist.missing],
        [
            ("model", "l", lambda e: e.model),
            ("sweep", "l", lambda e: f"`{e.param}`"),
            ("value", "l", lambda e: value_text(e.value)),
            (
                "ours (mean ± std)",
                "r",
                lambda e: "not trained" if e.ours is None else mean_std_text(e.ours.mean, e.ours.std),
            ),
            ("study", "r", lambda e: acc_text(e.study)),
            ("ours − study", "r", lambda e: "—" if e.diff is None else points(e.diff)),
            ("vs noise", "l", lambda e: "diverged" if e.diverged else yes_no(e.beyond_noise, "**beyond**", "within")),
        ],
    )


def free_choices(params: dict, summary: Summary) -> str:
    """What the study does not state, as this run chose it (params.yaml)."""
    parts = [
        f"{m.title}: input scaling `{params[name]['normalize']}`, initialisation `{params[name]['init']}`"
        + (f" (scale {value_text(params[name]['init_scale'])})" if params[name]["init"] != "he" else "")
        for name, m in summary.models.items()
    ]
    return (
        "**Free choices.** The study states neither its input scaling nor its initialisation; this run "
        "uses " + "; ".join(parts) + ". They are set once per model for all its entries (never per entry); "
        "the alternatives tried and their distances are in `bench/RESULTS.md`, measured with "
        "`bench/reproduction_distance.py`."
    )


def opening(art: Artifacts) -> list[Block]:
    """The title, the answer ("Results at a glance") and the distance from the study."""
    summary, dist = art.summary, art.summary.distance
    shown = [(e, o) for e in dist.entries if e.diff is not None and (o := e.ours) is not None]  # a diff has ours
    fig = plots.reproduction_figure(
        [e.study for e, _ in shown],
        [scored_mean(o) for _, o in shown],
        [o.std or 0.0 for _, o in shown],
        [e.model for e, _ in shown],
        [e.beyond_noise is True for e, _ in shown],
    )
    items = []
    if dist.mean_abs is not None:
        assert dist.worst is not None  # a mean_abs: some entry was compared
        items.append(
            f"Mean |ours − study| over {dist.compared} entries: **{100 * dist.mean_abs:.2f} pt**; "
            f"worst {entry_label(dist.worst)}: {points(compared_diff(dist.worst))}."
        )
    beyond = ", ".join(f"{entry_label(e)} ({points(compared_diff(e))})" for e in dist.beyond_noise)
    items.append(f"Beyond our noise: {len(dist.beyond_noise)} of {dist.compared}" + (f": {beyond}." if beyond else "."))
    diverged = ", ".join(entry_label(e) for e in dist.diverged) or "none"
    items.append(f"Diverged here where the study trained: {diverged}.")
    if dist.untrained_sweeps:
        items.append(
            "Sweeps of the study not run here (`ablate` in params.yaml): " + ", ".join(dist.untrained_sweeps) + "."
        )
    if dist.missing:
        items.append("Values of the study not trained here: " + ", ".join(entry_label(e) for e in dist.missing) + ".")
    items.append(
        f"Sweeps agreeing with the study on the best value (or within our noise of it): "
        f"{dist.agree_best} of {dist.sweeps}; on the trend's direction: {dist.agree_trend} of {dist.sweeps}."
    )
    compared = [(m, s) for m, s in summary.sweeps() if s.study is not None]
    return [
        Heading(1, TITLE),
        Paragraph(
            f"A reproduction of the study “{summary.study['title'].strip()}” (its text: "
            f"`reference/study-report.txt`; its numbers as data: `{layout.STUDY_NUMBERS}`). Rebuilt by "
            "the `report` stage from the pipeline's artifacts: every number and every sentence of "
            "interpretation below is the evaluate stage's summary (`"
            f"{layout.ABLATION_SUMMARY_JSON}`) rendered. Edit `params.yaml` and run `dvc repro` to "
            "rebuild it; do not edit it by hand."
        ),
        Heading(2, PART_TITLES["glance"]),
        Paragraph(distance_sentence(dist)),
        baselines_table(summary),
        verdicts_table(summary),
        Paragraph(attack_sentence(art)),
        figure(
            "reproduction.png",
            fig,
            "Every ablation entry of the study: its test accuracy (x) against ours (y, mean ± std over seeds). "
            "On the diagonal ours equals the study's; hollow markers differ by more than our seed noise.",
        ),
        Heading(2, PART_TITLES["distance"]),
        Paragraph(
            "Every row of the study's ablation tables (each includes the baseline's value) beside ours. "
            "The study ran each value once, so its number carries about one seed's noise: an entry is "
            f"**beyond noise** when |ours − study| exceeds {summary.noise_factor:g} × our pooled seed std "
            "over its sweep. **The one agreement rule** (this table, the glance table and every sweep's "
            "section print the same verdict): a sweep agrees on the best value when, over the values both "
            "tables have, our best is the study's or our mean at the study's best is within that noise of "
            "our best; it agrees on the trend when both rise, fall, peak (at the same value) or dip alike."
        ),
        Bullets(items),
        entries_table(dist),
        Table(
            ["model", "sweep", "our best", "study's best", "agree", "our trend", "study's trend", "agree"],
            [
                [
                    m,
                    f"`{s.param}`",
                    value_text(s.study.ours_best),
                    value_text(s.study.study_best),
                    yes_no(s.study.best_agrees),
                    s.study.ours_trend.kind,
                    s.study.study_trend.kind,
                    yes_no(s.study.trend_agrees),
                ]
                for m, s in compared
            ],
            align="llrrllll",
        ),
        Paragraph(free_choices(art.params, summary)),
    ]


# -------------------------------------------------------------------------------------- part 1


def fit_sentences(fit: dict, study_lr: float | None) -> str:
    """What gradient descent did: its lr against the study's, its gap to the optimum."""
    lr, steps = float(fit["lr"]), int(fit["steps"])
    losses = [float(x) for x in fit["losses"]]
    optimum, final = float(fit["optimum_loss"]), float(fit["final_loss"])
    if study_lr is None:
        theirs = "."
    else:
        theirs = " — the study's own choice." if same_value(lr, study_lr) else f"; the study used lr = {study_lr:g}."
    sentences = [f"Gradient descent ran {steps} steps with learning rate lr = {lr:g}{theirs}"]
    if not math.isfinite(final):
        sentences.append("The loss did not stay finite: gradient descent diverged at this learning rate.")
        return " ".join(sentences)
    gap = final - optimum
    rel = gap / optimum if optimum > 0 else float("inf")
    sentences.append(
        f"The loss fell from {losses[0]:.6g} to {final:.6g}; the closed-form least-squares optimum "
        f"is {optimum:.6g}, so gradient descent ended {gap:.3g} above it"
        + (f" ({100 * rel:.2f}% of the optimum)." if math.isfinite(rel) else ".")
    )
    rises = sum(1 for a, b in zip(losses, losses[1:]) if b > a)
    sentences.append(
        "The loss decreased at every step." if rises == 0 else f"The loss rose at {rises} of {len(losses) - 1} steps."
    )
    return " ".join(sentences)


def fit_section(art: Artifacts) -> list[Block]:
    fit = art.fit
    problem, lr = fit["problem"], float(fit["lr"])
    fig = plots.fit_figure(
        [float(x) for x in fit["losses"]],
        float(fit["optimum_loss"]),
        lr,
        fit["x"],
        fit["y"],
        fit["fitted"],
        fit["optimum_fitted"],
    )
    return [
        Heading(2, PART_TITLES["fit"]),
        Paragraph(f"**Problem.** {problem['description']}"),
        kv_table(
            [(k, v) for k, v in problem.items() if k != "description" and not isinstance(v, (dict, list))],
            "problem parameter",
        ),
        Paragraph(fit_sentences(fit, art.summary.study.get("fit", {}).get("lr"))),
        figure("fit.png", fig, f"Loss per step against the closed-form optimum (lr = {lr:g}), and the fitted curves."),
    ]


# ----------------------------------------------------------------------------------- the models


def stale_params(params: dict, model: str, config: dict) -> list[str]:
    """Where params.yaml (what trains next) differs from the trained baseline's config."""
    now = {**params[model], "epochs": params["train"]["epochs"][model]}
    return [
        f"`{k}` = {value_text(now[k])} in params.yaml, {value_text(config[k])} in the run"
        for k in now
        if k in config and not same_value(now[k], config[k])
    ]


def curve_sentences(curve: list[dict], record: dict) -> str:
    """The baseline's last epoch, train-validation gap, best epoch, lr schedule, divergence."""
    if not curve:
        return f"**The baseline run diverged** in epoch {record.get('diverged_epoch', '?')}: no epoch completed."
    last = curve[-1]
    best = max(curve, key=lambda r: r["val_acc"])
    gap = last["train_acc"] - last["val_acc"]
    side = "train above validation" if gap > 0 else "validation at or above train"
    text = (
        f"After the last epoch ({last['epoch']:g}) train accuracy is {acc_text(last['train_acc'])} and "
        f"validation accuracy {acc_text(last['val_acc'])}: a gap of {gap:.4f} ({side}). "
        f"Validation accuracy peaked at epoch {best['epoch']:g} ({acc_text(best['val_acc'])})."
    )
    first_lr, last_lr = curve[0].get("lr"), last.get("lr")
    if first_lr is not None and last_lr is not None:
        text += (
            f" The learning rate stayed at {first_lr:.3g}."
            if same_value(first_lr, last_lr)
            else f" The learning rate went from {first_lr:.3g} to {last_lr:.3g}."
        )
    if record.get("diverged"):
        text += f" **The baseline run diverged** in epoch {record.get('diverged_epoch')}."
    return text


def accuracy_sentences(m: ModelSummary, epochs: int, factor: float) -> str:
    """The baseline's test accuracy against the study's, and whether the gap is within our seed noise."""
    if m.test_acc is None:
        return "**Test accuracy**: none — the baseline run diverged." + (
            "" if m.study_test_acc is None else f" The study reported {pct(m.study_test_acc)}."
        )
    text = f"**Test accuracy: {pct(m.test_acc)}** (baseline run)"
    if m.diff is None:
        return text + "; the study did not have this model."
    assert m.study_test_acc is not None  # the diff is from it
    text += (
        f"; the study reported {pct(m.study_test_acc)}: ours is {abs(100 * m.diff):.2f} percentage points "
        f"{'above' if m.diff > 0 else 'below' if m.diff < 0 else 'equal to'} it."
    )
    if m.within_noise is not None:
        # judged against noise, a multiple of the baseline's std: so the baseline has a std and a mean
        assert m.noise is not None and m.baseline.mean is not None and m.baseline.std is not None
        text += (
            f" Over {m.baseline.n_converged} seeds the baseline ({epochs} epochs) gives {pct(m.baseline.mean)} ± "
            f"{100 * m.baseline.std:.2f} points: the difference from the study is "
            + ("within noise" if m.within_noise else "larger than the noise")
            + f" ({abs(100 * m.diff):.2f} vs {factor:g} × std = {100 * m.noise:.2f} points)."
        )
    return text


def verdict_sentences(param: str, v: Verdict, factor: float) -> list[str]:
    """Our sweep on its own: best and worst value, the noise verdict, the trend."""
    if v.best is None:
        return ["Every run of this sweep diverged; there is nothing to compare."]
    if v.spread == 0:
        items = [f"Every value gives the same mean test accuracy, {acc_text(v.best.mean)}."]
    else:
        assert v.worst is not None  # there is a best
        tied = f" (tied with {v.ties - 1} other value(s))" if v.ties > 1 else ""
        items = [
            f"Best: `{param}={value_text(v.best.value)}` with {mean_std_text(v.best.mean, v.best.std)}{tied}; "
            f"worst: `{param}={value_text(v.worst.value)}` with {mean_std_text(v.worst.mean, v.worst.std)}."
        ]
    if v.within_noise is None:
        items.append(
            f"The means span {v.spread:.4f}, but with fewer than two converged seeds per value "
            "there is no seed-to-seed noise estimate, so no claim is made on whether the spread is real."
        )
    else:
        rule = noise_rule(v, factor)
        items.append(
            f"**Within noise**: the means span {v.spread:.4f}, not more than {rule}; this sweep shows no "
            f"effect of `{param}` that seed-to-seed variation could not produce."
            if v.within_noise
            else f"**Beyond noise**: the means span {v.spread:.4f}, more than {rule}; `{param}` matters here."
        )
    items.append(
        "Trend: " + describe_trend(v.trend, param, value_text) + (" — but within noise." if v.within_noise else ".")
    )
    return items


def diverged_sentence(sweep: Sweep) -> str:
    names = [
        f"`{'baseline' if r.is_baseline else entry_name(sweep.param, r.value)}` seed {d.seed}"
        + (f" (epoch {d.epoch})" if d.epoch is not None else "")
        for r in sweep.rows
        for d in r.diverged
    ]
    return "Diverged runs: " + ", ".join(names) + "." if names else "No run of this sweep diverged."


def study_sentences(param: str, c: Comparison | None) -> list[str]:
    """Our sweep against the study's table: agreement, mean difference, the study's spread
    against our noise, values only the study ran, its own conclusion."""
    if c is None:
        return [f"The study has no table for `{param}`."]
    v = c.study
    assert v.best is not None  # the study's table has a number on every row
    items = [
        f"The study's table: best `{param}={value_text(v.best.value)}` ({acc_text(v.best.mean)}); "
        f"{describe_trend(v.trend, param, value_text)}. " + agreement_sentence(c)
    ]
    shared = [e for e in c.entries if e.diff is not None]
    if c.mean_diff is not None:
        items.append(
            f"On the {len(shared)} value(s) both tables share, ours is on average {abs(c.mean_diff):.4f} "
            f"{'above' if c.mean_diff > 0 else 'below' if c.mean_diff < 0 else 'equal to'} the study "
            f"(differences from {min(map(compared_diff, shared)):+.4f} to {max(map(compared_diff, shared)):+.4f})."
        )
    if v.within_noise is not None:
        items.append(
            f"The study's values span {v.spread:.4f} from one run per value; against our seed noise "
            f"({v.noise:.4f}) that spread is " + ("within noise." if v.within_noise else "larger than noise.")
        )
    only = [e for e in c.entries if e.ours is None]
    if only:
        items.append(
            "The study also reported "
            + ", ".join(f"`{param}={value_text(e.value)}` ({acc_text(e.study)})" for e in only)
            + ", not trained here."
        )
    if c.conclusion:
        items.append(f"The study concluded: “{c.conclusion.strip()}”")
    return items


def sweep_blocks(art: Artifacts, model: str, sweep: Sweep) -> list[Block]:
    m, param, rows = art.summary.models[model], sweep.param, sweep.rows
    entries = sweep.study.entries if sweep.study else []
    header = [param, "ours: test acc mean ± std", "n seeds"] + ([] if m.study is None else ["study", "ours − study"])
    body = []
    for r in rows:
        row = [
            row_label(r),
            mean_std_text(r.mean, r.std),
            str(r.n_seeds) + (f" ({r.n_diverged} diverged)" if r.n_diverged else ""),
        ]
        if m.study is not None:
            e = next((e for e in entries if same_value(e.value, r.value)), None)
            row += [acc_text(None if e is None else e.study), "—" if e is None or e.diff is None else f"{e.diff:+.4f}"]
        body.append(row)
    fig = plots.sweep_figure(
        param,
        [r.value for r in rows],
        [r.mean for r in rows],
        [r.std for r in rows],
        baseline=baseline_value(sweep),
        study={e.value: e.study for e in entries} or None,
        title=f"{m.title}: test accuracy vs {param}",
    )
    return [
        Heading(3, f"{m.title}: `{param}`"),
        Table(header, body),
        Bullets(
            verdict_sentences(param, sweep.verdict, art.summary.noise_factor)
            + [diverged_sentence(sweep)]
            + (study_sentences(param, sweep.study) if m.study is not None else [])
        ),
        figure(
            f"sweep_{model}_{file_stem(param)}.png",
            fig,
            f"{m.title}: test accuracy (mean ± std over seeds) vs {param}"
            + (", with the study's numbers as crosses." if entries else "."),
        ),
        Paragraph(
            f"In MLflow: the runs of this table carry the tag `scratchnet.in_sweep.{model}.{param}` = `true` "
            "(`make ui` prints the address that lists them)."
        ),
    ]


def model_section(art: Artifacts, model: str) -> list[Block]:
    m, run, params = art.summary.models[model], art.train[model], art.params
    record, config = run["seeds"][0], run["config"]
    epochs = params["ablate"]["epochs"][model]
    study = (m.study or {}).get("baseline", {})
    blocks: list[Block] = [
        Heading(2, m.part or f"Beyond the study: {m.title}"),
        Paragraph(
            f"**Baseline hyper-parameters** (seed {record.get('seed', '?')}; the ablations below ran "
            f"{epochs} epochs each"
            + ("" if m.study is None else f", the study's {m.study.get('ablation_epochs', '?')}")
            + "):"
        ),
        table_of(
            dict.fromkeys([*config, *study]),
            [("hyper-parameter", "l", lambda k: f"`{k}`"), ("ours", "r", lambda k: value_text(config.get(k)))]
            + ([] if m.study is None else [("study", "r", lambda k: value_text(study.get(k)))]),
        ),
    ]
    if stale := "; ".join(stale_params(params, model, config)):
        blocks.append(
            Paragraph(f"**params.yaml differs from the trained baseline**: {stale}. Run `dvc repro` to retrain.")
        )
    curve = record["history"]
    if curve:
        fig = plots.curve_figure(
            [r["epoch"] for r in curve],
            [r["train_acc"] for r in curve],
            [r["val_acc"] for r in curve],
            f"{m.title}: accuracy per epoch",
        )
        blocks.append(
            figure(
                f"curve_{model}.png", fig, f"{m.title}: train and validation accuracy after each epoch (baseline run)."
            )
        )
    blocks += [
        Paragraph(curve_sentences(curve, record)),
        Paragraph(accuracy_sentences(m, epochs, art.summary.noise_factor)),
        Heading(3, f"{m.title}: ablations"),
    ]
    if not m.sweeps:
        blocks.append(Paragraph("No ablation sweep is configured for this model (`ablate` in params.yaml)."))
    blocks.append(
        Paragraph(
            f"One hyper-parameter is changed from the baseline at a time; each value is trained with "
            f"{len(params['ablate']['seeds'])} seed(s) for {epochs} epochs. Reading rule: {NOISE_RULE}."
        )
    )
    for sweep in m.sweeps.values():
        blocks += sweep_blocks(art, model, sweep)
    return blocks


# -------------------------------------------------------------------------------------- part 4


def rounding_sentence(example: dict) -> str:
    """What saving the adversarial image as 8-bit pixels did to the attack's outcome."""
    if "fooled_after_uint8" not in example:
        return ""
    text = (
        " Saved as an 8-bit PNG (pixels rounded), the adversarial image is classified as "
        f"{example.get('pred_after_uint8', '?')}"
    )
    if example["fooled"]:
        return text + (": still fooled." if example["fooled_after_uint8"] else ": the rounding undoes the attack.")
    return text + (": the rounding makes it succeed." if example["fooled_after_uint8"] else ".")


def attack_example(example: dict, study: dict) -> list[Block]:
    before, after = example["probs_before"], example["probs_after"]
    true, target = example["true_class"], example["target_class"]
    steps = int(example["steps"])
    outcome = (
        "the attack succeeded: the network now sees the target class"
        if example["fooled"]
        else "the attack failed: the network does not predict the target class"
    )
    text = (
        f"Test image {example.get('index', '?')}, a **{true}** the network classified as "
        f"{example['pred_before']} (p = {before.get(example['pred_before'], float('nan')):.3f}), was pushed "
        f"toward **{target}** by {steps} step{'s' if steps != 1 else ''} of targeted gradient descent in the "
        f"{example['norm']} ball of radius ε = {float(example['epsilon']):g} pixel units. Afterwards it "
        f"predicts **{example['pred_after']}** (p = {after.get(example['pred_after'], float('nan')):.3f}): "
        f"{outcome}." + rounding_sentence(example)
    )
    l2, linf = float(example["l2"]), float(example["linf"])
    norms = (
        f"The perturbation measures L2 = {l2:.2f} and L∞ = {linf:.2f} in pixel units on [0, 255] over "
        f"all 3 × 32 × 32 values (an average of {l2 / math.sqrt(3072):.2f} per value)."
    )
    if study.get("l2") is not None:
        norms += (
            f" The study's single step moved its image by L2 = {study['l2']:g}; ours is "
            f"{l2 / float(study['l2']):.2f} × that."
        )
    probabilities = table_of(
        dict.fromkeys([*before, *after]),
        [
            ("class", "l", lambda c: f"{c}" + (" (true)" if c == true else " (target)" if c == target else "")),
            ("p before", "r", lambda c: f"{before.get(c, float('nan')):.4f}"),
            ("p after", "r", lambda c: f"{after.get(c, float('nan')):.4f}"),
        ],
    )
    return [Paragraph(text), Paragraph(norms), probabilities]


def success_sentences(sweep: list[dict], study: dict) -> list[str]:
    groups = defaultdict(list)
    for r in sweep:
        groups[(r["norm"], r["mode"])].append(r)
    items = []
    for (norm, mode), rows in groups.items():
        rows.sort(key=lambda r: r["epsilon"])
        reach = {q: next((r["epsilon"] for r in rows if r["success_rate"] >= q), None) for q in (0.5, 0.9)}
        top = rows[-1]
        if reach[0.5] is None:
            text = f"{norm}, {mode}: fewer than half of the images are fooled at every ε"
        else:
            text = f"{norm}, {mode}: half of the images are fooled from ε = {reach[0.5]:g}, " + (
                f"90% from ε = {reach[0.9]:g}" if reach[0.9] is not None else "90% at no ε of the grid"
            )
        text += f"; at the largest budget ε = {top['epsilon']:g}, {pct(top['success_rate'])} of {top['n']} images."
        at = at_study_budget(rows, mode, study) if norm == "l2" else None
        if at is not None:
            text += (
                f" At ε = {at['epsilon']:g}, the smallest budget of the grid at or above "
                f"the study's L2 ({float(study['l2']):g}), {pct(at['success_rate'])} are fooled."
            )
        items.append(text)
    return items


def claim_sentence(example: dict) -> str:
    """Whether the study's claim (its one step fooled its correctly classified image) holds here."""
    if example["fooled_count"] == 0:
        return "**The study's claim does not hold here**: the step fools none of them."
    return "**The study's claim holds here** for " + (
        "every one of them." if example["fooled_count"] == example["attacked"] else "some of them, not for every image."
    )


def attack_section(art: Artifacts) -> list[Block]:
    attack, study = art.attack, art.summary.study.get("attack", {})
    blocks: list[Block] = [Heading(2, PART_TITLES["attack"])]
    if attack.example is None and attack.sweep is None and not attack.images:
        missing = ", ".join(f"`{m}`" for m in attack.missing)
        return blocks + [
            Paragraph(
                f"**The attack stage has not been run**: its artifacts are missing ({missing}). "
                "Run `dvc repro attack` to add this part."
            )
        ]
    blocks.append(Heading(3, "The fooling image"))
    if attack.example is None:
        blocks.append(Paragraph(f"The example's record `{layout.ATTACK_EXAMPLE}` is missing."))
    else:
        shown = (
            "the first one fooled."
            if attack.example["shown"] == "first fooled"
            else "the first correctly classified one."
        )
        blocks.append(
            Paragraph(f"{example_sentence(attack.example)} {claim_sentence(attack.example)} The image below is {shown}")
        )
        blocks += attack_example(attack.example, study)
    captions = {"difference": "difference (amplified)"}
    images = [Figure(f"attack_{n}.png", png, captions.get(n, n)) for n, png in attack.images.items()]
    blocks += [FigureRow(images)] if images else []
    absent = [str(rel) for n, rel in layout.ATTACK_IMAGES.items() if n not in attack.images]
    if absent:
        blocks.append(Paragraph("Missing image(s): " + ", ".join(f"`{a}`" for a in absent) + "."))
    blocks.append(Heading(3, "Success rate vs ε"))
    if attack.sweep is None:
        blocks.append(Paragraph(f"The sweep's table `{layout.ATTACK_SWEEP_CSV}` is missing."))
    else:
        rows = sorted(attack.sweep, key=lambda r: (r["norm"], r["mode"], r["epsilon"]))
        blocks += [
            table_of(
                rows,
                [
                    ("norm", "l", lambda r: r["norm"]),
                    ("mode", "l", lambda r: r["mode"]),
                    ("ε (pixels)", "r", lambda r: f"{r['epsilon']:g}"),
                    ("success rate", "r", lambda r: pct(r["success_rate"])),
                    (
                        "median L2 of successes",
                        "r",
                        lambda r: "—" if r["median_l2"] is None else f"{r['median_l2']:.2f}",
                    ),
                    ("n", "r", lambda r: str(r["n"])),
                ],
            ),
            Bullets(success_sentences(rows, study)),
        ]
    if attack.success_png is None:
        blocks.append(Paragraph("The success-vs-ε figure is missing."))
    else:
        caption = "Fraction of correctly classified test images fooled, against the budget ε."
        blocks.append(Figure("attack_success_vs_epsilon.png", attack.success_png, caption))
    if attack.metrics is not None:
        blocks.append(
            Paragraph(
                f"The attack stage's summary metrics are in `{layout.ATTACK_METRICS}` (`dvc metrics show` lists them)."
            )
        )
    return blocks
