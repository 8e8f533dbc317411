"""Dataset versions: content hash, schema, profile and sample (layer: datasets; pure computation).

A dataset version's id is :func:`content_hash` of its frame, so the same data logged twice is one version.
Everything here is computed with numpy, pandas and pyarrow, column by column, without per-row Python (except
the documented fallback for ``object`` columns that do not hold only strings).

Canonical dtypes (``schema()[i]["dtype"]``) and kinds:

===============================================  =========================  ===============
pandas dtype                                     canonical dtype            kind
===============================================  =========================  ===============
``int8..int64``, ``uint8..uint64``, ``Int64``…   ``int8`` … ``uint64``      ``numeric``
``float16..float64``, ``Float64``…               ``float16`` … ``float64``  ``numeric``
``timedelta64[*]``                               ``timedelta``              ``numeric``
``bool``, ``boolean``                            ``bool``                   ``bool``
``datetime64[*]``, ``datetime64[*, tz]``         ``datetime``               ``datetime``
``str``, ``string``, ``object`` of only strings  ``string``                 ``categorical``
``category``                                     ``category``               ``categorical``
anything else (mixed ``object``, period, …)      ``object``                 ``categorical``
===============================================  =========================  ===============

Numpy and pandas' nullable ("masked") and ``pd.ArrowDtype`` flavours of a type share one canonical dtype.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stead.errors import ValidationError

__all__ = ["QUANTILES", "content_hash", "profile", "reservoir", "schema", "to_frame"]

HASH_FORMAT = b"stead.dataset.v1\x00"
"""Prefix of every content hash; bump it (and document) if the canonical bytes ever change."""

QUANTILES: dict[str, float] = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}

_ACCEPTED = "a pandas DataFrame or Series, a numpy array, or a path to a .parquet/.pq or .csv file"
_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_INT64_MIN = np.iinfo(np.int64).min
_WORKERS = 2
_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


# --------------------------------------------------------------------------------------------------- to_frame


def to_frame(data: object) -> pd.DataFrame:
    """Turn what a user logs into a DataFrame.

    - a ``DataFrame`` is used as is (a shallow copy with ``str`` column names when some names are not
      strings, so ``0`` becomes ``"0"``); a ``Series`` becomes one column named after it (``"x0"`` if unnamed);
    - a numpy array: 1-D becomes one column ``"x0"``, 2-D becomes columns ``"x0", "x1", …``; a structured
      array uses its field names;
    - a ``str`` or ``Path`` to a ``.parquet``/``.pq`` file or folder (read with pyarrow) or a ``.csv`` file
      (read with pandas, floats parsed round-trip exact; dtypes are inferred, so a CSV can give another id
      than the frame it was written from, e.g. for categoricals or datetimes).

    Raises ``ValidationError`` for any other type, a missing or unreadable file, an unknown suffix, an array
    of more than two dimensions, or duplicate column names.
    """
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, pd.Series):
        frame = data.to_frame(name=str(data.name) if data.name is not None else "x0")
    elif isinstance(data, np.ndarray):
        frame = _from_array(data)
    elif isinstance(data, (str, Path)):
        frame = _read_file(Path(data))
    else:
        raise ValidationError(
            f"cannot log a dataset of type {type(data).__module__}.{type(data).__qualname__}",
            hint=f"pass {_ACCEPTED}",
        )
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.copy(deep=False)
        frame.columns = pd.Index([str(c) for c in frame.columns], dtype=object)
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise ValidationError(
            f"duplicate column names: {', '.join(duplicated)}", hint="give every column a distinct name"
        )
    return frame


def _from_array(arr: npt.NDArray[Any]) -> pd.DataFrame:
    if arr.dtype.names:
        if arr.ndim != 1:
            raise ValidationError(f"a structured array must be 1-D, got {arr.ndim} dimensions")
        return pd.DataFrame({name: arr[name] for name in arr.dtype.names})
    if arr.ndim == 1:
        return pd.DataFrame({"x0": arr})
    if arr.ndim == 2:
        return pd.DataFrame({f"x{i}": arr[:, i] for i in range(arr.shape[1])}, index=pd.RangeIndex(arr.shape[0]))
    raise ValidationError(
        f"a numpy array must have 1 or 2 dimensions, got {arr.ndim}", hint="reshape it to (rows, columns)"
    )


def _read_file(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ValidationError(f"no such file: {path}", hint="check the path (relative paths start at the cwd)")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            frame: pd.DataFrame = pq.read_table(path).to_pandas()
            return frame
        if suffix == ".csv":
            # pandas >= 3 parses floats round-trip exact by default (and deprecates the option)
            options: dict[str, Any] = {} if _PANDAS_MAJOR >= 3 else {"float_precision": "round_trip"}
            csv: pd.DataFrame = pd.read_csv(path, **options)
            return csv
    except (OSError, ValueError, pa.ArrowException, pd.errors.ParserError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}", hint="is it a valid Parquet or CSV file?") from exc
    raise ValidationError(
        f"cannot read {path}: unknown suffix {path.suffix!r}", hint="use a .parquet, .pq or .csv file"
    )


def _require_frame(df: object, what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(
            f"{what} needs a pandas DataFrame, got {type(df).__qualname__}",
            hint="convert it with stead.datasets.to_frame() first",
        )
    return df


# --------------------------------------------------------------------------------------------------- dtypes


def canonical_dtype(col: pd.Series[Any]) -> str:
    """The canonical dtype name of one column (see the module docstring's table)."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if isinstance(dtype, pd.ArrowDtype):
        if pa.types.is_timestamp(dtype.pyarrow_dtype):
            return "datetime"
        if pa.types.is_duration(dtype.pyarrow_dtype):
            return "timedelta"
    elif isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    elif pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if pd.api.types.is_bool_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        np_dtype = dtype if isinstance(dtype, np.dtype) else getattr(dtype, "numpy_dtype", None)
        if isinstance(np_dtype, np.dtype) and np_dtype.kind in "iuf":
            return np_dtype.name
        return "object"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(col, skipna=True)
        return "string" if inferred in ("string", "empty") else "object"
    if pd.api.types.is_string_dtype(dtype):
        if isinstance(dtype, pd.ArrowDtype) and not (
            pa.types.is_string(dtype.pyarrow_dtype) or pa.types.is_large_string(dtype.pyarrow_dtype)
        ):
            return "object"
        return "string"
    return "object"


_KINDS = {"bool": "bool", "datetime": "datetime", "string": "categorical", "category": "categorical"}


def _kind(dtype: str) -> str:
    if dtype in _KINDS:
        return _KINDS[dtype]
    return "categorical" if dtype == "object" else "numeric"


def schema(df: pd.DataFrame) -> list[dict[str, str]]:
    """``[{"name", "dtype", "kind"}, …]`` in column order; dtype and kind as in the module docstring's table."""
    df = _require_frame(df, "schema()")
    out = []
    for i, name in enumerate(df.columns):
        dtype = canonical_dtype(df.iloc[:, i])
        out.append({"name": str(name), "dtype": dtype, "kind": _kind(dtype)})
    return out


# --------------------------------------------------------------------------------------------------- canonical values


def _numeric(col: pd.Series[Any], dtype: str) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_] | None]:
    """Values as a native numpy array of ``dtype`` and the null mask (None when there are no nulls).

    Nulls of float columns are NaN (no mask); nulls of int/bool columns are filled with 0/False and masked.
    """
    np_dtype = np.dtype(dtype)
    if isinstance(col.dtype, np.dtype):
        return np.ascontiguousarray(col.to_numpy()), None
    mask = col.isna().to_numpy(dtype=bool)
    if np_dtype.kind == "f":
        return np.ascontiguousarray(col.to_numpy(dtype=np_dtype, na_value=np.nan)), None
    fill = False if np_dtype.kind == "b" else 0
    values = np.ascontiguousarray(col.to_numpy(dtype=np_dtype, na_value=fill))
    return values, (mask if mask.any() else None)


def _epoch_ints(col: pd.Series[Any]) -> tuple[npt.NDArray[np.int64], str]:
    """A datetime/timedelta column as int64 nanoseconds (NaT = int64 min) and the hash token's unit suffix.

    Values that do not fit in int64 nanoseconds (years outside 1677-2262) keep their own unit, returned as "@unit".
    """
    if isinstance(col.dtype, pd.ArrowDtype):  # timestamp or duration: int64 in its unit (UTC), nulls as NaT
        arrow = pa.array(col)
        if isinstance(arrow, pa.ChunkedArray):
            arrow = arrow.combine_chunks()
        unit = str(arrow.type.unit)
        ints = np.ascontiguousarray(pc.fill_null(arrow.cast(pa.int64()), _INT64_MIN).to_numpy(), dtype=np.int64)
    else:
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            col = col.dt.tz_convert("UTC").dt.tz_localize(None)
        arr = col.to_numpy()
        unit = np.datetime_data(arr.dtype)[0]
        ints = np.ascontiguousarray(arr.view(np.int64))
    factor = _NS_PER_UNIT.get(unit)
    if factor is None:
        return ints, f"@{unit}"
    if factor == 1:
        return ints, ""
    nat = ints == _INT64_MIN
    limit = np.iinfo(np.int64).max // factor
    if bool(np.any(np.abs(np.where(nat, 0, ints)) > limit)):
        return ints, f"@{unit}"
    out = ints * factor
    out[nat] = _INT64_MIN
    return out, ""


def _timezone(col: pd.Series[Any]) -> str | None:
    """The time zone name of a tz-aware datetime column, else None."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return str(col.dtype.tz)
    if isinstance(col.dtype, pd.ArrowDtype):
        tz = getattr(col.dtype.pyarrow_dtype, "tz", None)
        return str(tz) if tz else None
    return None


def _large_strings(obj: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(obj, pa.ChunkedArray):
        obj = obj.combine_chunks() if obj.num_chunks != 1 else obj.chunk(0)
    if obj.type != pa.large_string():
        obj = obj.cast(pa.large_string())
    return obj


def _strings(col: pd.Series[Any]) -> pa.Array:
    """A string column (or the decoded values of a string categorical) as one pyarrow ``large_string`` array."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        categories = _large_strings(pa.array(col.cat.categories.to_numpy(dtype=object), type=pa.large_string()))
        indices = pa.array(codes, mask=codes < 0) if len(categories) else pa.nulls(len(codes), pa.int64())
        return _large_strings(pc.take(categories, indices))
    return _large_strings(pa.array(col, type=pa.large_string(), from_pandas=True))


def _tagged_repr(values: npt.NDArray[Any]) -> pa.Array:
    """The ``object`` fallback: each value as ``"<module.type>:<repr>"``, nulls as null (one Python call per value)."""
    mask = pd.isna(values)
    text = [
        None if m else f"{type(v).__module__}.{type(v).__qualname__}:{v!r}" for v, m in zip(values, mask, strict=True)
    ]
    return pa.array(text, type=pa.large_string())


# --------------------------------------------------------------------------------------------------- content hash


def _feed_mask(h: Any, mask: npt.NDArray[np.bool_] | None) -> None:
    if mask is None or not mask.any():
        h.update(b"N")
    else:
        h.update(b"M")
        h.update(np.packbits(mask, bitorder="little").tobytes())


def _feed_strings(h: Any, arr: pa.Array) -> None:
    """Feed a large_string array: null mask, then int64 LE lengths, then the UTF-8 bytes (nulls as empty)."""
    nulls = arr.null_count
    _feed_mask(h, arr.is_null().to_numpy(zero_copy_only=False) if nulls else None)
    if nulls:
        arr = pc.fill_null(arr, "")
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64, count=len(arr) + 1, offset=arr.offset * 8)
    h.update(np.diff(offsets).astype("<i8", copy=False).tobytes())
    if len(arr) and buffers[2] is not None:
        h.update(memoryview(buffers[2])[int(offsets[0]) : int(offsets[-1])])


def _feed_numeric(h: Any, values: npt.NDArray[Any], mask: npt.NDArray[np.bool_] | None) -> None:
    _feed_mask(h, mask)
    kind = values.dtype.kind
    if kind == "b":
        values = values.view(np.uint8)
    elif kind == "f":
        values = values + values.dtype.type(0)  # a copy in which -0.0 is 0.0
        nan = np.isnan(values)
        if nan.any():
            values[nan] = np.nan  # one canonical NaN bit pattern
    if mask is not None:
        values = np.where(mask, values.dtype.type(0), values)
    h.update(np.ascontiguousarray(values.astype(values.dtype.newbyteorder("<"), copy=False)).data)


def _feed_values(h: Any, col: pd.Series[Any], dtype: str, null: npt.NDArray[np.bool_] | None) -> None:
    """Feed the null mask and canonical values of a non-categorical column; ``null`` marks extra nulls."""
    if dtype == "string":
        arr = _strings(col)
        if null is not None:
            arr = pc.if_else(pa.array(null), pa.scalar(None, pa.large_string()), arr)
        _feed_strings(h, arr)
    elif dtype in ("datetime", "timedelta"):
        ints, unit_suffix = _epoch_ints(col)
        if null is not None:
            ints = np.where(null, _INT64_MIN, ints)
        h.update(f"{unit_suffix}\x00".encode())
        _feed_numeric(h, ints, None)
    elif dtype == "object":
        objects = col.to_numpy(dtype=object)
        if null is not None:
            objects = objects.copy()
            objects[null] = None
        _feed_strings(h, _tagged_repr(objects))
    else:
        values, mask = _numeric(col, dtype)
        if null is not None:
            if values.dtype.kind == "f":
                values = np.where(null, np.nan, values)
            else:
                mask = null if mask is None else (mask | null)
        _feed_numeric(h, values, mask)


def _column_digest(col: pd.Series[Any]) -> bytes:
    """sha256 over the column's hash token, row count, null mask and canonical values."""
    dtype = canonical_dtype(col)
    h = hashlib.sha256()
    if isinstance(col.dtype, pd.CategoricalDtype):
        categories = pd.Series(col.cat.categories)
        inner = canonical_dtype(categories)
        token = f"category<{inner}>"
        if col.dtype.ordered:
            token += ":ordered:" + _column_digest(categories).hex()
        h.update(f"{token}\x00".encode())
        h.update(len(col).to_bytes(8, "little"))
        if inner == "string":
            _feed_strings(h, _strings(col))
        else:  # decode to the categories' own type (null rows take category 0, then are masked)
            codes = col.cat.codes.to_numpy()
            null = codes < 0
            if len(categories):
                decoded = categories.iloc[np.where(null, 0, codes)].reset_index(drop=True)
            else:
                decoded = pd.Series([None] * len(col), dtype=object)
            _feed_values(h, decoded, inner, null if null.any() else None)
        return h.digest()
    token = dtype
    if dtype == "datetime":
        tz = _timezone(col)
        token = f"datetime[{tz}]" if tz is not None else "datetime"
    h.update(f"{token}\x00".encode())
    h.update(len(col).to_bytes(8, "little"))
    _feed_values(h, col, dtype, None)
    return h.digest()


def content_hash(df: pd.DataFrame) -> str:
    """The dataset version id: a 64-character lowercase hex sha256 of the frame's content.

    It covers, in this order: a format tag (``stead.dataset.v1``), the number of rows and columns, and for each
    column in order its name (``str(name)``, UTF-8) and the sha256 of:

    - its hash token: the canonical dtype (module docstring), refined where the values' meaning differs:
      ``datetime[<tz>]`` for tz-aware datetimes, ``category<inner>`` with the categories' canonical dtype (and,
      for ordered categoricals, the digest of the category order);
    - the row count, and the null mask (``N`` when there are no nulls, else ``M`` + the mask's bits packed
      little-endian); so a null differs from every value, and ``None`` differs from the string ``"None"``;
    - the values in row order, as canonical bytes: ints and floats as their little-endian raw values (nulls
      of nullable ints as 0 under the mask; floats with one canonical NaN, which is also their null, and
      ``-0.0`` as ``0.0``); bools as one byte; datetimes and timedeltas as int64 nanoseconds since the
      epoch (UTC for tz-aware; NaT as int64 min; a column outside the nanosecond range keeps its unit, which is
      then hashed too); strings as int64 little-endian byte lengths then the UTF-8 bytes (nulls as empty under
      the mask); categoricals as their decoded values (so neither category order nor unused categories
      count, unless ordered); other ``object`` columns as ``"<module.type>:<repr>"`` strings.

    It does not cover the index, column-level metadata (``df.attrs``), or which numpy/pandas/pyarrow
    flavour stores a type (``int64`` and ``Int64`` without nulls, ``object`` strings and ``str`` hash alike);
    the same data therefore gets the same id in any process, on any machine and with any library versions.
    Reordered rows, a renamed column or a changed dtype (``int64`` vs ``float64``) give a new id.
    """
    df = _require_frame(df, "content_hash()")
    columns = [df.iloc[:, i] for i in range(df.shape[1])]
    digests = _map(_column_digest, columns, len(df))
    h = hashlib.sha256(HASH_FORMAT)
    h.update(len(df).to_bytes(8, "little"))
    h.update(len(columns).to_bytes(8, "little"))
    for name, digest in zip(df.columns, digests, strict=True):
        encoded = str(name).encode("utf-8")
        h.update(len(encoded).to_bytes(8, "little"))
        h.update(encoded)
        h.update(digest)
    return h.hexdigest()


def _map(fn: Any, items: list[Any], rows: int) -> list[Any]:
    """``[fn(x) for x in items]``, on two threads when there is enough work (hashlib and numpy release the GIL)."""
    if len(items) < 2 or rows * len(items) < 200_000:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="stead-dataset") as pool:
        return list(pool.map(fn, items))


# --------------------------------------------------------------------------------------------------- profile


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value + 0.0 if math.isfinite(value) else None  # + 0.0: no "-0.0" in the JSON
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def _float(value: Any) -> float | None:
    out = float(value) + 0.0
    return out if math.isfinite(out) else None


def _numeric_profile(col: pd.Series[Any], dtype: str, bins: int) -> dict[str, Any]:
    if dtype == "timedelta":
        ints, _ = _epoch_ints(col)
        values: npt.NDArray[Any] = np.where(ints == _INT64_MIN, np.nan, ints / 1e9)
        mask: npt.NDArray[np.bool_] | None = None
    else:
        values, mask = _numeric(col, dtype)
    n = len(values)
    if values.dtype.kind == "f":
        as_float = values.astype(np.float64, copy=False)
        nan = np.isnan(as_float)
        nulls = int(nan.sum())
        finite_mask = np.isfinite(as_float)
        n_finite = int(finite_mask.sum())
        finite = as_float if n_finite == n else as_float[finite_mask]
        exact = finite
    else:
        valid = np.ones(n, dtype=bool) if mask is None else ~mask
        nulls = n - int(valid.sum())
        exact = values if mask is None else values[valid]
        finite = exact.astype(np.float64)
        n_finite = len(finite)
    inf = n - nulls - n_finite
    out: dict[str, Any] = {"count": n - nulls, "nulls": nulls}
    if n_finite == 0:
        out.update({"mean": None, "std": None, "min": None, "max": None})
        out["quantiles"] = dict.fromkeys(QUANTILES)
        out["histogram"] = {"edges": [], "counts": [], "nan": nulls, "inf": inf}
        return out
    ordered = np.sort(finite)
    lo, hi = ordered[0], ordered[-1]
    exact_min: Any = lo if exact is finite else exact.min()
    exact_max: Any = hi if exact is finite else exact.max()
    out["mean"] = _float(np.mean(ordered))
    out["std"] = _float(np.std(ordered, ddof=1)) if n_finite > 1 else None
    out["min"] = _json_scalar(exact_min)
    out["max"] = _json_scalar(exact_max)
    out["quantiles"] = {key: _float(_sorted_quantile(ordered, q)) for key, q in QUANTILES.items()}
    edges = np.linspace(lo - 0.5, hi + 0.5, bins + 1) if lo == hi else np.linspace(lo, hi, bins + 1)
    left = np.searchsorted(ordered, edges, side="left")
    counts = np.diff(left)
    counts[-1] += n_finite - left[-1]  # the last bin is closed: [e[-2], e[-1]]
    out["histogram"] = {
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "nan": nulls,
        "inf": inf,
    }
    return out


def _sorted_quantile(ordered: npt.NDArray[np.float64], q: float) -> float:
    """numpy's default ("linear") quantile of an already sorted array."""
    pos = q * (len(ordered) - 1)
    below = math.floor(pos)
    above = min(below + 1, len(ordered) - 1)
    frac = pos - below
    a, b = float(ordered[below]), float(ordered[above])
    return a + (b - a) * frac if frac else a


def _categorical_profile(col: pd.Series[Any], dtype: str, top_k: int) -> dict[str, Any]:
    n = len(col)
    if dtype == "object":
        try:
            counts = col.value_counts(dropna=True, sort=False)
        except TypeError:  # unhashable values (lists, dicts): count their text
            counts = col.map(repr, na_action="ignore").value_counts(dropna=True, sort=False)
    else:
        counts = col.value_counts(dropna=True, sort=False)
    counts = counts[counts.to_numpy() > 0]  # unused categories
    count = int(counts.sum())
    freq = counts.to_numpy(dtype=np.int64)
    keys = counts.index
    if top_k and len(freq) > top_k:
        threshold = np.partition(freq, len(freq) - top_k)[len(freq) - top_k]
        keep = np.flatnonzero(freq >= threshold)
    else:
        keep = np.arange(len(freq)) if top_k else np.arange(0)
    candidates = [(int(freq[i]), _json_scalar(keys[int(i)])) for i in keep]
    candidates.sort(key=lambda item: (-item[0], str(item[1])))
    top = [{"value": value, "count": c} for c, value in candidates[:top_k]]
    out: dict[str, Any] = {
        "count": count,
        "nulls": n - count,
        "unique": len(freq),
        "top": top,
        "other": count - sum(item["count"] for item in top),
    }
    return out


def _datetime_profile(col: pd.Series[Any]) -> dict[str, Any]:
    nulls = int(col.isna().sum())
    out: dict[str, Any] = {"count": len(col) - nulls, "nulls": nulls, "min": None, "max": None}
    if nulls < len(col):
        out["min"] = _json_scalar(col.min())
        out["max"] = _json_scalar(col.max())
    return out


def _column_profile(args: tuple[pd.Series[Any], int, int]) -> dict[str, Any]:
    col, bins, top_k = args
    dtype = canonical_dtype(col)
    kind = _kind(dtype)
    head: dict[str, Any] = {"dtype": dtype, "kind": kind}
    if kind == "numeric":
        return head | _numeric_profile(col, dtype, bins)
    if kind == "datetime":
        return head | _datetime_profile(col)
    body = _categorical_profile(col, dtype, top_k)
    if kind == "bool":
        true = next((item["count"] for item in body["top"] if item["value"] is True), 0)
        body["mean"] = true / body["count"] if body["count"] else None
    return head | body


def profile(df: pd.DataFrame, bins: int = 20, top_k: int = 20) -> dict[str, Any]:
    """A JSON-serializable summary of every column, used for display and as the drift reference.

    Shape::

        {"rows": N, "columns": {name: column_profile, …}}       # columns in frame order

    Every column profile has ``dtype`` and ``kind`` (as in :func:`schema`), ``count`` (non-null values) and
    ``nulls``. Then, by kind:

    - ``numeric``: ``mean``, ``std`` (sample, ddof=1; None with fewer than 2 finite values), ``min``, ``max``
      (ints stay ints), ``quantiles`` {p01, p05, p25, p50, p75, p95, p99} (numpy's linear method), and
      ``histogram`` {``edges`` (bins + 1 floats), ``counts`` (bins ints), ``nan``, ``inf``}. All statistics
      are over the finite values; NaN (and the nulls of nullable ints) are counted in ``nulls`` and
      ``histogram.nan``, +/-inf in ``histogram.inf`` (and in ``count``). The bins are equal-width over
      [min, max], each [e_i, e_i+1) except the last, which is closed (``numpy.histogram``'s convention);
      counts are exact and sum to the finite values. A constant column (min == max) gets bins over
      [v - 0.5, v + 0.5], as numpy does, with every value in the middle bin. With no finite value (empty,
      all-null or all-inf columns) the statistics and quantiles are None and edges/counts are empty lists.
      ``timedelta`` columns are profiled in seconds.
    - ``categorical`` (string, category, object) and ``bool``: ``unique`` (distinct non-null values),
      ``top`` (up to ``top_k`` items ``{"value", "count"}``, by count descending then value text ascending)
      and ``other`` (the non-null values outside ``top``). Values keep their JSON type (category of ints ->
      ints, bools -> true/false; anything not JSON-native as text). ``bool`` columns also have ``mean``, the
      share of true values (None when there is no value).
    - ``datetime``: ``min`` and ``max`` as ISO 8601 strings (None when there is no value).

    No statistic is NaN or infinite (those become None), so ``json.dumps(..., allow_nan=False)`` works.
    """
    df = _require_frame(df, "profile()")
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValidationError(f"bins must be a positive integer, got {bins!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValidationError(f"top_k must be a non-negative integer, got {top_k!r}")
    columns = [df.iloc[:, i] for i in range(df.shape[1])]
    profiles = _map(_column_profile, [(col, bins, top_k) for col in columns], len(df))
    return {"rows": len(df), "columns": {str(name): p for name, p in zip(df.columns, profiles, strict=True)}}


# --------------------------------------------------------------------------------------------------- sample


def reservoir(df: pd.DataFrame, n: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """A uniform sample of ``n`` rows without replacement (all rows when there are no more than ``n``).

    The same frame, ``n`` and ``seed`` always give the same rows; they keep their original order and index.
    """
    df = _require_frame(df, "reservoir()")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValidationError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError(f"seed must be a non-negative integer, got {seed!r}")
    if len(df) <= n:
        return df
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(df), size=n, replace=False))
    return df.iloc[rows]


# ---------------------------------------------------------------- recording in a store
def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), sink, compression="lz4")
    return bytes(sink.getvalue().to_pybytes())


def _read_parquet(raw: bytes) -> pd.DataFrame:
    import pyarrow.parquet as pq

    frame: pd.DataFrame = pq.read_table(pa.BufferReader(raw)).to_pandas()
    return frame


def record_dataset(store: Any, name: str, data: object, *, store_data: bool = True) -> Any:
    """Record ``data`` as a dataset version in ``store`` and return the ``DatasetVersion``.

    The id is :func:`content_hash`; a version already recorded is returned as is (its profile is not
    recomputed), and only its data blob is added if it was recorded with ``store_data=False`` before.
    The Parquet bytes are durable in the artifact store before the row that points at them is written.
    """
    from stead.entities import check_name

    check_name(name, "dataset name")
    frame = to_frame(data)
    source = str(data) if isinstance(data, str | Path) else None
    dataset_id = content_hash(frame)
    if store.has_dataset(dataset_id):
        existing = store.get_dataset(dataset_id)
        if existing.data_digest is not None or not store_data:
            return existing
    data_digest = store.artifacts.put_bytes(_parquet_bytes(frame)) if store_data else None
    sample_digest = store.artifacts.put_bytes(_parquet_bytes(reservoir(frame)))
    return store.put_dataset(
        dataset_id,
        name,
        rows=len(frame),
        columns=frame.shape[1],
        schema=schema(frame),
        profile=profile(frame),
        data_digest=data_digest,
        sample_digest=sample_digest,
        source=source,
    )


def load_dataset(store: Any, dataset_id: str, *, sample: bool = False) -> pd.DataFrame:
    """Read a stored dataset version back (or its reservoir sample), verified against its id."""
    from stead.errors import IntegrityError, NotFoundError

    version = store.get_dataset(dataset_id)
    digest = version.sample_digest if sample else version.data_digest
    if digest is None:
        raise NotFoundError(
            f"dataset {version.name} ({version.id[:12]}) was logged with store=False: only its hash, profile and "
            "sample were kept",
            hint="log it again with store=True, or load the sample with sample=True",
        )
    frame = _read_parquet(store.artifacts.get_bytes(digest, name=f"dataset {version.name}"))
    if not sample and content_hash(frame) != version.id:
        raise IntegrityError(
            f"dataset {version.name}: the stored data hashes to {content_hash(frame)[:12]}, "
            f"not its id {version.id[:12]}"
        )
    return frame
