"""The HTML monitor report opens in headless Chromium with no console errors, no network, and its charts drawn."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stead.client import Client
from stead.monitoring.html import render_html, vendored
from stead.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: apt-get install chromium (scripts/_system.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Client:
    from test_report import _customers, deployed, log_predictions

    folder = tmp_path_factory.mktemp("html") / "store"
    client = Client(settings=Settings(uri=str(folder), user="tester"))
    model, rng = deployed(client)
    for i, shift in enumerate([0, 4, 12]):
        log_predictions(
            client, "churn-api", _customers(rng, 600, age_shift=shift), model, 1.7e9 + i * 10_000, i + 1, 0.25
        )
        client.record_monitor("churn-api", window=600, notify=False)
    return client


def _open(browser: Any, page_html: str, tmp_path: Path) -> tuple[Any, list[str], list[str]]:
    path = tmp_path / "report.html"
    path.write_text(page_html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: requests.append(req.url) if not req.url.startswith("file://") else None)
    page.goto(path.as_uri())
    page.wait_for_function("window.steadReady === true", timeout=10_000)
    return page, errors, requests


def test_report_opens_with_charts_drawn_and_no_errors(browser: Any, monitored: Client, tmp_path: Path) -> None:
    report = monitored.monitor("churn-api", window=600)
    page_html = render_html(
        report,
        drift_history=monitored.drift_history("churn-api"),
        reports=monitored.store.list_monitor_reports("churn-api"),
        alerts=[a.model_dump(mode="json") for a in monitored.list_alerts(open_only=False)],
    )
    assert "<script src" not in page_html and "<link" not in page_html  # everything inlined
    page, errors, requests = _open(browser, page_html, tmp_path)
    try:
        assert errors == [] and requests == []
        charts = page.evaluate(
            """() => window.steadCharts.map(u => ({
                   id: u.root.parentElement.id || u.root.parentElement.querySelector('h3')?.textContent,
                   series: u.series.length, points: u.data[0].length,
                   width: u.root.querySelector('canvas').width, height: u.root.querySelector('canvas').height}))"""
        )
        by_id = {c["id"]: c for c in charts}
        assert {"age", "income", "tenure", "drift-time", "perf-window", "perf-reports"} <= set(by_id)
        assert all(c["width"] > 0 and c["height"] > 0 for c in charts)
        assert by_id["age"]["points"] == 20 and by_id["age"]["series"] == 3  # 20 profile bins, reference + current
        assert by_id["drift-time"]["points"] == 3 and by_id["drift-time"]["series"] == 4  # 3 reports, 3 features
        assert by_id["perf-window"]["points"] == 10 and by_id["perf-reports"]["points"] == 3
        text = page.inner_text("body")
        assert "Dataset drift" in text and "drift_share" in text
        painted = page.evaluate(
            """() => { const c = document.querySelector('#histograms canvas');
                       const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
        )
        assert painted > 1000  # the bars and axes were drawn, not an empty canvas
    finally:
        page.close()


def test_empty_report_still_renders(browser: Any, tmp_path: Path) -> None:
    report = {
        "window": {"rows": 0, "start": None, "end": None},
        "drift": {"drifted": False, "share": 0.0, "threshold": 0.3, "columns": {}, "problems": {}},
        "performance": {"labeled": 0, "label_coverage": 0.0},
        "estimated": {},
        "alerts": [],
        "timeline": [],
        "histograms": {},
    }
    page, errors, requests = _open(browser, render_html(report), tmp_path)
    try:
        assert errors == [] and requests == []
        assert "No stored reports yet" in page.inner_text("#drift-time")
    finally:
        page.close()


def test_vendored_uplot_ships_with_its_license() -> None:
    assert "MIT License" in vendored("uplot/LICENSE")
    assert vendored("uplot/uPlot.iife.min.js").startswith("/*! https://github.com/leeoniya/uPlot")
