"""(layer: monitoring; pure, no I/O) Alert rules from ``stead.yaml`` and the decisions they take on a report.

A rule looks at one number of a monitor report and decides ``firing`` (True), ``clear`` (False) or ``unknown``
(None: the number is missing, e.g. no labels yet). The store keeps one open alert per deployment and rule
name: a rule that fires opens it (or finds it open), a clear rule resolves it, an unknown one leaves it as is.

=====================  =====================================  ===============================================
rule name              from ``stead.yaml``                    fires when
=====================  =====================================  ===============================================
``drift_share``        ``monitor.drift.threshold``            the share of drifted features >= threshold
``feature_drift:COL``  (every feature, unless turned off)     the feature COL drifted (its method's threshold)
``performance:METRIC`` ``monitor.performance`` {metric, min}  the realized METRIC < min (or > max), judged on at
                                                              least ``min_labeled`` labelled rows
``estimated:METRIC``   the same ``monitor.performance``       the estimated METRIC (CBPE/DLE) < min (or > max)
=====================  =====================================  ===============================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["MIN_LABELED", "Decision", "Rule", "evaluate", "firing", "rules_from_spec"]

RuleKind = Literal["drift_share", "feature_drift", "performance", "estimated"]
#: A realized metric on fewer labelled rows than this is not judged (the decision is unknown).
MIN_LABELED = 30


@dataclass(frozen=True)
class Rule:
    """One alert rule. ``name`` is the dedupe key (with the deployment) of the alert it opens."""

    kind: RuleKind
    metric: str | None = None
    min: float | None = None
    max: float | None = None
    threshold: float | None = None
    min_labeled: int = MIN_LABELED

    @property
    def name(self) -> str:
        if self.kind in ("performance", "estimated"):
            return f"{self.kind}:{self.metric}"
        if self.kind == "feature_drift" and self.metric:
            return f"feature_drift:{self.metric}"
        return self.kind


@dataclass(frozen=True)
class Decision:
    """What one rule decided on one report: ``firing`` True, False, or None when it could not tell."""

    rule: str
    firing: bool | None
    message: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rules_from_spec(spec: Any = None, *, feature_drift: bool = True) -> list[Rule]:
    """The rules of a ``stead.yaml`` ``monitor:`` section (a ``MonitorSpec``, its dict, or None for defaults).

    >>> [r.name for r in rules_from_spec({"drift": {"threshold": 0.3},
    ...                                    "performance": {"metric": "accuracy", "min": 0.85}})]
    ['drift_share', 'feature_drift', 'performance:accuracy', 'estimated:accuracy']
    """
    data: Mapping[str, Any]
    if spec is None:
        data = {}
    elif hasattr(spec, "model_dump"):
        data = spec.model_dump()
    else:
        data = spec
    drift = data.get("drift") or {}
    rules = [Rule("drift_share", threshold=float(drift.get("threshold", 0.3)))]
    if feature_drift:
        rules.append(Rule("feature_drift"))
    perf = data.get("performance")
    if perf:
        low, high = perf.get("min"), perf.get("max")
        for kind in ("performance", "estimated"):
            rules.append(
                Rule(
                    kind,
                    metric=str(perf["metric"]),
                    min=None if low is None else float(low),
                    max=None if high is None else float(high),
                )
            )
    return rules


def _bound(rule: Rule, value: float, what: str) -> Decision:
    if rule.min is not None and value < rule.min:
        return Decision(rule.name, True, f"{what} {value:.4g} is below its minimum {rule.min:g}", value, rule.min)
    if rule.max is not None and value > rule.max:
        return Decision(rule.name, True, f"{what} {value:.4g} is above its maximum {rule.max:g}", value, rule.max)
    bound = rule.min if rule.min is not None else rule.max
    return Decision(rule.name, False, f"{what} {value:.4g} is within its bound {bound:g}", value, bound)


def evaluate(report: Mapping[str, Any], rules: Sequence[Rule]) -> list[Decision]:
    """Every rule's decision on a report of :func:`stead.monitoring.report.build_report`'s shape.

    A ``feature_drift`` rule without a column gives one decision per compared feature.

    >>> report = {"drift": {"share": 0.5, "columns": {"age": {"drifted": True, "method": "wasserstein",
    ...           "statistic": 0.3, "threshold": 0.1}, "plan": {"drifted": False, "method": "jensenshannon",
    ...           "statistic": 0.01, "threshold": 0.1}}}, "performance": {"labeled": 0, "accuracy": None}}
    >>> rules = rules_from_spec({"performance": {"metric": "accuracy", "min": 0.8}})
    >>> for d in evaluate(report, rules):
    ...     print(d.rule, d.firing)
    drift_share True
    feature_drift:age True
    feature_drift:plan False
    performance:accuracy None
    estimated:accuracy None
    """
    out: list[Decision] = []
    drift = report.get("drift") or {}
    for rule in rules:
        if rule.kind == "drift_share":
            share, limit = drift.get("share"), rule.threshold if rule.threshold is not None else 0.3
            if share is None or not drift.get("columns"):
                out.append(Decision(rule.name, None, "no features were compared", None, limit))
            elif share >= limit:
                out.append(
                    Decision(
                        rule.name, True, f"{share:.0%} of the features drifted (threshold {limit:.0%})", share, limit
                    )
                )
            else:
                out.append(
                    Decision(
                        rule.name, False, f"{share:.0%} of the features drifted (threshold {limit:.0%})", share, limit
                    )
                )
        elif rule.kind == "feature_drift":
            columns = drift.get("columns") or {}
            names = [rule.metric] if rule.metric else list(columns)
            for name in names:
                col = columns.get(name)
                key = f"feature_drift:{name}"
                if col is None:
                    out.append(Decision(key, None, f"feature {name!r} was not compared"))
                    continue
                stat, limit = col.get("statistic"), col.get("threshold")
                text = f"feature {name!r}: {col.get('method')} {'' if stat is None else f'{stat:.4g}'}".rstrip()
                verdict = "drifted" if col.get("drifted") else "did not drift"
                out.append(Decision(key, bool(col.get("drifted")), f"{text} {verdict}", stat, limit))
        else:
            section = report.get("performance" if rule.kind == "performance" else "estimated") or {}
            value = section.get(rule.metric)
            what = f"{'realized' if rule.kind == 'performance' else 'estimated'} {rule.metric}"
            labeled = int((report.get("performance") or {}).get("labeled") or 0)
            if value is None:
                why = "no labels yet" if rule.kind == "performance" else "no estimate for this model"
                out.append(
                    Decision(rule.name, None, f"{what}: {why}", None, rule.min if rule.min is not None else rule.max)
                )
            elif rule.kind == "performance" and labeled < rule.min_labeled:
                out.append(
                    Decision(
                        rule.name,
                        None,
                        f"{what} {value:.4g} is on {labeled} labels only (at least {rule.min_labeled} are needed)",
                        value,
                        rule.min if rule.min is not None else rule.max,
                    )
                )
            else:
                out.append(_bound(rule, float(value), what))
    return out


def firing(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """The decisions that fire, as the dicts a report lists under ``"alerts"``."""
    return [d.to_dict() for d in decisions if d.firing]
