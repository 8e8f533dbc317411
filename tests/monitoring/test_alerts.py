"""Alerts: rules, the store's reports/drift history/alerts on every backend, and the notifiers (real HTTP server)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stead.client import Client
from stead.errors import NotFoundError
from stead.monitoring.alerts import Rule, evaluate, rules_from_spec
from stead.monitoring.notify import check_webhook_target, notify, run_command, send_webhook
from stead.project import MonitorSpec


def _report(share: float, drifted: dict[str, bool], accuracy: float | None = None, labeled: int = 0) -> dict[str, Any]:
    cols = {
        name: {
            "method": "wasserstein",
            "statistic": 0.3 if d else 0.01,
            "p_value": None,
            "threshold": 0.1,
            "drifted": d,
        }
        for name, d in drifted.items()
    }
    return {
        "window": {"rows": 1000, "start": "2024-05-01T00:00:00+00:00", "end": "2024-05-01T08:00:00+00:00"},
        "drift": {"drifted": share >= 0.3, "share": share, "threshold": 0.3, "columns": cols, "problems": {}},
        "performance": {"labeled": labeled, "label_coverage": labeled / 1000, "accuracy": accuracy},
        "estimated": {"accuracy": 0.9},
        "alerts": [],
    }


# ---------------------------------------------------------------- rules


def test_rules_come_from_the_monitor_spec() -> None:
    spec = MonitorSpec.model_validate(
        {"drift": {"threshold": 0.25}, "performance": {"metric": "mae", "max": 3.0}, "notify": []}
    )
    rules = rules_from_spec(spec)
    assert [r.name for r in rules] == ["drift_share", "feature_drift", "performance:mae", "estimated:mae"]
    assert rules[0].threshold == 0.25 and rules[2].max == 3.0
    assert [r.name for r in rules_from_spec(None, feature_drift=False)] == ["drift_share"]


def test_decisions_fire_clear_or_cannot_tell() -> None:
    rules = [Rule("drift_share", threshold=0.3), Rule("performance", metric="accuracy", min=0.85)]
    firing, realized = evaluate(_report(0.5, {"a": True, "b": False}, 0.8, labeled=100), rules)
    assert firing.firing and "50% of the features drifted" in firing.message
    assert realized.firing and realized.message == "realized accuracy 0.8 is below its minimum 0.85"
    clear, few = evaluate(_report(0.0, {"a": False}, 0.7, labeled=10), rules)
    assert clear.firing is False
    assert few.firing is None and "on 10 labels only" in few.message


# ---------------------------------------------------------------- the store


def test_reports_drift_history_and_alert_lifecycle(client: Client) -> None:
    store = client.store
    first = store.add_monitor_report("churn-api", _report(0.5, {"age": True, "plan": False}), "churn", 1, at=100.0)
    second = store.add_monitor_report("churn-api", _report(0.0, {"age": False, "plan": False}), "churn", 1, at=200.0)
    reports = store.list_monitor_reports("churn-api")
    assert [r["id"] for r in reports] == [first, second]
    assert reports[0]["drift_share"] == 0.5 and reports[0]["report"]["drift"]["columns"]["age"]["drifted"]
    assert reports[0]["window_start"] == pytest.approx(1714521600.0)
    history = store.drift_history("churn-api", feature="age")
    assert [(p["at"], p["drifted"], p["statistic"]) for p in history] == [(100.0, True, 0.3), (200.0, False, 0.01)]
    assert len(store.drift_history("churn-api")) == 4 and store.drift_history("other") == []

    alert = store.open_alert("churn-api", "drift_share", first, {"message": "50% drifted"}, at=100.0)
    again = store.open_alert("churn-api", "drift_share", second, {"message": "still"}, at=200.0)
    assert again.id == alert.id and again.details["message"] == "50% drifted"  # one open alert per rule
    other = store.open_alert("churn-api", "feature_drift:age", first)
    assert other.id != alert.id
    assert {a.id for a in client.list_alerts()} == {alert.id, other.id}

    acked = client.ack_alert(alert.id)
    assert acked.acknowledged and acked.resolved_at is None and acked.details["acknowledged_by"] == "tester"
    resolved = store.resolve_alert(alert.id)
    assert resolved.resolved_at is not None
    assert [a.id for a in client.list_alerts()] == [other.id]
    assert {a.id for a in client.list_alerts(open_only=False)} == {alert.id, other.id}
    reopened = store.open_alert("churn-api", "drift_share", second)
    assert reopened.id != alert.id and not reopened.acknowledged  # a new episode after it resolved

    edges = store.edges_of([f"report:{first}"], "down")
    assert {(e["source"], e["target"]) for e in edges} == {
        (f"report:{first}", f"alert:{alert.id}"),
        (f"report:{first}", f"alert:{other.id}"),
    }
    assert any(e["target"] == f"report:{first}" for e in store.edges_of(["deployment:churn-api"], "down"))
    with pytest.raises(NotFoundError, match="no alert 9999"):
        client.ack_alert(9999)


# ---------------------------------------------------------------- notifiers


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append({"type": self.headers["content-type"], "body": json.loads(body)})
        self.send_response(204 if self.path == "/ok" else 500)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[str]:
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


ALERT = {"id": 7, "rule": "drift_share", "deployment": "churn-api", "message": "50% of the features drifted"}


def test_webhook_posts_the_alert_as_json_to_a_real_server(hook_server: str) -> None:
    delivery = send_webhook(f"{hook_server}/ok", ALERT)
    assert delivery.ok and delivery.detail == "answered 204"
    assert _Hook.received == [{"type": "application/json", "body": ALERT}]
    failed = send_webhook(f"{hook_server}/broken", ALERT)
    assert not failed.ok and failed.detail == "answered 500"


def test_webhook_refuses_metadata_and_link_local_addresses(hook_server: str) -> None:
    refused = send_webhook("http://169.254.169.254/latest/meta-data/iam/", ALERT, timeout=0.5)
    assert not refused.ok and refused.detail.startswith("refused: 169.254.169.254 is a cloud metadata address")
    assert check_webhook_target("http://169.254.10.1/") == "169.254.10.1 is a link-local address"
    assert check_webhook_target("http://[::ffff:169.254.169.254]/") == "169.254.169.254 is a cloud metadata address"
    assert (
        check_webhook_target("http://metadata.google.internal/") == "metadata.google.internal is a cloud metadata host"
    )
    assert check_webhook_target("http://localhost/") is None  # names are judged by what they resolve to
    assert check_webhook_target("http://169.254.169.254/", allow_private=True) is None


def test_unreachable_webhook_is_recorded_not_raised() -> None:
    delivery = send_webhook("http://127.0.0.1:9/", ALERT, timeout=1.0)  # the discard port: nobody listens
    assert not delivery.ok and "ConnectError" in delivery.detail


def test_command_gets_the_alert_on_stdin_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    script = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_text(sys.stdin.read())"
    delivery = run_command([sys.executable, "-c", script], ALERT)
    assert delivery.ok and json.loads(out.read_text()) == ALERT
    literal = run_command(["echo", "$(touch x); rm -rf /"], ALERT)  # a list is argv: no shell ever sees it
    assert literal.ok
    failing = run_command([sys.executable, "-c", "import sys; sys.exit('no route to pager')"], ALERT)
    assert not failing.ok and failing.detail == "exit status 1: no route to pager"
    slow = run_command([sys.executable, "-c", "import time; time.sleep(5)"], ALERT, timeout=0.3)
    assert not slow.ok and slow.detail == "killed after 0.3 s"
    missing = run_command(["/nonexistent/pager"], ALERT)
    assert not missing.ok and "FileNotFoundError" in missing.detail
    assert not run_command("notify-send stead", ALERT).ok  # type: ignore[arg-type]


def test_notify_logs_and_never_raises(hook_server: str, caplog: pytest.LogCaptureFixture) -> None:
    deliveries = notify(
        ALERT,
        [{"webhook": f"{hook_server}/ok"}, {"webhook": "http://169.254.169.254/"}, {"command": ["/nonexistent/x"]}],
    )
    assert [(d.kind, d.ok) for d in deliveries] == [
        ("log", True),
        ("webhook", True),
        ("webhook", False),
        ("command", False),
    ]
    assert "alert drift_share on churn-api: 50% of the features drifted" in caplog.text
    assert "failed: refused" in caplog.text


# ---------------------------------------------------------------- record_monitor: the controller's step


def test_record_monitor_opens_deduplicates_notifies_and_resolves(client: Client, hook_server: str) -> None:
    from test_report import _customers, deployed, log_predictions

    from stead.monitoring.monitor import record_monitor

    model, rng = deployed(client)
    spec = MonitorSpec.model_validate(
        {"window": 1000, "drift": {"threshold": 0.3}, "notify": [{"webhook": f"{hook_server}/ok"}]}
    )
    log_predictions(client, "churn-api", _customers(rng, 1000, age_shift=12), model, 1.7e9, 1, 0.0)
    first = record_monitor(client.store, "churn-api", spec, now=1.8e9)
    assert sorted(a["rule"] for a in first["opened"]) == ["drift_share", "feature_drift:age"]
    assert all(d["ok"] for d in first["deliveries"]) and len(_Hook.received) == 2
    assert {m["body"]["rule"] for m in _Hook.received} == {"drift_share", "feature_drift:age"}
    second = record_monitor(client.store, "churn-api", spec, now=1.8e9 + 60)
    assert second["opened"] == [] and len(_Hook.received) == 2  # still open: no second alert, no second message
    assert len(client.list_alerts()) == 2 and len(client.monitor_reports("churn-api")) == 2
    assert [p["drifted"] for p in client.drift_history("churn-api", "age")] == [True, True]

    log_predictions(client, "churn-api", _customers(rng, 1000), model, 1.7e9 + 50_000, 2, 0.0)
    third = record_monitor(client.store, "churn-api", spec, now=1.8e9 + 120)
    assert sorted(a["rule"] for a in third["resolved"]) == ["drift_share", "feature_drift:age"]
    assert client.list_alerts() == [] and len(client.list_alerts(open_only=False)) == 2
    graph = client.lineage("deployment:churn-api")
    kinds = {n["kind"] for n in graph.nodes}
    assert {"report", "alert"} <= kinds or any(n["id"].startswith("alert:") for n in graph.nodes)


def test_cli_monitor_and_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_report import _customers, deployed, log_predictions

    from stead.cli import main
    from stead.settings import Settings
    from stead.tracking import close_stores

    folder = tmp_path / "store"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEAD_URI", str(folder))
    client = Client(settings=Settings(uri=str(folder), user="tester"))
    model, rng = deployed(client)
    log_predictions(client, "churn-api", _customers(rng, 800, age_shift=12), model, 1.7e9, 1, 0.3)
    client.record_monitor("churn-api", notify=False)
    close_stores()

    assert main(["monitor", "churn-api", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["window"]["rows"] == 800 and report["drift"]["columns"]["age"]["drifted"]
    html_file = tmp_path / "report.html"
    assert main(["monitor", "churn-api", "--window", "500", "--html", str(html_file)]) == 0
    out = capsys.readouterr().out
    # 500 rows: the drift method is the small-sample test (ks); the table and the verdict line are what matter here
    assert "feature  method  statistic" in out and " age      ks " in out and "verdict: DRIFT" in out
    assert "features drifted" in out and "performance on" in out and "estimated (no labels needed)" in out
    assert html_file.read_text().startswith("<!DOCTYPE html>")

    assert main(["alerts", "list", "--json"]) == 0
    alerts = json.loads(capsys.readouterr().out)
    assert {a["rule"] for a in alerts} == {"drift_share", "feature_drift:age"}
    assert main(["alerts", "ack", str(alerts[0]["id"])]) == 0
    assert "acknowledged; it stays open until its condition clears" in capsys.readouterr().out
    assert main(["alerts", "list"]) == 0
    assert "drift_share" in capsys.readouterr().out
    assert main(["alerts", "ack", "999"]) == 1
    assert "error: no alert 999" in capsys.readouterr().err
    assert main(["monitor", "nowhere"]) == 1
