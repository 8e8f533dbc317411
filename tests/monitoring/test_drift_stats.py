"""The drift statistics one by one: equal to scipy, the binned KS bound, edge cases, the protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from stead.errors import ValidationError
from stead.monitoring.stats import (
    KS,
    METHODS,
    PSI,
    ChiSquared,
    DomainClassifier,
    DriftResult,
    DriftStat,
    JensenShannon,
    Wasserstein,
    bin_counts,
    ks_binned,
    numeric_bins,
    wasserstein_1d,
)

REL = 1e-9


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    return [
        (rng.normal(0, 1, 7), rng.normal(0.5, 1, 13)),
        (rng.normal(0, 1, 500), rng.normal(0.1, 1.2, 800)),
        (rng.exponential(1, 3_000), rng.exponential(1.1, 20_000)),  # scipy's asymptotic p-value path
        (rng.integers(0, 5, 900).astype(float), rng.integers(0, 6, 700).astype(float)),  # heavy ties
        (rng.normal(0, 1, 1), rng.normal(0, 1, 1)),
    ]


@pytest.mark.parametrize("index", range(5), ids=["tiny", "medium", "asymp", "ties", "one-row"])
def test_ks_equals_scipy(index: int) -> None:
    ref, cur = _pairs()[index]
    result = KS().compare(ref, cur)
    expected = stats.ks_2samp(ref, cur)
    assert result.statistic == pytest.approx(float(expected.statistic), rel=REL, abs=0)
    assert result.p_value == pytest.approx(float(expected.pvalue), rel=REL, abs=0)
    assert result.drifted == (float(expected.pvalue) < 0.05)
    assert result.method == "ks" and result.threshold == 0.05


def test_ks_one_row_says_low_sample() -> None:
    result = KS().compare([1.0], [2.0])
    assert result.p_value == 1.0 and not result.drifted
    assert "low sample" in result.reasons


@pytest.mark.parametrize("index", range(4), ids=["tiny", "medium", "asymp", "ties"])
def test_wasserstein_equals_scipy(index: int) -> None:
    ref, cur = _pairs()[index]
    assert wasserstein_1d(ref, cur) == pytest.approx(stats.wasserstein_distance(ref, cur), rel=REL)
    result = Wasserstein().compare(ref, cur)
    assert result.statistic == pytest.approx(stats.wasserstein_distance(ref, cur) / np.std(ref), rel=REL)
    assert result.p_value is None
    assert result.drifted == (result.statistic > 0.1)


def test_wasserstein_reads_in_reference_standard_deviations() -> None:
    rng = np.random.default_rng(5)
    ref = rng.normal(10, 3, 50_000)
    assert Wasserstein().compare(ref, rng.normal(10.6, 3, 50_000)).statistic == pytest.approx(0.2, abs=0.02)
    spread = Wasserstein().compare(ref, rng.normal(10, 4.5, 50_000)).statistic
    assert spread == pytest.approx(0.5 * np.sqrt(2 / np.pi), abs=0.02)  # E|Z| * (1.5 - 1)


def test_chi2_equals_scipy_contingency_with_a_new_category() -> None:
    rng = np.random.default_rng(2)
    ref = rng.choice(["a", "b", "c"], 400, p=[0.5, 0.3, 0.2])
    cur = rng.choice(["a", "b", "c", "d"], 300, p=[0.4, 0.3, 0.2, 0.1])
    result = ChiSquared().compare(ref, cur)
    labels = ["a", "b", "c", "d"]
    table = np.array([[np.sum(ref == x) for x in labels], [np.sum(cur == x) for x in labels]])
    expected = stats.chi2_contingency(table, correction=False)
    assert result.statistic == pytest.approx(float(expected.statistic), rel=REL)
    assert result.p_value == pytest.approx(float(expected.pvalue), rel=REL)
    assert result.drifted and "4 categories" in result.reasons


def test_chi2_on_booleans_and_nulls() -> None:
    ref = pd.Series([True, False] * 100 + [None] * 10, dtype=object)
    cur = pd.Series([True] * 150 + [False] * 50)
    result = ChiSquared().compare(ref, cur)
    expected = stats.chi2_contingency(np.array([[100, 100], [150, 50]]), correction=False)
    assert result.statistic == pytest.approx(float(expected.statistic), rel=REL)
    assert result.p_value == pytest.approx(float(expected.pvalue), rel=REL)


def test_jensenshannon_equals_scipy_on_categories_and_bins() -> None:
    ref = ["a"] * 30 + ["b"] * 50 + ["c"] * 20
    cur = ["a"] * 20 + ["b"] * 50 + ["d"] * 30
    result = JensenShannon().compare(ref, cur)
    expected = distance.jensenshannon([0.3, 0.5, 0.2, 0.0], [0.2, 0.5, 0.0, 0.3], base=2)
    assert result.statistic == pytest.approx(float(expected), rel=REL)
    assert 0.0 <= result.statistic <= 1.0

    ref_n, cur_n = _pairs()[1]
    edges = numeric_bins(ref_n, 10)
    rc, cc = bin_counts(ref_n, edges), bin_counts(cur_n, edges)
    numeric = JensenShannon().compare(ref_n, cur_n)
    assert numeric.statistic == pytest.approx(
        float(distance.jensenshannon(rc / rc.sum(), cc / cc.sum(), base=2)), rel=REL
    )


def test_psi_formula_with_epsilon() -> None:
    ref = ["a"] * 60 + ["b"] * 40
    cur = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    r = np.array([0.6, 0.4, 1e-4])
    c = np.array([0.5, 0.3, 0.2])
    assert PSI().compare(ref, cur).statistic == pytest.approx(float(np.sum((c - r) * np.log(c / r))), rel=REL)

    ref_n, cur_n = _pairs()[1]
    edges = numeric_bins(ref_n, 10)
    assert edges.size == 9  # deciles: 10 open-ended bins
    rc, cc = bin_counts(ref_n, edges) / ref_n.size, bin_counts(cur_n, edges) / cur_n.size
    rc, cc = np.where(rc == 0, 1e-4, rc), np.where(cc == 0, 1e-4, cc)
    assert PSI().compare(ref_n, cur_n).statistic == pytest.approx(float(np.sum((cc - rc) * np.log(cc / rc))), rel=REL)


def test_numeric_bins_see_new_values_of_a_discrete_reference() -> None:
    ref = np.array([0.0, 1.0] * 50)
    for cur in ([2.0] * 100, [-1.0] * 100, [0.5] * 100):
        assert PSI().compare(ref, np.array(cur)).drifted
        assert JensenShannon().compare(ref, np.array(cur)).statistic == pytest.approx(1.0)


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(("normal", 0.0, 1.0), id="same"),
        pytest.param(("normal", 0.05, 1.0), id="small-shift"),
        pytest.param(("normal", 0.0, 1.5), id="spread"),
        pytest.param(("lognormal", 0.0, 1.0), id="skewed"),
        pytest.param(("integers", 0, 20), id="discrete"),
    ],
)
def test_ks_binned_is_within_its_bound(shape: tuple[str, float, float]) -> None:
    rng = np.random.default_rng(9)
    kind, a, b = shape
    draw = getattr(rng, kind)
    ref = np.asarray(draw(0 if kind != "integers" else a, 1 if kind != "integers" else b, 150_000), dtype=float)
    cur = np.asarray(draw(a, b, 120_000), dtype=float) if kind != "integers" else ref[::-1][:120_000] + 0.0
    exact = float(stats.ks_2samp(ref, cur, method="asymp").statistic)
    d, bound = ks_binned(ref, cur, 10_000)
    assert d <= exact + 1e-12
    assert exact - d <= bound + 1e-12
    if kind != "integers":
        assert bound < 0.01  # a 10,000-bin histogram of a smooth sample: no bin holds 1% of it

    result = KS().compare(ref, cur)  # above 100,000 values: binned by default
    assert "binned" in result.reasons
    m, n = 150_000.0, 120_000.0
    assert result.p_value == pytest.approx(float(stats.kstwo.sf(d, np.round(m * n / (m + n)))), rel=REL)
    exact_p = float(stats.ks_2samp(ref, cur, method="asymp").pvalue)
    if abs(exact_p - 0.05) > 0.02:
        assert result.drifted == (exact_p < 0.05)  # the same decision away from the boundary


def test_ks_binned_false_always_matches_scipy_and_true_forces_bins() -> None:
    ref, cur = _pairs()[1]
    assert "binned" not in KS(binned=False).compare(ref, cur).reasons
    forced = KS(binned=True, bins=50).compare(ref, cur)
    d, _ = ks_binned(ref, cur, 50)
    assert forced.statistic == d and "binned" in forced.reasons


@pytest.mark.parametrize("stat", [KS(), Wasserstein(), PSI(), JensenShannon()], ids=repr)
def test_numeric_constants(stat: DriftStat) -> None:
    same = stat.compare(np.full(50, 3.0), np.full(40, 3.0))
    assert not same.drifted and same.statistic == 0.0
    differ = stat.compare(np.full(50, 3.0), np.full(40, 4.0))
    assert differ.drifted
    assert np.isfinite(differ.statistic)


@pytest.mark.parametrize("stat", [ChiSquared(), PSI(), JensenShannon()], ids=repr)
def test_categorical_constants(stat: DriftStat) -> None:
    assert not stat.compare(["x"] * 20, ["x"] * 30).drifted
    assert stat.compare(["x"] * 20, ["y"] * 30).drifted


@pytest.mark.parametrize("stat", [KS(), Wasserstein(), PSI(), JensenShannon(), ChiSquared()], ids=repr)
def test_no_values(stat: DriftStat) -> None:
    empty = np.array([np.nan, np.nan])
    none = stat.compare(empty, empty)
    assert not none.drifted and none.reasons.startswith("no values") and np.isnan(none.statistic)
    one_sided = stat.compare(np.array([1.0, 2.0, 3.0]), empty)
    assert one_sided.drifted and "current has no values" in one_sided.reasons


def test_nan_and_inf_are_dropped_from_numeric_stats() -> None:
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    dirty = np.concatenate([cur, [np.nan] * 50, [np.inf, -np.inf]])
    clean = KS().compare(ref, cur)
    result = KS().compare(ref, dirty)
    assert result.statistic == clean.statistic and result.p_value == clean.p_value
    assert "2 infinite values excluded" in result.reasons


def test_numeric_stats_refuse_text_with_a_message() -> None:
    with pytest.raises(ValidationError, match="ks compares numbers, but the current is"):
        KS().compare([1.0, 2.0], np.array(["a", "b"], dtype=object))
    with pytest.raises(ValidationError, match="both sides must be numbers or both categories"):
        PSI().compare(np.array([1.0, 2.0]), np.array(["a", "b"], dtype=object))


def test_domain_classifier_is_deterministic_and_bounded() -> None:
    rng = np.random.default_rng(21)
    n = 800
    ref = pd.DataFrame({"x": rng.normal(0, 1, n), "y": rng.normal(0, 1, n), "c": rng.choice(["a", "b"], n)})
    same = pd.DataFrame({"x": rng.normal(0, 1, n), "y": rng.normal(0, 1, n), "c": rng.choice(["a", "b"], n)})
    # Each column alone barely moves; together they do (the correlation changes).
    z = rng.normal(0, 1, n)
    joint = pd.DataFrame({"x": z, "y": z + rng.normal(0, 0.3, n), "c": rng.choice(["a", "b"], n)})
    quiet = DomainClassifier(seed=3).compare(ref, same)
    assert not quiet.drifted and quiet.threshold >= 0.55 and quiet.p_value is not None
    loud = DomainClassifier(seed=3).compare(ref, joint)
    assert loud.drifted and loud.statistic > 0.7 and "ROC AUC" in loud.reasons
    again = DomainClassifier(seed=3).compare(ref, joint)
    assert again == loud
    assert not DomainClassifier().compare(ref.head(5), same.head(5)).drifted


def test_protocol_table_and_repr() -> None:
    assert list(METHODS) == ["ks", "chi2", "psi", "wasserstein", "jensenshannon", "classifier"]
    kinds = {"ks": "numeric", "chi2": "categorical", "psi": "both", "wasserstein": "numeric"}
    kinds |= {"jensenshannon": "both", "classifier": "multivariate"}
    for name, cls in METHODS.items():
        stat = cls()
        assert isinstance(stat, DriftStat)
        assert stat.name == name and stat.kind == kinds[name]
        assert 0 < stat.threshold < 1
        assert repr(stat).startswith(f"{cls.__name__}(threshold=")
    assert repr(PSI(bins=20)) == "PSI(threshold=0.1, bins=20, eps=0.0001)"
    assert repr(DomainClassifier(seed=7)) == "DomainClassifier(threshold=0.55, cv=5, max_rows=5000, seed=7)"


def test_result_is_frozen_and_json_safe() -> None:
    result = DriftResult("ks", float("nan"), None, 0.05, False, "no values")
    with pytest.raises(AttributeError):
        result.drifted = True  # type: ignore[misc]
    assert result.to_dict() == {
        "method": "ks",
        "statistic": None,
        "p_value": None,
        "threshold": 0.05,
        "drifted": False,
        "reasons": "no values",
    }
