"""The appendix: where the data came from, the params and the numerical environment, and how to
find the MLflow runs behind every table. Kept after the results: a reader wants the answer
first, and these pages when checking it. Nothing here describes the run itself (no time, host,
pid or run id): MLflow holds those, found by each run's deterministic run key."""

from __future__ import annotations

from scratchnet.study.cache import numeric_environment
from scratchnet.study.identity import config_hash
from scratchnet.study.report import PART_TITLES, Artifacts
from scratchnet.study.report.document import Block, Code, Heading, Paragraph, Table
from scratchnet.study.report.sections import kv_table

# Provenance fields about the fetch itself, not the data (its duration, a network error's text)
RUN_FACTS = ("counts", "seconds", "reason", "started", "ended")


def class_table(counts: dict[str, dict[str, int]]) -> Table:
    """{split: {class: n}} (Dataset.counts) as a row per class, a column per split, and totals."""
    splits = list(counts)
    classes = list(dict.fromkeys(c for s in splits for c in counts[s]))
    rows = [[c] + [str(counts[s].get(c, 0)) for s in splits] for c in classes]
    rows.append(["**total**"] + [f"**{sum(counts[s].values())}**" for s in splits])
    return Table(["class"] + splits, rows)


def provenance(art: Artifacts) -> list[Block]:
    prov, meta = art.provenance, art.processed
    blocks: list[Block] = [Heading(2, PART_TITLES["provenance"])]
    fmt = prov.get("format")
    blocks.append(
        Paragraph(
            f"**Data.** {prov.get('dataset', 'CIFAR-10')}, read from `{prov.get('location', prov.get('source', 'an unnamed source'))}`"
            + (f" ({fmt} format)" if fmt else "")
            + "."
            + (f" sha256 `{prov['sha256']}`." if prov.get("sha256") else "")
            + (f" md5 `{prov['md5']}`." if prov.get("md5") else "")
        )
    )
    if prov.get("fell_back") is True:
        blocks.append(
            Paragraph(
                "**The official CIFAR-10 release was not used**: the fetch fell back to the bundled "
                "mirror (the fetch stage's console output says why)."
            )
        )
    elif "fell_back" in prov:
        blocks.append(Paragraph("The official release was used (no fallback to the bundled mirror)."))
    blocks.append(
        kv_table(
            [(k, v) for k, v in prov.items() if k not in RUN_FACTS and not isinstance(v, (dict, list))],
            "provenance field",
        )
    )
    if prov.get("counts"):
        blocks += [Paragraph("Examples per class in the fetched dataset:"), class_table(prov["counts"])]
    limits = [f"`{k}` = {meta[k]}" for k in ("train_limit", "test_limit") if meta.get(k) is not None]
    blocks.append(
        Paragraph(
            "**Preprocessing.** The splits are stored as uint8 pixels with the training split's "
            "per-pixel mean and standard deviation; each model scales its own mini-batches ("
            + ", ".join(f"{m} `{art.params[m]['normalize']}`" for m in art.summary.models)
            + f"); validation split drawn with seed {meta.get('seed', '?')}."
            + (f" **A reduced run**: {', '.join(limits)}." if limits else "")
        )
    )
    if meta.get("counts"):  # {split: {class: n}}, as the fetched dataset's
        blocks.append(
            Table(
                ["split", "examples", "per class (min – max)"],
                [
                    [s, str(sum(c.values())), f"{min(c.values())} – {max(c.values())}"]
                    for s, c in meta["counts"].items()
                ],
            )
        )
    env = numeric_environment()  # what decides float32 results besides the code, as the run keys have it
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture'] or '?'})" for b in env["blas"])
    return blocks + [
        Paragraph(
            "**Parameters and numerical environment** (float32 results can differ between BLAS "
            "libraries and CPU families; the runs' MLflow tags name the same):"
        ),
        Table(
            ["item", "value"],
            [
                ["params hash", f"`{config_hash(art.params)}` (the `scratchnet.params_hash` tag of every MLflow run)"],
                ["NumPy", env["numpy"]],
                ["BLAS", blas or "none found"],
            ],
            align="ll",
        ),
    ]


def mlflow_section(art: Artifacts) -> list[Block]:
    experiment = art.params["tracking"]["experiment"]
    rows = []
    for model, m in art.summary.models.items():
        rows.append([f"{m.title} baseline (curve, test accuracy)", f"`{art.train[model]['seeds'][0].get('key')}`"])
        rows += [
            [
                f"{m.title} sweep `{s.param}`",
                f"{sum(r.n_seeds for r in s.rows)} runs, tag `scratchnet.in_sweep.{model}.{s.param}` = `true`",
            ]
            for s in m.sweeps.values()
        ]
    return [
        Heading(2, PART_TITLES["mlflow"]),
        Paragraph(
            f"Every training run above is logged to MLflow, experiment `{experiment}` (the store "
            "`MLFLOW_TRACKING_URI` names, by default `mlflow.db` in the project). A run is named by its "
            "run key (what it computed, as a hash: the same key on every machine), its tag "
            "`scratchnet.run_key`; the runs of one sweep carry its `scratchnet.in_sweep.<model>.<key>` tag, "
            "so the UI shows and compares them together."
        ),
        Paragraph("To open them: `make ui` starts the UI and prints one address per sweep; a search for one run:"),
        Code("tags.\"scratchnet.run_key\" = '<run key>'"),
        Table(["table", "MLflow runs"], rows, align="ll"),
    ]
