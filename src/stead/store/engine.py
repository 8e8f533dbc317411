"""Database engines and migrations (layer: store).

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with ``BEGIN IMMEDIATE``
so that concurrent writers queue on the lock instead of failing half-way with "database is locked".
PostgreSQL goes through psycopg 3. A store is migrated on open, under a lock (a file lock for SQLite, an
advisory lock for PostgreSQL), so N processes opening a fresh store at once migrate it exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError

from stead._version import __version__
from stead.errors import MissingDependency, SchemaTooNewError, StoreError

# Every migration revision, oldest first. ``tests/store/test_migrations.py`` checks this against Alembic's
# script directory, so opening an up-to-date store never has to import Alembic.
REVISIONS: tuple[str, ...] = ("0001", "0002")  # 0002: MLflow compatibility (issue 10)
HEAD = REVISIONS[-1]
_PG_LOCK_KEY = 0x5734AD  # advisory lock id for migrations

T = TypeVar("T")


def make_engine(url: str) -> Engine:
    """Create the engine for a SQLite or PostgreSQL URL, configured for many concurrent processes."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Manage transactions ourselves: pysqlite's implicit BEGIN would be DEFERRED.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            mode = "IMMEDIATE" if conn.get_execution_options().get("stead_write") else "DEFERRED"
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    try:
        import psycopg  # noqa: F401
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            "a postgresql:// store needs psycopg 3, which is not installed", hint="pip install 'stead[postgres]'"
        ) from exc
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _is_busy(exc: BaseException) -> bool:
    message = str(exc).lower()
    return "database is locked" in message or "database is busy" in message or "deadlock detected" in message


def retrying(fn: Callable[[], T], attempts: int = 50) -> T:
    """Run ``fn`` again when the database reports a transient lock; any other error passes through."""
    delay = 0.005
    for attempt in range(attempts):
        try:
            return fn()
        except (OperationalError, DBAPIError) as exc:
            if not _is_busy(exc) or attempt == attempts - 1:
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")  # pragma: no cover


@contextlib.contextmanager
def _migration_lock(engine: Engine, lock_path: Path | None) -> Iterator[None]:
    if engine.dialect.name == "sqlite":
        assert lock_path is not None
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()


def current_revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at, or None for an empty database."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        found = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table' AND name='alembic_version'")
    else:
        found = conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE tablename='alembic_version'")
    if found.first() is None:
        return None
    row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    return None if row is None else str(row[0])


def _written_by(conn: Connection) -> str:
    try:
        row = conn.exec_driver_sql("SELECT value FROM store_info WHERE key='stead_version'").first()
    except (OperationalError, DBAPIError):
        return "unknown"
    return "unknown" if row is None else str(row[0])


def check_revision(conn: Connection) -> str | None:
    """Return the current revision, refusing a store written by a newer stead."""
    revision = current_revision(conn)
    if revision is not None and revision not in REVISIONS:
        writer = _written_by(conn)
        raise SchemaTooNewError(
            f"this store's schema is at revision {revision}, written by stead {writer}; this stead "
            f"({__version__}) knows schema revisions up to {HEAD}",
            hint=f"upgrade stead to {writer} or newer: pip install -U 'stead>={writer}'"
            if writer != "unknown"
            else "upgrade stead to the version that last wrote this store",
        )
    return revision


def migrate(engine: Engine, lock_path: Path | None = None) -> bool:
    """Bring the database to ``HEAD``; safe to call from many processes at once. True if this call migrated."""
    with engine.connect() as conn:
        revision = check_revision(conn)
        conn.rollback()
    if revision == HEAD:
        return False
    with _migration_lock(engine, lock_path):
        # Another process may have migrated while we waited for the lock.
        with engine.connect() as conn:
            revision = check_revision(conn)
            conn.rollback()
        if revision == HEAD:
            return False
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", "stead.store:migrations")
        try:
            with engine.connect().execution_options(stead_write=True) as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            with engine.connect().execution_options(stead_write=True) as conn, conn.begin():
                conn.execute(text("DELETE FROM store_info WHERE key='stead_version'"))
                conn.execute(
                    text("INSERT INTO store_info (key, value) VALUES ('stead_version', :v)"), {"v": __version__}
                )
        except (OperationalError, DBAPIError) as exc:
            raise StoreError(
                f"could not migrate the store at {engine.url.render_as_string(hide_password=True)}: "
                f"{str(exc.orig).strip()}",
                hint="check that the database is reachable and writable",
            ) from exc
    return True
