"""The limits docs/SCALING.md quotes, measured on this machine (benchmarks: not part of the package).

    .venv/bin/python benchmarks/scaling.py serve      # predictions per second of one `stead serve` worker
    .venv/bin/python benchmarks/scaling.py predlog    # prediction-log rows per second into S3 (moto on loopback)
    .venv/bin/python benchmarks/scaling.py monitor    # monitor scan time per million logged rows

Each prints one JSON line. `predlog` starts moto's S3 server itself; nothing needs a network.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _model_store(root: Path, artifacts: str | None = None, rows: int = 2000) -> Any:
    from sklearn.linear_model import LogisticRegression

    from stead.settings import Settings
    from stead.store import open_store
    from stead.tracking import start_run

    store = open_store(Settings(uri=str(root / "store"), artifacts=artifacts, user="bench"))
    rng = np.random.default_rng(0)
    X = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(4)})
    y = (X["x0"] + X["x1"] > 0).astype(int)
    with start_run(experiment="bench", store=store) as run:
        run.log_dataset("train", X, role="train")
        run.log_model(LogisticRegression().fit(X, y), name="bench", input_example=X.head(5))
    from stead.deployments import deploy

    deploy(store, "bench/1", "bench")
    return store


def serve(seconds: float = 10.0, clients: int = 8) -> dict[str, Any]:
    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _model_store(root).close()
        port = _port()
        env = {**os.environ, "STEAD_URI": str(root / "store")}
        proc = subprocess.Popen([sys.executable, "-m", "stead.serving.app", "--port", str(port)], env=env)
        url = f"http://127.0.0.1:{port}/v1/deployments/bench/predict"
        try:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            body = {"instances": [{"x0": 0.1, "x1": -0.2, "x2": 0.3, "x3": 1.0}]}
            counts = [0] * clients
            failures = [0] * clients
            stop = time.monotonic() + seconds

            def hammer(i: int) -> None:
                with httpx.Client() as http:
                    while time.monotonic() < stop:
                        ok = http.post(url, json=body).status_code == 200
                        counts[i] += ok
                        failures[i] += not ok

            threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    return {"predictions_per_s_one_worker": round(sum(counts) / seconds), "failed": sum(failures), "clients": clients}


def predlog(records: int = 100_000) -> dict[str, Any]:
    import s3fs

    from stead.serving.predlog import PredictionLog, new_request_id

    port = _port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}"
    )
    try:
        time.sleep(2.0)
        s3fs.S3FileSystem().mkdir("bench")
        with tempfile.TemporaryDirectory() as tmp:
            store = _model_store(Path(tmp), artifacts="s3://bench/stead")
            log = PredictionLog(store, Path(tmp) / "wal", durability="write", rotate_rows=20_000)
            log.start()
            started = time.perf_counter()
            for i in range(records):
                row = {"x0": [0.1 * (i % 7)], "x1": [0.2], "x2": [0.3], "x3": [float(i % 11)]}
                while not log.submit(
                    {
                        "id": new_request_id(),
                        "t": time.time(),
                        "d": "bench",
                        "m": "bench",
                        "v": 1,
                        "r": "primary",
                        "lat": 0.4,
                        "n": 1,
                        "in": row,
                        "out": {"predictions": [i % 2]},
                    }
                ):
                    time.sleep(0.001)  # the queue is full: wait for the writer (nothing dropped)
            log.flush(timeout=600)
            elapsed = time.perf_counter() - started
            log.stop()
            segments = store.prediction_segments("bench")
            rows = sum(s["rows"] for s in segments)
            store.close()
    finally:
        moto.terminate()
        moto.wait(10)
    return {"predlog_rows_per_s_into_s3": round(rows / elapsed), "rows": rows, "segments": len(segments)}


def monitor(rows: int = 1_000_000, batch: int = 1000) -> dict[str, Any]:
    from stead.client import Client
    from stead.serving.predlog import PredictionLog, new_request_id
    from stead.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        store = _model_store(Path(tmp))
        log = PredictionLog(store, Path(tmp) / "wal", durability="write", rotate_rows=200)
        log.start()
        rng = np.random.default_rng(1)
        for _ in range(rows // batch):
            cols = {f"x{i}": (rng.normal(size=batch) + (0.3 if i == 0 else 0)).tolist() for i in range(4)}
            record = {"id": new_request_id(), "t": time.time(), "d": "bench", "m": "bench", "v": 1, "r": "primary"}
            while not log.submit({**record, "lat": 0.4, "n": batch, "in": cols, "out": {"predictions": [0] * batch}}):
                time.sleep(0.001)
        log.flush(timeout=600)
        log.stop()
        store.close()
        client = Client(settings=Settings(uri=str(Path(tmp) / "store"), user="bench"))
        started = time.perf_counter()
        report = client.monitor("bench", window=rows)
        elapsed = time.perf_counter() - started
    return {
        "monitor_seconds_per_million_rows": round(elapsed * 1_000_000 / report["window"]["rows"], 2),
        **report["window"],
    }


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "serve"
    figures = {"serve": serve, "predlog": predlog, "monitor": monitor}[what]()
    figures["load_average_1m"] = round(os.getloadavg()[0], 1)
    figures["cpus"] = os.cpu_count()
    print(json.dumps(figures))
