from __future__ import annotations

import re
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

BACKENDS = ["sqlite", "postgresql"]


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
