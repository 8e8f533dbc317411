"""MLflow's real client against a live ``stead serve``: a typical script runs unchanged (issue 10)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pytest

from stead.client import Client
from stead.settings import Settings

pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import pandas as pd
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X["a"] + X["b"] > 0).astype(int)
    mlflow.set_experiment("churn mlflow")
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_params({"C": 0.5, "penalty": "l2"})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("auc", 0.91)
        with open("notes.txt", "w") as fh:
            fh.write("hello")
        mlflow.log_artifact("notes.txt")
        mlflow.log_input(mlflow.data.from_pandas(X, name="train-frame"), context="training")
        model = LogisticRegression(C=0.5).fit(X, y)
        info = mlflow.sklearn.log_model(model, name="model", input_example=X.head(3), registered_model_name="churn")
    MlflowClient().set_registered_model_alias("churn", "champion", info.registered_model_version)
    found = mlflow.search_runs(experiment_names=["churn mlflow"], filter_string="metrics.auc > 0.9")
    loaded = mlflow.pyfunc.load_model("models:/churn@champion")
    same = bool((loaded.predict(X) == model.predict(X)).all())
    listed = [f.path for f in MlflowClient().list_artifacts(run.info.run_id)]
    print(json.dumps({"run_id": run.info.run_id, "found": list(found["run_id"]), "same": same,
                      "version": info.registered_model_version, "artifacts": listed}))
    """
)


def _run_script(url: str, tmp_path: Path, extra_env: dict[str, str] | None = None) -> dict[str, object]:
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEAD_", "MLFLOW_"))}
    env.update({"MLFLOW_TRACKING_URI": url, "GIT_PYTHON_REFRESH": "quiet", **(extra_env or {})})
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + (tmp_path / "server.log").read_text()[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_typical_mlflow_script_runs_unchanged(http_settings: Settings, tmp_path: Path) -> None:
    out = _run_script(http_settings.uri, tmp_path)
    assert out["same"] is True
    run_id = str(out["run_id"])
    assert out["found"] == [run_id]
    assert "notes.txt" in out["artifacts"]  # type: ignore[operator]

    client = Client(settings=http_settings)
    run = client.get_run(run_id)
    assert run.experiment == "churn mlflow"
    assert run.status == "FINISHED"
    assert run.params["C"] == "0.5"
    assert run.metrics["loss"] == pytest.approx(0.2)
    history = client.get_metric_history(run_id, "loss")
    assert [p[0] for p in history] == [0, 1, 2, 3, 4]
    assert "notes.txt" in run.artifacts
    assert [u.role for u in run.inputs] == ["train"]
    mv = client.get_model_version("churn", "champion")
    assert mv.flavor == "mlflow" and mv.run_id == run_id and mv.version == 1
    assert not mv.allow_pickle
    graph = client.lineage("churn@champion")
    kinds = {n["kind"] for n in graph.nodes}
    assert {"run", "dataset"} <= kinds


def test_an_mlflow_version_loads_in_stead_only_with_the_opt_in(http_settings: Settings, tmp_path: Path) -> None:
    from stead.errors import ValidationError

    _run_script(http_settings.uri, tmp_path)
    client = Client(settings=http_settings)
    with pytest.raises(ValidationError, match="pickle"):
        client.load_model("churn@champion")
    client.trust("churn", 1, reason="our own training run")
    model = client.load_model("churn@champion")
    frame = __import__("pandas").DataFrame({"a": [1.0, -2.0], "b": [1.0, -1.0]})
    assert list(np.asarray(model.predict(frame))) == [1, 0]
    assert model.proba(frame).shape == (2, 2)


def test_unsupported_endpoints_answer_endpoint_not_found(http_settings: Settings) -> None:
    for method, path in [
        ("POST", "/api/2.0/mlflow/traces"),
        ("GET", "/api/2.0/mlflow/no/such/thing"),
        ("POST", "/ajax-api/2.0/mlflow/gateway/secrets/create"),
    ]:
        r = httpx.request(method, http_settings.uri + path, json={})
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error_code"] == "ENDPOINT_NOT_FOUND"


def test_errors_have_mlflow_shape(http_settings: Settings) -> None:
    from mlflow.exceptions import MlflowException

    from mlflow import MlflowClient

    client = MlflowClient(http_settings.uri)
    with pytest.raises(MlflowException) as info:
        client.get_run("0" * 32)
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    r = httpx.get(http_settings.uri + "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "nope"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
