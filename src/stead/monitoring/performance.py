"""(layer: monitoring; pure, no I/O) Realized performance on predictions whose labels arrived, per window.

Labels arrive late (feedback days after the prediction), so windows are cut on the **prediction** time and the
labels are joined by ``request_id``: a label that arrives on Friday for a Monday prediction counts in Monday's
window the next time the windows are computed. Every window says how many of its rows have a label
(``labeled``) and which share that is (``label_coverage``), so a metric computed on 3% of a window says so.

Metric names are the gate names of ``stead.yaml``:

==============  ====================================================================================
task            metrics
==============  ====================================================================================
classification  ``accuracy``, ``precision``, ``recall``, ``f1``, ``roc_auc``, ``log_loss``
regression      ``mae``, ``rmse``, ``r2``, ``mape``
==============  ====================================================================================

For two classes, ``precision``, ``recall`` and ``f1`` are those of the positive class, the last of the sorted
classes (``1`` for 0/1 labels, ``True`` for booleans), as scikit-learn does; with more classes they are
macro-averaged, and ``roc_auc`` is the macro one-vs-rest AUC. ``roc_auc`` and ``log_loss`` need the predicted
probabilities; a metric that cannot be computed (no labels, one class only, no probabilities) is ``None``.
scikit-learn is imported only when a metric is computed (``pip install 'stead[sklearn]'``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from stead.errors import ValidationError, require

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "Task",
    "align_labels",
    "classification_metrics",
    "epoch_seconds",
    "join_labels",
    "performance",
    "regression_metrics",
    "window_ids",
]

Task = Literal["classification", "regression"]
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")


def _finite(value: Any) -> float | None:
    out = float(value)
    return out if math.isfinite(out) else None


def align_labels(*arrays: Any) -> list[npt.NDArray[Any]]:
    """Bring labels of mixed origins (JSON feedback, model outputs) to one comparable type.

    When every value of every array reads as a number they become floats; otherwise they become text. Booleans
    count as numbers (``True`` is ``1.0``).

    >>> [a.tolist() for a in align_labels([1, 0], np.array([1.0, 0.0]))]
    [[1.0, 0.0], [1.0, 0.0]]
    >>> [a.tolist() for a in align_labels(["yes", "no"], [1, 0])]
    [['yes', 'no'], ['1', '0']]
    """
    out: list[npt.NDArray[Any]] = []
    try:
        for values in arrays:
            arr = np.asarray(values)
            if arr.dtype.kind in "biuf":
                out.append(arr.astype(np.float64))
            elif arr.dtype.kind in "OUS":
                out.append(np.asarray([float(v) for v in arr.tolist()], dtype=np.float64) if arr.size else arr)
            else:
                raise TypeError(arr.dtype)
        return out
    except (TypeError, ValueError):
        return [np.asarray([str(v) for v in np.asarray(values).tolist()], dtype=object) for values in arrays]


def _classes(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any], classes: npt.NDArray[Any] | None) -> list[Any]:
    if classes is not None and len(classes):
        return list(classes.tolist())
    return sorted(set(y_true.tolist()) | set(y_pred.tolist()))


def _proba_matrix(proba: Any, n_classes: int) -> npt.NDArray[np.float64] | None:
    if proba is None:
        return None
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim == 1:
        if n_classes != 2:
            return None
        arr = np.column_stack([1.0 - arr, arr])
    if arr.shape[1] != n_classes:
        return None
    return arr


def classification_metrics(
    y_true: Any, y_pred: Any, proba: Any = None, classes: Sequence[Any] | None = None
) -> dict[str, float | None]:
    """Accuracy, precision, recall, F1, ROC AUC and log loss of labelled predictions.

    ``proba`` is an ``(n, k)`` array of class probabilities in the order of ``classes`` (the sorted classes
    when not given), or for two classes the probability of the positive class. Metrics that cannot be computed
    are ``None``.

    >>> m = classification_metrics([1, 0, 1, 1], [1, 0, 0, 1], proba=[0.9, 0.2, 0.4, 0.8])
    >>> m["accuracy"], m["recall"], m["roc_auc"]
    (0.75, 0.6666666666666666, 1.0)
    """
    if classes is not None and len(classes):
        y_true_a, y_pred_a, classes_a = align_labels(y_true, y_pred, list(classes))
    else:
        (y_true_a, y_pred_a), classes_a = align_labels(y_true, y_pred), None
    names = dict.fromkeys(CLASSIFICATION_METRICS)
    if len(y_true_a) != len(y_pred_a):
        raise ValidationError(f"{len(y_true_a)} labels but {len(y_pred_a)} predictions")
    if not len(y_true_a):
        return names
    metrics = require("sklearn.metrics", "sklearn")
    labels = _classes(y_true_a, y_pred_a, classes_a)
    out: dict[str, float | None] = names
    out["accuracy"] = _finite(np.mean(y_true_a == y_pred_a))
    if len(labels) <= 2:
        kw: dict[str, Any] = {"average": "binary", "pos_label": labels[-1], "labels": labels}
    else:
        kw = {"average": "macro", "labels": labels}
    out["precision"] = _finite(metrics.precision_score(y_true_a, y_pred_a, zero_division=0, **kw))
    out["recall"] = _finite(metrics.recall_score(y_true_a, y_pred_a, zero_division=0, **kw))
    out["f1"] = _finite(metrics.f1_score(y_true_a, y_pred_a, zero_division=0, **kw))
    matrix = _proba_matrix(proba, max(len(labels), 2))
    if matrix is not None and len(matrix) == len(y_true_a):
        present = set(y_true_a.tolist())
        if len(present) >= 2:
            try:
                if matrix.shape[1] == 2:
                    out["roc_auc"] = _finite(metrics.roc_auc_score(y_true_a == labels[-1], matrix[:, 1]))
                elif present == set(labels):
                    out["roc_auc"] = _finite(
                        metrics.roc_auc_score(y_true_a, matrix, multi_class="ovr", average="macro", labels=labels)
                    )
            except ValueError:
                out["roc_auc"] = None
        if present <= set(labels):
            clipped = np.clip(matrix, 1e-15, 1.0)
            clipped = clipped / clipped.sum(axis=1, keepdims=True)
            out["log_loss"] = _finite(metrics.log_loss(y_true_a, clipped, labels=labels))
    return out


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float | None]:
    """MAE, RMSE, R² and MAPE (a share, not a percent, as scikit-learn computes it).

    >>> m = regression_metrics([1.0, 2.0, 4.0], [1.0, 3.0, 3.0])
    >>> round(m["mae"], 4), round(m["rmse"], 4), round(m["mape"], 4)
    (0.6667, 0.8165, 0.25)
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if len(t) != len(p):
        raise ValidationError(f"{len(t)} labels but {len(p)} predictions")
    out: dict[str, float | None] = dict.fromkeys(REGRESSION_METRICS)
    if not len(t):
        return out
    err = p - t
    out["mae"] = _finite(np.mean(np.abs(err)))
    out["rmse"] = _finite(math.sqrt(float(np.mean(err**2))))
    total = float(np.sum((t - t.mean()) ** 2))
    out["r2"] = _finite(1.0 - float(np.sum(err**2)) / total) if total > 0 and len(t) > 1 else None
    eps = np.finfo(np.float64).eps  # scikit-learn's guard against dividing by zero
    out["mape"] = _finite(np.mean(np.abs(err) / np.maximum(np.abs(t), eps)))
    return out


def join_labels(predictions: pd.DataFrame, labels: Mapping[str, Any] | pd.DataFrame) -> pd.DataFrame:
    """``predictions`` with its ``label`` column filled from ``labels`` by ``request_id``.

    ``labels`` is ``{request_id: label}`` or a frame with ``request_id`` and ``label`` (the last label of a
    request wins). Labels of unknown request ids are ignored; rows without a label keep the one they had.
    """
    import pandas as pd

    if isinstance(labels, pd.DataFrame):
        mapping = dict(zip(labels["request_id"], labels["label"], strict=True))
    else:
        mapping = dict(labels)
    out = predictions.copy()
    incoming = out["request_id"].map(pd.Series(mapping, dtype=object)) if mapping else None
    if "label" not in out:
        out["label"] = None
    if incoming is not None:
        out["label"] = incoming.where(incoming.notna(), out["label"])
    return out


def epoch_seconds(values: Any) -> npt.NDArray[np.float64]:
    """Seconds since the epoch of numbers (kept), datetimes or ISO-8601 strings (read as UTC when naive).

    >>> epoch_seconds(np.array(["1970-01-01T00:01:00+00:00"], dtype=object)).tolist()
    [60.0]
    """
    import pandas as pd

    arr = np.asarray(values)
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64)
    stamps = pd.to_datetime(pd.Series(arr), utc=True)
    return stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9


def window_ids(times: Any, window: int | float | None, *, by: Literal["rows", "seconds"] = "rows") -> npt.NDArray[Any]:
    """The window number of each row, rows given in time order.

    ``by="rows"``: consecutive chunks of ``window`` rows, the **last** chunk full (so the newest window is
    complete; the oldest may be short). ``by="seconds"``: time buckets of ``window`` seconds aligned on the epoch.
    ``window=None``: one window.

    >>> window_ids(np.arange(5), 2).tolist()
    [0, 1, 1, 2, 2]
    >>> window_ids(np.array([0.0, 30.0, 3600.0, 3700.0]), 3600, by="seconds").tolist()
    [0, 0, 1, 1]
    """
    values = np.asarray(times)
    n = len(values)
    if window is None:
        return np.zeros(n, dtype=np.int64)
    if window <= 0:
        raise ValidationError(f"a window must be positive, got {window!r}")
    if by == "rows":
        offset = (-n) % int(window)
        return (np.arange(n) + offset) // int(window)
    buckets = np.floor(epoch_seconds(values) / float(window)).astype(np.int64)
    return buckets - (buckets.min() if n else 0)


def _has_label(labels: pd.Series[Any]) -> npt.NDArray[np.bool_]:
    mask: npt.NDArray[np.bool_] = labels.notna().to_numpy(dtype=bool, copy=True)
    if labels.dtype.kind == "f":
        mask &= np.isfinite(labels.to_numpy(dtype=np.float64, na_value=np.nan))
    return mask


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    return str(iso()) if callable(iso) else str(value)


def performance(
    frame: pd.DataFrame,
    task: Task,
    *,
    window: int | float | None = None,
    by: Literal["rows", "seconds"] = "rows",
    label: str = "label",
    prediction: str = "outputs.predictions",
    proba: npt.NDArray[np.float64] | None = None,
    classes: Sequence[Any] | None = None,
    time: str = "time",
) -> list[dict[str, Any]]:
    """Realized performance of ``frame`` (the prediction-log shape) per window of prediction time.

    Each window is ``{"start", "end", "rows", "labeled", "label_coverage", <metric>: value…}``: the metrics are
    computed on the labelled rows only. ``proba`` holds the class probabilities of every row of ``frame`` (in the
    order of ``classes``) for ``roc_auc`` and ``log_loss``.

    >>> import pandas as pd
    >>> log = pd.DataFrame({"time": [1.0, 2.0, 3.0, 4.0], "outputs.predictions": [1, 0, 1, 1],
    ...                     "label": [1, None, None, 0]})
    >>> [(w["rows"], w["labeled"], w["label_coverage"], w["accuracy"]) for w in
    ...  performance(log, "classification", window=2)]
    [(2, 1, 0.5, 1.0), (2, 1, 0.5, 0.0)]
    """
    if task not in ("classification", "regression"):
        raise ValidationError(f"task must be 'classification' or 'regression', got {task!r}")
    for col in (label, prediction):
        if col not in frame:
            raise ValidationError(
                f"the predictions have no {col!r} column; columns are: {', '.join(map(str, frame.columns))}"
            )
    times = frame[time].to_numpy() if time in frame else np.arange(len(frame))
    ids = window_ids(times, window, by=by)
    labelled = _has_label(frame[label])
    y_all = frame[label].to_numpy()
    p_all = frame[prediction].to_numpy()
    out: list[dict[str, Any]] = []
    if not len(frame):
        return out
    bounds = np.flatnonzero(np.diff(ids)) + 1
    for rows in np.split(np.arange(len(frame)), bounds):
        mask = labelled[rows]
        picked = rows[mask]
        entry: dict[str, Any] = {
            "start": _iso(times[rows[0]]),
            "end": _iso(times[rows[-1]]),
            "rows": len(rows),
            "labeled": int(mask.sum()),
            "label_coverage": float(mask.mean()),
        }
        if task == "classification":
            p = None if proba is None else np.asarray(proba)[picked]
            entry.update(classification_metrics(y_all[picked], p_all[picked], p, classes))
        else:
            entry.update(regression_metrics(y_all[picked], p_all[picked]))
        out.append(entry)
    return out
