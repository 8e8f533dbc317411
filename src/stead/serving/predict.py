"""The prediction endpoints over the runtime: ``/v1`` predict and feedback, KServe v1, readiness and
``/metrics`` (layer: serving).

``PredictionService(settings, store)`` owns a ``Runtime`` (what each deployment serves), a
``PredictionLog`` (the durable log) and the Prometheus metrics; ``routes()`` are its endpoints and
``running()`` its lifespan (start: replay leftover write-ahead files, load every deployment, start polling;
stop: readiness turns 503, the log is written out and compacted).

A predict request: the content type must be JSON (or absent; anything else is 415, and a pickle body is
never parsed), the body at most ``body_limit`` bytes (413) and valid JSON (400); the deployment must exist
(404 lists the known ones); the router picks the route; the input is checked against that version's
signature (422 names each field); the prediction is logged and the answer waits until its log line is
durable; shadows get their copy after the answer is sent, in one background thread, and can neither slow
nor fail the answer.

The model runs in the worker's prediction threads, never in the event loop, through the version's batcher
when adaptive batching is on (``batching``). Every answered request is counted per deployment, version and
route in ``/metrics`` and in the health totals the controller reads (``health``).

Environment (read when the service is built): ``STEAD_BODY_LIMIT_MB`` (else each model's
``serving.body_limit_mb`` in ``stead.yaml``, else 10), ``STEAD_PREDLOG_SYNC``
(``write``, the default: each log line is written to the file before its answer is sent, which survives
``kill -9`` of the server, and synced within about 50 ms; or ``fsync``: synced before the answer, which also
survives the machine losing power, at the cost of a disk sync per group of requests, 3 ms on this machine's
disk; see ``predlog``), ``STEAD_PREDLOG_DIR``, ``STEAD_POLL_INTERVAL`` (0.25 s), ``STEAD_STATS_INTERVAL``
(2 s), ``STEAD_BATCHING`` and ``STEAD_PREDICT_THREADS`` (see ``batching``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stead.errors import ConfigError, SteadError, ValidationError
from stead.serving.api import BadRequest, PayloadTooLarge, error_response, internal_error
from stead.serving.auth import guard
from stead.serving.batching import Batcher, batching_settings, predict_pool, project_serving
from stead.serving.health import HealthStats
from stead.serving.predlog import PredictionLog, new_request_id, wal_folder
from stead.serving.routing import RouteSpec
from stead.serving.runtime import DeploymentState, Runtime, ServedVersion, parse_inputs

__all__ = ["Metrics", "PredictionService", "UnsupportedMediaType"]

log = logging.getLogger("stead.serving.predict")
MB = 1024 * 1024
DEFAULT_BODY_LIMIT = 10 * MB
SHADOW_QUEUE = 256
FEEDBACK_PENDING_SECONDS = 60.0  # ids younger than this may still sit in a write-ahead file: accepted


class UnsupportedMediaType(ValidationError):
    """The request body is not JSON (415)."""

    status_code = 415


class Metrics:
    """The Prometheus metrics of one serving process (its own registry, so tests can build many apps)."""

    def __init__(self, predlog: PredictionLog) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "stead_requests",
            "Prediction requests by deployment, version, route and status code.",
            ["deployment", "version", "route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "stead_request_latency_seconds",
            "Prediction request latency, from the request to its durable log line.",
            ["deployment", "version", "route"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        queue = Gauge("stead_prediction_log_queue", "Predictions waiting for the log writer.", registry=self.registry)
        queue.set_function(lambda: predlog.queued)
        dropped = Counter(
            "stead_prediction_log_dropped",
            "Answered predictions the log could not keep (queue full or disk error).",
            registry=self.registry,
        )
        self._dropped = dropped
        self._predlog = predlog
        self.shadow_dropped = Counter(
            "stead_shadow_dropped", "Shadow copies skipped because the shadow queue was full.", registry=self.registry
        )
        self.shadow_errors = Counter("stead_shadow_errors", "Shadow predictions that failed.", registry=self.registry)
        self._seen_drops = 0
        self._lock = threading.Lock()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        with self._lock:
            drops = self._predlog.dropped
            if drops > self._seen_drops:
                self._dropped.inc(drops - self._seen_drops)
                self._seen_drops = drops
        return generate_latest(self.registry)


def _content_type_ok(request: Request) -> None:
    raw = request.headers.get("content-type")
    if raw is None:
        return  # the Open Inference Protocol reads a body with no content type as JSON
    media = raw.split(";", 1)[0].strip().lower()
    if media in ("application/json", "text/json") or media.endswith("+json"):
        return
    raise UnsupportedMediaType(
        f"the body is {media or 'of no declared type'}; this endpoint reads only JSON",
        hint="send Content-Type: application/json",
    )


async def _read_json(request: Request, limit: int) -> dict[str, Any]:
    _content_type_ok(request)
    body = await _read_body(request, limit)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}", hint='send e.g. {"instances": [{"col": 1.0}]}') from None
    if not isinstance(data, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(data).__name__}")
    return data


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the body has {int(declared)} bytes, over this server's limit of {limit} bytes",
            hint="send fewer rows per request, or raise serving.body_limit_mb in stead.yaml (STEAD_BODY_LIMIT_MB)",
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over this server's limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _oip_error(exc: SteadError) -> Response:
    """The v2 protocol's error body, ``{"error": message}`` (what tritonclient and kserve show)."""
    return JSONResponse({"error": exc.message}, status_code=exc.status_code)


def _datatype_of_values(values: list[Any]) -> str:
    first = next((v for v in values if v is not None), None)
    if isinstance(first, bool):
        return "BOOL"
    if isinstance(first, int):
        return "INT64"
    if isinstance(first, float):
        return "FP64"
    return "BYTES"


def _id_time(request_id: str) -> float | None:
    try:
        return int(request_id[:12], 16) / 1000.0 if len(request_id) == 32 else None
    except ValueError:
        return None


def _limit_from_env(text: str | None) -> int | None:
    if not text:
        return None
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = -1.0
    if not megabytes > 0:
        raise ConfigError(
            f"STEAD_BODY_LIMIT_MB must be a positive number of megabytes, got {text!r}",
            hint="unset it to use each model's serving.body_limit_mb (10 by default), or set e.g. 20",
        )
    return int(megabytes * MB)


class PredictionService:
    """Prediction serving for one process: runtime, log and metrics; see the module docstring."""

    def __init__(
        self,
        settings: Any,
        store: Any,
        *,
        body_limit: int | None = None,
        durability: str | None = None,
        poll_interval: float | None = None,
        wal_dir: Any = None,
    ) -> None:
        env = os.environ
        self.store = store
        self._fixed_limit = body_limit or _limit_from_env(env.get("STEAD_BODY_LIMIT_MB"))
        self.predlog = PredictionLog(
            store, wal_dir or wal_folder(settings), durability=durability or env.get("STEAD_PREDLOG_SYNC") or "write"
        )
        interval = poll_interval or float(env.get("STEAD_POLL_INTERVAL") or 0.25)
        self.runtime = Runtime(store, poll_interval=interval, worker=self.predlog.writer)
        self.metrics = Metrics(self.predlog)
        self.health = HealthStats(self.predlog.writer, interval=float(env.get("STEAD_STATS_INTERVAL") or 2.0))
        self._health_task: asyncio.Task[None] | None = None
        self.ready = False
        self._shadow_pool: ThreadPoolExecutor | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._serving = project_serving()
        self.batching = batching_settings(serving=self._serving)
        self._shadow_inflight = 0
        # A request alone in this worker (``_busy`` counts them) predicts in the event loop when its version
        # predicts in under 2 ms: the hop to the prediction pool and back costs about 0.3 ms at concurrency 1;
        # with other requests in flight, or a slower model, the pool keeps the loop free for them.
        self._busy = 0
        self._inline = env.get("STEAD_INLINE_PREDICT", "1") != "0"

    def _limit(self, deployment: str) -> int:
        """The largest body a request to ``deployment`` may send: ``STEAD_BODY_LIMIT_MB`` when set, else the
        ``serving.body_limit_mb`` of the model its primary route serves, else 10 MB."""
        if self._fixed_limit is not None:
            return self._fixed_limit
        state = self.runtime.states.get(deployment)
        spec = None if state is None else self._serving.get(state.router.primary.model)
        return DEFAULT_BODY_LIMIT if spec is None else int(spec.body_limit_mb * MB)

    # ------------------------------------------------------------ lifecycle
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        await asyncio.to_thread(self.predlog.start)
        try:
            await asyncio.to_thread(self.runtime.sync)
        except Exception:
            log.exception("cannot read the deployments at start; polling will retry")
        if os.environ.get("STEAD_GC_FREEZE", "1") != "0":
            # The imports and models loaded so far (pandas, scikit-learn: about a million objects) live as long
            # as the process; out of the collector's view, a full collection no longer walks them all, which
            # took tens of milliseconds from whichever request triggered it.
            gc.collect()
            gc.freeze()
        self.runtime.start()
        self._shadow_pool = ThreadPoolExecutor(1, thread_name_prefix="stead-shadow")
        self._pool = predict_pool()
        self._health_task = asyncio.get_running_loop().create_task(self.health.run(self.store))
        self.ready = True
        try:
            yield
        finally:
            self.ready = False
            await self.runtime.stop()
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._shadow_pool.shutdown(wait=True, cancel_futures=True)
            self._pool.shutdown(wait=True)
            await asyncio.to_thread(self.predlog.stop)
            await asyncio.to_thread(self.health.flush, self.store)

    def routes(self) -> list[BaseRoute]:
        return [
            guard(Route("/v1/deployments/{name}/predict", self.predict, methods=["POST"], name="predict"), "predict"),
            guard(
                Route("/v1/deployments/{name}/feedback", self.feedback, methods=["POST"], name="feedback"), "predict"
            ),
            guard(
                Route("/v1/models/{name}:predict", self.kserve_predict, methods=["POST"], name="kserve_v1"), "predict"
            ),
            guard(Route("/v2/health/ready", self.health_ready, methods=["GET"], name="health_ready"), "open"),
            guard(Route("/v2", self.v2_server, methods=["GET"], name="v2_server"), "open"),
            guard(Route("/v2/models/{name}", self.v2_model, methods=["GET"], name="v2_model"), "predict"),
            guard(Route("/v2/models/{name}/ready", self.v2_ready, methods=["GET"], name="v2_model_ready"), "open"),
            guard(Route("/v2/models/{name}/infer", self.v2_infer, methods=["POST"], name="v2_infer"), "predict"),
            guard(Route("/metrics", self.metrics_endpoint, methods=["GET"], name="metrics"), "open"),
        ]

    # ------------------------------------------------------------ predict
    async def _predict(
        self, name: str, body: Mapping[str, Any], started: float
    ) -> tuple[DeploymentState, dict[str, Any]]:
        state = self.runtime.get(name)
        key = body.get("routing_key")
        if key is not None and not isinstance(key, str | int):
            raise ValidationError("routing_key must be a string", details=["routing_key"])
        choice = state.router.choose(self.runtime.rng, None if key is None else str(key))
        route = choice.route
        served = state.versions[(route.model, route.version)]
        try:
            columns, n = parse_inputs(body, served.signature)
        except ValidationError:
            self.metrics.requests.labels(name, str(route.version), route.kind, "422").inc()
            self.health.observe(name, route.model, route.version, route.kind, 422, time.perf_counter() - started)
            raise
        try:
            predictions = await self._run_predict(served, columns, n)
        except SteadError:
            raise
        except Exception as exc:
            self.metrics.requests.labels(name, str(route.version), route.kind, "500").inc()
            self.health.observe(name, route.model, route.version, route.kind, 500, time.perf_counter() - started)
            log.exception("deployment %s: %s failed to predict", name, served.label)
            raise SteadError(f"{served.label} failed to predict: {type(exc).__name__}: {exc}") from None
        self.runtime.remember(name, columns)
        request_id = new_request_id()
        now = time.time()
        latency = (time.perf_counter() - started) * 1000.0
        record = {
            "id": request_id,
            "t": now,
            "d": name,
            "m": route.model,
            "v": route.version,
            "r": route.kind,
            "lat": round(latency, 4),
            "n": n,
            "in": columns,
            "out": {"predictions": predictions},
        }
        logged = await self.predlog.append(record)
        answer = {"predictions": predictions, "request_id": request_id, "model": route.model, "version": route.version}
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(name, str(route.version), route.kind, "200").inc()
        self.metrics.latency.labels(name, str(route.version), route.kind).observe(elapsed)
        self.health.observe(name, route.model, route.version, route.kind, 200, elapsed)
        extra = {"logged": logged, "shadows": choice.shadows, "columns": columns, "n": n, "id": request_id}
        return state, {**answer, "_extra": extra}

    async def _run_predict(self, served: ServedVersion, columns: dict[str, list[Any]], n: int) -> list[Any]:
        """``served.predict`` in the prediction pool, through the version's batcher when batching is on."""
        batcher = served.batcher
        if batcher is None:
            config = self.batching(served.model)
            batcher = served.batcher = False if config is None else Batcher(served.predict, self._pool, config)
        if batcher is False:
            if self._inline and self._busy == 1 and served.quick:
                return served.predict(columns)
            return await asyncio.get_running_loop().run_in_executor(self._pool, served.predict, columns)
        result: list[Any] = await batcher.predict(columns, n)
        return result

    async def predict(self, request: Request) -> Response:
        started = time.perf_counter()
        name = request.path_params["name"]
        self._busy += 1
        try:
            body = await _read_json(request, self._limit(name))
            state, answer = await self._predict(name, body, started)
        except SteadError as exc:
            if exc.status_code != 422:
                self.metrics.requests.labels(name, "", "", str(exc.status_code)).inc()
            return error_response(exc)
        except Exception:
            self.metrics.requests.labels(name, "", "", "500").inc()
            return internal_error(f"predict {name}")
        finally:
            self._busy -= 1
        return self._answer(state, answer)

    def _answer(self, state: DeploymentState, answer: dict[str, Any]) -> Response:
        extra = answer.pop("_extra")
        task = None
        if extra["shadows"]:
            task = BackgroundTask(self._shadow, state, extra["shadows"], extra["columns"], extra["n"], extra["id"])
        headers = None if extra["logged"] else {"x-stead-logged": "0"}
        return JSONResponse(answer, headers=headers, background=task)

    async def kserve_predict(self, request: Request) -> Response:
        """KServe v1: ``{"instances": [...]}`` (objects, or rows in signature order) -> ``{"predictions": [...]}``."""
        started = time.perf_counter()
        name = request.path_params["name"]
        try:
            body = await _read_json(request, self._limit(name))
            instances = body.get("instances", body.get("inputs"))
            if isinstance(instances, list) and instances and isinstance(instances[0], list):
                state = self.runtime.get(name)
                primary = state.versions[(state.router.primary.model, state.router.primary.version)]
                names = [str(c["name"]) for c in primary.signature.get("inputs") or []]
                if any(not isinstance(row, list) or len(row) != len(names) for row in instances):
                    raise ValidationError(f"each instance must be a list of {len(names)} values: {', '.join(names)}")
                body = {**body, "instances": [dict(zip(names, row, strict=True)) for row in instances]}
            elif "instances" not in body and isinstance(instances, list):
                body = {**body, "instances": instances}
            state, answer = await self._predict(name, body, started)
        except SteadError as exc:
            return error_response(exc)
        except Exception:
            return internal_error(f"kserve predict {name}")
        return self._answer(state, answer)

    def _shadow(
        self, state: DeploymentState, shadows: tuple[RouteSpec, ...], columns: dict[str, Any], n: int, rid: str
    ) -> None:
        pool = self._shadow_pool
        for spec in shadows:
            if pool is None or self._shadow_inflight >= SHADOW_QUEUE:
                self.metrics.shadow_dropped.inc()
                continue
            self._shadow_inflight += 1
            try:
                pool.submit(self._run_shadow, state.name, state.versions[(spec.model, spec.version)], columns, n, rid)
            except RuntimeError:  # shutting down
                self._shadow_inflight -= 1

    def _run_shadow(self, name: str, served: ServedVersion, columns: dict[str, Any], n: int, rid: str) -> None:
        try:
            started = time.perf_counter()
            try:
                parse_inputs({"inputs": columns}, served.signature)
                predictions = served.predict(columns)
            except Exception as exc:
                self.metrics.shadow_errors.inc()
                code = 422 if isinstance(exc, ValidationError) else 500
                self.health.observe(name, served.model, served.version, "shadow", code, time.perf_counter() - started)
                return
            self.health.observe(name, served.model, served.version, "shadow", 200, time.perf_counter() - started)
            record = {
                "id": rid,
                "t": time.time(),
                "d": name,
                "m": served.model,
                "v": served.version,
                "r": "shadow",
                "lat": round((time.perf_counter() - started) * 1000.0, 4),
                "n": n,
                "in": columns,
                "out": {"predictions": predictions},
            }
            self.predlog.submit(record)
        finally:
            self._shadow_inflight -= 1

    # ------------------------------------------------------------ feedback
    def _known_ids(self, deployment: str, ids: list[str]) -> set[str]:
        import pyarrow.parquet as pq

        known: set[str] = set()
        now = time.time()
        older: dict[str, float] = {}
        for rid in ids:
            t = _id_time(rid)
            if t is None:
                continue
            if now - t < FEEDBACK_PENDING_SECONDS:
                known.add(rid)
            else:
                older[rid] = t
        if older:
            segments = self.store.prediction_segments(
                deployment, since=min(older.values()) - 1.0, until=max(older.values()) + 1.0
            )
            wanted = set(older)
            for seg in segments:
                if not any(seg["min_time"] - 1.0 <= older[r] <= seg["max_time"] + 1.0 for r in wanted - known):
                    continue
                with self.store.artifacts.open(seg["digest"]) as fh:
                    table = pq.read_table(io.BytesIO(fh.read()), columns=["request_id"])
                known.update(wanted.intersection(table.column("request_id").to_pylist()))
                if known >= wanted:
                    break
        return known

    async def feedback(self, request: Request) -> Response:
        """``{"request_id", "label"}`` or a list of them -> ``{"accepted": N, "unknown": [ids]}``."""
        name = request.path_params["name"]
        try:
            _content_type_ok(request)
            raw = await request.body()
            limit = self._limit(name)
            if len(raw) > limit:
                raise PayloadTooLarge(f"the body is over this server's limit of {limit} bytes")
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadRequest(f"the body is not JSON: {exc}") from None
            items = data if isinstance(data, list) else [data]
            if isinstance(data, dict) and isinstance(data.get("feedback"), list):
                items = data["feedback"]
            problems = [
                f"item {i}: needs request_id (a string) and label"
                for i, item in enumerate(items)
                if not isinstance(item, dict) or not isinstance(item.get("request_id"), str) or "label" not in item
            ]
            if problems:
                raise ValidationError("; ".join(problems[:10]), details=problems)
            if name not in self.runtime.revisions:
                self.runtime.get(name)  # 404 listing the known deployments
            labels = {item["request_id"]: item["label"] for item in items}
            known = await run_in_threadpool(self._known_ids, name, list(labels))
            accepted = {rid: label for rid, label in labels.items() if rid in known}
            if accepted:
                await run_in_threadpool(self.store.record_feedback, name, accepted)
            unknown = [item["request_id"] for item in items if item["request_id"] not in known]
            return JSONResponse({"accepted": len(accepted), "unknown": unknown})
        except SteadError as exc:
            return error_response(exc)
        except Exception:
            return internal_error(f"feedback {name}")

    # ------------------------------------------------------------ the Open Inference Protocol (v2), see oip.py
    async def v2_server(self, request: Request) -> Response:
        from stead._version import __version__

        return JSONResponse({"name": "stead", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def v2_model(self, request: Request) -> Response:
        from stead.serving.oip import model_metadata

        name = request.path_params["name"]
        try:
            state = self.runtime.get(name)
        except SteadError as exc:
            return _oip_error(exc)
        primary = state.versions[(state.router.primary.model, state.router.primary.version)]
        versions = sorted({r.version for r in state.router.routes if r.kind != "shadow"})
        return JSONResponse(model_metadata(name, versions, primary.signature))

    async def v2_ready(self, request: Request) -> Response:
        name = request.path_params["name"]
        ready = self.ready and name in self.runtime.states
        return JSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 503)

    async def v2_infer(self, request: Request) -> Response:
        """``POST /v2/models/{name}/infer``: named tensors mapped to signature columns, then the v1 path."""
        from stead.serving.oip import OipError, infer_answer, parse_infer

        started = time.perf_counter()
        name = request.path_params["name"]
        try:
            raw_length = request.headers.get("inference-header-content-length")
            if raw_length is None:
                _content_type_ok(request)
            elif not raw_length.isdigit():
                raise OipError(f"Inference-Header-Content-Length {raw_length!r} is not a number")
            body = await _read_body(request, self._limit(name))
            columns, infer = parse_infer(body, None if raw_length is None else int(raw_length))
            params: Any = infer.get("parameters")
            if not isinstance(params, dict):
                params = {}
            v1: dict[str, Any] = {"inputs": columns}
            if params.get("routing_key") is not None:
                v1["routing_key"] = params["routing_key"]
            state, answer = await self._predict(name, v1, started)
        except SteadError as exc:
            if exc.status_code != 422:
                self.metrics.requests.labels(name, "", "", str(exc.status_code)).inc()
            return _oip_error(exc)
        except Exception:
            self.metrics.requests.labels(name, "", "", "500").inc()
            return internal_error(f"v2 infer {name}")
        extra = answer.pop("_extra")
        result = infer_answer(name, infer, answer, _datatype_of_values(answer["predictions"]))
        task = None
        if extra["shadows"]:
            task = BackgroundTask(self._shadow, state, extra["shadows"], extra["columns"], extra["n"], extra["id"])
        headers = None if extra["logged"] else {"x-stead-logged": "0"}
        return JSONResponse(result, headers=headers, background=task)

    # ------------------------------------------------------------ health and metrics
    async def health_ready(self, request: Request) -> Response:
        if not self.ready:
            return JSONResponse({"ready": False}, status_code=503)
        return JSONResponse({"ready": True, "deployments": sorted(self.runtime.states)})

    async def metrics_endpoint(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)
