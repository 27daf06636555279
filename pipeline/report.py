"""report stage: the whole study rebuilt as report/report.md and a self-contained report.html
from the artifacts of every earlier stage (the attack's are optional)."""

import sys
from pathlib import Path

from scratchnet.study.report import ReportError, build_report, write_report


def main() -> None:
    root = Path(".")  # DVC runs every stage from the project root, where layout's paths start
    try:
        report = build_report(root)
    except ReportError as err:
        sys.exit(str(err))
    for path in write_report(report, root):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
