"""The study's four parts, each a plain function from the artifacts to a list of blocks.

Every sentence that interprets a result is assembled here from the numbers it talks about
(through `analysis` and `reproduction`), never written in advance: change the numbers and the
sentences change. Figures are blocks like any other; the report collects them from the blocks.
"""

from __future__ import annotations

import math
from collections import defaultdict

from scratchnet.study import analysis, layout
from scratchnet.study.evaluation import SweepRow
from scratchnet.study.plots import study as plots
from scratchnet.study.report.artifacts import Artifacts, ModelResults
from scratchnet.study.report.document import Block, Bullets, Figure, FigureRow, Heading, Paragraph, Table
from scratchnet.study.report.text import (MODEL_NAMES, PART_TITLES, acc_text, figure, kv_table, mean_std_text,
                                          pct, safe_name, scalar_items, signed, value_text)
from scratchnet.study.reproduction import same_value, study_rows

# -------------------------------------------------------------------------------------- part 1


def fit_sentences(fit: dict, study_lr: float | None) -> str:
    """What gradient descent did: its lr against the study's, its gap to the optimum."""
    lr, steps = float(fit["lr"]), int(fit["steps"])
    losses = [float(x) for x in fit["losses"]]
    optimum, final = float(fit["optimum_loss"]), float(fit["final_loss"])
    sentences = [f"Gradient descent ran {steps} steps with learning rate lr = {lr:g}"
                 + ("." if study_lr is None else " — the study's own choice." if same_value(lr, study_lr)
                    else f"; the study used lr = {study_lr:g}.")]
    if not math.isfinite(final):
        sentences.append("The loss did not stay finite: gradient descent diverged at this learning rate.")
        return " ".join(sentences)
    gap = final - optimum
    rel = gap / optimum if optimum > 0 else float("inf")
    sentences.append(
        f"The loss fell from {losses[0]:.6g} to {final:.6g}; the closed-form least-squares optimum "
        f"is {optimum:.6g}, so gradient descent ended {gap:.3g} above it"
        + (f" ({100 * rel:.2f}% of the optimum)." if math.isfinite(rel) else "."))
    rises = sum(1 for a, b in zip(losses, losses[1:]) if b > a)
    sentences.append("The loss decreased at every step." if rises == 0 else
                     f"The loss rose at {rises} of {len(losses) - 1} steps.")
    return " ".join(sentences)


def fit_section(art: Artifacts) -> list[Block]:
    fit = art.fit
    problem = fit.get("problem") or {}
    blocks: list[Block] = [Heading(2, PART_TITLES["fit"])]
    if problem.get("description"):
        blocks.append(Paragraph(f"**Problem.** {problem['description']}"))
    pairs = scalar_items(problem, skip=("description",))
    if pairs:
        blocks.append(kv_table(pairs, header=("problem parameter", "value")))
    blocks.append(Paragraph(fit_sentences(fit, art.study.get("fit", {}).get("lr"))))
    lr = float(fit["lr"])
    fig = plots.fit_figure([float(x) for x in fit["losses"]], float(fit["optimum_loss"]), lr,
                           x=fit.get("x"), y=fit.get("y"), fitted=fit.get("fitted"),
                           optimum_fitted=fit.get("optimum_fitted"))
    blocks.append(figure("fit.png", fig, f"Loss per step against the closed-form optimum (lr = {lr:g}), "
                                         "and the fitted curves."))
    return blocks


# ----------------------------------------------------------------------------------- parts 2, 3


def stale_params(params: dict, model: str, config: dict) -> list[str]:
    """Where params.yaml (what trains next) differs from the trained baseline's config."""
    now = {**params[model], "epochs": params["train"]["epochs"][model]}
    return [f"`{k}` = {value_text(now[k])} in params.yaml, {value_text(config[k])} in the run"
            for k in now if k in config and not same_value(now[k], config[k])]


def hyper_parameters(art: Artifacts, model: str) -> list[Block]:
    res = art.models[model]
    config = res.train["config"]
    study = art.study[model]["baseline"]
    keys = list(dict.fromkeys([*config, *study]))
    rows = [[f"`{k}`", value_text(config.get(k)), value_text(study.get(k))] for k in keys]
    blocks: list[Block] = [
        Paragraph(f"**Baseline hyper-parameters** (seed {res.train['seeds'][0].get('seed', '?')}; "
                  f"the ablations below ran {art.params['ablate']['epochs'][model]} epochs each, "
                  f"the study's {art.study[model].get('ablation_epochs', '?')}):"),
        Table(["hyper-parameter", "ours", "study"], rows, align="lrr"),
    ]
    stale = stale_params(art.params, model, config)
    if stale:
        blocks.append(Paragraph("**params.yaml differs from the trained baseline**: " + "; ".join(stale)
                                + ". Run `dvc repro` to retrain."))
    return blocks


def curve_sentences(curve: list[dict], seeds: list[dict]) -> str:
    """The baseline's last epoch, train-validation gap, best epoch, lr schedule, divergence."""
    diverged = next((s for s in seeds if s.get("diverged")), None)
    if not curve:
        return f"**The baseline run diverged** in epoch {diverged.get('diverged_epoch') if diverged else '?'}: no epoch completed."
    last = curve[-1]
    best = max(curve, key=lambda r: r["val_acc"])
    gap = last["train_acc"] - last["val_acc"]
    side = "train above validation" if gap > 0 else "validation at or above train"
    text = (f"After the last epoch ({last['epoch']:g}) train accuracy is {acc_text(last['train_acc'])} and "
            f"validation accuracy {acc_text(last['val_acc'])}: a gap of {gap:.4f} ({side}). "
            f"Validation accuracy peaked at epoch {best['epoch']:g} ({acc_text(best['val_acc'])}).")
    first_lr, last_lr = curve[0].get("lr"), last.get("lr")
    if first_lr is not None and last_lr is not None:
        text += (f" The learning rate stayed at {first_lr:.3g}." if same_value(first_lr, last_lr)
                 else f" The learning rate went from {first_lr:.3g} to {last_lr:.3g}.")
    if diverged:
        text += f" **The baseline run diverged** in epoch {diverged.get('diverged_epoch')}."
    return text


def curve_blocks(res: ModelResults, model: str) -> list[Block]:
    curve = res.curve
    blocks: list[Block] = []
    if curve:
        fig = plots.curve_figure([r["epoch"] for r in curve], [r["train_acc"] for r in curve],
                                 [r["val_acc"] for r in curve], f"{MODEL_NAMES[model]}: accuracy per epoch")
        blocks.append(figure(f"curve_{model}.png", fig,
                             f"{MODEL_NAMES[model]}: train and validation accuracy after each epoch (baseline run)."))
    return blocks + [Paragraph(curve_sentences(curve, res.train["seeds"]))]


def accuracy_sentences(ours: float | None, study: float, seeds: SweepRow, epochs: int) -> str:
    """The baseline's test accuracy against the study's, and whether the gap is within our seed noise."""
    if ours is None:
        return f"**Test accuracy**: none — the baseline run diverged. The study reported {pct(study)}."
    diff = ours - study
    text = (f"**Test accuracy: {pct(ours)}** (baseline run); the study reported {pct(study)}: ours is "
            f"{abs(100 * diff):.2f} percentage points {'above' if diff > 0 else 'below' if diff < 0 else 'equal to'} it.")
    if seeds.mean is not None and seeds.n_converged > 1:
        noise = analysis.NOISE_FACTOR * seeds.std
        text += (f" Over {seeds.n_converged} seeds the baseline ({epochs} epochs) gives {pct(seeds.mean)} ± "
                 f"{100 * seeds.std:.2f} points: the difference from the study is "
                 + ("within noise" if abs(diff) <= noise else "larger than the noise")
                 + f" ({abs(100 * diff):.2f} vs {analysis.NOISE_FACTOR:g} × std = {100 * noise:.2f} points).")
    return text


def diverged_seeds(res: ModelResults, param: str) -> list[str]:
    """'`lr=0.05` seed 1 (epoch 3)' for every diverged seed of this sweep and of the baseline."""
    names = []
    for entry, result in res.ablations.items():
        if result.get("param") == param or result.get("param") is None:
            for s in result["seeds"]:
                if s.get("diverged"):
                    epoch = s.get("diverged_epoch")
                    names.append(f"`{entry}` seed {s['seed']}" + (f" (epoch {epoch})" if epoch is not None else ""))
    return names


def verdict_sentences(param: str, rows: list[SweepRow]) -> list[str]:
    """Our sweep on its own: best and worst value, the noise verdict, the trend."""
    verdict = analysis.judge(rows)
    if verdict.best is None:
        return ["Every run of this sweep diverged; there is nothing to compare."]
    best, worst = verdict.best, verdict.worst
    if verdict.spread == 0:
        items = [f"Every value gives the same mean test accuracy, {acc_text(best.mean)}."]
    else:
        items = [f"Best: `{param}={value_text(best.value)}` with {mean_std_text(best.mean, best.std)}; "
                 f"worst: `{param}={value_text(worst.value)}` with {mean_std_text(worst.mean, worst.std)}."]
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
    phrase = analysis.describe_trend(verdict.trend, param, value_text)
    items.append("Trend: " + phrase + (" — but within noise." if verdict.within_noise else "."))
    return items


def diverged_sentence(names: list[str]) -> str:
    return "Diverged runs: " + ", ".join(names) + "." if names else "No run of this sweep diverged."


def study_sentences(param: str, rows: list[SweepRow], theirs: list[SweepRow], conclusion: str | None) -> list[str]:
    """Our sweep against the study's table: best value, mean difference, the study's spread
    against our noise, values only the study ran, its own conclusion."""
    if not theirs:
        return [f"The study has no table for `{param}`."]
    verdict, study_verdict = analysis.judge(rows), analysis.judge(theirs)
    tops = [r for r in rows if verdict.best is not None and r.mean == verdict.best.mean]  # ties share the best
    agree = any(same_value(study_verdict.best.value, r.value) for r in tops)
    items = [
        f"The study's table: best `{param}={value_text(study_verdict.best.value)}` "
        f"({acc_text(study_verdict.best.mean)}); {analysis.describe_trend(study_verdict.trend, param, value_text)}. "
        + ("Ours has no result to compare." if not tops else
           "Ours has no single best value." if len(tops) > 1 and not agree else
           "Ours agrees on the best value." if agree else "Ours finds a different best value.")
    ]
    shared = [(r, t) for r in rows for t in theirs if same_value(r.value, t.value) and r.mean is not None]
    if shared:
        diffs = [r.mean - t.mean for r, t in shared]
        mean_diff = sum(diffs) / len(diffs)
        items.append(f"On the {len(shared)} value(s) both tables share, ours is on average {abs(mean_diff):.4f} "
                     f"{'above' if mean_diff > 0 else 'below' if mean_diff < 0 else 'equal to'} the study "
                     f"(differences from {min(diffs):+.4f} to {max(diffs):+.4f}).")
    if verdict.pooled_std is not None:
        threshold = analysis.NOISE_FACTOR * verdict.pooled_std
        items.append(
            f"The study's values span {study_verdict.spread:.4f} from one run per value; against our seed "
            f"noise ({threshold:.4f}) that spread is " + ("within noise." if study_verdict.spread <= threshold
                                                          else "larger than noise."))
    only = [t for t in theirs if not any(same_value(t.value, r.value) for r in rows)]
    if only:
        items.append("The study also reported " + ", ".join(
            f"`{param}={value_text(t.value)}` ({acc_text(t.mean)})" for t in only) + ", not trained here.")
    if conclusion:
        items.append(f"The study concluded: “{conclusion.strip()}”")
    return items


def sweep_table(param: str, rows: list[SweepRow], theirs: list[SweepRow]) -> Table:
    """value | ours mean ± std | n seeds | study | ours − study, by increasing value."""
    body = []
    for r in rows:
        study = next((t.mean for t in theirs if same_value(t.value, r.value)), None)
        body.append([
            value_text(r.value) + (" (baseline)" if r.is_baseline else ""),
            mean_std_text(r.mean, r.std),
            str(r.n_seeds) + (f" ({r.n_diverged} diverged)" if r.n_diverged else ""),
            acc_text(study),
            signed(r.mean - study) if study is not None and r.mean is not None else "—",
        ])
    return Table([param, "ours: test acc mean ± std", "n seeds", "study", "ours − study"], body)


def mlflow_pointer(res: ModelResults, param: str, rows: list[SweepRow]) -> list[Block]:
    entries = [a for a in res.ablations.values() if a.get("param") in (param, None)]
    parents = list(dict.fromkeys(a["mlflow_parent_run_id"] for a in entries if a.get("mlflow_parent_run_id")))
    experiments = list(dict.fromkeys(str(a.get("mlflow_experiment_id")) for a in entries))
    items = [f"`{param}={value_text(r.value)}`{' (baseline)' if r.is_baseline else ''}: "
             + (", ".join(f"`{i}`" for i in r.run_ids) or "no run ids recorded") for r in rows]
    return [
        Paragraph(f"MLflow runs behind this table (experiment {', '.join(f'`{e}`' for e in experiments)}; "
                  f"grouped under parent run(s) {', '.join(f'`{p}`' for p in parents) or 'none'}):"),
        Bullets(items),
    ]


def sweep_blocks(art: Artifacts, model: str, param: str) -> list[Block]:
    res = art.models[model]
    rows = res.sweeps[param]
    theirs = study_rows(art.study, model, param)
    conclusion = (art.study[model]["ablations"].get(param) or {}).get("conclusion")
    fig = plots.sweep_figure(
        param, [r.value for r in rows], [r.mean for r in rows], [r.std for r in rows],
        baseline=next((r.value for r in rows if r.is_baseline), None),
        study={t.value: t.mean for t in theirs} or None,
        title=f"{MODEL_NAMES[model]}: test accuracy vs {param}",
    )
    return [
        Heading(3, f"{MODEL_NAMES[model]}: `{param}`"),
        sweep_table(param, rows, theirs),
        Bullets(verdict_sentences(param, rows) + [diverged_sentence(diverged_seeds(res, param))]
                + study_sentences(param, rows, theirs, conclusion)),
        figure(f"sweep_{model}_{safe_name(param)}.png", fig,
               f"{MODEL_NAMES[model]}: test accuracy (mean ± std over seeds) vs {param}, "
               "with the study's numbers as crosses."),
        *mlflow_pointer(res, param, rows),
    ]


def model_section(art: Artifacts, model: str) -> list[Block]:
    res = art.models[model]
    blocks: list[Block] = [Heading(2, PART_TITLES[model]), *hyper_parameters(art, model), *curve_blocks(res, model)]
    blocks.append(Paragraph(accuracy_sentences(res.train["seeds"][0]["test_acc"], float(art.study[model]["test_acc"]),
                                                    res.baseline, art.params["ablate"]["epochs"][model])))
    blocks.append(Heading(3, f"{MODEL_NAMES[model]}: ablations"))
    if not res.sweeps:
        blocks.append(Paragraph("No ablation sweep is configured for this model (`ablate` in params.yaml)."))
    blocks.append(Paragraph(
        f"One hyper-parameter is changed from the baseline at a time; each value is trained with "
        f"{len(art.params['ablate']['seeds'])} seed(s) for {art.params['ablate']['epochs'][model]} epochs. "
        f"Reading rule: {analysis.NOISE_RULE}."
    ))
    for param in res.sweeps:
        blocks += sweep_blocks(art, model, param)
    return blocks


# -------------------------------------------------------------------------------------- part 4


def rounding_sentence(example: dict) -> str:
    """What saving the adversarial image as 8-bit pixels did to the attack's outcome."""
    if "fooled_after_uint8" not in example:
        return ""
    text = (" Saved as an 8-bit PNG (pixels rounded), the adversarial image is classified as "
            f"{example.get('pred_after_uint8', '?')}")
    if example["fooled"]:
        return text + (": still fooled." if example["fooled_after_uint8"] else ": the rounding undoes the attack.")
    return text + (": the rounding makes it succeed." if example["fooled_after_uint8"] else ".")


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
            f"{outcome}." + rounding_sentence(example))
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


def success_at(sweep: list[dict], norm: str, mode: str, epsilon: float) -> dict | None:
    """The sweep's row at the smallest budget of the grid at or above `epsilon`; None if none."""
    rows = sorted((r for r in sweep if r["norm"] == norm and r["mode"] == mode), key=lambda r: r["epsilon"])
    return next((r for r in rows if r["epsilon"] >= epsilon), None)


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
            text = (f"{norm}, {mode}: half of the images are fooled from ε = {reach[0.5]:g}, "
                    + (f"90% from ε = {reach[0.9]:g}" if reach[0.9] is not None else "90% at no ε of the grid"))
        text += f"; at the largest budget ε = {top['epsilon']:g}, {pct(top['success_rate'])} of {top['n']} images."
        study_l2 = study.get("l2")
        at = success_at(rows, "l2", mode, float(study_l2)) if norm == "l2" and study_l2 is not None else None
        if at is not None:
            text += (f" At ε = {at['epsilon']:g}, the smallest budget of the grid at or above "
                     f"the study's L2 ({float(study_l2):g}), {pct(at['success_rate'])} are fooled.")
        items.append(text)
    return items


def attack_images(attack) -> list[Block]:
    captions = {"original": "original", "adversarial": "adversarial", "difference": "difference (amplified)"}
    images = [Figure(f"attack_{name}.png", attack.images[name], captions.get(name, name))
              for name in layout.ATTACK_IMAGES if name in attack.images]
    blocks: list[Block] = [FigureRow(images)] if images else []
    absent = [str(layout.ATTACK_IMAGES[n]) for n in layout.ATTACK_IMAGES if n not in attack.images]
    if absent:
        blocks.append(Paragraph("Missing image(s): " + ", ".join(f"`{a}`" for a in absent) + "."))
    return blocks


def attack_sweep_blocks(attack, study: dict) -> list[Block]:
    if attack.sweep is None:
        return [Paragraph(f"The sweep's table `{layout.ATTACK_SWEEP_CSV}` is missing.")]
    rows = sorted(attack.sweep, key=lambda r: (r["norm"], r["mode"], r["epsilon"]))
    return [
        Table(["norm", "mode", "ε (pixels)", "success rate", "median L2 of successes", "n"],
              [[r["norm"], r["mode"], f"{r['epsilon']:g}", pct(r["success_rate"]),
                "—" if r["median_l2"] is None else f"{r['median_l2']:.2f}", str(r["n"])] for r in rows],
              align="llrrrr"),
        Bullets(success_sentences(rows, study)),
    ]


def attack_section(art: Artifacts) -> list[Block]:
    attack, study = art.attack, art.study.get("attack", {})
    blocks: list[Block] = [Heading(2, PART_TITLES["attack"])]
    if attack.example is None and attack.sweep is None and not attack.images:
        return blocks + [Paragraph(
            "**The attack stage has not been run**: its artifacts are missing ("
            + ", ".join(f"`{m}`" for m in attack.missing) + "). Run `dvc repro attack` to add this part.")]
    blocks.append(Heading(3, "The fooling image"))
    blocks += (attack_example(attack.example, study) if attack.example is not None else
               [Paragraph(f"The example's record `{layout.ATTACK_EXAMPLE}` is missing.")])
    blocks += attack_images(attack)
    blocks.append(Heading(3, "Success rate vs ε"))
    blocks += attack_sweep_blocks(attack, study)
    if attack.success_png is not None:
        blocks.append(Figure("attack_success_vs_epsilon.png", attack.success_png,
                             "Fraction of correctly classified test images fooled, against the budget ε."))
    else:
        blocks.append(Paragraph("The success-vs-ε figure is missing."))
    if attack.metrics is not None:
        blocks.append(Paragraph(f"The attack stage's summary metrics are in `{layout.ATTACK_METRICS}` "
                                "(`dvc metrics show` lists them)."))
    return blocks
