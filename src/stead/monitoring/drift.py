"""(layer: monitoring; pure, no I/O) Drift between two tables: ``drift(reference, current)`` -> ``DriftReport``.

The standalone API, usable on plain DataFrames (or dicts of arrays) with no store and no deployment. Each column
is judged by one statistic from :mod:`stead.monitoring.stats`, and the dataset is drifted when the share of
drifted columns reaches ``threshold``.

The automatic choice (``method="auto"``), after Evidently's rule:

==============  ===========================  ==============================================
column          reference rows <= 1,000      reference rows > 1,000
==============  ===========================  ==============================================
numeric         ``ks`` (p < 0.05)            ``wasserstein`` (normalized, > 0.1)
categorical     ``chi2`` (p < 0.05)          ``jensenshannon`` (> 0.1)
==============  ===========================  ==============================================

Booleans, strings and pandas categories are categorical. Small samples are judged by a test, large ones by an
effect size: with enough rows any test finds a "significant" difference that nobody would call drift (at a
million rows a KS test flags a third of truly steady columns), while a distance threshold means the same thing
at every size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stead.errors import ValidationError
from stead.monitoring.stats import (
    METHODS,
    ChiSquared,
    DomainClassifier,
    DriftResult,
    DriftStat,
    JensenShannon,
    as_frame,
    column_kind,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AUTO_SMALL_ROWS", "DriftReport", "choose_method", "drift"]

#: ``auto`` uses a test (ks, chi2) up to this many reference rows and a distance (wasserstein, jensenshannon) above.
AUTO_SMALL_ROWS = 1_000
#: A change in a column's share of nulls at least this large (absolute) is mentioned in its reasons.
NULL_SHIFT_NOTE = 0.05

MethodSpec = str | DriftStat


@dataclass(frozen=True)
class DriftReport:
    """The result of :func:`drift`.

    ``columns`` maps each compared column to its :class:`DriftResult`; ``problems`` maps each column that could not
    be compared (missing on one side, mismatched types, a failed statistic) to a message, and those columns are left
    out of ``share``. ``multivariate`` holds the domain classifier's result when ``method="classifier"``.
    """

    drifted: bool
    share: float
    threshold: float
    columns: dict[str, DriftResult]
    problems: dict[str, str] = field(default_factory=dict)
    multivariate: DriftResult | None = None
    rows: tuple[int, int] = (0, 0)

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted columns, in report order."""
        return [name for name, result in self.columns.items() if result.drifted]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (NaN becomes None): the shape ``stead monitor --json`` prints under ``"drift"``."""
        return {
            "drifted": bool(self.drifted),
            "share": float(self.share),
            "threshold": float(self.threshold),
            "columns": {name: result.to_dict() for name, result in self.columns.items()},
            "problems": dict(self.problems),
            "multivariate": self.multivariate.to_dict() if self.multivariate is not None else None,
            "rows": {"reference": self.rows[0], "current": self.rows[1]},
        }


def _valid_names() -> str:
    return ", ".join(["auto", *METHODS])


def _resolve(spec: Any, where: str) -> MethodSpec:
    if isinstance(spec, str):
        if spec == "auto" or spec in METHODS:
            return spec
        raise ValidationError(
            f"unknown drift method {spec!r}{where}; valid names are: {_valid_names()}",
            hint=f"use one of: {_valid_names()}",
        )
    if isinstance(spec, DriftStat):
        return spec
    raise ValidationError(
        f"a drift method{where} must be a name or a statistic object, not {type(spec).__name__}",
        hint=f"use one of: {_valid_names()}",
    )


def choose_method(kind: str, reference_rows: int) -> str:
    """The ``auto`` rule: a test on small samples, an effect size on large ones. ``drift`` passes the smaller
    of the reference and current row counts.

    >>> choose_method("numeric", 500), choose_method("numeric", 5_000)
    ('ks', 'wasserstein')
    >>> choose_method("categorical", 1_000), choose_method("categorical", 1_001)
    ('chi2', 'jensenshannon')
    """
    small = reference_rows <= AUTO_SMALL_ROWS
    if kind == "numeric":
        return "ks" if small else "wasserstein"
    return "chi2" if small else "jensenshannon"


def _null_share(series: pd.Series[Any]) -> float:
    return float(series.isna().mean()) if len(series) else 0.0


def _kind_label(kind: str, series: pd.Series[Any]) -> str:
    words = {"numeric": "numbers", "categorical": "categories", "datetime": "dates", "empty": "all null"}
    return f"{words.get(kind, kind)} ({series.dtype})"


def _compare_column(
    name: str, ref: pd.Series[Any], cur: pd.Series[Any], spec: MethodSpec, reference_rows: int
) -> DriftResult | str:
    """One column's result, or the message saying why it could not be compared."""
    rk, ck = column_kind(ref), column_kind(cur)
    if "datetime" in (rk, ck):
        return (
            f"column {name!r} holds dates ({ref.dtype} / {cur.dtype}); dates are not compared, "
            "convert them to numbers (for example days since an origin) to check them for drift"
        )
    if {rk, ck} == {"numeric", "categorical"}:
        return (
            f"column {name!r} has mismatched types: the reference is {_kind_label(rk, ref)} and the current is "
            f"{_kind_label(ck, cur)}; cast one side so both hold the same type"
        )
    kind = "numeric" if "numeric" in (rk, ck) else "categorical"
    if rk == "empty" and ck == "empty":
        kind = "numeric" if ref.dtype.kind in "iuf" or cur.dtype.kind in "iuf" else "categorical"
    stat: DriftStat
    if isinstance(spec, str):
        # The smaller side decides: a distance between 400 current rows and a large reference is as noisy as
        # one between two samples of 400, so a monitor's small windows get the calibrated test.
        method = choose_method(kind, min(reference_rows, len(cur))) if spec == "auto" else spec
        if method == "classifier":
            stat = DomainClassifier()
            result = stat.compare(ref.to_frame(name=name), cur.to_frame(name=name))
            return result
        if spec == "auto" and method == "jensenshannon" and kind == "categorical":
            return _large_categorical(ref, cur)
        stat = METHODS[method]()
    else:
        stat = spec
    if stat.kind == "numeric" and kind != "numeric":
        return (
            f"column {name!r} holds {_kind_label(kind, ref)}, but {stat.name} compares numbers; "
            "use chi2, psi or jensenshannon for it"
        )
    if stat.kind == "multivariate":
        return stat.compare(ref.to_frame(name=name), cur.to_frame(name=name))
    return stat.compare(ref, cur)


AUTO_CATEGORICAL_JS = 0.05


def _large_categorical(ref: pd.Series[Any], cur: pd.Series[Any]) -> DriftResult:
    """The ``auto`` verdict on a categorical column beyond 1,000 rows a side: Jensen-Shannon distance above
    0.05 **and** a chi-squared p-value below 0.05.

    The distance alone at 0.1 misses a common category moving ten points (50% -> 40% is 0.085); at 0.05 it
    would fire on noise when there are many categories and only a thousand rows. The test keeps it calibrated
    there, and the distance keeps a million rows from flagging shifts too small to matter.
    """
    js = JensenShannon(threshold=AUTO_CATEGORICAL_JS).compare(ref, cur)
    chi = ChiSquared().compare(ref, cur)
    drifted = bool(js.drifted and chi.drifted)
    p = chi.p_value
    verdict = "drifted" if drifted else "no drift that matters"
    reasons = (
        f"Jensen-Shannon distance {js.statistic:.4g} ({'>' if js.drifted else '≤'} {AUTO_CATEGORICAL_JS}) with a "
        f"chi-squared p-value of {p if p is None else f'{p:.3g}'} ({'<' if chi.drifted else '≥'} 0.05): {verdict}"
    )
    return DriftResult("jensenshannon", js.statistic, p, AUTO_CATEGORICAL_JS, drifted, reasons)


def _with_null_note(result: DriftResult, ref: pd.Series[Any], cur: pd.Series[Any]) -> DriftResult:
    rn, cn = _null_share(ref), _null_share(cur)
    if abs(rn - cn) < NULL_SHIFT_NOTE or result.reasons.startswith("no values"):
        return result
    note = f"; the share of nulls moved from {100 * rn:.1f}% to {100 * cn:.1f}% (nulls are left out of the statistic)"
    return DriftResult(
        result.method, result.statistic, result.p_value, result.threshold, result.drifted, result.reasons + note
    )


def drift(
    reference: Any,
    current: Any,
    columns: list[str] | None = None,
    method: str | DriftStat | Mapping[str, str | DriftStat] = "auto",
    threshold: float = 0.5,
) -> DriftReport:
    """Compare two tables column by column and say which columns drifted and whether the dataset did.

    Parameters
    ----------
    reference, current
        pandas DataFrames (or dicts of arrays, or 2-D arrays). Rows need not match in number.
    columns
        The columns to compare; by default every column of either side (one missing on a side is a problem).
    method
        ``"auto"`` (see the module docstring), a name from ``METHODS``, a statistic object such as
        ``KS(threshold=0.01)``, or a dict ``{column: method}`` (columns left out use ``auto``).
        ``"classifier"`` given alone trains one domain classifier on all the columns together: its verdict is the
        dataset's, it lands in ``report.multivariate``, and ``columns`` stays empty.
    threshold
        The dataset is drifted when the share of drifted columns is at least this.

    Bad input does not raise: missing columns, mismatched types and dates are listed in ``report.problems``;
    all-null columns are not drifted ("no values"); NaN and infinities are left out of the statistics.
    Unknown method names raise ``ValidationError``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = {"age": rng.normal(40, 10, 2000), "plan": rng.choice(["a", "b"], 2000)}
    >>> cur = {"age": rng.normal(45, 10, 2000), "plan": rng.choice(["a", "b"], 2000)}
    >>> report = drift(ref, cur)
    >>> report.drifted, report.share, report.drifted_columns
    (True, 0.5, ['age'])
    >>> report.columns["age"].method, report.columns["plan"].method
    ('wasserstein', 'jensenshannon')
    """
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0.0 <= threshold <= 1.0:
        raise ValidationError(
            f"threshold must be a share between 0 and 1, got {threshold!r}", hint="for example threshold=0.5"
        )
    per_column: dict[str, MethodSpec] = {}
    if isinstance(method, Mapping):
        per_column = {str(k): _resolve(v, f" for column {k!r}") for k, v in method.items()}
        default: MethodSpec = "auto"
    else:
        default = _resolve(method, "")
    ref_frame, cur_frame = as_frame(reference, "reference"), as_frame(current, "current")
    ref_frame = ref_frame.rename(columns=str)
    cur_frame = cur_frame.rename(columns=str)
    rows = (len(ref_frame), len(cur_frame))
    if columns is None:
        names = [*ref_frame.columns, *(c for c in cur_frame.columns if c not in ref_frame.columns)]
    elif isinstance(columns, str):
        names = [columns]
    else:
        names = [str(c) for c in columns]
    problems: dict[str, str] = {}
    present: list[str] = []
    for name in names:
        missing = [side for side, frame in (("reference", ref_frame), ("current", cur_frame)) if name not in frame]
        if missing:
            problems[name] = f"column {name!r} is missing from the {' and the '.join(missing)} data"
        else:
            present.append(name)
    for name in per_column:
        if name not in names and name not in problems:
            problems[name] = f"a method was given for column {name!r}, which is not among the compared columns"

    if default == "classifier" or isinstance(default, DomainClassifier):
        stat = default if isinstance(default, DomainClassifier) else DomainClassifier()
        result = stat.compare(ref_frame[present], cur_frame[present])
        share = 1.0 if result.drifted else 0.0
        verdict = bool(present) and result.drifted and share >= threshold
        return DriftReport(verdict, share, float(threshold), {}, problems, result, rows)

    results: dict[str, DriftResult] = {}
    for name in present:
        ref, cur = ref_frame[name], cur_frame[name]
        spec = per_column.get(name, default)
        try:
            outcome = _compare_column(name, ref, cur, spec, len(ref_frame))
        except (ValidationError, ValueError, TypeError, ArithmeticError) as exc:
            outcome = f"column {name!r} could not be compared: {exc}"
        if isinstance(outcome, str):
            problems[name] = outcome
        else:
            results[name] = _with_null_note(outcome, ref, cur)
    judged = len(results)
    share = sum(r.drifted for r in results.values()) / judged if judged else 0.0
    share = 0.0 if math.isnan(share) else share
    return DriftReport(judged > 0 and share >= threshold, share, float(threshold), results, problems, None, rows)
