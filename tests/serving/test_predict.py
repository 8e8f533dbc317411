"""The prediction server: handler tests on Starlette's TestClient, and crash, rollback and two-process tests
against real uvicorn servers over loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from stead.client import Client
from stead.errors import ConfigError
from stead.serving.app import create_app
from stead.settings import Settings

with warnings.catch_warnings():
    # Starlette 1.x asks for its ``httpx2`` fork in the TestClient; plain httpx still works the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


def _train(c: float) -> Any:
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {"a": rng.normal(size=200), "b": rng.normal(size=200), "plan": rng.choice(["free", "pro"], size=200)}
    )
    y = ((X["a"] + X["b"] > 0) | (X["plan"] == "pro")).astype(int)
    pre = ColumnTransformer([("num", "passthrough", ["a", "b"]), ("cat", OneHotEncoder(), ["plan"])])
    return make_pipeline(pre, LogisticRegression(C=c)).fit(X, y), X.head(5)


@pytest.fixture
def store_settings(tmp_path: Path) -> Iterator[Settings]:
    from stead.tracking import close_stores

    yield Settings(uri=str(tmp_path / "store"), user="tester")
    close_stores()


@pytest.fixture
def deployed(store_settings: Settings) -> Client:
    """``churn`` versions 1 and 2 registered, ``churn-api`` serving version 1."""
    client = Client(settings=store_settings)
    for c in (1.0, 0.01):
        model, example = _train(c)
        client.register_model("churn", model, input_example=example)
    client.deploy("churn/1", "churn-api")
    return client


ROW = {"a": 0.5, "b": -1.0, "plan": "pro"}


@pytest.fixture
def http(deployed: Client, store_settings: Settings) -> Iterator[TestClient]:
    app = create_app(store_settings)
    app.state.predictions.runtime.poll_interval = 0.05
    with TestClient(app) as tc:
        yield tc


def _flush(tc: TestClient) -> None:
    tc.app.state.predictions.predlog.flush()  # type: ignore[attr-defined]


def test_predict_answers_and_logs(http: TestClient, deployed: Client) -> None:
    r = http.post("/v1/deployments/churn-api/predict", json={"instances": [ROW, {**ROW, "plan": "free"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "churn" and body["version"] == 1 and len(body["predictions"]) == 2
    assert len(body["request_id"]) == 32
    r2 = http.post("/v1/deployments/churn-api/predict", json={"inputs": {"a": [1.0], "b": [2], "plan": ["free"]}})
    assert r2.status_code == 200, r2.text
    _flush(http)
    frame = deployed.get_predictions("churn-api")
    assert list(frame["request_id"]) == [body["request_id"]] * 2 + [r2.json()["request_id"]]
    assert list(frame["version"]) == [1, 1, 1] and set(frame["route"]) == {"primary"}
    assert list(frame["inputs.plan"]) == ["pro", "free", "free"]
    assert list(frame["outputs.predictions"]) == body["predictions"] + r2.json()["predictions"]
    assert {"time", "latency_ms", "label", "inputs.a", "inputs.b"} <= set(frame.columns)
    assert deployed.get_predictions("churn-api", limit=1)["request_id"].tolist() == [r2.json()["request_id"]]


def test_bad_inputs_get_their_status_and_the_server_keeps_serving(http: TestClient) -> None:
    url = "/v1/deployments/churn-api/predict"
    r = http.post(url, json={"instances": [{"a": 1.0, "plan": 3, "zip": "x"}]})
    assert r.status_code == 422
    msg = r.json()["message"]
    assert "b: missing" in msg and "zip: not in the signature" in msg and "plan: row 0 is integer" in msg
    assert set(r.json()["details"]) == {"b", "zip", "plan"}
    r = http.post(url, json={"instances": [{**ROW, "a": "high"}]})
    assert r.status_code == 422 and "a: row 0 is string, expected a number" in r.json()["message"]
    r = http.post(url, json={"rows": []})
    assert r.status_code == 422 and "instances" in r.json()["message"]
    r = http.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["message"]
    import pickle

    r = http.post(url, content=pickle.dumps(ROW), headers={"content-type": "application/octet-stream"})
    assert r.status_code == 415 and "reads only JSON" in r.json()["message"]
    big = b'{"instances": [' + b'{"a": 1.0},' * 1_000_000 + b"{}]}"
    r = http.post(url, content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["message"]
    r = http.post("/v1/deployments/nope/predict", json={"instances": [ROW]})
    assert r.status_code == 404 and "Known deployments: churn-api" in r.json()["message"]
    r = http.post(url, content=b'{"instances": [{"a": 0.5, "b": -1.0, "plan": "pro"}]}')  # no content type: JSON
    assert r.status_code == 200, r.text
    metrics = http.get("/metrics").text
    assert 'stead_requests_total{code="422",deployment="churn-api",route="primary",version="1"} 3.0' in metrics


def _serving_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serving: str) -> None:
    """A stead.yaml whose churn model has ``serving: {serving}``, named by STEAD_PROJECT for the server."""
    project = tmp_path / "stead.yaml"
    project.write_text(
        "project: churn\nmodels:\n  churn:\n    train: train.py:train\n    data: data.parquet\n"
        f"    target: y\n    serving:\n      {serving}\n"
    )
    monkeypatch.setenv("STEAD_PROJECT", str(project))


def test_the_body_limit_comes_from_stead_yaml_per_model(
    deployed: Client, store_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serving_project(tmp_path, monkeypatch, "body_limit_mb: 0.001")
    monkeypatch.delenv("STEAD_BODY_LIMIT_MB", raising=False)
    url = "/v1/deployments/churn-api/predict"
    small, large = {"instances": [ROW]}, {"instances": [ROW] * 40}  # about 60 and 2,000 bytes
    with TestClient(create_app(store_settings)) as tc:
        assert tc.post(url, json=small).status_code == 200
        r = tc.post(url, json=large)
        assert r.status_code == 413 and "1048 bytes" in r.json()["message"], r.text
        assert "serving.body_limit_mb" in r.json()["hint"]
        assert tc.post("/v2/models/churn-api/infer", json=large).status_code == 413
    monkeypatch.setenv("STEAD_BODY_LIMIT_MB", "1")  # the server-wide setting wins
    with TestClient(create_app(store_settings)) as tc:
        assert tc.post(url, json=large).status_code == 200
    monkeypatch.setenv("STEAD_BODY_LIMIT_MB", "ten")
    with pytest.raises(ConfigError, match="STEAD_BODY_LIMIT_MB must be a positive number"):
        create_app(store_settings)


def test_feedback_joins_labels_by_request_id(http: TestClient, deployed: Client) -> None:
    url = "/v1/deployments/churn-api/predict"
    ids = [http.post(url, json={"instances": [ROW]}).json()["request_id"] for _ in range(3)]
    r = http.post("/v1/deployments/churn-api/feedback", json={"request_id": ids[0], "label": 1})
    assert r.json() == {"accepted": 1, "unknown": []}
    r = http.post(
        "/v1/deployments/churn-api/feedback",
        json=[{"request_id": ids[1], "label": 0}, {"request_id": "nope", "label": 1}],
    )
    assert r.json() == {"accepted": 1, "unknown": ["nope"]}
    _flush(http)
    frame = deployed.get_predictions("churn-api")
    assert dict(zip(frame["request_id"], frame["label"], strict=True)) == {ids[0]: 1, ids[1]: 0, ids[2]: None}
    r = http.post("/v1/deployments/churn-api/feedback", json=[{"label": 1}])
    assert r.status_code == 422


def test_route_changes_are_served_within_a_second(http: TestClient, deployed: Client) -> None:
    url = "/v1/deployments/churn-api/predict"
    deployed.deploy("churn/2", "churn-api")
    deadline = time.monotonic() + 1.0
    while http.post(url, json={"instances": [ROW]}).json()["version"] != 2:
        assert time.monotonic() < deadline, "the new revision was not served within 1 s"
    deployed.rollback("churn-api")
    deadline = time.monotonic() + 1.0
    while http.post(url, json={"instances": [ROW]}).json()["version"] != 1:
        assert time.monotonic() < deadline
    deployed.deploy("churn/2", "churn-api", canary=30)
    time.sleep(0.3)
    versions = [http.post(url, json={"instances": [ROW]}).json()["version"] for _ in range(400)]
    assert 0.2 < versions.count(2) / 400 < 0.4


def test_shadow_is_logged_but_never_answers(http: TestClient, deployed: Client) -> None:
    deployed.deploy("churn/2", "churn-api", shadow=True)
    time.sleep(0.3)
    ids = [http.post("/v1/deployments/churn-api/predict", json={"instances": [ROW]}).json() for _ in range(20)]
    assert {b["version"] for b in ids} == {1}
    time.sleep(0.2)
    _flush(http)
    frame = deployed.get_predictions("churn-api")
    shadow = frame[frame["route"] == "shadow"]
    assert len(shadow) == 20 and set(shadow["version"]) == {2}
    assert set(shadow["request_id"]) == {b["request_id"] for b in ids}


def test_corrupted_version_keeps_the_old_one_serving(http: TestClient, deployed: Client) -> None:
    model, example = _train(5.0)
    mv = deployed.register_model("churn", model, input_example=example)
    artifacts = deployed.store.artifacts
    digest = sorted(mv.manifest.values())[0]
    path = artifacts.local_path(digest)
    assert path is not None
    os.chmod(path, 0o644)
    path.write_bytes(b"garbage")
    deployed.deploy(f"churn/{mv.version}", "churn-api")
    time.sleep(0.5)
    versions = {http.post("/v1/deployments/churn-api/predict", json={"instances": [ROW]}).json()["version"]}
    assert versions == {1}
    events = deployed.get_deployment("churn-api").events
    assert [e["action"] for e in events] == ["load_failed"]
    assert events[0]["details"]["revision"] == 2 and events[0]["details"]["kept_revision"] == 1
    assert "corrupted" in events[0]["details"]["error"]


def test_kserve_v1_and_health(http: TestClient) -> None:
    r = http.post("/v1/models/churn-api:predict", json={"instances": [[0.5, -1.0, "pro"]]})
    assert r.status_code == 200, r.text
    assert len(r.json()["predictions"]) == 1
    assert http.get("/v2/health/ready").json()["ready"] is True
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    assert {"stead_requests", "stead_request_latency_seconds", "stead_prediction_log_queue"} <= set(families)
    assert "stead_prediction_log_dropped" in families


# ---------------------------------------------------------------- real servers over loopback


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m stead.serving.app`` in its own process on a folder store."""

    def __init__(self, store: Path, log: Path, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        extra = env
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
        env.update(STEAD_URI=str(store), STEAD_USER="tester", STEAD_POLL_INTERVAL="0.2")
        env.update(extra or {})
        self.log = open(log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stead.serving.app", "--port", str(self.port), "--workers", str(workers)],
            env=env,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60  # a loaded machine starts two workers slowly
        while True:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return int(self.proc.returncode)


def _load(url: str, stop: threading.Event, out: list[tuple[int, dict[str, Any] | None]], pause: float = 0.0) -> None:
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            try:
                r = http.post(f"{url}/v1/deployments/churn-api/predict", json={"instances": [ROW]})
                out.append((r.status_code, r.json() if r.status_code == 200 else None))
            except httpx.TransportError:
                out.append((0, None))
                if stop.wait(0.01):
                    return
            if pause:
                time.sleep(pause)


def test_kill9_under_load_loses_no_answered_prediction(
    deployed: Client, store_settings: Settings, tmp_path: Path
) -> None:
    server = Server(store_settings.folder, tmp_path / "server.log")
    stop = threading.Event()
    results: list[tuple[int, dict[str, Any] | None]] = []
    threads = [threading.Thread(target=_load, args=(server.url, stop, results)) for _ in range(8)]
    for t in threads:
        t.start()
    while sum(code == 200 for code, _ in results) < 400:
        time.sleep(0.01)
    server.kill9()
    stop.set()
    for t in threads:
        t.join()
    answered = [body["request_id"] for code, body in results if code == 200 and body]
    assert len(answered) >= 400
    leftovers = list((store_settings.folder / "predlog").glob("*/*.wal"))
    assert leftovers, "the killed server left no write-ahead file to replay"
    server = Server(store_settings.folder, tmp_path / "server2.log")  # replays the dead writer's files
    try:
        frame = deployed.get_predictions("churn-api")
    finally:
        assert server.stop() == 0
    ids = frame.loc[frame["route"] != "shadow", "request_id"].tolist()
    missing = set(answered) - set(ids)
    assert not missing, f"{len(missing)} answered predictions are not in the log"
    from collections import Counter

    assert all(n == 1 for rid, n in Counter(ids).items() if rid in set(answered)), "logged twice"


def test_rollback_under_load_fails_no_request(deployed: Client, store_settings: Settings, tmp_path: Path) -> None:
    server = Server(store_settings.folder, tmp_path / "server.log")
    stop = threading.Event()
    results: list[tuple[int, dict[str, Any] | None]] = []
    threads = [threading.Thread(target=_load, args=(server.url, stop, results)) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.3)
        deployed.deploy("churn/2", "churn-api")
        time.sleep(1.2)
        deployed.rollback("churn-api")
        time.sleep(1.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
        code = server.stop()
    assert code == 0
    assert results and all(status == 200 for status, _ in results), {s for s, _ in results}
    versions = [body["version"] for _, body in results if body]
    assert all(v in (1, 2) for v in versions) and 2 in versions and versions[-1] == 1
    first2, last2 = versions.index(2), len(versions) - 1 - versions[::-1].index(2)
    assert set(versions[:first2]) == {1} and set(versions[last2 + 1 :]) == {1}


def test_two_servers_on_one_store_follow_a_rollback_within_a_second(
    deployed: Client, store_settings: Settings, tmp_path: Path
) -> None:
    one = Server(store_settings.folder, tmp_path / "one.log")
    two = Server(store_settings.folder, tmp_path / "two.log")
    try:
        deployed.deploy("churn/2", "churn-api")
        for server in (one, two):
            deadline = time.monotonic() + 1.5
            while (
                httpx.post(f"{server.url}/v1/deployments/churn-api/predict", json={"instances": [ROW]}).json()[
                    "version"
                ]
                != 2
            ):
                assert time.monotonic() < deadline
        Client(one.url).rollback("churn-api")  # through the first server's REST API
        started = time.monotonic()
        pending = {one.url, two.url}
        while pending:
            for url in list(pending):
                r = httpx.post(f"{url}/v1/deployments/churn-api/predict", json={"instances": [ROW]})
                if r.json()["version"] == 1:
                    pending.discard(url)
            assert time.monotonic() - started < 1.0, f"{pending} still serve version 2 after 1 s"
    finally:
        assert one.stop() == 0
        assert two.stop() == 0


def test_per_version_health_reaches_the_store(deployed: Client, store_settings: Settings) -> None:
    """Requests, 4xx, 5xx and latency per (deployment, model, version, route), as the controller reads them."""
    deployed.deploy("churn/2", "churn-api", canary=50)
    app = create_app(store_settings)
    url = "/v1/deployments/churn-api/predict"
    versions = []
    with TestClient(app) as tc:
        for _ in range(40):
            r = tc.post(url, json={"instances": [ROW]})
            assert r.status_code == 200
            versions.append(r.json()["version"])
        for _ in range(3):
            assert tc.post(url, json={"instances": [{**ROW, "a": "x"}]}).status_code == 422
        assert tc.post(url, content=b"{nope", headers={"content-type": "application/json"}).status_code == 400
    # the lifespan's end wrote the last window
    rows = {(r["model"], r["version"], r["route"]): r for r in deployed.store.serving_stats("churn-api")}
    assert set(rows) <= {("churn", 1, "primary"), ("churn", 2, "canary")}
    assert sum(r["requests"] for r in rows.values()) == 43  # the 400 is not any version's
    assert sum(r["errors_4xx"] for r in rows.values()) == 3
    assert all(r["errors_5xx"] == 0 for r in rows.values())
    for (_, version, _), row in rows.items():
        answered = versions.count(version)
        assert row["requests"] - row["errors_4xx"] == answered
        assert sum(row["latency"]["counts"]) == row["requests"]
        assert (
            row["latency"]["bounds"][0] == 0.0005 and len(row["latency"]["counts"]) == len(row["latency"]["bounds"]) + 1
        )
    assert deployed.store.serving_stats("churn-api", since=time.time() + 60) == []


def test_sigterm_drains_an_inflight_request_and_exits_0(
    deployed: Client, store_settings: Settings, tmp_path: Path
) -> None:
    """A request whose body is still arriving when SIGTERM comes is answered, logged, and the exit is 0."""
    server = Server(store_settings.folder, tmp_path / "server.log")
    sent_half = threading.Event()
    go_on = threading.Event()
    body = b'{"instances": [{"a": 0.5, "b": -1.0, "plan": "pro"}]}'

    def slow_body() -> Iterator[bytes]:
        yield body[:20]
        sent_half.set()
        go_on.wait(10)
        yield body[20:]

    answer: list[httpx.Response] = []
    thread = threading.Thread(
        target=lambda: answer.append(
            httpx.post(
                f"{server.url}/v1/deployments/churn-api/predict",
                content=slow_body(),
                headers={"content-type": "application/json", "content-length": str(len(body))},
                timeout=20,
            )
        )
    )
    thread.start()
    assert sent_half.wait(10)
    time.sleep(0.2)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert server.proc.poll() is None, "the server ended with a request in flight"
    go_on.set()
    thread.join(20)
    code = server.stop()
    assert code == 0
    assert time.monotonic() - started < 5.0
    assert answer and answer[0].status_code == 200, answer
    rid = answer[0].json()["request_id"]
    assert rid in set(deployed.get_predictions("churn-api")["request_id"])


def test_two_workers_keep_tcp_nodelay(deployed: Client, store_settings: Settings, tmp_path: Path) -> None:
    """uvicorn issue 3149: with --workers N Nagle's algorithm stays on and each keep-alive answer waits ~40 ms."""
    # asyncio's loop shows the bug (uvloop sets TCP_NODELAY itself): the socket stead makes must fix it there
    server = Server(store_settings.folder, tmp_path / "server.log", workers=2, env={"STEAD_LOOP": "asyncio"})
    try:
        times = []
        with httpx.Client(timeout=10) as http:  # one keep-alive connection, one request at a time
            for i in range(60):
                t0 = time.perf_counter()
                r = http.post(f"{server.url}/v1/deployments/churn-api/predict", json={"instances": [ROW]})
                if i >= 10:  # past the warm-up
                    times.append(time.perf_counter() - t0)
                assert r.status_code == 200
        times.sort()
        # with Nagle on, every keep-alive answer waits for the delayed ACK (>= 40 ms): even the fastest quarter
        quartile = times[len(times) // 4]
        assert quartile < 0.030, f"a quarter of the requests took {quartile * 1000:.1f} ms or more: Nagle is on?"
    finally:
        assert server.stop() == 0


def test_adaptive_batching_gathers_concurrent_requests(
    deployed: Client, store_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """32 concurrent one-row requests: fewer predict calls, each answer its own, each request its own log row."""
    import asyncio
    import socket

    import uvicorn

    _serving_project(tmp_path, monkeypatch, "batching: {max_batch: 64, max_wait_ms: 5}")
    monkeypatch.delenv("STEAD_BATCHING", raising=False)
    monkeypatch.setenv("STEAD_PREDICT_THREADS", "1")
    app = create_app(store_settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/v1/deployments/churn-api/predict"
    rows = [{"a": float(i - 16) / 4, "b": float(16 - i) / 8, "plan": "free"} for i in range(32)]
    try:
        while not server.started:
            time.sleep(0.02)

        async def burst() -> list[dict[str, Any]]:
            limits = httpx.Limits(max_connections=32)
            async with httpx.AsyncClient(timeout=20, limits=limits) as http:
                answers = await asyncio.gather(*(http.post(url, json={"instances": [row]}) for row in rows))
            assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
            return [r.json() for r in answers]

        asyncio.run(burst())  # connections opened and warm
        service = app.state.predictions
        served = service.runtime.states["churn-api"].versions[("churn", 1)]
        before = served.batcher.calls
        answers = asyncio.run(burst())
        calls = served.batcher.calls - before
    finally:
        server.should_exit = True
        thread.join(20)
    assert 1 <= calls < 32, f"{calls} predict calls for 32 concurrent requests"
    import pandas as pd

    expected = served.loaded.predict(pd.DataFrame(rows)).tolist()
    assert [a["predictions"][0] for a in answers] == expected
    assert len({a["request_id"] for a in answers}) == 32
    frame = deployed.get_predictions("churn-api")
    mine = frame[frame["request_id"].isin({a["request_id"] for a in answers})]
    assert len(mine) == 32 and set(mine["route"]) == {"primary"} and set(mine["row"]) == {0}
    logged = dict(zip(mine["request_id"], mine["inputs.a"], strict=True))
    assert [logged[a["request_id"]] for a in answers] == [row["a"] for row in rows]


def test_open_inference_protocol_with_tritonclient(deployed: Client, store_settings: Settings, tmp_path: Path) -> None:
    """The real tritonclient against a live server: health, metadata, and infer (binary and JSON tensors)
    answering what /v1 predict answers."""
    import numpy as np
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    server = Server(store_settings.folder, tmp_path / "server.log")
    rows = [ROW, {"a": -2.0, "b": 0.5, "plan": "free"}, {"a": 3.0, "b": 1.0, "plan": "free"}]
    try:
        v1 = httpx.post(f"{server.url}/v1/deployments/churn-api/predict", json={"instances": rows}).json()
        client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        assert client.is_server_live() and client.is_server_ready()
        assert client.get_server_metadata()["name"] == "stead"
        assert client.is_model_ready("churn-api")
        meta = client.get_model_metadata("churn-api")
        assert meta["inputs"] == [
            {"name": "a", "datatype": "FP64", "shape": [-1]},
            {"name": "b", "datatype": "FP64", "shape": [-1]},
            {"name": "plan", "datatype": "BYTES", "shape": [-1]},
        ]
        assert meta["versions"] == ["1"]
        for binary in (True, False):
            inputs = []
            for name, datatype in (("a", "FP64"), ("b", "FP64"), ("plan", "BYTES")):
                values = np.array([row[name] for row in rows], dtype=object if datatype == "BYTES" else np.float64)
                tensor = triton.InferInput(name, [len(rows)], datatype)
                tensor.set_data_from_numpy(values, binary_data=binary)
                inputs.append(tensor)
            result = client.infer("churn-api", inputs)
            assert result.as_numpy("predictions").tolist() == v1["predictions"], binary
            response = result.get_response()
            assert response["model_version"] == "1" and len(response["parameters"]["request_id"]) == 32
        bad = triton.InferInput("zip", [1], "FP64")
        bad.set_data_from_numpy(np.array([1.0]))
        with pytest.raises(InferenceServerException, match="zip: not in the signature"):
            client.infer("churn-api", [bad])
        assert not client.is_model_ready("nope")
        client.close()
    finally:
        assert server.stop() == 0


def test_numeric_models_predict_on_a_bare_block_only_when_it_agrees(store_settings: Settings) -> None:
    """A scikit-learn model fitted on float columns predicts on an array in its fitted column order (past
    scikit-learn's per-call frame checks), with the same answers; a pipeline that selects columns by name
    keeps predicting on frames."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from stead.serving.runtime import ServedVersion

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(300, 4)), columns=["w", "x", "y", "z"])
    y = (X["w"] - X["z"] > 0).astype(int)
    by_name = ColumnTransformer([("s", StandardScaler(), ["z", "w"])])
    client = Client(settings=store_settings)
    client.register_model("gbm", GradientBoostingClassifier(n_estimators=10).fit(X, y), input_example=X.head(3))
    client.register_model("named", make_pipeline(by_name, GradientBoostingClassifier()).fit(X, y), input_example=X)
    rows = {c: X[c].tolist() for c in ["z", "y", "x", "w"]}  # columns arrive in any order

    served = {}
    for name in ("gbm", "named"):
        loaded = client.load_model(f"{name}/1")
        served[name] = ServedVersion(name, 1, loaded, loaded.signature)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # neither the check nor the warm-up may warn
            served[name].warm_up({c: v[:1] for c, v in rows.items()})
            got = served[name].predict(rows)
        assert got == loaded.predict(X).tolist()
    assert served["gbm"]._block is not None
    assert served["named"]._block is None


def test_the_server_freezes_what_it_loaded_before_serving(http: TestClient) -> None:
    """What the server imported and loaded at start (about a million objects with pandas and scikit-learn) is
    moved out of the collector's view, so a full collection does not stall a request for tens of ms."""
    import gc

    assert gc.get_freeze_count() > 100_000
    assert http.post("/v1/deployments/churn-api/predict", json={"instances": [ROW]}).status_code == 200


def test_a_lone_request_to_a_quick_model_predicts_in_the_event_loop(deployed: Client, store_settings: Settings) -> None:
    """Alone in the worker, a version whose predictions take under 2 ms predicts in the event loop (no hop to
    the pool and back); a slower one predicts in the prediction pool, keeping the loop free."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    x = pd.DataFrame(np.random.default_rng(0).normal(size=(200, 3)), columns=["u", "v", "w"])
    deployed.register_model("quick", LogisticRegression().fit(x, x["u"] > 0), input_example=x.head(3))
    deployed.deploy("quick/1", "quick-api")
    app = create_app(store_settings)
    with TestClient(app) as http:
        served = app.state.predictions.runtime.states["quick-api"].versions[("quick", 1)]
        threads: list[str] = []
        original = served._predict

        def recorded(columns: Any) -> Any:
            threads.append(threading.current_thread().name)
            return original(columns)

        served._predict = recorded
        row = {"instances": [{"u": 0.3, "v": 0.1, "w": -2.0}]}
        for _ in range(3):
            assert http.post("/v1/deployments/quick-api/predict", json=row).status_code == 200
        assert served.quick, served.seconds
        assert not any(name.startswith("stead-predict") for name in threads)
        served.seconds = 0.5  # as if it had taken half a second
        assert http.post("/v1/deployments/quick-api/predict", json=row).status_code == 200
        assert threads[-1].startswith("stead-predict")
