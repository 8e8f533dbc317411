"""The /api/v1 REST API through Starlette's TestClient on a real folder store."""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from stead.serving.app import create_app
from stead.settings import Settings
from stead.store.routes import CODECS
from stead.store.sql import SqlStore

API = "/api/v1"

with warnings.catch_warnings():
    # Starlette 1.x asks for its ``httpx2`` fork in the TestClient; plain httpx still works the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = SqlStore(Settings(uri=str(tmp_path / "store"), user="tester"))
    yield store
    store.close()


@pytest.fixture
def api(store: SqlStore) -> Iterator[TestClient]:
    with TestClient(create_app(store.settings, store), raise_server_exceptions=False) as client:
        yield client


def _create_run(api: TestClient, **body: Any) -> str:
    response = api.post(f"{API}/runs", json={"experiment": "exp", **body})
    assert response.status_code == 200, response.text
    run_id = response.json()
    assert isinstance(run_id, str)
    return run_id


def test_health_and_info(api: TestClient) -> None:
    assert api.get("/v2/health/live").json() == {"live": True}
    info = api.get(f"{API}/info").json()
    assert set(info) == {"version", "backend", "schema_revision"}
    assert info["backend"].startswith("sqlite://")


def test_run_with_nonfinite_metrics_round_trips(api: TestClient, store: SqlStore) -> None:
    run_id = _create_run(api, params={"C": "1.0"}, tags={"note": "NaN"})
    batch = {
        "metrics": [["loss", "NaN", 0, 1.0], ["loss", "Infinity", 1, 2.0], ["low", "-Infinity", 0, 1.0]],
        "params": {"penalty": "l2"},
    }
    assert api.post(f"{API}/runs/{run_id}/batch", json=batch).status_code == 200
    body = api.get(f"{API}/runs/{run_id}").json()
    assert body["metrics"] == {"loss": "Infinity", "low": "-Infinity"}
    assert body["tags"] == {"note": "NaN"}  # a string that looks like a marker stays a string
    run = CODECS["run"].decode(body)
    assert run == store.get_run(run_id)
    assert run.params == {"C": "1.0", "penalty": "l2"}
    history = api.get(f"{API}/runs/{run_id}/metrics/loss").json()
    assert [p["value"] for p in history] == ["NaN", "Infinity"]
    points = CODECS["metricpoints"].decode(history)
    assert math.isnan(points[0].value) and points[1].value == math.inf


def test_metric_keys_with_slashes_and_spaces(api: TestClient) -> None:
    run_id = _create_run(api)
    batch = {"metrics": [["train/loss avg", 0.5, 0, 1.0]]}
    assert api.post(f"{API}/runs/{run_id}/batch", json=batch).status_code == 200
    history = api.get(f"{API}/runs/{run_id}/metrics/train%2Floss%20avg").json()
    assert [p["value"] for p in history] == [0.5]


def test_search_with_a_filter_and_pages(api: TestClient) -> None:
    first = _create_run(api, params={"model": "it's gbm"})
    _create_run(api, params={"model": "linear"})
    third = _create_run(api, params={"model": "it's gbm"})
    found = api.post(f"{API}/runs/search", json={"filter": 'params.model = "it\'s gbm"'}).json()
    assert sorted(r["id"] for r in found["runs"]) == sorted([first, third])
    page = api.post(f"{API}/runs/search", json={"experiment": "exp", "max_results": 2}).json()
    assert len(page["runs"]) == 2 and page["next_page_token"]
    rest = api.post(f"{API}/runs/search", json={"max_results": 2, "page_token": page["next_page_token"]}).json()
    assert len(rest["runs"]) == 1 and rest["next_page_token"] is None
    runs = CODECS["runlist"].decode(page)
    assert runs.next_page_token == page["next_page_token"]


def test_query_parameters_for_get(api: TestClient, store: SqlStore) -> None:
    for i in range(3):
        store.put_dataset(
            f"{i:064x}",
            "iris",
            rows=1,
            columns=1,
            schema=[],
            profile={},
            data_digest=None,
            sample_digest=None,
            source=None,
        )
    assert len(api.get(f"{API}/datasets", params={"name": "iris", "limit": "2"}).json()) == 2
    assert len(api.get(f"{API}/datasets", params={"name": '"iris"', "limit": "5"}).json()) == 3
    assert api.get(f"{API}/datasets", params={"name": "other"}).json() == []
    assert api.get(f"{API}/datasets/{0:064x}/exists").json() is True


def test_not_found(api: TestClient) -> None:
    response = api.get(f"{API}/runs/nope")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": "no run with id 'nope'",
        "hint": "list runs with: stead runs list",
    }
    assert api.get(f"{API}/no/such/route").json()["error"] == "not_found"


def test_conflict(api: TestClient) -> None:
    run_id = _create_run(api, params={"C": "1"})
    response = api.post(f"{API}/runs/{run_id}/batch", json={"params": {"C": "2"}})
    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert "params cannot change" in response.json()["message"]
    assert api.post(f"{API}/runs", json={"experiment": "exp", "run_id": run_id}).status_code == 409


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "experiment: missing required argument"),
        ({"experiment": "exp", "colour": "red"}, "colour: unknown argument"),
        ({"experiment": "exp", "seed": "seven"}, "seed"),
        ({"experiment": "exp", "params": {"a": 1}}, "params.a"),
        ({"experiment": "../etc"}, "experiment name '../etc' is not allowed"),
    ],
)
def test_invalid_arguments_get_422_naming_the_field(api: TestClient, body: dict[str, Any], named: str) -> None:
    response = api.post(f"{API}/runs", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid"
    assert named in response.json()["message"]


def test_path_argument_in_the_body_is_refused(api: TestClient) -> None:
    run_id = _create_run(api)
    response = api.post(f"{API}/runs/{run_id}/end", json={"run_id": "other", "status": "FINISHED"})
    assert response.status_code == 422 and "run_id: given in the path" in response.json()["message"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_gets_400(api: TestClient, body: bytes) -> None:
    response = api.post(f"{API}/runs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "create_run" in response.json()["message"]


def test_blobs(api: TestClient, store: SqlStore) -> None:
    data = b"some model bytes" * 1000
    digest = hashlib.sha256(data).hexdigest()
    assert api.head(f"{API}/blobs/{digest}").status_code == 404
    bad = hashlib.sha256(b"other").hexdigest()
    refused = api.put(f"{API}/blobs/{bad}", content=data)
    assert refused.status_code == 422 and digest in refused.json()["message"]
    assert not store.artifacts.exists(bad) and not store.artifacts.exists(digest)
    assert api.put(f"{API}/blobs/{digest}", content=data).json()["stored"] is True
    assert api.put(f"{API}/blobs/{digest}", content=data).json()["stored"] is False
    head = api.head(f"{API}/blobs/{digest}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    got = api.get(f"{API}/blobs/{digest}")
    assert got.status_code == 200 and got.content == data
    assert store.artifacts.get_bytes(digest) == data
    assert api.get(f"{API}/blobs/{'0' * 64}").status_code == 404
    assert api.get(f"{API}/blobs/not-a-digest").status_code == 422


def test_a_damaged_blob_is_not_served(api: TestClient, store: SqlStore) -> None:
    digest = store.artifacts.put_bytes(b"original")
    path = store.artifacts.local_path(digest)
    assert path is not None
    path.write_bytes(b"damaged!")
    response = api.get(f"{API}/blobs/{digest}")
    assert response.status_code == 500
    assert response.json()["error"] == "integrity" and digest in response.json()["message"]


def test_blob_size_limit(store: SqlStore) -> None:
    app = create_app(store.settings, store, blob_limit=10)
    with TestClient(app) as api:
        data = b"x" * 11
        response = api.put(f"{API}/blobs/{hashlib.sha256(data).hexdigest()}", content=data)
        assert response.status_code == 413 and response.json()["error"] == "invalid"
