"""The serving runtime: loaded versions, each deployment's router, the route poller, input checks and metrics
(layer: serving).

``Runtime.sync()`` reads every deployment's revision (one small query); for a deployment whose revision
changed it reads the routes, loads each version not loaded yet (the registry checks every file's sha256),
runs a warm-up prediction on a row built from the signature, and only then swaps the deployment's state in
one assignment, so requests in flight finish on the state they started with and none fails. When a version
cannot be loaded or warmed up, the old state keeps serving and the failure is recorded once per revision
(``load_failed`` in the deployment's events, ``stead deployments show``). ``Runtime.poll()`` runs
``sync`` every ``poll_interval`` seconds (0.25 by default) in a thread, so a rollback made anywhere is
served by every worker within a second.

``parse_inputs`` checks a request body against a version's signature and names every missing, extra or
wrongly typed field (422).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stead.errors import NotFoundError, SteadError, ValidationError
from stead.serving.routing import Router

__all__ = ["DeploymentState", "Runtime", "ServedVersion", "Unavailable", "parse_inputs"]

log = logging.getLogger("stead.serving.runtime")
QUICK_SECONDS = 0.002
RETRY_FAILED_AFTER = 30.0


class Unavailable(SteadError):
    """The deployment exists but nothing of it could be loaded yet (503)."""

    headline = "unavailable"
    status_code = 503
    code = "unavailable"


_INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def _expect(column: Mapping[str, Any]) -> str:
    """The JSON type family a signature column takes: number, integer, boolean or string."""
    dtype = str(column.get("dtype", ""))
    if dtype in _INT_DTYPES:
        return "integer"
    if dtype.startswith("float") or column.get("kind") == "numeric":
        return "number"
    if dtype == "bool":
        return "boolean"
    return "string"


def _bad_value(value: Any, expect: str) -> bool:
    if value is None:
        return False
    if expect == "number":
        return isinstance(value, bool) or not isinstance(value, int | float)
    if expect == "integer":
        if isinstance(value, float):
            return not value.is_integer()
        return isinstance(value, bool) or not isinstance(value, int)
    if expect == "boolean":
        return not isinstance(value, bool)
    return not isinstance(value, str)


_NAMES = {"number": "a number", "integer": "an integer", "boolean": "true or false", "string": "a string"}


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def parse_inputs(body: Mapping[str, Any], signature: Mapping[str, Any]) -> tuple[dict[str, list[Any]], int]:
    """``{"instances": [{col: v}, …]}`` or ``{"inputs": {col: [v, …]}}`` as columns, checked against ``signature``.

    >>> sig = {"inputs": [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "string"}]}
    >>> parse_inputs({"instances": [{"a": 1.5, "b": "x"}]}, sig)
    ({'a': [1.5], 'b': ['x']}, 1)
    >>> try:
    ...     parse_inputs({"inputs": {"a": ["no"], "c": [1]}}, sig)
    ... except ValidationError as exc:
    ...     print(exc.details)
    ['b', 'c', 'a']
    """
    columns: dict[str, list[Any]]
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise ValidationError('"instances" must be a non-empty list of objects', details=["instances"])
        bad_rows = [i for i, row in enumerate(instances) if not isinstance(row, dict)]
        if bad_rows:
            raise ValidationError(
                f'"instances" must be objects of column: value; row {bad_rows[0]} is '
                f"{_type_name(instances[bad_rows[0]])}",
                details=[f"instances[{bad_rows[0]}]"],
            )
        names: dict[str, None] = {}
        for row in instances:
            for key in row:
                names[key] = None
        columns = {k: [row.get(k) for row in instances] for k in names}
        missing_in_rows = {k: i for k in names for i, row in enumerate(instances) if k not in row}
        n = len(instances)
    elif "inputs" in body:
        inputs = body["inputs"]
        if not isinstance(inputs, dict) or not inputs:
            raise ValidationError('"inputs" must be an object of column: [values…]', details=["inputs"])
        columns = {}
        lengths: set[int] = set()
        for key, values in inputs.items():
            if not isinstance(values, list):
                values = [values]
            columns[key] = values
            lengths.add(len(values))
        if len(lengths) != 1 or 0 in lengths:
            raise ValidationError(
                f'the columns of "inputs" must be non-empty lists of one length, got lengths {sorted(lengths)}',
                details=["inputs"],
            )
        missing_in_rows = {}
        n = lengths.pop()
    else:
        raise ValidationError(
            'the body needs "instances" (a list of rows) or "inputs" (an object of columns)',
            hint='e.g. {"instances": [{"age": 42, "plan": "pro"}]}',
            details=["instances"],
        )
    spec = list(signature.get("inputs") or [])
    if not spec:
        return columns, n
    problems: list[str] = []
    fields: list[str] = []
    wanted = {str(c["name"]): c for c in spec}
    for name in wanted:
        if name not in columns:
            problems.append(f"{name}: missing")
            fields.append(name)
    for name in columns:
        if name not in wanted:
            problems.append(f"{name}: not in the signature")
            fields.append(name)
    for name, col in wanted.items():
        values = columns.get(name)
        if values is None:
            continue
        if name in missing_in_rows:
            problems.append(f"{name}: missing in row {missing_in_rows[name]}")
            fields.append(name)
            continue
        expect = _expect(col)
        for i, value in enumerate(values):
            if _bad_value(value, expect):
                problems.append(f"{name}: row {i} is {_type_name(value)}, expected {_NAMES[expect]}")
                fields.append(name)
                break
    if problems:
        raise ValidationError(
            "the input does not fit the model's signature: " + "; ".join(problems),
            hint="the model takes: " + ", ".join(f"{c['name']} ({c.get('dtype', '?')})" for c in spec),
            details=fields,
        )
    return {name: columns[name] for name in wanted}, n


def _frame(columns: Mapping[str, list[Any]], signature: Mapping[str, Any]) -> Any:
    import numpy as np
    import pandas as pd

    dtypes = {str(c["name"]): c for c in signature.get("inputs") or []}
    data: dict[str, Any] = {}
    for name, values in columns.items():
        col = dtypes.get(name)
        expect = _expect(col) if col is not None else None
        if expect == "number" or (expect == "integer" and any(v is None for v in values)):
            data[name] = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        elif expect == "integer":
            data[name] = np.array(values, dtype=np.int64)
        else:
            data[name] = values
    return pd.DataFrame(data)


def _warmup_row(signature: Mapping[str, Any]) -> dict[str, list[Any]]:
    sample = {"number": 0.0, "integer": 0, "boolean": False, "string": ""}
    return {str(c["name"]): [sample[_expect(c)]] for c in signature.get("inputs") or []}


class ServedVersion:
    """One loaded model version, ready to predict on checked columns."""

    def __init__(self, model: str, version: int, loaded: Any, signature: Mapping[str, Any]) -> None:
        self.model = model
        self.version = version
        self.loaded = loaded
        self.signature = dict(signature)
        self.label = f"{model}/{version}"
        self.batcher: Any = None  # set by the prediction service: its Batcher, or False when batching is off
        self._order: list[str] | None = None
        self._index: Any = None
        self._direct: Any = None
        self._block: Any = None
        self._candidate: Any = None
        self.seconds: float | None = None  # a moving average of predict's duration (one-row to batch calls)
        self._fast_path()

    def _fast_path(self) -> None:
        """When every input is a float column, build the frame as one float64 block in the model's column order
        and hand it to the flavor's predict function directly (its own reordering copy is then a no-op); a
        build of pandas' general constructor costs more than the prediction of a small model."""
        import pandas as pd

        spec = list(self.signature.get("inputs") or [])
        names = [str(c["name"]) for c in spec]
        if not names or any(_expect(c) != "number" or not str(c.get("dtype", "")).startswith("float") for c in spec):
            return
        columns = getattr(self.loaded, "columns", None)
        order = list(columns) if columns else names
        if sorted(order) != sorted(names):
            return
        self._order = order
        self._index = pd.Index(order, dtype=object)
        direct = getattr(self.loaded, "_predict", None)  # the flavor's function, past LoadedModel's checks
        self._direct = direct if callable(direct) and columns else None
        block = getattr(self.loaded, "predict_block", None)
        self._candidate = block if callable(block) and columns else None  # taken once _check_block agrees

    @property
    def quick(self) -> bool:
        """Whether this version's recent predictions took under :data:`QUICK_SECONDS` (cheap enough to run
        in the event loop for a request that is alone)."""
        return self.seconds is not None and self.seconds < QUICK_SECONDS

    def predict(self, columns: Mapping[str, list[Any]]) -> list[Any]:
        started = time.perf_counter()
        result = self._predict(columns)
        elapsed = time.perf_counter() - started
        self.seconds = elapsed if self.seconds is None else 0.8 * self.seconds + 0.2 * elapsed
        return result

    def _predict(self, columns: Mapping[str, list[Any]]) -> list[Any]:
        import numpy as np

        if self._order is not None:
            block = self._block_of(columns)
            out = self._block(block) if self._block is not None else self._predict_frame(block)
        else:
            out = self.loaded.predict(_frame(columns, self.signature))
        result: list[Any] = np.asarray(out).tolist()
        return result

    def _block_of(self, columns: Mapping[str, list[Any]]) -> Any:
        """The rows as one float64 array, columns in the model's order (None -> NaN)."""
        import numpy as np

        assert self._order is not None
        return np.array([columns[name] for name in self._order], dtype=np.float64).T

    def _predict_frame(self, block: Any) -> Any:
        import pandas as pd

        frame = pd.DataFrame(block, columns=self._index, copy=False)
        return self._direct(frame) if self._direct is not None else self.loaded.predict(frame)

    def _check_block(self, columns: Mapping[str, list[Any]]) -> None:
        """Keep the block path (the model's own predict on a bare array, past its frame checks) only when it
        answers this real row exactly as the frame path does; a model that selects columns by name fails or
        differs here, and predicts on frames from then on."""
        if self._candidate is None or self._order is None:
            return
        import numpy as np

        block = self._block_of(columns)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                same = np.array_equal(np.asarray(self._candidate(block)), np.asarray(self._predict_frame(block)))
        except Exception:
            same = False
        if not same:
            log.info("%s: predicts on frames (its predict on a bare array differs)", self.label)
            return
        self._block = self._candidate
        # Only the serving process takes this path, so this filter never hides the warning from a user's script.
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)

    def warm_up(self, sample: Mapping[str, list[Any]] | None = None) -> None:
        """Predict once before taking traffic: on ``sample`` (a real input of the deployment, which must
        work) when it fits the signature, else on a row of zeros and empty strings, whose failure is only
        logged (a strict encoder may refuse made-up values that no real request sends)."""
        names = [str(c["name"]) for c in self.signature.get("inputs") or []]
        if sample is not None and names and set(sample) == set(names):
            row = {k: list(v[:1]) for k, v in sample.items()}
            self._check_block(row)
            self.predict(row)
            return
        columns = _warmup_row(self.signature)
        if not columns:
            return
        try:
            self._check_block(columns)
            self.predict(columns)
        except Exception as exc:
            log.warning(
                "%s: warm-up on a made-up row failed (%s: %s); serving it anyway", self.label, type(exc).__name__, exc
            )


@dataclass(frozen=True)
class DeploymentState:
    """What a deployment serves now: its revision, router and loaded versions (replaced whole, never mutated)."""

    name: str
    revision: int
    router: Router
    versions: dict[tuple[str, int], ServedVersion] = field(default_factory=dict)


class Runtime:
    """Every deployment's serving state in this process, kept in step with the store."""

    def __init__(
        self,
        store: Any,
        *,
        poll_interval: float = 0.25,
        worker: str = "",
        loader: Any = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.worker = worker
        self.rng = rng or random.Random()
        self.states: dict[str, DeploymentState] = {}
        self.revisions: dict[str, int] = {}
        self.samples: dict[str, Mapping[str, list[Any]]] = {}
        self._cache: dict[tuple[str, int], ServedVersion] = {}
        self._failed: dict[str, tuple[int, float]] = {}
        # The versions each deployment served before its latest change stay loaded, so that a rollback (issue 9:
        # within 1 s on every replica, even under load) swaps back without reading the model from S3 again.
        self._standby: dict[str, set[tuple[str, int]]] = {}
        self._loader = loader
        self._sync_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self.last_sync = 0.0

    # ------------------------------------------------------------ lookup
    def get(self, name: str) -> DeploymentState:
        state = self.states.get(name)
        if state is not None:
            return state
        if name in self.revisions:
            raise Unavailable(
                f"deployment {name!r} has no version that could be loaded yet",
                hint=f"see its events with: stead deployments show {name}",
            )
        known = sorted(self.revisions)
        raise NotFoundError(
            f"no deployment named {name!r}. Known deployments: {', '.join(known) or '(none yet)'}",
            hint="create one with: stead deploy NAME@ALIAS --to DEPLOYMENT",
            details={"known": known},
        )

    # ------------------------------------------------------------ keeping up with the store
    def remember(self, name: str, columns: Mapping[str, list[Any]]) -> None:
        """Keep a real input of ``name`` (the last answered one) for warming up its next versions."""
        self.samples[name] = columns

    def _load(self, model: str, version: int, sample: Mapping[str, list[Any]] | None = None) -> ServedVersion:
        cached = self._cache.get((model, version))
        if cached is not None:
            return cached
        if self._loader is not None:
            loaded = self._loader(self.store, f"{model}/{version}")
        else:
            from stead.registry import load_model

            loaded = load_model(self.store, f"{model}/{version}")
        served = ServedVersion(model, version, loaded, getattr(loaded, "signature", None) or {})
        served.warm_up(sample)
        self._cache[(model, version)] = served
        return served

    def _build(self, name: str) -> DeploymentState:
        d = self.store.get_deployment(name, history=0)
        router = Router(d.routes, salt=name)
        sample = self.samples.get(name)
        versions = {(r.model, r.version): self._load(r.model, r.version, sample) for r in router.routes}
        return DeploymentState(name, d.revision, router, versions)

    def sync(self) -> bool:
        """Bring every deployment's state up to its stored revision; True when something changed."""
        with self._sync_lock:
            revisions = self.store.deployment_revisions()
            self.revisions = revisions
            changed = False
            now = time.monotonic()
            for name, revision in revisions.items():
                state = self.states.get(name)
                if state is not None and state.revision == revision:
                    continue
                failed = self._failed.get(name)
                if failed is not None and failed[0] == revision and now - failed[1] < RETRY_FAILED_AFTER:
                    continue
                try:
                    new = self._build(name)
                except Exception as exc:
                    first = failed is None or failed[0] != revision
                    self._failed[name] = (revision, now)
                    if first:
                        self._record_failure(name, revision, state, exc)
                    continue
                self._failed.pop(name, None)
                if state is not None:
                    self._standby[name] = set(state.versions) - set(new.versions)
                self.states[name] = new
                changed = True
            for name in [n for n in self.states if n not in revisions]:
                del self.states[name]
                self._standby.pop(name, None)
                changed = True
            if changed:
                used = {key for s in self.states.values() for key in s.versions}
                used |= {key for keys in self._standby.values() for key in keys}
                for key in [k for k in self._cache if k not in used]:
                    del self._cache[key]
            self.last_sync = time.time()
            return changed

    def _record_failure(self, name: str, revision: int, old: DeploymentState | None, exc: Exception) -> None:
        message = exc.message if isinstance(exc, SteadError) else f"{type(exc).__name__}: {exc}"
        kept = None if old is None else old.revision
        log.warning("deployment %s revision %s cannot serve (%s); kept revision %s", name, revision, message, kept)
        try:
            self.store.record_deployment_event(
                name,
                "load_failed",
                {"revision": revision, "error": message, "kept_revision": kept, "worker": self.worker},
                reason=f"revision {revision} could not be loaded; revision {kept} keeps serving",
                actor="stead-serve",
            )
        except Exception:
            log.exception("cannot record the failure of deployment %s", name)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await asyncio.to_thread(self.sync)
            except Exception:
                log.exception("cannot read the deployments from the store; serving the last known routes")

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
