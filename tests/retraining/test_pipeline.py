"""`stead run MODEL`: data -> holdout -> train(ctx) -> evaluate with the champion -> gates -> register -> deploy."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stead.cli import main
from stead.client import Client
from stead.project import load_project
from stead.retraining.pipeline import run_pipeline

TRAIN = textwrap.dedent(
    """
    from sklearn.linear_model import LogisticRegression

    def train(ctx):
        ctx.run.log_param("rows", len(ctx.X))
        return LogisticRegression(C=float(ctx.params.get("C", 1.0)), max_iter=300).fit(ctx.X, ctx.y)

    def weak(ctx):
        # Sees only one feature: worse than the champion on the same holdout.
        from sklearn.dummy import DummyClassifier
        return DummyClassifier(strategy="prior").fit(ctx.X, ctx.y)
    """
)

YAML = textwrap.dedent(
    """
    project: test
    models:
      churn:
        train: train.py:{fn}
        data: data.parquet
        target: y
        task: classification
        holdout: 0.25
        gates:
          - {{metric: roc_auc, min: 0.7}}
          - {{metric: roc_auc, vs_champion: 0.01}}
        deploy:
          deployment: churn-api
          rollout: [10, 50, 100]
    """
)


def _project(root: Path, fn: str = "train") -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}).to_parquet(root / "data.parquet", index=False)
    (root / "train.py").write_text(TRAIN)
    (root / "stead.yaml").write_text(YAML.format(fn=fn))
    return root / "stead.yaml"


def test_a_first_version_is_gated_registered_deployed_and_champion(client: Client, tmp_path: Path) -> None:
    project = load_project(_project(tmp_path))
    result = run_pipeline(client.store, project, "churn", params={"C": 0.5})
    assert result.approved and result.version == 1
    assert result.metrics["roc_auc"] is not None and result.metrics["roc_auc"] > 0.8
    version = client.get_model_version("churn", "champion")
    assert version.version == 1 and version.state == "serving"
    assert [g["passed"] for g in version.gate_results] == [True, True, True]
    assert "no champion yet" in version.gate_results[2]["reasons"]
    deployment = client.get_deployment("churn-api")
    assert [(r.version, r.weight) for r in deployment.routes] == [(1, 1.0)]
    run = client.get_run(result.run_id or "")
    assert run.params == {"C": "0.5", "rows": "1500"}
    assert {u.role for u in run.inputs} == {"train", "holdout"}
    assert run.tags["stead.pipeline"] == result.pipeline_id
    steps = [s["name"] for s in client.store.get_pipeline_run(result.pipeline_id)["steps"]]
    assert steps == ["load", "split", "train", "evaluate", "gates", "register", "rollout"]
    graph = client.lineage("churn@champion", direction="up")
    assert sum(n["kind"] == "dataset" for n in graph.nodes) == 2


def test_a_worse_candidate_is_rejected_naming_the_metric_and_both_values(client: Client, tmp_path: Path) -> None:
    run_pipeline(client.store, load_project(_project(tmp_path)), "churn")
    weak = run_pipeline(client.store, load_project(_project(tmp_path, fn="weak")), "churn")
    assert not weak.approved and weak.exit_code == 3
    version = client.get_model_version("churn", weak.version or 0)
    assert version.state == "rejected"
    failed = [g for g in version.gate_results if not g["passed"]]
    assert any("roc_auc 0.5000 is worse than the champion" in g["reasons"] for g in failed)
    assert client.get_model_version("churn", "champion").version == 1
    assert [r.version for r in client.get_deployment("churn-api").routes] == [1]


def test_a_second_approved_version_starts_a_canary(client: Client, tmp_path: Path) -> None:
    run_pipeline(client.store, load_project(_project(tmp_path)), "churn")
    second = run_pipeline(client.store, load_project(_project(tmp_path)), "churn", params={"C": 2.0})
    assert second.approved and second.rollout is not None and "canary" in second.rollout
    routes = {(r.version, r.kind): r.weight for r in client.get_deployment("churn-api").routes}
    assert routes[(2, "canary")] == pytest.approx(0.1)


def test_a_failing_champion_takes_the_rollout_when_failing_steps(client: Client, tmp_path: Path) -> None:
    """With an open performance alert on the deployment, the next candidate's canary starts at the first of
    ``rollout_when_failing``; a drift alert alone (inputs, not quality) keeps the usual steps."""
    yaml_file = _project(tmp_path)
    yaml_file.write_text(YAML.format(fn="train") + "      rollout_when_failing: [50, 100]\n")
    project = load_project(yaml_file)
    run_pipeline(client.store, project, "churn")
    client.store.open_alert("churn-api", "drift_share")
    second = run_pipeline(client.store, project, "churn", params={"C": 2.0})
    routes = {(r.version, r.kind): r.weight for r in client.get_deployment("churn-api").routes}
    assert routes[(2, "canary")] == pytest.approx(0.1)
    assert second.rollout is not None and "steps 10, 50, 100)" in second.rollout

    alert = client.store.open_alert("churn-api", "performance:roc_auc")
    third = run_pipeline(client.store, project, "churn", params={"C": 3.0})
    routes = {(r.version, r.kind): r.weight for r in client.get_deployment("churn-api").routes}
    assert routes[(3, "canary")] == pytest.approx(0.5)
    assert third.rollout is not None
    assert f"steps 50, 100; the champion fails its floor (alert {alert.id}" in third.rollout
    (rollout,) = client.store.list_rollouts("churn-api", status="running")
    assert [int(s) for s in rollout["steps"]] == [50, 100] and int(rollout["candidate"]) == 3


def test_a_champion_failing_a_bound_on_the_new_holdout_takes_the_rollout_when_failing_steps(
    client: Client, tmp_path: Path
) -> None:
    """No alert is open, but on today's data the champion fails the absolute gate the candidate passes (the
    label now follows -a): the canary starts at the first step of ``rollout_when_failing``, saying why."""
    yaml_file = _project(tmp_path)
    yaml_file.write_text(YAML.format(fn="train") + "      rollout_when_failing: [50, 100]\n")
    project = load_project(yaml_file)
    run_pipeline(client.store, project, "churn")
    data = pd.read_parquet(tmp_path / "data.parquet")
    data["y"] = (data["a"] < 0).astype(int)
    data.to_parquet(tmp_path / "data.parquet", index=False)
    second = run_pipeline(client.store, project, "churn")
    assert second.approved and second.rollout is not None
    assert "steps 50, 100; the champion fails its floor (champion v1 on this holdout: roc_auc 0." in second.rollout
    routes = {(r.version, r.kind): r.weight for r in client.get_deployment("churn-api").routes}
    assert routes[(2, "canary")] == pytest.approx(0.5)


def test_stead_run_exit_codes_and_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEAD_URI", str(tmp_path / ".stead"))
    _project(tmp_path)
    assert main(["run", "churn", "--param", "C=0.3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["approved"] is True and out["version"] == 1
    (tmp_path / "stead.yaml").write_text(YAML.format(fn="weak"))
    assert main(["run", "churn"]) == 3
    assert "rejected" in capsys.readouterr().out
    assert main(["run", "nope"]) == 1
    assert "nope" in capsys.readouterr().err


def test_a_failing_train_function_marks_the_step(client: Client, tmp_path: Path) -> None:
    _project(tmp_path)
    (tmp_path / "train.py").write_text("def train(ctx):\n    raise RuntimeError('out of memory')\n")
    with pytest.raises(RuntimeError, match="out of memory"):
        run_pipeline(client.store, load_project(tmp_path / "stead.yaml"), "churn")
    record = client.store.list_pipeline_runs("churn")[0]
    assert record["status"] == "FAILED"
    assert record["steps"][-1]["name"] == "train" and "out of memory" in record["steps"][-1]["detail"]
