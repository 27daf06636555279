"""The report's titles and the ways it writes numbers and small tables.

Accuracies are fractions of 1 in tables (as the study printed them) and percentages in prose
where the study gave a percentage; differences between accuracies are in percentage points
("pt"). Hyper-parameter values, accuracies and mean ± std come from `evaluation`, the one
formatter the evaluate stage's tables use too.
"""

from __future__ import annotations

from typing import Any

from scratchnet.study.evaluation import acc_text, mean_std_text, pct, value_text
from scratchnet.study.plots import png_bytes
from scratchnet.study.report.document import Figure, Table

__all__ = ["TITLE", "PART_TITLES", "MODEL_NAMES", "acc_text", "mean_std_text", "pct", "value_text",
           "points", "signed", "duration", "kv_table", "counts_table", "scalar_items", "figure", "safe_name"]

TITLE = "scratchnet: neural networks from scratch on CIFAR-10 — study report"
PART_TITLES = {  # in the order of the document
    "glance": "Results at a glance",
    "distance": "How far from the study",
    "fit": "Part 1: fitting by gradient descent",
    "softmax": "Part 2: softmax classifier",
    "twolayer": "Part 3: two-layer network",
    "attack": "Part 4: fooling images",
    "provenance": "Appendix A: provenance and timings",
    "mlflow": "Appendix B: MLflow runs behind the tables",
}
MODEL_NAMES = {"softmax": "softmax classifier", "twolayer": "two-layer network"}


def points(diff: float) -> str:
    """A difference of accuracies in percentage points, signed: '+0.06 pt'."""
    return f"{100 * diff:+.2f} pt"


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


def scalar_items(data: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Flattens nested dicts to (dotted key, scalar) pairs, leaving out lists and `skip` keys."""
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            if k in skip:
                continue
            out.extend(scalar_items(v, f"{prefix}{k}.", skip) if isinstance(v, dict) else
                       [] if isinstance(v, list) else [(f"{prefix}{k}", v)])
    return out


def kv_table(pairs, header=("key", "value")) -> Table:
    return Table(list(header), [[f"`{k}`", value_text(v)] for k, v in pairs], align="ll")


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


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def figure(name: str, fig, caption: str) -> Figure:
    """A matplotlib figure as the report's figure block, rendered to PNG once."""
    return Figure(name, png_bytes(fig), caption)
