"""The controller: ``stead controller [--once]``, and the background loop of ``stead serve`` (layer: retraining).

One controller per store holds the ``controller`` lease; a second one waits and says who holds it. Each
tick, for every model of ``stead.yaml``:

1. **monitor**: compute the deployment's monitor report, store it, raise or resolve alerts and notify;
2. **rollouts**: for each rollout the pipeline started, judge the canary against the primary (canary
   analysis) and advance it to the next step, promote it at 100% (the ``champion`` alias moves), hold,
   or roll it back to the baseline; every decision is stored with its evidence;
3. **triggers**: schedule, drift and performance alerts, new data; a firing records its cause under an
   idempotency key and runs the pipeline in a process of its own (the ``local`` executor, started warm: see
   ``executors.WarmStarter``), or where the model's ``executor`` says.

Everything it decides lives in the store, so a controller killed at any point resumes on restart: a
rollout continues from its stored step, a cause already recorded never fires twice, and a pipeline run
interrupted before registering its version is started again under the same record.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stead.errors import NotFoundError, SteadError

if TYPE_CHECKING:
    from stead.project import ModelSpec, Project
    from stead.retraining.executors import PipelineProcess, WarmStarter
    from stead.store.sql import SqlStore

__all__ = ["Controller", "TickReport"]

LEASE = "controller"


@dataclass
class TickReport:
    held: bool
    holder: str
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Controller:
    """The loop that closes the loop; see the module docstring.

    Parameters
    ----------
    store: the store it watches and writes.
    project_file: the ``stead.yaml`` it reads the models' policies from.
    clock: seconds since the epoch (injected for tests).
    """

    def __init__(
        self,
        store: SqlStore,
        project_file: Path = Path("stead.yaml"),
        *,
        holder: str | None = None,
        lease_ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
        echo: Callable[[str], None] | None = None,
        run_pipelines_inline: bool = False,
    ) -> None:
        self.store = store
        self.project_file = project_file
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_ttl = lease_ttl
        self.clock = clock
        self.echo = echo or (lambda _line: None)
        self.inline = run_pipelines_inline
        self.last_checked: dict[str, datetime] = {}
        # Pipelines run as processes of their own while the loop goes on judging canaries and computing
        # monitors, started from a warm fork server (executors.WarmStarter) on first need.
        self.children: dict[str, tuple[PipelineProcess, str]] = {}
        self._starter: WarmStarter | None = None

    def warm(self) -> None:
        """Start the warm fork server now, in the background (``run`` does), so the first pipeline starts fast;
        only when some model of ``stead.yaml`` retrains on its own (its imports cost seconds of CPU)."""
        if self.inline:
            return
        try:
            project = self._project()
        except SteadError:
            return  # the tick says what is wrong with the file
        automatic = project is not None and any(
            spec.executor.type == "local" and (spec.retrain.schedule or set(spec.retrain.on) - {"manual"})
            for spec in project.models.values()
        )
        if automatic:
            self._warm_starter().warm()

    def _warm_starter(self) -> WarmStarter:
        if self._starter is None:
            import tempfile

            from stead.retraining.executors import WarmStarter

            self._starter = WarmStarter(Path(tempfile.gettempdir()) / "stead-pipelines")
        return self._starter

    # ------------------------------------------------------------ the loop
    def tick(self) -> TickReport:
        lease = self.store.acquire_lease(LEASE, self.holder, self.lease_ttl)
        report = TickReport(bool(lease["held"]), str(lease["holder"]))
        self._reap(report)
        if not lease["held"]:
            return report
        self.store.fail_stale_runs()
        project = self._project()
        if project is None:
            return report
        for name, spec in project.models.items():
            for stage in (self._monitor, self._rollouts, self._triggers):
                try:
                    stage(project, name, spec, report)
                except SteadError as exc:
                    report.errors.append(f"{name}: {stage.__name__.strip('_')}: {exc.message}")
        for line in report.errors:
            self.echo(f"error: {line}")
        return report

    def wait_pipelines(self, timeout: float = 3600.0) -> TickReport:
        """Wait for the pipelines this controller started and report how they ended."""
        report = TickReport(True, self.holder)
        deadline = time.monotonic() + timeout
        for proc, _model in list(self.children.values()):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        self._reap(report)
        return report

    def _reap(self, report: TickReport) -> None:
        for pipeline_id, (proc, model) in list(self.children.items()):
            if proc.poll() is None:
                continue
            del self.children[pipeline_id]
            stdout, stderr = proc.read()
            if proc.returncode in (0, 3):
                try:
                    outcome = json.loads(stdout)
                    verdict = "approved" if outcome.get("approved") else "rejected"
                    self._say(
                        report, f"{model}: pipeline {pipeline_id[:12]} -> {model}/{outcome.get('version')} {verdict}"
                    )
                except ValueError:
                    self._say(report, f"{model}: pipeline {pipeline_id[:12]} finished")
            else:
                last = (stderr.strip().splitlines() or ["(no output)"])[0]
                report.errors.append(f"{model}: pipeline {pipeline_id[:12]} failed: {last}")
                self.echo(f"error: {model}: pipeline {pipeline_id[:12]} failed: {last}")

    def _say(self, report: TickReport, line: str) -> None:
        """Record an action and show it now (a tick that runs a pipeline takes a while)."""
        report.actions.append(line)
        self.echo(line)

    def run(self, interval: float = 5.0, stop: threading.Event | None = None) -> None:
        """Tick every ``interval`` seconds until ``stop`` is set; say once when another controller holds the lease."""
        stop = stop or threading.Event()
        waiting_for: str | None = None
        failing: str | None = None
        self.warm()
        try:
            while not stop.is_set():
                try:
                    report = self.tick()
                except SteadError as exc:  # e.g. a stead.yaml edited into an invalid state: say so once, retry
                    if exc.message != failing:
                        self.echo(f"error: {exc.message}; the controller tries again every {interval:g} s")
                        failing = exc.message
                    stop.wait(interval)
                    continue
                if failing is not None:
                    self.echo("the controller is running again")
                    failing = None
                if not report.held and report.holder != waiting_for:
                    self.echo(f"another controller holds the lease ({report.holder}); waiting")
                    waiting_for = report.holder
                elif report.held:
                    waiting_for = None
                stop.wait(interval)
        finally:
            self.store.release_lease(LEASE, self.holder)

    def _project(self) -> Project | None:
        from stead.project import load_project

        if not self.project_file.exists():
            return None
        return load_project(self.project_file)

    # ------------------------------------------------------------ 1. monitors
    def _monitor(self, project: Project, name: str, spec: ModelSpec, report: TickReport) -> None:
        if spec.deploy is None:
            return
        import importlib

        try:
            monitoring = importlib.import_module("stead.monitoring.monitor")
        except ImportError:  # pragma: no cover - the monitors arrive with the monitoring work
            return
        record = getattr(monitoring, "record_monitor", None)
        if record is None:
            return
        try:
            self.store.get_deployment(spec.deploy.deployment, history=0)
        except NotFoundError:
            return
        result = record(self.store, spec.deploy.deployment, spec.monitor)
        opened = [a for a in (result or {}).get("opened", [])] if isinstance(result, dict) else []
        for alert in opened:
            self._say(report, f"{name}: alert {alert.get('id')} opened ({alert.get('rule')})")

    # ------------------------------------------------------------ 2. rollouts
    def _rollouts(self, project: Project, name: str, spec: ModelSpec, report: TickReport) -> None:
        if spec.deploy is None:
            return
        from stead.monitoring.canary import CanaryPolicy, analyze

        analysis = spec.deploy.analysis
        policy = CanaryPolicy(
            min_requests=analysis.min_requests,
            max_error_rate=analysis.max_error_rate,
            max_p99_ms=analysis.max_p99_ms,
            max_metric_drop=analysis.max_metric_drop,
            max_prediction_drift=analysis.max_prediction_drift,
            metric="accuracy" if (spec.task or "classification") == "classification" else "r2",
        )
        for rollout in self.store.list_rollouts(spec.deploy.deployment, status="running"):
            canary, primary = self._arms(rollout)
            verdict = analyze(canary, primary, policy)
            self._act(rollout, verdict.decision, verdict.to_dict(), report)

    def _arms(self, rollout: dict[str, Any]) -> tuple[Any, Any]:
        """The canary's and the primary's health since this step began, from every serving worker."""
        from stead.deployments import read_predictions
        from stead.monitoring.canary import Arm

        since = float(rollout["updated_at"])
        stats = self.store.serving_stats(rollout["deployment"], since=since)
        arms: dict[str, dict[str, Any]] = {}
        for row in stats:
            side = "canary" if row["version"] == rollout["candidate"] and row["route"] == "canary" else "primary"
            if row["route"] == "shadow":
                continue
            totals = arms.setdefault(side, {"requests": 0, "errors": 0, "latency": {"bounds": [], "counts": []}})
            totals["requests"] += row["requests"]
            totals["errors"] += row["errors_5xx"]
            lat = row["latency"]
            merged = totals["latency"]
            if not merged["bounds"]:
                totals["latency"] = {"bounds": list(lat["bounds"]), "counts": list(lat["counts"])}
            elif len(lat["counts"]) == len(merged["counts"]):
                merged["counts"] = [a + b for a, b in zip(merged["counts"], lat["counts"], strict=True)]
        predictions: dict[str, list[Any]] = {"canary": [], "primary": []}
        labelled: dict[str, tuple[int, int]] = {}
        try:
            frame = read_predictions(self.store, rollout["deployment"], since=since, limit=20_000)
        except SteadError:
            frame = None
        if frame is not None and len(frame):
            outputs = [c for c in frame.columns if c.startswith("outputs.")]
            for side, mask in (
                ("canary", (frame["version"] == rollout["candidate"]) & (frame["route"] == "canary")),
                ("primary", frame["route"] == "primary"),
            ):
                part = frame[mask]
                if outputs:
                    predictions[side] = part[outputs[0]].tolist()
                    labels = part["label"]
                    has = labels.notna()
                    if has.any():
                        hits = int((part.loc[has, outputs[0]].astype(str) == labels[has].astype(str)).sum())
                        labelled[side] = (hits, int(has.sum()))

        def arm(side: str) -> Arm:
            data = arms.get(side, {"requests": 0, "errors": 0, "latency": {}})
            hits, n = labelled.get(side, (0, 0))
            return Arm(
                requests=int(data["requests"]),
                errors=int(data["errors"]),
                latency=data["latency"],
                predictions=predictions[side],
                metric=hits / n if n else None,
                labels=n,
            )

        return arm("canary"), arm("primary")

    def _act(self, rollout: dict[str, Any], decision: str, evidence: dict[str, Any], report: TickReport) -> None:
        from stead import deployments, registry

        rid, step = rollout["id"], int(rollout["step_index"])
        steps = [int(s) for s in rollout["steps"]]
        deployment, model, candidate = rollout["deployment"], rollout["model"], int(rollout["candidate"])
        label = f"{model}/{candidate} on {deployment} at {steps[step]}%"
        if decision == "hold":
            previous = [d for d in self.store.canary_decisions(rollout_id=rid) if d["step"] == step]
            if not previous:  # one hold per step is evidence enough; later ticks would only repeat it
                self.store.add_canary_decision(rid, step, "hold", evidence)
            return
        if decision == "rollback":
            self.store.add_canary_decision(rid, step, "rollback", evidence)
            baseline = rollout["baseline"]
            why = "canary analysis: " + "; ".join(evidence.get("reasons", []))
            if baseline is not None:
                deployments.deploy(self.store, f"{model}/{baseline}", deployment, reason=why[:500])
            else:
                deployments.rollback(self.store, deployment, reason=why[:500])
            self.store.update_rollout(rid, status="rolled_back", expected_step=step)
            try:
                registry.set_state(self.store, model, candidate, "rejected", why[:2000])
            except SteadError:
                pass
            self._say(report, f"rolled back {label}: {'; '.join(evidence.get('reasons', []))}")
            return
        if step + 1 < len(steps) and steps[step + 1] < 100:
            self.store.add_canary_decision(rid, step, "advance", evidence)
            deployments.deploy(
                self.store,
                f"{model}/{candidate}",
                deployment,
                canary=float(steps[step + 1]),
                reason=f"canary analysis: advance to {steps[step + 1]}%",
            )
            self.store.update_rollout(rid, step_index=step + 1, expected_step=step)
            self._say(report, f"advanced {label} -> {steps[step + 1]}%")
            return
        self.store.add_canary_decision(rid, step, "promote", evidence)
        deployments.promote(self.store, deployment, reason="canary analysis: every step passed")
        self.store.update_rollout(rid, step_index=len(steps) - 1, status="promoted", expected_step=step)
        try:
            registry.set_state(self.store, model, candidate, "serving", "promoted by canary analysis")
            if rollout["baseline"] is not None:
                registry.set_state(self.store, model, int(rollout["baseline"]), "approved", "replaced by a promotion")
        except SteadError:
            pass
        self._say(report, f"promoted {model}/{candidate} on {deployment}: it serves 100% and is champion")

    # ------------------------------------------------------------ 3. triggers
    def _triggers(self, project: Project, name: str, spec: ModelSpec, report: TickReport) -> None:
        from stead.retraining.triggers import TriggerState, decide, triggers_from_spec

        self._resume(project, name, report)
        retrain = spec.retrain
        triggers = [t for t in triggers_from_spec(list(retrain.on), retrain.schedule) if t.kind != "manual"]
        if not triggers:
            return
        now = datetime.fromtimestamp(self.clock(), UTC)
        recent = self.store.list_pipeline_runs(name, limit=20)
        automatic = [p for p in recent if p["trigger"] != "manual"]
        last_fired = datetime.fromtimestamp(automatic[0]["started_at"], UTC) if automatic else None
        if any(p["status"] == "RUNNING" for p in recent):
            return  # one pipeline at a time per model
        alerts: list[dict[str, Any]] = []
        if spec.deploy is not None and hasattr(self.store, "list_alerts"):
            found: list[Any] = self.store.list_alerts(open_only=True, deployment=spec.deploy.deployment)
            alerts = [{"id": a.id, "rule": a.rule, "opened_at": a.opened_at.timestamp()} for a in found]
        fired = frozenset(p["key"] for p in recent if p.get("key"))
        after = retrain.after_alert
        labels_after = self._labels_after(spec, alerts, fired) if after is not None else {}
        fingerprint = trained = None
        if any(t.kind == "new_data" for t in triggers):
            from stead.datasets import content_hash
            from stead.retraining.pipeline import load_data

            try:
                fingerprint = content_hash(load_data(spec, project.root))
            except SteadError:
                fingerprint = None
            for done in (p for p in recent if p.get("run_id")):  # the latest run that trained on the source
                trained = self.store.get_run(done["run_id"]).tags.get("stead.data_hash")
                if trained is not None:
                    break
        state = TriggerState(
            now=now,
            last_checked=self.last_checked.get(name),
            last_fired=last_fired,
            alerts=alerts,
            data_fingerprint=fingerprint,
            trained_fingerprint=trained,
            fired=fired,
            min_labels=None if after is None else after.min_labels,
            labels_after=labels_after,
        )
        self.last_checked[name] = now
        decision = decide(triggers, state, spec.retrain.cooldown_seconds)
        if not decision.fire or decision.key is None:
            return
        started = self.store.create_pipeline_run(
            name, decision.kind, decision.reason, decision.key, dict(decision.cause)
        )
        if not started["created"]:
            return  # this cause already fired (before a restart, say)
        self._say(report, f"{name}: {decision.reason} -> pipeline run {str(started['id'])[:12]}")
        self._launch(name, str(started["id"]), decision.kind, decision.reason, report)

    def _labels_after(self, spec: ModelSpec, alerts: list[dict[str, Any]], fired: frozenset[str]) -> dict[int, int]:
        """Labelled predictions served since each open alert that could fire a retrain opened (only while it
        waits for them: a fired alert is not counted again), from one read of the prediction log."""
        from stead.deployments import labelled_counts
        from stead.retraining.triggers import DRIFT_RULES, PERFORMANCE_RULES

        assert spec.deploy is not None
        waiting = [
            a
            for a in alerts
            if f"alert:{a['id']}" not in fired and a["rule"].startswith(DRIFT_RULES + PERFORMANCE_RULES)
        ]
        counts = labelled_counts(self.store, spec.deploy.deployment, [a["opened_at"] for a in waiting])
        return {int(a["id"]): n for a, n in zip(waiting, counts, strict=True)}

    def _resume(self, project: Project, name: str, report: TickReport) -> None:
        """Pipeline runs left RUNNING by a controller that died: start again, or close them honestly."""
        for record in self.store.list_pipeline_runs(name, limit=20):
            if record["status"] != "RUNNING" or record["trigger"] == "manual":
                continue
            alive = False
            if record["run_id"]:
                alive = self.store.get_run(record["run_id"]).status == "RUNNING"
            elif self.clock() - record["started_at"] < 60:
                alive = True  # just started; its run is not recorded yet
            if alive:
                continue
            if record["version"] is not None:
                self.store.update_pipeline_run(
                    record["id"],
                    status="FAILED",
                    error=f"interrupted after registering version {record['version']}; it stays a candidate",
                )
                continue
            self._say(report, f"{name}: resuming pipeline run {record['id'][:12]} ({record['trigger']})")
            self._launch(name, record["id"], record["trigger"], record["reason"] or "", report)

    def _launch(self, model: str, pipeline_id: str, trigger: str, reason: str, report: TickReport) -> None:
        if self.inline:
            from stead.project import load_project
            from stead.retraining.pipeline import run_pipeline

            try:
                result = run_pipeline(
                    self.store,
                    load_project(self.project_file),
                    model,
                    reason=reason,
                    trigger=trigger,
                    pipeline_id=pipeline_id,
                )
                self._say(
                    report,
                    f"{model}: pipeline {pipeline_id[:12]} -> {model}/{result.version} "
                    f"{'approved' if result.approved else 'rejected'}",
                )
            except Exception as exc:  # the user's training code failed; the record says how
                report.errors.append(f"{model}: pipeline {pipeline_id[:12]} failed: {exc}")
            return
        project = self._project()
        spec = project.models.get(model) if project is not None else None
        if spec is not None and spec.executor.type != "local":  # issue 9: e.g. {type: ray, address: …}
            from stead.retraining.executors import executor_for

            outcome = executor_for(spec.executor).launch(
                self.store.settings, self.project_file, model, pipeline_id=pipeline_id, trigger=trigger, reason=reason
            )
            if outcome.ok:
                verdict = "approved" if outcome.approved else "rejected"
                self._say(
                    report,
                    f"{model}: pipeline {pipeline_id[:12]} on {outcome.where} -> {model}/{outcome.version} {verdict}",
                )
            else:
                report.errors.append(f"{model}: pipeline {pipeline_id[:12]} failed on {outcome.where}: {outcome.error}")
            return
        proc = self._warm_starter().start(
            self.store.settings, self.project_file, model, pipeline_id, trigger, reason or ""
        )
        self.children[pipeline_id] = (proc, model)
