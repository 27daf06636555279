"""report stage: the whole study rebuilt as report/report.md and a self-contained report.html
from the artifacts of every earlier stage (the attack's are optional)."""

from pathlib import Path

from scratchnet.study.cli import stage_main
from scratchnet.study.report import build_report, write_report


def main() -> None:
    root = Path(".")  # DVC runs every stage from the project root, where layout's paths start
    report = build_report(root)
    for path in write_report(report, root):
        print(f"wrote {path}")


if __name__ == "__main__":
    stage_main("report", main)
