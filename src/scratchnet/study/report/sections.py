"""The report's sections, each a list of blocks built from the artifacts.

Every sentence that interprets a result is assembled here from the numbers it talks about
(through `analysis`), never written in advance: change the numbers and the sentences change.
Accuracies are fractions of 1 in tables (as the study printed them) and percentages in prose
where the study gave a percentage.
"""

from __future__ import annotations

import math
from collections import defaultdict

from scratchnet.study import layout
from scratchnet.study.params import BASELINE, MODELS
from scratchnet.study.plots import png_bytes
from scratchnet.study.plots import study as plots
from scratchnet.study.report import analysis
from scratchnet.study.report.artifacts import Artifacts, ModelResults, SummaryRow, scalar_items, truth
from scratchnet.study.report.document import Block, Bullets, Code, Figure, FigureRow, Heading, Paragraph, Table
from scratchnet.study.report.environment import Environment

TITLE = "scratchnet: neural networks from scratch on CIFAR-10 — study report"
PART_TITLES = {
    "provenance": "Provenance",
    "fit": "Part 1: fitting by gradient descent",
    "softmax": "Part 2: softmax classifier",
    "twolayer": "Part 3: two-layer network",
    "attack": "Part 4: fooling images",
    "mlflow": "MLflow runs behind the tables",
}
MODEL_NAMES = {"softmax": "softmax classifier", "twolayer": "two-layer network"}


# ---------------------------------------------------------------------------------- formatting


def val(v) -> str:
    """A hyper-parameter value: 0.001, 128, 1 (for 1.0), 'he'; None as a dash."""
    if v is None:
        return "—"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:g}"


def acc(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "all seeds diverged"
    return f"{mean:.4f} ± {std if std is not None else 0.0:.4f}"


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def signed(x: float) -> str:
    return f"{x:+.4f}"


def duration(seconds: float | None) -> str:
    """'12.3 s', '13 min 05 s' or '1 h 02 min', rounded before splitting (never '13 min 60 s')."""
    if seconds is None:
        return "—"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    if round(seconds) < 3600:
        minutes, secs = divmod(round(seconds), 60)
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


def same_value(a, b) -> bool:
    if analysis.is_number(a) and analysis.is_number(b):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def kv_table(pairs, header=("key", "value")) -> Table:
    return Table(list(header), [[f"`{k}`", val(v)] for k, v in pairs], align="ll")


def counts_table(counts, per_class: bool = True) -> Table | None:
    """{split: n} or {split: {class: n}} as a table (a row per class, or per split with the
    smallest and largest class); None for any other shape."""
    if not isinstance(counts, dict) or not counts:
        return None
    if all(isinstance(v, (int, float)) for v in counts.values()):
        return Table(["split", "examples"], [[str(k), str(v)] for k, v in counts.items()])
    if all(isinstance(v, dict) and v for v in counts.values()) and not per_class:
        return Table(["split", "examples", "per class (min – max)"],
                     [[s, str(sum(c.values())), f"{min(c.values())} – {max(c.values())}"]
                      for s, c in counts.items()])
    if all(isinstance(v, dict) for v in counts.values()):
        splits = list(counts)
        classes = list(dict.fromkeys(c for s in splits for c in counts[s]))
        rows = [[c] + [str(counts[s].get(c, 0)) for s in splits] for c in classes]
        rows.append(["**total**"] + [f"**{sum(counts[s].values())}**" for s in splits])
        return Table(["class"] + splits, rows)
    return None


# ---------------------------------------------------------------------------------- provenance


def _stage_times(art: Artifacts) -> list[tuple[str, str, float | None]]:
    rows = [
        ("fetch", "download or read and verify CIFAR-10", art.provenance.get("seconds")),
        ("preprocess", "split, normalise, store arrays", art.processed.get("seconds")),
        ("fit", "part 1: gradient descent on a least-squares fit", art.fit.get("seconds")),
    ]
    for model, res in art.models.items():
        rows.append((f"train {model}", f"baseline, {res.train['config'].get('epochs', '?')} epochs",
                     res.train.get("seconds")))
    for model, res in art.models.items():
        n_seeds = max((len(a["seeds"]) for a in res.ablations.values()), default=0)
        total = sum(a.get("seconds") or 0.0 for a in res.ablations.values())
        rows.append((f"ablate {model}", f"{len(res.ablations)} values × {n_seeds} seeds (summed)", total))
    rows.append(("evaluate", "tables and metrics", art.evaluate_seconds))
    attack = art.attack
    seconds = (attack.metrics or {}).get("seconds")
    if seconds is None and attack.example is not None:
        seconds = attack.example.get("seconds")
    rows.append(("attack", "fooling image and success-vs-epsilon sweep" if attack.example else "not run", seconds))
    return rows


def provenance(art: Artifacts, env: Environment) -> list[Block]:
    prov = art.provenance
    blocks: list[Block] = [Heading(2, PART_TITLES["provenance"])]
    dataset = prov.get("dataset", "CIFAR-10")
    where = prov.get("location", prov.get("source", "an unnamed source"))
    fmt = prov.get("format")
    blocks.append(Paragraph(
        f"**Data.** {dataset}, read from `{where}`" + (f" ({fmt} format)" if fmt else "") + "."
        + (f" sha256 `{prov['sha256']}`." if prov.get("sha256") else "")
        + (f" md5 `{prov['md5']}`." if prov.get("md5") else "")
    ))
    if truth(prov.get("fell_back", False)):
        blocks.append(Paragraph(
            "**The official CIFAR-10 release was not used**: the fetch fell back to the bundled "
            f"mirror. Reason given: {prov.get('reason') or 'none recorded'}."
        ))
    elif "fell_back" in prov:
        blocks.append(Paragraph("The official release was used (no fallback to the bundled mirror)."))
    blocks.append(kv_table(scalar_items(prov, skip=("counts", "seconds")), header=("provenance field", "value")))
    table = counts_table(prov.get("counts"))
    if table:
        blocks += [Paragraph("Examples per class in the fetched dataset:"), table]

    meta = art.processed
    limits = [f"`{k}` = {meta[k]}" for k in ("train_limit", "test_limit") if meta.get(k) is not None]
    blocks.append(Paragraph(
        f"**Preprocessing.** Normalisation `{meta.get('normalize', '?')}` with statistics of the "
        f"training split only; validation split drawn with seed {meta.get('seed', '?')}."
        + (f" **A reduced run**: {', '.join(limits)}." if limits else "")
    ))
    table = counts_table(meta.get("counts"), per_class=False)
    if table:
        blocks.append(table)

    blocks.append(Paragraph("**Code, parameters, machine.**"))
    blocks.append(Table(["item", "value"], [
        ["git commit", f"`{env.commit}`"],
        ["params hash", f"`{env.params_hash}` (the `scratchnet.params_hash` tag of every MLflow run)"],
        ["report built", env.date],
        *[[k, v] for k, v in env.machine.items()],
    ], align="ll"))

    times = _stage_times(art)
    total = sum(s for _, _, s in times if s is not None)
    blocks += [
        Paragraph("**How long each stage took** (from the `seconds` each stage records):"),
        Table(["stage", "work", "time"],
              [[f"`{s}`", w, duration(t)] for s, w, t in times] + [["**total**", "", f"**{duration(total)}**"]],
              align="llr"),
    ]
    return blocks


# -------------------------------------------------------------------------------------- part 1


def fit_section(art: Artifacts, figures: list) -> list[Block]:
    fit = art.fit
    lr, steps = float(fit["lr"]), int(fit["steps"])
    losses = [float(x) for x in fit["losses"]]
    optimum, final = float(fit["optimum_loss"]), float(fit["final_loss"])
    problem = fit.get("problem") or {}
    blocks: list[Block] = [Heading(2, PART_TITLES["fit"])]
    if problem.get("description"):
        blocks.append(Paragraph(f"**Problem.** {problem['description']}"))
    pairs = scalar_items(problem, skip=("description",))
    if pairs:
        blocks.append(kv_table(pairs, header=("problem parameter", "value")))

    sentences = [f"Gradient descent ran {steps} steps with learning rate lr = {lr:g}"]
    study_lr = art.study.get("fit", {}).get("lr")
    if study_lr is None:
        sentences[0] += "."
    else:
        sentences[0] += (" — the study's own choice." if same_value(lr, study_lr)
                         else f"; the study used lr = {study_lr:g}.")
    if not math.isfinite(final):
        sentences.append("The loss did not stay finite: gradient descent diverged at this learning rate.")
    else:
        gap = final - optimum
        rel = gap / optimum if optimum > 0 else float("inf")
        sentences.append(
            f"The loss fell from {losses[0]:.6g} to {final:.6g}; the closed-form least-squares optimum "
            f"is {optimum:.6g}, so gradient descent ended {gap:.3g} above it"
            + (f" ({100 * rel:.2f}% of the optimum)." if math.isfinite(rel) else ".")
        )
        rises = sum(1 for a, b in zip(losses, losses[1:]) if b > a)
        sentences.append("The loss decreased at every step." if rises == 0 else
                         f"The loss rose at {rises} of {len(losses) - 1} steps.")
    blocks.append(Paragraph(" ".join(sentences)))

    fig = plots.fit_figure(losses, optimum, lr, x=fit.get("x"), y=fit.get("y"),
                           fitted=fit.get("fitted"), optimum_fitted=fit.get("optimum_fitted"))
    blocks.append(_figure(figures, "fit.png", fig,
                          f"Loss per step against the closed-form optimum (lr = {lr:g}), and the fitted curves."))
    return blocks


def _figure(figures: list, name: str, fig, caption: str) -> Figure:
    block = Figure(name, png_bytes(fig), caption)
    figures.append(block)
    return block


# ----------------------------------------------------------------------------------- parts 2, 3


def _hyper_parameters(art: Artifacts, model: str, res: ModelResults) -> list[Block]:
    config = res.train["config"]
    study = art.study[model]["baseline"]
    keys = list(dict.fromkeys([*config, *study]))
    rows = [[f"`{k}`", val(config[k]) if k in config else "—", val(study[k]) if k in study else "—"]
            for k in keys]
    blocks: list[Block] = [
        Paragraph(f"**Baseline hyper-parameters** (seed {res.train['seeds'][0].get('seed', '?')}; "
                  f"the ablations below ran {art.params['ablate']['epochs'][model]} epochs each, "
                  f"the study's {art.study[model].get('ablation_epochs', '?')}):"),
        Table(["hyper-parameter", "ours", "study"], rows, align="lrr"),
    ]
    # The run is what was trained; params.yaml is what will be trained next. Say if they differ.
    now = {**art.params[model], "epochs": art.params["train"]["epochs"][model]}
    stale = [f"`{k}` = {val(now[k])} in params.yaml, {val(config[k])} in the run"
             for k in now if k in config and not same_value(now[k], config[k])]
    if stale:
        blocks.append(Paragraph("**params.yaml differs from the trained baseline**: " + "; ".join(stale)
                                + ". Run `dvc repro` to retrain."))
    return blocks


def _curve(res: ModelResults, model: str, figures: list) -> list[Block]:
    curve = res.curve
    epochs = [r["epoch"] for r in curve]
    train_acc = [r["train_acc"] for r in curve]
    val_acc = [r["val_acc"] for r in curve]
    last = curve[-1]
    best = max(curve, key=lambda r: r["val_acc"] if r["val_acc"] is not None else -1.0)
    text = (f"After the last epoch ({last['epoch']:g}) train accuracy is {acc(last['train_acc'])} and "
            f"validation accuracy {acc(last['val_acc'])}")
    if last["train_acc"] is not None and last["val_acc"] is not None:
        gap = last["train_acc"] - last["val_acc"]
        side = "train above validation" if gap > 0 else "validation at or above train"
        text += f": a gap of {gap:.4f} ({side})"
    text += f". Validation accuracy peaked at epoch {best['epoch']:g} ({acc(best['val_acc'])})."
    first_lr, last_lr = curve[0].get("lr"), last.get("lr")
    if first_lr is not None and last_lr is not None:
        text += (f" The learning rate stayed at {first_lr:.3g}." if same_value(first_lr, last_lr)
                 else f" The learning rate went from {first_lr:.3g} to {last_lr:.3g}.")
    diverged = [s for s in res.train["seeds"] if s.get("diverged")]
    if diverged:
        text += f" **The baseline run diverged** at epoch {diverged[0].get('diverged_epoch')}."
    fig = plots.curve_figure(epochs, train_acc, val_acc, f"{MODEL_NAMES[model]}: accuracy per epoch")
    return [
        _figure(figures, f"curve_{model}.png", fig,
                f"{MODEL_NAMES[model]}: train and validation accuracy after each epoch (baseline run)."),
        Paragraph(text),
    ]


def _test_accuracy(art: Artifacts, model: str, res: ModelResults) -> Paragraph:
    ours = res.metrics.get("test_acc")
    study = float(art.study[model]["test_acc"])
    if ours is None or (isinstance(ours, float) and math.isnan(ours)):
        return Paragraph(f"**Test accuracy**: none — the baseline run diverged. "
                         f"The study reported {pct(study)}.")
    diff = ours - study
    text = (f"**Test accuracy: {pct(ours)}** (baseline run, {res.train['config'].get('epochs', '?')} epochs); "
            f"the study reported {pct(study)}: ours is {abs(100 * diff):.2f} percentage points "
            f"{'above' if diff > 0 else 'below' if diff < 0 else 'equal to'} it.")
    std = res.metrics.get("ablation_baseline_std")
    mean = res.metrics.get("ablation_baseline_mean")
    n = len(res.ablations[BASELINE]["seeds"])
    if std is not None and mean is not None and n > 1:
        noise = analysis.NOISE_FACTOR * std
        text += (f" Over {n} seeds the baseline ({art.params['ablate']['epochs'][model]} epochs) gives "
                 f"{pct(mean)} ± {100 * std:.2f} points: the difference from the study is "
                 + ("within noise" if abs(diff) <= noise else "larger than the noise")
                 + f" ({abs(100 * diff):.2f} vs {analysis.NOISE_FACTOR:g} × std = {100 * noise:.2f} points).")
    return Paragraph(text)


def _study_rows(art: Artifacts, model: str, param: str) -> tuple[list[dict], str | None]:
    table = art.study[model]["ablations"].get(param)
    if not table:
        return [], None
    return table["rows"], table.get("conclusion")


def _study_acc(study_rows: list[dict], value) -> float | None:
    for row in study_rows:
        if same_value(row["value"], value):
            return float(row["test_acc"])
    return None


def _diverged(res: ModelResults, param: str) -> list[str]:
    """'`lr=0.05` seed 1 (epoch 3)' for every diverged seed of this sweep and of the baseline."""
    names = []
    for r in res.runs:
        if (r["param"] == param or r["run"] == BASELINE) and truth(r["diverged"]):
            epoch = r.get("diverged_epoch") or ""
            epoch = f" (epoch {int(float(epoch))})" if epoch.strip() else ""
            names.append(f"`{r['run']}` seed {r['seed']}{epoch}")
    return names


def sweep_sentences(param: str, rows: list[SummaryRow], study_rows: list[dict],
                    conclusion: str | None, diverged: list[str]) -> list[str]:
    """The interpretation of one sweep, every claim computed from the rows given."""
    ours = [analysis.Row(r.value, r.mean, r.std, r.n_seeds, r.n_diverged, r.is_baseline) for r in rows]
    verdict = analysis.judge(ours)
    items = []
    if verdict.best is None:
        return [f"Every run of this sweep diverged; there is nothing to compare. Diverged: {', '.join(diverged)}."]
    best, worst = verdict.best, verdict.worst
    tops = [r for r in ours if r.mean is not None and r.mean == best.mean]  # ties share the best place
    if verdict.spread == 0:
        items.append(f"Every value gives the same mean test accuracy, {acc(best.mean)}.")
    else:
        items.append(f"Best: `{param}={val(best.value)}` with {pm(best.mean, best.std)}; "
                     f"worst: `{param}={val(worst.value)}` with {pm(worst.mean, worst.std)}.")
    threshold = None if verdict.pooled_std is None else analysis.NOISE_FACTOR * verdict.pooled_std
    if verdict.within_noise is None:
        items.append(f"The means span {verdict.spread:.4f}, but with fewer than two converged seeds per value "
                     "there is no seed-to-seed noise estimate, so no claim is made on whether the spread is real.")
    elif verdict.within_noise:
        items.append(f"**Within noise**: the means span {verdict.spread:.4f}, not more than "
                     f"{analysis.NOISE_FACTOR:g} × the pooled seed std ({analysis.NOISE_FACTOR:g} × "
                     f"{verdict.pooled_std:.4f} = {threshold:.4f}); this sweep shows no effect of `{param}` "
                     "that seed-to-seed variation could not produce.")
    else:
        items.append(f"**Beyond noise**: the means span {verdict.spread:.4f}, more than "
                     f"{analysis.NOISE_FACTOR:g} × the pooled seed std ({analysis.NOISE_FACTOR:g} × "
                     f"{verdict.pooled_std:.4f} = {threshold:.4f}); `{param}` matters here.")
    phrase = analysis.describe_trend(verdict.trend, param, val)
    items.append("Trend: " + phrase + (" — but within noise." if verdict.within_noise else "."))
    items.append("Diverged runs: " + ", ".join(diverged) + "." if diverged else "No run of this sweep diverged.")

    if not study_rows:
        items.append(f"The study has no table for `{param}`.")
        return items
    theirs = [analysis.Row(r["value"], float(r["test_acc"]), None, 1) for r in study_rows]
    study_verdict = analysis.judge(theirs)
    agree = any(same_value(study_verdict.best.value, r.value) for r in tops)
    items.append(
        f"The study's table: best `{param}={val(study_verdict.best.value)}` "
        f"({acc(study_verdict.best.mean)}); {analysis.describe_trend(study_verdict.trend, param, val)}. "
        + ("Ours has no single best value." if len(tops) > 1 and not agree else
           "Ours agrees on the best value." if agree else "Ours finds a different best value.")
    )
    shared = [(r, _study_acc(study_rows, r.value)) for r in rows]
    shared = [(r, s) for r, s in shared if s is not None and r.mean is not None]
    if shared:
        diffs = [r.mean - s for r, s in shared]
        mean_diff = sum(diffs) / len(diffs)
        items.append(f"On the {len(shared)} value(s) both tables share, ours is on average {abs(mean_diff):.4f} "
                     f"{'above' if mean_diff > 0 else 'below' if mean_diff < 0 else 'equal to'} the study "
                     f"(differences from {min(diffs):+.4f} to {max(diffs):+.4f}).")
    if study_verdict.spread is not None and threshold is not None:
        items.append(
            f"The study's values span {study_verdict.spread:.4f} from one run per value; against our seed "
            f"noise ({threshold:.4f}) that spread is " + ("within noise." if study_verdict.spread <= threshold
                                                          else "larger than noise."))
    only = [r for r in study_rows if not any(same_value(r["value"], o.value) for o in rows)]
    if only:
        items.append("The study also reported " + ", ".join(
            f"`{param}={val(r['value'])}` ({acc(float(r['test_acc']))})" for r in only) + ", not trained here.")
    if conclusion:
        items.append(f"The study concluded: “{conclusion.strip()}”")
    return items


def sweep_table(param: str, rows: list[SummaryRow], study_rows: list[dict]) -> Table:
    """value | ours mean ± std | n seeds | study | ours − study, by increasing value."""
    body = []
    for r in analysis.ordered(rows):
        study = _study_acc(study_rows, r.value)
        seeds = str(r.n_seeds) + (f" ({r.n_diverged} diverged)" if r.n_diverged else "")
        body.append([
            val(r.value) + (" (baseline)" if r.is_baseline else ""),
            pm(r.mean, r.std),
            seeds,
            acc(study),
            signed(r.mean - study) if study is not None and r.mean is not None else "—",
        ])
    return Table([param, "ours: test acc mean ± std", "n seeds", "study", "ours − study"], body)


def _mlflow_pointer(res: ModelResults, param: str, rows: list[SummaryRow]) -> list[Block]:
    entries = [a for a in res.ablations.values() if a.get("param") == param or a.get("run") == BASELINE]
    parents = list(dict.fromkeys(a["mlflow_parent_run_id"] for a in entries if a.get("mlflow_parent_run_id")))
    experiments = list(dict.fromkeys(str(a["mlflow_experiment_id"]) for a in entries))
    items = [f"`{param}={val(r.value)}`{' (baseline)' if r.is_baseline else ''}: "
             + (", ".join(f"`{i}`" for i in r.run_ids) or "no run ids recorded")
             for r in analysis.ordered(rows)]
    return [
        Paragraph(f"MLflow runs behind this table (experiment {', '.join(f'`{e}`' for e in experiments)}; "
                  f"grouped under parent run(s) {', '.join(f'`{p}`' for p in parents) or 'none'}):"),
        Bullets(items),
    ]


def model_section(art: Artifacts, model: str, figures: list) -> list[Block]:
    res = art.models[model]
    blocks: list[Block] = [Heading(2, PART_TITLES[model])]
    blocks += _hyper_parameters(art, model, res)
    blocks += _curve(res, model, figures)
    blocks.append(_test_accuracy(art, model, res))
    blocks.append(Heading(3, f"{MODEL_NAMES[model]}: ablations"))
    if not res.sweeps:
        blocks.append(Paragraph("No ablation sweep is configured for this model (`ablate` in params.yaml)."))
    blocks.append(Paragraph(
        f"One hyper-parameter is changed from the baseline at a time; each value is trained with "
        f"{len(art.params['ablate']['seeds'])} seed(s) for {art.params['ablate']['epochs'][model]} epochs. "
        f"Reading rule: {analysis.NOISE_RULE}."
    ))
    for param, rows in res.sweeps.items():
        study_rows, conclusion = _study_rows(art, model, param)
        ordered_rows = analysis.ordered(rows)
        baseline = next((r.value for r in rows if r.is_baseline), None)
        fig = plots.sweep_figure(
            param, [r.value for r in ordered_rows], [r.mean for r in ordered_rows],
            [r.std for r in ordered_rows], baseline=baseline,
            study={row["value"]: float(row["test_acc"]) for row in study_rows} or None,
            title=f"{MODEL_NAMES[model]}: test accuracy vs {param}",
        )
        blocks += [
            Heading(3, f"{MODEL_NAMES[model]}: `{param}`"),
            sweep_table(param, rows, study_rows),
            Bullets(sweep_sentences(param, rows, study_rows, conclusion, _diverged(res, param))),
            _figure(figures, f"sweep_{model}_{_safe(param)}.png", fig,
                    f"{MODEL_NAMES[model]}: test accuracy (mean ± std over seeds) vs {param}, "
                    "with the study's numbers as crosses."),
            *_mlflow_pointer(res, param, rows),
        ]
    return blocks


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


# -------------------------------------------------------------------------------------- part 4


def attack_example(example: dict, study: dict) -> list[Block]:
    before, after = example["probs_before"], example["probs_after"]
    true, target = example["true_class"], example["target_class"]
    steps = int(example["steps"])
    outcome = ("the attack succeeded: the network now sees the target class" if example["fooled"]
               else "the attack failed: the network does not predict the target class")
    text = (f"Test image {example.get('index', '?')}, a **{true}** the network classified as "
            f"{example['pred_before']} (p = {before.get(example['pred_before'], float('nan')):.3f}), was pushed "
            f"toward **{target}** by {steps} step{'s' if steps != 1 else ''} of targeted gradient descent in the "
            f"{example['norm']} ball of radius ε = {float(example['epsilon']):g} pixel units. Afterwards it "
            f"predicts **{example['pred_after']}** (p = {after.get(example['pred_after'], float('nan')):.3f}): "
            f"{outcome}.")
    if "fooled_after_uint8" in example:
        text += (" Saved as an 8-bit PNG (pixels rounded), the adversarial image is classified as "
                 f"{example.get('pred_after_uint8', '?')}")
        if example["fooled"]:
            text += ": still fooled." if example["fooled_after_uint8"] else ": the rounding undoes the attack."
        else:
            text += ": the rounding makes it succeed." if example["fooled_after_uint8"] else "."
    l2, linf = float(example["l2"]), float(example["linf"])
    norms = (f"The perturbation measures L2 = {l2:.2f} and L∞ = {linf:.2f} in pixel units on [0, 255] over "
             f"all 3 × 32 × 32 values (an average of {l2 / math.sqrt(3072):.2f} per value).")
    study_l2 = study.get("l2")
    if study_l2 is not None:
        norms += (f" The study's single step moved its image by L2 = {study_l2:g}; ours is "
                  f"{l2 / float(study_l2):.2f} × that.")
    classes = list(dict.fromkeys([*before, *after]))
    rows = [[f"{c}" + (" (true)" if c == true else " (target)" if c == target else ""),
             f"{before.get(c, float('nan')):.4f}", f"{after.get(c, float('nan')):.4f}"] for c in classes]
    return [Paragraph(text), Paragraph(norms), Table(["class", "p before", "p after"], rows)]


def _success_sentences(sweep: list[dict], study: dict) -> list[str]:
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
            text = (f"{norm}, {mode}: half of the images are fooled from ε = {reach[0.5]:g}, "
                    + (f"90% from ε = {reach[0.9]:g}" if reach[0.9] is not None else "90% at no ε of the grid"))
        text += f"; at the largest budget ε = {top['epsilon']:g}, {pct(top['success_rate'])} of {top['n']} images."
        study_l2 = study.get("l2")
        if norm == "l2" and study_l2 is not None:
            at = next((r for r in rows if r["epsilon"] >= float(study_l2)), None)
            if at is not None:
                text += (f" At ε = {at['epsilon']:g}, the smallest budget of the grid at or above "
                         f"the study's L2 ({float(study_l2):g}), "
                         f"{pct(at['success_rate'])} are fooled.")
        items.append(text)
    return items


def attack_section(art: Artifacts, figures: list) -> list[Block]:
    attack, study = art.attack, art.study.get("attack", {})
    blocks: list[Block] = [Heading(2, PART_TITLES["attack"])]
    if attack.example is None and attack.sweep is None and not attack.images:
        return blocks + [Paragraph(
            "**The attack stage has not been run**: its artifacts are missing ("
            + ", ".join(f"`{m}`" for m in attack.missing) + "). Run `dvc repro attack` to add this part."
        )]
    blocks.append(Heading(3, "The fooling image"))
    if attack.example is None:
        blocks.append(Paragraph(f"The example's record `{layout.ATTACK_EXAMPLE}` is missing."))
    else:
        blocks += attack_example(attack.example, study)
    captions = {"original": "original", "adversarial": "adversarial", "difference": "difference (amplified)"}
    images = [Figure(f"attack_{name}.png", attack.images[name], captions.get(name, name))
              for name in layout.ATTACK_IMAGES if name in attack.images]
    if images:
        figures.extend(images)
        blocks.append(FigureRow(images))
    absent = [str(layout.ATTACK_IMAGES[n]) for n in layout.ATTACK_IMAGES if n not in attack.images]
    if absent:
        blocks.append(Paragraph("Missing image(s): " + ", ".join(f"`{a}`" for a in absent) + "."))

    blocks.append(Heading(3, "Success rate vs ε"))
    if attack.sweep is None:
        blocks.append(Paragraph(f"The sweep's table `{layout.ATTACK_SWEEP_CSV}` is missing."))
    else:
        rows = sorted(attack.sweep, key=lambda r: (r["norm"], r["mode"], r["epsilon"]))
        blocks.append(Table(
            ["norm", "mode", "ε (pixels)", "success rate", "median L2 of successes", "n"],
            [[r["norm"], r["mode"], f"{r['epsilon']:g}", pct(r["success_rate"]),
              "—" if r["median_l2"] is None else f"{r['median_l2']:.2f}", str(r["n"])] for r in rows],
            align="llrrrr",
        ))
        blocks.append(Bullets(_success_sentences(rows, study)))
    if attack.success_png is not None:
        block = Figure("attack_success_vs_epsilon.png", attack.success_png,
                       "Fraction of correctly classified test images fooled, against the budget ε.")
        figures.append(block)
        blocks.append(block)
    else:
        blocks.append(Paragraph("The success-vs-ε figure is missing."))
    if attack.metrics is not None:
        blocks.append(Paragraph(f"The attack stage's summary metrics are in `{layout.ATTACK_METRICS}` "
                                "(`dvc metrics show` lists them)."))
    return blocks


# -------------------------------------------------------------------------------------- MLflow


def mlflow_section(art: Artifacts) -> list[Block]:
    runs = [res.train for res in art.models.values()]
    runs += [a for res in art.models.values() for a in res.ablations.values()]
    experiments = list(dict.fromkeys(str(r["mlflow_experiment_id"]) for r in runs))
    uris = list(dict.fromkeys(str(r["tracking_uri"]) for r in runs))
    blocks: list[Block] = [
        Heading(2, PART_TITLES["mlflow"]),
        Paragraph(f"Every training run above was logged to MLflow: experiment "
                  f"{', '.join(f'`{e}`' for e in experiments)} in the store "
                  f"{', '.join(f'`{u}`' for u in uris)}. Each table lists its run ids beneath it; the runs of "
                  "one sweep are children of one parent run, so the UI shows and compares them together."),
        Paragraph("To open them:"),
    ]
    commands = []
    for uri in uris:
        if uri.startswith(("http://", "https://")):
            commands.append("# a tracking server: open it in a browser\n"
                            f"{uri.rstrip('/')}/#/experiments/{experiments[0]}")
        else:
            commands.append(f"mlflow ui --backend-store-uri {uri}\n"
                            f"# then open http://127.0.0.1:5000/#/experiments/{experiments[0]}\n"
                            f"# one run: http://127.0.0.1:5000/#/experiments/{experiments[0]}/runs/<run id>")
    blocks.append(Code("\n".join(commands)))
    rows = []
    for model, res in art.models.items():
        ids = [s.get("mlflow_run_id") for s in res.train["seeds"] if s.get("mlflow_run_id")]
        rows.append([f"{MODEL_NAMES[model]} baseline (curve, test accuracy)", "—",
                     ", ".join(f"`{i}`" for i in ids)])
        for param, sweep in res.sweeps.items():
            entries = [a for a in res.ablations.values() if a.get("param") == param]
            parents = list(dict.fromkeys(a["mlflow_parent_run_id"] for a in entries
                                         if a.get("mlflow_parent_run_id")))
            n = sum(len(r.run_ids) for r in sweep)
            rows.append([f"{MODEL_NAMES[model]} sweep `{param}`", ", ".join(f"`{p}`" for p in parents) or "—",
                         f"{n} runs (listed under its table)"])
    blocks.append(Table(["table", "parent run", "runs"], rows, align="lll"))
    return blocks


# ---------------------------------------------------------------------------------------- whole


def document(art: Artifacts, env: Environment) -> tuple[list[Block], list[Figure]]:
    """All sections in order; figures collects every figure block, in order."""
    figures: list[Figure] = []
    blocks: list[Block] = [
        Heading(1, TITLE),
        Paragraph("Rebuilt by the `report` stage from the pipeline's artifacts: every number and every "
                  "sentence of interpretation below is computed from them, beside the published numbers "
                  f"of the study this reproduces ({art.study['source'].strip()}). Edit `params.yaml` and run "
                  "`dvc repro` to rebuild it; do not edit it by hand."),
    ]
    blocks += provenance(art, env)
    blocks += fit_section(art, figures)
    for model in MODELS:
        blocks += model_section(art, model, figures)
    blocks += attack_section(art, figures)
    blocks += mlflow_section(art)
    return blocks, figures
