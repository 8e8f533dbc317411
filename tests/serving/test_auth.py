"""Token auth on a real ``stead serve`` over loopback, the refusal to bind an open server, and SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stead.errors import AuthError, ConfigError, ForbiddenError
from stead.serving.app import run_server
from stead.settings import Settings
from stead.store.http import HttpStore

TOKENS = "a:admin,w:write,r:read"
CLI = "import sys; from stead.cli import main; sys.exit(main())"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, folder: Path, **env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
        full.update(STEAD_URI=str(folder / "store"), **env)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLI, "serve", "--port", str(self.port)],
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/v2/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out, err = self.proc.communicate()
                pytest.fail(f"stead serve did not start:\n{out}\n{err}", pytrace=False)
            time.sleep(0.01)

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=15)
        return self.proc.returncode, out, err


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("auth"), STEAD_TOKENS=TOKENS)
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.communicate()


@pytest.fixture(scope="module")
def closed_reads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("reads"), STEAD_TOKENS=TOKENS, STEAD_AUTH_READS="1")
    yield srv
    srv.proc.kill()
    srv.proc.communicate()


RUN = {"experiment": "auth"}


def test_a_write_without_a_token_gets_401(server: Server) -> None:
    response = server.call("POST", "/api/v1/runs", json=RUN)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthenticated"
    assert set(response.json()) <= {"error", "message", "hint"}


def test_an_unknown_token_gets_401(server: Server) -> None:
    response = server.call("POST", "/api/v1/runs", token="nope", json=RUN)
    assert response.status_code == 401 and response.json()["message"] == "unknown token"


def test_a_read_token_on_a_write_gets_403(server: Server) -> None:
    response = server.call("POST", "/api/v1/runs", token="r", json=RUN)
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden" and "'write'" in response.json()["message"]


@pytest.mark.parametrize("token", ["w", "a"])
def test_write_and_admin_tokens_write(server: Server, token: str) -> None:
    response = server.call("POST", "/api/v1/runs", token=token, json=RUN)
    assert response.status_code == 200, response.text


def test_blob_writes_need_a_write_token(server: Server) -> None:
    import hashlib

    data = b"blob"
    path = f"/api/v1/blobs/{hashlib.sha256(data).hexdigest()}"
    assert server.call("PUT", path, content=data).status_code == 401
    assert server.call("PUT", path, token="r", content=data).status_code == 403
    assert server.call("PUT", path, token="w", content=data).status_code == 200
    assert server.call("GET", path).content == data


def test_reads_and_health_are_open_by_default(server: Server) -> None:
    assert server.call("GET", "/api/v1/counts").status_code == 200
    assert server.call("POST", "/api/v1/runs/search", json={}).status_code == 200
    assert server.call("GET", "/v2/health/live").json() == {"live": True}


def test_reads_close_with_stead_auth_reads(closed_reads: Server) -> None:
    assert closed_reads.call("GET", "/api/v1/counts").status_code == 401
    assert closed_reads.call("POST", "/api/v1/runs/search", json={}).status_code == 401
    assert closed_reads.call("GET", "/api/v1/counts", token="r").status_code == 200
    assert closed_reads.call("POST", "/api/v1/runs", token="r", json=RUN).status_code == 403
    assert closed_reads.call("GET", "/v2/health/live").status_code == 200


def test_the_http_store_sends_its_token_and_maps_auth_errors(server: Server) -> None:
    writer = HttpStore(Settings(uri=server.url, token="w"))
    reader = HttpStore(Settings(uri=server.url, token="r"))
    anonymous = HttpStore(Settings(uri=server.url))
    try:
        run_id = writer.create_run("sdk")
        assert reader.get_run(run_id).experiment == "sdk"
        with pytest.raises(ForbiddenError, match="'write' role"):
            reader.end_run(run_id, "FINISHED")
        with pytest.raises(AuthError) as info:
            anonymous.artifacts.put_bytes(b"x")
        assert info.value.hint and "STEAD_TOKEN" in info.value.hint
    finally:
        for store in (writer, reader, anonymous):
            store.close()


def test_sigterm_ends_the_server_with_status_0(server: Server) -> None:
    code, out, err = server.stop()
    assert code == 0, err
    assert out.startswith("stead serving sqlite:///") and f"on {server.url} (api: /api/v1)" in out
    assert "Traceback" not in err


def test_run_server_refuses_a_public_address_without_tokens(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        run_server(Settings(uri=str(tmp_path / "store")), host="0.0.0.0", port=_free_port())
    text = f"{info.value.message} {info.value.hint}"
    assert "--insecure" in text and "STEAD_TOKENS" in text
    assert not (tmp_path / "store").exists()


def test_the_cli_refuses_a_public_address_without_tokens(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env["STEAD_URI"] = str(tmp_path / "store")
    result = subprocess.run(
        [sys.executable, "-c", CLI, "serve", "--host", "0.0.0.0", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: refusing to serve on 0.0.0.0")
    assert lines[1].startswith("hint: ") and "--insecure" in lines[1]
    assert "Traceback" not in result.stderr
