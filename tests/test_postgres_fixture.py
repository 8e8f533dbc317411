from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
import pytest
import sqlalchemy as sa

import _postgres

_seen: list[str] = []  # database URLs handed out so far in this module


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_its_own_empty_database(postgres_url: str, attempt: int) -> None:
    # Whichever attempt runs second would see the first one's table if databases were shared.
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('public.marker')").fetchone() == (None,)
        conn.execute("CREATE TABLE marker (attempt int)")
        conn.execute("INSERT INTO marker VALUES (%s)", (attempt,))
        assert conn.execute("SELECT attempt FROM marker").fetchall() == [(attempt,)]
    assert postgres_url not in _seen
    _seen.append(postgres_url)


def test_previous_databases_are_dropped(postgres_server: _postgres.PostgresServer, postgres_url: str) -> None:
    names = {urlsplit(url).path.lstrip("/") for url in _seen}
    with psycopg.connect(postgres_server.url) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
    assert urlsplit(postgres_url).path.lstrip("/") in existing
    assert not names & existing


def test_sqlalchemy_with_psycopg_driver(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://")
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id serial PRIMARY KEY, name text NOT NULL)"))
            conn.execute(sa.text("INSERT INTO t (name) VALUES (:a), (:b)"), {"a": "x", "b": "y"})
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM t ORDER BY id")).scalars().all() == ["x", "y"]
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == urlsplit(postgres_url).path[1:]
            assert conn.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_server_settings(postgres_server: _postgres.PostgresServer) -> None:
    with psycopg.connect(postgres_server.url) as conn:
        assert int(conn.execute("SHOW max_connections").fetchone()[0]) >= 100  # type: ignore[index]
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)


def test_database_url_keeps_user_host_and_port() -> None:
    server = _postgres.PostgresServer(url="postgresql://postgres:pw@db.example:5433/postgres?sslmode=disable")
    assert server.database_url("abc") == "postgresql://postgres:pw@db.example:5433/abc?sslmode=disable"


def test_find_binaries_reports_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(_postgres.glob, "glob", lambda pattern: [])
    with pytest.raises(_postgres.PostgresUnavailable, match="initdb"):
        _postgres.find_binaries()
