"""Client: the read and admin facade shared by the SDK, CLI, server and UI (layer: client).

``Client()`` resolves its store from ``STEAD_URI`` (a folder, ``postgresql://`` or ``http://``);
``Client(uri)`` names one. Every method works the same on the three backends.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stead.entities import (
    Alert,
    AliasMove,
    DatasetVersion,
    Experiment,
    LineageGraph,
    ModelVersion,
    Ref,
    Run,
    RunList,
)
from stead.registry import UNSET, _Unset
from stead.settings import Settings
from stead.tracking import default_store

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from stead.entities import Deployment
    from stead.flavors import LoadedModel
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

    # ------------------------------------------------------------ registry
    def register_model(
        self,
        name: str,
        model: Any,
        run_id: str | None = None,
        input_example: Any = None,
        convert: str | None = None,
        allow_pickle: bool = False,
        *,
        artifacts: dict[str, Any] | None = None,
        metrics: dict[str, float] | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` (state ``candidate``) and return it.

        ``model``: a scikit-learn estimator (stored with skops), an ONNX model, or ``"module:Class"`` with
        ``artifacts``; any other object with ``predict`` only with ``allow_pickle=True``. ``convert="onnx"``
        turns a scikit-learn model into ONNX. The signature comes from ``input_example`` (or the ``train``
        dataset of ``run_id``).
        """
        from stead.registry import register_model
        from stead.tracking import model_inputs

        input_schema, example = model_inputs(self.store, model, input_example, run_id)
        return register_model(
            self.store,
            name,
            model,
            run_id=run_id,
            input_example=example,
            convert=convert,
            allow_pickle=allow_pickle,
            artifacts=artifacts,
            input_schema=input_schema,
            metrics=metrics,
        )

    def get_model_version(self, name: str, version_or_alias: int | str) -> ModelVersion:
        """A version by number (``3``) or alias (``"champion"``), with its state, aliases and signature."""
        from stead.registry import get_model_version

        return get_model_version(self.store, name, version_or_alias)

    def list_models(self) -> list[dict[str, Any]]:
        """Registered models: name, latest version and its state, number of versions, aliases."""
        return self.store.list_models()

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, newest first."""
        return self.store.list_model_versions(name)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        expected: int | _Unset | None = UNSET,
        reason: str | None = None,
    ) -> AliasMove:
        """Point ``alias`` at ``version``. With ``expected`` (the version you believe it points at now, or
        None for "it must not exist yet") it is a compare-and-set: ConflictError if it moved in between."""
        from stead.registry import set_alias

        return set_alias(self.store, name, alias, version, expected, reason, self.settings.user)

    def delete_alias(
        self, name: str, alias: str, expected: int | _Unset | None = UNSET, reason: str | None = None
    ) -> AliasMove:
        """Remove an alias (a compare-and-set with ``expected``)."""
        from stead.registry import delete_alias

        return delete_alias(self.store, name, alias, expected, reason, self.settings.user)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasMove]:
        """Every alias move of a model, oldest first: who, when, from, to, why, and lost compare-and-sets."""
        return self.store.alias_history(name, alias)

    def set_version_state(
        self,
        name: str,
        version: int,
        state: str,
        reason: str | None = None,
        gate_results: list[dict[str, Any]] | None = None,
    ) -> ModelVersion:
        """Move a version to ``approved``, ``rejected``, ``serving`` or ``retired`` (transitions are checked)."""
        from stead.registry import set_state

        return set_state(self.store, name, version, state, reason, gate_results, self.settings.user)

    def trust(self, name: str, version: int, reason: str) -> ModelVersion:
        """An admin's audited opt-in to load a pickle-based version."""
        from stead.registry import trust

        return trust(self.store, name, version, reason, self.settings.user)

    def load_model(self, ref: str | Ref | ModelVersion) -> LoadedModel:
        """The model of ``ref`` (``NAME@ALIAS``, ``NAME/N``) with ``predict(df)``, integrity checked."""
        from stead.registry import load_model

        return load_model(self.store, ref)

    def audit_log(self, target: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Audit rows: trusts, state changes, forced deploys; ``target`` like ``model:churn/3``."""
        return self.store.audit_log(target, limit)

    # ------------------------------------------------------------ lineage
    def lineage(self, ref: str, direction: str = "both", depth: int = 10) -> LineageGraph:
        """The lineage graph around ``ref`` (NAME@ALIAS, NAME/VERSION, run:ID, dataset:ID, deployment:NAME)."""
        from stead.lineage import build_graph

        return build_graph(self.store, Ref.parse(ref) if isinstance(ref, str) else ref, direction, depth)

    # ---- deployments (issue 5)
    def deploy(
        self,
        ref: str | Ref | ModelVersion,
        deployment: str,
        canary: float | None = None,
        ab: float | None = None,
        shadow: bool = False,
        force: bool = False,
        reason: str | None = None,
    ) -> Deployment:
        """Route ``deployment`` to the version ``ref`` names now (an alias is pinned when deploying).

        No flag: that version serves alone. ``canary=10`` sends it 10% of requests beside the primary,
        ``ab=50`` splits sticky on the request's ``routing_key``, ``shadow=True`` copies every request to it
        after the answer is sent. A ``rejected`` version needs ``force=True`` with a ``reason`` (admin).
        """
        from stead.deployments import deploy

        return deploy(self.store, ref, deployment, canary, ab, shadow, force, reason, self.settings.user)

    def promote(self, deployment: str, reason: str | None = None) -> Deployment:
        """Make the canary (or A/B) route the sole route and move ``champion`` to it, atomically."""
        from stead.deployments import promote

        return promote(self.store, deployment, reason, self.settings.user)

    def rollback(self, deployment: str, reason: str | None = None) -> Deployment:
        """Return ``deployment`` to its previous routes at once (stored as a new revision)."""
        from stead.deployments import rollback

        return rollback(self.store, deployment, reason, self.settings.user)

    def get_deployment(self, name: str, history: int = 20) -> Deployment:
        """A deployment: its routes and shares, its last ``history`` revisions and its serving events."""
        return self.store.get_deployment(name, history)

    def list_deployments(self) -> list[Deployment]:
        """Every deployment with its current routes."""
        return self.store.list_deployments()

    def get_predictions(
        self, deployment: str, since: datetime | str | None = None, limit: int | None = None
    ) -> pd.DataFrame:
        """The prediction log of ``deployment`` (``request_id``, ``time``, ``version``, ``route``,
        ``latency_ms``, ``label``, ``inputs.<column>``, ``outputs.<name>``), oldest first; ``limit`` keeps the
        newest rows."""
        from stead.deployments import read_predictions

        return read_predictions(self.store, deployment, since, limit)

    # ---- monitoring (issue 6)
    def monitor(self, deployment: str, window: int | None = None) -> dict[str, Any]:
        """The drift and performance report of ``deployment``'s last ``window`` predictions, computed now.

        The shape ``stead monitor --json`` prints. Thresholds come from the ``stead.yaml`` of the current folder
        when it declares the deployment. Nothing is stored and no alert is raised (the controller does that).
        """
        from stead.monitoring.monitor import compute_monitor, find_monitor_spec, serving_version

        spec = find_monitor_spec(deployment, serving_version(self.store, deployment).name)
        return compute_monitor(self.store, deployment, window, spec=spec)

    def record_monitor(self, deployment: str, window: int | None = None, notify: bool = True) -> dict[str, Any]:
        """Compute and store a report, open and resolve alerts, and notify about new ones (the controller's step)."""
        from stead.monitoring.monitor import find_monitor_spec, record_monitor, serving_version

        spec = find_monitor_spec(deployment, serving_version(self.store, deployment).name)
        return record_monitor(self.store, deployment, spec, window, notify=notify)

    def monitor_reports(self, deployment: str, limit: int = 100) -> list[dict[str, Any]]:
        """The stored monitor reports of a deployment, oldest first."""
        return self.store.list_monitor_reports(deployment, limit)

    def drift_history(self, deployment: str, feature: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Per-feature drift over successive stored reports, oldest first."""
        return self.store.drift_history(deployment, feature, limit)

    def list_alerts(self, open_only: bool = True, deployment: str | None = None) -> list[Alert]:
        """Open alerts (or, with ``open_only=False``, every alert), newest first."""
        return self.store.list_alerts(open_only, deployment)

    def ack_alert(self, alert_id: int) -> Alert:
        """Acknowledge an alert: it is marked seen and stays open until its condition clears."""
        return self.store.ack_alert(alert_id, self.settings.user)
