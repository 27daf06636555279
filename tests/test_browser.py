"""What a person sees, checked in a real browser: headless Chromium (Debian's `chromium`)
driven by Playwright, on the tiny end-to-end study.

- report/report.html: every image decodes, the console stays clean, nothing is fetched from
  outside the file; a screenshot is kept under build/screenshots/.
- The MLflow UI that `make ui` starts: its printed URL opens the runs table listing the sweep
  parents, and a child run's page shows its `test_acc` and its per-epoch `val_acc` chart.

One browser for the module. Playwright never downloads a browser here: it is pointed at the
system one. Without it the tests skip (outside CI) saying how to install it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from processes import free_port, service
from tiny_study import environment, mlflow_runs

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# No first-run, sync, component or background traffic: the only requests are the page's own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"  # .gitignore'd
HOW_TO_INSTALL = "apt-get install -y chromium (Debian), then `make venv` for the playwright package"


@pytest.fixture(scope="module")
def browser():
    missing = []
    if not Path(CHROMIUM).is_file():
        missing.append(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("no playwright Python package")
    if missing:
        message = f"browser tests need a browser: {'; '.join(missing)}. Install: {HOW_TO_INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs Chromium; CI must not skip these tests)")
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Watched:
    """A page with every request, console error and uncaught exception recorded."""

    def __init__(self, browser, width: int = 1400, height: int = 900):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / name
        self.page.screenshot(path=str(path), full_page=full_page)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.context.close()


def test_the_report_shows_every_image_and_fetches_nothing_outside_the_file(browser, tiny_project, first_repro):
    report = tiny_project / "report" / "report.html"
    watched = Watched(browser, width=1200)
    try:
        # Anything that would leave the file is refused (and still recorded as requested).
        watched.page.route(re.compile(r"^(?!file:|data:)"), lambda route: route.abort())
        watched.page.goto(report.as_uri(), wait_until="load")
        images = watched.page.evaluate(
            "Array.from(document.images, i => ({src: i.src.slice(0, 60), width: i.naturalWidth}))"
        )
        shot = watched.screenshot("report.png", full_page=True)
    finally:
        watched.close()
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (tiny_project / "report" / "report.md").read_text())
    assert len(images) == len(figures) > 0  # the HTML shows every figure of the markdown
    assert [i for i in images if i["width"] == 0] == []
    assert watched.errors == []
    assert [u for u in watched.requests if not u.startswith(("file:", "data:"))] == []
    assert shot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def ui_printed(tiny_project, first_repro):
    """What `make ui`'s command prints on the tiny study before it serves, on a free port."""
    port = free_port()
    with service(
        [sys.executable, "-m", "scratchnet.study.ui", "--port", str(port)],
        cwd=tiny_project,
        env=environment(),
        stdout=subprocess.PIPE,
    ) as server:
        printed = []
        while not printed or "Ctrl-C" not in printed[-1]:
            printed.append(server.process.stdout.readline())
            assert printed[-1], f"make ui stopped: {''.join(printed)}"
        server.wait_until_up(f"http://127.0.0.1:{port}/health")
        yield "".join(printed)


@pytest.fixture(scope="module")
def mlflow_ui(ui_printed):
    """The runs URL `make ui` prints."""
    return re.search(r"Runs of the study: (\S+)", ui_printed).group(1)


def test_make_ui_prints_the_url_of_the_runs_table_which_lists_the_sweeps(browser, mlflow_ui, tiny_project):
    client, runs = mlflow_runs(tiny_project)
    experiment_id = runs[0].info.experiment_id
    assert re.fullmatch(
        rf"http://127\.0\.0\.1:\d+/#/experiments/{experiment_id}/runs\?workflowType=machine_learning"
        r"&viewStateShareKey=scratchnet\.runs",
        mlflow_ui,
    )
    parents = sorted({r.info.run_name for r in runs if r.data.tags.get("scratchnet.stage") == "ablate-sweep"})
    assert parents  # the tiny study has sweeps
    watched = Watched(browser)
    try:
        watched.page.goto(mlflow_ui)
        # the "Model training" side bar, not the GenAI one (Traces, Judges, Prompts, ...)
        watched.page.get_by_role("link", name="Models", exact=True).wait_for(timeout=60_000)
        for name in parents:
            watched.page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        # what a user compares is a column of the table, from the printed address alone
        for metric in ("test_acc", "val_acc"):
            watched.page.get_by_role("columnheader").filter(has_text=metric).first.wait_for(timeout=60_000)
        watched.screenshot("mlflow-runs.png")
    finally:
        watched.close()


def test_a_child_runs_page_shows_its_test_accuracy_and_the_val_acc_chart(browser, mlflow_ui, tiny_project):
    client, runs = mlflow_runs(tiny_project)
    child = next(
        r for r in runs if r.data.tags.get("scratchnet.stage") == "ablate" and "mlflow.parentRunId" in r.data.tags
    )
    base = mlflow_ui.split("/#/")[0]
    experiment_id = child.info.experiment_id
    watched = Watched(browser)
    try:
        watched.page.goto(f"{base}/#/experiments/{experiment_id}/runs/{child.info.run_id}")
        metrics = watched.page.get_by_role("table").filter(has_text="test_acc").first
        metrics.wait_for(timeout=60_000)
        row = metrics.get_by_role("row").filter(has_text="test_acc").first
        shown = f"{child.data.metrics['test_acc']:.3f}"[:4]  # the UI rounds; compare the leading digits
        assert shown in row.inner_text()
        watched.screenshot("mlflow-run.png", full_page=True)
        watched.page.goto(f"{base}/#/experiments/{experiment_id}/runs/{child.info.run_id}/model-metrics")
        chart = (
            watched.page.locator(".js-plotly-plot, canvas, svg.main-svg").filter(has=watched.page.locator("*")).first
        )
        # Eight charts now (the curve, test_acc, robust_*): the UI draws only those in view, so
        # find val_acc as a user would, through the page's chart search.
        watched.page.get_by_placeholder("Search metric charts").fill("val_acc")
        try:
            watched.page.get_by_text("val_acc", exact=True).first.wait_for(timeout=60_000)
            chart.wait_for(timeout=60_000)
        finally:
            watched.screenshot("mlflow-run-charts.png", full_page=True)
    finally:
        watched.close()


def test_make_ui_prints_each_sweep_with_its_baseline_best_first(browser, ui_printed, tiny_project):
    # A baseline centres every sweep, so it is no sweep parent's child: the printed URL of a
    # sweep searches its runs with its baseline and sorts them by test accuracy.
    client, runs = mlflow_runs(tiny_project)
    sweep = "twolayer.hidden_dim"
    url = re.search(rf"^  {re.escape(sweep)} +(\S+)$", ui_printed, re.MULTILINE).group(1)
    members = [r for r in runs if r.data.tags.get(f"scratchnet.in_sweep.{sweep}") == "true"]
    names = {r.info.run_name for r in members}
    assert any(name.startswith("twolayer baseline") for name in names)
    assert any(name.startswith("twolayer hidden_dim=") for name in names)
    best = max(r.data.metrics.get("test_acc", -1.0) for r in members)
    watched = Watched(browser)
    try:
        watched.page.goto(url)
        for name in names:
            watched.page.get_by_text(name, exact=True).first.wait_for(timeout=60_000)
        count = watched.page.get_by_text(re.compile(r"^\d+ matching runs$")).first
        count.wait_for(timeout=60_000)
        assert count.inner_text() == f"{len(members)} matching runs"
        shown = [
            line
            for row in watched.page.get_by_role("row").all_inner_texts()
            for line in row.splitlines()
            if line in names
        ]
        # every run of the sweep, its baseline's included, and nothing else; the best first
        assert sorted(shown) == sorted(r.info.run_name for r in members), shown
        assert shown[0] in {r.info.run_name for r in members if r.data.metrics.get("test_acc", -1.0) == best}, shown
        watched.screenshot("mlflow-sweep.png")
    finally:
        watched.close()
