"""Per-version health for canary analysis: request, error and latency totals per (deployment, model, version,
route), written to the store every few seconds by every serving worker (layer: serving).

``HealthStats.observe`` is on the hot path: one ``bisect`` and a few integer additions under a lock (the
shadow thread observes too). ``HealthStats.run(store)`` takes the totals every ``interval`` seconds (2 by
default, ``STEAD_STATS_INTERVAL``) and writes them with ``store.add_serving_stats`` as one row per key and
window; ``flush`` does the same once at shutdown. A write that fails is kept and retried with the next window
(at most ``MAX_UNSENT`` rows are kept, so a store that stays down cannot grow memory without bound).

A row: ``deployment``, ``model``, ``version``, ``route`` (``primary``, ``canary``, ``ab`` or ``shadow``, as
the router names them), ``worker``, ``window_start``, ``window_end`` (Unix seconds), ``requests`` (every
request the route answered, errors included), ``errors_4xx`` (input that did not fit the signature),
``errors_5xx`` (the model failed) and ``latency`` ``{"bounds": [seconds…], "counts": [...]}``: one count per
Prometheus-style upper bound, plus a last count for slower requests.

>>> stats = HealthStats("w1", bounds=(0.001, 0.01))
>>> stats.observe("api", "churn", 2, "canary", 200, 0.0005)
>>> stats.observe("api", "churn", 2, "canary", 422, 0.02)
>>> row = stats.take(now=10.0)[0]
>>> row["requests"], row["errors_4xx"], row["errors_5xx"], row["latency"]
(2, 1, 0, {'bounds': [0.001, 0.01], 'counts': [1, 0, 1]})
>>> stats.take()
[]
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import threading
import time
from typing import Any

__all__ = ["BOUNDS", "HealthStats"]

log = logging.getLogger("stead.serving.health")
BOUNDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_UNSENT = 10_000

_Key = tuple[str, str, int, str]


class HealthStats:
    """This worker's health totals since the last write; see the module docstring."""

    def __init__(self, worker: str, *, bounds: tuple[float, ...] = BOUNDS, interval: float = 2.0) -> None:
        self.worker = worker
        self.bounds = tuple(float(b) for b in bounds)
        self.interval = interval
        self.written = 0
        self.lost = 0
        self._cells: dict[_Key, list[int]] = {}
        self._since = time.time()
        self._lock = threading.Lock()
        self._unsent: list[dict[str, Any]] = []
        self._width = 3 + len(self.bounds) + 1

    def observe(self, deployment: str, model: str, version: int, route: str, code: int, seconds: float) -> None:
        """Count one request that ``route`` answered with ``code`` after ``seconds``."""
        slot = 3 + bisect.bisect_left(self.bounds, seconds)
        key = (deployment, model, version, route)
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                cell = self._cells[key] = [0] * self._width
            cell[0] += 1
            if code >= 500:
                cell[2] += 1
            elif code >= 400:
                cell[1] += 1
            cell[slot] += 1

    def take(self, now: float | None = None) -> list[dict[str, Any]]:
        """The rows of the window that ends now (and a new window begins)."""
        end = time.time() if now is None else now
        with self._lock:
            cells, self._cells = self._cells, {}
            start, self._since = self._since, end
        bounds = list(self.bounds)
        return [
            {
                "deployment": deployment,
                "model": model,
                "version": version,
                "route": route,
                "worker": self.worker,
                "window_start": start,
                "window_end": end,
                "requests": cell[0],
                "errors_4xx": cell[1],
                "errors_5xx": cell[2],
                "latency": {"bounds": bounds, "counts": cell[3:]},
            }
            for (deployment, model, version, route), cell in cells.items()
        ]

    def flush(self, store: Any) -> int:
        """Write this window's rows (and any a failed write kept); the number of rows written."""
        rows = self._unsent + self.take()
        self._unsent = []
        if not rows:
            return 0
        try:
            store.add_serving_stats(rows)
        except Exception:
            keep = rows[-MAX_UNSENT:]
            self.lost += len(rows) - len(keep)
            self._unsent = keep
            log.exception("cannot write %d serving-stats rows to the store (kept for the next try)", len(rows))
            return 0
        self.written += len(rows)
        return len(rows)

    async def run(self, store: Any) -> None:
        """Write the totals every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            await asyncio.to_thread(self.flush, store)
