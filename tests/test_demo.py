"""`stead demo` runs end to end on the embedded default, and its summary matches the store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stead.cli import main
from stead.client import Client


def test_the_demo_runs_and_its_summary_comes_from_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STEAD_URI", raising=False)
    assert main(["demo", "--folder", "demo"]) == 0
    out = capsys.readouterr().out
    summary = dict(re.findall(r"^([a-z ]+): (\S+)", out, flags=re.M))
    client = Client(tmp_path / "demo" / ".stead")
    assert int(summary["runs tracked"]) == len(client.search_runs("churn")) == 3
    assert int(summary["dataset versions"]) == len(client.list_datasets()) == 2
    assert summary["requests failed"] == "0"
    assert summary["human steps"] == "0"
    assert summary["drift detected"] == "yes"
    assert float(summary["accuracy after drift"]) < float(summary["accuracy before drift"])
    best = client.search_runs("churn", order_by="metrics.roc_auc DESC")[0]
    assert f"best run {best.id[:12]}" in out
