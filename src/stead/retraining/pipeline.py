"""The training pipeline a ``stead.yaml`` model declares: ``stead run MODEL`` (layer: retraining).

Steps, each recorded on the pipeline run so a failed one can be seen and re-run:

1. ``load``: read the data (a path or a ``module:function`` loader); its content hash is the fingerprint
   the new-data trigger compares;
2. ``split``: a seeded holdout, recorded as its own dataset version;
3. ``train``: the user's ``train(ctx)`` in a tracked run;
4. ``evaluate``: the candidate **and the champion** scored by stead on the same holdout;
5. ``gates``: data validation plus the model's gates;
6. ``register``: the version, ``approved`` or ``rejected`` with every gate's result and reason;
7. ``rollout``: for an approved version with a deploy policy, the first version is deployed at 100% and
   becomes ``champion``; later ones start their canary at the policy's first step.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stead.errors import ConfigError, NotFoundError, SteadError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from stead.entities import ModelVersion
    from stead.project import ModelSpec, Project
    from stead.retraining.gates import Evaluation, Gate
    from stead.store.sql import SqlStore
    from stead.tracking import ActiveRun

__all__ = ["PipelineResult", "TrainContext", "load_data", "run_pipeline"]

DEFAULT_SEED = 42


@dataclass
class TrainContext:
    """What ``train(ctx)`` gets: the training split, its features and target, params, seed and the run."""

    data: pd.DataFrame
    X: pd.DataFrame
    y: pd.Series[Any]
    params: dict[str, Any]
    seed: int
    run: ActiveRun
    target: str
    task: str


@dataclass
class PipelineResult:
    pipeline_id: str
    run_id: str | None = None
    version: int | None = None
    approved: bool = False
    metrics: dict[str, float | None] = field(default_factory=dict)
    champion: dict[str, Any] | None = None
    gate_results: list[dict[str, Any]] = field(default_factory=list)
    rollout: str | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.approved else 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline_id": self.pipeline_id,
            "run_id": self.run_id,
            "version": self.version,
            "approved": self.approved,
            "metrics": self.metrics,
            "champion": self.champion,
            "gates": self.gate_results,
            "rollout": self.rollout,
        }


def _import_function(entry: str, root: Path, what: str) -> Callable[..., Any]:
    target, _, function = entry.rpartition(":")
    if not target or not function:
        raise ConfigError(f"{what}: {entry!r} must be 'file.py:function' or 'module:function'")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if target.endswith(".py"):
        path = (root / target).resolve()
        if not path.is_file():
            raise ConfigError(f"{what}: the file {str(path)!r} does not exist", hint=f"create {target} or fix {what}")
        name = f"stead_user_{path.stem}_{abs(hash(str(path)))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{what}: cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn = getattr(module, function, None)
    if not callable(fn):
        raise ConfigError(
            f"{what}: {target} has no function {function!r}", hint=f"define def {function}(...) in {target}"
        )
    return fn  # type: ignore[no-any-return]


def load_data(spec: ModelSpec, root: Path) -> pd.DataFrame:
    """The model's data: a parquet/CSV path relative to the project, or what a ``module:function`` returns."""
    from stead.datasets import to_frame

    source = spec.data
    if ":" in source and not Path(root / source).exists() and not source.startswith(("s3:", "gs:", "http")):
        loader = _import_function(source, root, "data")
        return to_frame(loader())
    path = root / source
    if not path.exists():
        raise ConfigError(f"data: {str(path)!r} does not exist", hint="put the data there or point data: at it")
    return to_frame(path)


def _training_data(store: SqlStore, spec: ModelSpec, root: Path, cause: Mapping[str, Any]) -> tuple[pd.DataFrame, str]:
    """The rows to train and gate on, and how they were chosen ("" for the model's data source): for a retrain
    that an alert fired under ``retrain.after_alert: {data: feedback}``, the labelled predictions the deployment
    served since the alert opened."""
    after = spec.retrain.after_alert
    since = cause.get("since")
    if after is None or after.data != "feedback" or since is None or spec.deploy is None:  # `since`: an alert's cause
        return load_data(spec, root), ""
    from stead.deployments import labelled_predictions

    data = labelled_predictions(store, spec.deploy.deployment, float(since), spec.target)
    if len(data) < 2:
        raise ValidationError(
            f"retrain.after_alert: only {len(data)} labelled predictions on {spec.deploy.deployment} since alert "
            f"{cause.get('alert_id')} opened, too few to train on",
            hint="raise retrain.after_alert.min_labels, or send feedback for the served predictions",
        )
    return data, f"; labelled predictions served on {spec.deploy.deployment} since alert {cause.get('alert_id')} opened"


def _below_floor(gates: list[Gate], champion: ModelVersion | None, evaluation: Evaluation | None) -> str:
    """Why the champion fails its floor on today's data (the first absolute bound it misses on the candidate's
    holdout), or "": the rollout may then take ``rollout_when_failing``."""
    from stead.retraining.gates import MetricBound

    if champion is None or evaluation is None:
        return ""
    for gate in gates:
        if isinstance(gate, MetricBound):
            verdict = gate.evaluate(evaluation, None)
            if not verdict.passed:
                return f"champion v{champion.version} on this holdout: {verdict.reasons}"
    return ""


def _recorded_split(store: SqlStore, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]] | None:
    """The train and holdout datasets ``run_id`` logged, and its tags; None for a run that logged no such pair
    (not a pipeline run: it then loads and splits as usual)."""
    from stead.datasets import load_dataset

    run = store.get_run(run_id)
    roles = {use.role: use.dataset_id for use in run.inputs}
    if "train" not in roles or "holdout" not in roles:
        return None
    return load_dataset(store, roles["train"]), load_dataset(store, roles["holdout"]), dict(run.tags)


def _task(spec: ModelSpec, y: pd.Series[Any]) -> str:
    if spec.task:
        return str(spec.task)
    if y.dtype.kind == "f" and y.nunique() > 20:
        return "regression"
    return "classification"


def _split(frame: pd.DataFrame, share: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(frame))
    cut = max(1, round(len(frame) * share))
    holdout = frame.iloc[np.sort(order[:cut])].reset_index(drop=True)
    train = frame.iloc[np.sort(order[cut:])].reset_index(drop=True)
    return train, holdout


def score(model: Any, X: pd.DataFrame, y: pd.Series[Any], task: str) -> dict[str, float | None]:
    """The contract's gate metrics of ``model`` on ``(X, y)``."""
    from stead.monitoring.performance import classification_metrics, regression_metrics

    predictions = model.predict(X)
    if task == "regression":
        return regression_metrics(y.to_numpy(), predictions)
    proba = None
    classes = None
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        classes = getattr(model, "classes_", None)
        if classes is None:
            classes = sorted(set(y.tolist()) | set(list(predictions)))
    return classification_metrics(y.to_numpy(), predictions, proba=proba, classes=classes)


def _parse_param(raw: str) -> Any:
    import json

    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, int | float | bool) else raw


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["k=v", …]`` from the command line: numbers and booleans typed, the rest strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValidationError(f"--param {item!r} must be key=value", hint="stead run churn --param C=0.5")
        out[key.strip()] = _parse_param(value.strip())
    return out


def run_pipeline(
    store: SqlStore,
    project: Project,
    model: str,
    params: Mapping[str, Any] | None = None,
    reason: str | None = None,
    trigger: str = "manual",
    key: str | None = None,
    cause: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    pipeline_id: str | None = None,
) -> PipelineResult:
    """Run ``model``'s pipeline end to end; see the module docstring for the steps.

    With ``pipeline_id`` it continues a pipeline record the controller created (for a trigger's idempotency
    key) instead of creating one.
    """
    from stead import registry
    from stead.datasets import content_hash, profile, schema
    from stead.retraining.gates import Evaluation, evaluate_all, gates_from_specs
    from stead.tracking import start_run

    spec = project.model(model)
    say = progress or (lambda _message: None)
    if pipeline_id is not None:
        existing_run = store.get_pipeline_run(pipeline_id)
        if existing_run["status"] != "RUNNING" or existing_run["version"] is not None:
            raise SteadError(
                f"pipeline run {pipeline_id} is {existing_run['status']}"
                + (f" and registered version {existing_run['version']}" if existing_run["version"] else ""),
                hint="a pipeline run is continued only before it registers a version",
            )
        started = {"id": pipeline_id, "created": True}
        cause = cause if cause is not None else existing_run.get("cause")
    else:
        started = store.create_pipeline_run(model, trigger, reason, key, cause)
    pid = str(started["id"])
    result = PipelineResult(pid)
    if not started["created"]:
        existing = store.get_pipeline_run(pid)
        raise SteadError(
            f"this cause ({key}) already started pipeline run {pid} ({existing['status']})",
            hint="each cause fires one pipeline run; use stead run for a manual one",
        )
    step_name = "load"

    def step(name: str, detail: str) -> None:
        store.update_pipeline_run(pid, step={"name": name, "status": "ok", "detail": detail})
        say(f"{name}: {detail}")

    try:
        all_params = dict(params or {})
        seed = int(all_params.pop("seed", DEFAULT_SEED))
        reproducing = os.environ.get("STEAD_REPRODUCE_OF") or None
        recorded = _recorded_split(store, reproducing) if reproducing else None
        tags = {"stead.pipeline": pid, "stead.trigger": trigger}
        if recorded is not None:
            # `stead reproduce`: the datasets the run trained and was gated on, whatever the source holds now.
            import pandas as pd

            train, holdout, recorded_tags = recorded
            data = pd.concat([train, holdout], ignore_index=True)
            tags.update({k: v for k, v in recorded_tags.items() if k in ("stead.data_hash", "stead.feedback_hash")})
            step("load", f"the datasets of run {str(reproducing)[:12]}, which this run reproduces")
        else:
            data, source = _training_data(store, spec, project.root, cause or {})
            fingerprint = content_hash(data)
            step("load", f"{len(data)} rows x {data.shape[1]} columns (content {fingerprint[:12]}){source}")
            # stead.data_hash is the source's fingerprint, which the new-data trigger compares with the source now
            tags["stead.data_hash" if not source else "stead.feedback_hash"] = fingerprint
        if spec.target not in data.columns:
            raise ValidationError(
                f"models.{model}.target: column {spec.target!r} is not in the data",
                hint=f"the data has: {', '.join(map(str, data.columns[:20]))}",
            )
        step_name = "split"
        if recorded is None:
            train, holdout = _split(data, spec.holdout, seed)
        task = _task(spec, data[spec.target])
        step("split", f"{len(train)} training rows, {len(holdout)} holdout rows (seed {seed}), task {task}")
        features = [c for c in data.columns if c != spec.target]
        X_hold, y_hold = holdout[features], holdout[spec.target]
        if reason:
            tags["stead.reason"] = reason
        step_name = "train"
        train_fn = _import_function(spec.train, project.root, f"models.{model}.train")
        with start_run(experiment=model, params=all_params, seed=seed, tags=tags, store=store) as run:
            result.run_id = run.id
            store.update_pipeline_run(pid, run_id=run.id)
            train_version = run.log_dataset(model, train, role="train")
            holdout_version = run.log_dataset(f"{model}-holdout", holdout, role="holdout")
            ctx = TrainContext(train, train[features], train[spec.target], all_params, seed, run, spec.target, task)
            fitted = train_fn(ctx)
            if fitted is None or not hasattr(fitted, "predict"):
                raise ValidationError(
                    f"models.{model}.train: {spec.train} returned {type(fitted).__name__}, not a fitted model",
                    hint="return the fitted model from train(ctx)",
                )
            step("train", f"run {run.id[:12]} trained {type(fitted).__name__}")
            step_name = "evaluate"
            metrics = score(fitted, X_hold, y_hold, task)
            result.metrics = metrics
            run.log_metrics({k: v for k, v in metrics.items() if v is not None})
            champion = _champion(store, model)
            champion_eval: Evaluation | None = None
            if champion is not None:
                champion_metrics = score(registry.load_model(store, champion), X_hold, y_hold, task)
                champion_eval = Evaluation(
                    metrics={k: v for k, v in champion_metrics.items() if v is not None},
                    signature={c["name"]: c["dtype"] for c in champion.signature.get("inputs", [])},
                )
                result.champion = {"version": champion.version, "metrics": champion_metrics}
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)
            against = f"; champion v{champion.version} on the same holdout" if champion else "; no champion yet"
            step("evaluate", shown + against)
            step_name = "gates"
            training_profile = _training_profile(store, champion) or train_version.profile
            gates = gates_from_specs(spec.gates, training_profile)
            holdout_features = holdout[features]
            candidate = Evaluation(
                metrics={k: v for k, v in metrics.items() if v is not None},
                rows=len(holdout),
                columns={c["name"]: c["dtype"] for c in schema(holdout_features)},
                profile=profile(holdout_features),
            )
            results = evaluate_all(gates, candidate, champion_eval)
            champion_failing = _below_floor(gates, champion, champion_eval)
            result.gate_results = [r.to_dict() for r in results]
            result.approved = all(r.passed for r in results)
            failed = [r for r in results if not r.passed]
            step("gates", "all passed" if not failed else "; ".join(f"{r.gate}: {r.reasons}" for r in failed))
            if reproducing:
                step("register", f"none: a reproduction of run {reproducing[:12]} registers and deploys nothing")
                store.update_pipeline_run(pid, status="APPROVED" if result.approved else "REJECTED")
                return result
            step_name = "register"
            version = run.log_model(fitted, name=model, input_example=X_hold.head(5))
        result.version = version.version
        store.update_pipeline_run(pid, version=version.version)
        state = "approved" if result.approved else "rejected"
        why = "every gate passed" if result.approved else "; ".join(r.reasons for r in results if not r.passed)
        registry.set_state(store, model, version.version, state, why, result.gate_results)
        store.add_edge(f"dataset:{holdout_version.id}", f"version:{model}/{version.version}", "evaluated_on")
        step("register", f"{model}/{version.version} is {state}")
        if result.approved and spec.deploy is not None:
            step_name = "rollout"
            result.rollout = _start_rollout(store, spec, model, version.version, champion, pid, champion_failing)
            step("rollout", result.rollout)
        store.update_pipeline_run(pid, status="APPROVED" if result.approved else "REJECTED")
        return result
    except BaseException as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        store.update_pipeline_run(
            pid, status="FAILED", step={"name": step_name, "status": "failed", "detail": text[:2000]}, error=text[:4000]
        )
        raise


def _champion(store: SqlStore, model: str) -> ModelVersion | None:
    from stead import registry

    try:
        return registry.get_model_version(store, model, "champion")
    except NotFoundError:
        return None


def _training_profile(store: SqlStore, version: ModelVersion | None) -> dict[str, Any] | None:
    if version is None or version.run_id is None:
        return None
    run = store.get_run(version.run_id)
    for use in run.inputs:
        if use.role == "train":
            return dict(store.get_dataset(use.dataset_id).profile)
    return None


def _start_rollout(
    store: SqlStore,
    spec: ModelSpec,
    model: str,
    version: int,
    champion: ModelVersion | None,
    pipeline_id: str,
    champion_failing: str = "",
) -> str:
    """Deploy an approved version by the policy: at 100% when it is the first, else as a canary at the first
    step of ``rollout``, or of ``rollout_when_failing`` when the champion is failing its floor (an open
    performance alert on the deployment, or ``champion_failing``: an absolute gate it fails on the holdout)."""
    from stead import deployments, registry

    policy = spec.deploy
    assert policy is not None
    name = policy.deployment
    try:
        current = deployments.get_deployment(store, name)
    except NotFoundError:
        current = None
    steps, failing = list(policy.rollout), ""
    if champion is not None and current is not None and policy.rollout_when_failing is not None:
        from stead.retraining.triggers import PERFORMANCE_RULES

        alerts = [a for a in store.list_alerts(open_only=True, deployment=name) if a.rule.startswith(PERFORMANCE_RULES)]
        if alerts and not champion_failing:
            first = min(alerts, key=lambda a: a.id)
            champion_failing = f"alert {first.id}, {first.rule}"
        if champion_failing:
            steps = list(policy.rollout_when_failing)
            failing = f"; the champion fails its floor ({champion_failing}): rollout_when_failing"
    if champion is None or current is None or steps == [100]:
        deployments.deploy(
            store, f"{model}/{version}", name, reason=f"pipeline: {model}/{version} approved{failing}"[:500]
        )
        registry.set_alias(store, model, "champion", version, reason="approved by the pipeline's gates")
        registry.set_state(store, model, version, "serving", "deployed at 100% by the pipeline")
        return f"deployed {model}/{version} to {name} at 100% and made it champion{failing}"
    superseded = ""
    for running in store.list_rollouts(name, status="running"):
        # A newer approved candidate replaces a canary still being judged: the old one stays approved.
        store.add_canary_decision(
            running["id"],
            int(running["step_index"]),
            "rollback",
            {"decision": "rollback", "reasons": [f"superseded by {model}/{version}"], "evidence": {}},
        )
        store.update_rollout(running["id"], status="aborted")
        superseded = f" (superseding the rollout of {model}/{running['candidate']})"
    rollout = store.create_rollout(name, model, version, champion.version, steps, pipeline_id)
    deployments.deploy(
        store, f"{model}/{version}", name, canary=float(steps[0]), reason=f"pipeline: canary start{failing}"[:500]
    )
    return (
        f"canary {model}/{version} at {steps[0]}% on {name}{superseded} (rollout {rollout['id'][:12]}: steps "
        f"{', '.join(map(str, steps))}{failing}); the controller advances it, or: stead promote {name}"
    )
