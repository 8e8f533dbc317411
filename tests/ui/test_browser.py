"""The web UI in a real browser: Debian's headless chromium, driven by Playwright, over a live server.

Screenshots of every page land in ``test-artifacts/screenshots/`` (printed at the end of the run).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ui_site import READ, WRITE, Site

pytest.importorskip("playwright")
pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: apt-get install chromium (scripts/_system.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


class Watched:
    """A page whose console errors, page errors and failed requests are collected."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.page = context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        self.page.on(
            "response",
            lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.request.method} {r.url}"),
        )

    def visit(self, url: str) -> Any:
        response = self.page.goto(url, wait_until="load")
        self.page.wait_for_function("window.steadReady === true", timeout=10_000)
        return response


@pytest.fixture
def anonymous(browser: Any, site: Site) -> Iterator[Watched]:
    context = browser.new_context(base_url=site.base, viewport={"width": 1360, "height": 900})
    yield Watched(context)
    context.close()


def sign_in(w: Watched, token: str, next_page: str = "/ui/") -> None:
    w.visit(f"/ui/login?next={next_page}")
    w.page.fill("input[name=token]", token)
    w.page.click("button[type=submit]")
    w.page.wait_for_function("window.steadReady === true")


def shot(page: Any, name: str) -> None:
    """The whole page, and its first screen (``top/``) for the README."""
    (SHOTS / "top").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.screenshot(path=str(SHOTS / "top" / f"{name}.png"))


def drawn_charts(page: Any) -> list[int]:
    """Points drawn per uPlot chart on the page (each has a canvas)."""
    return page.eval_on_selector_all(
        "[data-chart]",
        "els => els.map(e => e.querySelector('canvas') && e.dataset.drawn === '1' ? Number(e.dataset.points) : -1)",
    )


def test_every_page_loads_without_errors_and_draws_its_charts(
    anonymous: Watched, site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    store = site.store
    runs = store.search_runs("exploration", None, None, 10, None)
    pages: list[tuple[str, str, int]] = [  # (name, url, charts expected at least)
        ("01-overview", "/ui/", 0),
        ("02-runs", "/ui/runs", 0),
        ("03-compare", f"/ui/runs/compare?id={runs[0].id}&id={runs[1].id}", 2),
        ("04-run", f"/ui/runs/{site.run_id}", 2),
        ("05-dataset", f"/ui/datasets/{site.dataset_id}", 0),
        ("06-model", "/ui/models/churn", 0),
        ("07-lineage", "/ui/lineage?ref=churn%40champion", 0),
        ("08-deployment", "/ui/deployments/churn-api", 4),
        ("09-lineage-deployment", "/ui/lineage?ref=deployment%3Achurn-api", 0),
        ("10-login", "/ui/login", 0),
    ]
    w = anonymous
    timings = {}
    for name, url, charts in pages:
        started = time.perf_counter()
        response = w.visit(url)
        timings[name] = time.perf_counter() - started
        assert response.status == 200, (url, response.status)
        counts = drawn_charts(w.page)
        assert len(counts) >= charts, (url, counts)
        assert all(c > 0 for c in counts), f"{url}: a chart has no data: {counts}"
        shot(w.page, name)
    assert not w.problems, w.problems

    # what each page must show
    w.visit("/ui/")
    body = w.page.inner_text("main")
    assert "churn-api" in body and "champion" in body.lower()
    assert re.search(r"v\d+ primary", body) or "primary" in body
    assert w.page.locator("#alerts tbody tr").count() >= 1  # the drift alert is open
    w.visit(f"/ui/datasets/{site.dataset_id}")
    assert w.page.locator("svg.hist rect.bar").count() > 10  # per-column histograms
    w.visit(f"/ui/runs/{site.run_id}")
    assert w.page.locator("img[alt='plots/roc.png']").evaluate("img => img.naturalWidth") == 120
    assert "support_calls matter most" in w.page.inner_text("pre.preview >> nth=0")
    assert w.page.locator("script:has-text('not run')").count() == 0  # artifact text is escaped, never run
    w.visit("/ui/models/churn")
    versions = w.page.inner_text("table.versions")
    assert "rejected" in versions and "✗" in versions  # the bad candidate and its failing gate
    w.visit("/ui/lineage?ref=churn%40champion")
    assert w.page.locator("svg#lineage .node").count() >= 5
    w.page.locator("svg#lineage a.node[data-id^='run:']").first.click()
    w.page.wait_for_url(re.compile(r"/ui/runs/[0-9a-f]+"))
    w.visit("/ui/deployments/churn-api")
    assert w.page.locator("svg.heatmap rect").count() >= 5 * 5  # features x reports
    assert w.page.locator("ol.timeline li").count() >= 2  # canary decisions with their evidence
    assert "advance" in w.page.inner_text("#rollouts") and "promote" in w.page.inner_text("#rollouts")
    assert not w.problems, w.problems
    with capsys.disabled():
        print(f"\nUI screenshots: {SHOTS}")
        print("page load (browser, ms): " + ", ".join(f"{k[3:]} {v * 1000:.0f}" for k, v in timings.items()))


def test_runs_filter_sort_columns_and_compare(anonymous: Watched, site: Site) -> None:
    w = anonymous
    w.visit("/ui/runs?experiment=exploration&filter=params.C+%3D+%270.5%27")
    assert w.page.locator("table.runs tbody tr").count() == 1
    w.visit("/ui/runs?filter=metrics.nope+%3E+%3D")
    assert w.page.locator(".flash.bad").count() == 1  # a bad filter is shown, not a 500
    w.visit("/ui/runs?experiment=exploration&order_by=metrics.loss+ASC&cols=metrics.loss&cols=params.C")
    headers = w.page.inner_text("table.runs thead")
    assert "loss" in headers and "C" in headers and "accuracy" not in headers
    checks = w.page.locator("input.pick")
    checks.nth(0).check()
    checks.nth(1).check()
    w.page.click("#compare")
    w.page.wait_for_url(re.compile(r"/ui/runs/compare"))
    w.page.wait_for_function("window.steadReady === true")
    assert "Compare 2 runs" in w.page.inner_text("h1")
    assert all(c > 0 for c in drawn_charts(w.page)) and len(drawn_charts(w.page)) >= 2
    assert not [p for p in w.problems if "HTTP 4" not in p], w.problems


def test_write_without_a_token_is_refused_and_says_why(anonymous: Watched, site: Site) -> None:
    w = anonymous
    before = site.store.get_deployment("churn-batch", history=0).revision
    w.visit("/ui/deployments/churn-batch")
    w.page.click("text=Roll back")
    w.page.wait_for_url(re.compile(r"/ui/actions/rollback"))
    assert "will refuse" in w.page.inner_text("main")
    with w.page.expect_response(lambda r: r.request.method == "POST") as posted:
        w.page.click("#confirm")
    assert posted.value.status == 401
    why = w.page.inner_text("#why")
    assert "refused" in why and "'write' role" in why and "not signed in" in why
    shot(w.page, "11-refused")
    assert site.store.get_deployment("churn-batch", history=0).revision == before

    # a read token is not enough either, and the page says which token it got
    sign_in(w, READ)
    w.visit("/ui/actions/rollback?deployment=churn-batch")
    with w.page.expect_response(lambda r: r.request.method == "POST") as posted:
        w.page.click("#confirm")
    assert posted.value.status == 403
    assert "signed in with a 'read' token" in w.page.inner_text("#why")
    assert site.store.get_deployment("churn-batch", history=0).revision == before

    # a forged form (no CSRF token) is refused too
    cookies = {c["name"]: c["value"] for c in w.context.cookies()}
    forged = httpx.post(
        f"{site.base}/ui/actions/rollback",
        data={"deployment": "churn-batch"},
        cookies={"stead_ui_token": cookies["stead_ui_token"]},
    )
    assert forged.status_code == 403 and "CSRF" in forged.text


def test_sign_in_keeps_the_token_in_an_httponly_strict_cookie(anonymous: Watched, site: Site) -> None:
    w = anonymous
    w.visit("/ui/login")
    w.page.fill("input[name=token]", "not-a-token")
    w.page.click("button[type=submit]")
    assert "unknown token" in w.page.inner_text("#why")
    sign_in(w, WRITE)
    assert "write token" in w.page.inner_text("header")
    cookie = next(c for c in w.context.cookies() if c["name"] == "stead_ui_token")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert w.page.evaluate("document.cookie").find("stead_ui_token") == -1  # invisible to scripts


def test_rollback_from_the_deployment_page_serves_the_previous_version(anonymous: Watched, site: Site) -> None:
    w = anonymous
    before = site.store.get_deployment("churn-batch", history=5)
    assert [(r.version, r.kind) for r in before.routes] == [(2, "primary")]
    sign_in(w, WRITE, "/ui/deployments/churn-batch")
    w.page.click("text=Roll back")
    w.page.wait_for_url(re.compile(r"/ui/actions/rollback"))
    assert "revision 1" in w.page.inner_text(".what")
    shot(w.page, "12-confirm-rollback")
    w.page.fill("input[name=reason]", "v2 scores the batch badly")
    w.page.click("#confirm")
    w.page.wait_for_url(re.compile(r"/ui/deployments/churn-batch\?done=rollback"))
    w.page.wait_for_function("window.steadReady === true")
    assert "Rolled back" in w.page.inner_text(".flash")
    assert "churn/1" in w.page.inner_text("#routes") and "churn/2" not in w.page.inner_text("#routes")
    after = site.store.get_deployment("churn-batch", history=5)
    assert [(r.version, r.kind) for r in after.routes] == [(1, "primary")]
    last = after.history[-1]
    assert (last.source, last.actor, last.reason) == ("rollback", "ui:write", "v2 scores the batch badly")
    assert not w.problems, w.problems

    # the next predictions are served by the previous version (servers poll routes every 0.25 s)
    body = {"instances": site.features.iloc[:3].to_dict(orient="records")}
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=site.base) as http:
        while time.monotonic() < deadline:
            if http.post("/v1/deployments/churn-batch/predict", json=body).json()["version"] == 1:
                break
            time.sleep(0.1)
        served = [http.post("/v1/deployments/churn-batch/predict", json=body).json()["version"] for _ in range(10)]
    assert served == [1] * 10


def test_acknowledge_an_alert_from_the_overview(anonymous: Watched, site: Site) -> None:
    w = anonymous
    alert = site.store.list_alerts(open_only=True)[0]
    sign_in(w, WRITE)
    w.page.locator("#alerts a.button", has_text="Acknowledge").first.click()
    w.page.wait_for_url(re.compile(r"/ui/actions/ack"))
    w.page.click("#confirm")
    w.page.wait_for_url(re.compile(r"done=ack"))
    acked = next(a for a in site.store.list_alerts(open_only=False) if a.id == alert.id)
    assert acked.acknowledged and acked.details.get("acknowledged_by") == "ui:write"
    assert not w.problems, w.problems
