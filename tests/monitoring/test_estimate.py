"""Estimated performance: CBPE for classifiers (the issue's acceptance test) and DLE for regressors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression, LogisticRegression

from stead.errors import ValidationError
from stead.monitoring.estimate import CBPE, DLE, estimate_error, expected_auc
from stead.monitoring.performance import classification_metrics


def _logistic_data(rng: np.random.Generator, n: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(0, 1, (n, 3))
    x[:, 0] += shift  # covariate shift only: P(y | x) is the same everywhere (no concept drift)
    logit = 1.5 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


@pytest.mark.parametrize("shift", [pytest.param(0.0, id="same-inputs"), pytest.param(0.8, id="covariate-shift")])
@pytest.mark.parametrize("calibration", ["isotonic", "platt"])
def test_cbpe_accuracy_is_within_002_of_realized_on_5000_predictions(shift: float, calibration: str) -> None:
    rng = np.random.default_rng(42)
    x_train, y_train = _logistic_data(rng, 5000)
    model = LogisticRegression().fit(x_train, y_train)  # well specified, hence calibrated
    x_ref, y_ref = _logistic_data(rng, 5000)
    cbpe = CBPE(calibration=calibration).fit(model.predict_proba(x_ref), y_ref)  # type: ignore[arg-type]
    x_cur, y_cur = _logistic_data(rng, 5000, shift)
    proba, pred = model.predict_proba(x_cur), model.predict(x_cur)
    est = cbpe.estimate(proba, pred)
    real = classification_metrics(y_cur, pred, proba)
    assert est["accuracy"] is not None and real["accuracy"] is not None
    assert abs(est["accuracy"] - real["accuracy"]) < 0.02
    for metric in ("precision", "recall", "f1", "roc_auc"):
        assert abs(est[metric] - real[metric]) < 0.03, metric  # type: ignore[operator]


def test_cbpe_corrects_an_overconfident_model() -> None:
    rng = np.random.default_rng(7)
    p_true = rng.beta(2, 2, 8000)
    y = (rng.random(8000) < p_true).astype(int)
    overconfident = 1 / (1 + np.exp(-3 * np.log(p_true / (1 - p_true))))  # pushed towards 0 and 1
    naive = CBPE(calibration="none").fit(overconfident[:4000], y[:4000]).estimate(overconfident[4000:])
    fitted = CBPE().fit(overconfident[:4000], y[:4000]).estimate(overconfident[4000:])
    real = float(np.mean(y[4000:] == (overconfident[4000:] >= 0.5)))
    assert abs(fitted["accuracy"] - real) < 0.02  # type: ignore[operator]
    assert abs(naive["accuracy"] - real) > 0.1  # type: ignore[operator]


def test_cbpe_multiclass_with_string_classes() -> None:
    rng = np.random.default_rng(3)
    n = 6000
    x = rng.normal(0, 1, (n, 2))
    scores = np.column_stack([x[:, 0], x[:, 1], -x[:, 0] - x[:, 1]])
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    classes = np.array(["ant", "bee", "cat"])
    y = classes[(rng.random(n)[:, None] > p.cumsum(axis=1)).sum(axis=1)]
    cbpe = CBPE().fit(p[:3000], y[:3000], classes=list(classes))
    pred = classes[p[3000:].argmax(axis=1)]
    est = cbpe.estimate(p[3000:], pred)
    real = classification_metrics(y[3000:], pred, p[3000:], classes=list(classes))
    assert cbpe.classes_ == ["ant", "bee", "cat"]
    assert abs(est["accuracy"] - real["accuracy"]) < 0.02  # type: ignore[operator]
    assert abs(est["f1"] - real["f1"]) < 0.03  # type: ignore[operator]
    assert abs(est["roc_auc"] - real["roc_auc"]) < 0.03  # type: ignore[operator]


def test_expected_auc_with_known_labels_is_the_roc_auc() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(y * 0.3 + rng.random(300), 2)  # with ties
    assert expected_auc(s, y) == pytest.approx(skm.roc_auc_score(y, s))
    assert expected_auc(s, np.ones(300)) is None


def test_cbpe_bad_input_says_what_to_do() -> None:
    with pytest.raises(ValidationError, match="at least 20 labelled reference rows"):
        CBPE().fit([0.2, 0.7], [0, 1])
    with pytest.raises(ValidationError, match="not fitted yet"):
        CBPE().estimate([0.5])
    with pytest.raises(ValidationError, match="valid options are: isotonic, platt, none"):
        CBPE(calibration="beta")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="3 probability columns but 2 classes"):
        CBPE().fit(np.full((30, 3), 1 / 3), [0, 1] * 15)


def test_dle_follows_errors_that_grow_where_the_inputs_moved() -> None:
    rng = np.random.default_rng(11)

    def make(n: int, low: float, high: float) -> tuple[pd.DataFrame, np.ndarray]:
        x = pd.DataFrame({"x": rng.uniform(low, high, n), "kind": rng.choice(["a", "b"], n)})
        y = 3 * x["x"] + (x["kind"] == "b") + rng.normal(0, 0.2 + x["x"], n)
        return x, y.to_numpy()

    x_train, y_train = make(5000, 0, 1)
    encoded = lambda x: np.column_stack([x["x"], x["kind"] == "b"])  # noqa: E731
    model = LinearRegression().fit(encoded(x_train), y_train)
    x_ref, y_ref = make(5000, 0, 1)
    dle = DLE().fit(x_ref, model.predict(encoded(x_ref)), y_ref)
    x_cur, y_cur = make(5000, 0.7, 1.0)  # into the noisy region: the errors grow
    pred = model.predict(encoded(x_cur))
    est = dle.estimate(x_cur, pred)
    real_mae = skm.mean_absolute_error(y_cur, pred)
    real_rmse = np.sqrt(skm.mean_squared_error(y_cur, pred))
    ref_mae = skm.mean_absolute_error(y_ref, model.predict(encoded(x_ref)))
    assert abs(est["mae"] - real_mae) / real_mae < 0.05  # type: ignore[operator]
    assert abs(est["rmse"] - real_rmse) / real_rmse < 0.05  # type: ignore[operator]
    assert real_mae > 1.3 * ref_mae  # the estimate saw a change that the reference error alone would miss
    # an unseen category and a missing column do not crash
    odd = x_cur.assign(kind="z").drop(columns=[])
    assert dle.estimate(odd, pred)["mae"] is not None


def test_estimate_error_pairs_estimates_with_realized_values() -> None:
    out = estimate_error({"accuracy": 0.8, "roc_auc": 0.9}, {"accuracy": 0.75, "roc_auc": None, "labeled": 10})
    assert out == {"accuracy": {"estimated": 0.8, "realized": 0.75, "error": pytest.approx(0.05)}}
