"""`stead reproduce`: a recorded script re-runs with its data, params and seed, and metrics are compared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stead.cli import main
from stead.client import Client

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pandas as pd
    import stead

    noise = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    with stead.start_run(experiment="repro", params={"alpha": 0.5}, seed=7) as run:
        df = pd.read_parquet("data.parquet")
        run.log_dataset("train", df)
        jitter = np.random.default_rng().normal() * noise  # seeded by stead: same seed, same draw
        score = float(df["x"].mean() * 0.5 + np.random.rand() + jitter)
        run.log_metric("score", score)
        run.log_metric("rows", len(df))
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEAD_URI", str(tmp_path / ".stead"))
    monkeypatch.delenv("STEAD_ARTIFACTS", raising=False)
    (tmp_path / "train.py").write_text(SCRIPT)
    rng = np.random.default_rng(1)
    pd.DataFrame({"x": rng.normal(size=100)}).to_parquet(tmp_path / "data.parquet", index=False)
    for args in (["init"], ["add", "."], ["commit", "-qm", "v1"]):
        subprocess.run(
            ["git", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            env={
                **os.environ,
                "GIT_AUTHOR_NAME": "t",
                "GIT_AUTHOR_EMAIL": "t@e",
                "GIT_COMMITTER_NAME": "t",
                "GIT_COMMITTER_EMAIL": "t@e",
            },
        )
    return tmp_path


def _train(project: Path, *args: str) -> str:
    subprocess.run([sys.executable, "train.py", *args], cwd=project, check=True, env=os.environ.copy())
    client = Client()
    return client.search_runs("repro", max_results=1)[0].id


def test_a_deterministic_run_reproduces_exactly(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _train(project)
    assert main(["reproduce", run_id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert {m["key"] for m in report["metrics"]} == {"score", "rows"}
    assert all(m["difference"] == 0 for m in report["metrics"])
    client = Client()
    graph = client.lineage(f"run:{run_id}", direction="down")
    assert {"source": f"run:{run_id}", "target": f"run:{report['reproduced']}", "kind": "reproduces"} in graph.edges


def test_a_metric_outside_tolerance_exits_4(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _train(project, "0.0")
    # Change the code so the score moves: the script's noise argument is recorded in argv, so edit the file.
    (project / "train.py").write_text(SCRIPT.replace("* 0.5", "* 0.5 + 0.01"))
    assert main(["reproduce", run_id]) == 4
    out = capsys.readouterr().out
    assert "OUTSIDE" in out and "NOT reproduced" in out
    assert "uncommitted" in out
    assert main(["reproduce", run_id, "--tolerance", "0.05"]) == 0


def test_checkout_runs_the_recorded_commit(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _train(project)
    (project / "train.py").write_text(SCRIPT.replace("* 0.5", "* 0.9"))
    assert main(["reproduce", run_id, "--checkout"]) == 0
    assert "reproduced:" in capsys.readouterr().out


def test_changed_data_is_refused_not_silently_reread(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_id = _train(project)
    pd.DataFrame({"x": np.arange(100.0)}).to_parquet(project / "data.parquet", index=False)
    assert main(["reproduce", run_id]) == 1
    err = capsys.readouterr().err
    assert "error: the reproduction of run" in err
    assert "changed since run" in err


def test_a_pipeline_run_the_controller_started_re_runs_as_a_manual_pipeline() -> None:
    from datetime import UTC, datetime

    from stead.entities import Run
    from stead.reproduce import command_of

    argv = ["/x/stead/__main__.py", "run", "churn", "--file", "/p/stead.yaml", "--pipeline-id", "abc", "--json"]
    run = Run(id="r", experiment="e", status="FINISHED", start_time=datetime.now(UTC), env={"argv": argv})
    assert command_of(run) == [sys.executable, argv[0], "run", "churn", "--file", "/p/stead.yaml", "--json"]
    warm = ["stead", "run", "churn", "--file", "/p/stead.yaml", "--reason", "drift"]
    run = Run(id="r", experiment="e", status="FINISHED", start_time=datetime.now(UTC), env={"argv": warm})
    assert command_of(run) == [sys.executable, "-m", "stead", *warm[1:]]


PIPELINE_YAML = """
project: repro
models:
  churn:
    train: fit.py:train
    data: data.parquet
    target: y
    deploy: {deployment: churn-api, rollout: [10, 100]}
"""

FIT = """
from sklearn.linear_model import LogisticRegression

def train(ctx):
    return LogisticRegression().fit(ctx.X, ctx.y)
"""


def test_a_pipeline_run_reproduces_on_its_recorded_datasets_and_deploys_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The source changed since (a data feed moves on): the reproduction trains and is gated on the train and
    holdout datasets the run logged, matches its metrics exactly, and registers and deploys nothing."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 2))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] > 0).astype(int)})
    frame.to_parquet(project / "data.parquet", index=False)
    (project / "fit.py").write_text(FIT)
    (project / "stead.yaml").write_text(PIPELINE_YAML)
    subprocess.run([sys.executable, "-m", "stead", "run", "churn"], cwd=project, check=True, capture_output=True)
    client = Client()
    run_id = client.search_runs("churn", max_results=1)[0].id
    frame.assign(y=1 - frame["y"]).to_parquet(project / "data.parquet", index=False)  # the source moved on

    assert main(["reproduce", run_id]) == 0, capsys.readouterr().err
    assert [v.version for v in client.list_model_versions("churn")] == [1]
    assert [(r.version, r.kind) for r in client.get_deployment("churn-api").routes] == [(1, "primary")]
    latest = client.store.list_pipeline_runs("churn", limit=1)[0]
    steps = {s["name"]: s["detail"] for s in latest["steps"]}
    assert steps["load"] == f"the datasets of run {run_id[:12]}, which this run reproduces"
    assert steps["register"].startswith("none: a reproduction of run")
    reproduced = client.get_run(latest["run_id"])
    assert reproduced.metrics == client.get_run(run_id).metrics
