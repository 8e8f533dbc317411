from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

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
