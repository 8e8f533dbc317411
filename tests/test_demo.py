"""`stead demo` runs the whole loop end to end on the embedded default, and its summary matches the store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stead.cli import main
from stead.client import Client


@pytest.mark.slow
def test_the_demo_closes_the_loop_and_its_summary_comes_from_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STEAD_URI", raising=False)
    assert main(["demo", "--folder", "demo"]) == 0
    out = capsys.readouterr().out
    summary = dict(re.findall(r"^([a-z0-9% ]+): (.+)$", out, flags=re.M))
    client = Client(tmp_path / "demo" / ".stead")
    assert summary["requests failed"] == "0"
    assert summary["human steps"] == "0"
    # The drift was seen: a dataset-drift alert exists, raised after the drift point.
    assert any(a.rule == "drift_share" for a in client.list_alerts(open_only=False))
    assert int(summary["detection delay"].split()[0]) >= 0
    # The versions and rollouts printed are the store's.
    versions = client.list_model_versions("churn")
    assert summary["versions"] == ", ".join(f"v{v.version} {v.state}" for v in versions)
    champion = client.get_model_version("churn", "champion")
    assert summary["champion"] == f"v{champion.version}"
    rollouts = client.store.list_rollouts("churn-api")
    assert summary["rollouts"] == ", ".join(f"v{r['candidate']} {r['status']}" for r in reversed(rollouts))
    # The loop closed: a retrained version was promoted by canary analysis and serves everything.
    promoted = [r for r in rollouts if r["status"] == "promoted"]
    assert promoted and champion.version == promoted[0]["candidate"] > 1
    routes = client.get_deployment("churn-api").routes
    assert [(r.version, r.kind) for r in routes if r.kind == "primary"] == [(champion.version, "primary")]
    # A later retrain may be mid-canary when the traffic stops: then it is a running rollout in the store.
    for route in routes:
        if route.kind != "primary":
            assert any(r["candidate"] == route.version and r["status"] == "running" for r in rollouts), route
    decisions = [d["decision"] for d in client.store.canary_decisions(rollout_id=promoted[0]["id"])]
    assert decisions[-1] == "promote"
    assert float(summary["accuracy after recovery"]) > float(summary["accuracy after drift"])
    # The deliberately bad candidate was rejected by a gate, with the reason stored.
    bad = versions[0]
    assert bad.state == "rejected"
    assert any("below the minimum" in g["reasons"] for g in bad.gate_results if not g["passed"])
    graph = client.lineage("churn@champion", direction="up")
    assert any(n["kind"] == "dataset" for n in graph.nodes)
