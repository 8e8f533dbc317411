"""The MLflow API honours stead's token auth: MLflow's client sends MLFLOW_TRACKING_TOKEN as a bearer token."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stead.settings import Settings

pytest.importorskip("mlflow")


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[str]:
    import uvicorn

    from stead.serving.app import create_app

    settings = Settings(uri=str(tmp_path / "store"), tokens={"w-token": "write", "r-token": "read"}, user="tester")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/v2/health/live", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(10)


def test_writes_need_a_write_token(secured: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "r-token")
    client = MlflowClient(secured)
    assert client.search_experiments()  # reads are open to a read token
    with pytest.raises(MlflowException, match=r"403|write"):
        client.create_experiment("nope")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN")
    with pytest.raises(MlflowException, match=r"401|token"):
        MlflowClient(secured).create_experiment("nope")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "w-token")
    client = MlflowClient(secured)
    eid = client.create_experiment("yes")
    run = client.create_run(eid)
    client.log_metric(run.info.run_id, "m", 1.5)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.5}
    # the searches are POSTs, but reads: a read token may search runs
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "r-token")
    assert [r.info.run_id for r in MlflowClient(secured).search_runs([eid])] == [run.info.run_id]
