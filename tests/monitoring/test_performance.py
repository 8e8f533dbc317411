"""Realized performance with delayed labels: metrics equal scikit-learn's, coverage is reported, late labels land
in the window of their prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from stead.errors import ValidationError
from stead.monitoring.performance import (
    classification_metrics,
    join_labels,
    performance,
    regression_metrics,
    window_ids,
)


def test_binary_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.6 + rng.normal(0.2, 0.25, 500), 0, 1)
    pred = (p >= 0.5).astype(int)
    m = classification_metrics(y, pred, p)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(np.column_stack([1 - p, p]), 1e-15, 1)), rel=1e-6)


def test_multiclass_metrics_are_macro_averaged() -> None:
    rng = np.random.default_rng(2)
    y = rng.choice(["a", "b", "c"], 600)
    proba = rng.dirichlet([1, 1, 1], 600)
    proba[np.arange(600), pd.Series(y).map({"a": 0, "b": 1, "c": 2}).to_numpy()] += 0.8
    proba /= proba.sum(axis=1, keepdims=True)
    pred = np.array(["a", "b", "c"])[proba.argmax(axis=1)]
    m = classification_metrics(y, pred, proba, classes=["a", "b", "c"])
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, average="macro"))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba), rel=1e-6)


def test_labels_from_json_match_numeric_predictions() -> None:
    # feedback arrives as JSON (ints, or strings of digits), the model predicted floats
    m = classification_metrics([1, 0, "1"], np.array([1.0, 0.0, 0.0]))
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(10, 3, 400)
    pred = y + rng.normal(0, 1, 400)
    m = regression_metrics(y, pred)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert m["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))


def test_no_labels_gives_none_not_a_crash() -> None:
    assert set(classification_metrics([], []).values()) == {None}
    assert set(regression_metrics([], []).values()) == {None}
    one_class = classification_metrics([1, 1], [1, 0], [0.9, 0.4])
    assert one_class["roc_auc"] is None and one_class["accuracy"] == 0.5


def _log(n: int, start: str = "2024-03-04", every: str = "1min", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.9, y, 1 - y)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "time": pd.date_range(start, periods=n, freq=every, tz="UTC"),
            "label": pd.Series([None] * n, dtype=object),
            "outputs.predictions": pred,
            "truth": y,
        }
    )


def test_a_window_with_three_percent_labels_says_so() -> None:
    log = _log(1000)
    labelled = log.sample(30, random_state=0)
    log = join_labels(log, dict(zip(labelled["request_id"], labelled["truth"].astype(int), strict=True)))
    [w] = performance(log, "classification")
    assert (w["rows"], w["labeled"], w["label_coverage"]) == (1000, 30, 0.03)
    assert w["accuracy"] == pytest.approx(float((labelled["truth"] == labelled["outputs.predictions"]).mean()))


def test_labels_arriving_days_later_land_in_the_window_of_their_prediction() -> None:
    # three days of predictions, one per 10 minutes; the model is right on day 1, wrong on day 2, half on day 3
    log = _log(3 * 144, every="10min")
    day = log["time"].dt.day - log["time"].dt.day.min()
    truth = np.where(day == 0, log["outputs.predictions"], 1 - log["outputs.predictions"])
    truth[(day == 2).to_numpy() & (np.arange(len(log)) % 2 == 0)] = log["outputs.predictions"][
        (day == 2).to_numpy() & (np.arange(len(log)) % 2 == 0)
    ]
    # on day 3 only day 3's labels are in; day 1's and day 2's arrive afterwards, in one late batch, shuffled
    now = join_labels(log, dict(zip(log["request_id"][day == 2], truth[day == 2], strict=True)))
    before = performance(now, "classification", window=86_400, by="seconds")
    assert [w["labeled"] for w in before] == [0, 0, 144]
    late = log[day < 2].sample(frac=1.0, random_state=1)
    later = join_labels(now, dict(zip(late["request_id"], truth[late.index], strict=True)))
    after = performance(later, "classification", window=86_400, by="seconds")
    assert [w["labeled"] for w in after] == [144, 144, 144]
    assert [w["accuracy"] for w in after] == [1.0, 0.0, 0.5]
    assert after[0]["start"].startswith("2024-03-04") and after[1]["start"].startswith("2024-03-05")


def test_row_windows_keep_the_newest_window_full() -> None:
    assert window_ids(np.arange(7), 3).tolist() == [0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(ValidationError, match="window must be positive"):
        window_ids(np.arange(3), 0)


def test_regression_windows() -> None:
    log = pd.DataFrame(
        {"time": np.arange(6.0), "outputs.predictions": [1.0, 2, 3, 4, 5, 6], "label": [1.0, 2, 3, 5, None, 8]}
    )
    first, second = performance(log, "regression", window=3)
    assert first["mae"] == 0.0 and second["labeled"] == 2 and second["mae"] == pytest.approx(1.5)


def test_missing_column_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match=r"no 'outputs\.predictions' column"):
        performance(pd.DataFrame({"label": [1]}), "classification")
