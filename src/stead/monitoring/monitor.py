"""(layer: monitoring; reads and writes the store) Monitors on deployments: windows of the prediction log -> reports.

:func:`compute_monitor` builds a report on demand (``stead monitor``, ``Client.monitor``) and raises no alert.
:func:`record_monitor` (the controller, on each tick) also stores it, opens the alerts whose rules fire and
resolves those whose condition cleared, and sends each newly opened alert to the notifiers. Neither ever changes
a deployment: monitoring computes and records; the controller decides.

The reference is the training data of the version that serves: the dataset of role ``train`` of the run that
made it — its profile (histograms over every row) and its reservoir sample (the rows the statistics use). The
model is loaded once to compute its outputs on that sample (prediction drift, and what CBPE and DLE calibrate
on) and, when the log holds no probabilities, the window's class probabilities.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stead.errors import NotFoundError, SteadError
from stead.monitoring.alerts import evaluate, rules_from_spec
from stead.monitoring.report import Reference, build_report, feature_names, window_outputs

if TYPE_CHECKING:
    import pandas as pd

    from stead.entities import DatasetVersion, ModelVersion
    from stead.project import MonitorSpec

__all__ = [
    "DEFAULT_WINDOW",
    "compute_monitor",
    "find_monitor_spec",
    "record_monitor",
    "reference_of",
    "serving_version",
]

#: Predictions per window when neither the call nor ``stead.yaml`` says.
DEFAULT_WINDOW = 1000
#: Dataset roles tried, in order, for the reference.
REFERENCE_ROLES = ("train", "training")


def serving_version(store: Any, deployment: str) -> ModelVersion:
    """The model version a deployment serves: its primary route (else the largest non-shadow route)."""
    dep = store.get_deployment(deployment, 0)
    routes = [r for r in dep.routes if r.kind != "shadow"]
    if not routes:
        raise NotFoundError(
            f"deployment {deployment!r} has no serving route", hint=f"stead deploy MODEL --to {deployment}"
        )
    primary = next((r for r in routes if r.kind == "primary"), max(routes, key=lambda r: r.weight))
    version: ModelVersion = store.get_model_version(primary.model, primary.version)
    return version


def reference_of(store: Any, version: ModelVersion) -> tuple[DatasetVersion, pd.DataFrame]:
    """The training dataset of the run that made ``version`` and its reservoir sample."""
    from stead.datasets import load_dataset

    label = f"{version.name}/{version.version}"
    if not version.run_id:
        raise NotFoundError(
            f"model version {label} has no run, so it has no training dataset to monitor against",
            hint="log the model from a run that logs its training data: run.log_dataset('train', df)",
        )
    run = store.get_run(version.run_id)
    for role in REFERENCE_ROLES:
        use = next((u for u in run.inputs if u.role == role), None)
        if use is not None:
            dataset: DatasetVersion = store.get_dataset(use.dataset_id)
            return dataset, load_dataset(store, use.dataset_id, sample=True)
    roles = ", ".join(sorted({u.role for u in run.inputs})) or "none"
    raise NotFoundError(
        f"run {run.id[:12]} that made {label} logged no dataset of role 'train' (its roles: {roles})",
        hint="log the training data in the run with run.log_dataset('train', df)",
    )


def find_monitor_spec(deployment: str, model: str, path: str | Path = "stead.yaml") -> MonitorSpec | None:
    """The ``monitor:`` section of the ``stead.yaml`` model that deploys to ``deployment`` (or is named ``model``)."""
    from stead.project import load_project

    if not Path(path).is_file():
        return None
    try:
        project = load_project(path)
    except SteadError:
        return None
    for spec in project.models.values():
        if spec.deploy is not None and spec.deploy.deployment == deployment:
            return spec.monitor
    found = project.models.get(model)
    return None if found is None else found.monitor


def _window(store: Any, deployment: str, rows: int | None, seconds: float | None, now: float) -> pd.DataFrame:
    from stead.deployments import read_predictions

    if seconds is not None:
        return read_predictions(store, deployment, since=now - seconds)
    return read_predictions(store, deployment, limit=rows)


def _model_outputs(
    store: Any,
    version: ModelVersion,
    sample: pd.DataFrame,
    window: pd.DataFrame,
    features: Sequence[str],
    notes: list[str],
) -> tuple[Reference, Any, Any]:
    """The model's outputs on the reference sample, and the window's probabilities when the log lacks them."""
    import pandas as pd

    from stead.registry import load_model

    try:
        model = load_model(store, version)
    except Exception as exc:  # a model that cannot load still gets its drift report
        notes.append(f"the model could not be loaded ({exc}): no prediction drift or estimated performance")
        return Reference(), None, None
    raw_classes = getattr(getattr(model, "raw", None), "classes_", None)
    classes = None if raw_classes is None else list(np.asarray(raw_classes).tolist())
    ref = Reference(classes=classes)
    inputs = sample[[f for f in features if f in sample.columns]]
    try:
        ref.predictions = np.asarray(model.predict(inputs))
        if model.has_proba:
            ref.proba = np.asarray(model.proba(inputs), dtype=np.float64)
    except Exception as exc:
        notes.append(f"the model failed on the reference sample ({exc})")
        return Reference(), None, None
    window_proba = None
    _, log_proba, _ = window_outputs(window)
    if model.has_proba and log_proba is None and len(window):
        current = pd.DataFrame({f: window[f"inputs.{f}"].to_numpy() for f in features if f"inputs.{f}" in window})
        try:
            window_proba = np.asarray(model.proba(current), dtype=np.float64)
        except Exception as exc:
            notes.append(f"the model failed on the window's inputs ({exc}): no estimated performance")
    return ref, window_proba, classes


def compute_monitor(
    store: Any,
    deployment: str,
    window: int | None = None,
    *,
    spec: MonitorSpec | None = None,
    predictions: pd.DataFrame | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The monitor report of a deployment's last ``window`` predictions (``stead monitor --json``'s shape).

    ``window`` (rows) wins over ``spec.window`` (rows or a duration); the default is 1,000 predictions.
    ``predictions`` replaces reading the prediction log (a frame of its shape). No alert is raised here.
    """
    now = time.time() if now is None else now
    version = serving_version(store, deployment)
    dataset, sample = reference_of(store, version)
    rows = window if window is not None else (spec.window_rows if spec is not None else DEFAULT_WINDOW)
    seconds = None if window is not None or spec is None else spec.window_seconds
    frame = predictions if predictions is not None else _window(store, deployment, rows, seconds, now)
    if "route" in frame.columns:
        frame = frame[frame["route"] != "shadow"]
    if "version" in frame.columns and len(frame):
        frame = frame[frame["version"].astype("int64") == version.version]
    if rows is not None and predictions is not None:
        frame = frame.tail(rows)
    frame = frame.reset_index(drop=True)
    notes: list[str] = []
    features = feature_names(version.signature, sample, None)
    reference, window_proba, classes = _model_outputs(store, version, sample, frame, features, notes)
    threshold = spec.drift.threshold if spec is not None else 0.3
    method = spec.drift.method if spec is not None else "auto"
    report = build_report(
        dataset.profile,
        sample,
        frame,
        version.signature,
        threshold=threshold,
        method=method,
        rules=rules_from_spec(spec if spec is not None else {"drift": {"threshold": threshold}}),
        reference=reference,
        proba=window_proba,
        classes=classes,
    )
    report["notes"] = notes + report.get("notes", [])
    report["deployment"] = deployment
    report["model"] = version.name
    report["version"] = version.version
    report["reference"]["dataset"] = dataset.id
    report["at"] = now
    return report


def record_monitor(
    store: Any,
    deployment: str,
    spec: MonitorSpec | None = None,
    window: int | None = None,
    *,
    predictions: pd.DataFrame | None = None,
    notify: bool = True,
    allow_private: bool = False,
    now: float | None = None,
) -> dict[str, Any]:
    """Compute, store, and act on a report: open and resolve alerts, notify about the new ones.

    Returns ``{"report_id", "report", "opened": [{"id", "rule"}…], "resolved": [{"id", "rule"}…], "deliveries"}``
    (each delivery is a notifier's outcome for one new alert: ``{"alert", "kind", "target", "ok", "detail"}``).
    A rule that cannot tell (no labels yet) leaves its alert as it is.
    """
    from stead.monitoring import notify as notifiers

    now = time.time() if now is None else now
    report = compute_monitor(store, deployment, window, spec=spec, predictions=predictions, now=now)
    report_id = store.add_monitor_report(deployment, report, report["model"], report["version"], now)
    rules = rules_from_spec(spec if spec is not None else {"drift": {"threshold": report["drift"]["threshold"]}})
    decisions = evaluate(report, rules)
    open_now = {a.rule: a for a in store.list_alerts(open_only=True, deployment=deployment)}
    opened: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for decision in decisions:
        if decision.firing and decision.rule not in open_now:
            details = {
                **decision.to_dict(),
                "report_id": report_id,
                "model": report["model"],
                "version": report["version"],
            }
            alert = store.open_alert(deployment, decision.rule, report_id, details, now)
            opened.append({"id": alert.id, "rule": alert.rule})
            if notify:
                payload = {
                    "id": alert.id,
                    "rule": alert.rule,
                    "deployment": deployment,
                    "opened_at": alert.opened_at.isoformat(),
                    "message": decision.message,
                    "value": decision.value,
                    "threshold": decision.threshold,
                    "model": report["model"],
                    "version": report["version"],
                    "report_id": report_id,
                }
                sent = notifiers.notify(payload, spec.notify if spec is not None else (), allow_private=allow_private)
                deliveries.extend({"alert": alert.id, **d.to_dict()} for d in sent)
        elif decision.firing is False and decision.rule in open_now:
            store.resolve_alert(open_now[decision.rule].id, now)
            resolved.append({"id": open_now[decision.rule].id, "rule": decision.rule})
    return {"report_id": report_id, "report": report, "opened": opened, "resolved": resolved, "deliveries": deliveries}
