"""The UI's handlers in-process (Starlette's TestClient over the real app): auth, CSRF, escaping, assets."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from stead.serving.app import create_app
from stead.settings import Settings
from stead.store import open_store
from stead.ui import ui_routes

with warnings.catch_warnings():
    # Starlette 1.x asks for its ``httpx2`` fork in the TestClient; plain httpx still works the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TOKENS = "admintok:admin,readtok:read"


def _client(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[TestClient, Any]]:
    settings = Settings.from_env({"STEAD_USER": "tester", **env}, uri=str(tmp_path / ".stead"))
    store = open_store(settings)
    app = create_app(settings, store, extra_routes=ui_routes(settings))
    with TestClient(app, follow_redirects=False) as client:
        yield client, store
    store.close()


@pytest.fixture
def open_ui(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    yield from _client(tmp_path, {})


@pytest.fixture
def closed_ui(tmp_path: Path) -> Iterator[tuple[TestClient, Any]]:
    yield from _client(tmp_path, {"STEAD_TOKENS": TOKENS, "STEAD_AUTH_READS": "1"})


def _csrf(client: TestClient, page: str = "/ui/login") -> str:
    html = client.get(page).text
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def test_pages_of_an_empty_store(open_ui: tuple[TestClient, Any]) -> None:
    client, _ = open_ui
    for page in ("/ui/", "/ui/runs", "/ui/lineage", "/ui/login"):
        response = client.get(page)
        assert response.status_code == 200, page
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert "open server" in response.text  # no tokens: nothing to sign in to
    assert client.get("/ui").headers["location"] == "/ui/"
    missing = client.get("/ui/runs/0123456789abcdef")
    assert missing.status_code == 404 and "no run" in missing.text and "<!doctype html>" in missing.text
    bad_ref = client.get("/ui/lineage?ref=nonsense%40%40")
    assert bad_ref.status_code in (404, 422) and "Refused" not in bad_ref.text
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert client.get("/ui/static/uPlot.iife.min.js").status_code == 200
    assert client.get("/ui/static/../app.py").status_code == 404


def test_reads_closed_ask_for_a_token_once(closed_ui: tuple[TestClient, Any]) -> None:
    client, _ = closed_ui
    response = client.get("/ui/runs?filter=x")
    assert response.status_code == 303 and response.headers["location"].startswith("/ui/login?next=%2Fui%2Fruns")
    csrf = _csrf(client)
    refused = client.post("/ui/login", data={"token": "readtok", "next": "/ui/runs", "csrf": "forged"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    wrong = client.post("/ui/login", data={"token": "nope", "next": "/ui/runs", "csrf": csrf})
    assert wrong.status_code == 401 and "unknown token" in wrong.text
    signed = client.post("/ui/login", data={"token": "readtok", "next": "//evil.example/", "csrf": csrf})
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/?done=login"  # no open redirect
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert client.get("/ui/runs").status_code == 200
    # a read token may look but not act
    act = client.post("/ui/actions/ack", data={"alert": "1", "csrf": csrf})
    assert act.status_code == 403 and "signed in with a &#39;read&#39; token" in act.text


def test_text_from_the_store_is_escaped(open_ui: tuple[TestClient, Any]) -> None:
    client, store = open_ui
    rid = store.create_run("xss", params={"p": "<script>alert(1)</script>"}, tags={"t": '"><img src=x onerror=1>'})
    store.end_run(rid, "FINISHED")
    page = client.get(f"/ui/runs/{rid}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    listing = client.get("/ui/runs?cols=params.p").text
    assert "<script>alert(1)</script>" not in listing


def test_moving_an_alias_from_the_ui_is_audited_like_the_cli(closed_ui: tuple[TestClient, Any]) -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    import numpy as np
    import pandas as pd

    from stead.registry import register_model

    client, store = closed_ui
    X = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    model = sklearn.LogisticRegression().fit(X, (X["a"] > 9).astype(int))
    for _ in range(2):
        register_model(store, "m", model, input_example=X.head(3))
    csrf = _csrf(client)
    client.post("/ui/login", data={"token": "admintok", "next": "/ui/models/m", "csrf": csrf})
    confirm = client.get("/ui/actions/alias?model=m&alias=champion&version=2")
    assert confirm.status_code == 200 and "Point m@champion at version 2" in confirm.text
    done = client.post(
        "/ui/actions/alias", data={"model": "m", "alias": "champion", "version": "2", "reason": "ui", "csrf": csrf}
    )
    assert done.status_code == 303 and done.headers["location"] == "/ui/models/m?done=alias"
    move = store.alias_history("m")[-1]
    assert (move.alias, move.to_version, move.actor, move.reason) == ("champion", 2, "ui:admin", "ui")
    page = client.get("/ui/models/m?done=alias").text
    assert "Alias moved." in page and "ui:admin" in page


def test_every_asset_is_packaged_and_nothing_loads_from_a_network() -> None:
    root = resources.files("stead.ui")
    texts = [f.read_text() for f in (root / "templates").iterdir() if f.name.endswith(".html")]
    texts += [(root / "static" / name).read_text() for name in ("ui.css", "ui.js", "favicon.svg")]
    for text in texts:
        urls = [u for u in re.findall(r"https?://[^\s\"')]+", text) if not u.startswith("http://www.w3.org/")]
        assert not urls, urls
    assert (root / "static" / "favicon.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"
