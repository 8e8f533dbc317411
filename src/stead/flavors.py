"""Model flavors: save a model to a folder and load it back, whatever its kind (layer: flavors; no store).

A saved model is a folder holding the model file(s) and ``stead-model.json`` (flavor, format, signature,
requirements, and what loading needs). Its manifest is ``{relative path: sha256}`` of every file; the
registry stores it and ``load_model`` refuses a folder that does not match it, naming the file.

Flavors:

- ``sklearn``: a scikit-learn estimator or pipeline saved with skops. The types skops would not trust by
  default are audited and recorded at save time; loading trusts exactly those and refuses anything new.
- ``onnx``: an ``onnx.ModelProto`` (or its bytes) run with onnxruntime; ``convert="onnx"`` turns a
  scikit-learn model into ONNX with skl2onnx, typing its inputs from the input example.
- ``python``: any class with ``predict`` named by an import path ``"module:Class"``, plus ``artifacts``
  (``{name: file or folder}``) copied beside it; on load the class is built with no arguments and, when it
  has one, ``load_context(context)`` is called with ``context.artifacts`` = ``{name: local path}`` (as in
  MLflow's ``PythonModel``).
- ``pickle``: any object with ``predict``, pickled, only with ``allow_pickle=True`` (loading it runs code
  from the file, so it needs that opt-in recorded on the version).
- ``mlflow``: a model in MLflow's format (an ``MLmodel`` file and its flavor's files, as logged through the
  MLflow API or imported from an MLflow store), loaded with ``mlflow.pyfunc`` (the ``mlflow`` extra). MLflow's
  formats are pickle-based, so it loads only with the recorded opt-in. ``mlflow_meta`` describes such a folder.

Every loaded model is a :class:`LoadedModel`: ``predict(df)`` and, when the model has one,
``predict_proba(df)`` take a pandas DataFrame (columns are picked in signature order) for every flavor.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pickle
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from stead.errors import IntegrityError, MissingDependency, ValidationError

__all__ = [
    "FLAVORS",
    "META_FILE",
    "PICKLE_FORMATS",
    "FlavorVersionWarning",
    "LoadedModel",
    "ProbaModel",
    "SavedModel",
    "folder_manifest",
    "infer_signature",
    "load_model",
    "save_model",
    "verify_folder",
]

META_FILE = "stead-model.json"
FLAVORS = ("sklearn", "onnx", "python", "pickle", "mlflow")
# "mlflow": MLflow's model formats are pickle-based (issue 10), so they need the same recorded opt-in.
PICKLE_FORMATS = frozenset({"pickle", "mlflow"})
# Libraries whose installed version is compared with the recorded one on load, per flavor.
FLAVOR_LIBRARIES: dict[str, tuple[str, ...]] = {
    "sklearn": ("scikit-learn", "skops"),
    "onnx": ("onnxruntime",),
    "python": (),
    "pickle": (),
    "mlflow": ("mlflow-skinny",),
}
_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "sklearn": ("scikit-learn", "skops", "numpy", "scipy"),
    "onnx": ("onnxruntime", "onnx", "numpy"),
    "python": ("numpy", "pandas"),
    "pickle": ("numpy", "pandas"),
    "mlflow": ("mlflow-skinny", "numpy", "pandas"),
}
# skops types that are code execution in disguise: never trusted, whatever the audit says.
_FORBIDDEN_MODULES = ("builtins", "os", "posix", "nt", "subprocess", "sys", "shutil", "pickle", "marshal", "importlib")
_ARTIFACT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_ONNX_TYPES = {
    "float": np.float32,
    "double": np.float64,
    "int64": np.int64,
    "int32": np.int32,
    "string": np.str_,
    "bool": np.bool_,
}


class FlavorVersionWarning(UserWarning):
    """Warned when a model is loaded with another version of its flavor's library than it was saved with."""


@dataclass(frozen=True)
class SavedModel:
    """What ``save_model`` wrote: the flavor, its file format, signature, requirements and manifest."""

    flavor: str
    format: str
    signature: dict[str, Any]
    requirements: list[str]
    manifest: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def needs_pickle(self) -> bool:
        return self.format in PICKLE_FORMATS


# ------------------------------------------------------------------------------------------------ frames


def as_frame(data: Any, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A DataFrame from a DataFrame, Series, dict of columns, list of records or 1-/2-D array."""
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, pd.Series):
        frame = data.to_frame(name=str(data.name) if data.name is not None else "x0")
    elif isinstance(data, Mapping):
        frame = pd.DataFrame(dict(data))
    elif isinstance(data, list) and data and isinstance(data[0], Mapping):
        frame = pd.DataFrame(data)
    else:
        arr = np.asarray(data)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1) if columns is not None and len(columns) == 1 else arr.reshape(1, -1)
        if arr.ndim != 2:
            raise ValidationError(f"model input must be 1-D or 2-D, got {arr.ndim} dimensions")
        names = list(columns) if columns is not None and len(columns) == arr.shape[1] else None
        frame = pd.DataFrame(arr, columns=names or [f"x{i}" for i in range(arr.shape[1])])
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.copy(deep=False)
        frame.columns = pd.Index([str(c) for c in frame.columns], dtype=object)
    return frame


def _simple_dtype(col: pd.Series[Any]) -> str:
    """A dtype name in the canonical vocabulary of ``stead.datasets`` for the common column types.

    The registry's callers (tracking, client) pass the full ``stead.datasets.schema``; this covers direct
    calls of the lower layers, which may not import ``stead.datasets``.
    """
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if pd.api.types.is_bool_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "bool"
    np_dtype = dtype if isinstance(dtype, np.dtype) else getattr(dtype, "numpy_dtype", None)
    if isinstance(np_dtype, np.dtype) and np_dtype.kind in "iuf":
        return np_dtype.name
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.infer_dtype(col, skipna=True) in ("string", "empty"):
        return "string"
    return "object"


def _kind(dtype: str) -> str:
    kinds = {"bool": "bool", "datetime": "datetime", "string": "categorical", "category": "categorical"}
    return kinds.get(dtype, "categorical" if dtype == "object" else "numeric")


def _frame_schema(frame: pd.DataFrame) -> list[dict[str, str]]:
    out = []
    for i, name in enumerate(frame.columns):
        dtype = _simple_dtype(frame.iloc[:, i])
        out.append({"name": str(name), "dtype": dtype, "kind": _kind(dtype)})
    return out


def _output_spec(name: str, value: Any) -> dict[str, Any]:
    arr = np.asarray(value)
    shape = [-1, *arr.shape[1:]]
    dtype = arr.dtype.name if arr.dtype.kind in "biuf" else ("string" if arr.dtype.kind in "USO" else arr.dtype.name)
    return {"name": name, "dtype": dtype, "shape": shape}


def infer_signature(
    input_example: Any = None, model: LoadedModel | None = None, *, input_schema: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``{"inputs": [{name, dtype, kind}…], "outputs": [{name, dtype, shape}…]}`` from an example.

    ``input_schema`` (e.g. ``stead.datasets.schema(frame)``) wins over the example's own dtypes; the outputs
    come from running ``model`` on the example (``predictions``, plus ``probabilities`` when it has them).
    """
    signature: dict[str, Any] = {"inputs": [], "outputs": []}
    frame = None if input_example is None else as_frame(input_example)
    if input_schema is not None:
        signature["inputs"] = [dict(c) for c in input_schema]
    elif frame is not None:
        signature["inputs"] = _frame_schema(frame)
    if model is not None and frame is not None and len(frame):
        signature["outputs"].append(_output_spec("predictions", model.predict(frame)))
        if model.has_proba:
            signature["outputs"].append(_output_spec("probabilities", model.proba(frame)))
    return signature


# ------------------------------------------------------------------------------------------------ manifests


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def folder_manifest(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every regular file under ``folder``, sorted."""
    root = Path(folder)
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[path.relative_to(root).as_posix()] = _sha256_file(path)
    return out


def verify_folder(folder: str | os.PathLike[str], manifest: Mapping[str, str], label: str = "model") -> None:
    """Check every file of ``manifest`` under ``folder``; IntegrityError names a missing, changed or extra file."""
    root = Path(folder)
    if not manifest:
        raise IntegrityError(f"{label}: its manifest is empty", hint="register the model again")
    for name, digest in sorted(manifest.items()):
        path = root / name
        if not path.is_file():
            raise IntegrityError(
                f"{label}: file {name!r} is missing", hint="the stored model is damaged; register it again"
            )
        actual = _sha256_file(path)
        if actual != digest:
            raise IntegrityError(
                f"{label}: file {name!r} was modified: its sha256 is {actual}, the manifest says {digest}",
                hint="the stored model was damaged or tampered with; restore it or register the model again",
                details={"file": name, "expected": digest, "actual": actual},
            )
    extra = sorted(set(folder_manifest(root)) - set(manifest))
    if extra:
        raise IntegrityError(f"{label}: file {extra[0]!r} is not in the manifest", hint="register the model again")


# ------------------------------------------------------------------------------------------------ versions


def installed_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _pinned(packages: Sequence[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in packages or ():
        name, sep, version = str(entry).partition("==")
        if sep:
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def _requirements(dists: Sequence[str], packages: Sequence[str] | None) -> list[str]:
    recorded = _pinned(packages)
    out = []
    for dist in dict.fromkeys(dists):
        version = recorded.get(dist.lower()) or installed_version(dist)
        if version:
            out.append(f"{dist}=={version}")
    return out


def _distribution_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "__main__":
        return None
    dists = metadata.packages_distributions().get(top)
    return dists[0] if dists else None


# ------------------------------------------------------------------------------------------------ save


def _is_sklearn(model: Any) -> bool:
    return any(c.__module__.split(".")[0] == "sklearn" for c in type(model).__mro__) and hasattr(model, "fit")


def _import_path(path: str) -> Any:
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise ValidationError(f"import path {path!r} must look like 'package.module:Class'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationError(
            f"cannot import {module_name!r} for model class {path!r}: {exc}",
            hint="install the package that defines the class, or put it on PYTHONPATH",
        ) from exc
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValidationError(f"module {module_name!r} has no attribute {qualname!r}") from None
    return obj


def save_model(
    model: Any,
    folder: str | os.PathLike[str],
    *,
    input_example: Any = None,
    input_schema: list[dict[str, Any]] | None = None,
    convert: str | None = None,
    allow_pickle: bool = False,
    artifacts: Mapping[str, str | os.PathLike[str]] | None = None,
    packages: Sequence[str] | None = None,
) -> SavedModel:
    """Save ``model`` into the empty folder ``folder`` and describe it (see the module docstring).

    ``packages`` are the ``name==version`` entries of the run's recorded environment; the requirements
    take their versions from there, else from what is installed now.
    """
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValidationError(f"{root} is not empty: a model is saved into a fresh folder")
    if convert not in (None, "onnx"):
        raise ValidationError(f"convert must be None or 'onnx', got {convert!r}")
    example = None if input_example is None else as_frame(input_example)
    columns = [c["name"] for c in input_schema] if input_schema else None
    if columns is None and example is not None:
        columns = [str(c) for c in example.columns]
    if artifacts and not isinstance(model, str):
        raise ValidationError("artifacts go with a model class named by import path, e.g. model='pkg.mod:Class'")

    meta: dict[str, Any] = {"columns": columns}
    if isinstance(model, str):
        flavor, fmt = "python", "import"
        cls = _import_path(model)
        if not hasattr(cls, "predict"):
            raise ValidationError(f"{model} has no predict method", hint="a model class needs predict(df)")
        meta.update({"class": model, "artifacts": _copy_artifacts(artifacts or {}, root / "artifacts")})
        dist = _distribution_of(model.partition(":")[0])
        dists = [*(_REQUIREMENTS["python"]), *([dist] if dist else [])]
    elif convert == "onnx":
        if not _is_sklearn(model):
            raise ValidationError(f"convert='onnx' needs a scikit-learn model, got {type(model).__qualname__}")
        if example is None:
            raise ValidationError(
                "convert='onnx' needs an input_example to type the ONNX inputs", hint="pass input_example=X.head(5)"
            )
        flavor, fmt = "onnx", "onnx"
        meta.update(_convert_to_onnx(model, example, root / "model.onnx"))
        dists = list(_REQUIREMENTS["onnx"])
    elif _is_onnx(model):
        flavor, fmt = "onnx", "onnx"
        data = model if isinstance(model, bytes) else model.SerializeToString()
        (root / "model.onnx").write_bytes(data)
        meta["layout"] = "columns"
        dists = list(_REQUIREMENTS["onnx"])
    elif _is_sklearn(model):
        flavor = "sklearn"
        try:
            meta.update(_save_skops(model, root / "model.skops"))
            fmt = "skops"
        except ValidationError:
            if not allow_pickle:
                raise
            (root / "model.skops").unlink(missing_ok=True)
            fmt = "pickle"
            _save_pickle(model, root / "model.pkl")
        dists = list(_REQUIREMENTS["sklearn"])
    else:
        if not hasattr(model, "predict"):
            raise ValidationError(
                f"cannot register a {type(model).__qualname__}: it has no predict method",
                hint="register a scikit-learn estimator, an ONNX model, or an object with predict(df)",
            )
        if not allow_pickle:
            raise ValidationError(
                f"a {type(model).__module__}.{type(model).__qualname__} can only be stored with pickle, which runs "
                "code when loaded; pass allow_pickle=True to opt in",
                hint="pass allow_pickle=True to opt in, or register its class by import path: model='pkg.mod:Class'",
            )
        flavor, fmt = "pickle", "pickle"
        _save_pickle(model, root / "model.pkl")
        dist = _distribution_of(type(model).__module__)
        dists = [*(_REQUIREMENTS["pickle"]), *([dist] if dist else [])]
    if fmt == "pickle":
        dist = _distribution_of(type(model).__module__)
        meta["libraries"] = [dist] if dist else []
    else:
        meta["libraries"] = list(FLAVOR_LIBRARIES[flavor])
    requirements = _requirements(dists, packages)
    meta.update({"flavor": flavor, "format": fmt, "requirements": requirements})
    meta["has_proba"] = _has_proba(model, flavor, meta)
    _write_meta(root, meta)
    loaded = load_model(root, allow_pickle=True, label="the model being saved", check_versions=False)
    signature = infer_signature(example, loaded, input_schema=input_schema)
    if signature["inputs"] and columns is None:
        meta["columns"] = [c["name"] for c in signature["inputs"]]
    meta["signature"] = signature
    _write_meta(root, meta)
    return SavedModel(flavor, fmt, signature, requirements, folder_manifest(root), meta)


def _write_meta(root: Path, meta: Mapping[str, Any]) -> None:
    (root / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")


def _has_proba(model: Any, flavor: str, meta: Mapping[str, Any]) -> bool:
    if flavor == "onnx":
        return bool(meta.get("proba_output"))
    if flavor == "python":
        return hasattr(_import_path(str(meta["class"])), "predict_proba")
    return hasattr(model, "predict_proba")


def _copy_artifacts(artifacts: Mapping[str, str | os.PathLike[str]], dest: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, src in artifacts.items():
        if not isinstance(name, str) or not _ARTIFACT_RE.fullmatch(name) or ".." in name:
            raise ValidationError(
                f"artifact name {name!r} is not allowed: use 1-128 letters, digits, '_', '.' or '-' "
                f"(pattern {_ARTIFACT_RE.pattern})",
                hint="for example: artifacts={'weights': 'weights.npy'}",
            )
        clean = name
        path = Path(src)
        if not path.exists():
            raise ValidationError(f"artifact {name!r}: {path} does not exist")
        target = dest / clean
        dest.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copyfile(path, target)
        out[clean] = f"artifacts/{clean}"
    return out


def _save_pickle(model: Any, path: Path) -> None:
    try:
        path.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise ValidationError(f"cannot pickle the {type(model).__qualname__}: {exc}") from exc


def _save_skops(model: Any, path: Path) -> dict[str, Any]:
    try:
        import skops.io as sio
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            "scikit-learn models are stored with skops", hint="pip install 'stead[sklearn]'"
        ) from exc
    try:
        sio.dump(model, path)
        untrusted = sorted(sio.get_untrusted_types(file=path))
    except Exception as exc:  # skops raises TypeError and friends for what it cannot store
        raise ValidationError(
            f"skops cannot store this {type(model).__qualname__}: {exc}",
            hint="pass allow_pickle=True to store it with pickle (loading then needs that opt-in)",
        ) from exc
    forbidden = [t for t in untrusted if t.split(".")[0] in _FORBIDDEN_MODULES]
    if forbidden:
        raise ValidationError(
            f"this model holds {', '.join(forbidden)}, which skops would have to trust to load it",
            hint="pass allow_pickle=True to store it with pickle (loading then needs that opt-in)",
        )
    return {"trusted_types": untrusted}


def _is_onnx(model: Any) -> bool:
    return type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx")


def _onnx_type(dtype: str) -> Any:
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    if dtype == "bool":
        return BooleanTensorType([None, 1])
    if dtype.startswith(("int", "uint")):
        return Int64TensorType([None, 1])
    if dtype == "float64":
        return DoubleTensorType([None, 1])
    if dtype.startswith("float"):
        return FloatTensorType([None, 1])
    return StringTensorType([None, 1])


def _convert_to_onnx(model: Any, example: pd.DataFrame, path: Path) -> dict[str, Any]:
    try:
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType
    except ModuleNotFoundError as exc:
        raise MissingDependency("convert='onnx' needs skl2onnx", hint="pip install 'stead[onnx]'") from exc
    schema = _frame_schema(example)
    numeric = all(c["kind"] in ("numeric", "bool") for c in schema)
    options: dict[Any, Any] = {}
    if hasattr(model, "predict_proba"):
        options = {"zipmap": False}
    try:
        if numeric:
            types = [("X", FloatTensorType([None, len(schema)]))]
            layout = "matrix"
        else:
            types = [(c["name"], _onnx_type(c["dtype"])) for c in schema]
            layout = "columns"
        onx = to_onnx(model, initial_types=types, options=options or None, target_opset=None)
    except Exception as exc:  # skl2onnx raises many kinds for unsupported models
        raise ValidationError(f"skl2onnx cannot convert this {type(model).__qualname__}: {exc}") from exc
    path.write_bytes(onx.SerializeToString())
    outputs = [o.name for o in onx.graph.output]
    proba = next((o for o in outputs if "prob" in o.lower()), None)
    return {"layout": layout, "proba_output": proba, "label_output": outputs[0]}


# ------------------------------------------------------------------------------------------------ load


class LoadedModel:
    """A loaded model of any flavor: ``predict(df)`` and, when the model has it, ``predict_proba(df)``."""

    def __init__(
        self,
        raw: Any,
        flavor: str,
        meta: Mapping[str, Any],
        predict: Callable[[pd.DataFrame], Any],
        predict_proba: Callable[[pd.DataFrame], Any] | None,
    ) -> None:
        self.raw = raw
        self.flavor = flavor
        self.meta = dict(meta)
        self.signature: dict[str, Any] = dict(meta.get("signature") or {})
        self.columns: list[str] | None = meta.get("columns")
        self._predict = predict
        self._predict_proba = predict_proba
        # Predictions for a float block whose columns are in ``self.columns`` order, past the library's own
        # frame checks (set for scikit-learn estimators that were fitted on these names; see ``_wrap_object``).
        self.predict_block: Callable[[np.ndarray], Any] | None = None
        self.name: str | None = None
        self.version: int | None = None
        self.folder: Path | None = None

    def __repr__(self) -> str:
        what = f"{self.name}/{self.version}" if self.name else type(self.raw).__qualname__
        return f"<LoadedModel {what} flavor={self.flavor}>"

    @property
    def has_proba(self) -> bool:
        return self._predict_proba is not None

    def proba(self, data: Any) -> Any:
        """Class probabilities (``predict_proba``); AttributeError for a model without them."""
        if self._predict_proba is None:
            raise AttributeError(f"this {self.flavor} model has no predict_proba")
        return self._predict_proba(self._frame(data))

    def _frame(self, data: Any) -> pd.DataFrame:
        frame = as_frame(data, self.columns)
        if self.columns:
            missing = [c for c in self.columns if c not in frame.columns]
            if missing:
                raise ValidationError(
                    f"input is missing the column(s) {', '.join(missing)} of the model's signature",
                    hint=f"the model takes: {', '.join(self.columns)}",
                )
            frame = frame[self.columns]
        return frame

    def predict(self, data: Any) -> Any:
        """Predictions for the rows of ``data`` (a DataFrame; its columns are taken in signature order)."""
        return self._predict(self._frame(data))


class ProbaModel(LoadedModel):
    """A loaded model that also has ``predict_proba`` (so ``hasattr(model, "predict_proba")`` tells)."""

    def predict_proba(self, data: Any) -> Any:
        """Class probabilities for the rows of ``data``."""
        return self.proba(data)


def _loaded(
    raw: Any,
    flavor: str,
    meta: Mapping[str, Any],
    predict: Callable[[pd.DataFrame], Any],
    predict_proba: Callable[[pd.DataFrame], Any] | None,
) -> LoadedModel:
    cls = LoadedModel if predict_proba is None else ProbaModel
    return cls(raw, flavor, meta, predict, predict_proba)


def read_meta(folder: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise IntegrityError(f"{folder}: {META_FILE} is missing", hint="register the model again") from None
    return meta


def _check_versions(meta: Mapping[str, Any], label: str) -> None:
    recorded = _pinned(meta.get("requirements"))
    for lib in meta.get("libraries") or ():
        want = recorded.get(str(lib).lower())
        have = installed_version(str(lib))
        if want and have and want != have:
            warnings.warn(
                f"{label} was saved with {lib}=={want}, but {lib}=={have} is installed; predictions may differ",
                FlavorVersionWarning,
                stacklevel=3,
            )


def load_model(
    folder: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    manifest: Mapping[str, str] | None = None,
    label: str = "model",
    check_versions: bool = True,
) -> LoadedModel:
    """Load the model saved in ``folder`` (verified against ``manifest`` when given).

    A pickle-based model needs ``allow_pickle=True``; a flavor library of another version than the
    recorded one gives a ``FlavorVersionWarning``.
    """
    root = Path(folder)
    if manifest is not None:
        verify_folder(root, manifest, label)
    meta = read_meta(root)
    flavor, fmt = str(meta.get("flavor")), str(meta.get("format"))
    if fmt in PICKLE_FORMATS and not allow_pickle:
        raise ValidationError(f"{label} is stored with pickle and may only be loaded with the opt-in")
    if check_versions:
        _check_versions(meta, label)
    if fmt == "skops":
        return _load_skops(root, meta, label)
    if fmt == "pickle":
        raw = pickle.loads((root / "model.pkl").read_bytes())  # the opt-in was checked above
        return _wrap_object(raw, flavor, meta)
    if fmt == "onnx":
        return _load_onnx(root, meta)
    if fmt == "import":
        return _load_python(root, meta)
    if fmt == "mlflow":
        return _load_mlflow(root, meta)
    raise IntegrityError(f"{label}: unknown model format {fmt!r} in {META_FILE}")


def _load_skops(root: Path, meta: Mapping[str, Any], label: str) -> LoadedModel:
    import skops.io as sio

    path = root / "model.skops"
    audited = set(meta.get("trusted_types") or [])
    found = set(sio.get_untrusted_types(file=path))
    new = sorted(found - audited)
    if new:
        raise IntegrityError(
            f"{label}: model.skops holds types that were not audited when it was saved: {', '.join(new)}",
            hint="the stored model was changed after saving; register it again",
        )
    raw = sio.load(path, trusted=sorted(found))
    return _wrap_object(raw, "sklearn", meta)


def _wrap_object(raw: Any, flavor: str, meta: Mapping[str, Any]) -> LoadedModel:
    feature_names = getattr(raw, "feature_names_in_", None)

    def prepare(frame: pd.DataFrame) -> Any:
        if flavor in ("sklearn", "pickle") and _is_sklearn(raw) and feature_names is None:
            return frame.to_numpy()
        return frame

    proba = None
    if hasattr(raw, "predict_proba"):

        def proba(frame: pd.DataFrame) -> Any:
            return raw.predict_proba(prepare(frame))

    loaded = _loaded(raw, flavor, meta, lambda frame: raw.predict(prepare(frame)), proba)
    columns = meta.get("columns")
    if flavor in ("sklearn", "pickle") and _is_sklearn(raw) and columns:
        fitted = list(feature_names) if feature_names is not None else None
        if fitted is None or fitted == list(columns):
            # scikit-learn checks a DataFrame's names and dtypes on every call (about 1 ms for one row with
            # pandas 3); a caller that already holds the columns in fitted order can skip it.
            loaded.predict_block = raw.predict
    return loaded


def _load_onnx(root: Path, meta: Mapping[str, Any]) -> LoadedModel:
    try:
        import onnxruntime as ort
    except ModuleNotFoundError as exc:
        raise MissingDependency("ONNX models run with onnxruntime", hint="pip install 'stead[onnx]'") from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(root / "model.onnx"), options, providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    outputs = [o.name for o in session.get_outputs()]
    layout = meta.get("layout", "columns")
    label_output = meta.get("label_output") or outputs[0]
    proba_output = meta.get("proba_output")

    def _np_type(onnx_type: str) -> Any:
        inner = onnx_type.removeprefix("tensor(").removesuffix(")")
        return _ONNX_TYPES.get(inner, np.float32)

    def feed(frame: pd.DataFrame) -> dict[str, Any]:
        if layout == "matrix" or (len(inputs) == 1 and frame.shape[1] != 1):
            one = inputs[0]
            return {one.name: frame.to_numpy().astype(_np_type(one.type))}
        out: dict[str, Any] = {}
        for spec in inputs:
            position = list(frame.columns).index(spec.name) if spec.name in frame.columns else len(out)
            values = frame.iloc[:, position].to_numpy()
            np_type = _np_type(spec.type)
            values = values.astype(str).astype(object) if np_type is np.str_ else values.astype(np_type)
            out[spec.name] = values.reshape(-1, 1)
        return out

    def run(frame: pd.DataFrame, name: str) -> Any:
        result = session.run([name], feed(frame))[0]
        return result.ravel() if name == label_output and result.ndim == 2 and result.shape[1] == 1 else result

    proba = None
    if proba_output:

        def proba(frame: pd.DataFrame) -> Any:
            return run(frame, str(proba_output))

    return _loaded(session, "onnx", meta, lambda frame: run(frame, str(label_output)), proba)


def _load_python(root: Path, meta: Mapping[str, Any]) -> LoadedModel:
    cls = _import_path(str(meta["class"]))
    raw = cls()
    if hasattr(raw, "load_context"):
        paths = {name: str(root / rel) for name, rel in (meta.get("artifacts") or {}).items()}
        raw.load_context(SimpleNamespace(artifacts=paths))
    return _wrap_object(raw, "python", meta)


# ------------------------------------------------------------------------------------------------ mlflow (issue 10)

MLMODEL_FILE = "MLmodel"
# MLflow column types -> the dtype vocabulary of stead signatures.
_MLFLOW_TYPES = {
    "double": "float64",
    "float": "float32",
    "long": "int64",
    "integer": "int32",
    "boolean": "bool",
    "string": "string",
    "binary": "object",
    "datetime": "datetime",
}


def _mlflow_columns(spec: Any) -> list[dict[str, str]]:
    try:
        cols = json.loads(spec) if isinstance(spec, str) else spec
    except ValueError:
        return []
    out: list[dict[str, str]] = []
    for i, col in enumerate(cols or []):
        if not isinstance(col, dict) or col.get("type") == "tensor":
            return []
        dtype = _MLFLOW_TYPES.get(str(col.get("type")), "object")
        out.append({"name": str(col.get("name", f"x{i}")), "dtype": dtype, "kind": _kind(dtype)})
    return out


def mlflow_meta(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``stead-model.json`` document of an MLflow model folder (one with an ``MLmodel`` file).

    The signature comes from MLmodel's column-based signature (a tensor signature gives no columns), the
    requirements from its ``requirements.txt``; ``has_proba`` tells whether the flavor is scikit-learn's.
    """
    import yaml

    root = Path(folder)
    try:
        mlmodel = yaml.safe_load((root / MLMODEL_FILE).read_text()) or {}
    except FileNotFoundError:
        raise ValidationError(f"{root}: not an MLflow model: it has no {MLMODEL_FILE} file") from None
    if not isinstance(mlmodel, dict):
        raise ValidationError(f"{root}/{MLMODEL_FILE} is not an MLflow model description")
    signature = mlmodel.get("signature") or {}
    inputs = _mlflow_columns(signature.get("inputs")) if isinstance(signature, dict) else []
    requirements: list[str] = []
    req = root / "requirements.txt"
    if req.is_file():
        requirements = [ln.strip() for ln in req.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    flavors_of = mlmodel.get("flavors") or {}
    return {
        "flavor": "mlflow",
        "format": "mlflow",
        "columns": [c["name"] for c in inputs] or None,
        "signature": {"inputs": inputs, "outputs": []},
        "requirements": requirements,
        "libraries": [],
        "has_proba": "sklearn" in flavors_of,
        "mlflow": {
            "flavors": sorted(flavors_of),
            "model_id": mlmodel.get("model_id"),
            "run_id": mlmodel.get("run_id"),
            "mlflow_version": mlmodel.get("mlflow_version"),
        },
    }


def _load_mlflow(root: Path, meta: Mapping[str, Any]) -> LoadedModel:
    with warnings.catch_warnings():  # MLflow's advice about type hints and environments is noise here
        warnings.simplefilter("ignore")
        try:
            import mlflow.pyfunc
        except ModuleNotFoundError as exc:
            raise MissingDependency(
                "models logged through MLflow load with mlflow.pyfunc", hint="pip install 'stead[mlflow]'"
            ) from exc
        model = mlflow.pyfunc.load_model(str(root))
    get_raw = getattr(model, "get_raw_model", None)
    try:
        raw = get_raw() if callable(get_raw) else model
    except Exception:  # a pyfunc flavor without a raw model
        raw = model

    def predict(frame: pd.DataFrame) -> Any:
        out = model.predict(frame)
        return out.to_numpy() if isinstance(out, pd.DataFrame | pd.Series) else np.asarray(out)

    proba = None
    if meta.get("has_proba") and hasattr(raw, "predict_proba"):

        def proba(frame: pd.DataFrame) -> Any:
            feature_names = getattr(raw, "feature_names_in_", None)
            return raw.predict_proba(frame if feature_names is not None else frame.to_numpy())

    return _loaded(model, "mlflow", meta, predict, proba)
