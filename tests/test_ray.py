"""The ``ray`` executor: `stead run` and the controller run the pipeline as a task on a real local Ray runtime
started by this test; the ``local`` default is unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stead.project import load_project
from stead.retraining.controller import Controller, TickReport
from stead.retraining.executors import LocalExecutor, RayExecutor, executor_for
from stead.settings import Settings
from stead.store.sql import SqlStore

TRAIN = textwrap.dedent(
    """
    from sklearn.linear_model import LogisticRegression

    def train(ctx):
        return LogisticRegression(max_iter=300).fit(ctx.X, ctx.y)
    """
)


def _project(root: Path, address: str) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 2))
    y = (x[:, 0] + rng.normal(scale=0.5, size=600) > 0).astype(int)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": y}).to_parquet(root / "data.parquet", index=False)
    (root / "train.py").write_text(TRAIN)
    (root / "stead.yaml").write_text(
        textwrap.dedent(
            f"""
            project: test
            models:
              churn:
                train: train.py:train
                data: data.parquet
                target: y
                executor: {{type: ray, address: "{address}"}}
                gates:
                  - {{metric: roc_auc, min: 0.7}}
            """
        )
    )
    return root / "stead.yaml"


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray runtime (1 CPU, no dashboard) for this module; its GCS address."""
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def test_executor_for_reads_the_spec(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, "ray://head:10001"))
    chosen = executor_for(project.model("churn").executor)
    assert isinstance(chosen, RayExecutor) and chosen.address == "ray://head:10001"
    assert isinstance(executor_for(None), LocalExecutor)


def test_stead_run_trains_on_ray(ray_address: str, tmp_path: Path) -> None:
    """A separate `stead run` process connects to the runtime by address; the run happens in a Ray worker."""
    _project(tmp_path, ray_address)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env["STEAD_URI"] = str(tmp_path / ".stead")
    done = subprocess.run(
        [sys.executable, "-m", "stead", "run", "churn", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["approved"] and result["version"] == 1 and result["executor"]["type"] == "ray"
    assert result["executor"]["pid"] != os.getpid()
    store = SqlStore(Settings(uri=str(tmp_path / ".stead")))
    run = store.get_run(result["run_id"])
    assert run.status == "FINISHED" and "default_worker" in " ".join(run.env["argv"])  # a Ray worker process
    assert store.get_model_version("churn", 1).state == "approved"
    store.close()


def test_the_controller_launches_retraining_on_ray(ray_address: str, tmp_path: Path) -> None:
    project_file = _project(tmp_path, ray_address)
    store = SqlStore(Settings(uri=str(tmp_path / ".stead")))
    ctl = Controller(store, project_file)
    started: dict[str, Any] = store.create_pipeline_run("churn", "drift", "drift alert 1", "drift:1", {})
    report = TickReport(held=True, holder=ctl.holder)
    ctl._launch("churn", str(started["id"]), "drift", "drift alert 1", report)
    assert report.errors == [] and "on ray" in report.actions[0], report
    record = store.get_pipeline_run(str(started["id"]))
    assert record["status"] == "APPROVED" and record["version"] == 1 and record["trigger"] == "drift"
    # A failing pipeline on Ray is reported, not raised, and its record says why.
    (tmp_path / "train.py").write_text("def train(ctx):\n    raise RuntimeError('boom in training')\n")
    again: dict[str, Any] = store.create_pipeline_run("churn", "drift", "drift alert 2", "drift:2", {})
    report = TickReport(held=True, holder=ctl.holder)
    ctl._launch("churn", str(again["id"]), "drift", "drift alert 2", report)
    assert report.errors and "boom in training" in report.errors[0]
    assert store.get_pipeline_run(str(again["id"]))["status"] == "FAILED"
    store.close()
