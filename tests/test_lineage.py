"""Lineage from model references up to the data, on every backend, and fast on a big store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import stead
from stead.client import Client
from stead.settings import Settings


def _train(client: Client, seed: int = 0) -> tuple[Any, str, list[str]]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=40), "z": rng.normal(size=40)})
    y = (X["x"] > 0).astype(int)
    with stead.start_run(experiment="churn", store=client.store) as run:
        train = run.log_dataset("train", X.assign(y=y))
        test = run.log_dataset("test", X.head(10).assign(y=y.head(10)))
        mv = run.log_model(LogisticRegression().fit(X, y), name="churn", input_example=X.head())
    return mv, run.id, [train.id, test.id]


def test_lineage_walks_up_from_an_alias_to_the_datasets(client: Client) -> None:
    _train(client, 0)
    mv, run_id, datasets = _train(client, 1)
    client.set_alias("churn", "champion", mv.version)
    for ref in ("churn@champion", f"churn/{mv.version}", f"churn@{mv.version}"):
        graph = client.lineage(ref, direction="up")
        ids = [n["id"] for n in graph.nodes]
        assert ids[0] == f"version:churn/{mv.version}", ref
        assert set(ids) == {f"version:churn/{mv.version}", f"run:{run_id}", *(f"dataset:{d}" for d in datasets)}
        assert {"source": f"run:{run_id}", "target": f"version:churn/{mv.version}", "kind": "produced"} in graph.edges
        kinds = {n["id"]: n["kind"] for n in graph.nodes}
        assert sorted(kinds[f"dataset:{d}"] for d in datasets) == ["dataset", "dataset"]
    down = client.lineage(f"dataset:{datasets[0]}", direction="down")
    assert f"version:churn/{mv.version}" in {n["id"] for n in down.nodes}
    assert f"version:churn/{mv.version - 1}" not in {n["id"] for n in down.nodes}


def test_lineage_cli_prints_tree_json_and_dot(client: Client, settings: Settings) -> None:
    mv, run_id, datasets = _train(client)
    client.set_alias("churn", "champion", mv.version)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env.update({"STEAD_URI": settings.uri, "STEAD_USER": settings.user})
    if settings.artifacts:
        env["STEAD_ARTIFACTS"] = settings.artifacts
    if settings.token:
        env["STEAD_TOKEN"] = settings.token

    def cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from stead.cli import main; sys.exit(main())", "lineage", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        return done, time.perf_counter() - start

    tree, elapsed = cli("churn@champion")
    assert tree.returncode == 0, tree.stderr
    assert "came from:" in tree.stdout and "[produced]" in tree.stdout and "[input]" in tree.stdout
    # a fresh interpreter: imports dominate; the in-process budget is tested below. Generous for loaded CI.
    assert elapsed < 5, elapsed
    graph = json.loads(cli("churn@champion", "--json")[0].stdout)
    assert {n["id"] for n in graph["nodes"]} >= {f"run:{run_id}", *(f"dataset:{d}" for d in datasets)}
    dot = cli("churn@champion", "--dot")[0].stdout
    assert dot.startswith("digraph lineage") and f'"run:{run_id}" -> "version:churn/{mv.version}"' in dot


def test_lineage_cli_in_process_is_under_a_second(client: Client, settings: Settings, monkeypatch: Any) -> None:
    from stead.cli import main
    from stead.tracking import close_stores

    mv, _, _ = _train(client)
    client.set_alias("churn", "champion", mv.version)
    monkeypatch.setenv("STEAD_URI", settings.uri)
    if settings.artifacts:
        monkeypatch.setenv("STEAD_ARTIFACTS", settings.artifacts)
    if settings.token:
        monkeypatch.setenv("STEAD_TOKEN", settings.token)
    close_stores()  # the command opens its own store, as from a shell
    start = time.perf_counter()
    assert main(["lineage", "churn@champion", "--json"]) == 0
    assert time.perf_counter() - start < 1.0


@pytest.fixture
def big_store(client: Client) -> tuple[Client, str]:
    """10,000 runs, each with a dataset edge, bulk-inserted through SqlStore's engine in one transaction."""
    from sqlalchemy import insert

    from stead.store import schema as s

    store = client.store
    engine = getattr(store, "engine", None)
    if engine is None:
        pytest.skip("bulk insert needs a SQL store; the http backend mirrors it")
    mv, run_id, _ = _train(client)
    client.set_alias("churn", "champion", mv.version)
    now = time.time()
    with engine.begin() as conn:
        exp_id = conn.execute(s.experiments.insert().values(name="bulk", created_at=now)).inserted_primary_key[0]
        ids = [uuid.uuid4().hex for _ in range(10_000)]
        conn.execute(
            insert(s.runs),
            [{"id": i, "experiment_id": exp_id, "status": "FINISHED", "start_time": now, "end_time": now} for i in ids],
        )
        conn.execute(
            insert(s.lineage_edges),
            [
                {"source": f"dataset:{n % 50:064x}", "target": f"run:{i}", "kind": "input", "at": now, "attrs": {}}
                for n, i in enumerate(ids)
            ],
        )
    return client, run_id


def test_lineage_is_fast_on_a_store_with_ten_thousand_runs(big_store: tuple[Client, str]) -> None:
    client, run_id = big_store
    assert client.store.counts()["runs"] >= 10_001
    client.lineage("churn@champion")  # warm the connection pool
    best = min(_timed(client) for _ in range(3))
    assert best < 0.1, f"lineage took {best * 1000:.0f} ms"
    assert f"run:{run_id}" in {n["id"] for n in client.lineage("churn@champion").nodes}


def _timed(client: Client) -> float:
    start = time.perf_counter()
    client.lineage("churn@champion", direction="both", depth=10)
    return time.perf_counter() - start
