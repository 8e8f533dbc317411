"""Retraining triggers: each fires once per cause (an idempotency key), and the cooldown holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stead.retraining.triggers import (
    DriftAlert,
    Manual,
    NewData,
    PerformanceAlert,
    Schedule,
    TriggerState,
    decide,
    triggers_from_spec,
)

NOW = datetime(2026, 11, 30, 3, 0, 30, tzinfo=UTC)  # a Monday, just after 03:00


def test_a_schedule_fires_once_per_tick_even_after_a_long_outage() -> None:
    every_monday = Schedule("0 3 * * 1")
    first = every_monday.check(TriggerState(now=NOW, last_checked=NOW - timedelta(minutes=5)))
    assert first.fire and first.key == "schedule:2026-11-30T03:00:00+00:00"
    # A restarted controller checks again from an older point: the same tick, the same key.
    again = every_monday.check(TriggerState(now=NOW + timedelta(seconds=10), last_checked=NOW - timedelta(days=20)))
    assert again.key == first.key
    assert not every_monday.check(TriggerState(now=NOW + timedelta(minutes=1), last_checked=NOW)).fire


def test_alert_triggers_key_on_the_alert() -> None:
    alerts = [{"id": 9, "rule": "performance.accuracy"}, {"id": 4, "rule": "drift.share"}]
    state = TriggerState(now=NOW, alerts=alerts)
    assert DriftAlert().check(state).key == "alert:4"
    assert PerformanceAlert().check(state).key == "alert:9"
    assert not DriftAlert().check(TriggerState(now=NOW)).fire


def test_new_data_compares_fingerprints() -> None:
    assert NewData().check(TriggerState(now=NOW, data_fingerprint="b" * 64, trained_fingerprint="a" * 64)).fire
    assert not NewData().check(TriggerState(now=NOW, data_fingerprint="a" * 64, trained_fingerprint="a" * 64)).fire
    assert not NewData().check(TriggerState(now=NOW, data_fingerprint=None, trained_fingerprint="a" * 64)).fire


def test_the_cooldown_holds_every_trigger_but_manual() -> None:
    triggers = triggers_from_spec(["drift", "performance", "new_data"], "0 3 * * 1")
    state = TriggerState(
        now=NOW, last_fired=NOW - timedelta(hours=1), alerts=[{"id": 1, "rule": "drift.share"}], manual=()
    )
    held = decide(triggers, state, cooldown=6 * 3600)
    assert not held.fire and "cooldown lasts until 2026-11-30T08:00:30+00:00" in held.reason
    after = decide(triggers, TriggerState(**{**state.__dict__, "now": NOW + timedelta(hours=6)}), cooldown=6 * 3600)
    assert after.fire
    manual = decide(triggers, TriggerState(now=NOW, last_fired=NOW, manual=["r1"]), cooldown=6 * 3600)
    assert manual.fire and manual.key == "manual:r1"
    assert isinstance(triggers[0], Manual)


def test_a_cause_that_already_fired_does_not_shadow_a_new_one() -> None:
    alerts = [{"id": 5, "rule": "drift_share"}, {"id": 9, "rule": "performance:accuracy"}]
    state = TriggerState(now=NOW, alerts=alerts, fired=frozenset({"alert:5"}))
    decision = decide([DriftAlert(), PerformanceAlert()], state, cooldown=0)
    assert decision.fire and decision.key == "alert:9"
    assert not decide([DriftAlert()], state, cooldown=0).fire
