"""The report as a list of blocks, and its two renderings: Markdown and self-contained HTML.

Sections build blocks (headings, paragraphs, tables, figures); `to_markdown` and `to_html`
render the same blocks, so the two files cannot drift apart. Inline text uses two Markdown
marks only, `code` and **bold**, which the HTML renderer translates after escaping.

Markdown refers to figures as files beside it (`figures/<name>.png`); HTML embeds each PNG as
a base64 data URI, so the HTML file opens anywhere with no other file and no network.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar


@dataclass(frozen=True)
class Heading:
    level: int  # 1 = the title, 2 = a part, 3 = a subsection
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str  # inline text: `code` and **bold** are its only marks


@dataclass(frozen=True)
class Bullets:
    items: list[str]  # each item inline text, as a paragraph's


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    align: str = ""  # one letter per column, "l" or "r"; default: first left, others right

    def alignment(self) -> str:
        return self.align or ("l" + "r" * (len(self.header) - 1))


T = TypeVar("T")


def table_of(items: Iterable[T], columns: Sequence[tuple[str, str, Callable[[T], str]]]) -> Table:
    """A row per item, a column per (header, align, cell): cell(item) is the row's text there."""
    return Table(
        [header for header, _, _ in columns],
        [[cell(item) for _, _, cell in columns] for item in items],
        "".join(align for _, align, _ in columns),
    )


@dataclass(frozen=True)
class Figure:
    name: str  # file name in the report's figures folder, e.g. "softmax_curve.png"
    png: bytes = field(repr=False)
    caption: str


@dataclass(frozen=True)
class FigureRow:
    figures: list[Figure]  # shown side by side (the attack's three images)


@dataclass(frozen=True)
class Code:
    text: str  # preformatted (commands to copy), shown as is: no inline marks


Block = Heading | Paragraph | Bullets | Table | Figure | FigureRow | Code


def figures_of(blocks: list[Block]) -> list[Figure]:
    """Every figure of the document, in order of appearance."""
    out = []
    for block in blocks:
        if isinstance(block, Figure):
            out.append(block)
        elif isinstance(block, FigureRow):
            out.extend(block.figures)
    return out


# ---------------------------------------------------------------------------------------- Markdown


def _md_text(text: str) -> str:
    """Inline text with < and > escaped outside `code` spans: text from artifacts (an error
    message, a path) must read as text, never as HTML that a Markdown viewer would render."""
    pieces = re.split(r"(`[^`]+`)", str(text))
    return "".join(p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;") for p in pieces)


def _md_cell(text: str) -> str:
    return _md_text(text).replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    rule = {"l": ":---", "r": "---:"}
    lines = [
        "| " + " | ".join(_md_cell(h) for h in table.header) + " |",
        "| " + " | ".join(rule[a] for a in table.alignment()) + " |",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_markdown(blocks: list[Block], figures_dir: str = "figures") -> str:
    """figures_dir: where the figure files are, relative to the Markdown file (POSIX)."""

    def image(fig: Figure) -> str:
        return f"![{fig.caption}]({figures_dir}/{fig.name})"

    def row(figures: FigureRow) -> str:
        captions = "; ".join(f"{i + 1}. {f.caption}" for i, f in enumerate(figures.figures))
        return " ".join(image(f) for f in figures.figures) + f"\n\n*{captions}*"

    render = {
        Heading: lambda b: "#" * b.level + " " + _md_text(b.text),
        Paragraph: lambda b: _md_text(b.text),
        Bullets: lambda b: "\n".join(f"- {_md_text(item)}" for item in b.items),
        Table: _md_table,
        Figure: lambda b: f"{image(b)}\n\n*{b.caption}*",
        FigureRow: row,
        Code: lambda b: "```\n" + b.text.rstrip("\n") + "\n```",
    }
    return "\n\n".join(render[type(block)](block) for block in blocks) + "\n"


# -------------------------------------------------------------------------------------------- HTML

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 62rem;
       margin: 2rem auto; padding: 0 1rem; line-height: 1.5; color: #1b1b1b; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.5rem; }
table { border-collapse: collapse; margin: 1rem 0; font-size: .92rem; }
th, td { border: 1px solid #ccc; padding: .25rem .6rem; }
th { background: #f3f3f3; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f3f3f3; padding: 0 .2rem; border-radius: 3px; font-size: .9em;
       overflow-wrap: anywhere; }
pre { background: #f3f3f3; padding: .6rem; overflow-x: auto; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; }
figcaption { font-size: .9rem; color: #555; }
.row { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-end; }
"""


def _inline(text: str) -> str:
    """Escapes text for HTML, then turns `code` and **bold** into elements."""
    out = html.escape(str(text), quote=True)
    out = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)


def _html_figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    alt = html.escape(fig.caption, quote=True)
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_inline(fig.caption)}</figcaption></figure>"
    )


def _html_table(table: Table) -> str:
    align = table.alignment()
    head = "".join(f'<th class="{a}">{_inline(h)}</th>' for h, a in zip(table.header, align))
    body = "".join(
        "<tr>" + "".join(f'<td class="{a}">{_inline(c)}</td>' for c, a in zip(row, align)) + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(blocks: list[Block], title: str) -> str:
    """One HTML file with its style and images inside: no link, script or remote source."""
    render = {
        Heading: lambda b: f"<h{b.level}>{_inline(b.text)}</h{b.level}>",
        Paragraph: lambda b: f"<p>{_inline(b.text)}</p>",
        Bullets: lambda b: "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>",
        Table: _html_table,
        Figure: _html_figure,
        FigureRow: lambda b: '<div class="row">' + "".join(_html_figure(f) for f in b.figures) + "</div>",
        Code: lambda b: f"<pre><code>{html.escape(b.text)}</code></pre>",
    }
    body = "\n".join(render[type(block)](block) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
