"""`stead import mlflow`: a store made by real MLflow imports completely, and importing twice copies nothing new."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stead.cli import main
from stead.client import Client
from stead.settings import Settings

MLFLOW_PYTHON = Path(__file__).resolve().parents[2] / "benchmarks" / ".venvs" / "mlflow" / "bin" / "python"

MAKE_STORE = textwrap.dedent(
    """
    import json, mlflow, numpy as np
    from mlflow import MlflowClient
    from sklearn.linear_model import LinearRegression

    mlflow.set_tracking_uri("sqlite:///mlflow.db")
    mlflow.set_experiment("imported")
    X = np.arange(20, dtype=float).reshape(10, 2)
    y = X @ [1.0, 2.0]
    runs = []
    for i in range(2):
        with mlflow.start_run(run_name=f"r{i}") as run:
            mlflow.log_param("alpha", i)
            for step in range(4):
                mlflow.log_metric("loss", 1.0 / (step + 1 + i), step=step)
            mlflow.set_tag("team", "ml")
            with open("note.txt", "w") as fh:
                fh.write(f"run {i}")
            mlflow.log_artifact("note.txt")
            mlflow.sklearn.log_model(LinearRegression().fit(X, y * (i + 1)), name="model", registered_model_name="reg")
            runs.append(run.info.run_id)
    MlflowClient().set_registered_model_alias("reg", "champion", "2")
    print(json.dumps({"runs": runs}))
    """
)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    # Real MLflow makes the store: the benchmark's own MLflow venv when it exists, else the mlflow-skinny of
    # the dev extra (the same MLflow, without its server), so the test never skips.
    python = MLFLOW_PYTHON if MLFLOW_PYTHON.exists() else Path(sys.executable)
    folder = tmp_path_factory.mktemp("mlflow-store")
    (folder / "make.py").write_text(MAKE_STORE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "STEAD_", "VIRTUAL_ENV"))}
    env["GIT_PYTHON_REFRESH"] = "quiet"
    proc = subprocess.run([str(python), "make.py"], cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = json.loads(proc.stdout.strip().splitlines()[-1])["runs"]
    return folder / "mlflow.db", runs


def _import(uri: str, store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    monkeypatch.setenv("STEAD_URI", str(store))
    assert main(["import", "mlflow", "--from", uri, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def test_a_real_mlflow_sqlite_store_imports_completely_and_once(
    mlflow_store: tuple[Path, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db, run_ids = mlflow_store
    monkeypatch.chdir(db.parent)  # MLflow recorded artifact locations relative to where it ran
    store = tmp_path / "stead"
    first = _import(f"sqlite:///{db}", store, monkeypatch, capsys)
    assert first["copied"]["runs"] == 2
    assert first["copied"]["model versions"] == 2
    assert first["copied"]["aliases"] == 1
    assert first["copied"]["metric points"] == 8
    assert first["unmapped"] == []

    client = Client(settings=Settings(uri=str(store)))
    for i, rid in enumerate(run_ids):
        run = client.get_run(rid)
        assert run.experiment == "imported" and run.status == "FINISHED" and run.name == f"r{i}"
        assert run.params == {"alpha": str(i)}
        assert run.tags["team"] == "ml" and run.tags["mlflow.run_id"] == rid
        assert [p[0] for p in client.get_metric_history(rid, "loss")] == [0, 1, 2, 3]
        assert run.metrics["loss"] == pytest.approx(1.0 / (4 + i))
        assert "note.txt" in run.artifacts
    champion = client.get_model_version("reg", "champion")
    assert champion.version == 2 and champion.flavor == "mlflow" and champion.run_id == run_ids[1]
    assert client.get_model_version("reg", 1).run_id == run_ids[0]

    second = _import(f"sqlite:///{db}", store, monkeypatch, capsys)
    assert second["copied"] == {}
    assert second["skipped"]["runs"] == 2 and second["skipped"]["model versions"] == 2
    assert len(client.search_runs(experiment="imported")) == 2
    assert len(client.store.list_model_versions("reg")) == 2
