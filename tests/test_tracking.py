"""Tracking on every backend: runs, params, metrics, tags, artifacts, datasets, search, faults."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import stead
from stead.client import Client
from stead.errors import ConflictError, NotFoundError, ValidationError
from stead.settings import Settings


def _run(client: Client, **kwargs: object) -> stead.ActiveRun:
    return stead.start_run(settings=client.settings, **kwargs)  # type: ignore[arg-type]


def test_a_run_records_params_metrics_tags_and_its_environment(client: Client) -> None:
    with _run(client, experiment="churn", params={"C": 1.0, "penalty": "l2"}, seed=42, tags={"team": "ml"}) as run:
        assert stead.active_run() is run
        run.log_param("extra", 3)
        run.log_metric("auc", 0.91, step=0)
        run.log_metrics({"auc": 0.93, "f1": 0.8}, step=1)
        run.set_tag("stage", "dev")
    assert stead.active_run() is None
    got = client.get_run(run.id)
    assert got.status == "FINISHED"
    assert got.experiment == "churn"
    assert got.params == {"C": "1.0", "penalty": "l2", "extra": "3"}
    assert got.tags == {"team": "ml", "stage": "dev"}
    assert got.metrics == {"auc": 0.93, "f1": 0.8}
    assert got.seed == 42
    env = got.env
    assert env["python"]["version"].startswith("3.")
    assert any(p.startswith("numpy==") for p in env["packages"])
    assert len(env["packages_hash"]) == 64
    assert env["seed"] == 42
    history = client.get_metric_history(run.id, "auc")
    assert [(s, v) for s, v, _ in history] == [(0, 0.91), (1, 0.93)]


def test_nan_and_infinity_are_stored_faithfully(client: Client) -> None:
    with _run(client, experiment="x") as run:
        run.log_metric("loss", float("nan"), step=0)
        run.log_metric("loss", float("inf"), step=1)
        run.log_metric("neg", float("-inf"))
    history = client.get_metric_history(run.id, "loss")
    assert math.isnan(history[0][1]) and history[1][1] == math.inf
    assert client.get_run(run.id).metrics["neg"] == -math.inf


def test_exceptions_fail_the_run_and_keyboard_interrupt_kills_it(client: Client) -> None:
    with pytest.raises(RuntimeError), _run(client, experiment="x") as failed:
        raise RuntimeError("boom at epoch 3")
    got = client.get_run(failed.id)
    assert got.status == "FAILED"
    assert got.error is not None and "boom at epoch 3" in got.error
    with pytest.raises(KeyboardInterrupt), _run(client, experiment="x") as killed:
        raise KeyboardInterrupt
    assert client.get_run(killed.id).status == "KILLED"


def test_the_current_run_is_per_thread(client: Client) -> None:
    seen: dict[str, object] = {}

    def other() -> None:
        seen["other"] = stead.active_run()

    with _run(client, experiment="x") as run:
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert stead.active_run() is run
    assert seen["other"] is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(lambda r: r.log_param("p", [1, 2]), r"param 'p' of run \w+: expected a string", id="param-type"),
        pytest.param(
            lambda r: r.log_param("a/../b", 1), r"param key 'a/\.\./b' of run \w+ is not allowed", id="dotdot"
        ),
        pytest.param(
            lambda r: r.log_metric("m\nx", 1.0), r"metric key 'm\\nx' of run \w+ is not allowed", id="newline"
        ),
        pytest.param(
            lambda r: r.log_metric("m", "high"), r"metric 'm' of run \w+: value must be a number", id="metric-type"
        ),
        pytest.param(
            lambda r: r.set_tag("t", "x" * 9000), r"tag 't' of run \w+: value has 9000 characters", id="too-long"
        ),
        pytest.param(lambda r: r.log_metric("m", 1.0, step=1.5), r"step of run \w+ must be an integer", id="step"),
    ],
)
def test_bad_input_names_the_run_and_field_and_stores_nothing(client: Client, call: object, match: str) -> None:
    with _run(client, experiment="x") as run:
        with pytest.raises(ValidationError, match=match):
            call(run)  # type: ignore[operator]
        with pytest.raises(ValidationError):
            run.log_params({"good": 1, "bad": object()})
    got = client.get_run(run.id)
    assert got.params == {} and got.tags == {} and got.metrics == {}
    assert got.status == "FINISHED"


def test_a_finished_run_cannot_be_changed(client: Client) -> None:
    with _run(client, experiment="x", params={"a": 1}) as run, pytest.raises(ConflictError, match="params cannot"):
        run.log_param("a", 2)
    with pytest.raises(ConflictError, match=f"run {run.id} has ended"):
        run.log_metric("late", 1.0)
    with pytest.raises(ConflictError, match="FINISHED"):
        client.store.log_batch(run.id, params={"b": "1"})
    assert client.get_run(run.id).params == {"a": "1"}


def test_artifacts_files_and_folders_round_trip(client: Client, tmp_path: Path) -> None:
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "roc.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "plots" / "sub").mkdir()
    (tmp_path / "plots" / "sub" / "notes.txt").write_text("hello")
    (tmp_path / "report.txt").write_text("report")
    with _run(client, experiment="x") as run:
        run.log_artifact(tmp_path / "report.txt")
        run.log_artifact(tmp_path / "plots", name="figures")
        with pytest.raises(ValidationError, match=r"'\.\./evil'"):
            run.log_artifact(tmp_path / "report.txt", name="../evil")
    got = client.get_run(run.id)
    assert sorted(got.artifacts) == ["figures/roc.png", "figures/sub/notes.txt", "report.txt"]
    out = tmp_path / "out"
    out.mkdir()
    client.download_artifact(run.id, "figures", out)
    assert (out / "figures" / "sub" / "notes.txt").read_text() == "hello"
    path = client.download_artifact(run.id, "report.txt", out)
    assert path.read_text() == "report"


def test_datasets_are_content_addressed_and_reloadable(client: Client, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"x": rng.normal(size=200), "c": rng.choice(["a", "b", "c"], size=200), "y": rng.integers(0, 2, 200)}
    )
    df.to_parquet(tmp_path / "d.parquet", index=False)
    with _run(client, experiment="x") as run:
        v1 = run.log_dataset("train", df)
        v2 = run.log_dataset("train", tmp_path / "d.parquet", role="holdout")
        v3 = run.log_dataset("train", df.iloc[::-1].reset_index(drop=True), role="reversed")
        arr = run.log_dataset("matrix", rng.normal(size=(50, 3)), store=False)
    assert v1.id == v2.id != v3.id
    assert v1.rows == 200 and v1.columns == 3
    assert [c["name"] for c in v1.schema] == ["x", "c", "y"]
    assert v1.profile["columns"]["x"]["count"] == 200
    got = client.get_run(run.id)
    assert {(u.dataset_id, u.role) for u in got.inputs} == {
        (v1.id, "train"),
        (v1.id, "holdout"),
        (v3.id, "reversed"),
        (arr.id, "matrix"),
    }
    pd.testing.assert_frame_equal(client.load_dataset(v1.id), df)
    with pytest.raises(NotFoundError, match="store=False"):
        client.load_dataset(arr.id)
    assert client.get_dataset(v1.id[:10]).id == v1.id
    assert {d.id for d in client.list_datasets()} == {v1.id, v3.id, arr.id}
    runs = client.search_runs(filter=f"datasets.id = '{v1.id}'")
    assert [r.id for r in runs] == [run.id]


def test_search_compiles_filters_orders_and_pages(client: Client) -> None:
    ids = []
    for i in range(7):
        with _run(
            client, experiment="search", params={"model": "gbm" if i % 2 else "lr", "i": i}, tags={"k": f"t{i}"}
        ) as r:
            r.log_metric("auc", 0.5 + i / 20)
        ids.append(r.id)
    with _run(client, experiment="other") as other:
        other.log_metric("auc", 0.99)
    found = client.search_runs(
        "search", filter="metrics.auc > 0.6 and params.model = 'gbm'", order_by="metrics.auc DESC"
    )
    assert [r.id for r in found] == [ids[5], ids[3]]
    found = client.search_runs("search", filter="tags.k IN ('t1', 't2') or params.i = '6'", order_by="params.i")
    assert [r.id for r in found] == [ids[1], ids[2], ids[6]]
    assert len(client.search_runs(filter="metrics.auc >= 0.5")) == 8
    assert len(client.search_runs("search", filter="attributes.status = 'FINISHED'")) == 7
    page1 = client.search_runs("search", order_by="metrics.auc", max_results=3)
    assert page1.next_page_token is not None
    page2 = client.search_runs("search", order_by="metrics.auc", max_results=3, page_token=page1.next_page_token)
    page3 = client.search_runs("search", order_by="metrics.auc", max_results=3, page_token=page2.next_page_token)
    assert [r.id for r in [*page1, *page2, *page3]] == ids
    assert page3.next_page_token is None


def test_search_compares_infinities_and_missing_keys(client: Client) -> None:
    values = {"a": 0.95, "b": float("inf"), "c": float("-inf"), "d": float("nan"), "e": 0.2}
    ids = {}
    for name, value in values.items():
        with _run(client, experiment="edges", params={"p": name} if name != "e" else {}) as r:
            r.log_metric("auc", value)
        ids[r.id] = name

    def names(flt: str) -> set[str]:
        return {ids[r.id] for r in client.search_runs("edges", filter=flt)}

    assert names("metrics.auc > 0.9") == {"a", "b"}
    assert names("metrics.auc >= 0.2") == {"a", "b", "e"}
    assert names("metrics.auc < 0.5") == {"c", "e"}
    assert names("metrics.auc <= 0.95") == {"a", "c", "e"}
    assert names("metrics.auc > 0.9 or metrics.auc < 0.5") == {"a", "b", "c", "e"}
    # A run without the key matches no condition on it, "!=" included (as in MLflow).
    assert names("params.p != 'a'") == {"b", "c", "d"}
    assert names("metrics.missing < 1") == set()


def test_sqlite_search_plans_from_the_filtered_index_once_analyzed(tmp_path: Path) -> None:
    import sqlite3

    client = Client(settings=Settings(uri=str(tmp_path / "store")))
    store = client.store
    for i in range(300):
        rid = store.create_run("many", params={"model": "gbm" if i % 2 else "lr"})
        store.log_batch(rid, metrics=[("auc", i / 300, 0, time.time())])
    found = client.search_runs("many", filter="metrics.auc > 0.9 and params.model = 'gbm'")
    assert len(found) == 15 and all(r.metrics["auc"] > 0.9 and r.params["model"] == "gbm" for r in found)
    with sqlite3.connect(tmp_path / "store" / "stead.db") as db:
        stats = dict(db.execute("SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'runs'").fetchall())
        plan = " ".join(
            row[3]
            for row in db.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM runs WHERE experiment_id = 1 AND id IN "
                "(SELECT run_id FROM latest_metrics WHERE key = 'auc' AND value > 0.9)"
            )
        )
    assert stats["sqlite_autoindex_runs_1"].split()[0] == "300"
    # The planner starts from the metric's (key, value) range and looks each matching run up by id.
    assert "ix_latest_metrics_key_value (key=? AND value>?)" in plan and "sqlite_autoindex_runs_1 (id=?)" in plan, plan


@pytest.mark.parametrize(
    ("text", "pos"),
    [
        pytest.param("metrics.auc >", 13, id="missing-value"),
        pytest.param("metrics.auc > 0.8 and", 21, id="dangling-and"),
        pytest.param("auc > 0.8", 0, id="no-prefix"),
        pytest.param("metrics.auc ~ 3", 12, id="bad-op"),
        pytest.param("params.x > 'a'", -1, id="string-order"),
    ],
)
def test_a_malformed_filter_points_at_the_position(client: Client, text: str, pos: int) -> None:
    with pytest.raises(ValidationError) as info:
        client.search_runs(filter=text)
    if pos >= 0:
        assert f"position {pos}" in info.value.message


def test_attaching_to_a_running_run_does_not_end_it(client: Client) -> None:
    with _run(client, experiment="x") as owner:
        with stead.start_run(run_id=owner.id, settings=client.settings) as attached:
            attached.log_metric("from_attached", 1.0)
        assert client.get_run(owner.id).status == "RUNNING"
    got = client.get_run(owner.id)
    assert got.status == "FINISHED" and got.metrics == {"from_attached": 1.0}
    with pytest.raises(ConflictError, match="only a RUNNING run"):
        stead.start_run(run_id=owner.id, settings=client.settings)


CHILD = textwrap.dedent(
    """
    import sys, time
    import stead
    from stead.settings import Settings
    settings = Settings.from_env()
    with stead.start_run(experiment="crash", settings=settings) as run:
        for step in range(50):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.flush()
        print(run.id, flush=True)
        time.sleep(600)
    """
)


def _child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env["STEAD_URI"] = settings.uri
    if settings.artifacts:
        env["STEAD_ARTIFACTS"] = settings.artifacts
    env.update(extra)
    return env


def test_a_killed_process_leaves_a_failed_run_with_its_flushed_metrics(client: Client, settings: Settings) -> None:
    env = _child_env(settings, STEAD_HEARTBEAT_TIMEOUT="1")
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert client.get_run(run_id).status == "RUNNING"  # the default timeout (60 s) has not passed
    time.sleep(1.5)
    assert client.store.fail_stale_runs(timeout=1.0) == 1
    got = client.get_run(run_id)
    assert got.status == "FAILED"
    assert got.error is not None and "process vanished" in got.error
    assert len(client.get_metric_history(run_id, "loss")) == 50


WRITER = textwrap.dedent(
    """
    import sys
    import stead
    from stead.settings import Settings
    run_id, n = sys.argv[1], int(sys.argv[2])
    with stead.start_run(run_id=run_id, settings=Settings.from_env()) as run:
        for step in range(200):
            run.log_metric(f"w{n}", float(step), step=step)
    """
)


@pytest.mark.slow
def test_sixteen_processes_log_to_one_run_at_once(client: Client, settings: Settings) -> None:
    env = _child_env(settings)
    with _run(client, experiment="shared") as run:
        procs = [
            subprocess.Popen([sys.executable, "-c", WRITER, run.id, str(n)], env=env, stderr=subprocess.PIPE, text=True)
            for n in range(16)
        ]
        for p in procs:
            _, err = p.communicate(timeout=240)
            assert p.returncode == 0, err
    got = client.get_run(run.id)
    assert got.status == "FINISHED"
    for n in range(16):
        history = client.get_metric_history(run.id, f"w{n}")
        assert [s for s, _, _ in history] == list(range(200))
