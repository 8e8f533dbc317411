"""Retraining triggers: one small protocol, ``Trigger.check(state) -> Decision`` (layer: retraining; pure,
no I/O, no clock but the one in the state).

Each firing has an **idempotency key** naming its cause (a cron tick, an alert id, a data fingerprint, a
manual request id), so the controller records it once, in a table with a unique key, and a restart
never fires the same cause twice. A cooldown since the model's last firing holds back every trigger but
a manual one.

>>> from datetime import datetime, timezone
>>> now = datetime(2026, 11, 30, 3, 0, 30, tzinfo=timezone.utc)
>>> state = TriggerState(now=now, last_checked=now.replace(hour=2, minute=0, second=0))
>>> decision = Schedule("0 3 * * 1").check(state)
>>> decision.fire, decision.key
(True, 'schedule:2026-11-30T03:00:00+00:00')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

__all__ = [
    "DRIFT_RULES",
    "PERFORMANCE_RULES",
    "Decision",
    "DriftAlert",
    "Manual",
    "NewData",
    "PerformanceAlert",
    "Schedule",
    "Trigger",
    "TriggerState",
    "decide",
    "triggers_from_spec",
]


#: Prefixes of the monitor rules on a model's own quality (realized or estimated), not on its inputs.
PERFORMANCE_RULES = ("performance", "estimated")
#: Prefixes of the monitor rules that fire the drift trigger (the share of drifted features).
DRIFT_RULES = ("drift",)


@dataclass(frozen=True)
class TriggerState:
    """What the controller knows about one model at one tick.

    ``alerts`` are the open alerts of the deployment the model serves (dicts with ``id`` and ``rule``);
    ``data_fingerprint`` is the content hash of the model's data source now and ``trained_fingerprint``
    the one its latest pipeline run trained on; ``manual`` lists pending manual request ids; ``fired`` holds the
    idempotency keys of causes that already fired, so a trigger looks past them to a new cause. With
    ``min_labels`` (``retrain.after_alert``) an alert trigger waits until ``labels_after[alert id]``, the
    labelled predictions served since that alert opened, reaches it.
    """

    now: datetime
    last_checked: datetime | None = None
    last_fired: datetime | None = None
    alerts: Sequence[Mapping[str, Any]] = ()
    data_fingerprint: str | None = None
    trained_fingerprint: str | None = None
    manual: Sequence[str] = ()
    fired: frozenset[str] = frozenset()
    min_labels: int | None = None
    labels_after: Mapping[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    fire: bool
    kind: str
    key: str | None = None
    reason: str = ""
    cause: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


class Trigger(Protocol):
    @property
    def kind(self) -> str: ...

    def check(self, state: TriggerState) -> Decision: ...


@dataclass(frozen=True)
class Schedule:
    """Fires once per cron tick that fell in ``(last_checked, now]``; the key is the tick's time."""

    cron: str
    kind: str = "schedule"

    def check(self, state: TriggerState) -> Decision:
        from croniter import croniter

        since = state.last_checked or (state.now - timedelta(minutes=1))
        tick = croniter(self.cron, since).get_next(datetime)
        if tick > state.now:
            return Decision(False, self.kind, reason=f"cron {self.cron}: next at {tick.isoformat()}")
        # Several ticks may have passed while the controller was down: fire once, for the latest.
        latest = croniter(self.cron, state.now + timedelta(seconds=1)).get_prev(datetime)
        if f"schedule:{latest.isoformat()}" in state.fired:
            return Decision(False, self.kind, reason=f"cron {self.cron}: the tick at {latest.isoformat()} already ran")
        return Decision(
            True,
            self.kind,
            key=f"schedule:{latest.isoformat()}",
            reason=f"cron {self.cron} was due at {latest.isoformat()}",
            cause={"cron": self.cron, "tick": latest.isoformat()},
        )


def _alert_decision(kind: str, prefixes: tuple[str, ...], state: TriggerState) -> Decision:
    matching = [
        a for a in state.alerts if str(a.get("rule", "")).startswith(prefixes) and f"alert:{a['id']}" not in state.fired
    ]
    if not matching:
        return Decision(False, kind, reason=f"no open {kind} alert")
    alert = min(matching, key=lambda a: int(a["id"]))
    cause = {"alert_id": alert["id"], "rule": alert["rule"]}
    if alert.get("opened_at") is not None:
        cause["since"] = alert["opened_at"]
    if state.min_labels is not None:
        have = int(state.labels_after.get(int(alert["id"]), 0))
        if have < state.min_labels:
            return Decision(
                False,
                kind,
                reason=f"alert {alert['id']} ({alert['rule']}) is open; waiting for labelled predictions served "
                f"since it opened: {have} of {state.min_labels}",
            )
    return Decision(
        True,
        kind,
        key=f"alert:{alert['id']}",
        reason=f"alert {alert['id']} ({alert['rule']}) is open",
        cause=cause,
    )


@dataclass(frozen=True)
class DriftAlert:
    """Fires on an open drift alert (dataset drift share or a feature's drift); the key is the alert id.

    >>> from datetime import datetime, timezone
    >>> now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> DriftAlert().check(TriggerState(now=now, alerts=[{"id": 7, "rule": "drift.share"}])).key
    'alert:7'
    """

    kind: str = "drift"

    def check(self, state: TriggerState) -> Decision:
        return _alert_decision(self.kind, DRIFT_RULES, state)


@dataclass(frozen=True)
class PerformanceAlert:
    """Fires on an open performance alert, realized or estimated; the key is the alert id."""

    kind: str = "performance"

    def check(self, state: TriggerState) -> Decision:
        return _alert_decision(self.kind, PERFORMANCE_RULES, state)


@dataclass(frozen=True)
class NewData:
    """Fires when the content at the model's data source differs from what it was last trained on."""

    kind: str = "new_data"

    def check(self, state: TriggerState) -> Decision:
        now, trained = state.data_fingerprint, state.trained_fingerprint
        if now is None:
            return Decision(False, self.kind, reason="the data source could not be read")
        if f"data:{now}" in state.fired:
            return Decision(False, self.kind, reason="this data already started a pipeline run")
        if trained is None or now == trained:
            return Decision(False, self.kind, reason="the data has not changed since the last training")
        return Decision(
            True,
            self.kind,
            key=f"data:{now}",
            reason=f"the data changed: {trained[:12]} -> {now[:12]}",
            cause={"from": trained, "to": now},
        )


@dataclass(frozen=True)
class Manual:
    """Fires for each pending manual request (``stead run`` is the manual trigger); never held by cooldown."""

    kind: str = "manual"

    def check(self, state: TriggerState) -> Decision:
        if not state.manual:
            return Decision(False, self.kind, reason="no manual request")
        pending = [r for r in state.manual if f"manual:{r}" not in state.fired]
        if not pending:
            return Decision(False, self.kind, reason="every manual request already ran")
        request = pending[0]
        return Decision(True, self.kind, key=f"manual:{request}", reason=f"manual request {request}")


def decide(triggers: Sequence[Trigger], state: TriggerState, cooldown: float) -> Decision:
    """The first trigger that fires, unless the cooldown since the last firing holds it back.

    >>> from datetime import datetime, timezone
    >>> now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    >>> alerts = [{"id": 3, "rule": "drift.share"}]
    >>> state = TriggerState(now=now, last_fired=now - timedelta(hours=1), alerts=alerts)
    >>> decide([DriftAlert()], state, cooldown=6 * 3600).reason
    'drift would fire (alert 3 (drift.share) is open) but the cooldown lasts until 2026-01-01T17:00:00+00:00'
    """
    held: Decision | None = None
    for trigger in triggers:
        decision = trigger.check(state)
        if not decision.fire:
            continue
        if decision.kind != "manual" and state.last_fired is not None:
            until = state.last_fired + timedelta(seconds=cooldown)
            if state.now < until:
                held = held or Decision(
                    False,
                    decision.kind,
                    reason=f"{decision.kind} would fire ({decision.reason}) but the cooldown lasts until "
                    f"{until.isoformat()}",
                )
                continue
        return decision
    return held or Decision(False, "none", reason="no trigger fired")


def triggers_from_spec(on: Sequence[str], schedule: str | None) -> list[Trigger]:
    """The triggers a model's ``retrain:`` section asks for (manual is always there)."""
    out: list[Trigger] = [Manual()]
    if schedule:
        out.append(Schedule(schedule))
    table: dict[str, Trigger] = {"drift": DriftAlert(), "performance": PerformanceAlert(), "new_data": NewData()}
    out.extend(table[name] for name in on if name in table)
    return out
