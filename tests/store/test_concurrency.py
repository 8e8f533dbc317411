"""Concurrent writers on one SQLite store never see "database is locked", and every row lands."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from stead.settings import Settings
from stead.store.sql import SqlStore

DURATION = 10.0


def _writer(uri: str, n: int, barrier: object, out: object) -> None:
    store = SqlStore(Settings(uri=uri, user=f"writer{n}"))
    barrier.wait()  # type: ignore[attr-defined]
    written: dict[str, int] = {}
    errors: list[str] = []
    deadline = time.monotonic() + DURATION
    while time.monotonic() < deadline:
        try:
            run_id = store.create_run(f"w{n}", params={"writer": str(n)})
            points = [("loss", float(i), i, time.time()) for i in range(20)]
            store.log_batch(run_id, metrics=points, tags={"t": "x"})
            store.end_run(run_id, "FINISHED")
            written[run_id] = len(points)
        except Exception as exc:  # what the test is about: nothing may reach the writer
            errors.append(f"{type(exc).__name__}: {exc}")
    out.put((n, written, errors))  # type: ignore[attr-defined]
    store.close()


@pytest.mark.slow
def test_eight_processes_write_for_ten_seconds_without_locking_errors(tmp_path: Path) -> None:
    uri = str(tmp_path / "store")
    SqlStore(Settings(uri=uri)).close()
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(8)
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(uri, n, barrier, out)) for n in range(8)]
    for p in procs:
        p.start()
    results = [out.get(timeout=DURATION + 120) for _ in procs]
    for p in procs:
        p.join(60)
    all_errors = [e for _, _, errors in results for e in errors]
    assert all_errors == []
    store = SqlStore(Settings(uri=uri))
    total = 0
    for n, written, _ in results:
        assert written, f"writer {n} wrote nothing"
        runs = store.search_runs(f"w{n}", max_results=50_000)
        assert {r.id for r in runs} == set(written)
        for run_id, count in list(written.items())[:: max(1, len(written) // 20)]:
            assert len(store.get_metric_history(run_id, "loss")) == count
        total += len(written)
    assert total > 8  # every process made progress
    store.close()
