"""Migrations: forward from empty on both backends, exactly once under concurrency, newer schema refused."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from stead.errors import SchemaTooNewError
from stead.settings import Settings
from stead.store import schema
from stead.store.engine import HEAD, REVISIONS
from stead.store.sql import SqlStore


def test_revisions_constant_matches_the_script_directory() -> None:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "stead.store:migrations")
    script = ScriptDirectory.from_config(cfg)
    chain = [rev.revision for rev in script.walk_revisions()][::-1]
    assert tuple(chain) == REVISIONS
    assert script.get_current_head() == HEAD


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_build_exactly_the_schema(settings: Settings) -> None:
    store = SqlStore(settings)
    assert store.migrated
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), schema.metadata)
    assert diff == [], f"schema.py and the migrations disagree: {diff}"
    again = SqlStore(settings)
    assert not again.migrated
    store.close()
    again.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_store_written_by_a_newer_stead_is_refused(settings: Settings) -> None:
    store = SqlStore(settings)
    run_id = store.create_run("kept")
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        conn.execute(text("UPDATE store_info SET value = '9.1.0' WHERE key = 'stead_version'"))
    store.close()
    with pytest.raises(SchemaTooNewError, match=rf"revision 9999, written by stead 9\.1\.0.*up to {HEAD}") as info:
        SqlStore(settings)
    assert info.value.hint is not None and "stead>=9.1.0" in info.value.hint
    # Nothing was touched: the data is still there for the newer stead.
    engine = create_engine(settings.database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM runs")).scalar_one() == run_id
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "9999"
    engine.dispose()


def _open_and_write(uri: str, artifacts: str | None, barrier: object, out: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    store = SqlStore(Settings(uri=uri, artifacts=artifacts, user="p"))
    run_id = store.create_run("concurrent")
    store.log_batch(run_id, metrics=[("x", 1.0, 0, 0.0)])
    out.put((store.migrated, run_id))  # type: ignore[attr-defined]
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_eight_processes_open_a_fresh_store_at_once(settings: Settings, tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(8)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_open_and_write, args=(settings.uri, settings.artifacts, barrier, out)) for _ in range(8)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sum(1 for migrated, _ in results if migrated) == 1
    store = SqlStore(settings)
    assert len(store.search_runs("concurrent")) == 8
    store.close()
