"""``stead deployments show`` lists the canary-analysis decisions with their reasons (text and --json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stead.cli import main
from stead.client import Client
from stead.settings import Settings


def test_deployments_show_lists_canary_decisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd
    from sklearn.dummy import DummyClassifier

    from stead.tracking import close_stores

    uri = str(tmp_path / "store")
    monkeypatch.setenv("STEAD_URI", uri)
    monkeypatch.setenv("STEAD_USER", "tester")
    client = Client(settings=Settings(uri=uri, user="tester"))
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]})
    for _ in range(2):
        client.register_model("churn", DummyClassifier().fit(X, [0, 1, 0, 1]), input_example=X)
    client.deploy("churn/1", "api")
    client.deploy("churn/2", "api", canary=10)
    store = client.store
    rollout = store.create_rollout("api", "churn", 2, 1, [10, 50, 100])
    store.add_canary_decision(
        rollout["id"], 0, "hold", {"decision": "hold", "reasons": ["only 40 requests, fewer than 500"]}
    )
    store.add_canary_decision(
        rollout["id"], 0, "rollback", {"decision": "rollback", "reasons": ["error rate 0.05 is above the limit 0.01"]}
    )
    try:
        assert main(["deployments", "show", "api"]) == 0
        out = capsys.readouterr().out
        assert "canary analysis" in out
        assert "hold" in out and "only 40 requests, fewer than 500" in out
        assert "rollback" in out and "error rate 0.05 is above the limit 0.01" in out
        assert main(["deployments", "show", "api", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert [c["decision"] for c in data["canary_decisions"]] == ["hold", "rollback"]
        assert data["canary_decisions"][1]["evidence"]["reasons"] == ["error rate 0.05 is above the limit 0.01"]
        assert data["name"] == "api" and data["routes"]
    finally:
        close_stores()
