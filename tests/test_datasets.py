from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from stead.datasets import QUANTILES, content_hash, profile, reservoir, schema, to_frame
from stead.errors import ValidationError

# The id of this frame is part of stead's storage format: changing it orphans every stored dataset version.
GOLDEN_ID = "fa9ef1c8e0fe3ef90c997584d7d8820cbe89d6eb5f721fc619650d6f039020dd"


def golden() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": [0.5, np.nan, -2.0], "s": ["x", None, "z"], "flag": [True, False, True]})


def mixed(rows: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    words = np.array(["red", "green", "blue", "None", ""], dtype=object)
    f = rng.normal(size=rows)
    f[::17] = np.nan
    s = words[rng.integers(0, 5, rows)]
    s[::13] = None
    return pd.DataFrame(
        {
            "i": rng.integers(-5, 5, rows),
            "f": f,
            "s": pd.Series(s, dtype="str"),
            "c": pd.Categorical(words[rng.integers(0, 3, rows)]),
            "b": rng.random(rows) < 0.3,
            "t": pd.date_range("2024-01-01", periods=rows, freq="h"),
        }
    )


# --------------------------------------------------------------------------------------------- content_hash


def test_hash_is_64_hex_and_matches_the_pinned_value() -> None:
    h = content_hash(golden())
    assert len(h) == 64 and int(h, 16) >= 0 and h == h.lower()
    assert h == GOLDEN_ID


def test_hash_is_stable_across_processes() -> None:
    code = (
        "import numpy as np, pandas as pd\n"
        "from stead.datasets import content_hash\n"
        "df = pd.DataFrame({'a': [1, 2, 3], 'b': [0.5, np.nan, -2.0], 's': ['x', None, 'z'],"
        " 'flag': [True, False, True]})\n"
        "print(content_hash(df))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == content_hash(golden()) == GOLDEN_ID


def test_hash_ignores_the_index() -> None:
    df = mixed()
    assert content_hash(df) == content_hash(df.set_axis(pd.RangeIndex(100, 100 + len(df))))
    assert content_hash(df) == content_hash(df.set_axis([f"r{i}" for i in range(len(df))]))
    shuffled = df.sample(frac=1.0, random_state=0)
    assert content_hash(shuffled) == content_hash(shuffled.reset_index(drop=True))


def test_reordered_rows_change_the_id() -> None:
    df = mixed()
    assert content_hash(df) != content_hash(df.iloc[::-1])
    swapped = pd.DataFrame({"a": [2, 1]})
    assert content_hash(pd.DataFrame({"a": [1, 2]})) != content_hash(swapped)


def test_renamed_or_reordered_columns_change_the_id() -> None:
    df = mixed()
    assert content_hash(df) != content_hash(df.rename(columns={"f": "g"}))
    assert content_hash(df) != content_hash(df[list(reversed(df.columns))])


def test_int_and_float_dtypes_differ() -> None:
    assert content_hash(pd.DataFrame({"a": [1, 2]})) != content_hash(pd.DataFrame({"a": [1.0, 2.0]}))
    assert content_hash(pd.DataFrame({"a": [1, 2]})) != content_hash(pd.DataFrame({"a": np.array([1, 2], np.int32)}))


def test_none_differs_from_the_string_none() -> None:
    assert content_hash(pd.DataFrame({"s": [None, "a"]})) != content_hash(pd.DataFrame({"s": ["None", "a"]}))
    assert content_hash(pd.DataFrame({"s": [None, "a"]})) != content_hash(pd.DataFrame({"s": ["", "a"]}))
    as_object = pd.DataFrame({"s": pd.Series([None, "a"], dtype=object)})
    assert content_hash(as_object) != content_hash(pd.DataFrame({"s": pd.Series(["None", "a"], dtype=object)}))


def test_string_boundaries_matter() -> None:
    assert content_hash(pd.DataFrame({"s": ["ab", ""]})) != content_hash(pd.DataFrame({"s": ["a", "b"]}))


def test_storage_flavours_of_one_type_hash_alike() -> None:
    strings = ["x", None, "y"]
    ids = {
        content_hash(pd.DataFrame({"s": pd.Series(strings, dtype=object)})),
        content_hash(pd.DataFrame({"s": pd.Series(strings, dtype="str")})),
        content_hash(pd.DataFrame({"s": pd.Series(strings, dtype="string")})),
        content_hash(pd.DataFrame({"s": pd.Series(strings, dtype="string[pyarrow]")})),
    }
    assert len(ids) == 1
    assert content_hash(pd.DataFrame({"a": [1, 2]})) == content_hash(pd.DataFrame({"a": pd.array([1, 2], "Int64")}))
    # a null in an int column is not a NaN in a float column
    with_null = pd.DataFrame({"a": pd.array([1, None], "Int64")})
    assert content_hash(with_null) != content_hash(pd.DataFrame({"a": [1.0, np.nan]}))
    assert content_hash(with_null) != content_hash(pd.DataFrame({"a": pd.array([1, 0], "Int64")}))


def test_nan_handling_is_stable() -> None:
    quiet = np.array([np.nan, 1.0])
    payload = np.array([0x7FF8000000000123, 0x3FF0000000000000], dtype=np.int64).view(np.float64)
    negative = np.array([-np.nan, 1.0])
    assert np.signbit(negative[0])
    assert np.isnan(payload[0])
    ids = {content_hash(pd.DataFrame({"f": a})) for a in (quiet, payload, negative)}
    assert len(ids) == 1
    assert content_hash(pd.DataFrame({"f": [None, 1.0]})) in ids
    assert content_hash(pd.DataFrame({"f": pd.array([None, 1.0], "Float64")})) in ids
    assert content_hash(pd.DataFrame({"f": [0.0]})) == content_hash(pd.DataFrame({"f": [-0.0]}))
    assert content_hash(pd.DataFrame({"f": [np.nan]})) != content_hash(pd.DataFrame({"f": [np.inf]}))


def test_arrow_backed_columns_hash_like_numpy_ones() -> None:
    ts = [pd.Timestamp("2024-01-01"), None]
    arrow_ts = pd.DataFrame({"t": pd.array(ts, dtype=pd.ArrowDtype(pa.timestamp("us")))})
    assert content_hash(arrow_ts) == content_hash(pd.DataFrame({"t": pd.to_datetime(ts)}))
    utc = pd.array([pd.Timestamp("2024-01-01", tz="UTC"), None], dtype=pd.ArrowDtype(pa.timestamp("ms", tz="UTC")))
    assert content_hash(pd.DataFrame({"t": utc})) == content_hash(
        pd.DataFrame({"t": pd.to_datetime(ts).tz_localize("UTC")})
    )
    dur = pd.DataFrame({"d": pd.array([pd.Timedelta(1, "s"), None], dtype=pd.ArrowDtype(pa.duration("ms")))})
    assert content_hash(dur) == content_hash(pd.DataFrame({"d": pd.to_timedelta([1, None], unit="s")}))
    assert profile(dur)["columns"]["d"]["mean"] == 1.0
    ints = pd.DataFrame({"i": pd.array([1, None], dtype=pd.ArrowDtype(pa.int64()))})
    assert content_hash(ints) == content_hash(pd.DataFrame({"i": pd.array([1, None], "Int64")}))
    big_endian = pd.DataFrame({"f": np.array([1.5, np.nan], dtype=">f8"), "i": np.array([1, 2], dtype=">i4")})
    little = pd.DataFrame({"f": [1.5, np.nan], "i": np.array([1, 2], dtype="<i4")})
    assert content_hash(big_endian) == content_hash(little)


def test_datetime_units_and_timezones() -> None:
    times = ["2024-01-01 00:00:00", None, "2024-06-01 12:30:00"]
    us = pd.DataFrame({"t": pd.to_datetime(times).as_unit("us")})
    ns = pd.DataFrame({"t": pd.to_datetime(times).as_unit("ns")})
    assert content_hash(us) == content_hash(ns)
    utc = pd.DataFrame({"t": pd.to_datetime(times).tz_localize("UTC")})
    assert content_hash(utc) != content_hash(ns)
    same_instant = pd.DataFrame({"t": utc["t"].dt.tz_convert("UTC")})
    assert content_hash(utc) == content_hash(same_instant)
    far = pd.DataFrame({"t": np.array(["1500-01-01", "3000-01-01"], dtype="datetime64[s]")})
    assert len(content_hash(far)) == 64


def test_categoricals() -> None:
    values = ["b", "a", None, "b"]
    plain = pd.DataFrame({"c": pd.Categorical(values)})
    other_order = pd.DataFrame({"c": pd.Categorical(values, categories=["b", "a", "unused"])})
    assert content_hash(plain) == content_hash(other_order)
    assert content_hash(plain) != content_hash(pd.DataFrame({"c": values}))
    ordered = pd.DataFrame({"c": pd.Categorical(values, categories=["a", "b"], ordered=True)})
    reversed_order = pd.DataFrame({"c": pd.Categorical(values, categories=["b", "a"], ordered=True)})
    assert content_hash(ordered) != content_hash(reversed_order)
    ints = pd.DataFrame({"c": pd.Categorical([3, None, 1])})
    assert content_hash(ints) != content_hash(pd.DataFrame({"c": pd.Categorical(["3", None, "1"])}))
    assert content_hash(ints) == content_hash(pd.DataFrame({"c": pd.Categorical([3, None, 1], categories=[3, 1, 2])}))
    assert len(content_hash(pd.DataFrame({"c": pd.Categorical([None, None])}))) == 64


def test_object_fallback_is_typed() -> None:
    a = pd.DataFrame({"o": pd.Series([1, "1", None], dtype=object)})
    b = pd.DataFrame({"o": pd.Series(["1", 1, None], dtype=object)})
    c = pd.DataFrame({"o": pd.Series([b"1", "1", None], dtype=object)})
    assert len({content_hash(a), content_hash(b), content_hash(c)}) == 3
    assert content_hash(a) == content_hash(a.copy())


def test_empty_frames() -> None:
    empty = pd.DataFrame({"a": pd.Series([], dtype="int64")})
    assert content_hash(empty) != content_hash(pd.DataFrame({"b": pd.Series([], dtype="int64")}))
    assert content_hash(pd.DataFrame()) != content_hash(pd.DataFrame(index=range(3)))


def test_same_data_from_frame_array_parquet_and_csv(tmp_path: Path) -> None:
    df = mixed()
    pq = tmp_path / "data.parquet"
    df.to_parquet(pq)
    assert content_hash(to_frame(pq)) == content_hash(df)
    assert content_hash(to_frame(str(pq))) == content_hash(df)

    simple = pd.DataFrame({"i": [3, -1, 7], "f": [0.1, 1 / 3, np.nan], "s": ["a", "b", "c"]})
    csv = tmp_path / "data.csv"
    simple.to_csv(csv, index=False)
    assert content_hash(to_frame(csv)) == content_hash(simple)
    # CSV carries no dtypes: inference can change the id (a categorical comes back as strings)
    df.to_csv(csv, index=False)
    assert content_hash(to_frame(csv)) != content_hash(df)

    arr = np.arange(12, dtype=np.float64).reshape(4, 3)
    assert content_hash(to_frame(arr)) == content_hash(pd.DataFrame(arr, columns=["x0", "x1", "x2"]))


def test_hash_of_a_large_frame_uses_threads_and_agrees_with_slices() -> None:
    rows = 120_000
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.integers(0, 9, rows), "s": rng.choice(["x", "y"], rows)})
    sliced = pd.concat([df.iloc[: rows // 2], df.iloc[rows // 2 :]])
    assert content_hash(df) == content_hash(sliced)
    assert content_hash(df) == content_hash(df.copy())


def test_hash_rejects_non_frames() -> None:
    with pytest.raises(ValidationError, match="DataFrame"):
        content_hash([1, 2, 3])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------- to_frame


def test_to_frame_arrays() -> None:
    assert list(to_frame(np.arange(3)).columns) == ["x0"]
    two = to_frame(np.zeros((5, 3)))
    assert list(two.columns) == ["x0", "x1", "x2"] and two.shape == (5, 3)
    structured = np.array([(1, 2.0)], dtype=[("id", "i8"), ("score", "f8")])
    assert list(to_frame(structured).columns) == ["id", "score"]
    with pytest.raises(ValidationError, match="dimensions"):
        to_frame(np.zeros((2, 2, 2)))


def test_to_frame_frames_and_series() -> None:
    df = pd.DataFrame({"a": [1]})
    assert to_frame(df) is df
    assert list(to_frame(pd.DataFrame({0: [1], 1: [2]})).columns) == ["0", "1"]
    assert list(to_frame(pd.Series([1, 2], name="y")).columns) == ["y"]
    with pytest.raises(ValidationError, match="duplicate"):
        to_frame(pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_to_frame_rejects_other_types() -> None:
    with pytest.raises(ValidationError, match=r"builtins\.list") as info:
        to_frame([1, 2, 3])
    assert "DataFrame" in (info.value.hint or "") and "parquet" in (info.value.hint or "")


def test_to_frame_missing_and_unknown_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"
    with pytest.raises(ValidationError, match=r"nope\.parquet"):
        to_frame(missing)
    other = tmp_path / "data.xlsx"
    other.write_text("x")
    with pytest.raises(ValidationError, match="suffix"):
        to_frame(other)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(ValidationError, match="cannot read"):
        to_frame(broken)


# --------------------------------------------------------------------------------------------- schema


def test_schema() -> None:
    df = mixed()
    df["I"] = pd.array([1] * len(df), "Int64")
    df["o"] = pd.Series([1, "a"] * (len(df) // 2), dtype=object)
    df["d"] = pd.to_timedelta(np.arange(len(df)), unit="s")
    assert schema(df) == [
        {"name": "i", "dtype": "int64", "kind": "numeric"},
        {"name": "f", "dtype": "float64", "kind": "numeric"},
        {"name": "s", "dtype": "string", "kind": "categorical"},
        {"name": "c", "dtype": "category", "kind": "categorical"},
        {"name": "b", "dtype": "bool", "kind": "bool"},
        {"name": "t", "dtype": "datetime", "kind": "datetime"},
        {"name": "I", "dtype": "int64", "kind": "numeric"},
        {"name": "o", "dtype": "object", "kind": "categorical"},
        {"name": "d", "dtype": "timedelta", "kind": "numeric"},
    ]


# --------------------------------------------------------------------------------------------- profile


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False)


def test_profile_numeric_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=10_001)
    values[:10] = np.nan
    values[10:13] = [np.inf, -np.inf, np.inf]
    p = profile(pd.DataFrame({"x": values}), bins=12)
    _dumps(p)
    col = p["columns"]["x"]
    finite = values[np.isfinite(values)]
    assert p["rows"] == 10_001
    assert (col["dtype"], col["kind"]) == ("float64", "numeric")
    assert col["count"] == 10_001 - 10 and col["nulls"] == 10
    assert col["mean"] == pytest.approx(finite.mean())
    assert col["std"] == pytest.approx(finite.std(ddof=1))
    assert (col["min"], col["max"]) == (finite.min(), finite.max())
    assert col["quantiles"] == pytest.approx(
        dict(zip(QUANTILES, np.quantile(finite, list(QUANTILES.values())), strict=True))
    )
    hist = col["histogram"]
    counts, edges = np.histogram(finite, bins=12)
    assert hist["edges"] == edges.tolist()
    assert hist["counts"] == counts.tolist()
    assert (hist["nan"], hist["inf"]) == (10, 3)
    assert sum(hist["counts"]) == len(finite)


def test_profile_ints_keep_int_min_max() -> None:
    big = 2**62 + 1
    col = profile(pd.DataFrame({"i": [big, 1, 2]}))["columns"]["i"]
    assert col["min"] == 1 and col["max"] == big and isinstance(col["max"], int)


def test_profile_constant_column() -> None:
    col = profile(pd.DataFrame({"k": [3.0] * 50}), bins=4)["columns"]["k"]
    assert col["mean"] == 3.0 and col["std"] == 0.0 and col["min"] == col["max"] == 3.0
    assert col["quantiles"] == dict.fromkeys(QUANTILES, 3.0)
    assert col["histogram"]["edges"] == [2.5, 2.75, 3.0, 3.25, 3.5]
    assert col["histogram"]["counts"] == [0, 0, 50, 0]
    assert col["histogram"]["counts"] == np.histogram(np.full(50, 3.0), bins=4)[0].tolist()


def test_profile_all_null_and_empty_columns() -> None:
    df = pd.DataFrame(
        {
            "f": [np.nan] * 4,
            "I": pd.array([None] * 4, "Int64"),
            "s": pd.Series([None] * 4, dtype="str"),
            "c": pd.Categorical([None] * 4),
            "t": pd.to_datetime([None] * 4),
            "b": pd.array([None] * 4, "boolean"),
        }
    )
    p = profile(df)
    _dumps(p)
    for name in ("f", "I"):
        col = p["columns"][name]
        assert (col["count"], col["nulls"]) == (0, 4)
        assert col["mean"] is col["std"] is col["min"] is col["max"] is None
        assert col["quantiles"] == dict.fromkeys(QUANTILES)
        assert col["histogram"] == {"edges": [], "counts": [], "nan": 4, "inf": 0}
    for name in ("s", "c", "b"):
        col = p["columns"][name]
        assert (col["count"], col["nulls"], col["unique"], col["top"], col["other"]) == (0, 4, 0, [], 0)
    assert p["columns"]["b"]["mean"] is None
    assert p["columns"]["t"] == {
        "dtype": "datetime",
        "kind": "datetime",
        "count": 0,
        "nulls": 4,
        "min": None,
        "max": None,
    }

    empty = profile(df.iloc[:0])
    _dumps(empty)
    assert empty["rows"] == 0
    assert empty["columns"]["f"]["histogram"] == {"edges": [], "counts": [], "nan": 0, "inf": 0}
    assert empty["columns"]["s"]["count"] == 0
    assert profile(pd.DataFrame()) == {"rows": 0, "columns": {}}


def test_profile_single_value_has_no_std() -> None:
    col = profile(pd.DataFrame({"x": [1.5, np.nan]}))["columns"]["x"]
    assert col["std"] is None and col["mean"] == 1.5


def test_profile_categorical_top_k_and_other() -> None:
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 3 + ["d"] + [None] * 2
    for series in (pd.Series(values, dtype="str"), pd.Series(pd.Categorical(values, categories=list("dcbaz")))):
        col = profile(pd.DataFrame({"s": series}), top_k=2)["columns"]["s"]
        assert col["count"] == 12 and col["nulls"] == 2 and col["unique"] == 4
        assert col["top"] == [{"value": "a", "count": 5}, {"value": "b", "count": 3}]
        assert col["other"] == 4
    col = profile(pd.DataFrame({"s": values}), top_k=0)["columns"]["s"]
    assert col["top"] == [] and col["other"] == 12


def test_profile_bool_and_datetime() -> None:
    p = profile(pd.DataFrame({"b": [True, True, False], "t": pd.to_datetime(["2024-01-02", None, "2024-01-01"])}))
    _dumps(p)
    b = p["columns"]["b"]
    assert b["kind"] == "bool" and b["top"] == [{"value": True, "count": 2}, {"value": False, "count": 1}]
    assert b["mean"] == pytest.approx(2 / 3)
    t = p["columns"]["t"]
    assert (t["count"], t["nulls"], t["min"], t["max"]) == (2, 1, "2024-01-01T00:00:00", "2024-01-02T00:00:00")


def test_profile_is_json_for_every_kind() -> None:
    df = mixed()
    df["o"] = pd.Series([[1], "a"] * (len(df) // 2), dtype=object)
    df["d"] = pd.to_timedelta(np.arange(len(df)), unit="s")
    p = profile(df)
    assert json.loads(_dumps(p)) == p
    assert list(p["columns"]) == list(df.columns)
    assert p["columns"]["d"]["max"] == len(df) - 1


def test_profile_validates_arguments() -> None:
    df = pd.DataFrame({"a": [1]})
    with pytest.raises(ValidationError, match="bins"):
        profile(df, bins=0)
    with pytest.raises(ValidationError, match="top_k"):
        profile(df, top_k=-1)


# --------------------------------------------------------------------------------------------- reservoir


def test_reservoir_is_bounded_deterministic_and_ordered() -> None:
    df = pd.DataFrame({"a": np.arange(50_000)}, index=np.arange(50_000) * 2)
    first = reservoir(df, n=1_000, seed=7)
    assert len(first) == 1_000
    assert first.equals(reservoir(df, n=1_000, seed=7))
    assert not first.equals(reservoir(df, n=1_000, seed=8))
    assert first["a"].is_monotonic_increasing and first["a"].is_unique
    assert (first.index == first["a"] * 2).all()
    assert len(reservoir(df)) == 10_000


def test_reservoir_small_frames_keep_every_row() -> None:
    df = pd.DataFrame({"a": [3, 1, 2]})
    assert reservoir(df, n=10).equals(df)
    assert len(reservoir(df, n=0)) == 0
    with pytest.raises(ValidationError):
        reservoir(df, n=-1)
