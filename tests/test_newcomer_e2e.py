"""What a newcomer does with the README in hand, on a copy of the tiny study after its first
`dvc repro` (the session's `pristine_study`, copied for each test: it stays as the others expect it).

- Every README command block not marked `skip` or `output` runs as written (tests/readme_blocks.py).
- `dvc plots show` draws every chart with the network blocked, a sweep added with `-S '+...'`
  included, with no edit to dvc.yaml.
- A user error fails `dvc repro` with the stage's line and DVC's, and exit status 255.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from readme_blocks import blocks
from test_browser import Watched, browser  # noqa: F401  (the module's Chromium)
from tiny_study import BIN, PROJECT, dvc, environment, run

pytestmark = pytest.mark.e2e

PAGE = Path(".dvc/plots/page.html")


def plots_page(project: Path) -> None:
    """The offline page `make venv` writes (git-ignored, so not in a copy of the project)."""
    if (PROJECT / PAGE).is_file():
        shutil.copy(PROJECT / PAGE, project / PAGE)
    else:
        run([str(BIN / "python"), "-m", "scratchnet.study.plots.offline", str(PAGE)], project)


@pytest.fixture
def study(pristine_study, clone) -> Path:
    """A private copy of the pristine run (its MLflow store moved with it), committed."""
    project = clone(pristine_study.path, "study")
    plots_page(project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "-m", "the tiny study, run"], project)
    return project


def test_the_readmes_command_blocks_run_as_written_on_the_tiny_study(study):
    ran = []
    for block in blocks():
        if block.marker or block.lang == "yaml":  # yaml: a fragment, checked in tests/test_readme.py
            continue
        command = (
            ["bash", "-euo", "pipefail", "-c", block.text]
            if block.lang == "shell"
            else [str(BIN / "python"), "-c", block.text]
        )
        result = subprocess.run(command, cwd=study, env=environment(), capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (
            f"README.md:{block.line} failed ({result.returncode}):\n{block.text}\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        ran.append(block.text.strip().splitlines()[0])
    assert any("+ablate.twolayer.reg" in line for line in ran)  # the new sweep, with its `+`
    params = yaml.safe_load((study / "params.yaml").read_text())
    assert params["ablate"]["twolayer"]["reg"] == [0.001]
    assert (study / "results/evaluate/sweeps/twolayer.reg.json").is_file()


def test_dvc_plots_show_draws_every_chart_offline_the_new_sweep_included(study, browser):  # noqa: F811
    run(dvc("exp", "run", "-S", "+ablate.twolayer.reg=[0.001]"), study)
    shown = json.loads(run(dvc("plots", "show", "--json"), study).stdout)
    assert not shown.get("errors"), shown["errors"]
    sweeps = sorted(Path(name).stem for name in shown["data"] if name.startswith("results/evaluate/sweeps/"))
    params = yaml.safe_load((study / "params.yaml").read_text())["ablate"]
    assert sweeps == sorted(f"{m}.{key}" for m in ("softmax", "twolayer") for key in params[m])
    run(dvc("plots", "show"), study)
    page = study / "dvc_plots" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr" not in html and "<script src" not in html

    watched = Watched(browser)
    try:
        watched.page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
        watched.page.goto(page.as_uri(), wait_until="load")
        watched.page.wait_for_function(
            "Array.from(document.querySelectorAll('body > div[id]')).every(d => d.querySelector('svg, canvas'))",
            timeout=60_000,
        )
        charts = watched.page.evaluate("""Array.from(document.querySelectorAll('body > div[id]'), d => ({
            drawn: d.querySelectorAll('svg, canvas').length,
            title: (d.querySelector('.role-title-text') || {}).textContent || '',
            marks: d.querySelectorAll('.mark-symbol path, .mark-line path').length}))""")
        watched.screenshot("dvc-plots-offline.png", full_page=True)
    finally:
        watched.close()
    titles = [c["title"] for c in charts]
    assert len(charts) == len(shown["data"]) and all(c["drawn"] for c in charts), charts
    assert "twolayer.reg: test accuracy vs reg" in titles, titles
    assert all(c["marks"] for c in charts), charts  # every chart has its points or lines
    assert watched.errors == []
    assert [u for u in watched.requests if not u.startswith(("file:", "data:"))] == []


def test_a_user_error_fails_dvc_repro_with_the_stages_line_dvcs_and_255(study):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["twolayer"]["batch_size"] = 0
    (study / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    failed = run(dvc("repro"), study, check=False)
    assert failed.returncode == 255
    output = failed.stdout + failed.stderr
    (quoted,) = [b for b in blocks() if b.marker == "output" and "params:" in b.text]
    for line in quoted.text.strip().splitlines():
        assert line in output, output[-2000:]
