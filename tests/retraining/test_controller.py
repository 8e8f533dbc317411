"""The controller: one lease per store, automatic canary analysis driving rollouts, and triggers that fire
exactly once per cause, across restarts."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stead.client import Client
from stead.project import load_project
from stead.retraining.controller import Controller
from stead.retraining.pipeline import run_pipeline

TRAIN = """
from sklearn.linear_model import LogisticRegression

def train(ctx):
    return LogisticRegression(C=float(ctx.params.get("C", 1.0)), max_iter=300).fit(ctx.X, ctx.y)
"""

YAML = """
project: test
models:
  churn:
    train: train.py:train
    data: data.parquet
    target: y
    task: classification
    gates:
      - {{metric: roc_auc, min: 0.6}}
    deploy:
      deployment: churn-api
      rollout: [10, 50, 100]
      analysis: {{min_requests: 200, max_error_rate: 0.01}}
    retrain:
      on: [{on}]
      cooldown: 1h
"""


def _data(root: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1200, 2))
    y = (x[:, 0] + rng.normal(scale=0.7, size=1200) > 0).astype(int)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y}).to_parquet(root / "data.parquet", index=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _data(tmp_path, 0)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "stead.yaml").write_text(YAML.format(on="new_data"))
    return tmp_path / "stead.yaml"


def _health(client: Client, version: int, route: str, requests: int, errors: int, latency_ms: float = 2.0) -> None:
    now = time.time() + 1
    bounds = [0.001, 0.0025, 0.005, 0.01, 0.05, 0.1]
    counts = [0] * len(bounds)
    counts[next(i for i, b in enumerate(bounds) if latency_ms / 1000 <= b)] = requests
    client.store.add_serving_stats(
        [
            {
                "deployment": "churn-api",
                "model": "churn",
                "version": version,
                "route": route,
                "worker": "w1",
                "window_start": now - 5,
                "window_end": now,
                "requests": requests,
                "errors_4xx": 0,
                "errors_5xx": errors,
                "latency": {"bounds": bounds, "counts": counts},
            }
        ]
    )


def _canary(client: Client, project: Path) -> None:
    assert run_pipeline(client.store, load_project(project), "churn").approved
    second = run_pipeline(client.store, load_project(project), "churn", params={"C": 0.5})
    assert second.approved and second.rollout and "canary" in second.rollout


def test_one_controller_holds_the_lease_and_the_other_waits(client: Client, project: Path) -> None:
    first = Controller(client.store, project, holder="a")
    second = Controller(client.store, project, holder="b")
    assert first.tick().held
    report = second.tick()
    assert not report.held and report.holder == "a"
    client.store.release_lease("controller", "a")
    assert second.tick().held


def test_a_good_canary_is_advanced_step_by_step_and_promoted(client: Client, project: Path) -> None:
    _canary(client, project)
    ctl = Controller(client.store, project, holder="c", run_pipelines_inline=True)
    ctl.tick()
    assert client.store.list_rollouts("churn-api")[0]["step_index"] == 0  # held: no canary traffic yet
    _health(client, 2, "canary", 300, 0)
    _health(client, 1, "primary", 2700, 1)
    ctl.tick()
    routes = {(r.version, r.kind): r.weight for r in client.get_deployment("churn-api").routes}
    assert routes[(2, "canary")] == pytest.approx(0.5)
    # Restart: a new controller continues from the stored step.
    client.store.release_lease("controller", "c")
    time.sleep(0.05)
    _health(client, 2, "canary", 1500, 2)
    _health(client, 1, "primary", 1500, 2)
    Controller(client.store, project, holder="d", run_pipelines_inline=True).tick()
    assert [(r.version, r.kind) for r in client.get_deployment("churn-api").routes] == [(2, "primary")]
    assert client.get_model_version("churn", "champion").version == 2
    rollout = client.store.list_rollouts("churn-api")[0]
    assert rollout["status"] == "promoted"
    decisions = [d["decision"] for d in client.store.canary_decisions(rollout_id=rollout["id"])]
    assert decisions == ["hold", "advance", "promote"]


def test_a_canary_with_more_errors_is_rolled_back_with_its_evidence(client: Client, project: Path) -> None:
    _canary(client, project)
    _health(client, 2, "canary", 400, 20)
    _health(client, 1, "primary", 3600, 3)
    Controller(client.store, project, holder="c", run_pipelines_inline=True).tick()
    assert [(r.version, r.kind) for r in client.get_deployment("churn-api").routes] == [(1, "primary")]
    rollout = client.store.list_rollouts("churn-api")[0]
    assert rollout["status"] == "rolled_back"
    decision = client.store.canary_decisions(rollout_id=rollout["id"])[-1]
    assert decision["decision"] == "rollback"
    assert "error rate 5.00% is above the limit 1.00%" in decision["evidence"]["reasons"][0]
    assert decision["evidence"]["evidence"]["error_rate"]["canary"] == pytest.approx(0.05)
    assert client.get_model_version("churn", 2).state == "rejected"
    assert client.get_model_version("churn", "champion").version == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_new_data_fires_one_retrain_across_restarts_in_a_subprocess(client: Client, project: Path) -> None:
    assert run_pipeline(client.store, load_project(project), "churn").approved
    assert Controller(client.store, project, holder="x").tick().actions == []
    _data(project.parent, 1)  # the data at the model's path changes
    ctl = Controller(client.store, project, holder="x")
    report = ctl.tick()
    assert any("the data changed" in a for a in report.actions), report
    assert ctl.children, "the pipeline runs as a child process while the loop goes on"
    finished = ctl.wait_pipelines(timeout=300)
    assert any("approved" in a or "rejected" in a for a in finished.actions), finished
    runs = client.store.list_pipeline_runs("churn")
    assert [r["trigger"] for r in runs] == ["new_data", "manual"]
    assert runs[0]["status"] in ("APPROVED", "REJECTED") and runs[0]["version"] == 2
    # The warm-started process recorded the command that re-runs this pipeline by hand.
    argv = client.get_run(runs[0]["run_id"]).env["argv"]
    assert argv[:3] == ["stead", "run", "churn"] and "--pipeline-id" not in argv
    client.store.release_lease("controller", "x")
    # Another controller after a restart: the same cause does not fire again.
    again = Controller(client.store, project, holder="y").tick()
    assert not any("pipeline run" in a for a in again.actions)
    assert len(client.store.list_pipeline_runs("churn")) == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_failing_warm_started_pipeline_is_reported_and_the_loop_goes_on(client: Client, project: Path) -> None:
    assert run_pipeline(client.store, load_project(project), "churn").approved
    (project.parent / "train.py").write_text("def train(ctx):\n    raise RuntimeError('the GPU caught fire')\n")
    _data(project.parent, 2)
    ctl = Controller(client.store, project, holder="x")
    ctl.warm()
    started = time.monotonic()
    assert any("the data changed" in a for a in ctl.tick().actions)
    finished = ctl.wait_pipelines(timeout=300)
    assert any("the GPU caught fire" in e for e in finished.errors), finished
    assert not ctl.children
    runs = client.store.list_pipeline_runs("churn")
    assert runs[0]["trigger"] == "new_data" and runs[0]["status"] == "FAILED"
    assert time.monotonic() - started < 120
    assert ctl.tick().held  # the controller itself is unharmed


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_script_without_a_main_guard_is_not_re_run_by_a_pipeline(client: Client, project: Path) -> None:
    import subprocess
    import sys

    assert run_pipeline(client.store, load_project(project), "churn").approved
    _data(project.parent, 3)
    script = project.parent / "loop.py"
    script.write_text(
        "import pathlib\n"
        "from stead.client import Client\n"
        "from stead.retraining.controller import Controller\n"
        "from stead.settings import Settings\n"
        f"pathlib.Path({str(project.parent / 'starts.txt')!r}).open('a').write('start\\n')\n"
        f"store = Client(settings=Settings(uri={client.settings.uri!r})).store\n"
        f"ctl = Controller(store, pathlib.Path({str(project)!r}), holder='script')\n"
        "print(ctl.tick().actions)\n"
        "print(ctl.wait_pipelines(timeout=300).actions)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "the data changed" in done.stdout and ("approved" in done.stdout or "rejected" in done.stdout)
    assert (project.parent / "starts.txt").read_text() == "start\n"  # the pipeline did not run the script again


def test_an_alert_retrain_waits_for_labels_after_the_alert_and_trains_on_them(client: Client, project: Path) -> None:
    """``retrain.after_alert``: a drift alert fires its retrain only once ``min_labels`` predictions served
    after it opened have labels, and the pipeline trains and is gated on those predictions, not on the
    data source (which still holds the world before the alert)."""
    from _predlog import log_segment

    project.write_text(
        YAML.format(on="drift").replace("cooldown: 1h", "cooldown: 1h\n      after_alert: {min_labels: 60}")
    )
    assert run_pipeline(client.store, load_project(project), "churn").approved
    model = client.load_model("churn/1")
    rng = np.random.default_rng(5)
    opened = time.time() - 1_000
    alert = client.store.open_alert("churn-api", "drift_share", at=opened)

    def serve(n: int, start: float, sequence: int) -> None:
        x = pd.DataFrame({"a": rng.normal(2.0, 1.0, size=n), "b": rng.normal(size=n)})  # a drifted (the monitor
        y = (x["b"] > 0).astype(int)  # keeps the alert open), and the label follows b now, not a
        log_segment(client, "churn-api", x, model.predict(x), y, start=start, sequence=sequence, spacing=1.0)

    serve(80, opened - 200, 1)  # before the alert: labelled, but not counted
    serve(40, opened + 10, 2)
    ctl = Controller(client.store, project, holder="c", run_pipelines_inline=True)
    ctl.tick()
    assert [p["trigger"] for p in client.store.list_pipeline_runs("churn")] == ["manual"]
    serve(40, opened + 100, 3)
    ctl.tick()
    runs = client.store.list_pipeline_runs("churn")
    assert [p["trigger"] for p in runs] == ["drift", "manual"]
    retrain = runs[0]
    assert retrain["key"] == f"alert:{alert.id}" and retrain["cause"]["since"] == pytest.approx(opened)
    load = next(s for s in retrain["steps"] if s["name"] == "load")
    assert load["detail"].startswith("80 rows x 3 columns")
    assert f"labelled predictions served on churn-api since alert {alert.id} opened" in load["detail"]
    run = client.get_run(retrain["run_id"])
    assert "stead.data_hash" not in run.tags and "stead.feedback_hash" in run.tags
    trained = next(u for u in run.inputs if u.role == "train")
    assert client.store.get_dataset(trained.dataset_id).rows == 64  # 80 minus the 20% holdout
    ctl.tick()  # the alert fired once
    assert len(client.store.list_pipeline_runs("churn")) == 2


def test_an_invalid_stead_yaml_is_reported_once_and_the_loop_goes_on(client: Client, project: Path) -> None:
    """`stead serve` runs the controller in a thread: a stead.yaml edited into an invalid state is said once,
    naming the field, and the loop picks the file up again once it is fixed (it used to end the thread)."""
    import threading

    good = project.read_text()
    project.write_text(good.replace("cooldown: 1h", "cooldown: 1h\n      after_alert: {min_labels: 0}"))
    said: list[str] = []
    ctl = Controller(client.store, project, holder="c", echo=said.append, run_pipelines_inline=True)
    stop = threading.Event()
    thread = threading.Thread(target=ctl.run, kwargs={"interval": 0.05, "stop": stop})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not said and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # several more ticks fail the same way: said once
        assert said == [
            "error: models.churn.retrain.after_alert.min_labels: expected a number >= 1, got 0 (line 18); "
            "the controller tries again every 0.05 s"
        ]
        fixed = project.with_suffix(".fixed")
        fixed.write_text(good)
        fixed.replace(project)  # at once, as an editor saves (a write in place can be read half-done)
        while len(said) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert said[1:] == ["the controller is running again"] and thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=10)
