"""Automatic canary analysis: hold until enough requests, roll back on absolute limits or a significant
difference, advance otherwise."""

from __future__ import annotations

import numpy as np

from stead.monitoring.canary import Arm, CanaryPolicy, analyze, p99_ms

BOUNDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5]


def latency(ms: float, n: int) -> dict[str, list[float]]:
    counts = [0.0] * len(BOUNDS)
    counts[next(i for i, b in enumerate(BOUNDS) if ms / 1000 <= b)] = n
    return {"bounds": BOUNDS, "counts": counts}


def test_nothing_is_judged_before_min_requests() -> None:
    verdict = analyze(Arm(requests=99, errors=50), Arm(requests=1000), CanaryPolicy(min_requests=100))
    assert verdict.decision == "hold" and "99 of 100" in verdict.reasons[0]


def test_a_significantly_higher_error_rate_rolls_back_even_under_the_limit() -> None:
    policy = CanaryPolicy(min_requests=100, max_error_rate=0.05)
    worse = analyze(Arm(requests=2000, errors=60), Arm(requests=20000, errors=100), policy)
    assert worse.decision == "rollback" and "significantly above" in worse.reasons[0]
    assert worse.evidence["error_rate"]["p_value"] < 0.05
    same = analyze(Arm(requests=2000, errors=11), Arm(requests=20000, errors=100), policy)
    assert same.decision == "advance"


def test_latency_limits() -> None:
    policy = CanaryPolicy(min_requests=10, max_p99_ms=20)
    slow = analyze(Arm(requests=300, latency=latency(40, 300)), Arm(requests=300, latency=latency(4, 300)), policy)
    assert slow.decision == "rollback" and "above the limit 20 ms" in slow.reasons[0]
    few = CanaryPolicy(min_requests=10)
    assert (
        analyze(Arm(requests=50, latency=latency(90, 50)), Arm(requests=500, latency=latency(4, 500)), few).decision
        == "advance"
    )
    many = analyze(Arm(requests=500, latency=latency(90, 500)), Arm(requests=500, latency=latency(4, 500)), few)
    assert many.decision == "rollback" and "twice the primary's" in many.reasons[0]
    assert p99_ms(latency(4, 10)) == 5.0


def test_a_significant_metric_drop_on_labels_rolls_back() -> None:
    policy = CanaryPolicy(min_requests=10, max_metric_drop=0.02, min_labels=200)
    bad = analyze(Arm(requests=500, metric=0.80, labels=400), Arm(requests=5000, metric=0.90, labels=4000), policy)
    assert bad.decision == "rollback" and "below the primary's" in bad.reasons[0]
    noisy = analyze(Arm(requests=500, metric=0.80, labels=100), Arm(requests=5000, metric=0.90, labels=4000), policy)
    assert noisy.decision == "advance"  # too few labels to judge
    estimated = analyze(Arm(requests=500, estimated=0.80), Arm(requests=5000, estimated=0.90), policy)
    assert estimated.decision == "rollback" and "estimated accuracy" in estimated.reasons[0]


def test_prediction_drift_between_the_arms() -> None:
    rng = np.random.default_rng(0)
    policy = CanaryPolicy(min_requests=10, max_prediction_drift=0.1)
    shifted = analyze(
        Arm(requests=500, predictions=list(rng.normal(1.0, 1, 500))),
        Arm(requests=500, predictions=list(rng.normal(0.0, 1, 500))),
        policy,
    )
    assert shifted.decision == "rollback" and "Jensen-Shannon" in shifted.reasons[0]
    alike = analyze(
        Arm(requests=500, predictions=list(rng.integers(0, 2, 500))),
        Arm(requests=500, predictions=list(rng.integers(0, 2, 500))),
        policy,
    )
    assert alike.decision == "advance"
