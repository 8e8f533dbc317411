"""Quality gates: one small protocol, ``Gate.evaluate(candidate, baseline) -> GateResult`` (layer: retraining;
pure, no I/O).

A candidate and its baseline (the champion) are ``Evaluation`` objects computed by stead on the same
holdout, never numbers a user reports. Every result carries a sentence a person can read; the CLI, the
registry's gate results and the UI print them as they are.

>>> candidate = Evaluation(metrics={"roc_auc": 0.84}, rows=2000)
>>> champion = Evaluation(metrics={"roc_auc": 0.86}, rows=2000)
>>> MetricBound("roc_auc", min=0.80).evaluate(candidate, champion).passed
True
>>> result = VsChampion("roc_auc", tolerance=0.005).evaluate(candidate, champion)
>>> result.passed, result.reasons
(False, 'roc_auc 0.8400 is worse than the champion 0.8600 by 0.0200, more than the allowed 0.005')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from stead.errors import ValidationError

__all__ = [
    "LOWER_IS_BETTER",
    "DataValidation",
    "Evaluation",
    "Gate",
    "GateResult",
    "MetricBound",
    "VsChampion",
    "evaluate_all",
    "gates_from_specs",
]

LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "mape"})


@dataclass(frozen=True)
class Evaluation:
    """What stead measured of one model version on one holdout.

    ``columns`` is the holdout's schema (name -> canonical dtype) and ``profile`` its dataset profile;
    ``signature`` is the version's input signature; both are used by ``DataValidation``.
    """

    metrics: Mapping[str, float]
    rows: int = 0
    columns: Mapping[str, str] = field(default_factory=dict)
    profile: Mapping[str, Any] = field(default_factory=dict)
    signature: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    reasons: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "passed": self.passed, "reasons": self.reasons, **dict(self.details)}


class Gate(Protocol):
    @property
    def name(self) -> str: ...

    def evaluate(self, candidate: Evaluation, baseline: Evaluation | None) -> GateResult: ...


def _metric(evaluation: Evaluation, metric: str, who: str) -> float | None:
    value = evaluation.metrics.get(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


@dataclass(frozen=True)
class MetricBound:
    """An absolute bound: ``min`` for higher-is-better metrics, ``max`` for lower-is-better ones.

    >>> MetricBound("log_loss", max=0.5).evaluate(Evaluation(metrics={"log_loss": 0.61}), None).reasons
    'log_loss 0.6100 is above the maximum 0.5'
    """

    metric: str
    min: float | None = None
    max: float | None = None

    @property
    def name(self) -> str:
        return (
            f"{self.metric} {'>= ' + format(self.min, 'g') if self.min is not None else '<= ' + format(self.max, 'g')}"
        )

    def evaluate(self, candidate: Evaluation, baseline: Evaluation | None) -> GateResult:
        value = _metric(candidate, self.metric, "candidate")
        details = {"metric": self.metric, "value": value, "min": self.min, "max": self.max}
        if value is None:
            return GateResult(self.name, False, f"{self.metric} was not measured on the holdout", details)
        if self.min is not None and value < self.min:
            return GateResult(self.name, False, f"{self.metric} {value:.4f} is below the minimum {self.min:g}", details)
        if self.max is not None and value > self.max:
            return GateResult(self.name, False, f"{self.metric} {value:.4f} is above the maximum {self.max:g}", details)
        bound = f"the minimum {self.min:g}" if self.min is not None else f"the maximum {self.max:g}"
        return GateResult(self.name, True, f"{self.metric} {value:.4f} is within {bound}", details)


@dataclass(frozen=True)
class VsChampion:
    """No worse than the champion, on the same holdout, by more than ``tolerance`` in the metric's better
    direction. With no champion the gate passes and says so.

    >>> VsChampion("mae", tolerance=0.1).evaluate(Evaluation(metrics={"mae": 2.0}), None).reasons
    'no champion yet: nothing to compare mae with'
    """

    metric: str
    tolerance: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.metric} vs champion (tolerance {self.tolerance:g})"

    def evaluate(self, candidate: Evaluation, baseline: Evaluation | None) -> GateResult:
        value = _metric(candidate, self.metric, "candidate")
        details: dict[str, Any] = {"metric": self.metric, "value": value, "tolerance": self.tolerance}
        if baseline is None:
            return GateResult(self.name, True, f"no champion yet: nothing to compare {self.metric} with", details)
        champion = _metric(baseline, self.metric, "champion")
        details["champion"] = champion
        if value is None:
            return GateResult(self.name, False, f"{self.metric} was not measured for the candidate", details)
        if champion is None:
            return GateResult(self.name, True, f"the champion has no {self.metric} on this holdout", details)
        lower = self.metric in LOWER_IS_BETTER
        worse_by = (value - champion) if lower else (champion - value)
        details["worse_by"] = worse_by
        if worse_by > self.tolerance:
            return GateResult(
                self.name,
                False,
                f"{self.metric} {value:.4f} is worse than the champion {champion:.4f} by {worse_by:.4f}, "
                f"more than the allowed {self.tolerance:g}",
                details,
            )
        verdict = "better than" if worse_by < 0 else "within tolerance of"
        return GateResult(
            self.name, True, f"{self.metric} {value:.4f} is {verdict} the champion {champion:.4f}", details
        )


@dataclass(frozen=True)
class DataValidation:
    """The holdout matches what the model was trained on: the champion's input schema, null shares and value
    ranges within limits set from the training profile, and a minimum row count.

    ``null_slack`` is the largest allowed rise in a column's null share; ``range_slack`` widens the training
    range by that share of its width before values count as out of range; ``max_out_of_range`` is the share
    of rows allowed outside.

    >>> train = {"columns": {"x": {"kind": "numeric", "count": 100, "nulls": 0, "min": 0.0, "max": 10.0}}}
    >>> holdout = {"columns": {"x": {"kind": "numeric", "count": 50, "nulls": 0, "min": 0.5, "max": 30.0,
    ...            "quantiles": {"p95": 28.0, "p99": 29.0}}}}
    >>> gate = DataValidation(min_rows=10, training_profile=train)
    >>> result = gate.evaluate(Evaluation(metrics={}, rows=50, columns={"x": "float64"}, profile=holdout), None)
    >>> result.passed
    False
    """

    min_rows: int = 1
    null_slack: float = 0.1
    range_slack: float = 0.5
    max_out_of_range: float = 0.05
    training_profile: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return "data validation"

    def evaluate(self, candidate: Evaluation, baseline: Evaluation | None) -> GateResult:
        problems: list[str] = []
        if candidate.rows < self.min_rows:
            problems.append(f"{candidate.rows} rows, fewer than the minimum {self.min_rows}")
        expected = dict(baseline.signature) if baseline is not None and baseline.signature else {}
        if expected and candidate.columns:
            missing = sorted(set(expected) - set(candidate.columns))
            extra = sorted(set(candidate.columns) - set(expected))
            changed = sorted(
                c for c in set(expected) & set(candidate.columns) if _kind(expected[c]) != _kind(candidate.columns[c])
            )
            if missing:
                problems.append(f"columns missing against the champion's signature: {', '.join(missing)}")
            if extra:
                problems.append(f"columns the champion's signature does not have: {', '.join(extra)}")
            for c in changed:
                problems.append(f"column {c} is {candidate.columns[c]}, the champion expects {expected[c]}")
        train_cols = dict(self.training_profile.get("columns", {}))
        now_cols = dict(candidate.profile.get("columns", {}))
        for name, ref in train_cols.items():
            cur = now_cols.get(name)
            if cur is None:
                continue
            ref_share = _null_share(ref)
            cur_share = _null_share(cur)
            if cur_share - ref_share > self.null_slack:
                problems.append(
                    f"column {name} is {cur_share:.0%} null, against {ref_share:.0%} in training "
                    f"(allowed rise {self.null_slack:.0%})"
                )
            if ref.get("kind") == "numeric" and ref.get("min") is not None and cur.get("min") is not None:
                lo, hi = float(ref["min"]), float(ref["max"])
                pad = (hi - lo) * self.range_slack
                quantiles = cur.get("quantiles") or {}
                high = float(quantiles.get(_tail_key(self.max_out_of_range, high=True), cur["max"]))
                low = float(quantiles.get(_tail_key(self.max_out_of_range, high=False), cur["min"]))
                if high > hi + pad or low < lo - pad:
                    problems.append(
                        f"column {name} ranges {low:.4g}..{high:.4g} beyond the training range {lo:.4g}..{hi:.4g} "
                        f"(slack {self.range_slack:.0%} of its width)"
                    )
        details = {"problems": problems, "rows": candidate.rows}
        if problems:
            return GateResult(self.name, False, "; ".join(problems), details)
        return GateResult(
            self.name, True, f"{candidate.rows} rows; schema, null shares and ranges match the training data", details
        )


def _kind(dtype: str) -> str:
    if dtype.startswith(("int", "uint", "float")) or dtype == "timedelta":
        return "numeric"
    if dtype in ("string", "category", "object"):
        return "categorical"
    return dtype


def _null_share(column: Mapping[str, Any]) -> float:
    count = int(column.get("count") or 0)
    nulls = int(column.get("nulls") or 0)
    total = count + nulls
    return nulls / total if total else 0.0


def _tail_key(share: float, *, high: bool) -> str:
    # The profile keeps p01, p05, p95, p99: judge the range on the quantile that leaves `share` outside.
    if share >= 0.05:
        return "p95" if high else "p05"
    return "p99" if high else "p01"


def gates_from_specs(specs: Sequence[Any], training_profile: Mapping[str, Any] | None = None) -> list[Gate]:
    """Gates for a model's ``gates:`` list in stead.yaml, with data validation always first."""
    gates: list[Gate] = [DataValidation(training_profile=training_profile or {})]
    for n, spec in enumerate(specs):
        metric = getattr(spec, "metric", None)
        if not isinstance(metric, str):
            raise ValidationError(f"gates[{n}]: a gate needs a metric name")
        if getattr(spec, "vs_champion", None) is not None:
            gates.append(VsChampion(metric, float(spec.vs_champion)))
        else:
            gates.append(MetricBound(metric, min=getattr(spec, "min", None), max=getattr(spec, "max", None)))
    return gates


def evaluate_all(gates: Sequence[Gate], candidate: Evaluation, baseline: Evaluation | None) -> list[GateResult]:
    """Every gate's result (all are evaluated, so the reasons list each problem at once)."""
    return [gate.evaluate(candidate, baseline) for gate in gates]
