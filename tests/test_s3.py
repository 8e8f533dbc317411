"""Artifacts, dataset Parquet, model files and prediction-log segments on S3 (moto's real server over loopback),
with the metadata in PostgreSQL: everything lands in the bucket and reads back verified."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from stead import deployments, registry
from stead.client import Client
from stead.datasets import load_dataset
from stead.errors import IntegrityError
from stead.serving.predlog import PredictionLog, new_request_id
from stead.settings import Settings
from stead.tracking import start_run


def _objects(s3_server: str, root: str) -> dict[str, bytes]:
    """Every object under the artifact root, read with boto3 (not through stead or s3fs)."""
    bucket, _, prefix = root[len("s3://") :].partition("/")
    s3 = boto3.client("s3", endpoint_url=s3_server)
    out: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            out[item["Key"]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def _digests(objects: dict[str, bytes]) -> set[str]:
    found = set()
    for key, data in objects.items():
        parts = key.split("/")
        assert parts[-3] == "sha256", key
        digest = parts[-2] + parts[-1]
        assert hashlib.sha256(data).hexdigest() == digest, f"{key} does not hold the bytes its name says"
        found.add(digest)
    return found


def test_runs_datasets_models_and_prediction_logs_live_in_s3(
    postgres_url: str, s3_bucket: str, s3_server: str, tmp_path: Path
) -> None:
    client = Client(settings=Settings(uri=postgres_url, artifacts=s3_bucket, user="tester"))
    store: Any = client.store
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X["a"] > 0).astype(int)
    report = tmp_path / "report.txt"
    report.write_text("roc 0.9\n")
    fitted = LogisticRegression().fit(X, y)
    with start_run(experiment="s3", store=store) as run:
        artifact = run.log_artifact(report)
        dataset = run.log_dataset("train", X.assign(y=y))
        version = run.log_model(fitted, name="churn", input_example=X.head(5))

    # The prediction log: a writer on this store compacts its write-ahead file into a Parquet segment in S3.
    deployments.deploy(store, "churn/1", "churn-api")
    log = PredictionLog(store, tmp_path / "wal", rotate_seconds=0.05)
    log.start()
    for i in range(50):
        row = {"a": [float(X["a"][i])], "b": [float(X["b"][i])]}
        record = {"id": new_request_id(), "t": time.time(), "d": "churn-api", "m": "churn", "v": 1, "r": "primary"}
        log.submit({**record, "lat": 0.5, "n": 1, "in": row, "out": {"predictions": [int(y[i])]}})
    log.flush()
    log.stop()
    segments = store.prediction_segments("churn-api")
    assert sum(s["rows"] for s in segments) == 50

    # Everything is in the bucket under its sha256, and nothing is on the local disk.
    objects = _objects(s3_server, s3_bucket)
    stored = _digests(objects)
    assert set(artifact.values()) <= stored
    assert dataset.data_digest in stored and dataset.sample_digest in stored
    assert set(version.manifest.values()) <= stored
    assert {s["digest"] for s in segments} <= stored
    assert not any(p.name.startswith("sha256") for p in tmp_path.rglob("*"))

    # ... and reads back verified.
    assert store.artifacts.get_bytes(artifact["report.txt"]) == report.read_bytes()
    pd.testing.assert_frame_equal(load_dataset(store, dataset.id), X.assign(y=y))
    assert client.load_model("churn/1").predict(X).tolist() == fitted.predict(X).tolist()
    frame = client.get_predictions("churn-api")
    assert len(frame) == 50 and sorted(frame["inputs.a"].tolist()) == sorted(X["a"][:50].tolist())

    # A tampered object is caught on read.
    bucket, _, prefix = s3_bucket[len("s3://") :].partition("/")
    digest = version.manifest["model.skops"]
    boto3.client("s3", endpoint_url=s3_server).put_object(
        Bucket=bucket, Key=f"{prefix}/sha256/{digest[:2]}/{digest[2:]}", Body=b"not the model"
    )
    with pytest.raises(IntegrityError, match="corrupted"):
        registry.load_model(store, "churn/1")
    client.store.close()
