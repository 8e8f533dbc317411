"""Running predictions off the event loop, and adaptive batching per version (layer: serving).

Every ``model.predict`` runs in the worker's prediction thread pool (``STEAD_PREDICT_THREADS``, by default
the machine's cores divided by the worker count, at least 1 and at most 4), so the event loop keeps reading
and answering requests while a model computes.

**Adaptive batching** gathers concurrent requests for one version into one ``predict`` call. A request
arriving while no batch of its version is running goes at the next turn of the event loop (with the
requests that arrived in the same turn), so a lone request waits for nothing; requests arriving while a batch
runs queue up and go together as soon as it ends, up to ``max_batch`` rows per call. ``max_wait_ms`` bounds
the queueing: past it, a queued batch takes a free thread of the pool instead of waiting for the running one.
Each request keeps its own rows of the answer, request id, log row and route. When a batched call fails, each
request of it is predicted alone, so one bad request cannot fail the others.

Where the settings come from, first match wins:

1. ``STEAD_BATCHING``: ``off``, ``auto`` (64 rows, 2 ms) or ``MAX_BATCH:MAX_WAIT_MS`` (e.g. ``32:1``), for
   every version this server serves;
2. ``serving.batching: {max_batch, max_wait_ms}`` of the model's entry in ``stead.yaml`` (the file
   ``STEAD_PROJECT`` names, else ``./stead.yaml`` in the server's working folder), for every version of that
   model;
3. off: one ``predict`` call per request.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AUTO", "BatchConfig", "Batcher", "batching_settings", "predict_pool", "project_serving"]

log = logging.getLogger("stead.serving.batching")


@dataclass(frozen=True)
class BatchConfig:
    """``max_batch`` rows per call at most; ``max_wait_ms`` the longest a queued request waits for a thread."""

    max_batch: int = 64
    max_wait_ms: float = 2.0


AUTO = BatchConfig()


def predict_pool() -> ThreadPoolExecutor:
    """This worker's prediction threads (see the module docstring)."""
    explicit = os.environ.get("STEAD_PREDICT_THREADS")
    if explicit:
        size = max(1, int(explicit))
    else:
        workers = max(1, int(os.environ.get("STEAD_WORKERS") or 1))
        size = max(1, min(4, (os.cpu_count() or 1) // workers))
    return ThreadPoolExecutor(size, thread_name_prefix="stead-predict")


def _parse_env(text: str) -> BatchConfig | bool | None:
    """``STEAD_BATCHING`` as a config, None for off, or False when it is not set.

    >>> _parse_env("32:1"), _parse_env("off"), _parse_env("")
    (BatchConfig(max_batch=32, max_wait_ms=1.0), None, False)
    """
    text = text.strip().lower()
    if not text:
        return False
    if text in ("off", "0", "no", "false"):
        return None
    if text in ("auto", "on", "1", "yes", "true"):
        return AUTO
    size, _, wait = text.partition(":")
    try:
        return BatchConfig(max(1, int(size)), max(0.0, float(wait or AUTO.max_wait_ms)))
    except ValueError:
        log.warning("STEAD_BATCHING=%r is not off, auto or MAX_BATCH:MAX_WAIT_MS; batching stays off", text)
        return None


def project_serving(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``serving`` section of each model in ``stead.yaml`` (the file ``STEAD_PROJECT`` names, else
    ``./stead.yaml``), by model name; empty when there is no file or it cannot be read (with a warning)."""
    env = os.environ if env is None else env
    path = Path(env.get("STEAD_PROJECT") or "stead.yaml")
    if not path.is_file():
        return {}
    try:
        from stead.project import load_project

        return {name: spec.serving for name, spec in load_project(path).models.items()}
    except Exception as exc:
        log.warning("cannot read the serving settings of %s (%s); the defaults apply", path, exc)
        return {}


def batching_settings(
    env: Mapping[str, str] | None = None, serving: Mapping[str, Any] | None = None
) -> Callable[[str], BatchConfig | None]:
    """A function from a model's name to its batching config (None: off), read once from the environment and
    ``stead.yaml`` (``serving``: ``project_serving``'s answer, read here when not given; see the module
    docstring)."""
    env = os.environ if env is None else env
    forced = _parse_env(env.get("STEAD_BATCHING", ""))
    if forced is not False:
        return lambda model: forced if isinstance(forced, BatchConfig) else None
    per_model: dict[str, BatchConfig] = {}
    for name, spec in (project_serving(env) if serving is None else serving).items():
        if spec.batching is not None:
            per_model[name] = BatchConfig(spec.batching.max_batch, spec.batching.max_wait_ms)
    return per_model.get


class _Item:
    __slots__ = ("columns", "future", "n")

    def __init__(self, columns: Mapping[str, list[Any]], n: int, future: asyncio.Future[list[Any]]) -> None:
        self.columns = columns
        self.n = n
        self.future = future


class Batcher:
    """Adaptive batching for one version in one event loop; see the module docstring."""

    def __init__(self, predict: Callable[[Mapping[str, list[Any]]], list[Any]], pool: Any, config: BatchConfig) -> None:
        self.predict_fn = predict
        self.pool = pool
        self.config = config
        self.threads = max(1, int(getattr(pool, "_max_workers", 1)))
        self.calls = 0
        self.batched_rows = 0
        self._queue: list[_Item] = []
        self._rows = 0
        self._running = 0
        self._soon = False
        self._timer: asyncio.TimerHandle | None = None

    async def predict(self, columns: Mapping[str, list[Any]], n: int) -> list[Any]:
        loop = asyncio.get_running_loop()
        if n >= self.config.max_batch:
            self.calls += 1
            return await loop.run_in_executor(self.pool, self.predict_fn, columns)
        future: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append(_Item(columns, n, future))
        self._rows += n
        if self._rows >= self.config.max_batch:
            self._dispatch()
        elif self._running == 0:
            if not self._soon:
                self._soon = True
                loop.call_soon(self._dispatch)
        elif self._timer is None:
            self._timer = loop.call_later(self.config.max_wait_ms / 1000.0, self._waited)
        return await future

    def _waited(self) -> None:
        self._timer = None
        if self._running < self.threads:
            self._dispatch()
        elif self._queue:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.config.max_wait_ms / 1000.0, self._waited)

    def _dispatch(self) -> None:
        self._soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._queue:
            return
        items: list[_Item] = []
        rows = 0
        while self._queue and (not items or rows + self._queue[0].n <= self.config.max_batch):
            item = self._queue.pop(0)
            items.append(item)
            rows += item.n
        self._rows -= rows
        if len(items) == 1:
            merged = items[0].columns
        else:
            merged = {name: [v for item in items for v in item.columns[name]] for name in items[0].columns}
        self._running += 1
        self.calls += 1
        self.batched_rows += rows
        loop = asyncio.get_running_loop()
        done = loop.run_in_executor(self.pool, self.predict_fn, merged)
        done.add_done_callback(lambda f: self._finish(items, rows, f))
        if self._queue and self._rows >= self.config.max_batch:
            self._dispatch()  # more than one full batch was waiting

    def _finish(self, items: list[_Item], rows: int, done: asyncio.Future[list[Any]]) -> None:
        self._running -= 1
        error = done.exception()
        outputs = None if error is not None else done.result()
        if outputs is not None and len(outputs) == rows:
            start = 0
            for item in items:
                if not item.future.done():
                    item.future.set_result(outputs[start : start + item.n])
                start += item.n
        elif len(items) == 1:
            if not items[0].future.done():
                if error is not None:
                    items[0].future.set_exception(error)
                else:
                    items[0].future.set_result(list(outputs or []))
        else:
            loop = asyncio.get_running_loop()
            for item in items:  # one bad request must not fail the others: each alone
                self._alone(loop, item)
        if self._queue:
            self._dispatch()

    def _alone(self, loop: asyncio.AbstractEventLoop, item: _Item) -> None:
        self.calls += 1
        single = loop.run_in_executor(self.pool, self.predict_fn, item.columns)

        def copy(f: asyncio.Future[list[Any]]) -> None:
            if item.future.done():
                return
            if f.exception() is not None:
                item.future.set_exception(f.exception())  # type: ignore[arg-type]
            else:
                item.future.set_result(f.result())

        single.add_done_callback(copy)
