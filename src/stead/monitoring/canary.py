"""Automatic canary analysis: canary against primary over the same window -> advance, hold or roll back
(layer: monitoring; pure, no I/O).

The canary must stay within the policy's absolute limits (``max_error_rate``, ``max_p99_ms``,
``max_prediction_drift``) **and** not be significantly worse than the primary:

- error rate (5xx share): a one-sided two-proportion z-test, canary worse at level ``alpha`` (0.05);
- p99 latency: from the merged latency histograms; worse when above ``max_p99_ms``, or, once the canary has
  ``min_latency_requests`` (200) requests, more than twice the primary's p99 plus 10 ms (below ~100 samples a
  p99 is just the slowest request; a histogram bucket's width is the resolution, so no finer test is claimed);
- prediction drift: the Jensen-Shannon distance (0-1) between the two arms' predictions;
- the metric on labelled feedback when each arm has ``min_labels`` labels (accuracy-like metrics get a
  one-sided two-proportion z-test), else the estimated metric; a drop beyond ``max_metric_drop`` that is
  significant (or estimated) rolls back.

Nothing is judged before the canary has ``min_requests`` requests: the decision is then ``hold``.

>>> policy = CanaryPolicy(min_requests=100, max_error_rate=0.01)
>>> primary = Arm(requests=1000, errors=2)
>>> analyze(Arm(requests=50, errors=0), primary, policy).decision
'hold'
>>> analyze(Arm(requests=500, errors=1), primary, policy).decision
'advance'
>>> verdict = analyze(Arm(requests=500, errors=20), primary, policy)
>>> verdict.decision, verdict.reasons[0]
('rollback', 'error rate 4.00% is above the limit 1.00%')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Arm", "CanaryPolicy", "Verdict", "analyze", "p99_ms"]


@dataclass(frozen=True)
class Arm:
    """What one side (canary or primary) did over the window.

    ``latency`` is a histogram ``{"bounds": [seconds…], "counts": [...]}`` (Prometheus-style upper bounds, one
    count per bound plus an optional overflow count); ``predictions`` a sample of its outputs; ``metric`` and
    ``labels`` the realized metric on labelled feedback and how many labels it rests on; ``estimated`` an
    estimated metric when labels are too few.
    """

    requests: int
    errors: int = 0
    latency: Mapping[str, Sequence[float]] = field(default_factory=dict)
    predictions: Sequence[Any] = ()
    metric: float | None = None
    labels: int = 0
    estimated: float | None = None


@dataclass(frozen=True)
class CanaryPolicy:
    min_requests: int = 100
    max_error_rate: float = 0.01
    max_p99_ms: float | None = None
    max_metric_drop: float = 0.02
    max_prediction_drift: float | None = None
    alpha: float = 0.05
    min_labels: int = 100
    min_latency_requests: int = 200
    metric: str = "accuracy"


@dataclass(frozen=True)
class Verdict:
    decision: str
    reasons: list[str]
    evidence: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "reasons": self.reasons, "evidence": self.evidence}


def p99_ms(latency: Mapping[str, Sequence[float]]) -> float | None:
    """The 99th percentile in milliseconds, read as the upper bound of the bucket that holds it.

    >>> p99_ms({"bounds": [0.001, 0.005, 0.01], "counts": [90, 9, 1]})
    5.0
    """
    bounds = list(latency.get("bounds") or [])
    counts = list(latency.get("counts") or [])
    total = sum(counts)
    if not total or not bounds:
        return None
    target = 0.99 * total
    seen = 0.0
    for i, count in enumerate(counts):
        seen += count
        if seen >= target:
            return float(bounds[min(i, len(bounds) - 1)]) * 1000.0
    return float(bounds[-1]) * 1000.0


def _worse_proportion(bad_a: int, n_a: int, bad_b: int, n_b: int) -> float:
    """One-sided p-value that proportion a (canary) is greater than b (primary): two-proportion z-test."""
    if n_a == 0 or n_b == 0:
        return 1.0
    pooled = (bad_a + bad_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 1.0 if bad_a / n_a <= bad_b / n_b else 0.0
    z = (bad_a / n_a - bad_b / n_b) / se
    return 0.5 * math.erfc(z / math.sqrt(2))


def _prediction_drift(canary: Sequence[Any], primary: Sequence[Any]) -> float | None:
    if len(canary) < 20 or len(primary) < 20:
        return None
    import numpy as np
    from scipy.spatial.distance import jensenshannon

    a, b = np.asarray(canary), np.asarray(primary)
    if a.dtype.kind in "fiu" and b.dtype.kind in "fiu" and len(np.unique(np.concatenate([a, b]))) > 20:
        edges = np.quantile(b.astype(float), np.linspace(0, 1, 11))
        edges[0], edges[-1] = -np.inf, np.inf
        edges = np.unique(edges)
        p = np.histogram(a.astype(float), edges)[0].astype(float)
        q = np.histogram(b.astype(float), edges)[0].astype(float)
    else:
        values = sorted({str(v) for v in a} | {str(v) for v in b})
        sa, sb = [str(v) for v in a], [str(v) for v in b]
        p = np.array([sa.count(v) for v in values], dtype=float)
        q = np.array([sb.count(v) for v in values], dtype=float)
    p, q = p + 1e-9, q + 1e-9
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))


def analyze(canary: Arm, primary: Arm, policy: CanaryPolicy) -> Verdict:
    """Judge the canary; see the module docstring for the rules."""
    evidence: dict[str, Any] = {
        "canary": {"requests": canary.requests, "errors": canary.errors},
        "primary": {"requests": primary.requests, "errors": primary.errors},
        "policy": policy.__dict__,
    }
    if canary.requests < policy.min_requests:
        return Verdict(
            "hold",
            [f"{canary.requests} of {policy.min_requests} canary requests so far: not enough to judge"],
            evidence,
        )
    reasons: list[str] = []
    c_rate = canary.errors / canary.requests
    p_rate = primary.errors / primary.requests if primary.requests else 0.0
    p_err = _worse_proportion(canary.errors, canary.requests, primary.errors, primary.requests)
    evidence["error_rate"] = {"canary": c_rate, "primary": p_rate, "p_value": p_err}
    if c_rate > policy.max_error_rate:
        reasons.append(f"error rate {c_rate:.2%} is above the limit {policy.max_error_rate:.2%}")
    elif p_err < policy.alpha and c_rate > p_rate:
        reasons.append(f"error rate {c_rate:.2%} is significantly above the primary's {p_rate:.2%} (p={p_err:.3g})")
    c_p99, p_p99 = p99_ms(canary.latency), p99_ms(primary.latency)
    evidence["p99_ms"] = {"canary": c_p99, "primary": p_p99}
    if c_p99 is not None:
        if policy.max_p99_ms is not None and c_p99 > policy.max_p99_ms:
            reasons.append(f"p99 latency {c_p99:.1f} ms is above the limit {policy.max_p99_ms:g} ms")
        elif p_p99 is not None and canary.requests >= policy.min_latency_requests and c_p99 > 2 * p_p99 + 10.0:
            reasons.append(f"p99 latency {c_p99:.1f} ms is more than twice the primary's {p_p99:.1f} ms")
    drift = _prediction_drift(canary.predictions, primary.predictions)
    evidence["prediction_drift"] = drift
    if drift is not None and policy.max_prediction_drift is not None and drift > policy.max_prediction_drift:
        reasons.append(
            f"prediction drift (Jensen-Shannon) {drift:.3f} between canary and primary is above "
            f"{policy.max_prediction_drift:g}"
        )
    if (
        canary.metric is not None
        and primary.metric is not None
        and min(canary.labels, primary.labels) >= policy.min_labels
    ):
        drop = primary.metric - canary.metric
        bad_c = round((1 - canary.metric) * canary.labels)
        bad_p = round((1 - primary.metric) * primary.labels)
        p_metric = _worse_proportion(bad_c, canary.labels, bad_p, primary.labels)
        evidence["metric"] = {
            "name": policy.metric,
            "canary": canary.metric,
            "primary": primary.metric,
            "labels": [canary.labels, primary.labels],
            "p_value": p_metric,
            "source": "labels",
        }
        if drop > policy.max_metric_drop and p_metric < policy.alpha:
            reasons.append(
                f"{policy.metric} {canary.metric:.4f} on {canary.labels} labels is below the primary's "
                f"{primary.metric:.4f} by {drop:.4f} (p={p_metric:.3g}), more than {policy.max_metric_drop:g}"
            )
    elif canary.estimated is not None and primary.estimated is not None:
        drop = primary.estimated - canary.estimated
        evidence["metric"] = {
            "name": policy.metric,
            "canary": canary.estimated,
            "primary": primary.estimated,
            "source": "estimated",
        }
        if drop > policy.max_metric_drop:
            reasons.append(
                f"estimated {policy.metric} {canary.estimated:.4f} is below the primary's {primary.estimated:.4f} "
                f"by {drop:.4f}, more than {policy.max_metric_drop:g}"
            )
    if reasons:
        return Verdict("rollback", reasons, evidence)
    return Verdict(
        "advance",
        [f"{canary.requests} requests, error rate {c_rate:.2%}: within every limit and not worse than the primary"],
        evidence,
    )
