"""Quality gates: absolute bounds, relative to the champion on the same holdout, and data validation."""

from __future__ import annotations

import pytest

from stead.project import GateSpec
from stead.retraining.gates import DataValidation, Evaluation, MetricBound, VsChampion, evaluate_all, gates_from_specs

TRAIN = {
    "columns": {
        "x": {"kind": "numeric", "count": 1000, "nulls": 0, "min": 0.0, "max": 10.0},
        "c": {"kind": "categorical", "count": 990, "nulls": 10},
    }
}


def test_a_worse_candidate_is_rejected_with_the_metric_and_both_values() -> None:
    result = VsChampion("roc_auc", 0.005).evaluate(
        Evaluation(metrics={"roc_auc": 0.80}), Evaluation(metrics={"roc_auc": 0.85})
    )
    assert not result.passed
    assert "roc_auc 0.8000" in result.reasons and "champion 0.8500" in result.reasons
    better = VsChampion("roc_auc", 0.005).evaluate(
        Evaluation(metrics={"roc_auc": 0.848}), Evaluation(metrics={"roc_auc": 0.85})
    )
    assert better.passed and "within tolerance" in better.reasons


@pytest.mark.parametrize(
    ("metric", "candidate", "champion", "passed"),
    [
        pytest.param("rmse", 1.05, 1.0, False, id="lower-is-better-worse"),
        pytest.param("rmse", 0.95, 1.0, True, id="lower-is-better-better"),
        pytest.param("log_loss", 0.30, 0.31, True, id="log-loss-better"),
        pytest.param("accuracy", 0.90, 0.95, False, id="higher-is-better-worse"),
    ],
)
def test_vs_champion_follows_the_metrics_direction(
    metric: str, candidate: float, champion: float, passed: bool
) -> None:
    gate = VsChampion(metric, 0.01)
    assert gate.evaluate(Evaluation({metric: candidate}), Evaluation({metric: champion})).passed is passed


def test_no_champion_passes_and_says_so() -> None:
    result = VsChampion("f1", 0.0).evaluate(Evaluation({"f1": 0.1}), None)
    assert result.passed and "no champion yet" in result.reasons


def test_absolute_bounds() -> None:
    assert MetricBound("roc_auc", min=0.8).evaluate(Evaluation({"roc_auc": 0.81}), None).passed
    low = MetricBound("roc_auc", min=0.8).evaluate(Evaluation({"roc_auc": 0.79}), None)
    assert not low.passed and "below the minimum 0.8" in low.reasons
    missing = MetricBound("roc_auc", min=0.8).evaluate(Evaluation({}), None)
    assert not missing.passed and "not measured" in missing.reasons


def test_data_validation_checks_schema_nulls_ranges_and_rows() -> None:
    champion = Evaluation({}, signature={"x": "float64", "c": "string"})
    good = Evaluation(
        {},
        rows=500,
        columns={"x": "float64", "c": "string"},
        profile={
            "columns": {
                "x": {
                    "kind": "numeric",
                    "count": 500,
                    "nulls": 0,
                    "min": -1.0,
                    "max": 12.0,
                    "quantiles": {"p05": 0.5, "p95": 9.5},
                },
                "c": {"kind": "categorical", "count": 495, "nulls": 5},
            }
        },
    )
    gate = DataValidation(min_rows=100, training_profile=TRAIN)
    assert gate.evaluate(good, champion).passed
    bad = Evaluation(
        {},
        rows=50,
        columns={"x": "string", "d": "float64"},
        profile={
            "columns": {
                "x": {
                    "kind": "numeric",
                    "count": 25,
                    "nulls": 25,
                    "min": 0.0,
                    "max": 99.0,
                    "quantiles": {"p05": 50.0, "p95": 95.0},
                },
            }
        },
    )
    result = gate.evaluate(bad, champion)
    assert not result.passed
    for fragment in (
        "fewer than the minimum 100",
        "missing",
        "c",
        "signature does not have: d",
        "x is string",
        "50% null",
        "beyond the training range",
    ):
        assert fragment in result.reasons


def test_gates_from_the_project_spec() -> None:
    specs = [GateSpec(metric="roc_auc", min=0.8), GateSpec(metric="roc_auc", vs_champion=0.005)]
    gates = gates_from_specs(specs, TRAIN)
    assert [type(g).__name__ for g in gates] == ["DataValidation", "MetricBound", "VsChampion"]
    results = evaluate_all(gates, Evaluation({"roc_auc": 0.82}, rows=10), Evaluation({"roc_auc": 0.83}))
    assert [r.passed for r in results] == [True, True, False]
    assert results[2].to_dict()["gate"] == "roc_auc vs champion (tolerance 0.005)"
