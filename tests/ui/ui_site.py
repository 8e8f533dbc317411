"""A store filled with the whole loop by the demo's building blocks, served with the UI over loopback.

Fast (about 15 s): a few runs, model versions 1-4 (v1 first deploy, v2 promoted through a canary, v3 a
canary in progress, v4 rejected by a gate), predictions with feedback, monitor reports over time, a drift
alert, a hand-made run with metric history and artifacts, and a second deployment (``churn-batch``) that the
rollback test may change.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOKENS = {"admin-token-123": "admin", "read-token-456": "read", "write-token-789": "write"}
ADMIN, READ, WRITE = "admin-token-123", "read-token-456", "write-token-789"

STEAD_YAML = """\
project: churn-ui
models:
  churn:
    train: train.py:train
    data: data/churn.parquet
    target: churned
    task: classification
    holdout: 0.25
    gates:
      - {metric: accuracy, min: 0.6}
      - {metric: accuracy, vs_champion: 0.05}
    deploy:
      deployment: churn-api
      rollout: [10, 50, 100]
      analysis: {min_requests: 3, max_error_rate: 0.05, max_metric_drop: 0.5}
    monitor:
      window: 100
      drift: {threshold: 0.3}
      performance: {metric: accuracy, min: 0.6}
"""


@dataclass
class Site:
    base: str
    folder: Path
    settings: Any
    store: Any
    run_id: str
    dataset_id: str
    features: Any
    stream: Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _png(width: int = 120, height: int = 80) -> bytes:
    """A small gradient PNG (no imaging library needed)."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 2 % 256, y * 3 % 256, 160)) for x in range(width)) for y in range(height)
    )

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _send(http: Any, stream: Any, features: Any, start: int, requests: int, deployment: str = "churn-api") -> list[int]:
    versions = []
    for n in range(requests):
        rows = list(range(start + n * 10, start + n * 10 + 10))
        body = {"instances": features.iloc[rows].to_dict(orient="records")}
        answer = http.post(f"/v1/deployments/{deployment}/predict", json=body)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        versions.append(int(got["version"]))
        labels = [int(v) for v in stream["churned"].iloc[rows]]
        http.post(f"/v1/deployments/{deployment}/feedback", json={"request_id": got["request_id"], "label": labels})
    return versions


def _wait_for_stats(store: Any, deployment: str, since: float, version: int, need: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = store.serving_stats(deployment, since=since)
        if sum(r["requests"] for r in rows if r["version"] == version and r["route"] == "canary") >= need:
            return
        time.sleep(0.3)


def build_site(folder: Path) -> Iterator[Site]:
    import httpx
    import uvicorn

    import stead
    from stead import deployments
    from stead.demo import FEATURES, TRAIN_PY, make_stream
    from stead.deployments import read_predictions
    from stead.monitoring.monitor import record_monitor
    from stead.project import load_project
    from stead.retraining.controller import Controller
    from stead.retraining.pipeline import run_pipeline
    from stead.serving.app import create_app
    from stead.settings import Settings
    from stead.store import open_store
    from stead.ui import ui_routes

    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(TRAIN_PY)
    (folder / "stead.yaml").write_text(STEAD_YAML)
    env = {"STEAD_TOKENS": ",".join(f"{t}:{r}" for t, r in TOKENS.items()), "STEAD_USER": "tester"}
    settings = Settings.from_env(env, uri=str(folder / ".stead"))
    store = open_store(settings)
    stream = make_stream(8_000, drift_at=4_000, seed=7)
    features = stream[FEATURES]
    data_file = folder / "data" / "churn.parquet"
    stream.iloc[:1500].to_parquet(data_file, index=False)
    project = load_project(folder / "stead.yaml")
    first = run_pipeline(store, project, "churn", reason="first version")
    assert first.approved, first.to_dict()

    # a hand-made run: metric history, a dataset, an image and a text artifact
    (folder / "roc.png").write_bytes(_png())
    (folder / "notes.txt").write_text("feature notes\n<script>alert('not run')</script>\nsupport_calls matter most\n")
    with stead.start_run(experiment="exploration", params={"C": 0.5, "penalty": "l2"}, seed=3, store=store) as run:
        ds = run.log_dataset("train", stream.iloc[:1500])
        for step in range(12):
            run.log_metrics({"loss": 1.0 / (step + 1), "accuracy": 0.6 + 0.02 * step}, step=step)
        run.log_artifact(folder / "roc.png", name="plots/roc.png")
        run.log_artifact(folder / "notes.txt", name="notes.txt")
    with stead.start_run(experiment="exploration", params={"C": 2.0, "penalty": "l2"}, seed=4, store=store) as other:
        for step in range(12):
            other.log_metrics({"loss": 1.3 / (step + 1), "accuracy": 0.55 + 0.025 * step}, step=step)

    port = _free_port()
    app = create_app(settings, extra_routes=ui_routes(settings))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="ui-test-server", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    controller = Controller(store, folder / "stead.yaml")
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            for _ in range(200):
                try:
                    if http.get("/v2/health/live").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            _send(http, stream, features, 1500, 30)  # before the drift
            _send(http, stream, features, 4000, 30)  # after it
            # monitor reports over the last few hours: sliding windows of the log, the later ones drifted
            deadline = time.monotonic() + 10
            frame = read_predictions(store, "churn-api")
            while len(frame) < 600 and time.monotonic() < deadline:
                time.sleep(0.2)
                frame = read_predictions(store, "churn-api")
            spec = project.models["churn"].monitor
            now = time.time()
            for i in range(5):
                window = frame.iloc[i * 100 : i * 100 + 150]
                record_monitor(store, "churn-api", spec, predictions=window, notify=False, now=now - (5 - i) * 900)
            # retrain on fresh data: v2 is canaried 10 -> 50 -> 100 by canary analysis
            stream.iloc[4000:5500].to_parquet(data_file, index=False)
            second = run_pipeline(store, project, "churn", reason="drift: retrain on fresh data")
            assert second.approved, second.to_dict()
            rollout_id = store.list_rollouts("churn-api", status="running")[0]["id"]
            for attempt in range(10):  # the canary's share is random per request: send until each step is judged
                rollout = next(r for r in store.list_rollouts("churn-api") if r["id"] == rollout_id)
                if rollout["status"] != "running":
                    break
                _send(http, stream, features, 4300 + attempt * 300, 30)
                _wait_for_stats(store, "churn-api", rollout["updated_at"], 2, 3)
                controller.tick()
            assert next(r for r in store.list_rollouts("churn-api") if r["id"] == rollout_id)["status"] == "promoted"
            # v3: a canary still in progress (one hold decision); v4: rejected by a gate
            third = run_pipeline(store, project, "churn", params={"C": 0.3}, reason="try a smaller C")
            if third.approved:
                controller.tick()
            bad = run_pipeline(store, project, "churn", params={"corrupt": True}, reason="inverted labels")
            assert not bad.approved
            # a second deployment for the rollback test: v2 replaced v1 by hand
            deployments.deploy(store, "churn/1", "churn-batch", reason="batch scoring", actor="tester")
            deployments.deploy(store, "churn/2", "churn-batch", reason="newer model", actor="tester")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and http.get("/v2/models/churn-batch").status_code != 200:
                time.sleep(0.1)
            # customers from before the drift, scored by a model trained after it: a drift alert that stays open
            _send(http, stream, features, 1800, 15, deployment="churn-batch")
            batch = read_predictions(store, "churn-batch")
            while len(batch) < 150 and time.monotonic() < deadline + 10:
                time.sleep(0.2)
                batch = read_predictions(store, "churn-batch")
            record_monitor(store, "churn-batch", spec, predictions=batch, notify=False)
        yield Site(base, folder, settings, store, run.id, ds.id, features, stream)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()
