from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from stead.settings import Settings

if TYPE_CHECKING:
    from stead.client import Client

import _postgres

# --- PostgreSQL --------------------------------------------------------------
# The cluster starts lazily, once per session, only if a test asks for it.
# Set STEAD_TEST_POSTGRES_URL=postgresql://user@host:port/postgres to use an existing server instead.


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[_postgres.PostgresServer]:
    """A PostgreSQL server for the whole session; fails (never skips) the tests if it cannot start."""
    try:
        server, reason = _postgres.start(), ""
    except _postgres.PostgresUnavailable as exc:
        server, reason = None, str(exc)
    if server is None:
        pytest.fail(f"PostgreSQL is required by this test but could not be started:\n{reason}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: _postgres.PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL (postgresql://...) of a fresh, empty database for this test, dropped afterwards."""
    import psycopg
    from psycopg import sql

    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{slug}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield postgres_server.database_url(name)
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- store fixtures (added by the store work) ---

BACKENDS = ["sqlite", "postgresql", "http"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend a store test runs on; every SDK feature is tested on each."""
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings for a fresh, empty store on ``backend``."""
    from stead.tracking import close_stores

    if backend == "sqlite":
        yield Settings(uri=str(tmp_path / "store"), user="tester")
    elif backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        yield Settings(uri=url, artifacts=str(tmp_path / "artifacts"), user="tester")
    else:
        yield request.getfixturevalue(f"{backend}_settings")
    close_stores()


@pytest.fixture
def client(settings: Settings) -> Client:
    from stead.client import Client

    return Client(settings=settings)


# --- http backend (added by the serving work) ---
# Each test gets its own real server (uvicorn on loopback) on its own fresh folder store. Starting Python and
# importing stead, SQLAlchemy, Starlette and uvicorn takes about a second, so one session-wide "zygote"
# process imports them once and forks a server per test (about 0.1 s); each fork runs
# ``stead.serving.app.main`` as ``python -m stead.serving.app`` would.

_ZYGOTE = r"""
import os, signal, sys
import stead.serving.app, stead.store.sql, uvicorn, uvicorn.config, uvicorn.lifespan.on, uvicorn.protocols.http.auto
import uvicorn.loops.auto, uvicorn.protocols.websockets.auto

def reap(*_):
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass

signal.signal(signal.SIGCHLD, reap)
for line in sys.stdin:
    port, store, log = line.rstrip("\n").split("\t")
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(0)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ["STEAD_URI"] = store
        code = 1
        try:
            code = stead.serving.app.main(["--port", port])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(pid, flush=True)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def _server_zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """The forking server starter and an empty, migrated folder store that each server starts from a copy of."""
    import os
    import subprocess
    import sys

    from stead.store.sql import SqlStore

    template = tmp_path_factory.mktemp("template") / "store"
    SqlStore(Settings(uri=str(template))).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STEAD_")}
    env["STEAD_USER"] = "tester"
    proc = subprocess.Popen(
        [sys.executable, "-c", _ZYGOTE], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    yield proc, template
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(10)


@pytest.fixture
def http_settings(tmp_path: Path, _server_zygote: tuple[subprocess.Popen[str], Path]) -> Iterator[Settings]:
    """Settings of a real ``stead serve`` (uvicorn in its own process, over loopback) on a fresh folder store.

    The server's store is ``tmp_path / "server-store"``; its output goes to ``tmp_path / "server.log"``.
    """
    import os
    import shutil
    import signal
    import time

    import httpx

    zygote, template = _server_zygote
    port = _free_port()
    store = tmp_path / "server-store"
    shutil.copytree(template, store)
    log = tmp_path / "server.log"
    assert zygote.stdin is not None and zygote.stdout is not None
    zygote.stdin.write(f"{port}\t{store}\t{log}\n")
    zygote.stdin.flush()
    pid = int(zygote.stdout.readline())
    url = f"http://127.0.0.1:{port}"

    def alive() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{url}/v2/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if not alive() or time.monotonic() > deadline:
                pytest.fail(f"stead serve did not start:\n{log.read_text() if log.exists() else ''}", pytrace=False)
            time.sleep(0.005)
        yield Settings(uri=url, user="tester")
    finally:
        if alive():
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while alive() and time.monotonic() < deadline:
                time.sleep(0.005)
            if alive():
                os.kill(pid, signal.SIGKILL)


# --- S3 (added by the scale-out work, issue 9) ---
# moto's S3 server in its own process on loopback, once per session; each test gets a fresh bucket and the
# AWS variables that point s3fs (through botocore's AWS_ENDPOINT_URL) at it. Never skips: moto is in `dev`.


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL (http://127.0.0.1:PORT) of a moto S3 server started for this session."""
    import os
    import sys
    import time

    import httpx

    port = _free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto's S3 server did not start:\n{log.read_text()}", pytrace=False)
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty bucket on the session's S3 server; returns ``s3://BUCKET/stead`` (the artifact root)."""
    import s3fs

    for key, value in {**S3_ENV, "AWS_ENDPOINT_URL": s3_server}.items():
        monkeypatch.setenv(key, value)
    bucket = f"stead-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem(endpoint_url=s3_server).mkdir(bucket)
    return f"s3://{bucket}/stead"
