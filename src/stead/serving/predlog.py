"""The durable prediction log: a write-ahead file with group commit, compacted into Parquet segments
(layer: serving).

Each answered prediction is one JSON line in this process's write-ahead file. A writer thread takes every
line queued since its last turn, writes them with one ``write`` and (in ``fsync`` mode) one
``fdatasync``, and only then releases the requests waiting on them, so an answer is never sent before its
log line is durable; concurrent requests share one sync (group commit). In ``write`` mode the lines reach
the kernel before the answers go out (safe against the process being killed, not against the machine
losing power) and are synced in the background; ``append`` then writes them itself, with no hand-off to the
writer thread: the lines queued in one turn of the event loop go out in one ``write`` at the end of that turn.

The file is rotated every ``rotate_seconds`` or ``rotate_rows``; a compactor thread turns each closed file
into one Parquet segment per deployment, stores it in the artifact store and indexes it
(``prediction_segments``, keyed by writer and sequence, so replaying a file indexes nothing twice), then
deletes the file. Every writer holds an ``flock`` on its own folder; on start, a writer compacts the files
of folders whose lock nobody holds (a process that died, even by ``kill -9``).

Memory stays bounded: at most ``max_queue`` lines wait for the writer; past that a prediction is answered
but not logged, and counted in ``dropped`` (``stead_prediction_log_dropped_total``), never silently lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["PredictionLog", "compact_file", "new_request_id", "wal_folder"]

log = logging.getLogger("stead.serving.predlog")
SEGMENTS_PER_FILE = 1000  # sequence = file number * this + index of the deployment in the file


def new_request_id() -> str:
    """A 32-hex-digit id that starts with the time in milliseconds (ids sort by time to the millisecond, like UUIDv7).

    >>> len(new_request_id()), new_request_id()[:12] <= new_request_id()[:12]
    (32, True)
    """
    return f"{int(time.time() * 1000):012x}{uuid.uuid4().hex[:20]}"


def wal_folder(settings: Any) -> Path:
    """Where this machine keeps write-ahead files: ``STEAD_PREDLOG_DIR``, else ``<store folder>/predlog`` for
    a folder store, else a per-store folder under ``~/.cache/stead/predlog``."""
    explicit = os.environ.get("STEAD_PREDLOG_DIR")
    if explicit:
        return Path(explicit).expanduser()
    if settings.backend == "folder":
        return Path(settings.folder) / "predlog"
    import hashlib

    key = hashlib.sha256(settings.uri.encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "stead" / "predlog" / key


def _column(values: list[Any]) -> Any:
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types across versions: keep them as JSON text
        return pa.array([None if v is None else json.dumps(v) for v in values], type=pa.string())


def _segment(records: list[dict[str, Any]]) -> tuple[bytes, int, float, float]:
    """One deployment's records as Parquet bytes, one row per predicted instance."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fixed: dict[str, list[Any]] = {k: [] for k in ("request_id", "row", "time", "model", "version", "route")}
    fixed["latency_ms"] = []
    inputs: dict[str, list[Any]] = {}
    outputs: dict[str, list[Any]] = {}
    total = 0
    for rec in records:
        n = int(rec["n"])
        for name, values in rec["in"].items():
            inputs.setdefault(name, [None] * total).extend(values)
        for name, values in rec["out"].items():
            outputs.setdefault(name, [None] * total).extend(values)
        total += n
        for col in (inputs, outputs):
            for values in col.values():
                if len(values) < total:
                    values.extend([None] * (total - len(values)))
        fixed["request_id"].extend([rec["id"]] * n)
        fixed["row"].extend(range(n))
        fixed["time"].extend([rec["t"]] * n)
        fixed["model"].extend([rec["m"]] * n)
        fixed["version"].extend([rec["v"]] * n)
        fixed["route"].extend([rec["r"]] * n)
        fixed["latency_ms"].extend([rec["lat"]] * n)
    arrays = {k: _column(v) for k, v in fixed.items()}
    arrays.update({f"inputs.{k}": _column(v) for k, v in inputs.items()})
    arrays.update({f"outputs.{k}": _column(v) for k, v in outputs.items()})
    table = pa.table(arrays)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    times = fixed["time"]
    return sink.getvalue(), total, float(min(times)), float(max(times))


def _read_records(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        data = fh.read()
    for line in data.split(b"\n"):
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except ValueError:  # a torn last line: its request was never answered
            continue
    return records


def compact_file(store: Any, path: Path, writer: str) -> int:
    """Turn one closed write-ahead file into Parquet segments (one per deployment), index them, delete it.

    Returns the number of rows newly indexed (0 when a replay finds them all indexed already).
    """
    number = int(path.stem)
    records = _read_records(path)
    by_deployment: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_deployment.setdefault(rec["d"], []).append(rec)
    added = 0
    for index, name in enumerate(sorted(by_deployment)):
        data, rows, t0, t1 = _segment(by_deployment[name])
        digest = store.artifacts.put_bytes(data)
        if store.add_prediction_segment(name, digest, rows, t0, t1, writer, number * SEGMENTS_PER_FILE + index):
            added += rows
    path.unlink()
    return added


class _Pending:
    __slots__ = ("callback", "future", "loop", "record")

    def __init__(
        self,
        record: dict[str, Any],
        callback: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.record = record
        self.callback = callback
        self.loop = loop
        self.future = future


class PredictionLog:
    """This process's write-ahead prediction log; see the module docstring."""

    def __init__(
        self,
        store: Any,
        folder: Path,
        *,
        durability: str = "fsync",
        max_queue: int = 50_000,
        rotate_rows: int = 20_000,
        rotate_seconds: float = 1.0,
    ) -> None:
        if durability not in ("fsync", "write"):
            raise ValueError(f"durability must be 'fsync' or 'write', got {durability!r}")
        self.store = store
        self.root = Path(folder)
        self.durability = durability
        self.max_queue = max_queue
        self.rotate_rows = rotate_rows
        self.rotate_seconds = rotate_seconds
        host = socket.gethostname().split(".")[0][:40]
        self.writer = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.folder = self.root / self.writer
        self.dropped = 0
        self.logged = 0
        self.compacted = 0
        self.compact_errors = 0
        self._pending: list[_Pending] = []
        self._inline: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._inline_soon = False
        self._fd_lock = threading.Lock()  # the file descriptor, between inline writes and the writer's rotation
        self._unsynced = False
        self._handing_over = False  # a rotated file between its descriptor's swap and the compactor's queue
        self._cond = threading.Condition()
        self._closed_files: deque[tuple[Path, str]] = deque()
        self._compact_cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._file: Path | None = None
        self._number = 0
        self._rows_in_file = 0
        self._opened_at = 0.0

    @property
    def queued(self) -> int:
        return len(self._pending) + len(self._inline)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._claim_orphans()
        self._open_next()
        for target, name in ((self._write_loop, "stead-predlog-writer"), (self._compact_loop, "stead-predlog-compact")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, compact every closed file, release the lock."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with self._compact_cond:
            self._compact_cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        with contextlib.suppress(OSError):
            if not any(p.suffix == ".wal" for p in self.folder.iterdir()):
                shutil.rmtree(self.folder)

    def _claim_orphans(self) -> None:
        """Compact the files of writers that died (their folder's lock is free)."""
        for other in sorted(self.root.iterdir()) if self.root.exists() else []:
            if other == self.folder or not other.is_dir():
                continue
            try:
                fd = os.open(other / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live writer
                files = sorted(other.glob("*.wal"))
                for path in files:
                    self._compact_one(path, other.name)
                if not any(other.glob("*.wal")):
                    shutil.rmtree(other, ignore_errors=True)
            finally:
                os.close(fd)

    # ------------------------------------------------------------ appending
    def _queue(self, item: _Pending) -> bool:
        with self._cond:
            if len(self._pending) >= self.max_queue or self._stopping:
                self.dropped += 1
                return False
            self._pending.append(item)
            if len(self._pending) == 1:
                self._cond.notify()
        return True

    def submit(self, record: dict[str, Any], callback: Callable[[], None] | None = None) -> bool:
        """Queue one record; ``callback`` runs (in the writer thread) once it is durable. False when dropped."""
        return self._queue(_Pending(record, callback))

    async def append(self, record: dict[str, Any]) -> bool:
        """Queue one record and wait until it is durable (False, at once, when it had to be dropped)."""
        loop = asyncio.get_running_loop()
        if self.durability == "write":
            if self._stopping or len(self._inline) >= self.max_queue:
                self.dropped += 1
                return False
            done: asyncio.Future[bool] = loop.create_future()
            self._inline.append((record, done))
            if not self._inline_soon:
                self._inline_soon = True
                loop.call_soon(self._write_inline)
            return await done
        future: asyncio.Future[None] = loop.create_future()
        if not self._queue(_Pending(record, None, loop, future)):
            return False
        await future
        return True

    def _write_inline(self) -> None:
        """Write every line appended in this turn of the event loop with one ``write`` (``write`` mode)."""
        self._inline_soon = False
        batch, self._inline = self._inline, []
        if not batch:
            return
        dumps = json.dumps
        data = "".join([dumps(record, separators=(",", ":")) + "\n" for record, _ in batch]).encode()
        ok = True
        with self._fd_lock:
            try:
                if self._fd is None:
                    raise OSError("the prediction log is closed")
                os.write(self._fd, data)
                self._rows_in_file += len(batch)
                self.logged += len(batch)
                self._unsynced = True
            except OSError:  # answered anyway, and counted: a full disk must not stop serving
                log.exception("cannot write the prediction log %s", self._file)
                self.dropped += len(batch)
                ok = False
        for _, done in batch:
            if not done.done():
                done.set_result(ok)

    @staticmethod
    def _release(batch: list[_Pending]) -> None:
        waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for p in batch:
            if p.callback is not None:
                p.callback()
            if p.loop is not None and p.future is not None:
                waiting.setdefault(p.loop, []).append(p.future)
        for loop, futures in waiting.items():  # one wake-up per event loop and group
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_resolve_all, futures)

    # ------------------------------------------------------------ the writer thread
    def _open_next(self) -> None:
        self._number += 1
        self._file = self.folder / f"{self._number:012d}.wal"
        self._fd = os.open(self._file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._rows_in_file = 0
        self._opened_at = time.monotonic()

    def _rotate(self) -> None:
        """Close the current file (synced) for the compactor and open the next one; only the swap of the
        descriptor holds the lock, so inline writers never wait for a sync."""
        assert self._fd is not None and self._file is not None
        with self._fd_lock:
            old_fd, old_file = self._fd, self._file
            self._open_next()
            self._unsynced = False
            self._handing_over = True
        os.fsync(old_fd)
        os.close(old_fd)
        with self._compact_cond:
            self._closed_files.append((old_file, self.writer))
            self._handing_over = False
            self._compact_cond.notify()

    def _write_loop(self) -> None:
        dumps = json.dumps
        while True:
            with self._cond:
                if not self._pending and not self._stopping:
                    wait = max(0.0, self.rotate_seconds - (time.monotonic() - self._opened_at))
                    # inline writes (``write`` mode) are synced within about 50 ms
                    self._cond.wait(min(0.05, wait) if self._rows_in_file else max(wait, 0.05))
                batch, self._pending = self._pending, []
                stopping = self._stopping
            fd = self._fd
            assert fd is not None
            if batch:
                data = "".join([dumps(p.record, separators=(",", ":")) + "\n" for p in batch]).encode()
                try:
                    with self._fd_lock:
                        os.write(fd, data)
                        self._rows_in_file += len(batch)
                        self.logged += len(batch)
                        if self.durability != "fsync":
                            self._unsynced = True
                    if self.durability == "fsync":
                        os.fdatasync(fd)  # only this thread closes descriptors: no lock needed to sync
                except OSError:  # answered anyway, and counted: a full disk must not stop serving
                    log.exception("cannot write the prediction log %s", self._file)
                    self.dropped += len(batch)
                self._release(batch)
            elif self._unsynced:
                self._unsynced = False
                with contextlib.suppress(OSError):
                    os.fdatasync(fd)
            old = time.monotonic() - self._opened_at >= self.rotate_seconds
            if self._rows_in_file and (self._rows_in_file >= self.rotate_rows or old or stopping):
                self._rotate()
            elif not self._rows_in_file and old:
                self._opened_at = time.monotonic()
            if stopping and not self._pending and not self._inline:
                with self._fd_lock:
                    last, self._fd = self._fd, None
                    rows = self._rows_in_file
                if last is not None:
                    os.close(last)
                if self._file is not None and self._file.exists() and not rows:
                    self._file.unlink()
                return

    # ------------------------------------------------------------ the compactor thread
    def _compact_one(self, path: Path, writer: str) -> bool:
        try:
            self.compacted += compact_file(self.store, path, writer)
            return True
        except Exception:
            self.compact_errors += 1
            log.exception("cannot compact the prediction log file %s (kept; retried later)", path)
            return False

    def _compact_loop(self) -> None:
        delay = 0.5
        while True:
            with self._compact_cond:
                while not self._closed_files and not self._stopping:
                    self._compact_cond.wait(0.5)
                if not self._closed_files and self._stopping and not any(t.is_alive() for t in self._threads[:1]):
                    return
                item = self._closed_files[0] if self._closed_files else None
            if item is None:
                time.sleep(0.01)
                continue
            if self._compact_one(*item):
                with self._compact_cond:
                    self._closed_files.popleft()
                delay = 0.5
            else:
                if self._stopping:
                    return  # the file stays; the next start compacts it
                time.sleep(delay)
                delay = min(delay * 2, 30.0)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written and compacted (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._opened_at = 0.0  # rotate at the writer's next turn
            self._cond.notify()
        while time.monotonic() < deadline:
            idle = not self._pending and not self._inline and not self._rows_in_file and not self._handing_over
            if idle and not self._closed_files:
                return
            time.sleep(0.01)


def _resolve_all(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)
