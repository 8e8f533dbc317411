"""SqlStore: the Store over SQLite or PostgreSQL (layer: store; the only code that speaks SQL).

One transaction per call. Writes on SQLite begin IMMEDIATE (see ``engine.py``) and are retried on a
transient lock, so callers never see "database is locked".
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from stead.entities import (
    RUN_STATUSES,
    VERSION_STATES,
    Alert,
    AliasMove,
    DatasetUse,
    DatasetVersion,
    Deployment,
    DeploymentRevision,
    Experiment,
    MetricPoint,
    ModelVersion,
    ModelVersionRef,
    Ref,
    Run,
    RunList,
    check_alias,
    check_key,
    check_name,
)
from stead.entities import Route as DeploymentRoute
from stead.errors import ConflictError, NotFoundError, ValidationError
from stead.settings import Settings
from stead.store import schema as s
from stead.store.artifacts import ArtifactStore
from stead.store.engine import make_engine, migrate, retrying

T = TypeVar("T")

MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
VANISHED = "process vanished: no heartbeat for {timeout:g} s"
# Which state a model version may move to from each state (the same state again only updates the reason).
VERSION_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "candidate": ("approved", "rejected", "serving", "retired"),
    "approved": ("serving", "rejected", "retired"),
    "rejected": ("retired",),
    "serving": ("approved", "retired"),
    "retired": ("approved", "serving"),
}


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _split_float(value: float) -> tuple[float | None, str | None]:
    if math.isfinite(value):
        return value, None
    if math.isnan(value):
        return None, "nan"
    return None, "inf" if value > 0 else "-inf"


def _join_float(value: float | None, nonfinite: str | None) -> float:
    if nonfinite:
        return float(nonfinite)
    return float("nan") if value is None else float(value)


# A run's own row with its experiment's name: what ``_runs_from_rows`` builds runs from.
_RUN_COLUMNS = select(
    s.runs.c.id,
    s.experiments.c.name.label("experiment"),
    *(s.runs.c[name] for name in ("name", "status", "start_time", "end_time", "heartbeat_at", "seed", "env", "error")),
).join(s.experiments, s.experiments.c.id == s.runs.c.experiment_id)


class SqlStore:
    """The metadata store on SQLite (a folder) or PostgreSQL, plus the artifact store beside it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        lock_path: Path | None = None
        if settings.backend == "folder":
            settings.folder.mkdir(parents=True, exist_ok=True)
            lock_path = settings.folder / ".migrate.lock"
        self.url = settings.database_url
        self.engine = make_engine(self.url)
        self.dialect = self.engine.dialect.name
        self.migrated = migrate(self.engine, lock_path)
        self.artifacts = ArtifactStore(settings.artifact_root)
        self._stats_checked = -math.inf

    def close(self) -> None:
        self.engine.dispose()

    def describe(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # ------------------------------------------------------------ transactions
    def _write(self, fn: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with self.engine.connect().execution_options(stead_write=True) as conn, conn.begin():
                return fn(conn)

        return retrying(attempt)

    def _read(self, fn: Callable[[Connection], T]) -> T:
        def attempt() -> T:
            with self.engine.connect() as conn, conn.begin():
                return fn(conn)

        return retrying(attempt)

    def _upsert(self, table: Any) -> Any:
        # Imported per dialect: the PostgreSQL dialect alone costs ~0.3 s to import, which a SQLite store,
        # and so every CLI command on the embedded default, should not pay.
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)

    # ------------------------------------------------------------ experiments
    def _experiment_id(self, conn: Connection, name: str, create: bool) -> int:
        row = conn.execute(select(s.experiments.c.id).where(s.experiments.c.name == name)).first()
        if row is not None:
            return int(row[0])
        if not create:
            known = [r[0] for r in conn.execute(select(s.experiments.c.name).limit(20))]
            raise NotFoundError(
                f"no experiment named {name!r}",
                hint=f"known experiments: {', '.join(known) or '(none yet)'}",
            )
        stmt = self._upsert(s.experiments).values(name=name, created_at=time.time())
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        return int(conn.execute(select(s.experiments.c.id).where(s.experiments.c.name == name)).scalar_one())

    def list_experiments(self) -> list[Experiment]:
        def read(conn: Connection) -> list[Experiment]:
            rows = conn.execute(select(s.experiments).order_by(s.experiments.c.id))
            return [Experiment(id=r.id, name=r.name, created_at=_dt(r.created_at)) for r in rows]

        return self._read(read)

    # ------------------------------------------------------------ runs
    def create_run(
        self,
        experiment: str,
        *,
        name: str | None = None,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        seed: int | None = None,
        env: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        start_time: float | None = None,
    ) -> str:
        check_name(experiment, "experiment name")
        rid = run_id or uuid.uuid4().hex
        now = time.time() if start_time is None else start_time
        params = dict(params or {})
        tags = dict(tags or {})
        self._check_items(rid, params, "param", MAX_PARAM_VALUE)
        self._check_items(rid, tags, "tag", MAX_TAG_VALUE)
        creator = self.settings.user
        return self._insert_run(experiment, rid, name, now, now, seed, dict(env or {}), creator, params, tags)

    def _insert_run(
        self,
        experiment: str,
        rid: str,
        name: str | None,
        start_time: float,
        heartbeat_at: float | None,
        seed: int | None,
        env: dict[str, Any],
        creator: str | None,
        params: Mapping[str, str],
        tags: Mapping[str, str],
    ) -> str:
        """Insert a RUNNING run with its params and tags (checked by the caller) in one transaction."""

        def write(conn: Connection) -> str:
            exp_id = self._experiment_id(conn, experiment, create=True)
            conn.execute(
                insert(s.runs).values(
                    id=rid,
                    experiment_id=exp_id,
                    name=name,
                    status="RUNNING",
                    start_time=start_time,
                    heartbeat_at=heartbeat_at,
                    seed=seed,
                    env=env,
                    created_by=creator,
                )
            )
            if params:
                conn.execute(insert(s.params), [{"run_id": rid, "key": k, "value": v} for k, v in params.items()])
            if tags:
                conn.execute(insert(s.tags), [{"run_id": rid, "key": k, "value": v} for k, v in tags.items()])
            return rid

        try:
            return self._write(write)
        except SAIntegrityError as exc:
            raise ConflictError(f"a run with id {rid!r} already exists") from exc

    @staticmethod
    def _check_items(run_id: str, items: Mapping[str, Any], what: str, limit: int) -> None:
        for key, value in items.items():
            check_key(key, what, run_id)
            if not isinstance(value, str):
                raise ValidationError(
                    f"{what} {key!r} of run {run_id}: value must be a string here, got {type(value).__name__}"
                )
            if len(value) > limit:
                raise ValidationError(
                    f"{what} {key!r} of run {run_id}: value has {len(value)} characters, over the limit of {limit}",
                    hint="log long text as an artifact instead: run.log_artifact(path)",
                )

    def _require_running(self, conn: Connection, run_id: str) -> None:
        row = conn.execute(select(s.runs.c.status).where(s.runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no run with id {run_id!r}", hint="list runs with: stead runs list")
        if row[0] != "RUNNING":
            raise ConflictError(
                f"run {run_id} is {row[0]}: a finished run cannot be changed",
                hint="start a new run with stead.start_run()",
            )

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[tuple[str, float, int, float]] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Log metric points ``(key, value, step, timestamp)``, params and tags in one transaction.

        A param, once logged, cannot change (as in MLflow): logging a different value is a conflict.
        """
        params = dict(params or {})
        tags = dict(tags or {})
        self._check_items(run_id, params, "param", MAX_PARAM_VALUE)
        self._check_items(run_id, tags, "tag", MAX_TAG_VALUE)
        points: list[tuple[str, str, int, float, float | None, str | None]] = []
        checked: set[str] = set()
        for key, value, step, ts in metrics:
            if key not in checked:
                check_key(key, "metric", run_id)
                checked.add(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(
                    f"metric {key!r} of run {run_id}: value must be a number, got {type(value).__name__}"
                )
            if isinstance(step, bool) or not isinstance(step, int):
                raise ValidationError(f"metric {key!r} of run {run_id}: step must be an integer, got {step!r}")
            v, nf = _split_float(float(value))
            points.append((run_id, key, step, float(ts), v, nf))

        def write(conn: Connection) -> None:
            self._require_running(conn, run_id)
            self._write_batch(conn, run_id, params, tags, points)

        self._write(write)

    def _write_batch(
        self,
        conn: Connection,
        run_id: str,
        params: Mapping[str, str],
        tags: Mapping[str, str],
        points: list[tuple[str, str, int, float, float | None, str | None]],
    ) -> None:
        """Write validated params (refusing a change, as MLflow does), tags and metric points of one run."""
        if params:
            existing = dict(
                conn.execute(
                    select(s.params.c.key, s.params.c.value).where(
                        s.params.c.run_id == run_id, s.params.c.key.in_(list(params))
                    )
                ).all()
            )
            for key, value in params.items():
                if key in existing and existing[key] != value:
                    raise ConflictError(
                        f"param {key!r} of run {run_id} is already {existing[key]!r}; params cannot change "
                        f"(got {value!r})",
                        hint="log a changing value as a metric or a tag",
                    )
            new = [{"run_id": run_id, "key": k, "value": v} for k, v in params.items() if k not in existing]
            if new:
                conn.execute(insert(s.params), new)
        for key, value in tags.items():
            stmt = self._upsert(s.tags).values(run_id=run_id, key=key, value=value)
            conn.execute(stmt.on_conflict_do_update(index_elements=["run_id", "key"], set_={"value": value}))
        if points:
            # The driver's executemany directly: SQLAlchemy's per-row parameter processing costs more than
            # the insert itself for large batches.
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            conn.exec_driver_sql(
                "INSERT INTO metrics (run_id, key, step, timestamp, value, nonfinite) "
                f"VALUES ({', '.join([mark] * 6)})",
                points,
            )
            self._update_latest(conn, run_id, points)

    def _update_latest(
        self, conn: Connection, run_id: str, points: list[tuple[str, str, int, float, float | None, str | None]]
    ) -> None:
        best: dict[str, tuple[str, str, int, float, float | None, str | None]] = {}
        for p in points:
            cur = best.get(p[1])
            if cur is None or (p[2], p[3]) >= (cur[2], cur[3]):
                best[p[1]] = p
        lm = s.latest_metrics
        for rid, key, step, ts, value, nonfinite in best.values():
            stmt = self._upsert(lm).values(
                run_id=rid, key=key, step=step, timestamp=ts, value=value, nonfinite=nonfinite
            )
            newer = or_(
                stmt.excluded.step > lm.c.step,
                and_(stmt.excluded.step == lm.c.step, stmt.excluded.timestamp >= lm.c.timestamp),
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["run_id", "key"],
                    set_={
                        "step": stmt.excluded.step,
                        "timestamp": stmt.excluded.timestamp,
                        "value": stmt.excluded.value,
                        "nonfinite": stmt.excluded.nonfinite,
                    },
                    where=newer,
                )
            )

    def heartbeat(self, run_id: str) -> None:
        now = time.time()

        def write(conn: Connection) -> None:
            conn.execute(
                update(s.runs).where(s.runs.c.id == run_id, s.runs.c.status == "RUNNING").values(heartbeat_at=now)
            )

        self._write(write)

    def end_run(self, run_id: str, status: str, error: str | None = None) -> None:
        if status not in RUN_STATUSES or status == "RUNNING":
            raise ValidationError(f"status {status!r} cannot end a run; use FINISHED, FAILED or KILLED")

        def write(conn: Connection) -> None:
            row = conn.execute(select(s.runs.c.status).where(s.runs.c.id == run_id)).first()
            if row is None:
                raise NotFoundError(f"no run with id {run_id!r}")
            conn.execute(
                update(s.runs)
                .where(s.runs.c.id == run_id, s.runs.c.status == "RUNNING")
                .values(status=status, end_time=time.time(), error=error)
            )

        self._write(write)

    def fail_stale_runs(self, timeout: float | None = None) -> int:
        """Turn RUNNING runs whose heartbeat is older than the timeout into FAILED; return how many."""
        timeout = self.settings.heartbeat_timeout if timeout is None else timeout
        cutoff = time.time() - timeout
        stale = and_(s.runs.c.status == "RUNNING", s.runs.c.heartbeat_at < cutoff)
        found = self._read(lambda conn: conn.execute(select(s.runs.c.id).where(stale).limit(1)).first())
        if found is None:
            return 0

        def write(conn: Connection) -> int:
            result = conn.execute(
                update(s.runs)
                .where(stale)
                .values(status="FAILED", end_time=s.runs.c.heartbeat_at, error=VANISHED.format(timeout=timeout))
            )
            return int(result.rowcount or 0)

        return self._write(write)

    def get_run(self, run_id: str) -> Run:
        self.fail_stale_runs()
        runs = self._read(lambda conn: self._load_runs(conn, [run_id]))
        if not runs:
            raise NotFoundError(f"no run with id {run_id!r}", hint="list runs with: stead runs list")
        return runs[0]

    def _ids_param(self, column: Any, ids: Sequence[str]) -> tuple[Any, dict[str, Any]]:
        """``column IN ids`` bound as one parameter (a JSON array on SQLite, an array on PostgreSQL).

        One parameter instead of one per id: binding hundreds of expanded ``IN`` values costs more than
        the query itself.
        """
        if self.dialect == "postgresql":
            from sqlalchemy import ARRAY, String, any_

            return column == any_(bindparam("ids", type_=ARRAY(String))), {"ids": list(ids)}
        values = func.json_each(bindparam("ids")).table_valued("value")
        return column.in_(select(values.c.value)), {"ids": json.dumps(list(ids))}

    def _load_runs(self, conn: Connection, ids: Sequence[str]) -> list[Run]:
        if not ids:
            return []
        where, bound = self._ids_param(s.runs.c.id, ids)
        order = {run_id: i for i, run_id in enumerate(ids)}
        rows = sorted(conn.execute(_RUN_COLUMNS.where(where), bound), key=lambda r: order[r.id])
        return self._runs_from_rows(conn, rows)

    def _runs_from_rows(self, conn: Connection, rows: Sequence[Any]) -> list[Run]:
        """Build runs from rows of ``_RUN_COLUMNS`` (kept in order) with their params, tags, metrics, ..."""
        if not rows:
            return []
        by_id: dict[str, dict[str, Any]] = {}
        for run_id, experiment, name, status, start, end, heartbeat, seed, env, error in rows:
            by_id[run_id] = {
                "id": run_id,
                "experiment": experiment,
                "name": name,
                "status": status,
                "start_time": _dt(start),
                "end_time": _dt(end),
                "heartbeat_at": _dt(heartbeat),
                "seed": seed,
                "env": env or {},
                "error": error,
                "params": {},
                "tags": {},
                "metrics": {},
                "inputs": [],
                "outputs": [],
                "artifacts": {},
            }

        def children(table: Any, *columns: Any, order_by: Any = None) -> list[Any]:
            where, bound = self._ids_param(table.c.run_id, list(by_id))
            stmt = select(table.c.run_id, *columns).where(where)
            if order_by is not None:
                stmt = stmt.order_by(order_by)
            return list(conn.execute(stmt, bound).all())

        for run_id, key, value in children(s.params, s.params.c.key, s.params.c.value):
            by_id[run_id]["params"][key] = value
        for run_id, key, value in children(s.tags, s.tags.c.key, s.tags.c.value):
            by_id[run_id]["tags"][key] = value
        lm = s.latest_metrics
        for run_id, key, value, nonfinite in children(lm, lm.c.key, lm.c.value, lm.c.nonfinite):
            by_id[run_id]["metrics"][key] = _join_float(value, nonfinite)
        du = s.dataset_uses
        for run_id, dataset_id, role, name in children(du, du.c.dataset_id, du.c.role, du.c.name, order_by=du.c.at):
            by_id[run_id]["inputs"].append(DatasetUse(dataset_id=dataset_id, role=role, name=name))
        mv = s.model_versions
        for run_id, name, version in children(mv, mv.c.name, mv.c.version, order_by=mv.c.created_at):
            by_id[run_id]["outputs"].append(ModelVersionRef(name=name, version=version))
        ra = s.run_artifacts
        for run_id, name, digest in children(ra, ra.c.name, ra.c.digest):
            by_id[run_id]["artifacts"][name] = digest
        return [Run.model_validate(fields) for fields in by_id.values()]

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        def read(conn: Connection) -> list[MetricPoint]:
            if conn.execute(select(s.runs.c.id).where(s.runs.c.id == run_id)).first() is None:
                raise NotFoundError(f"no run with id {run_id!r}")
            rows = conn.execute(
                select(s.metrics)
                .where(s.metrics.c.run_id == run_id, s.metrics.c.key == key)
                .order_by(s.metrics.c.step, s.metrics.c.timestamp, s.metrics.c.id)
            )
            return [
                MetricPoint(key=key, value=_join_float(r.value, r.nonfinite), step=r.step, timestamp=r.timestamp)
                for r in rows
            ]

        return self._read(read)

    def _refresh_planner_stats(self) -> None:
        """On SQLite, ANALYZE when the runs table has doubled since the last one (checked once a minute).

        Without statistics SQLite's planner walks every run of the experiment and probes the filter per
        run; with them it starts from the (key, value) index of the filtered metric or param. PostgreSQL's
        autovacuum keeps its own statistics.
        """
        now = time.monotonic()
        if self.dialect != "sqlite" or now < self._stats_checked + 60:
            return
        self._stats_checked = now

        def stale(conn: Connection) -> bool:
            rows = conn.exec_driver_sql("SELECT max(rowid) FROM runs").scalar() or 0
            if rows < 200:
                return False
            has_stats = conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
            ).first()
            known = None
            if has_stats:
                known = conn.exec_driver_sql(
                    "SELECT stat FROM sqlite_stat1 WHERE tbl = 'runs' AND idx = 'sqlite_autoindex_runs_1'"
                ).scalar()
            return known is None or rows >= 2 * int(str(known).split()[0])

        def analyze(conn: Connection) -> None:
            conn.exec_driver_sql("PRAGMA analysis_limit = 20000")
            conn.exec_driver_sql("ANALYZE")

        if self._read(stale):
            self._write(analyze)

    def search_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: str | Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> RunList:
        from stead.store.search import compile_search

        self.fail_stale_runs()
        self._refresh_planner_stats()
        if not isinstance(max_results, int) or isinstance(max_results, bool) or not 1 <= max_results <= 50_000:
            raise ValidationError(f"max_results must be an integer from 1 to 50000, got {max_results!r}")
        experiments = [experiment] if isinstance(experiment, str) else list(experiment or [])
        orders = [order_by] if isinstance(order_by, str) else list(order_by or [])

        def read(conn: Connection) -> RunList:
            exp_ids = [self._experiment_id(conn, name, create=False) for name in experiments]
            stmt, offset = compile_search(exp_ids, filter, orders, max_results, page_token, _RUN_COLUMNS)
            rows = conn.execute(stmt).all()
            more = len(rows) > max_results
            out = RunList(self._runs_from_rows(conn, rows[:max_results]))
            if more:
                from stead.store.search import encode_token

                out.next_page_token = encode_token(offset + max_results)
            return out

        return self._read(read)

    def delete_run(self, run_id: str) -> None:
        def write(conn: Connection) -> None:
            for table in (s.metrics, s.latest_metrics, s.params, s.tags, s.run_artifacts, s.dataset_uses):
                conn.execute(delete(table).where(table.c.run_id == run_id))
            conn.execute(delete(s.runs).where(s.runs.c.id == run_id))

        self._write(write)

    # ------------------------------------------------------------ artifacts of runs
    def record_artifacts(self, run_id: str, items: Mapping[str, tuple[str, int]]) -> None:
        """Point run artifact names at stored blobs ``{name: (digest, size)}`` (bytes already durable)."""
        now = time.time()

        def write(conn: Connection) -> None:
            self._require_running(conn, run_id)
            for name, (digest, size) in items.items():
                stmt = self._upsert(s.run_artifacts).values(
                    run_id=run_id, name=name, digest=digest, size=size, created_at=now
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "name"], set_={"digest": digest, "size": size, "created_at": now}
                    )
                )

        self._write(write)

    # ------------------------------------------------------------ datasets
    def put_dataset(
        self,
        dataset_id: str,
        name: str,
        *,
        rows: int,
        columns: int,
        schema: list[dict[str, Any]],
        profile: dict[str, Any],
        data_digest: str | None,
        sample_digest: str | None,
        source: str | None,
    ) -> DatasetVersion:
        """Record a dataset version; the same id again is the same version (only a missing data blob is added)."""

        def write(conn: Connection) -> None:
            row = conn.execute(select(s.datasets.c.data_digest).where(s.datasets.c.id == dataset_id)).first()
            if row is None:
                stmt = self._upsert(s.datasets).values(
                    id=dataset_id,
                    name=name,
                    rows=rows,
                    columns=columns,
                    schema=schema,
                    profile=profile,
                    data_digest=data_digest,
                    sample_digest=sample_digest,
                    source=source,
                    created_at=time.time(),
                )
                conn.execute(stmt.on_conflict_do_nothing(index_elements=["id"]))
            elif row[0] is None and data_digest is not None:
                conn.execute(update(s.datasets).where(s.datasets.c.id == dataset_id).values(data_digest=data_digest))

        self._write(write)
        return self.get_dataset(dataset_id)

    def has_dataset(self, dataset_id: str) -> bool:
        def read(conn: Connection) -> bool:
            return conn.execute(select(s.datasets.c.id).where(s.datasets.c.id == dataset_id)).first() is not None

        return self._read(read)

    def record_dataset_use(self, run_id: str, dataset_id: str, role: str, name: str) -> None:
        check_key(role, "dataset role", run_id)
        now = time.time()

        def write(conn: Connection) -> None:
            self._require_running(conn, run_id)
            stmt = self._upsert(s.dataset_uses).values(
                run_id=run_id, dataset_id=dataset_id, role=role, name=name, at=now
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["run_id", "dataset_id", "role"]))
            self._add_edge(conn, f"dataset:{dataset_id}", f"run:{run_id}", "input", {"role": role}, now)

        self._write(write)

    @staticmethod
    def _dataset(r: Any) -> DatasetVersion:
        return DatasetVersion.model_validate(
            {
                "id": r.id,
                "name": r.name,
                "rows": r.rows,
                "columns": r.columns,
                "schema": r.schema,
                "profile": r.profile,
                "data_digest": r.data_digest,
                "sample_digest": r.sample_digest,
                "source": r.source,
                "created_at": _dt(r.created_at),
            }
        )

    def get_dataset(self, dataset_id: str) -> DatasetVersion:
        def read(conn: Connection) -> DatasetVersion:
            row = conn.execute(select(s.datasets).where(s.datasets.c.id == dataset_id)).first()
            if row is None:
                matches = conn.execute(select(s.datasets).where(s.datasets.c.id.like(f"{dataset_id}%")).limit(2)).all()
                if len(dataset_id) >= 6 and len(matches) == 1:
                    return self._dataset(matches[0])
                raise NotFoundError(f"no dataset version {dataset_id!r}", hint="list them with: stead datasets list")
            return self._dataset(row)

        return self._read(read)

    def list_datasets(self, name: str | None = None, limit: int = 100) -> list[DatasetVersion]:
        def read(conn: Connection) -> list[DatasetVersion]:
            stmt = select(s.datasets).order_by(s.datasets.c.created_at.desc()).limit(limit)
            if name:
                stmt = stmt.where(s.datasets.c.name == name)
            return [self._dataset(r) for r in conn.execute(stmt)]

        return self._read(read)

    def dataset_usage(self, dataset_id: str) -> list[dict[str, Any]]:
        def read(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                select(s.dataset_uses).where(s.dataset_uses.c.dataset_id == dataset_id).order_by(s.dataset_uses.c.at)
            )
            return [{"run_id": r.run_id, "role": r.role, "name": r.name, "at": _dt(r.at)} for r in rows]

        return self._read(read)

    # ------------------------------------------------------------ lineage
    def _add_edge(
        self, conn: Connection, source: str, target: str, kind: str, attrs: Mapping[str, Any] | None, at: float
    ) -> None:
        stmt = self._upsert(s.lineage_edges).values(
            source=source, target=target, kind=kind, at=at, attrs=dict(attrs or {})
        )
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["source", "target", "kind"]))

    def add_edge(self, source: str, target: str, kind: str, attrs: Mapping[str, Any] | None = None) -> None:
        now = time.time()
        self._write(lambda conn: self._add_edge(conn, source, target, kind, attrs, now))

    def edges_of(self, nodes: Iterable[str], direction: str) -> list[dict[str, Any]]:
        """Edges touching ``nodes``: ``up`` gives edges into them, ``down`` edges out of them."""
        wanted = list(nodes)
        if not wanted:
            return []
        col = s.lineage_edges.c.target if direction == "up" else s.lineage_edges.c.source

        def read(conn: Connection) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for i in range(0, len(wanted), 500):
                rows = conn.execute(select(s.lineage_edges).where(col.in_(wanted[i : i + 500])))
                out.extend(
                    {"source": r.source, "target": r.target, "kind": r.kind, "at": r.at, "attrs": r.attrs or {}}
                    for r in rows
                )
            return out

        return self._read(read)

    # ------------------------------------------------------------ info
    def counts(self) -> dict[str, int]:
        def read(conn: Connection) -> dict[str, int]:
            out = {}
            for name, table in (
                ("experiments", s.experiments),
                ("runs", s.runs),
                ("datasets", s.datasets),
                ("models", s.models),
                ("deployments", s.deployments),
            ):
                out[name] = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            return out

        return self._read(read)

    # ------------------------------------------------------------ pipelines (issue 7)
    def create_pipeline_run(
        self,
        model: str,
        trigger: str,
        reason: str | None = None,
        key: str | None = None,
        cause: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Start a pipeline run of ``model``; with an idempotency ``key`` a cause fires at most once.

        Returns ``{"id": …, "created": bool}``: ``created`` is False when ``key`` was seen before, and ``id``
        is then the pipeline run that cause started.
        """
        check_name(model, "model name")
        check_key(trigger, "trigger")
        now = time.time()
        pid = uuid.uuid4().hex

        def write(conn: Connection) -> dict[str, Any]:
            if key is not None:
                found = conn.execute(
                    select(s.trigger_firings.c.pipeline_run_id).where(s.trigger_firings.c.idempotency_key == key)
                ).first()
                if found is not None:
                    return {"id": found[0], "created": False}
                conn.execute(
                    insert(s.trigger_firings).values(
                        model=model,
                        kind=trigger,
                        idempotency_key=key,
                        cause=cause or {},
                        fired_at=now,
                        pipeline_run_id=pid,
                    )
                )
            conn.execute(
                insert(s.pipeline_runs).values(
                    id=pid, model=model, status="RUNNING", trigger=trigger, reason=reason, steps=[], started_at=now
                )
            )
            alert_id = (cause or {}).get("alert_id")
            if alert_id is not None:
                self._add_edge(conn, f"alert:{alert_id}", f"pipeline:{pid}", "triggered", {"trigger": trigger}, now)
            return {"id": pid, "created": True}

        try:
            return self._write(write)
        except SAIntegrityError:  # a concurrent firing of the same key won the race
            return self._write(write)

    def update_pipeline_run(
        self,
        pipeline_id: str,
        status: str | None = None,
        step: dict[str, Any] | None = None,
        run_id: str | None = None,
        version: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record a step (replacing an earlier record of the same step name), the run, version or the end."""
        if status is not None and status not in ("RUNNING", "APPROVED", "REJECTED", "FAILED"):
            raise ValidationError(f"pipeline status {status!r} is not RUNNING, APPROVED, REJECTED or FAILED")
        now = time.time()

        def write(conn: Connection) -> None:
            row = conn.execute(select(s.pipeline_runs).where(s.pipeline_runs.c.id == pipeline_id)).first()
            if row is None:
                raise NotFoundError(f"no pipeline run {pipeline_id!r}")
            values: dict[str, Any] = {}
            if step is not None:
                steps = [x for x in (row.steps or []) if x.get("name") != step.get("name")]
                values["steps"] = [*steps, {**step, "at": now}]
            if run_id is not None:
                values["run_id"] = run_id
                self._add_edge(conn, f"pipeline:{pipeline_id}", f"run:{run_id}", "ran", None, now)
            if version is not None:
                values["version"] = version
            if error is not None:
                values["error"] = error
            if status is not None:
                values["status"] = status
                if status != "RUNNING":
                    values["ended_at"] = now
            if values:
                conn.execute(update(s.pipeline_runs).where(s.pipeline_runs.c.id == pipeline_id).values(**values))

        self._write(write)

    @staticmethod
    def _pipeline(r: Any) -> dict[str, Any]:
        return {
            "key": getattr(r, "idempotency_key", None),
            "id": r.id,
            "model": r.model,
            "status": r.status,
            "trigger": r.trigger,
            "reason": r.reason,
            "run_id": r.run_id,
            "version": r.version,
            "steps": r.steps or [],
            "started_at": r.started_at,
            "ended_at": r.ended_at,
            "error": r.error,
            "cause": dict(getattr(r, "cause", None) or {}),
        }

    @staticmethod
    def _pipelines_select() -> Any:
        tf = s.trigger_firings
        return select(s.pipeline_runs, tf.c.idempotency_key, tf.c.cause).outerjoin(
            tf, tf.c.pipeline_run_id == s.pipeline_runs.c.id
        )

    def get_pipeline_run(self, pipeline_id: str) -> dict[str, Any]:
        def read(conn: Connection) -> dict[str, Any]:
            row = conn.execute(self._pipelines_select().where(s.pipeline_runs.c.id == pipeline_id)).first()
            if row is None:
                raise NotFoundError(f"no pipeline run {pipeline_id!r}")
            return self._pipeline(row)

        return self._read(read)

    def list_pipeline_runs(self, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        def read(conn: Connection) -> list[dict[str, Any]]:
            stmt = self._pipelines_select().order_by(s.pipeline_runs.c.started_at.desc()).limit(limit)
            if model is not None:
                stmt = stmt.where(s.pipeline_runs.c.model == model)
            return [self._pipeline(r) for r in conn.execute(stmt)]

        return self._read(read)

    # ------------------------------------------------------------ the controller (issue 7)
    def acquire_lease(self, name: str, holder: str, ttl: float) -> dict[str, Any]:
        """Take or renew the lease ``name`` for ``ttl`` seconds; ``{"held": bool, "holder", "expires_at"}``.

        The lease is free when absent or expired, and renewable by its holder. One controller per store holds
        ``"controller"``; a second one waits and says who holds it.
        """
        check_key(name, "lease")
        now = time.time()

        def write(conn: Connection) -> dict[str, Any]:
            row = conn.execute(select(s.leases).where(s.leases.c.name == name)).first()
            if row is None:
                conn.execute(insert(s.leases).values(name=name, holder=holder, expires_at=now + ttl))
                return {"held": True, "holder": holder, "expires_at": now + ttl}
            if row.holder == holder or row.expires_at < now:
                conn.execute(
                    update(s.leases).where(s.leases.c.name == name).values(holder=holder, expires_at=now + ttl)
                )
                return {"held": True, "holder": holder, "expires_at": now + ttl}
            return {"held": False, "holder": row.holder, "expires_at": row.expires_at}

        try:
            return self._write(write)
        except SAIntegrityError:  # another process inserted it first
            return self._write(write)

    def release_lease(self, name: str, holder: str) -> None:
        self._write(
            lambda conn: conn.execute(delete(s.leases).where(s.leases.c.name == name, s.leases.c.holder == holder))
        )

    @staticmethod
    def _rollout(r: Any) -> dict[str, Any]:
        return {
            "id": r.id,
            "deployment": r.deployment,
            "model": r.model,
            "candidate": r.candidate,
            "baseline": r.baseline,
            "steps": r.steps,
            "step_index": r.step_index,
            "status": r.status,
            "pipeline_run_id": r.pipeline_run_id,
            "started_at": r.started_at,
            "updated_at": r.updated_at,
        }

    def create_rollout(
        self,
        deployment: str,
        model: str,
        candidate: int,
        baseline: int | None,
        steps: list[int],
        pipeline_run_id: str | None = None,
    ) -> dict[str, Any]:
        """Record a rollout the controller will drive through ``steps`` (canary percents, ending at 100)."""
        check_name(deployment, "deployment name")
        now = time.time()
        rid = uuid.uuid4().hex

        def write(conn: Connection) -> dict[str, Any]:
            active = conn.execute(
                select(s.rollouts.c.id).where(s.rollouts.c.deployment == deployment, s.rollouts.c.status == "running")
            ).first()
            if active is not None:
                raise ConflictError(
                    f"deployment {deployment} already has a rollout in progress ({active[0][:12]})",
                    hint=f"finish it first: stead promote {deployment} or stead rollback {deployment}",
                )
            conn.execute(
                insert(s.rollouts).values(
                    id=rid,
                    deployment=deployment,
                    model=model,
                    candidate=candidate,
                    baseline=baseline,
                    steps=list(steps),
                    step_index=0,
                    status="running",
                    pipeline_run_id=pipeline_run_id,
                    started_at=now,
                    updated_at=now,
                )
            )
            self._add_edge(conn, f"version:{model}/{candidate}", f"rollout:{rid}", "rollout", {"steps": steps}, now)
            if pipeline_run_id:
                self._add_edge(conn, f"pipeline:{pipeline_run_id}", f"rollout:{rid}", "started", None, now)
            row = conn.execute(select(s.rollouts).where(s.rollouts.c.id == rid)).one()
            return self._rollout(row)

        return self._write(write)

    def update_rollout(
        self,
        rollout_id: str,
        step_index: int | None = None,
        status: str | None = None,
        expected_step: int | None = None,
    ) -> dict[str, Any]:
        """Advance or end a rollout; with ``expected_step`` it is a compare-and-set on the current step."""
        if status is not None and status not in ("running", "promoted", "rolled_back", "aborted"):
            raise ValidationError(f"rollout status {status!r} is not running, promoted, rolled_back or aborted")

        def write(conn: Connection) -> dict[str, Any]:
            row = conn.execute(select(s.rollouts).where(s.rollouts.c.id == rollout_id)).first()
            if row is None:
                raise NotFoundError(f"no rollout {rollout_id!r}")
            if expected_step is not None and row.step_index != expected_step:
                raise ConflictError(f"rollout {rollout_id[:12]} is at step {row.step_index}, not {expected_step}")
            values: dict[str, Any] = {"updated_at": time.time()}
            if step_index is not None:
                values["step_index"] = step_index
            if status is not None:
                values["status"] = status
            conn.execute(update(s.rollouts).where(s.rollouts.c.id == rollout_id).values(**values))
            return self._rollout(conn.execute(select(s.rollouts).where(s.rollouts.c.id == rollout_id)).one())

        return self._write(write)

    def list_rollouts(
        self, deployment: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        def read(conn: Connection) -> list[dict[str, Any]]:
            stmt = select(s.rollouts).order_by(s.rollouts.c.started_at.desc()).limit(limit)
            if deployment is not None:
                stmt = stmt.where(s.rollouts.c.deployment == deployment)
            if status is not None:
                stmt = stmt.where(s.rollouts.c.status == status)
            return [self._rollout(r) for r in conn.execute(stmt)]

        return self._read(read)

    def add_canary_decision(self, rollout_id: str, step: int, decision: str, evidence: dict[str, Any]) -> int:
        """Store one canary-analysis decision with its evidence, linked in lineage to its rollout."""
        if decision not in ("advance", "hold", "rollback", "promote"):
            raise ValidationError(f"decision {decision!r} is not advance, hold, rollback or promote")
        now = time.time()

        def write(conn: Connection) -> int:
            result = conn.execute(
                insert(s.canary_decisions).values(
                    rollout_id=rollout_id, at=now, step=step, decision=decision, evidence=evidence
                )
            )
            new_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            if decision != "hold":
                self._add_edge(conn, f"rollout:{rollout_id}", f"decision:{new_id}", decision, {"step": step}, now)
            return new_id

        return self._write(write)

    def canary_decisions(self, rollout_id: str | None = None, deployment: str | None = None) -> list[dict[str, Any]]:
        def read(conn: Connection) -> list[dict[str, Any]]:
            cd, ro = s.canary_decisions, s.rollouts
            stmt = select(cd, ro.c.deployment).join(ro, ro.c.id == cd.c.rollout_id).order_by(cd.c.at, cd.c.id)
            if rollout_id is not None:
                stmt = stmt.where(cd.c.rollout_id == rollout_id)
            if deployment is not None:
                stmt = stmt.where(ro.c.deployment == deployment)
            return [
                {
                    "id": r.id,
                    "rollout_id": r.rollout_id,
                    "deployment": r.deployment,
                    "at": r.at,
                    "step": r.step,
                    "decision": r.decision,
                    "evidence": r.evidence,
                }
                for r in conn.execute(stmt)
            ]

        return self._read(read)

    def add_serving_stats(self, rows: list[dict[str, Any]]) -> int:
        """Per-version health from a serving worker: requests, 4xx, 5xx and a latency histogram per window.

        Each row: deployment, model, version, route, worker, window_start, window_end, requests, errors_4xx,
        errors_5xx, latency ({"bounds": [...seconds], "counts": [...]}).
        """
        keys = (
            "deployment",
            "model",
            "version",
            "route",
            "worker",
            "window_start",
            "window_end",
            "requests",
            "errors_4xx",
            "errors_5xx",
            "latency",
        )
        clean = []
        for n, row in enumerate(rows):
            missing = [k for k in keys if k not in row]
            if missing:
                raise ValidationError(f"serving stats row {n}: missing {', '.join(missing)}")
            clean.append({k: row[k] for k in keys})
        if clean:
            self._write(lambda conn: conn.execute(insert(s.serving_stats), clean))
        return len(clean)

    def serving_stats(self, deployment: str, since: float | None = None) -> list[dict[str, Any]]:
        """Per (model, version, route) totals since ``since``, with the merged latency histogram."""

        def read(conn: Connection) -> list[dict[str, Any]]:
            st = s.serving_stats
            stmt = select(st).where(st.c.deployment == deployment)
            if since is not None:
                stmt = stmt.where(st.c.window_end >= since)
            totals: dict[tuple[str, int, str], dict[str, Any]] = {}
            for r in conn.execute(stmt):
                key = (r.model, r.version, r.route)
                t = totals.setdefault(
                    key,
                    {
                        "model": r.model,
                        "version": r.version,
                        "route": r.route,
                        "requests": 0,
                        "errors_4xx": 0,
                        "errors_5xx": 0,
                        "latency": {
                            "bounds": list(r.latency.get("bounds", [])),
                            "counts": [0] * len(r.latency.get("counts", [])),
                        },
                    },
                )
                t["requests"] += r.requests
                t["errors_4xx"] += r.errors_4xx
                t["errors_5xx"] += r.errors_5xx
                counts = r.latency.get("counts", [])
                if len(counts) == len(t["latency"]["counts"]):
                    t["latency"]["counts"] = [a + b for a, b in zip(t["latency"]["counts"], counts, strict=True)]
            return sorted(totals.values(), key=lambda t: (t["version"], t["route"]))

        return self._read(read)

    # ------------------------------------------------------------ registry
    # Model versions are numbered densely per model: the number is taken from ``models.next_version``
    # inside the write transaction (row locked with FOR UPDATE on PostgreSQL; SQLite writes are serialized
    # by BEGIN IMMEDIATE). Aliases move by compare-and-set, in place, and every attempt is an audit row.

    def _version_row(self, conn: Connection, name: str, version: int, lock: bool = False) -> Any:
        stmt = select(s.model_versions).where(s.model_versions.c.name == name, s.model_versions.c.version == version)
        row = conn.execute(stmt.with_for_update() if lock else stmt).first()
        if row is None:
            if conn.execute(select(s.models.c.name).where(s.models.c.name == name)).first() is None:
                raise self._no_model(conn, name)
            latest = conn.execute(
                select(func.max(s.model_versions.c.version)).where(s.model_versions.c.name == name)
            ).scalar()
            raise NotFoundError(
                f"model {name!r} has no version {version}",
                hint=f"its latest version is {latest}; list them with: stead models show {name}",
            )
        return row

    @staticmethod
    def _no_model(conn: Connection, name: str) -> NotFoundError:
        known = [r[0] for r in conn.execute(select(s.models.c.name).order_by(s.models.c.name).limit(20))]
        return NotFoundError(
            f"no model named {name!r}",
            hint=f"known models: {', '.join(known)}" if known else "register one with client.register_model(...)",
        )

    def _versions(self, conn: Connection, rows: Sequence[Any]) -> list[ModelVersion]:
        if not rows:
            return []
        names = sorted({r.name for r in rows})
        by_version: dict[tuple[str, int], list[str]] = {}
        for a in conn.execute(select(s.aliases).where(s.aliases.c.name.in_(names)).order_by(s.aliases.c.alias)):
            by_version.setdefault((a.name, a.version), []).append(a.alias)
        return [
            ModelVersion(
                name=r.name,
                version=r.version,
                state=r.state,
                aliases=by_version.get((r.name, r.version), []),
                run_id=r.run_id,
                flavor=r.flavor,
                signature=r.signature or {},
                manifest=r.manifest or {},
                requirements=r.requirements or [],
                allow_pickle=bool(r.allow_pickle),
                gate_results=r.gate_results or [],
                metrics=r.metrics or {},
                state_reason=r.state_reason,
                created_at=_dt(r.created_at),
                created_by=r.created_by,
            )
            for r in rows
        ]

    def create_model_version(
        self,
        name: str,
        flavor: str,
        manifest: dict[str, str],
        signature: dict[str, Any] | None = None,
        requirements: list[str] | None = None,
        run_id: str | None = None,
        allow_pickle: bool = False,
        metrics: dict[str, float] | None = None,
        source: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Record a new version of model ``name`` (created on first use) whose files are ``manifest``.

        The artifact bytes must already be durable. The version number is the next one of the model, dense
        and unique under any number of concurrent writers; the version starts as ``candidate`` and, with a
        ``run_id``, gets the lineage edge ``run:<id> -> version:<name>/<n>`` (kind ``produced``).
        """
        check_name(name, "model name")
        if not manifest:
            raise ValidationError(f"model {name!r}: a version needs at least one file in its manifest")
        for file, digest in manifest.items():
            if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValidationError(f"model {name!r}: file {file!r} has no sha256 digest in the manifest")
        missing = [f for f, d in manifest.items() if not self.artifacts.exists(d)]
        if missing:
            raise ValidationError(
                f"model {name!r}: file {missing[0]!r} is not in the artifact store",
                hint="store the files first (artifacts.put_tree), then record the version",
            )
        now = time.time()
        who = actor or self.settings.user

        def write(conn: Connection) -> int:
            if run_id is not None and conn.execute(select(s.runs.c.id).where(s.runs.c.id == run_id)).first() is None:
                raise NotFoundError(f"no run with id {run_id!r}", hint="list runs with: stead runs list")
            stmt = self._upsert(s.models).values(name=name, created_at=now, next_version=1)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            number = int(
                conn.execute(
                    select(s.models.c.next_version).where(s.models.c.name == name).with_for_update()
                ).scalar_one()
            )
            conn.execute(update(s.models).where(s.models.c.name == name).values(next_version=number + 1))
            conn.execute(
                insert(s.model_versions).values(
                    name=name,
                    version=number,
                    run_id=run_id,
                    flavor=flavor,
                    state="candidate",
                    signature=dict(signature or {}),
                    manifest=dict(manifest),
                    requirements=list(requirements or []),
                    allow_pickle=bool(allow_pickle),
                    gate_results=[],
                    metrics=dict(metrics or {}),
                    source=source,
                    created_at=now,
                    created_by=who,
                )
            )
            if run_id is not None:
                self._add_edge(conn, f"run:{run_id}", f"version:{name}/{number}", "produced", {}, now)
            if allow_pickle:
                self._audit(conn, who, "allow_pickle", f"model:{name}/{number}", "registered with allow_pickle", {})
            return number

        number = self._write(write)
        return self.get_model_version(name, number)

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """One version of a model, with its aliases; NotFoundError names the latest version."""

        def read(conn: Connection) -> ModelVersion:
            return self._versions(conn, [self._version_row(conn, name, version)])[0]

        return self._read(read)

    def resolve_version(self, ref: Ref | str) -> ModelVersion:
        """The version a model reference points at now: ``NAME/N``, ``NAME@N`` or ``NAME@ALIAS``."""
        parsed = Ref.parse(ref) if isinstance(ref, str) else ref
        if parsed.kind == "version" and parsed.name and parsed.version is not None:
            return self.get_model_version(parsed.name, parsed.version)
        if parsed.kind != "alias" or not parsed.name or not parsed.alias:
            raise ValidationError(f"{parsed} is not a model reference", hint="use NAME@ALIAS or NAME/VERSION")
        name, alias = parsed.name, parsed.alias

        def read(conn: Connection) -> ModelVersion:
            row = conn.execute(
                select(s.aliases.c.version).where(s.aliases.c.name == name, s.aliases.c.alias == alias)
            ).first()
            if row is None:
                if conn.execute(select(s.models.c.name).where(s.models.c.name == name)).first() is None:
                    raise self._no_model(conn, name)
                known = [r[0] for r in conn.execute(select(s.aliases.c.alias).where(s.aliases.c.name == name))]
                latest = conn.execute(
                    select(func.max(s.model_versions.c.version)).where(s.model_versions.c.name == name)
                ).scalar()
                raise NotFoundError(
                    f"Model {name!r} has no alias {alias!r}. Known aliases: {', '.join(sorted(known)) or '(none)'}.",
                    hint=f"Set one with: stead alias {name} {alias} {latest}",
                )
            return self._versions(conn, [self._version_row(conn, name, int(row[0]))])[0]

        return self._read(read)

    def list_models(self) -> list[dict[str, Any]]:
        """Every model: ``{name, latest_version, state, versions, aliases: {alias: version}, created_at}``."""

        def read(conn: Connection) -> list[dict[str, Any]]:
            mv = s.model_versions
            latest = (
                select(mv.c.name, func.max(mv.c.version).label("latest"), func.count().label("n"))
                .group_by(mv.c.name)
                .subquery()
            )
            rows = conn.execute(
                select(s.models.c.name, s.models.c.created_at, latest.c.latest, latest.c.n, mv.c.state)
                .select_from(s.models)
                .join(latest, latest.c.name == s.models.c.name, isouter=True)
                .join(mv, and_(mv.c.name == latest.c.name, mv.c.version == latest.c.latest), isouter=True)
                .order_by(s.models.c.name)
            ).all()
            aliases: dict[str, dict[str, int]] = {}
            for a in conn.execute(select(s.aliases).order_by(s.aliases.c.alias)):
                aliases.setdefault(a.name, {})[a.alias] = a.version
            return [
                {
                    "name": r.name,
                    "latest_version": r.latest,
                    "state": r.state,
                    "versions": int(r.n or 0),
                    "aliases": aliases.get(r.name, {}),
                    "created_at": datetime.fromtimestamp(r.created_at, UTC).isoformat(),
                }
                for r in rows
            ]

        return self._read(read)

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, newest first."""

        def read(conn: Connection) -> list[ModelVersion]:
            if conn.execute(select(s.models.c.name).where(s.models.c.name == name)).first() is None:
                raise self._no_model(conn, name)
            rows = conn.execute(
                select(s.model_versions)
                .where(s.model_versions.c.name == name)
                .order_by(s.model_versions.c.version.desc())
            ).all()
            return self._versions(conn, rows)

        return self._read(read)

    def _alias_audit(
        self,
        conn: Connection,
        name: str,
        alias: str,
        from_version: int | None,
        to_version: int | None,
        actor: str,
        reason: str | None,
        outcome: str,
        at: float,
    ) -> AliasMove:
        conn.execute(
            insert(s.alias_audit).values(
                name=name,
                alias=alias,
                from_version=from_version,
                to_version=to_version,
                actor=actor,
                reason=reason,
                outcome=outcome,
                at=at,
            )
        )
        return AliasMove(
            name=name,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            actor=actor,
            reason=reason,
            at=_dt(at),
            outcome=outcome,
        )

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        expected: int | None = None,
        check_expected: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> AliasMove:
        """Point ``alias`` of model ``name`` at ``version``, updating the row in place.

        With ``check_expected``, this is a compare-and-set: the alias must point at ``expected`` now
        (``None``: must not exist), else ConflictError. Every attempt, won or lost, is an audit row.
        """
        check_name(name, "model name")
        check_alias(alias)
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValidationError(f"version must be an integer, got {version!r}")
        who = actor or self.settings.user
        now = time.time()

        def write(conn: Connection) -> tuple[AliasMove, int | None]:
            self._version_row(conn, name, version)
            where = and_(s.aliases.c.name == name, s.aliases.c.alias == alias)
            row = conn.execute(select(s.aliases.c.version, s.aliases.c.revision).where(where).with_for_update()).first()
            current = None if row is None else int(row[0])
            if check_expected and current != expected:
                move = self._alias_audit(conn, name, alias, current, version, who, reason, "conflict", now)
                return move, current
            if row is None:
                stmt = self._upsert(s.aliases).values(
                    name=name, alias=alias, version=version, revision=1, updated_at=now
                )
                inserted = conn.execute(stmt.on_conflict_do_nothing(index_elements=["name", "alias"]))
                if not inserted.rowcount:  # another writer created it meanwhile
                    now_row = conn.execute(select(s.aliases.c.version).where(where)).first()
                    current = None if now_row is None else int(now_row[0])
                    if check_expected:
                        move = self._alias_audit(conn, name, alias, current, version, who, reason, "conflict", now)
                        return move, current
                    conn.execute(
                        update(s.aliases)
                        .where(where)
                        .values(version=version, revision=s.aliases.c.revision + 1, updated_at=now)
                    )
            else:
                conn.execute(
                    update(s.aliases).where(where).values(version=version, revision=int(row[1]) + 1, updated_at=now)
                )
            return self._alias_audit(conn, name, alias, current, version, who, reason, "moved", now), current

        move, current = self._write(write)
        if move.outcome == "conflict":
            raise ConflictError(
                f"alias {name}@{alias} points at "
                f"{'nothing' if current is None else f'version {current}'}, not "
                f"{'nothing' if expected is None else f'version {expected}'} as expected: it moved in between",
                hint=f"check the history with: stead alias {name} --history, then try again",
                details={"current": current, "expected": expected},
            )
        return move

    def delete_alias(
        self,
        name: str,
        alias: str,
        expected: int | None = None,
        check_expected: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> AliasMove:
        """Remove an alias (compare-and-set with ``check_expected``); the attempt is an audit row."""
        check_name(name, "model name")
        check_alias(alias)
        who = actor or self.settings.user
        now = time.time()

        def write(conn: Connection) -> tuple[AliasMove, int | None]:
            where = and_(s.aliases.c.name == name, s.aliases.c.alias == alias)
            row = conn.execute(select(s.aliases.c.version).where(where).with_for_update()).first()
            current = None if row is None else int(row[0])
            if row is None and not check_expected:
                if conn.execute(select(s.models.c.name).where(s.models.c.name == name)).first() is None:
                    raise self._no_model(conn, name)
                raise NotFoundError(f"Model {name!r} has no alias {alias!r}", hint=f"stead models show {name}")
            if check_expected and current != expected:
                return self._alias_audit(conn, name, alias, current, None, who, reason, "conflict", now), current
            conn.execute(delete(s.aliases).where(where))
            return self._alias_audit(conn, name, alias, current, None, who, reason, "deleted", now), current

        move, current = self._write(write)
        if move.outcome == "conflict":
            raise ConflictError(
                f"alias {name}@{alias} points at {'nothing' if current is None else f'version {current}'}, not "
                f"{'nothing' if expected is None else f'version {expected}'} as expected",
                hint=f"check the history with: stead alias {name} --history",
            )
        return move

    def alias_history(self, name: str, alias: str | None = None, limit: int = 1000) -> list[AliasMove]:
        """Every alias move of a model (or of one alias), oldest first, including lost compare-and-sets."""

        def read(conn: Connection) -> list[AliasMove]:
            stmt = select(s.alias_audit).where(s.alias_audit.c.name == name)
            if alias is not None:
                stmt = stmt.where(s.alias_audit.c.alias == alias)
            rows = conn.execute(stmt.order_by(s.alias_audit.c.at, s.alias_audit.c.id).limit(limit))
            return [
                AliasMove(
                    name=r.name,
                    alias=r.alias,
                    from_version=r.from_version,
                    to_version=r.to_version,
                    actor=r.actor,
                    reason=r.reason,
                    at=_dt(r.at),
                    outcome=r.outcome,
                )
                for r in rows
            ]

        return self._read(read)

    def set_version_state(
        self,
        name: str,
        version: int,
        state: str,
        reason: str | None = None,
        gate_results: list[dict[str, Any]] | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Move a version along candidate -> approved | rejected -> serving -> retired (see TRANSITIONS)."""
        if state not in VERSION_STATES:
            raise ValidationError(f"state {state!r} is not one of {', '.join(VERSION_STATES)}")
        who = actor or self.settings.user
        now = time.time()

        def write(conn: Connection) -> None:
            row = self._version_row(conn, name, version, lock=True)
            allowed = VERSION_TRANSITIONS.get(row.state, ())
            if state != row.state and state not in allowed:
                raise ConflictError(
                    f"model {name}/{version} is {row.state}: it cannot become {state} "
                    f"(from {row.state} it may become {', '.join(allowed) or 'nothing else'})",
                    hint="a rejected version needs an admin's forced deploy with a reason"
                    if row.state == "rejected"
                    else f"see its history with: stead models show {name}",
                )
            values: dict[str, Any] = {"state": state, "state_reason": reason}
            if gate_results is not None:
                values["gate_results"] = list(gate_results)
            conn.execute(
                update(s.model_versions)
                .where(s.model_versions.c.name == name, s.model_versions.c.version == version)
                .values(**values)
            )
            details = {"from": row.state, "to": state, "gate_results": gate_results}
            self._audit(conn, who, "state", f"model:{name}/{version}", reason, details, now)

        self._write(write)
        return self.get_model_version(name, version)

    def trust_version(self, name: str, version: int, reason: str, actor: str | None = None) -> ModelVersion:
        """Record an admin's opt-in to load a pickle-based version (an audit row with the reason)."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError(
                "trusting a version needs a reason", hint=f"stead models trust {name}/{version} --reason '…'"
            )
        who = actor or self.settings.user

        def write(conn: Connection) -> None:
            self._version_row(conn, name, version, lock=True)
            conn.execute(
                update(s.model_versions)
                .where(s.model_versions.c.name == name, s.model_versions.c.version == version)
                .values(allow_pickle=True)
            )
            self._audit(conn, who, "trust", f"model:{name}/{version}", reason, {})

        self._write(write)
        return self.get_model_version(name, version)

    def _audit(
        self,
        conn: Connection,
        actor: str,
        action: str,
        target: str,
        reason: str | None,
        details: Mapping[str, Any],
        at: float | None = None,
    ) -> None:
        conn.execute(
            insert(s.audit_log).values(
                at=time.time() if at is None else at,
                actor=actor,
                action=action,
                target=target,
                reason=reason,
                details=dict(details),
            )
        )

    def audit_log(self, target: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Audit rows (trust, state changes, forced deploys …), oldest first; ``target`` like ``model:churn/3``.

        A target ending in ``/`` (``model:churn/``) matches every row under it.
        """

        def read(conn: Connection) -> list[dict[str, Any]]:
            stmt = select(s.audit_log)
            if target is not None:
                if target.endswith("/"):
                    stmt = stmt.where(s.audit_log.c.target.startswith(target, autoescape=True))
                else:
                    stmt = stmt.where(s.audit_log.c.target == target)
            rows = conn.execute(stmt.order_by(s.audit_log.c.at, s.audit_log.c.id).limit(limit))
            return [
                {
                    "id": r.id,
                    "at": datetime.fromtimestamp(r.at, UTC).isoformat(),
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "reason": r.reason,
                    "details": r.details or {},
                }
                for r in rows
            ]

        return self._read(read)

    # ---- deployments (issue 5)
    # A deployment's routes change only by writing a new ``deployment_revisions`` row and bumping
    # ``deployments.revision`` in the same transaction, compare-and-set on the revision the caller read, so two
    # writers never interleave; servers poll ``deployment_revisions()`` (one tiny query) to notice changes.

    def _deployment_row(self, conn: Connection, name: str, lock: bool = False) -> Any:
        stmt = select(s.deployments).where(s.deployments.c.name == name)
        row = conn.execute(stmt.with_for_update() if lock else stmt).first()
        if row is None:
            known = [r[0] for r in conn.execute(select(s.deployments.c.name).order_by(s.deployments.c.name))]
            raise NotFoundError(
                f"no deployment named {name!r}. Known deployments: {', '.join(known) or '(none yet)'}",
                hint="create one with: stead deploy NAME@ALIAS --to DEPLOYMENT",
                details={"known": known},
            )
        return row

    @staticmethod
    def _revision(r: Any) -> DeploymentRevision:
        return DeploymentRevision(
            deployment=r.deployment,
            revision=r.revision,
            routes=[DeploymentRoute.model_validate(x) for x in r.routes],
            actor=r.actor,
            reason=r.reason,
            source=r.source,
            at=_dt(r.at),
        )

    def _put_revision(
        self,
        name: str,
        routes: list[dict[str, Any]],
        expected_revision: int | None,
        actor: str | None,
        reason: str | None,
        source: str,
        champion: int | None,
        forced: bool,
    ) -> Deployment:
        check_name(name, "deployment name")
        parsed = [DeploymentRoute.model_validate(r) for r in routes]
        primaries = [r for r in parsed if r.kind == "primary"]
        if len(primaries) != 1:
            raise ValidationError(f"deployment {name!r}: routes need exactly one primary, got {len(primaries)}")
        split = sum(r.weight for r in parsed if r.kind != "shadow")
        if abs(split - 1.0) > 1e-9 or any(not 0.0 <= r.weight <= 1.0 for r in parsed):
            raise ValidationError(
                f"deployment {name!r}: primary, canary and ab weights must each be 0-1 and add up to 1, got {split:g}"
            )
        if forced and (not isinstance(reason, str) or not reason.strip()):
            raise ValidationError("a forced deploy needs a reason", hint="stead deploy … --force --reason '…'")
        model = primaries[0].model
        who = actor or self.settings.user
        now = time.time()

        def write(conn: Connection) -> int:
            for r in parsed:
                row = self._version_row(conn, r.model, r.version)
                if row.state == "rejected":
                    if not forced:
                        raise ConflictError(
                            f"model {r.model}/{r.version} is rejected: it may not serve"
                            + (f" ({row.state_reason})" if row.state_reason else ""),
                            hint="an admin may override with: stead deploy "
                            f"{r.model}/{r.version} --to {name} --force --reason '…'",
                        )
                    self._audit(
                        conn,
                        who,
                        "force_deploy",
                        f"model:{r.model}/{r.version}",
                        reason,
                        {"deployment": name, "kind": r.kind, "weight": r.weight},
                        now,
                    )
            current = conn.execute(
                select(s.deployments.c.revision).where(s.deployments.c.name == name).with_for_update()
            ).first()
            have = None if current is None else int(current[0])
            if have != expected_revision:
                raise ConflictError(
                    f"deployment {name!r} is at revision {have if have is not None else '(none)'}, not "
                    f"{expected_revision if expected_revision is not None else '(none)'}: it changed in between",
                    hint=f"look at it again with: stead deployments show {name}",
                    details={"current": have, "expected": expected_revision},
                )
            number = 1 if have is None else have + 1
            if have is None:
                conn.execute(
                    insert(s.deployments).values(name=name, model=model, revision=1, created_at=now, updated_at=now)
                )
            else:
                conn.execute(
                    update(s.deployments)
                    .where(s.deployments.c.name == name)
                    .values(model=model, revision=number, updated_at=now)
                )
            conn.execute(
                insert(s.deployment_revisions).values(
                    deployment=name,
                    revision=number,
                    routes=[r.model_dump() for r in parsed],
                    actor=who,
                    reason=reason,
                    source=source,
                    at=now,
                )
            )
            for r in parsed:
                attrs = {"kind": r.kind, "share": r.weight, "revision": number}
                stmt = self._upsert(s.lineage_edges).values(
                    source=f"version:{r.model}/{r.version}",
                    target=f"deployment:{name}",
                    kind="serves",
                    at=now,
                    attrs=attrs,
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["source", "target", "kind"], set_={"attrs": stmt.excluded.attrs, "at": now}
                    )
                )
            if champion is not None:
                self._move_alias_in(conn, model, "champion", champion, who, reason or f"{source} of {name}", now)
            return number

        try:
            self._write(write)
        except SAIntegrityError as exc:  # two writers raced for the same new revision number
            raise ConflictError(
                f"deployment {name!r} changed in between", hint=f"look at it again with: stead deployments show {name}"
            ) from exc
        return self.get_deployment(name)

    def _move_alias_in(
        self, conn: Connection, name: str, alias: str, version: int, actor: str, reason: str | None, at: float
    ) -> None:
        self._version_row(conn, name, version)
        where = and_(s.aliases.c.name == name, s.aliases.c.alias == alias)
        row = conn.execute(select(s.aliases.c.version, s.aliases.c.revision).where(where).with_for_update()).first()
        if row is None:
            conn.execute(insert(s.aliases).values(name=name, alias=alias, version=version, revision=1, updated_at=at))
        else:
            conn.execute(
                update(s.aliases).where(where).values(version=version, revision=int(row[1]) + 1, updated_at=at)
            )
        self._alias_audit(conn, name, alias, None if row is None else int(row[0]), version, actor, reason, "moved", at)

    def write_deployment(
        self,
        name: str,
        routes: list[dict[str, Any]],
        expected_revision: int | None,
        actor: str | None = None,
        reason: str | None = None,
        source: str = "deploy",
        champion: int | None = None,
    ) -> Deployment:
        """Store ``routes`` (``{model, version, kind, weight}`` each) as the next revision of deployment ``name``.

        Compare-and-set: the deployment must be at ``expected_revision`` now (None: must not exist yet), else
        ConflictError. A ``rejected`` version is refused (see ``force_deployment``). With ``champion``, the
        primary model's ``champion`` alias moves to that version in the same transaction (an audited move).
        Each route also gets the lineage edge ``version:<m>/<v> -> deployment:<name>`` (kind ``serves``).
        """
        return self._put_revision(name, routes, expected_revision, actor, reason, source, champion, forced=False)

    def force_deployment(
        self,
        name: str,
        routes: list[dict[str, Any]],
        expected_revision: int | None,
        reason: str,
        actor: str | None = None,
        source: str = "deploy",
        champion: int | None = None,
    ) -> Deployment:
        """``write_deployment`` that may route to ``rejected`` versions: needs a reason, audited per version."""
        return self._put_revision(name, routes, expected_revision, actor, reason, source, champion, forced=True)

    def get_deployment(self, name: str, history: int = 20) -> Deployment:
        """A deployment's current routes, its last ``history`` revisions (oldest first) and its serving events."""

        def read(conn: Connection) -> Deployment:
            row = self._deployment_row(conn, name)
            revs = conn.execute(
                select(s.deployment_revisions)
                .where(s.deployment_revisions.c.deployment == name)
                .order_by(s.deployment_revisions.c.revision.desc())
                .limit(max(1, history))
            ).all()
            revisions = [self._revision(r) for r in reversed(revs)]
            current = next(r for r in revisions if r.revision == row.revision)
            events = conn.execute(
                select(s.audit_log)
                .where(s.audit_log.c.target == f"deployment:{name}")
                .order_by(s.audit_log.c.id.desc())
                .limit(50)
            ).all()
            return Deployment(
                name=row.name,
                model=row.model,
                revision=row.revision,
                routes=current.routes,
                created_at=_dt(row.created_at),
                updated_at=_dt(row.updated_at),
                history=revisions if history > 0 else [],
                events=[
                    {
                        "at": datetime.fromtimestamp(e.at, UTC).isoformat(),
                        "actor": e.actor,
                        "action": e.action,
                        "reason": e.reason,
                        "details": e.details or {},
                    }
                    for e in reversed(events)
                ],
            )

        return self._read(read)

    def list_deployments(self) -> list[Deployment]:
        """Every deployment with its current routes (no history)."""

        def read(conn: Connection) -> list[Deployment]:
            d, r = s.deployments, s.deployment_revisions
            rows = conn.execute(
                select(d, r.c.routes)
                .join(r, and_(r.c.deployment == d.c.name, r.c.revision == d.c.revision))
                .order_by(d.c.name)
            ).all()
            return [
                Deployment(
                    name=x.name,
                    model=x.model,
                    revision=x.revision,
                    routes=[DeploymentRoute.model_validate(v) for v in x.routes],
                    created_at=_dt(x.created_at),
                    updated_at=_dt(x.updated_at),
                )
                for x in rows
            ]

        return self._read(read)

    def deployment_history(self, name: str, limit: int = 1000) -> list[DeploymentRevision]:
        """Every revision of a deployment's routes, oldest first."""

        def read(conn: Connection) -> list[DeploymentRevision]:
            self._deployment_row(conn, name)
            rows = conn.execute(
                select(s.deployment_revisions)
                .where(s.deployment_revisions.c.deployment == name)
                .order_by(s.deployment_revisions.c.revision.desc())
                .limit(limit)
            ).all()
            return [self._revision(r) for r in reversed(rows)]

        return self._read(read)

    def deployment_revisions(self) -> dict[str, int]:
        """``{deployment: current revision}``: the one cheap query a server polls to notice route changes."""

        def read(conn: Connection) -> dict[str, int]:
            return {r[0]: int(r[1]) for r in conn.execute(select(s.deployments.c.name, s.deployments.c.revision))}

        return self._read(read)

    def record_deployment_event(
        self, name: str, action: str, details: dict[str, Any], reason: str | None = None, actor: str | None = None
    ) -> None:
        """Keep a serving event of a deployment (e.g. ``load_failed``) in the audit log as ``deployment:<name>``."""
        who = actor or self.settings.user
        self._write(lambda conn: self._audit(conn, who, action, f"deployment:{name}", reason, details))

    # ---- prediction log (issue 5)
    def add_prediction_segment(
        self,
        deployment: str,
        digest: str,
        rows: int,
        min_time: float,
        max_time: float,
        writer: str,
        sequence: int,
    ) -> bool:
        """Index a Parquet segment (already durable in the artifact store); False when ``(writer, sequence)`` was
        indexed before, so replaying a write-ahead file after a crash never adds its rows twice."""
        now = time.time()

        def write(conn: Connection) -> bool:
            stmt = self._upsert(s.prediction_segments).values(
                deployment=deployment,
                digest=digest,
                rows=rows,
                min_time=min_time,
                max_time=max_time,
                writer=writer,
                sequence=sequence,
                created_at=now,
            )
            result = conn.execute(stmt.on_conflict_do_nothing(index_elements=["writer", "sequence"]))
            return bool(result.rowcount)

        return self._write(write)

    def prediction_segments(
        self, deployment: str, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        """The segments of a deployment's prediction log that may hold rows in ``[since, until]``, oldest first."""

        def read(conn: Connection) -> list[dict[str, Any]]:
            ps = s.prediction_segments
            stmt = select(ps).where(ps.c.deployment == deployment)
            if since is not None:
                stmt = stmt.where(ps.c.max_time >= since)
            if until is not None:
                stmt = stmt.where(ps.c.min_time <= until)
            rows = conn.execute(stmt.order_by(ps.c.min_time, ps.c.id)).all()
            return [
                {
                    "digest": r.digest,
                    "rows": r.rows,
                    "min_time": r.min_time,
                    "max_time": r.max_time,
                    "writer": r.writer,
                    "sequence": r.sequence,
                }
                for r in rows
            ]

        return self._read(read)

    def record_feedback(self, deployment: str, labels: dict[str, Any]) -> int:
        """Store ground-truth ``labels`` (``{request_id: label}``) of a deployment; a later label replaces one."""
        now = time.time()

        def write(conn: Connection) -> int:
            for request_id, label in labels.items():
                stmt = self._upsert(s.feedback).values(
                    deployment=deployment, request_id=request_id, label=label, at=now
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["deployment", "request_id"], set_={"label": stmt.excluded.label, "at": now}
                    )
                )
            return len(labels)

        return self._write(write)

    def get_feedback(self, deployment: str, request_ids: list[str] | None = None) -> dict[str, Any]:
        """``{request_id: label}`` of a deployment (of the given request ids, or all)."""

        def read(conn: Connection) -> dict[str, Any]:
            fb = s.feedback
            out: dict[str, Any] = {}
            if request_ids is None:
                for r in conn.execute(select(fb.c.request_id, fb.c.label).where(fb.c.deployment == deployment)):
                    out[r[0]] = r[1]
                return out
            for i in range(0, len(request_ids), 500):
                chunk = request_ids[i : i + 500]
                stmt = select(fb.c.request_id, fb.c.label).where(
                    fb.c.deployment == deployment, fb.c.request_id.in_(chunk)
                )
                for r in conn.execute(stmt):
                    out[r[0]] = r[1]
            return out

        return self._read(read)

    # ---- monitoring (issue 6): monitor reports, drift history and alerts
    @staticmethod
    def _epoch(value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, int | float):
            return float(value)
        return datetime.fromisoformat(str(value)).timestamp()

    def add_monitor_report(
        self,
        deployment: str,
        report: dict[str, Any],
        model: str | None = None,
        version: int | None = None,
        at: float | None = None,
    ) -> int:
        """Store a monitor report, one drift point per compared feature, and the edge ``deployment -> report``."""
        now = time.time() if at is None else at
        window = report.get("window") or {}
        drift = report.get("drift") or {}

        def write(conn: Connection) -> int:
            inserted = conn.execute(
                insert(s.monitor_reports).values(
                    deployment=deployment,
                    model=model,
                    version=version,
                    at=now,
                    window_start=self._epoch(window.get("start")),
                    window_end=self._epoch(window.get("end")),
                    rows=int(window.get("rows") or 0),
                    drift_share=drift.get("share"),
                    drifted=drift.get("drifted"),
                    report=report,
                )
            ).inserted_primary_key
            assert inserted is not None
            report_id = int(inserted[0])
            points = [
                {
                    "report_id": report_id,
                    "deployment": deployment,
                    "at": now,
                    "feature": str(name)[:256],
                    "method": str(col.get("method") or "")[:32],
                    "statistic": col.get("statistic"),
                    "p_value": col.get("p_value"),
                    "drifted": bool(col.get("drifted")),
                }
                for name, col in (drift.get("columns") or {}).items()
            ]
            if points:
                conn.execute(insert(s.drift_points), points)
            edge = {"rows": window.get("rows")}
            self._add_edge(conn, f"deployment:{deployment}", f"report:{report_id}", "monitored", edge, now)
            return report_id

        return self._write(write)

    def list_monitor_reports(self, deployment: str, limit: int = 100, with_report: bool = True) -> list[dict[str, Any]]:
        """A deployment's latest ``limit`` monitor reports, oldest first (``report`` is the whole report)."""

        def read(conn: Connection) -> list[dict[str, Any]]:
            mr = s.monitor_reports
            rows = conn.execute(
                select(mr).where(mr.c.deployment == deployment).order_by(mr.c.at.desc(), mr.c.id.desc()).limit(limit)
            ).all()
            return [
                {
                    "id": r.id,
                    "deployment": r.deployment,
                    "model": r.model,
                    "version": r.version,
                    "at": r.at,
                    "window_start": r.window_start,
                    "window_end": r.window_end,
                    "rows": r.rows,
                    "drift_share": r.drift_share,
                    "drifted": r.drifted,
                    **({"report": r.report} if with_report else {}),
                }
                for r in reversed(rows)
            ]

        return self._read(read)

    def drift_history(self, deployment: str, feature: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Drift points of a deployment (of one feature, or all), the latest ``limit``, oldest first."""

        def read(conn: Connection) -> list[dict[str, Any]]:
            dp = s.drift_points
            stmt = select(dp).where(dp.c.deployment == deployment)
            if feature is not None:
                stmt = stmt.where(dp.c.feature == feature)
            rows = conn.execute(stmt.order_by(dp.c.at.desc(), dp.c.report_id.desc()).limit(limit)).all()
            return [
                {
                    "report_id": r.report_id,
                    "at": r.at,
                    "feature": r.feature,
                    "method": r.method,
                    "statistic": r.statistic,
                    "p_value": r.p_value,
                    "drifted": r.drifted,
                }
                for r in reversed(rows)
            ]

        return self._read(read)

    @staticmethod
    def _alert(r: Any) -> Alert:
        details = dict(r.details or {})
        details.setdefault("report_id", r.report_id)
        if r.acknowledged_by:
            details["acknowledged_by"] = r.acknowledged_by
        return Alert(
            id=r.id,
            rule=r.rule,
            deployment=r.deployment,
            opened_at=_dt(r.opened_at),
            resolved_at=_dt(r.resolved_at),
            acknowledged=bool(r.acknowledged),
            details=details,
        )

    def _alert_row(self, conn: Connection, alert_id: int) -> Any:
        row = conn.execute(select(s.alerts).where(s.alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFoundError(f"no alert {alert_id}", hint="list the alerts with: stead alerts list --all")
        return row

    def open_alert(
        self,
        deployment: str,
        rule: str,
        report_id: int | None = None,
        details: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> Alert:
        """Open an alert for ``rule`` on ``deployment``, or return the one already open (one open alert per rule).

        A new alert is linked in lineage as ``report:<id> -> alert:<id>`` (``deployment -> alert`` without a report).
        """
        now = time.time() if at is None else at
        key = f"{deployment}|{rule}"[:400]

        def write(conn: Connection) -> Alert:
            stmt = self._upsert(s.alerts).values(
                rule=rule[:256],
                deployment=deployment,
                opened_at=now,
                acknowledged=False,
                open_key=key,
                report_id=report_id,
                details=dict(details or {}),
            )
            result = conn.execute(stmt.on_conflict_do_nothing(index_elements=["open_key"]))
            row = conn.execute(select(s.alerts).where(s.alerts.c.open_key == key)).one()
            if result.rowcount:
                source = f"report:{report_id}" if report_id is not None else f"deployment:{deployment}"
                self._add_edge(conn, source, f"alert:{row.id}", "raised", {"rule": rule}, now)
            return self._alert(row)

        return self._write(write)

    def resolve_alert(self, alert_id: int, at: float | None = None) -> Alert:
        """Close an open alert (its condition cleared); resolving a resolved alert changes nothing."""
        now = time.time() if at is None else at

        def write(conn: Connection) -> Alert:
            self._alert_row(conn, alert_id)
            conn.execute(
                update(s.alerts)
                .where(s.alerts.c.id == alert_id, s.alerts.c.resolved_at.is_(None))
                .values(resolved_at=now, open_key=None)
            )
            return self._alert(self._alert_row(conn, alert_id))

        return self._write(write)

    def ack_alert(self, alert_id: int, actor: str | None = None) -> Alert:
        """Mark an alert as seen; it stays open until its condition clears."""
        who = actor or self.settings.user

        def write(conn: Connection) -> Alert:
            self._alert_row(conn, alert_id)
            stmt = update(s.alerts).where(s.alerts.c.id == alert_id)
            conn.execute(stmt.values(acknowledged=True, acknowledged_by=who))
            return self._alert(self._alert_row(conn, alert_id))

        return self._write(write)

    def list_alerts(self, open_only: bool = True, deployment: str | None = None, limit: int = 1000) -> list[Alert]:
        """Alerts, newest first: the open ones, or with ``open_only=False`` every alert."""

        def read(conn: Connection) -> list[Alert]:
            a = s.alerts
            stmt = select(a)
            if open_only:
                stmt = stmt.where(a.c.resolved_at.is_(None))
            if deployment is not None:
                stmt = stmt.where(a.c.deployment == deployment)
            rows = conn.execute(stmt.order_by(a.c.opened_at.desc(), a.c.id.desc()).limit(limit))
            return [self._alert(r) for r in rows]

        return self._read(read)

    # ---- MLflow compatibility (issue 10): what the /api/2.0/mlflow API and `stead import mlflow` need beyond the
    # methods above. MLflow lets a client write to a finished run and reopen it, and has no heartbeat: runs made
    # here get ``heartbeat_at`` NULL, so silence never turns them FAILED. MLflow-only state (experiment and
    # registered-model tags, run lifecycle, logged models, version tags, the import's id mapping) is one JSON
    # document per (kind, key) in ``mlflow_objects``; artifact-proxy files outside runs are in ``mlflow_files``.
    @staticmethod
    def _mlflow_check_experiment(name: object) -> str:
        if not isinstance(name, str) or not name.strip() or len(name) > 256 or "\n" in name:
            raise ValidationError(f"experiment name {name!r} is not allowed: use 1-256 characters on one line")
        return name

    def mlflow_create_experiment(self, name: str) -> int:
        """Create an experiment (any one-line name MLflow allows); ConflictError when the name is taken."""
        self._mlflow_check_experiment(name)

        def write(conn: Connection) -> int:
            if conn.execute(select(s.experiments.c.id).where(s.experiments.c.name == name)).first() is not None:
                raise ConflictError(f"experiment {name!r} already exists")
            return self._experiment_id(conn, name, create=True)

        return self._write(write)

    def mlflow_create_run(
        self,
        experiment: str,
        run_id: str | None = None,
        name: str | None = None,
        start_time: float | None = None,
        tags: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> str:
        """A RUNNING run as MLflow makes one: no heartbeat, ``user`` recorded as its creator."""
        self._mlflow_check_experiment(experiment)
        rid = run_id or uuid.uuid4().hex
        tags = dict(tags or {})
        self._check_items(rid, tags, "tag", MAX_TAG_VALUE)
        now = time.time() if start_time is None else float(start_time)
        return self._insert_run(experiment, rid, name, now, None, None, {}, user or self.settings.user, {}, tags)

    def mlflow_update_run(
        self, run_id: str, status: str | None = None, end_time: float | None = None, name: str | None = None
    ) -> None:
        """MLflow's UpdateRun: set the status (RUNNING reopens the run), end time and name."""
        if status is not None and status not in RUN_STATUSES:
            raise ValidationError(f"status {status!r} is not one of {', '.join(RUN_STATUSES)}")

        def write(conn: Connection) -> None:
            row = conn.execute(select(s.runs.c.status).where(s.runs.c.id == run_id)).first()
            if row is None:
                raise NotFoundError(f"no run with id {run_id!r}", hint="list runs with: stead runs list")
            values: dict[str, Any] = {}
            if name is not None:
                values["name"] = name
            if status == "RUNNING":
                values.update(status="RUNNING", end_time=None, error=None, heartbeat_at=None)
            elif status is not None:
                values.update(status=status, end_time=time.time() if end_time is None else float(end_time))
                if row[0] == "FAILED" and status != "FAILED":
                    values["error"] = None
            elif end_time is not None:
                values["end_time"] = float(end_time)
            if values:
                conn.execute(update(s.runs).where(s.runs.c.id == run_id).values(**values))

        self._write(write)

    def mlflow_log_batch(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int, float]] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        delete_tags: Sequence[str] = (),
    ) -> None:
        """``log_batch`` as MLflow allows it: on a run in any status; ``delete_tags`` removes tags."""
        params = dict(params or {})
        tags = dict(tags or {})
        self._check_items(run_id, params, "param", MAX_PARAM_VALUE)
        self._check_items(run_id, tags, "tag", MAX_TAG_VALUE)
        points: list[tuple[str, str, int, float, float | None, str | None]] = []
        for key, value, step, ts in metrics:
            check_key(key, "metric", run_id)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"metric {key!r} of run {run_id}: value must be a number, got {value!r}")
            if isinstance(step, bool) or not isinstance(step, int):
                raise ValidationError(f"metric {key!r} of run {run_id}: step must be an integer, got {step!r}")
            v, nf = _split_float(float(value))
            points.append((run_id, key, step, float(ts), v, nf))

        def write(conn: Connection) -> None:
            if conn.execute(select(s.runs.c.id).where(s.runs.c.id == run_id)).first() is None:
                raise NotFoundError(f"no run with id {run_id!r}", hint="list runs with: stead runs list")
            self._write_batch(conn, run_id, params, tags, points)
            if delete_tags:
                conn.execute(delete(s.tags).where(s.tags.c.run_id == run_id, s.tags.c.key.in_(list(delete_tags))))

        self._write(write)

    def mlflow_objects(
        self, kind: str, keys: list[str] | None = None, prefix: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """MLflow-side documents of ``kind`` (all, those of ``keys``, or those whose key starts with ``prefix``)."""
        t = s.mlflow_objects

        def read(conn: Connection) -> dict[str, dict[str, Any]]:
            stmt = select(t.c.key, t.c.doc, t.c.created_at, t.c.updated_at).where(t.c.kind == kind)
            if keys is not None:
                if not keys:
                    return {}
                stmt = stmt.where(t.c.key.in_(list(keys)))
            if prefix:
                stmt = stmt.where(t.c.key.startswith(prefix, autoescape=True))
            out: dict[str, dict[str, Any]] = {}
            for r in conn.execute(stmt.order_by(t.c.created_at, t.c.key)):
                doc = dict(r.doc or {})
                doc.setdefault("_created_at", r.created_at)
                doc["_updated_at"] = r.updated_at
                out[r.key] = doc
            return out

        return self._read(read)

    def mlflow_put_object(self, kind: str, key: str, doc: dict[str, Any], merge: bool = True) -> dict[str, Any]:
        """Write a document; with ``merge`` its keys update the stored ones (dict values one level deep, and a
        None value removes the key). Returns the stored document."""
        t = s.mlflow_objects
        now = time.time()

        def combine(old: dict[str, Any]) -> dict[str, Any]:
            out = dict(old) if merge else {}
            for k, v in doc.items():
                if k.startswith("_"):
                    continue
                if v is None:
                    out.pop(k, None)
                elif merge and isinstance(v, dict) and isinstance(out.get(k), dict):
                    inner = dict(out[k])
                    for ik, iv in v.items():
                        if iv is None:
                            inner.pop(ik, None)
                        else:
                            inner[ik] = iv
                    out[k] = inner
                else:
                    out[k] = v
            return out

        def write(conn: Connection) -> dict[str, Any]:
            row = conn.execute(select(t.c.doc).where(t.c.kind == kind, t.c.key == key).with_for_update()).first()
            if row is None:
                new = combine({})
                conn.execute(insert(t).values(kind=kind, key=key, doc=new, created_at=now, updated_at=now))
            else:
                new = combine(dict(row[0] or {}))
                conn.execute(update(t).where(t.c.kind == kind, t.c.key == key).values(doc=new, updated_at=now))
            return new

        return self._write(write)

    @staticmethod
    def _mlflow_run_path(path: str) -> tuple[str, str] | None:
        parts = path.split("/", 3)
        if len(parts) == 4 and parts[2] == "artifacts" and parts[1] and parts[3]:
            return parts[1], parts[3]
        return None

    def mlflow_record_files(self, files: dict[str, list[Any]]) -> None:
        """Point MLflow artifact paths at stored blobs ``{path: [digest, size]}`` (bytes already durable).

        ``<experiment>/<run id>/artifacts/<name>`` of an existing run is that run's artifact ``name`` (whatever
        the run's status, as in MLflow); any other path (a logged model's files) is kept in ``mlflow_files``.
        """
        from stead.store.artifacts import safe_name

        items: list[tuple[str, str, int]] = []
        for path, (digest, size) in files.items():
            safe_name(path)
            if not self.artifacts.exists(digest):
                raise ValidationError(f"artifact {path!r}: blob {digest} is not in the artifact store")
            items.append((path, str(digest), int(size)))
        now = time.time()

        def write(conn: Connection) -> None:
            for path, digest, size in items:
                run_path = self._mlflow_run_path(path)
                if run_path is not None and (
                    conn.execute(select(s.runs.c.id).where(s.runs.c.id == run_path[0])).first() is not None
                ):
                    stmt = self._upsert(s.run_artifacts).values(
                        run_id=run_path[0], name=run_path[1], digest=digest, size=size, created_at=now
                    )
                    conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["run_id", "name"], set_={"digest": digest, "size": size, "created_at": now}
                        )
                    )
                else:
                    stmt = self._upsert(s.mlflow_files).values(path=path, digest=digest, size=size, created_at=now)
                    conn.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["path"], set_={"digest": digest, "size": size, "created_at": now}
                        )
                    )

        self._write(write)

    def mlflow_list_files(self, prefix: str) -> dict[str, list[Any]]:
        """Every file at or under the MLflow artifact path ``prefix``: ``{path: [digest, size]}``, sorted."""
        prefix = prefix.strip("/")

        def read(conn: Connection) -> dict[str, list[Any]]:
            out: dict[str, list[Any]] = {}
            parts = prefix.split("/", 3)
            if len(parts) >= 3 and parts[2] == "artifacts" and parts[1]:
                run_id, sub = parts[1], (parts[3] if len(parts) == 4 else "")
                base = "/".join(parts[:3])
                ra = s.run_artifacts
                stmt = select(ra.c.name, ra.c.digest, ra.c.size).where(ra.c.run_id == run_id)
                if sub:
                    stmt = stmt.where(or_(ra.c.name == sub, ra.c.name.startswith(sub + "/", autoescape=True)))
                for r in conn.execute(stmt):
                    out[f"{base}/{r.name}"] = [r.digest, int(r.size)]
            f = s.mlflow_files
            cond = f.c.path.startswith(prefix + "/", autoescape=True) if prefix else f.c.path.is_not(None)
            for r in conn.execute(select(f.c.path, f.c.digest, f.c.size).where(or_(f.c.path == prefix, cond))):
                out[r.path] = [r.digest, int(r.size)]
            return dict(sorted(out.items()))

        return self._read(read)

    def mlflow_create_model(self, name: str, description: str | None = None) -> bool:
        """Create a registered model with no versions yet; False when it already exists."""
        check_name(name, "model name")
        now = time.time()

        def write(conn: Connection) -> bool:
            stmt = self._upsert(s.models).values(name=name, created_at=now, description=description, next_version=1)
            return bool(conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"])).rowcount)

        return self._write(write)
