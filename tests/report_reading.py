"""Reading the rendered report's Markdown back, for tests of what it says."""

from __future__ import annotations


def sweep_table(markdown: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first table after the heading line `heading`."""
    lines = markdown.splitlines()
    start = lines.index(heading)
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append([c.strip() for c in line.strip("|").split(" | ")])
        elif table:
            break
    return table[2:]  # without header and rule


def section_text(markdown: str, heading: str) -> str:
    """The text from `heading` up to the next heading of the same or a higher level."""
    level = len(heading.split(" ")[0])
    lines = markdown.splitlines()
    start = lines.index(heading)
    fenced = False
    for end in range(start + 1, len(lines)):
        fenced ^= lines[end].startswith("```")
        if not fenced and lines[end].startswith("#") and len(lines[end].split(" ")[0]) <= level:
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])
