"""Tracking benchmark: stead against MLflow 3.x, each on a local SQLite store, in one run.

    .venv/bin/python benchmarks/tracking.py [--runs 10000] [--mlflow-python PATH]

MLflow runs in its own virtualenv (created under benchmarks/.venvs/mlflow on first use) as a subprocess
that executes the same workloads and prints JSON. Figures:

- per-call ``log_metric``: 100 runs x 100 steps, calls per second;
- one ``log_metrics`` / ``log_batch`` of 10,000 points, seconds;
- ``search_runs`` with a metric filter over N runs (default 10,000), seconds (best of 5);
- ``log_dataset`` of a 1,000,000-row x 25-column frame (hash, profile, sample, Parquet), seconds (stead only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".venvs" / "mlflow"

MLFLOW_CODE = r"""
import json, os, sys, time, tempfile, logging, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import mlflow
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric
n_runs = int(sys.argv[1])
out = {"version": mlflow.__version__}
d = tempfile.mkdtemp()
mlflow.set_tracking_uri(f"sqlite:///{d}/mlflow.db")
client = MlflowClient()
exp = client.create_experiment("bench")
# per-call log_metric: 100 runs x 100 steps
t = time.perf_counter()
for r in range(100):
    run = client.create_run(exp)
    for step in range(100):
        client.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
    client.set_terminated(run.info.run_id)
out["log_metric_calls_per_s"] = 10_000 / (time.perf_counter() - t)
# one batch of 10,000 points (MLflow allows 1,000 metrics per log_batch call)
run = client.create_run(exp)
now = int(time.time() * 1000)
points = [Metric("m", float(i), now, i) for i in range(10_000)]
t = time.perf_counter()
for i in range(0, 10_000, 1000):
    client.log_batch(run.info.run_id, metrics=points[i:i + 1000])
out["log_batch_10k_s"] = time.perf_counter() - t
# search over n_runs
exp2 = client.create_experiment("search")
t = time.perf_counter()
for i in range(n_runs):
    run = client.create_run(exp2)
    client.log_batch(run.info.run_id, metrics=[Metric("auc", (i % 1000) / 1000, now, 0)],
                     params=[mlflow.entities.Param("model", "gbm" if i % 2 else "lr")])
out["populate_s"] = time.perf_counter() - t
best = None
for _ in range(5):
    t = time.perf_counter()
    found = client.search_runs([exp2], filter_string="metrics.auc > 0.9", max_results=50_000)
    best = min(best or 1e9, time.perf_counter() - t)
out["search_s"] = best
out["search_found"] = len(found)
print(json.dumps(out))
"""


def ensure_mlflow(python: str | None) -> str:
    if python:
        return python
    exe = MLFLOW_VENV / "bin" / "python"
    if not exe.exists():
        print("creating the MLflow virtualenv (once)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", "mlflow>=3,<4"], check=True)
    return str(exe)


def bench_stead(n_runs: int) -> dict[str, float]:
    import numpy as np
    import pandas as pd

    import stead
    from stead._version import __version__
    from stead.settings import Settings
    from stead.store.sql import SqlStore

    out: dict[str, float] = {}
    d = tempfile.mkdtemp()
    settings = Settings(uri=d, user="bench")
    client = stead.Client(settings=settings)
    t = time.perf_counter()
    for _ in range(100):
        with stead.start_run(experiment="bench", settings=settings, capture_env=False) as run:
            for step in range(100):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
    out["log_metric_calls_per_s"] = 10_000 / (time.perf_counter() - t)
    with stead.start_run(experiment="bench", settings=settings, capture_env=False) as run:
        now = time.time()
        points = [("m", float(i), i, now) for i in range(10_000)]
        t = time.perf_counter()
        client.store.log_batch(run.id, metrics=points)
        out["log_batch_10k_s"] = time.perf_counter() - t
    store: SqlStore = client.store
    t = time.perf_counter()
    # Populate through the store's public calls, 500 runs per process-local loop.
    for i in range(n_runs):
        rid = store.create_run("search", params={"model": "gbm" if i % 2 else "lr"})
        store.log_batch(rid, metrics=[("auc", (i % 1000) / 1000, 0, now)])
    out["populate_s"] = time.perf_counter() - t
    best = 1e9
    for _ in range(5):
        t = time.perf_counter()
        found = client.search_runs("search", filter="metrics.auc > 0.9", max_results=50_000)
        best = min(best, time.perf_counter() - t)
    out["search_s"] = best
    out["search_found"] = len(found)
    rng = np.random.default_rng(0)
    n = 1_000_000
    frame = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(20)})
    for i in range(5):
        frame[f"c{i}"] = pd.Categorical(rng.choice([f"v{j}" for j in range(10)], size=n))
    with stead.start_run(experiment="bench", settings=settings, capture_env=False) as run:
        t = time.perf_counter()
        run.log_dataset("big", frame, store=False)
        out["log_dataset_1m_nostore_s"] = time.perf_counter() - t
    with stead.start_run(experiment="bench", settings=settings, capture_env=False) as run:
        frame["f0"] = frame["f0"] + 1.0  # a new version, so nothing is deduplicated
        t = time.perf_counter()
        run.log_dataset("big", frame)
        out["log_dataset_1m_s"] = time.perf_counter() - t
    out["version"] = __version__  # type: ignore[assignment]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000, help="runs to search over")
    parser.add_argument("--mlflow-python", help="a Python with mlflow installed (default: benchmarks/.venvs/mlflow)")
    args = parser.parse_args()
    python = ensure_mlflow(args.mlflow_python)
    print(f"machine: {os.cpu_count()} cores; runs to search: {args.runs}", flush=True)
    ours = bench_stead(args.runs)
    print(f"stead done: {json.dumps(ours)}", flush=True)
    result = subprocess.run([python, "-c", MLFLOW_CODE, str(args.runs)], capture_output=True, text=True, check=True)
    theirs = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"mlflow done: {json.dumps(theirs)}", flush=True)
    print()
    print(f"{'figure':40} {'stead ' + str(ours['version']):>14} {'mlflow ' + theirs['version']:>14} {'ratio':>8}")
    rows = [
        ("log_metric per call (calls/s)", "log_metric_calls_per_s", True),
        ("log_metrics 10,000 points (s)", "log_batch_10k_s", False),
        (f"search_runs over {args.runs} runs (s)", "search_s", False),
    ]
    for label, key, higher_better in rows:
        a, b = ours[key], theirs[key]
        ratio = a / b if higher_better else b / a
        print(f"{label:40} {a:14.4g} {b:14.4g} {ratio:7.1f}x")
    print(f"{'search matches (check)':40} {ours['search_found']:14.0f} {theirs['search_found']:14.0f}")
    print(f"{'log_dataset 1M x 25, store=False (s)':40} {ours['log_dataset_1m_nostore_s']:14.3f}")
    print(f"{'log_dataset 1M x 25, with Parquet (s)':40} {ours['log_dataset_1m_s']:14.3f}")
    print("(ratio: how many times better stead is)")


if __name__ == "__main__":
    main()
