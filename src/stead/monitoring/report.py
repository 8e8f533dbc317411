"""(layer: monitoring; pure, no I/O) One monitor report: a window of the prediction log against the reference.

:func:`build_report` returns a JSON-safe dict, the one ``stead monitor --json`` prints::

    {"window": {"rows", "start", "end", "labeled"},
     "drift": <stead.monitoring.drift(...).to_dict()>,           # per-feature and dataset drift
     "prediction_drift": <one DriftResult dict> | None,          # outputs now vs the reference's predictions
     "performance": {metric: value, "labeled": n, "label_coverage": share},   # realized, on labelled rows
     "estimated": {metric: value},                              # CBPE / DLE, on every row of the window
     "estimate_vs_realized": {metric: {"estimated", "realized", "error"}},  # on the labelled rows
     "histograms": {feature: {...}},                             # reference vs current, for charts
     "timeline": [{"start", "end", "rows", "labeled", "label_coverage", "realized", "estimated"}, ...],
     "alerts": [<firing decisions>], "notes": [...]}

The reference is the model's training data: its **profile** (histograms over every row, for the charts) and its
reservoir **sample** (the rows the drift statistics are computed on, so tests are exact). The window holds the
prediction log's columns (``inputs.<feature>``, ``outputs.<name>``, ``label``, ``time``); it is read column by
column with numpy and pandas, never row by row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from stead.monitoring.alerts import Rule, evaluate, firing, rules_from_spec
from stead.monitoring.drift import drift
from stead.monitoring.estimate import CBPE, DLE, estimate_error
from stead.monitoring.performance import Task, classification_metrics, regression_metrics
from stead.monitoring.stats import column_kind

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

__all__ = ["Reference", "build_report", "feature_names", "window_outputs"]

PREDICTION_COLUMNS = ("outputs.predictions", "outputs.prediction", "outputs.output", "outputs.0")
PROBA_PREFIXES = ("outputs.probabilities", "outputs.proba", "outputs.predict_proba")


@dataclass
class Reference:
    """The model's outputs on the reference sample's rows: what prediction drift and the estimators need.

    ``predictions`` (one per sample row), ``proba`` (``(n, k)`` in the order of ``classes``) and ``labels``
    (the target column of the sample) are each optional; what is missing turns the matching part off.
    """

    predictions: Any = None
    proba: Any = None
    labels: Any = None
    classes: Sequence[Any] | None = None


def feature_names(signature: Mapping[str, Any] | None, reference: pd.DataFrame, target: str | None) -> list[str]:
    """The model's input columns: the signature's, else the reference's minus the target.

    >>> import pandas as pd
    >>> feature_names({"inputs": [{"name": "a"}, {"name": "b"}]}, pd.DataFrame({"a": [1], "b": [2], "y": [0]}), None)
    ['a', 'b']
    >>> feature_names(None, pd.DataFrame({"a": [1], "y": [0]}), "y")
    ['a']
    """
    inputs = (signature or {}).get("inputs") or []
    if inputs:
        return [str(c["name"]) for c in inputs]
    return [str(c) for c in reference.columns if c != target]


def window_outputs(window: pd.DataFrame) -> tuple[str | None, npt.NDArray[np.float64] | None, list[str] | None]:
    """The prediction column of a prediction-log frame, its class probabilities and their class names.

    Probabilities are read from ``outputs.probabilities`` holding one list per row, or from one column per class
    (``outputs.probabilities.<class>``, ``outputs.proba_<class>``…).

    >>> import pandas as pd
    >>> col, proba, classes = window_outputs(pd.DataFrame({"outputs.predictions": [1, 0],
    ...                                                    "outputs.probabilities": [[0.2, 0.8], [0.7, 0.3]]}))
    >>> col, proba.tolist(), classes
    ('outputs.predictions', [[0.2, 0.8], [0.7, 0.3]], None)
    """
    prediction = next((c for c in PREDICTION_COLUMNS if c in window.columns), None)
    if prediction is None:
        rest = [c for c in window.columns if str(c).startswith("outputs.") and not str(c).startswith(PROBA_PREFIXES)]
        prediction = str(rest[0]) if len(rest) == 1 else None
    for prefix in PROBA_PREFIXES:
        if prefix in window.columns:
            col = window[prefix]
            if len(col) and col.notna().all():
                try:
                    matrix = np.vstack(list(col.to_numpy())).astype(np.float64)
                except (TypeError, ValueError):
                    continue
                if matrix.shape[0] == len(col):
                    return prediction, matrix, None
        per_class = [c for c in window.columns if str(c).startswith((prefix + ".", prefix + "_"))]
        if per_class:
            matrix = window[per_class].to_numpy(dtype=np.float64, na_value=np.nan)
            return prediction, matrix, [str(c)[len(prefix) + 1 :] for c in per_class]
    return prediction, None, None


def _current(window: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    import pandas as pd

    data = {f: window[f"inputs.{f}"] for f in features if f"inputs.{f}" in window.columns}
    frame = pd.DataFrame(data, index=window.index)
    return frame.reset_index(drop=True)


def _shares(counts: npt.NDArray[Any]) -> list[float]:
    total = float(np.sum(counts))
    return [float(c) / total if total else 0.0 for c in counts]


def _histogram(
    name: str, profile: Mapping[str, Any] | None, ref: pd.Series[Any], cur: pd.Series[Any]
) -> dict[str, Any]:
    """Reference vs current shares over the profile's bins (numbers) or its top categories."""
    kind = column_kind(ref) if column_kind(ref) != "empty" else column_kind(cur)
    prof = profile or {}
    if kind == "numeric":
        hist = prof.get("histogram") or {}
        edges = np.asarray(hist.get("edges") or [], dtype=np.float64)
        ref_counts: npt.NDArray[Any]
        ref_values = ref.to_numpy(dtype=np.float64, na_value=np.nan)
        ref_values = ref_values[np.isfinite(ref_values)]
        if len(edges) < 2:
            if not len(ref_values):
                return {"kind": kind, "edges": [], "reference": [], "current": [], "below": 0.0, "above": 0.0}
            lo, hi = float(ref_values.min()), float(ref_values.max())
            edges = np.linspace(lo - 0.5, hi + 0.5, 21) if lo == hi else np.linspace(lo, hi, 21)
            ref_counts = np.histogram(ref_values, edges)[0].astype(np.float64)
        else:
            ref_counts = np.asarray(hist.get("counts"), dtype=np.float64)
        values = cur.to_numpy(dtype=np.float64, na_value=np.nan) if cur.dtype.kind in "biuf" else _as_float(cur)
        values = values[np.isfinite(values)]
        counts = np.histogram(values, edges)[0]
        n = max(len(values), 1)
        return {
            "kind": kind,
            "edges": [float(e) for e in edges],
            "reference": _shares(ref_counts),
            "current": [float(c) / n for c in counts] if len(values) else [0.0] * len(counts),
            "below": float(np.sum(values < edges[0])) / n,
            "above": float(np.sum(values > edges[-1])) / n,
        }
    top = [str(item["value"]) for item in prof.get("top") or []]
    ref_text = ref.dropna().astype(str)
    if top:
        ref_known = np.asarray([item["count"] for item in prof["top"]], dtype=np.float64)
        ref_other = float(prof.get("other") or 0)
    else:
        freq = ref_text.value_counts()
        top = [str(v) for v in freq.index[:20]]
        ref_known = np.asarray(freq.to_numpy()[:20], dtype=np.float64)
        ref_other = float(freq.to_numpy()[20:].sum())
    cur_freq = cur.dropna().astype(str).value_counts()
    cur_known = cur_freq.reindex(top, fill_value=0).to_numpy(dtype=np.float64)
    cur_other = float(cur_freq.sum() - cur_known.sum())
    return {
        "kind": "categorical",
        "categories": [*top, "(other)"],
        "reference": _shares(np.append(ref_known, ref_other)),
        "current": _shares(np.append(cur_known, cur_other)),
    }


def _as_float(series: pd.Series[Any]) -> npt.NDArray[np.float64]:
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _labelled(labels: pd.Series[Any]) -> npt.NDArray[np.bool_]:
    import pandas as pd

    mask: npt.NDArray[np.bool_] = labels.notna().to_numpy(dtype=bool, copy=True)
    if labels.dtype.kind == "f":
        mask &= np.isfinite(labels.to_numpy(dtype=np.float64, na_value=np.nan))
    elif labels.dtype == object:
        mask &= ~pd.isna(labels.to_numpy()).astype(bool)
    return mask


def _infer_task(window: pd.DataFrame, prediction: str | None, proba: Any, reference: Reference) -> Task:
    if proba is not None or reference.proba is not None:
        return "classification"
    values = window[prediction] if prediction and prediction in window else None
    if values is not None and values.dtype.kind == "f":
        finite = values.dropna().to_numpy(dtype=np.float64)
        if len(finite) and not np.allclose(finite, np.round(finite)):
            return "regression"
        return "regression" if len(np.unique(finite)) > 20 else "classification"
    return "classification"


def _metrics(task: Task, y: Any, pred: Any, proba: Any, classes: Sequence[Any] | None) -> dict[str, float | None]:
    if task == "classification":
        return classification_metrics(y, pred, proba, classes)
    return regression_metrics(y, pred)


def _json(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        return _json(value.item())
    return value


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    return str(iso()) if callable(iso) else str(value)


def build_report(
    reference_profile: Mapping[str, Any] | None,
    reference_sample: pd.DataFrame,
    window: pd.DataFrame,
    signature: Mapping[str, Any] | None = None,
    *,
    threshold: float = 0.3,
    method: Any = "auto",
    rules: Sequence[Rule] | None = None,
    task: Task | None = None,
    target: str | None = None,
    reference: Reference | None = None,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    chunks: int = 10,
) -> dict[str, Any]:
    """Drift, prediction drift, realized and estimated performance and firing alerts of one window.

    Parameters
    ----------
    reference_profile
        The training dataset's profile (``stead.datasets.profile``): its histograms are the reference bars.
    reference_sample
        The training dataset's reservoir sample, features (and the target) as columns.
    window
        Prediction-log rows (``inputs.<feature>``, ``outputs.<name>``, ``label``, ``time``), oldest first.
    signature
        The model version's signature; its ``inputs`` name the features.
    threshold, method
        The dataset-drift share threshold and the drift method (``stead.yaml``'s ``monitor.drift``).
    rules
        Alert rules (default: :func:`stead.monitoring.alerts.rules_from_spec` with this threshold).
    task, target
        ``classification`` or ``regression`` (inferred when left out) and the target column of the sample.
    reference
        The model's predictions and probabilities on the sample's rows (prediction drift, CBPE, DLE).
    proba, classes
        The window's class probabilities when the log does not hold them, and their class order.
    chunks
        The window is cut into this many parts of equal rows for the performance timeline.
    """
    import pandas as pd

    ref_info = reference or Reference()
    features = feature_names(signature, reference_sample, target)
    if target is None:
        rest = [c for c in reference_sample.columns if c not in features]
        target = str(rest[0]) if len(rest) == 1 else None
    if ref_info.labels is None and target is not None and target in reference_sample:
        ref_info.labels = reference_sample[target].to_numpy()
    ref_features = reference_sample[[f for f in features if f in reference_sample.columns]].reset_index(drop=True)
    current = _current(window, features)
    notes: list[str] = []

    # --- drift: exact statistics on the reference sample against the window's inputs
    report_drift = drift(ref_features, current, columns=features, method=method, threshold=threshold)

    # --- outputs
    prediction, log_proba, log_classes = window_outputs(window)
    proba_m = log_proba if proba is None else np.asarray(proba, dtype=np.float64)
    classes = classes if classes is not None else (log_classes or ref_info.classes)
    task = task or _infer_task(window, prediction, proba_m, ref_info)
    preds = window[prediction].to_numpy() if prediction else None

    prediction_drift: dict[str, Any] | None = None
    if preds is not None and ref_info.predictions is not None and len(window):
        ref_pred, cur_pred = np.asarray(ref_info.predictions), preds
        if task == "classification":
            ref_pred, cur_pred = ref_pred.astype(str), cur_pred.astype(str)
        pd_report = drift({"prediction": ref_pred}, {"prediction": cur_pred}, threshold=threshold)
        if "prediction" in pd_report.columns:
            prediction_drift = pd_report.columns["prediction"].to_dict()
    elif preds is None:
        notes.append("the prediction log has no prediction column: no prediction drift or performance")

    # --- realized performance on the labelled rows
    labels = window["label"] if "label" in window.columns else pd.Series([None] * len(window), dtype=object)
    labelled = _labelled(labels)
    n_labeled = int(labelled.sum())
    performance: dict[str, Any] = {
        "labeled": n_labeled,
        "label_coverage": n_labeled / len(window) if len(window) else 0.0,
    }
    y = labels.to_numpy()
    if preds is not None:
        performance.update(
            _metrics(task, y[labelled], preds[labelled], None if proba_m is None else proba_m[labelled], classes)
        )

    # --- estimated performance
    estimated: dict[str, Any] = {}
    estimator: CBPE | DLE | None = None
    try:
        if (
            task == "classification"
            and proba_m is not None
            and ref_info.proba is not None
            and ref_info.labels is not None
        ):
            estimator = CBPE().fit(ref_info.proba, ref_info.labels, classes)
        elif task == "regression" and ref_info.predictions is not None and ref_info.labels is not None:
            estimator = DLE().fit(ref_features, ref_info.predictions, ref_info.labels)
        else:
            notes.append(
                "no performance estimate: it needs the model's outputs on the reference and its labels"
                + (" and the window's probabilities" if task == "classification" else "")
            )
    except Exception as exc:  # an estimator that cannot fit must not sink the report
        notes.append(f"no performance estimate: {exc}")
        estimator = None

    def estimate(rows: npt.NDArray[Any]) -> dict[str, float | None]:
        if estimator is None or not len(rows):
            return {}
        if isinstance(estimator, CBPE):
            assert proba_m is not None
            return estimator.estimate(proba_m[rows], None if preds is None else preds[rows])
        assert preds is not None
        return estimator.estimate(current.iloc[rows], preds[rows])

    everything = np.arange(len(window))
    estimated = estimate(everything)
    vs_realized = estimate_error(estimate(np.flatnonzero(labelled)), performance) if n_labeled else {}

    # --- the timeline: equal parts of the window, realized and estimated
    timeline: list[dict[str, Any]] = []
    times = window["time"].to_numpy() if "time" in window.columns else everything
    if len(window) and preds is not None:
        for rows in np.array_split(everything, min(max(chunks, 1), len(window))):
            mask = labelled[rows]
            picked = rows[mask]
            timeline.append(
                {
                    "start": _iso(times[rows[0]]),
                    "end": _iso(times[rows[-1]]),
                    "rows": len(rows),
                    "labeled": int(mask.sum()),
                    "label_coverage": float(mask.mean()),
                    "realized": _metrics(
                        task, y[picked], preds[picked], None if proba_m is None else proba_m[picked], classes
                    )
                    if len(picked)
                    else {},
                    "estimated": estimate(rows),
                }
            )

    # --- histograms for the charts: the profile's bins (every training row) against the window
    columns_profile = (reference_profile or {}).get("columns") or {}
    histograms = {
        f: _histogram(f, columns_profile.get(f), ref_features[f], current[f])
        for f in features
        if f in ref_features.columns and f in current.columns
    }

    report: dict[str, Any] = {
        "window": {
            "rows": len(window),
            "start": _iso(times[0]) if len(window) else None,
            "end": _iso(times[-1]) if len(window) else None,
            "labeled": n_labeled,
        },
        "task": task,
        "reference": {
            "rows": (reference_profile or {}).get("rows", len(reference_sample)),
            "sample_rows": len(reference_sample),
        },
        "drift": report_drift.to_dict(),
        "prediction_drift": prediction_drift,
        "performance": performance,
        "estimated": estimated,
        "estimate_vs_realized": vs_realized,
        "histograms": histograms,
        "timeline": timeline,
        "notes": notes,
    }
    report = _json(report)
    decisions = evaluate(report, rules if rules is not None else rules_from_spec({"drift": {"threshold": threshold}}))
    report["alerts"] = firing(decisions)
    return report
