"""The HTTP backend mirrors the SQL store: one route per public method, same signatures, NaN-safe wire format."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from stead.entities import Run, RunList
from stead.settings import Settings
from stead.store.artifacts import ArtifactStore
from stead.store.http import HttpArtifacts, HttpStore
from stead.store.routes import CODECS, ROUTES, from_wire, to_wire
from stead.store.sql import SqlStore

NOT_ROUTED = {"close", "describe", "settings", "engine", "url", "dialect", "artifacts"}


def _public(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in NOT_ROUTED
    }


def test_every_store_method_has_a_route_and_a_mirror() -> None:
    sql, http = _public(SqlStore), _public(HttpStore)
    assert set(sql) == set(ROUTES), "add the missing methods to stead.store.routes.ROUTES (see its docstring)"
    assert set(http) == set(ROUTES), "add the missing methods to stead.store.http.HttpStore"
    for name in sql:
        assert inspect.signature(http[name]) == inspect.signature(sql[name]), name


def test_routes_are_well_formed() -> None:
    seen: set[tuple[str, str]] = set()
    for name, route in ROUTES.items():
        assert route.codec in CODECS, name
        assert route.role in ("read", "write", "admin"), name
        assert route.path.startswith("/"), name
        assert (route.verb, route.path) not in seen, f"{name}: {route.verb} {route.path} is taken"
        seen.add((route.verb, route.path))
        params = inspect.signature(getattr(SqlStore, name)).parameters
        assert set(route.path_params) <= set(params), name


def test_blob_api_matches() -> None:
    names = {n for n, _ in inspect.getmembers(ArtifactStore, inspect.isfunction) if not n.startswith("_")}
    names -= {"sweep_temp"}  # housekeeping of a local root, not part of the blob API
    for name in names:
        assert hasattr(HttpArtifacts, name), name
        if name != "local_path":
            mine = inspect.signature(getattr(HttpArtifacts, name)).parameters
            theirs = inspect.signature(getattr(ArtifactStore, name)).parameters
            assert list(mine) == list(theirs), name


def test_nonfinite_floats_round_trip_through_json() -> None:
    value = {"metrics": [("loss", math.nan, 0, 1.0), ("up", math.inf, 1, 2.0), ("down", -math.inf, 2, 3.0)]}
    wire = json.loads(json.dumps(to_wire(value), allow_nan=False))
    assert wire["metrics"][0][1] == "NaN" and wire["metrics"][1][1] == "Infinity"
    back = from_wire(Sequence[tuple[str, float, int, float]], wire["metrics"])
    assert math.isnan(back[0][1]) and back[1][1] == math.inf and back[2][1] == -math.inf


def test_strings_that_look_like_markers_stay_strings() -> None:
    assert from_wire(Mapping[str, str] | None, {"t": "NaN"}) == {"t": "NaN"}
    assert from_wire(float | None, "Infinity") == math.inf
    assert from_wire(str | None, "NaN") == "NaN"


def test_runlist_codec_keeps_the_page_token() -> None:
    from datetime import UTC, datetime

    runs = RunList(
        [Run(id="a", experiment="e", status="RUNNING", start_time=datetime.now(UTC), metrics={"m": math.nan})]
    )
    runs.next_page_token = "tok"
    codec = CODECS["runlist"]
    back = codec.decode(json.loads(json.dumps(codec.encode(runs), allow_nan=False)))
    assert isinstance(back, RunList) and back.next_page_token == "tok"
    assert math.isnan(back[0].metrics["m"])


def test_unreachable_server_is_a_store_error(tmp_path: Path) -> None:
    import socket

    from stead.errors import StoreError

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = HttpStore(Settings(uri=f"http://127.0.0.1:{port}"))
    with pytest.raises(StoreError, match="cannot reach the stead server") as info:
        store.counts()
    assert info.value.hint == "start it with: stead serve"
    store.close()


def test_http_store_against_a_real_server(http_settings: Settings, tmp_path: Path) -> None:
    from stead.errors import IntegrityError, NotFoundError

    store = HttpStore(http_settings)
    try:
        rid = store.create_run("exp", params={"p": "NaN"}, tags={"t": "Infinity"})
        store.log_batch(rid, metrics=[("m", math.nan, 0, 1.0), ("m", math.inf, 1, 2.0), ("train/loss", 0.5, 0, 1.0)])
        run = store.get_run(rid)
        assert run.params == {"p": "NaN"} and run.tags == {"t": "Infinity"}
        assert run.metrics["m"] == math.inf
        history = store.get_metric_history(rid, "m")
        assert math.isnan(history[0].value) and history[1].value == math.inf
        assert [p.value for p in store.get_metric_history(rid, "train/loss")] == [0.5]
        with pytest.raises(NotFoundError, match="no run with id") as info:
            store.get_run("nope")
        assert info.value.hint == "list runs with: stead runs list"

        blobs = store.artifacts
        digest = blobs.put_bytes(b"hello")
        assert blobs.exists(digest) and blobs.size(digest) == 5
        assert blobs.get_bytes(digest) == b"hello"
        with blobs.open(digest) as stream:
            assert stream.read() == b"hello"
        (tmp_path / "tree" / "sub").mkdir(parents=True)
        (tmp_path / "tree" / "a.txt").write_bytes(b"a" * 3_000_000)
        (tmp_path / "tree" / "sub" / "b.txt").write_bytes(b"b")
        manifest = blobs.put_tree(tmp_path / "tree")
        assert sorted(manifest) == ["a.txt", "sub/b.txt"]
        written = blobs.materialize(manifest, tmp_path / "out")
        assert written["a.txt"].read_bytes() == b"a" * 3_000_000
        assert blobs.local_path(digest) is None
        missing = "0" * 64
        assert not blobs.exists(missing)
        with pytest.raises(NotFoundError, match=r"plots/roc\.png"):
            blobs.get_bytes(missing, name="plots/roc.png")

        # a blob damaged on the server is refused, naming it
        server_blob = tmp_path / "server-store" / "artifacts" / "sha256" / digest[:2] / digest[2:]
        server_blob.write_bytes(b"HELLO")
        with pytest.raises(IntegrityError, match=digest):
            blobs.get_bytes(digest, name="greeting.txt")
    finally:
        store.close()
