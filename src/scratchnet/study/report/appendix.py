"""The appendix: where the data came from, the code, params and machine, how long each stage
took, and the MLflow runs behind every table. Kept after the results: a reader wants the answer
first, and these pages when checking it."""

from __future__ import annotations

from scratchnet.study.params import MODELS
from scratchnet.study.report.artifacts import Artifacts
from scratchnet.study.report.document import Block, Code, Heading, Paragraph, Table
from scratchnet.study.report.environment import Environment
from scratchnet.study.report.text import MODEL_NAMES, PART_TITLES, counts_table, duration, kv_table, scalar_items


def stage_times(art: Artifacts) -> list[tuple[str, str, float | None]]:
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
    example = art.attack.example
    rows.append(("attack", "fooling image and success-vs-epsilon sweep" if example else "not run",
                 example.get("seconds") if example else None))
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
    if prov.get("fell_back") is True:
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
        "**Preprocessing.** The splits are stored as uint8 pixels with the training split's "
        "per-pixel mean and standard deviation; each model scales its own mini-batches ("
        + ", ".join(f"{m} `{art.params[m]['normalize']}`" for m in MODELS)
        + f"); validation split drawn with seed {meta.get('seed', '?')}."
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

    return blocks


def timings(art: Artifacts) -> list[Block]:
    times = stage_times(art)
    total = sum(s for _, _, s in times if s is not None)
    return [
        Paragraph("**How long each stage took** (from the `seconds` each stage records):"),
        Table(["stage", "work", "time"],
              [[f"`{s}`", w, duration(t)] for s, w, t in times] + [["**total**", "", f"**{duration(total)}**"]],
              align="llr"),
    ]


def mlflow_section(art: Artifacts) -> list[Block]:
    runs = [res.train for res in art.models.values()]
    runs += [a for res in art.models.values() for a in res.ablations.values()]
    experiments = list(dict.fromkeys(str(r.get("mlflow_experiment_id")) for r in runs))
    uris = list(dict.fromkeys(str(r.get("tracking_uri")) for r in runs))
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
