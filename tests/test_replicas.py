"""Three `stead serve` processes on one PostgreSQL store and one S3 bucket (moto over loopback) under load: a
rollback made through one of them is served by all three within 1 s, and no request fails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from stead.client import Client
from stead.settings import Settings

REPLICAS = 3


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_rollback_through_one_replica_is_served_by_all_within_a_second(
    postgres_url: str, s3_bucket: str, tmp_path: Path
) -> None:
    settings = Settings(uri=postgres_url, artifacts=s3_bucket, user="tester")
    client = Client(settings=settings)
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    y = (X["a"] > 0).astype(int)
    for c in (1.0, 0.1):
        client.register_model("churn", LogisticRegression(C=c).fit(X, y), input_example=X.head(3))
    client.deploy("churn/1", "churn-api")

    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env.update(STEAD_URI=postgres_url, STEAD_ARTIFACTS=s3_bucket, STEAD_USER="tester")
    servers: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for i in range(REPLICAS):
            port = _port()
            with open(tmp_path / f"server-{i}.log", "wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "stead.serving.app", "--port", str(port)],
                    env={**env, "STEAD_PREDLOG_DIR": str(tmp_path / f"wal-{i}")},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            servers.append((f"http://127.0.0.1:{port}", proc))
        deadline = time.monotonic() + 120
        for i, (url, proc) in enumerate(servers):
            while True:
                try:
                    if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / f"server-{i}.log").read_text()
                time.sleep(0.1)

        # Load: two threads per replica, each sending one prediction after another over keep-alive.
        results: list[tuple[int, float, float, int, Any]] = []  # (replica, sent, answered, status, version)
        stop = threading.Event()
        body = {"instances": X.head(2).to_dict(orient="records")}

        def hammer(replica: int, url: str) -> None:
            with httpx.Client(timeout=10) as http:
                while not stop.is_set():
                    sent = time.monotonic()
                    try:
                        answer = http.post(f"{url}/v1/deployments/churn-api/predict", json=body)
                        version = answer.json().get("version") if answer.status_code == 200 else answer.text
                        results.append((replica, sent, time.monotonic(), answer.status_code, version))
                    except httpx.HTTPError as exc:
                        results.append((replica, sent, time.monotonic(), 0, repr(exc)))

        threads = [
            threading.Thread(target=hammer, args=(i, url), daemon=True)
            for _ in range(2)
            for i, (url, _) in enumerate(servers)
        ]
        for thread in threads:
            thread.start()
        warm = time.monotonic() + 60  # every replica answers steadily
        while min(sum(1 for r in results if r[0] == i) for i in range(REPLICAS)) < 20 and time.monotonic() < warm:
            time.sleep(0.1)
        # A new version goes out through replica 1; every replica switches to it.
        Client(settings=Settings(uri=servers[1][0], user="tester")).deploy("churn/2", "churn-api")
        deployed = time.monotonic()
        while time.monotonic() < deployed + 60:
            recent = [r for r in results if r[1] > time.monotonic() - 0.3]
            if {r[0] for r in recent if r[4] == 2} == set(range(REPLICAS)) and {r[4] for r in recent} == {2}:
                break
            time.sleep(0.1)
        time.sleep(1.0)
        Client(settings=Settings(uri=servers[0][0], user="tester")).rollback("churn-api")
        rolled_back = time.monotonic()  # the new revision is committed when the call returns
        time.sleep(2.5)
        stop.set()
        for thread in threads:
            thread.join(15)

        failed = [r for r in results if r[3] != 200]
        assert failed == [], failed[:5]
        for replica in range(REPLICAS):
            mine = [r for r in results if r[0] == replica]
            assert {r[4] for r in mine if rolled_back - 1.0 < r[1] and r[2] < rolled_back} == {2}
            stale = [r[1] - rolled_back for r in mine if r[4] == 2 and r[1] > rolled_back]
            print(f"replica {replica}: {len(mine)} requests, last v2 answer sent {max(stale, default=0):.3f} s after")
            late = [r for r in mine if r[1] > rolled_back + 1.0]
            assert late and {r[4] for r in late} == {1}, f"replica {replica} still served v2 1 s after the rollback"
    finally:
        for _, proc in servers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for _, proc in servers]
    assert codes == [0] * REPLICAS
    # Every replica's prediction log reached the bucket as Parquet segments, indexed in PostgreSQL.
    segments = client.store.prediction_segments("churn-api")
    assert len({s["writer"] for s in segments}) == REPLICAS
    assert sum(s["rows"] for s in segments) == 2 * sum(1 for r in results if r[3] == 200)
    client.store.close()
