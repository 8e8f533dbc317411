"""Tracking: ``start_run()`` and the run handle that logs params, metrics, tags, artifacts and datasets
(layer: tracking; above registry and datasets, below client).

The current run lives in a ``contextvars.ContextVar``, never in a process global, so threads and asyncio
tasks each see their own. Metric points are buffered in the handle and written in one transaction at
least once a second (by the heartbeat thread) and whenever 1,000 points are waiting, so a crash loses at
most the last second; leaving the block flushes everything. The same thread refreshes the run's
heartbeat, which is how a reader tells a live run from one whose process vanished.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from stead.entities import DatasetVersion, ModelVersion, Run, check_key
from stead.errors import ConflictError, SteadError, ValidationError
from stead.settings import Settings
from stead.store import open_store
from stead.store.artifacts import safe_name

if TYPE_CHECKING:
    from stead.store.sql import SqlStore

__all__ = ["ActiveRun", "active_run", "start_run"]

_current: contextvars.ContextVar[ActiveRun | None] = contextvars.ContextVar("stead_active_run", default=None)
FLUSH_POINTS = 1000
FLUSH_SECONDS = 1.0
_stores: dict[tuple[str, str | None], SqlStore] = {}
_stores_lock = threading.Lock()


def default_store(settings: Settings | None = None) -> SqlStore:
    """The store for ``settings`` (default: from the environment), opened once per process and URI."""
    settings = settings or Settings.from_env()
    key = (settings.uri, settings.artifacts)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = open_store(settings)
        return store


def active_run() -> ActiveRun | None:
    """The run of the innermost ``start_run`` block in this context, if any."""
    return _current.get()


def _param_str(key: str, value: Any, run_id: str) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    raise ValidationError(
        f"param {key!r} of run {run_id}: expected a string, number, bool or None, got {type(value).__name__}",
        hint="convert it first, e.g. str(value), or log structured data as an artifact",
    )


class ActiveRun:
    """A run being written. Use it as a context manager, usually through ``stead.start_run``."""

    def __init__(self, store: SqlStore, run_id: str, *, owner: bool, reproduces: Run | None = None) -> None:
        self.store = store
        self.id = run_id
        self.owner = owner
        self.reproduces = reproduces
        self._buffer: list[tuple[str, float, int, float]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: contextvars.Token[ActiveRun | None] | None = None
        self._last_flush = time.monotonic()
        self._closed = False

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> ActiveRun:
        self._token = _current.set(self)
        self._thread = threading.Thread(target=self._beat, name=f"stead-heartbeat-{self.id[:8]}", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        self._closed = True
        if not self.owner:
            return
        if exc_type is None:
            self.store.end_run(self.id, "FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.store.end_run(self.id, "KILLED", error="KeyboardInterrupt")
        else:
            text = "".join(traceback.format_exception_only(exc_type, exc)).strip()
            self.store.end_run(self.id, "FAILED", error=text[:4000])

    def _beat(self) -> None:
        interval = min(FLUSH_SECONDS, self.store.settings.heartbeat_timeout / 4)
        last_beat = 0.0
        beat_every = max(interval, min(10.0, self.store.settings.heartbeat_timeout / 4))
        while not self._stop.wait(interval):
            try:
                self.flush()
                now = time.monotonic()
                if now - last_beat >= beat_every:
                    self.store.heartbeat(self.id)
                    last_beat = now
            except SteadError:  # the run was ended elsewhere; the owner's exit reports it
                return
            except Exception:  # a transient database error must not kill the user's training
                continue

    def _check_open(self) -> None:
        if self._closed and self.owner:
            raise ConflictError(
                f"run {self.id} has ended: its block was left", hint="start a new run with stead.start_run()"
            )

    # ------------------------------------------------------------ logging
    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._check_open()
        values = {check_key(k, "param", self.id): _param_str(k, v, self.id) for k, v in params.items()}
        self.store.log_batch(self.id, params=values)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._check_open()
        values = {check_key(k, "tag", self.id): _param_str(k, v, self.id) for k, v in tags.items()}
        self.store.log_batch(self.id, tags=values)

    def log_metric(self, key: str, value: float, step: int = 0, timestamp: float | None = None) -> None:
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, timestamp: float | None = None) -> None:
        self._check_open()
        ts = time.time() if timestamp is None else float(timestamp)
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValidationError(f"metric step of run {self.id} must be an integer, got {step!r}")
        points = []
        for key, value in metrics.items():
            check_key(key, "metric", self.id)
            if isinstance(value, bool) or (not isinstance(value, int | float) and not hasattr(value, "__float__")):
                raise ValidationError(
                    f"metric {key!r} of run {self.id}: value must be a number, got {type(value).__name__}"
                )
            points.append((key, float(value), step, ts))
        self._append(points)

    def log_metric_points(self, points: list[tuple[str, float, int, float]]) -> None:
        """Log many ``(key, value, step, timestamp)`` points at once (one transaction)."""
        self._check_open()
        for key, value, step, _ts in points:
            check_key(key, "metric", self.id)
            if not isinstance(value, int | float) or isinstance(step, bool) or not isinstance(step, int):
                raise ValidationError(f"metric {key!r} of run {self.id}: needs a numeric value and an integer step")
        self._append([(k, float(v), s, float(t)) for k, v, s, t in points])

    def _append(self, points: list[tuple[str, float, int, float]]) -> None:
        with self._lock:
            self._buffer.extend(points)
            due = len(self._buffer) >= FLUSH_POINTS or time.monotonic() - self._last_flush >= FLUSH_SECONDS
        if due:
            self.flush()

    def flush(self) -> None:
        """Write every buffered metric point now."""
        with self._lock:
            points, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
            if points:
                self.store.log_batch(self.id, metrics=points)

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> dict[str, str]:
        """Store a file or a folder in the content-addressed store and record it under ``name``.

        Returns ``{stored name: sha256}``. ``name`` defaults to the file or folder's base name.
        """
        self._check_open()
        src = Path(path)
        if not src.exists():
            raise ValidationError(f"artifact path {str(src)!r} of run {self.id} does not exist")
        base = safe_name(name if name is not None else src.name)
        artifacts = self.store.artifacts
        items: dict[str, tuple[str, int]] = {}
        if src.is_dir():
            for rel, digest in artifacts.put_tree(src).items():
                items[f"{base}/{rel}"] = (digest, (src / rel).stat().st_size)
        else:
            items[base] = (artifacts.put_file(src), src.stat().st_size)
        self.store.record_artifacts(self.id, items)
        return {k: v[0] for k, v in items.items()}

    def log_artifacts(self, folder: str | os.PathLike[str], name: str | None = None) -> dict[str, str]:
        """Store every file of a folder (see ``log_artifact``)."""
        return self.log_artifact(folder, name)

    def log_dataset(self, name: str, data: Any, role: str | None = None, store: bool = True) -> DatasetVersion:
        """Record a dataset version (id = hash of its content) and this run's use of it.

        ``data`` is a pandas DataFrame, a numpy array, or a parquet/CSV path. With ``store=True`` the data
        is kept as Parquet in the artifact store (once per id), so ``stead reproduce`` can read it again.
        """
        self._check_open()
        from stead.datasets import record_dataset

        role = role or name
        check_key(role, "dataset role", self.id)
        version: DatasetVersion = record_dataset(self.store, name, data, store_data=store)
        if self.reproduces is not None:
            recorded = {use.role: use.dataset_id for use in self.reproduces.inputs}
            if role in recorded and recorded[role] != version.id:
                raise ValidationError(
                    f"dataset role {role!r} changed since run {self.reproduces.id}: it recorded {recorded[role][:12]}, "
                    f"the data given now hashes to {version.id[:12]}; reproduce refuses to train on different data",
                    hint=f"restore the original data (stead datasets show {recorded[role][:12]}) and run again",
                )
        self.store.record_dataset_use(self.id, version.id, role, name)
        return version

    def log_model(
        self,
        model: Any,
        name: str,
        input_example: Any = None,
        convert: str | None = None,
        allow_pickle: bool = False,
        *,
        artifacts: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Register ``model`` as the next version of ``name``, produced by this run (see ``Client.register_model``).

        Without ``input_example``, the signature comes from this run's dataset of role ``train`` (its schema,
        and its stored sample for the outputs when the model's feature columns can be told apart).
        """
        self._check_open()
        from stead.registry import register_model

        self.flush()
        input_schema, example = model_inputs(self.store, model, input_example, self.id)
        return register_model(
            self.store,
            name,
            model,
            run_id=self.id,
            input_example=example,
            convert=convert,
            allow_pickle=allow_pickle,
            artifacts=artifacts,
            input_schema=input_schema,
        )

    def get(self) -> Run:
        """The run as stored now (after flushing buffered metrics)."""
        self.flush()
        return self.store.get_run(self.id)


def model_inputs(
    store: SqlStore, model: Any, input_example: Any, run_id: str | None
) -> tuple[list[dict[str, Any]] | None, Any]:
    """The input schema (``stead.datasets.schema``) and example rows for registering ``model``.

    From ``input_example`` when given; else from the ``train`` dataset of ``run_id``: its recorded schema
    restricted to the model's ``feature_names_in_`` (when it has them), and rows of its stored sample.
    """
    from stead.datasets import load_dataset, schema, to_frame

    if input_example is not None:
        frame = to_frame(input_example)
        return schema(frame), frame
    if run_id is None:
        return None, None
    train = [use for use in store.get_run(run_id).inputs if use.role == "train"]
    if not train:
        return None, None
    dataset = store.get_dataset(train[-1].dataset_id)
    columns = [c["name"] for c in dataset.schema]
    features = getattr(model, "feature_names_in_", None)
    if features is not None:
        wanted = [str(c) for c in features]
        if not set(wanted) <= set(columns):
            return None, None
        by_name = {c["name"]: c for c in dataset.schema}
        sample = load_dataset(store, dataset.id, sample=True) if dataset.sample_digest else None
        example = None if sample is None else sample[wanted].head(5)
        return [dict(by_name[c]) for c in wanted], example
    return [dict(c) for c in dataset.schema], None


def start_run(
    experiment: str = "default",
    params: Mapping[str, Any] | None = None,
    seed: int | None = None,
    tags: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    run_id: str | None = None,
    settings: Settings | None = None,
    store: SqlStore | None = None,
    capture_env: bool = True,
) -> ActiveRun:
    """Start a tracked run, or attach to a RUNNING one with ``run_id=``.

    Leaving the block ends a run this call created: FINISHED, FAILED (an exception, recorded) or KILLED
    (KeyboardInterrupt). An attached run is only flushed, never ended, by leaving the block.

    Parameters
    ----------
    experiment: the experiment's name; created on first use.
    params: logged as params (values turned into strings).
    seed: recorded and used to seed ``random``, numpy and (if imported) torch.
    tags: logged as tags.
    run_id: attach to this RUNNING run instead of creating one.
    """
    store = store or default_store(settings)
    if run_id is not None:
        run = store.get_run(run_id)
        if run.status != "RUNNING":
            raise ConflictError(
                f"run {run_id} is {run.status}: only a RUNNING run can be attached to",
                hint="start a new run with stead.start_run(experiment=...)",
            )
        return ActiveRun(store, run_id, owner=False)
    settings = store.settings if settings is None else settings
    original = _original_run(store, settings.reproduce_of, experiment)
    if original is not None and seed is None:
        seed = original.seed
    env: dict[str, Any] = {}
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValidationError(f"seed must be an integer, got {seed!r}")
        from stead.environment import seed_everything

        seed_everything(seed)
    if capture_env:
        from stead.environment import capture

        env = capture(seed=seed)
    probe = "pending"
    param_values = {check_key(k, "param", probe): _param_str(k, v, probe) for k, v in (params or {}).items()}
    tag_values = {check_key(k, "tag", probe): _param_str(k, v, probe) for k, v in (tags or {}).items()}
    rid = store.create_run(experiment, name=name, params=param_values, tags=tag_values, seed=seed, env=env)
    if original is not None:
        store.add_edge(f"run:{original.id}", f"run:{rid}", "reproduces")
    return ActiveRun(store, rid, owner=True, reproduces=original)


def _original_run(store: SqlStore, run_id: str | None, experiment: str) -> Run | None:
    """The run being reproduced (``STEAD_REPRODUCE_OF``), if this run belongs to its experiment."""
    if not run_id:
        return None
    original = store.get_run(run_id)
    return original if original.experiment == experiment else None


def close_stores() -> None:
    """Close every store ``default_store`` opened (tests call it between stores)."""
    with _stores_lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()
