from __future__ import annotations

import json
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stead import flavors
from stead.errors import IntegrityError, ValidationError


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series[Any]]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.normal(40, 10, 80), "spend": rng.normal(100, 30, 80)})
    y = pd.Series((X["age"] + X["spend"] / 3 > 73).astype(int), name="churned")
    return X, y


class Doubler:
    """A plain object with predict (pickled only on opt-in)."""

    def predict(self, df: pd.DataFrame) -> Any:
        return df.sum(axis=1).to_numpy() * 2


def test_sklearn_roundtrip_with_signature_and_manifest(tmp_path: Path, data: Any) -> None:
    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    saved = flavors.save_model(model, tmp_path / "m", input_example=X.head(5))
    assert (saved.flavor, saved.format) == ("sklearn", "skops")
    assert set(saved.manifest) == {"model.skops", flavors.META_FILE}
    assert [c["name"] for c in saved.signature["inputs"]] == ["age", "spend"]
    assert saved.signature["inputs"][0]["dtype"] == "float64"
    assert saved.signature["outputs"][0] == {"name": "predictions", "dtype": "int64", "shape": [-1]}
    assert saved.signature["outputs"][1]["shape"] == [-1, 2]
    assert any(r.startswith("scikit-learn==") for r in saved.requirements)
    loaded = flavors.load_model(tmp_path / "m", manifest=saved.manifest)
    shuffled = X[["spend", "age"]]  # columns are taken in signature order
    np.testing.assert_array_equal(loaded.predict(shuffled), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_requirements_take_versions_from_the_recorded_environment(tmp_path: Path, data: Any) -> None:
    X, y = data
    saved = flavors.save_model(
        LinearRegression().fit(X, y), tmp_path / "m", input_example=X, packages=["scikit-learn==0.0.1", "numpy==1.0"]
    )
    assert "scikit-learn==0.0.1" in saved.requirements and "numpy==1.0" in saved.requirements
    with pytest.warns(flavors.FlavorVersionWarning, match=r"scikit-learn==0\.0\.1.*scikit-learn==\d"):
        loaded = flavors.load_model(tmp_path / "m", manifest=saved.manifest)
    assert not hasattr(loaded, "predict_proba")  # a regressor has no probabilities


def test_skops_types_not_audited_at_save_time_are_refused(tmp_path: Path, data: Any) -> None:
    X, y = data
    model = HistGradientBoostingClassifier(max_iter=3).fit(X, y)
    saved = flavors.save_model(model, tmp_path / "m", input_example=X.head())
    assert saved.meta["trusted_types"]  # the tree predictor is audited and recorded
    np.testing.assert_array_equal(flavors.load_model(tmp_path / "m").predict(X), model.predict(X))
    meta_path = tmp_path / "m" / flavors.META_FILE
    meta = json.loads(meta_path.read_text())
    meta["trusted_types"] = []
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(IntegrityError, match="not audited"):
        flavors.load_model(tmp_path / "m")
    with pytest.raises(IntegrityError, match=flavors.META_FILE):
        flavors.load_model(tmp_path / "m", manifest=saved.manifest)


def test_tampered_or_missing_files_are_named(tmp_path: Path, data: Any) -> None:
    X, y = data
    saved = flavors.save_model(LogisticRegression().fit(X, y), tmp_path / "m", input_example=X.head())
    blob = tmp_path / "m" / "model.skops"
    raw = bytearray(blob.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    blob.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=r"'model\.skops'"):
        flavors.load_model(tmp_path / "m", manifest=saved.manifest)
    blob.unlink()
    with pytest.raises(IntegrityError, match=r"'model\.skops' is missing"):
        flavors.verify_folder(tmp_path / "m", saved.manifest)


def test_onnx_conversion_matches_sklearn(tmp_path: Path, data: Any) -> None:
    X, y = data
    model = LogisticRegression().fit(X, y)
    saved = flavors.save_model(model, tmp_path / "m", input_example=X.head(), convert="onnx")
    assert (saved.flavor, saved.format) == ("onnx", "onnx")
    assert any(r.startswith("onnxruntime==") for r in saved.requirements)
    loaded = flavors.load_model(tmp_path / "m", manifest=saved.manifest)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), atol=1e-5)
    with pytest.raises(ValidationError, match="input_example"):
        flavors.save_model(model, tmp_path / "n", convert="onnx")


def test_onnx_model_proto_with_column_inputs(tmp_path: Path) -> None:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    X = pd.DataFrame({"a": np.arange(6, dtype="float32"), "b": np.ones(6, dtype="float32")})
    y = X["a"] * 2 + X["b"]
    model = LinearRegression().fit(X.to_numpy(), y)
    proto = to_onnx(model, initial_types=[("input", FloatTensorType([None, 2]))])
    saved = flavors.save_model(proto, tmp_path / "m", input_example=X)
    loaded = flavors.load_model(tmp_path / "m", manifest=saved.manifest)
    np.testing.assert_allclose(np.ravel(loaded.predict(X)), model.predict(X.to_numpy()), rtol=1e-5)


def test_pickle_needs_opt_in(tmp_path: Path) -> None:
    X = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    with pytest.raises(ValidationError, match="allow_pickle=True"):
        flavors.save_model(Doubler(), tmp_path / "m", input_example=X)
    saved = flavors.save_model(Doubler(), tmp_path / "p", input_example=X, allow_pickle=True)
    assert saved.needs_pickle and saved.flavor == "pickle"
    with pytest.raises(ValidationError, match="opt-in"):
        flavors.load_model(tmp_path / "p")
    np.testing.assert_array_equal(flavors.load_model(tmp_path / "p", allow_pickle=True).predict(X), [8.0, 12.0])
    with pytest.raises(ValidationError, match="no predict"):
        flavors.save_model(object(), tmp_path / "q", allow_pickle=True)


def test_import_path_model_with_artifacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "src"
    pkg.mkdir()
    (pkg / "stead_test_scaler.py").write_text(
        textwrap.dedent(
            """
            import json

            class Scaler:
                def load_context(self, context):
                    with open(context.artifacts["weights"]) as fh:
                        self.w = json.load(fh)

                def predict(self, df):
                    return (df["a"] * self.w["a"] + df["b"] * self.w["b"]).to_numpy()
            """
        )
    )
    monkeypatch.syspath_prepend(str(pkg))
    weights = tmp_path / "weights.json"
    weights.write_text(json.dumps({"a": 2.0, "b": -1.0}))
    X = pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 1.0]})
    saved = flavors.save_model(
        "stead_test_scaler:Scaler", tmp_path / "m", input_example=X, artifacts={"weights": weights}
    )
    assert saved.flavor == "python" and not saved.needs_pickle
    assert "artifacts/weights" in saved.manifest
    loaded = flavors.load_model(tmp_path / "m", manifest=saved.manifest)
    np.testing.assert_array_equal(loaded.predict(X), [1.5, 3.0])
    with pytest.raises(ValidationError, match="not allowed"):
        flavors.save_model("stead_test_scaler:Scaler", tmp_path / "n", artifacts={"../x": weights})
    with pytest.raises(ValidationError, match="cannot import"):
        flavors.save_model("no_such_module_here:X", tmp_path / "o")


def test_numpy_example_gets_positional_columns(tmp_path: Path, data: Any) -> None:
    X, y = data
    model = LogisticRegression().fit(X.to_numpy(), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        saved = flavors.save_model(model, tmp_path / "m", input_example=X.to_numpy()[:5])
        loaded = flavors.load_model(tmp_path / "m")
        assert [c["name"] for c in saved.signature["inputs"]] == ["x0", "x1"]
        np.testing.assert_array_equal(loaded.predict(X.to_numpy()), model.predict(X.to_numpy()))
    assert sys.modules["stead.flavors"] is flavors
