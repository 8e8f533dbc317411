"""(layer: monitoring; pure, no I/O) The drift statistics: one protocol, six methods, one name table.

Each statistic is a small object whose constructor arguments are kept as attributes (so ``repr`` shows them)
and whose ``compare(reference, current)`` returns a frozen :class:`DriftResult`: the method, the statistic,
the p-value where the method has one, the threshold it was judged by, the verdict, and one readable sentence
of reasons. ``METHODS`` maps the names used in ``stead.yaml`` and ``drift(method=...)`` to the classes; there
is no registration at import.

How each method judges (the defaults; docs/DRIFT.md explains why):

=================  =============  =========================================================  ===========
name               kind           statistic                                                  drifted when
=================  =============  =========================================================  ===========
``ks``             numeric        two-sample Kolmogorov–Smirnov D (scipy ``ks_2samp``)      p < 0.05
``chi2``           categorical    Pearson chi-squared on the 2×k table of counts             p < 0.05
``psi``            both           population stability index over reference deciles          PSI > 0.1
``wasserstein``    numeric        Wasserstein-1 distance / reference standard deviation      > 0.1
``jensenshannon``  both           Jensen–Shannon distance (base 2, in [0, 1])               > 0.1
``classifier``     multivariate   cross-validated ROC AUC of a reference-vs-current model    AUC > bound
=================  =============  =========================================================  ===========
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from stead.errors import ValidationError

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    FloatArray = npt.NDArray[np.float64]
    AnyArray = npt.NDArray[Any]

__all__ = [
    "KS",
    "METHODS",
    "PSI",
    "ChiSquared",
    "DomainClassifier",
    "DriftResult",
    "DriftStat",
    "JensenShannon",
    "Wasserstein",
]

Kind = Literal["numeric", "categorical", "both", "multivariate"]

#: Fewer values than this on either side adds a "low sample" note to the reasons.
LOW_SAMPLE = 30
#: ``KS(binned=None)`` switches to the binned approximation above this many values on either side.
KS_BINNED_ABOVE = 100_000


@dataclass(frozen=True)
class DriftResult:
    """What one statistic found for one column (or, for ``classifier``, for a set of columns).

    ``statistic`` is NaN when there was nothing to compute it on (``to_dict`` turns NaN into None);
    ``p_value`` is None for methods without one. ``threshold`` is the value the verdict was judged by:
    a significance level for ``ks`` and ``chi2``, a distance for the others, the AUC bound for ``classifier``.
    """

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    reasons: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: NaN and infinities become None."""
        return {
            "method": self.method,
            "statistic": _json_float(self.statistic),
            "p_value": _json_float(self.p_value),
            "threshold": _json_float(self.threshold),
            "drifted": bool(self.drifted),
            "reasons": self.reasons,
        }


@runtime_checkable
class DriftStat(Protocol):
    """The protocol every drift statistic follows: a name, a kind, a default threshold and ``compare``."""

    name: str
    kind: Kind
    threshold: float

    def compare(self, reference: Any, current: Any) -> DriftResult: ...


# --------------------------------------------------------------------------------------------- helpers


def _json_float(x: float | None) -> float | None:
    if x is None:
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def _fmt(x: float) -> str:
    """A short human form of a number: 0.0003, 0.123, 1.5e-07."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if abs(x) >= 1e-3:
        return f"{x:.3g}"
    return f"{x:.2e}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def column_kind(values: Any) -> Literal["numeric", "categorical", "empty", "datetime"]:
    """How a column is compared: ``numeric``, ``categorical`` (text, booleans, categories), ``empty`` or ``datetime``.

    Booleans are categorical. An object column whose non-null values are all numbers is numeric.
    """
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical" if series.notna().any() else "empty"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "empty":
        return "empty"
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "numeric"
    if inferred in ("datetime64", "datetime", "date", "timedelta64", "timedelta"):
        return "datetime"
    return "categorical"


def _kind_of(values: Any) -> Literal["numeric", "categorical", "empty", "datetime"]:
    return column_kind(values)


def _dtype_name(values: Any) -> str:
    return str(getattr(values, "dtype", np.asarray(values).dtype))


def _numeric(values: Any) -> tuple[FloatArray, int, int]:
    """Finite float values, and how many NaN and infinite values were dropped."""
    import pandas as pd

    if isinstance(values, pd.Series) and values.dtype.kind in "iuf":
        raw = values.to_numpy(dtype=np.float64, na_value=np.nan)
    elif isinstance(values, pd.Series):
        raw = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    else:
        raw = np.asarray(values)
        if raw.dtype.kind not in "iuf":
            raw = pd.to_numeric(pd.Series(raw.ravel()), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    arr = np.asarray(raw, dtype=np.float64).ravel()
    nan = np.isnan(arr)
    inf = np.isinf(arr)
    return arr[~(nan | inf)], int(nan.sum()), int(inf.sum())


def _categories(reference: Any, current: Any) -> tuple[FloatArray, FloatArray]:
    """Counts per category over the union of both sides (nulls dropped; categories absent from both removed)."""
    import pandas as pd

    def counts(values: Any) -> pd.Series[int]:
        series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object).ravel())
        return series.astype(object).value_counts(dropna=True)

    ref, cur = counts(reference), counts(current)
    index = ref.index.union(cur.index, sort=False)
    rc = np.asarray(ref.reindex(index, fill_value=0), dtype=np.float64)
    cc = np.asarray(cur.reindex(index, fill_value=0), dtype=np.float64)
    keep = (rc + cc) > 0
    return rc[keep], cc[keep]


def numeric_bins(reference: FloatArray, bins: int = 10) -> FloatArray:
    """Bin edges for PSI and Jensen–Shannon on numbers: the reference's quantiles (deciles by default).

    Bins are ``[e[i-1], e[i])`` with open ends, counted by :func:`bin_counts`. When the reference has no more
    distinct values than ``bins`` (a constant, a flag, a small integer code), every distinct value gets a bin of
    its own and the gaps between and around them get theirs, so a value the reference never had is seen.

    >>> numeric_bins(np.array([1.0, 1.0, 1.0]))
    array([1., 1.])
    >>> bin_counts(np.array([0.0, 1.0, 2.0, 1.0]), numeric_bins(np.array([1.0, 1.0]))).tolist()
    [1.0, 2.0, 1.0]
    """
    distinct = np.unique(reference)
    if distinct.size <= bins:
        upper = np.nextafter(distinct, np.inf)
        return np.ravel(np.column_stack([distinct, upper]))
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    return np.asarray(edges, dtype=np.float64)


def bin_counts(values: FloatArray, edges: FloatArray) -> FloatArray:
    """Counts of ``values`` in the ``len(edges) + 1`` bins ``(-inf, e0), [e0, e1), …, [e_last, inf)``."""
    index = np.searchsorted(edges, values, side="right")
    return np.bincount(index, minlength=edges.size + 1).astype(np.float64)


class _Base:
    """Shared parts: ``repr`` from the ``__init__`` signature, the edge cases and the reasons."""

    name: str = ""
    kind: Kind = "both"
    threshold: float
    has_p_value = False

    def __repr__(self) -> str:
        params = inspect.signature(type(self).__init__).parameters
        shown = [f"{p}={getattr(self, p)!r}" for p in params if p != "self"]
        return f"{type(self).__name__}({', '.join(shown)})"

    def _verdict(self, statistic: float, p_value: float | None) -> bool:
        if self.has_p_value:
            return p_value is not None and p_value < self.threshold
        return statistic > self.threshold

    def _result(self, statistic: float, p_value: float | None, drifted: bool, reasons: str) -> DriftResult:
        return DriftResult(self.name, float(statistic), p_value, float(self.threshold), bool(drifted), reasons)

    def _early(self, n_ref: int, n_cur: int, same_constant: bool) -> DriftResult | None:
        """Results for the cases with nothing to test: no values, or the same constant on both sides."""
        if n_ref == 0 and n_cur == 0:
            return self._result(math.nan, None, False, "no values on either side (all null): nothing to compare")
        if n_ref == 0 or n_cur == 0:
            side, other = ("reference", "current") if n_ref == 0 else ("current", "reference")
            return self._result(
                math.nan, None, True, f"the {side} has no values (all null) while the {other} has: the column changed"
            )
        if same_constant:
            return self._result(0.0, 1.0 if self.has_p_value else None, False, "both sides hold one and the same value")
        return None

    def _notes(self, n_ref: int, n_cur: int, dropped: int = 0) -> str:
        notes = []
        if min(n_ref, n_cur) < LOW_SAMPLE:
            notes.append(f"low sample ({n_ref} reference, {n_cur} current values): the result is weak evidence")
        if dropped:
            notes.append(f"{dropped} infinite values excluded")
        return "".join(f"; {n}" for n in notes)


def _constants(ref: AnyArray, cur: AnyArray) -> tuple[bool, bool]:
    """(both sides constant with ≥2 values and equal, both constant with ≥2 values and different)."""
    if ref.size < 2 or cur.size < 2:
        return False, False
    r0, c0 = ref[0], cur[0]
    if bool(np.all(ref == r0)) and bool(np.all(cur == c0)):
        return bool(r0 == c0), bool(r0 != c0)
    return False, False


class _Numeric(_Base):
    kind: Kind = "numeric"

    def compare(self, reference: Any, current: Any) -> DriftResult:
        ref, _, ref_inf = _numeric(reference)
        cur, _, cur_inf = _numeric(current)
        for side, values in (("reference", reference), ("current", current)):
            if getattr(values, "dtype", None) not in (np.float64, np.int64) and _kind_of(values) == "categorical":
                raise ValidationError(
                    f"{self.name} compares numbers, but the {side} is {_dtype_name(values)}",
                    hint="use chi2, psi or jensenshannon for categories",
                )
        same, differ = _constants(ref, cur)
        early = self._early(ref.size, cur.size, same)
        if early is not None:
            return early
        statistic, p_value, detail = self._compute(ref, cur)
        drifted = self._verdict(statistic, p_value) or differ
        reasons = self._explain(statistic, p_value, drifted) + detail
        if differ:
            reasons += f"; the reference is the constant {_fmt(ref[0])} and the current the constant {_fmt(cur[0])}"
        return self._result(statistic, p_value, drifted, reasons + self._notes(ref.size, cur.size, ref_inf + cur_inf))

    def _compute(self, ref: FloatArray, cur: FloatArray) -> tuple[float, float | None, str]:
        raise NotImplementedError

    def _explain(self, statistic: float, p_value: float | None, drifted: bool) -> str:
        raise NotImplementedError


class _Either(_Base):
    """A statistic over frequencies that works on numbers (reference-quantile bins) and on categories."""

    kind: Kind = "both"
    bins: int

    def compare(self, reference: Any, current: Any) -> DriftResult:
        kinds = {_kind_of(reference), _kind_of(current)} - {"empty"}
        if kinds == {"numeric", "categorical"}:
            raise ValidationError(
                f"{self.name}: the reference is {_dtype_name(reference)} and the current {_dtype_name(current)}; "
                "both sides must be numbers or both categories"
            )
        dropped = 0
        if "categorical" in kinds:
            rc, cc = _categories(reference, current)
            n_ref, n_cur = int(rc.sum()), int(cc.sum())
            same = rc.size == 1 and min(n_ref, n_cur) >= 2
            differ = rc.size == 2 and min(n_ref, n_cur) >= 2 and bool(np.all((rc == 0) | (cc == 0)))
            what = f"{rc.size} categories"
        else:
            ref, _, ref_inf = _numeric(reference)
            cur, _, cur_inf = _numeric(current)
            n_ref, n_cur, dropped = ref.size, cur.size, ref_inf + cur_inf
            same, differ = _constants(ref, cur)
            if n_ref and n_cur:
                edges = numeric_bins(ref, self.bins)
                rc, cc = bin_counts(ref, edges), bin_counts(cur, edges)
            what = "reference-quantile bins"
        early = self._early(n_ref, n_cur, same)
        if early is not None:
            return early
        statistic = self._frequencies(rc / rc.sum(), cc / cc.sum())
        drifted = statistic > self.threshold or differ
        reasons = self._explain(statistic, drifted, what)
        return self._result(statistic, None, drifted, reasons + self._notes(n_ref, n_cur, dropped))

    def _frequencies(self, p_ref: FloatArray, p_cur: FloatArray) -> float:
        raise NotImplementedError

    def _explain(self, statistic: float, drifted: bool, what: str) -> str:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------- numeric


class KS(_Numeric):
    """Two-sample Kolmogorov–Smirnov test on numbers; drifted when the p-value is below ``threshold``.

    Up to ``KS_BINNED_ABOVE`` (100,000) values per side the statistic and p-value are exactly
    ``scipy.stats.ks_2samp(reference, current)``. Above it (or always with ``binned=True``) D is computed
    from a ``bins``-bin histogram over the pooled range: the binned D never exceeds the exact one and falls
    short of it by at most the largest share of either sample in one bin; the p-value is scipy's asymptotic one
    (``kstwo.sf(D, round(n*m/(n+m)))``). ``binned=False`` always calls scipy.

    Parameters
    ----------
    threshold
        Significance level: drifted when ``p < threshold``.
    binned
        None: binned above 100,000 values on either side; True: always; False: never.
    bins
        Histogram bins for the binned approximation.

    Examples
    --------
    >>> result = KS().compare([1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0])
    >>> result.statistic, round(result.p_value, 4), result.drifted
    (1.0, 0.0079, True)
    >>> KS(threshold=0.01)
    KS(threshold=0.01, binned=None, bins=10000)
    """

    name = "ks"
    has_p_value = True

    def __init__(self, threshold: float = 0.05, binned: bool | None = None, bins: int = 10_000) -> None:
        self.threshold = threshold
        self.binned = binned
        self.bins = bins

    def _compute(self, ref: FloatArray, cur: FloatArray) -> tuple[float, float | None, str]:
        from scipy import stats

        binned = self.binned if self.binned is not None else max(ref.size, cur.size) > KS_BINNED_ABOVE
        if binned:
            d, bound = ks_binned(ref, cur, self.bins)
            m, n = sorted([float(ref.size), float(cur.size)], reverse=True)
            p = float(stats.kstwo.sf(d, np.round(m * n / (m + n))))
            return d, min(max(p, 0.0), 1.0), f" (binned over {self.bins} bins, D within {_fmt(bound)} of exact)"
        with warnings.catch_warnings():
            # scipy falls back from the exact p-value to the asymptotic one with a RuntimeWarning; the value is fine.
            warnings.simplefilter("ignore", RuntimeWarning)
            res = stats.ks_2samp(ref, cur)
        return float(res.statistic), float(res.pvalue), ""

    def _explain(self, statistic: float, p_value: float | None, drifted: bool) -> str:
        p = p_value if p_value is not None else math.nan
        if drifted:
            return f"KS p-value {_fmt(p)} < {_fmt(self.threshold)} (D={_fmt(statistic)}): the distributions differ"
        return f"KS p-value {_fmt(p)} ≥ {_fmt(self.threshold)} (D={_fmt(statistic)}): no evidence of a difference"


def ks_binned(reference: FloatArray, current: FloatArray, bins: int = 10_000) -> tuple[float, float]:
    """The KS statistic D over a ``bins``-bin histogram of the pooled range, and its error bound.

    Returns ``(D_binned, bound)`` with ``D_binned <= D_exact <= D_binned + bound``, where ``bound`` is the largest
    share of either sample that falls into a single bin: inside one bin each empirical CDF moves by at most the
    share of its sample in that bin, and at the bin edges the binned CDFs are exact.

    >>> d, bound = ks_binned(np.array([0.0, 1.0, 2.0, 3.0]), np.array([2.5, 3.5, 4.5, 5.5]), bins=100)
    >>> d, bound
    (0.75, 0.25)
    """
    lo = float(min(reference.min(), current.min()))
    hi = float(max(reference.max(), current.max()))
    if lo == hi:
        return 0.0, 0.0
    hr, _ = np.histogram(reference, bins=bins, range=(lo, hi))
    hc, _ = np.histogram(current, bins=bins, range=(lo, hi))
    fr = np.cumsum(hr) / reference.size
    fc = np.cumsum(hc) / current.size
    d = float(np.max(np.abs(fr - fc)))
    bound = float(max(hr.max() / reference.size, hc.max() / current.size))
    return d, bound


def wasserstein_1d(u: FloatArray, v: FloatArray) -> float:
    """``scipy.stats.wasserstein_distance(u, v)`` for unweighted samples, 4-5x faster on large samples.

    The same quantity as scipy's, the area between the two empirical CDFs, summed over the gaps of the merged
    sorted values. Where scipy finds each CDF with a binary search per merged value, this sorts each side
    (numpy's vectorized sort), merges the two sorted runs with a stable argsort (timsort: one linear merge) and
    counts the values of ``u`` seen so far with a running sum. In a run of equal values only the last one
    spans a gap, and by then the sum has counted the whole run, so ties come out as ``side="right"`` would.

    >>> wasserstein_1d(np.array([0.0, 1.0, 3.0]), np.array([5.0, 6.0, 8.0]))
    5.0
    """
    n, m = u.size, v.size
    merged = np.concatenate([np.sort(u), np.sort(v)])
    order = np.argsort(merged, kind="stable")
    gaps = np.diff(merged[order])
    seen_u = np.cumsum(order[:-1] < n)
    seen_v = np.arange(1, n + m) - seen_u
    return float(np.sum(np.abs(seen_u / n - seen_v / m) * gaps))


class Wasserstein(_Numeric):
    """Normalized Wasserstein distance: ``scipy.stats.wasserstein_distance / std(reference)`` (Evidently's form).

    The distance is computed by :func:`wasserstein_1d`, equal to scipy's to rounding (tested to 1e-9 relative).

    The value reads as "how far the distribution moved, in reference standard deviations": a mean shift of
    0.2 sigma gives about 0.2, a 1.5x wider spread about 0.4. Drifted when above ``threshold`` (0.1). The standard
    deviation is numpy's (ddof=0); a constant reference is scaled by the pooled standard deviation instead.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(0, 1, 5000), rng.normal(0.3, 1, 5000)
    >>> result = Wasserstein().compare(ref, cur)
    >>> round(result.statistic, 2), result.drifted
    (0.32, True)
    """

    name = "wasserstein"

    def __init__(self, threshold: float = 0.1) -> None:
        self.threshold = threshold

    def _compute(self, ref: FloatArray, cur: FloatArray) -> tuple[float, float | None, str]:
        distance = wasserstein_1d(ref, cur)
        scale = float(np.std(ref)) if ref.min() != ref.max() else float(np.std(np.concatenate([ref, cur])))
        if distance == 0.0:
            return 0.0, None, ""
        return distance / scale, None, ""

    def _explain(self, statistic: float, p_value: float | None, drifted: bool) -> str:
        if drifted:
            return (
                f"normalized Wasserstein distance {_fmt(statistic)} > {_fmt(self.threshold)}: the values moved by "
                f"about {_fmt(statistic)} reference standard deviations"
            )
        return (
            f"normalized Wasserstein distance {_fmt(statistic)} ≤ {_fmt(self.threshold)}: the distributions are close"
        )


# --------------------------------------------------------------------------------------------- frequencies


class PSI(_Either):
    """Population stability index: ``sum((cur - ref) * ln(cur / ref))`` over bin or category shares.

    Numbers are binned at the reference's deciles (``bins=10``, open-ended; see :func:`numeric_bins`),
    categories use the union of both sides. An empty bin's share is replaced by ``eps`` (0.0001) so the log is
    defined. Drifted above ``threshold`` (0.1; the industry rule of thumb reads < 0.1 as stable, 0.1–0.25 as a
    moderate shift and > 0.25 as a major one).

    Examples
    --------
    >>> result = PSI().compare(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20)
    >>> round(result.statistic, 3), result.drifted
    (0.416, True)
    """

    name = "psi"

    def __init__(self, threshold: float = 0.1, bins: int = 10, eps: float = 1e-4) -> None:
        self.threshold = threshold
        self.bins = bins
        self.eps = eps

    def _frequencies(self, p_ref: FloatArray, p_cur: FloatArray) -> float:
        r = np.where(p_ref == 0, self.eps, p_ref)
        c = np.where(p_cur == 0, self.eps, p_cur)
        return float(np.sum((c - r) * np.log(c / r)))

    def _explain(self, statistic: float, drifted: bool, what: str) -> str:
        if drifted:
            return f"PSI {_fmt(statistic)} > {_fmt(self.threshold)} over {what}: the shares moved"
        return f"PSI {_fmt(statistic)} ≤ {_fmt(self.threshold)} over {what}: the shares are stable"


class JensenShannon(_Either):
    """Jensen–Shannon distance, ``scipy.spatial.distance.jensenshannon(p_ref, p_cur, base=2)``, in [0, 1].

    Numbers use the same reference-quantile bins as PSI (``bins=10``); categories use the union of both sides.
    Drifted above ``threshold`` (0.1). On binned data the distance has a small upward bias at small samples,
    roughly ``sqrt((k - 1) * (1/n_ref + 1/n_cur) / (8 ln 2))`` for ``k`` bins, which is why ``auto`` uses it
    only beyond 1,000 reference rows.

    Examples
    --------
    >>> result = JensenShannon().compare(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20)
    >>> round(result.statistic, 3), result.drifted
    (0.27, True)
    """

    name = "jensenshannon"

    def __init__(self, threshold: float = 0.1, bins: int = 10) -> None:
        self.threshold = threshold
        self.bins = bins

    def _frequencies(self, p_ref: FloatArray, p_cur: FloatArray) -> float:
        from scipy.spatial import distance

        return float(distance.jensenshannon(p_ref, p_cur, base=2))

    def _explain(self, statistic: float, drifted: bool, what: str) -> str:
        if drifted:
            return f"Jensen–Shannon distance {_fmt(statistic)} > {_fmt(self.threshold)} over {what}: the shares moved"
        return f"Jensen–Shannon distance {_fmt(statistic)} ≤ {_fmt(self.threshold)} over {what}: the shares are close"


# --------------------------------------------------------------------------------------------- categorical


class ChiSquared(_Base):
    """Pearson's chi-squared test of homogeneity on categories; drifted when the p-value is below ``threshold``.

    The table is 2×k: reference counts and current counts over the union of categories seen on either side
    (nulls dropped). The statistic and p-value equal ``scipy.stats.chi2_contingency(table, correction=False)``.
    A two-sample test is used rather than ``chisquare`` against reference proportions because the reference is a
    sample too: treating its shares as exact inflates false alarms when it is small, which is when ``auto`` uses
    this test. A category new in the current data is counted, not an error.

    Examples
    --------
    >>> result = ChiSquared().compare(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20)
    >>> round(result.statistic, 3), round(result.p_value, 6), result.drifted
    (19.78, 9e-06, True)
    """

    name = "chi2"
    kind: Kind = "categorical"
    has_p_value = True

    def __init__(self, threshold: float = 0.05) -> None:
        self.threshold = threshold

    def compare(self, reference: Any, current: Any) -> DriftResult:
        from scipy import stats

        rc, cc = _categories(reference, current)
        n_ref, n_cur = int(rc.sum()), int(cc.sum())
        same = rc.size == 1 and min(n_ref, n_cur) >= 2
        early = self._early(n_ref, n_cur, same or rc.size == 1)
        if early is not None:
            return early
        res = stats.chi2_contingency(np.vstack([rc, cc]), correction=False)
        statistic, p_value = float(res.statistic), float(res.pvalue)
        differ = rc.size == 2 and min(n_ref, n_cur) >= 2 and bool(np.all((rc == 0) | (cc == 0)))
        drifted = p_value < self.threshold or differ
        verdict = "the category shares differ" if drifted else "no evidence the category shares differ"
        sign = "<" if p_value < self.threshold else "≥"
        reasons = (
            f"chi-squared p-value {_fmt(p_value)} {sign} {_fmt(self.threshold)} over {rc.size} categories: {verdict}"
        )
        return self._result(statistic, p_value, drifted, reasons + self._notes(n_ref, n_cur))


# --------------------------------------------------------------------------------------------- multivariate


def _encode(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[FloatArray, FloatArray, list[str]]:
    """Both frames as float matrices over their shared columns: numbers as is (inf → NaN), categories as codes."""
    import pandas as pd

    columns = [c for c in reference.columns if c in current.columns]
    ref_cols, cur_cols, used = [], [], []
    for column in columns:
        r, c = reference[column], current[column]
        kinds = {column_kind(r), column_kind(c)}
        if kinds <= {"numeric", "empty"}:
            rv = np.array(pd.to_numeric(r, errors="coerce").to_numpy(dtype=float, na_value=np.nan), dtype=np.float64)
            cv = np.array(pd.to_numeric(c, errors="coerce").to_numpy(dtype=float, na_value=np.nan), dtype=np.float64)
            rv[np.isinf(rv)], cv[np.isinf(cv)] = np.nan, np.nan
        elif "datetime" in kinds:
            continue
        else:
            ro, co = r.astype(object).astype(str).where(r.notna()), c.astype(object).astype(str).where(c.notna())
            cats = pd.Index(pd.concat([ro, co]).dropna().unique())
            rv = pd.Categorical(ro, categories=cats).codes.astype(float)
            cv = pd.Categorical(co, categories=cats).codes.astype(float)
            rv[rv < 0], cv[cv < 0] = np.nan, np.nan
        ref_cols.append(rv)
        cur_cols.append(cv)
        used.append(str(column))
    if not used:
        return np.empty((len(reference), 0)), np.empty((len(current), 0)), used
    return np.column_stack(ref_cols), np.column_stack(cur_cols), used


def as_frame(data: Any, side: str = "data") -> pd.DataFrame:
    """A DataFrame from a DataFrame, a dict of arrays, a Series or a 1-D/2-D array (columns named "0", "1", …)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    try:
        if isinstance(data, pd.Series):
            return data.to_frame(name=str(data.name) if data.name is not None else "0")
        if isinstance(data, Mapping):
            return pd.DataFrame({str(k): np.asarray(v).ravel() for k, v in data.items()})
        arr = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"the {side} could not be read as a table: {exc}",
            hint="pass a pandas DataFrame or a dict of equal-length arrays",
        ) from exc
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValidationError(
            f"the {side} has {arr.ndim} dimensions; expected a table",
            hint="pass a pandas DataFrame or a dict of equal-length arrays",
        )
    return pd.DataFrame(arr, columns=[str(i) for i in range(arr.shape[1])])


class DomainClassifier(_Base):
    """A domain classifier: can a model tell current rows from reference rows?

    Rows are labelled 0 (reference) and 1 (current), at most ``max_rows`` per side are sampled with ``seed``,
    and a small gradient-boosting model (scikit-learn's ``HistGradientBoostingClassifier``, 50 trees of at most
    8 leaves; missing values allowed, categories as codes) is scored by ``cv``-fold stratified cross-validated
    ROC AUC. With no drift the held-out AUC is a Mann–Whitney statistic whose null standard error is
    ``sqrt((n0 + n1 + 1) / (12 n0 n1))``; the p-value is the one-sided normal tail of ``(AUC - 0.5) / se``.
    Drifted when the AUC exceeds the bound ``max(threshold, 0.5 + 1.645 * se)``: better than chance at the
    5% level *and* at least ``threshold`` (0.55), so a very large sample does not turn a negligible
    difference into an alarm. ``DriftResult.threshold`` holds that bound.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = {"x": rng.normal(0, 1, 500), "y": rng.normal(0, 1, 500)}
    >>> cur = {"x": rng.normal(0, 1, 500), "y": rng.normal(1, 1, 500)}
    >>> result = DomainClassifier().compare(ref, cur)
    >>> result.statistic > 0.65, result.drifted
    (True, True)
    """

    name = "classifier"
    kind: Kind = "multivariate"

    def __init__(self, threshold: float = 0.55, cv: int = 5, max_rows: int = 5_000, seed: int = 0) -> None:
        self.threshold = threshold
        self.cv = cv
        self.max_rows = max_rows
        self.seed = seed

    def compare(self, reference: Any, current: Any) -> DriftResult:
        from scipy import stats

        from stead.errors import require

        require("sklearn", "sklearn")
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.metrics import roc_auc_score
        from sklearn.model_selection import StratifiedKFold

        ref, cur, used = _encode(as_frame(reference, "reference"), as_frame(current, "current"))
        rng = np.random.default_rng(self.seed)
        if ref.shape[0] > self.max_rows:
            ref = ref[np.sort(rng.choice(ref.shape[0], self.max_rows, replace=False))]
        if cur.shape[0] > self.max_rows:
            cur = cur[np.sort(rng.choice(cur.shape[0], self.max_rows, replace=False))]
        n0, n1 = ref.shape[0], cur.shape[0]
        if not used or n0 < 2 * self.cv or n1 < 2 * self.cv:
            return self._result(
                math.nan,
                None,
                False,
                f"too few rows or columns to train a classifier ({n0} reference, {n1} current rows, {len(used)} "
                f"usable columns; need {2 * self.cv} rows per side)",
            )
        x = np.vstack([ref, cur])
        y = np.r_[np.zeros(n0), np.ones(n1)]
        from threadpoolctl import threadpool_limits

        folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.seed)
        aucs = []
        # One OpenMP thread: these models are small, and spinning threads on a busy machine cost 5-20x.
        with threadpool_limits(limits=1):
            for train, test in folds.split(x, y):
                model = HistGradientBoostingClassifier(
                    max_iter=50, max_leaf_nodes=8, learning_rate=0.1, early_stopping=False, random_state=self.seed
                )
                model.fit(x[train], y[train])
                aucs.append(float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1])))
        auc = float(np.mean(aucs))
        se = math.sqrt((n0 + n1 + 1) / (12.0 * n0 * n1))
        p_value = float(stats.norm.sf((auc - 0.5) / se))
        bound = max(self.threshold, 0.5 + 1.645 * se)
        drifted = auc > bound
        verdict = "a model can tell current rows from reference rows" if drifted else "the rows look alike"
        sign = ">" if drifted else "≤"
        reasons = (
            f"domain classifier ROC AUC {_fmt(auc)} {sign} bound {_fmt(bound)} over {len(used)} columns: {verdict}"
        )
        result = DriftResult(self.name, auc, p_value, bound, drifted, reasons + self._notes(n0, n1))
        return result


#: Method name -> statistic class; the names ``stead.yaml`` and ``drift(method=...)`` accept (plus ``auto``).
METHODS: dict[str, type[DriftStat]] = {
    "ks": KS,
    "chi2": ChiSquared,
    "psi": PSI,
    "wasserstein": Wasserstein,
    "jensenshannon": JensenShannon,
    "classifier": DomainClassifier,
}
