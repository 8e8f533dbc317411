"""build_report: the contract's shape, drift on the inputs and the outputs, realized and estimated performance."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from stead.client import Client
from stead.datasets import profile, reservoir
from stead.monitoring.alerts import rules_from_spec
from stead.monitoring.report import Reference, build_report, window_outputs

FEATURES = ["age", "income", "plan"]


def _data(rng: np.random.Generator, n: int, age_shift: float = 0.0) -> pd.DataFrame:
    age = rng.normal(40 + age_shift, 10, n)
    income = rng.lognormal(10, 0.5, n)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    logit = 0.08 * (age - 40) + 0.6 * (plan == "pro") - 0.2
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"age": age, "income": income, "plan": plan, "churned": churned})


def _x(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack([frame["age"], np.log(frame["income"]), frame["plan"] == "pro"])


def _log(frame: pd.DataFrame, model: LogisticRegression, labelled: float, rng: np.random.Generator) -> pd.DataFrame:
    n = len(frame)
    proba = model.predict_proba(_x(frame))
    out = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "time": pd.date_range("2024-05-01", periods=n, freq="30s", tz="UTC"),
            "version": 1,
            "route": "primary",
            "latency_ms": 1.0,
            "label": pd.Series(np.where(rng.random(n) < labelled, frame["churned"], None), dtype=object),
        }
    )
    for f in FEATURES:
        out[f"inputs.{f}"] = frame[f].to_numpy()
    out["outputs.predictions"] = proba.argmax(axis=1)
    out["outputs.probabilities"] = list(proba)
    return out


@pytest.fixture(scope="module")
def setup() -> dict[str, object]:
    rng = np.random.default_rng(5)
    train = _data(rng, 20_000)
    model = LogisticRegression(max_iter=500).fit(_x(train), train["churned"])
    sample = reservoir(train, 5_000, seed=0)
    ref = Reference(predictions=model.predict(_x(sample)), proba=model.predict_proba(_x(sample)), classes=[0, 1])
    signature = {"inputs": [{"name": f} for f in FEATURES]}
    return {"rng": rng, "train": train, "model": model, "sample": sample, "ref": ref, "signature": signature}


def test_report_has_the_contract_shape_and_is_strict_json(setup: dict) -> None:  # type: ignore[type-arg]
    rng = setup["rng"]
    window = _log(_data(rng, 3000), setup["model"], 0.1, rng)  # type: ignore[arg-type]
    report = build_report(
        profile(setup["train"]),
        setup["sample"],
        window,
        setup["signature"],
        reference=setup["ref"],  # type: ignore[arg-type]
    )
    json.dumps(report, allow_nan=False)
    assert {"window", "drift", "performance", "estimated", "alerts"} <= set(report)
    assert report["window"]["rows"] == 3000
    assert report["window"]["start"].startswith("2024-05-01T00:00:00")
    assert set(report["drift"]["columns"]) == set(FEATURES)
    assert report["drift"]["drifted"] is False and report["alerts"] == []
    perf = report["performance"]
    assert 250 < perf["labeled"] < 350 and perf["label_coverage"] == pytest.approx(perf["labeled"] / 3000)
    assert set(perf) >= {"accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"}
    assert abs(report["estimated"]["accuracy"] - perf["accuracy"]) < 0.05
    assert report["estimate_vs_realized"]["accuracy"]["error"] == pytest.approx(
        report["estimate_vs_realized"]["accuracy"]["estimated"] - perf["accuracy"]
    )
    assert report["prediction_drift"]["drifted"] is False
    hist = report["histograms"]["age"]
    assert len(hist["edges"]) == 21 and sum(hist["reference"]) == pytest.approx(1.0)
    assert report["histograms"]["plan"]["categories"][:3] == ["basic", "plus", "pro"]
    assert len(report["timeline"]) == 10 and sum(t["rows"] for t in report["timeline"]) == 3000


def test_drift_in_the_inputs_and_the_outputs_raises_the_alerts(setup: dict) -> None:  # type: ignore[type-arg]
    rng = setup["rng"]
    window = _log(_data(rng, 3000, age_shift=15), setup["model"], 0.0, rng)  # type: ignore[arg-type]
    rules = rules_from_spec({"drift": {"threshold": 0.3}, "performance": {"metric": "accuracy", "min": 0.99}})
    report = build_report(
        profile(setup["train"]),  # type: ignore[arg-type]
        setup["sample"],  # type: ignore[arg-type]
        window,
        setup["signature"],  # type: ignore[arg-type]
        reference=setup["ref"],  # type: ignore[arg-type]
        rules=rules,
    )
    assert report["drift"]["columns"]["age"]["drifted"] and not report["drift"]["columns"]["income"]["drifted"]
    assert report["prediction_drift"]["drifted"]  # older customers churn more: the predictions moved too
    rules_fired = {a["rule"] for a in report["alerts"]}
    assert rules_fired == {"drift_share", "feature_drift:age", "estimated:accuracy"}
    assert report["performance"]["labeled"] == 0 and report["performance"]["accuracy"] is None


def test_regression_report_uses_dle(setup: dict) -> None:  # type: ignore[type-arg]
    rng = np.random.default_rng(9)
    train = pd.DataFrame({"x": rng.uniform(0, 1, 6000)})
    train["y"] = 3 * train["x"] + rng.normal(0, 0.1 + train["x"])
    model = LinearRegression().fit(train[["x"]], train["y"])
    sample = reservoir(train, 4000)
    cur = pd.DataFrame({"x": rng.uniform(0.6, 1.0, 2000)})
    cur["y"] = 3 * cur["x"] + rng.normal(0, 0.1 + cur["x"])
    window = pd.DataFrame(
        {
            "time": np.arange(2000.0),
            "inputs.x": cur["x"],
            "outputs.predictions": model.predict(cur[["x"]]),
            "label": cur["y"].where(rng.random(2000) < 0.5),
        }
    )
    ref = Reference(predictions=model.predict(sample[["x"]]))
    report = build_report(profile(train), sample, window, {"inputs": [{"name": "x"}]}, reference=ref)
    assert report["task"] == "regression"
    assert abs(report["estimated"]["mae"] - report["performance"]["mae"]) / report["performance"]["mae"] < 0.1
    assert report["drift"]["columns"]["x"]["drifted"]


def test_bad_windows_give_a_report_not_a_crash(setup: dict) -> None:  # type: ignore[type-arg]
    rng = setup["rng"]
    window = _log(_data(rng, 50), setup["model"], 1.0, rng).drop(columns=["inputs.income"])  # type: ignore[arg-type]
    report = build_report(None, setup["sample"], window, setup["signature"], reference=setup["ref"])  # type: ignore[arg-type]
    assert "missing from the current data" in report["drift"]["problems"]["income"]
    empty = build_report(None, setup["sample"], window.iloc[:0], setup["signature"])  # type: ignore[arg-type]
    assert empty["window"] == {"rows": 0, "start": None, "end": None, "labeled": 0}
    json.dumps(empty, allow_nan=False)


def test_window_outputs_reads_one_column_per_class() -> None:
    frame = pd.DataFrame({"outputs.predictions": ["a"], "outputs.proba_a": [0.7], "outputs.proba_b": [0.3]})
    col, proba, classes = window_outputs(frame)
    assert col == "outputs.predictions" and proba is not None and proba.tolist() == [[0.7, 0.3]]
    assert classes == ["a", "b"]


# ---------------------------------------------------------------- on a deployment, through the store

NUMERIC = ["age", "income", "tenure"]


def _customers(rng: np.random.Generator, n: int, age_shift: float = 0.0) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "age": rng.normal(40 + age_shift, 10, n),
            "income": rng.normal(50, 12, n),
            "tenure": rng.exponential(3, n),
        }
    )
    logit = 0.1 * (frame["age"] - 40) - 0.3 * (frame["tenure"] - 3)
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def log_predictions(
    client: Client, deployment: str, frame: pd.DataFrame, model: object, start: float, sequence: int, labelled: float
) -> list[str]:
    """Write one prediction-log segment of ``model``'s answers on ``frame`` and feedback for a share of its rows."""
    from _predlog import log_segment

    predictions = model.predict(frame[NUMERIC])  # type: ignore[attr-defined]
    return log_segment(
        client,
        deployment,
        frame[NUMERIC],
        predictions,
        frame["churned"],
        start=start,
        sequence=sequence,
        labelled=labelled,
    )


def deployed(client: Client, seed: int = 0) -> tuple[object, np.random.Generator]:
    """A model trained in a run that logged its training data, deployed as ``churn-api``."""
    import stead

    rng = np.random.default_rng(seed)
    train = _customers(rng, 4000)
    with stead.start_run(experiment="churn", settings=client.settings, capture_env=False) as run:
        run.log_dataset("train", train)
        model = LogisticRegression(max_iter=1000).fit(train[NUMERIC], train["churned"])
        run.log_model(model, name="churn", input_example=train[NUMERIC].head(5))
    client.deploy("churn/1", "churn-api")
    return model, rng


def test_client_monitor_reads_the_log_and_the_training_reference(client: Client) -> None:
    model, rng = deployed(client)
    log_predictions(client, "churn-api", _customers(rng, 1000), model, 1.7e9, 1, 0.2)
    log_predictions(client, "churn-api", _customers(rng, 1500, age_shift=12), model, 1.7e9 + 20_000, 2, 0.2)
    report = client.monitor("churn-api", window=1500)
    json.dumps(report, allow_nan=False)
    assert (report["deployment"], report["model"], report["version"]) == ("churn-api", "churn", 1)
    assert report["window"]["rows"] == 1500 and report["window"]["start"].startswith("2023-11-15T03:46:40")
    assert report["reference"]["rows"] == 4000 and report["reference"]["sample_rows"] == 4000
    assert report["drift"]["columns"]["age"]["drifted"] and not report["drift"]["columns"]["income"]["drifted"]
    assert report["prediction_drift"]["drifted"]
    perf = report["performance"]
    assert 250 < perf["labeled"] < 350
    assert abs(report["estimated"]["accuracy"] - perf["accuracy"]) < 0.06
    assert report["notes"] == []
    assert {a["rule"] for a in report["alerts"]} == {"drift_share", "feature_drift:age"}
    assert client.list_alerts() == [] and client.monitor_reports("churn-api") == []  # on demand: nothing stored
    everything = client.monitor("churn-api", window=5000)
    assert everything["window"]["rows"] == 2500


def test_monitor_without_a_training_dataset_says_how_to_fix_it(client: Client) -> None:
    import stead
    from stead.errors import NotFoundError

    rng = np.random.default_rng(1)
    train = _customers(rng, 200)
    with stead.start_run(experiment="churn", settings=client.settings, capture_env=False) as run:
        model = LogisticRegression().fit(train[NUMERIC], train["churned"])
        run.log_model(model, name="churn", input_example=train[NUMERIC].head(5))
    client.deploy("churn/1", "churn-api")
    with pytest.raises(NotFoundError, match="logged no dataset of role 'train'"):
        client.monitor("churn-api")
