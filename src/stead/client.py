"""Client: the read and admin facade shared by the SDK, CLI, server and UI (layer: client).

``Client()`` resolves its store from ``STEAD_URI`` (a folder, ``postgresql://`` or ``http://``);
``Client(uri)`` names one. Every method works the same on the three backends.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stead.entities import DatasetVersion, Experiment, LineageGraph, MetricPoint, Ref, Run, RunList
from stead.settings import Settings
from stead.tracking import default_store

if TYPE_CHECKING:
    from stead.store.sql import SqlStore

__all__ = ["Client"]


class Client:
    """Read and manage what stead stores.

    >>> import tempfile
    >>> client = Client(tempfile.mkdtemp())
    >>> client.search_runs()
    []
    """

    def __init__(self, uri: str | os.PathLike[str] | None = None, *, settings: Settings | None = None) -> None:
        if settings is None:
            settings = Settings.from_env(uri=None if uri is None else os.fspath(uri))
        elif uri is not None:
            settings = settings.with_uri(os.fspath(uri))
        self.settings = settings
        self.store: SqlStore = default_store(settings)

    def __repr__(self) -> str:
        return f"Client({self.settings.uri!r})"

    # ------------------------------------------------------------ runs
    def get_run(self, run_id: str) -> Run:
        """A run with its params, tags, latest metrics, environment, inputs and outputs."""
        return self.store.get_run(run_id)

    def get_metric_history(self, run_id: str, key: str) -> list[tuple[int, float, float]]:
        """Every logged point of one metric as ``(step, value, timestamp)`` rows, in step order."""
        return [(p.step, p.value, p.timestamp) for p in self.store.get_metric_history(run_id, key)]

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return self.store.get_metric_history(run_id, key)

    def search_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: str | Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> RunList:
        """Runs matching an MLflow-style filter, e.g. ``"metrics.auc > 0.8 and params.model = 'gbm'"``."""
        return self.store.search_runs(experiment, filter, order_by, max_results, page_token)

    def list_experiments(self) -> list[Experiment]:
        return self.store.list_experiments()

    def download_artifact(self, run_id: str, name: str, dest: str | os.PathLike[str]) -> Path:
        """Copy a run's artifact to ``dest`` (a file path or an existing folder), verifying its hash."""
        run = self.store.get_run(run_id)
        matches = {k: v for k, v in run.artifacts.items() if k == name or k.startswith(name.rstrip("/") + "/")}
        if not matches:
            from stead.errors import NotFoundError

            raise NotFoundError(
                f"run {run_id} has no artifact {name!r}",
                hint=f"its artifacts: {', '.join(sorted(run.artifacts)) or '(none)'}",
            )
        target = Path(dest)
        if len(matches) == 1 and name in matches:
            path = target / Path(name).name if target.is_dir() else target
            self.store.artifacts.copy_to(matches[name], path, name=name)
            return path
        self.store.artifacts.materialize(matches, target)
        return target / name

    # ------------------------------------------------------------ datasets
    def get_dataset(self, dataset_id: str) -> DatasetVersion:
        """A dataset version by its id (the content hash; a unique prefix of 6+ characters works too)."""
        return self.store.get_dataset(dataset_id)

    def list_datasets(self, name: str | None = None, limit: int = 100) -> list[DatasetVersion]:
        return self.store.list_datasets(name, limit)

    def load_dataset(self, dataset_id: str) -> Any:
        """The stored data of a dataset version as a DataFrame, verified against its id."""
        from stead.datasets import load_dataset

        return load_dataset(self.store, dataset_id)

    # ------------------------------------------------------------ lineage
    def lineage(self, ref: str, direction: str = "both", depth: int = 10) -> LineageGraph:
        """The lineage graph around ``ref`` (NAME@ALIAS, NAME/VERSION, run:ID, dataset:ID, deployment:NAME)."""
        from stead.lineage import build_graph

        return build_graph(self.store, Ref.parse(ref) if isinstance(ref, str) else ref, direction, depth)
