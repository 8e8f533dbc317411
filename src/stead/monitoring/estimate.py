"""(layer: monitoring; pure, no I/O) Performance estimated without labels: CBPE for classifiers, DLE for regressors.

Labels arrive late or never; these estimate what the metrics *will* be once they arrive, from the model's own
outputs, after NannyML's methods.

**CBPE** (confidence-based performance estimation). If a classifier's probabilities are calibrated, a row
predicted positive with probability 0.8 is a true positive 80% of the time, so the expected confusion matrix is
the sum of the probabilities: ``E[TP] = Σ p`` over rows predicted positive, ``E[FP] = Σ (1 − p)`` over them,
``E[FN] = Σ p`` over rows predicted negative, ``E[TN] = Σ (1 − p)`` over those. Accuracy, precision, recall and
F1 follow from it; the expected ROC AUC is the area under the curve traced by the same expected counts when
the threshold moves. The probabilities are first calibrated on the reference, where labels are known
(``isotonic`` regression by default, ``platt`` scaling, or ``none``), one-vs-rest per class with more than two
classes (rows renormalized; macro averages). CBPE assumes no concept drift: P(y | x) stays the reference's, while
the inputs may move. It cannot see a change in P(y | x); realized performance can, once labels arrive.

**DLE** (direct loss estimation). A gradient-boosting model learns, on the reference, the absolute error and the
squared error of each prediction from the model's inputs and its prediction; on a window its mean predicted
absolute error is the expected MAE and the root of its mean predicted squared error the expected RMSE.

:func:`estimate_error` lays the estimate beside the realized value once labels arrive, so users see how far to
trust the estimate. scikit-learn is imported when fitting (``pip install 'stead[sklearn]'``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from stead.errors import ValidationError, require
from stead.monitoring.performance import align_labels

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]

__all__ = ["CBPE", "CBPE_METRICS", "DLE", "DLE_METRICS", "Calibration", "estimate_error", "expected_auc"]

Calibration = Literal["isotonic", "platt", "none"]
CBPE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
DLE_METRICS = ("mae", "rmse")
#: Fewer labelled reference rows than this cannot calibrate (the estimate would be noise).
MIN_REFERENCE = 20


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def expected_auc(score: Any, positive: Any) -> float | None:
    """The expected ROC AUC when row *i* is positive with probability ``positive[i]``, ranked by ``score``.

    The probability that a random positive outranks a random negative, each pair weighted by
    ``positive[i] · (1 − positive[j])``, ties counting one half — the area under the expected ROC curve.
    With 0/1 ``positive`` it is exactly the ROC AUC.

    >>> expected_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    s = np.asarray(score, dtype=np.float64)
    c = np.asarray(positive, dtype=np.float64)
    pos, neg = float(c.sum()), float((1.0 - c).sum())
    if pos <= 0 or neg <= 0:
        return None
    _, inverse = np.unique(s, return_inverse=True)
    c_by = np.bincount(inverse, weights=c)
    d_by = np.bincount(inverse, weights=1.0 - c)
    below = np.cumsum(d_by) - d_by
    return float(np.sum(c_by * (below + 0.5 * d_by)) / (pos * neg))


class _Calibrator:
    """One monotone map from a score to the probability of the positive class."""

    def __init__(self, method: Calibration) -> None:
        self.method = method
        self.model: Any = None

    def fit(self, score: FloatArray, target: npt.NDArray[np.bool_]) -> _Calibrator:
        if self.method == "isotonic":
            isotonic = require("sklearn.isotonic", "sklearn")
            self.model = isotonic.IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.model.fit(score, target.astype(np.float64))
        elif self.method == "platt":
            linear = require("sklearn.linear_model", "sklearn")
            self.model = linear.LogisticRegression(C=1e6)
            self.model.fit(_logit(score)[:, None], target.astype(int))
        return self

    def __call__(self, score: FloatArray) -> FloatArray:
        if self.method == "isotonic":
            return np.asarray(self.model.predict(score), dtype=np.float64)
        if self.method == "platt":
            return np.asarray(self.model.predict_proba(_logit(score)[:, None])[:, 1], dtype=np.float64)
        return score


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    out: FloatArray = np.log(q / (1 - q))
    return out


class CBPE:
    """Confidence-based performance estimation for classifiers (see the module docstring).

    Parameters
    ----------
    calibration
        ``"isotonic"`` (default), ``"platt"`` or ``"none"`` (the probabilities are trusted as they are).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> p_ref = rng.random(4000); y_ref = (rng.random(4000) < p_ref).astype(int)   # calibrated by construction
    >>> cbpe = CBPE().fit(p_ref, y_ref)
    >>> p_cur = rng.beta(2, 5, 4000)                                              # the inputs moved
    >>> est = cbpe.estimate(p_cur)
    >>> real = np.mean((rng.random(4000) < p_cur) == (p_cur >= 0.5))
    >>> bool(abs(est["accuracy"] - real) < 0.02)
    True
    """

    def __init__(self, calibration: Calibration = "isotonic") -> None:
        if calibration not in ("isotonic", "platt", "none"):
            raise ValidationError(
                f"unknown calibration {calibration!r}; valid options are: isotonic, platt, none",
                hint="use calibration='isotonic'",
            )
        self.calibration: Calibration = calibration
        self.classes_: list[Any] = []
        self._calibrators: list[_Calibrator] = []

    def __repr__(self) -> str:
        return f"CBPE(calibration={self.calibration!r})"

    @staticmethod
    def _matrix(proba: Any, n_classes: int | None = None) -> FloatArray:
        arr = np.asarray(proba, dtype=np.float64)
        if arr.ndim == 1:
            arr = np.column_stack([1.0 - arr, arr])
        if arr.ndim != 2 or (n_classes is not None and arr.shape[1] != n_classes):
            want = f"{n_classes} columns" if n_classes else "one column per class"
            raise ValidationError(f"probabilities must be an (n, k) array with {want}, got shape {arr.shape}")
        return arr

    def fit(self, proba: Any, labels: Any, classes: Sequence[Any] | None = None) -> CBPE:
        """Calibrate on the reference: its predicted probabilities and its true labels.

        ``proba`` is ``(n, k)`` in the order of ``classes`` (default: the sorted labels), or for two classes the
        probability of the positive (last) class.
        """
        matrix = self._matrix(proba)
        y = np.asarray(labels)
        known = ~_missing(y)
        matrix, y = matrix[known], y[known]
        if len(y) < MIN_REFERENCE:
            raise ValidationError(
                f"CBPE needs at least {MIN_REFERENCE} labelled reference rows to calibrate, got {len(y)}",
                hint="use a larger reference, or pass calibration='none' to trust the probabilities as they are",
            )
        if classes is None:
            (y_a,) = align_labels(y)
            classes_a = sorted(set(y_a.tolist()))
            if len(classes_a) == 1 and matrix.shape[1] == 2:
                raise ValidationError("the reference labels hold a single class; CBPE cannot calibrate on them")
        else:
            y_a, classes_arr = align_labels(y, list(classes))
            classes_a = classes_arr.tolist()
        if len(classes_a) != matrix.shape[1]:
            raise ValidationError(
                f"{matrix.shape[1]} probability columns but {len(classes_a)} classes ({classes_a[:10]})",
                hint="pass classes= in the order of the probability columns (a scikit-learn model's classes_)",
            )
        self.classes_ = list(classes_a)
        columns = [matrix.shape[1] - 1] if matrix.shape[1] == 2 else list(range(matrix.shape[1]))
        self._calibrators = [_Calibrator(self.calibration).fit(matrix[:, k], y_a == self.classes_[k]) for k in columns]
        return self

    def calibrated(self, proba: Any) -> FloatArray:
        """The calibrated ``(n, k)`` probabilities (rows sum to 1)."""
        if not self._calibrators:
            raise ValidationError("this CBPE is not fitted yet", hint="call fit(reference_proba, reference_labels)")
        matrix = self._matrix(proba, len(self.classes_))
        if len(self.classes_) == 2:
            pos = np.clip(self._calibrators[0](matrix[:, 1]), 0.0, 1.0)
            return np.column_stack([1.0 - pos, pos])
        cal = np.column_stack([np.clip(f(matrix[:, k]), 0.0, 1.0) for k, f in enumerate(self._calibrators)])
        total = cal.sum(axis=1, keepdims=True)
        uniform = np.full_like(cal, 1.0 / cal.shape[1])
        out: FloatArray = np.where(total > 0, cal / np.where(total > 0, total, 1.0), uniform)
        return out

    def estimate(self, proba: Any, predictions: Any = None) -> dict[str, float | None]:
        """Expected accuracy, precision, recall, F1 and ROC AUC of rows with these probabilities.

        ``predictions`` are the labels the model gave (by default the most probable class of ``proba``).
        Precision, recall and F1 are those of the positive class for two classes, macro-averaged otherwise.
        """
        raw = self._matrix(proba, len(self.classes_) or None)
        cal = self.calibrated(raw)
        out: dict[str, float | None] = dict.fromkeys(CBPE_METRICS)
        n = len(cal)
        if n == 0:
            return out
        if predictions is None:
            index = raw.argmax(axis=1)
        else:
            pred_a, classes_a = align_labels(predictions, self.classes_)
            lookup = {c: i for i, c in enumerate(classes_a.tolist())}
            index = np.asarray([lookup.get(v, -1) for v in pred_a.tolist()])
        known = index >= 0
        hit = np.zeros(n)
        hit[known] = cal[np.flatnonzero(known), index[known]]
        out["accuracy"] = float(hit.mean())
        ks = [1] if len(self.classes_) == 2 else list(range(len(self.classes_)))
        precision, recall, f1, auc = [], [], [], []
        for k in ks:
            chosen = index == k
            c = cal[:, k]
            tp, fp = float(c[chosen].sum()), float((1 - c[chosen]).sum())
            fn = float(c[~chosen].sum())
            precision.append(_ratio(tp, tp + fp))
            recall.append(_ratio(tp, tp + fn))
            f1.append(_ratio(2 * tp, 2 * tp + fp + fn))
            auc.append(expected_auc(raw[:, k], c))
        for name, values in (("precision", precision), ("recall", recall), ("f1", f1), ("roc_auc", auc)):
            kept = [v for v in values if v is not None]
            out[name] = float(np.mean(kept)) if kept else None
        return out


def _missing(values: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    import pandas as pd

    return np.asarray(pd.isna(pd.Series(values, dtype=object)).to_numpy(), dtype=bool)


def _encode(frame: pd.DataFrame, categories: dict[str, list[Any]] | None) -> tuple[FloatArray, dict[str, list[Any]]]:
    """Numbers as floats, anything else as the code of its category among the reference's (unknown: NaN)."""
    import pandas as pd

    learnt: dict[str, list[Any]] = {} if categories is None else categories
    columns: list[FloatArray] = []
    for name in frame.columns:
        col = frame[name]
        if col.dtype.kind in "biuf":
            columns.append(col.to_numpy(dtype=np.float64, na_value=np.nan))
            continue
        if categories is None:
            learnt[str(name)] = sorted({str(v) for v in col.dropna().tolist()})
        text = col.astype(str).where(col.notna())
        codes = pd.Index(learnt.get(str(name), [])).get_indexer(text).astype(np.float64)
        codes[codes < 0] = np.nan  # null, or a category the reference never had
        columns.append(codes)
    matrix = np.column_stack(columns) if columns else np.zeros((len(frame), 0))
    return matrix, learnt


class DLE:
    """Direct loss estimation for regressors (see the module docstring).

    Parameters
    ----------
    seed
        Seeds the gradient-boosting models, so estimates are reproducible.
    max_rows
        At most this many reference rows are used to fit (a seeded sample).

    Examples
    --------
    >>> import pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(0, 1, 3000); noise = rng.normal(0, 0.1 + x)        # errors grow with x
    >>> dle = DLE().fit(pd.DataFrame({"x": x}), y_pred=2 * x, y_true=2 * x + noise)
    >>> x_new = rng.uniform(0.8, 1.0, 2000)                                   # the inputs moved to noisy ground
    >>> est = dle.estimate(pd.DataFrame({"x": x_new}), 2 * x_new)
    >>> real = np.mean(np.abs(rng.normal(0, 0.1 + x_new)))
    >>> bool(abs(est["mae"] - real) / real < 0.1)
    True
    """

    def __init__(self, seed: int = 0, max_rows: int = 50_000) -> None:
        self.seed = seed
        self.max_rows = max_rows
        self._categories: dict[str, list[Any]] = {}
        self._columns: list[str] = []
        self._abs: Any = None
        self._sq: Any = None

    def __repr__(self) -> str:
        return f"DLE(seed={self.seed!r}, max_rows={self.max_rows!r})"

    def _features(self, inputs: pd.DataFrame, y_pred: Any, fit: bool) -> FloatArray:
        frame = inputs if fit else inputs.reindex(columns=self._columns)
        encoded, learnt = _encode(frame, None if fit else self._categories)
        if fit:
            self._categories, self._columns = learnt, [str(c) for c in inputs.columns]
        pred = np.asarray(y_pred, dtype=np.float64).reshape(-1, 1)
        return np.hstack([encoded, pred])

    def fit(self, inputs: pd.DataFrame, y_pred: Any, y_true: Any) -> DLE:
        """Learn the absolute and squared errors of the reference's predictions from its inputs and predictions."""
        ensemble = require("sklearn.ensemble", "sklearn")
        t = np.asarray(y_true, dtype=np.float64)
        features = self._features(inputs, y_pred, fit=True)
        err = np.asarray(y_pred, dtype=np.float64) - t
        keep = np.isfinite(err)
        if int(keep.sum()) < MIN_REFERENCE:
            raise ValidationError(
                f"DLE needs at least {MIN_REFERENCE} labelled reference rows, got {int(keep.sum())}",
                hint="estimate on a larger reference",
            )
        features, err = features[keep], err[keep]
        if len(err) > self.max_rows:
            rows = np.sort(np.random.default_rng(self.seed).choice(len(err), self.max_rows, replace=False))
            features, err = features[rows], err[rows]
        params = {"max_iter": 100, "max_leaf_nodes": 15, "min_samples_leaf": 50, "random_state": self.seed}
        self._abs = ensemble.HistGradientBoostingRegressor(**params).fit(features, np.abs(err))
        self._sq = ensemble.HistGradientBoostingRegressor(**params).fit(features, err**2)
        return self

    def estimate(self, inputs: pd.DataFrame, y_pred: Any) -> dict[str, float | None]:
        """Expected MAE and RMSE of these predictions."""
        if self._abs is None:
            raise ValidationError(
                "this DLE is not fitted yet", hint="call fit(inputs, y_pred, y_true) on the reference"
            )
        out: dict[str, float | None] = dict.fromkeys(DLE_METRICS)
        if not len(inputs):
            return out
        features = self._features(inputs, y_pred, fit=False)
        out["mae"] = float(np.mean(np.clip(self._abs.predict(features), 0.0, None)))
        out["rmse"] = math.sqrt(float(np.mean(np.clip(self._sq.predict(features), 0.0, None))))
        return out


def estimate_error(
    estimated: Mapping[str, float | None], realized: Mapping[str, Any]
) -> dict[str, dict[str, float | None]]:
    """Each estimated metric beside its realized value and the error ``estimated − realized``.

    >>> estimate_error({"accuracy": 0.9, "f1": None}, {"accuracy": 0.85, "labeled": 40})
    {'accuracy': {'estimated': 0.9, 'realized': 0.85, 'error': 0.05}}
    """
    out: dict[str, dict[str, float | None]] = {}
    for name, est in estimated.items():
        real = realized.get(name)
        if est is None or real is None:
            continue
        out[name] = {"estimated": est, "realized": float(real), "error": round(est - float(real), 12)}
    return out
