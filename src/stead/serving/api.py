"""The ``/api/v1`` REST API, built from the store's route table (layer: serving).

``api_routes(store)`` turns every entry of ``stead.store.routes.ROUTES`` into a Starlette route: path
parameters and the JSON body (or, for GET, JSON-encoded query parameters) become the keyword arguments of
the store method, checked against its signature and type hints (unknown, missing or mistyped arguments get
422 naming the field; a body that is not JSON gets 400); the method runs in the threadpool, so the event
loop is never blocked; its return value goes through the route's codec. Any ``SteadError`` answers its own
``status_code`` and ``to_dict()`` body; anything else answers 500 with a short message and is logged.

Blobs: ``PUT /api/v1/blobs/{digest}`` streams the body to a temporary file, recomputes its sha256 and
refuses a mismatch (422) before storing it; ``GET`` streams a verified blob; ``HEAD`` tells whether it
exists. ``GET /api/v1/info`` describes the server.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import tempfile
import typing
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import pydantic
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from stead._version import __version__
from stead.errors import SteadError, ValidationError
from stead.serving.auth import guard
from stead.store.artifacts import CHUNK
from stead.store.routes import API_PREFIX, BLOB_PATH, CODECS, INFO_PATH, ROUTES, from_wire
from stead.store.routes import Route as StoreRoute

__all__ = ["DEFAULT_BLOB_LIMIT", "BadRequest", "PayloadTooLarge", "api_routes", "error_response", "internal_error"]

log = logging.getLogger("stead.serving")
DEFAULT_BLOB_LIMIT = 5 * 1024**3
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")
Endpoint = Callable[[Request], Awaitable[Response]]


class BadRequest(ValidationError):
    """The request itself is malformed (its body is not JSON, or not an object)."""

    status_code = 400


class PayloadTooLarge(ValidationError):
    """The request body is over the server's limit."""

    status_code = 413


def error_response(exc: SteadError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.status_code)


def internal_error(what: str) -> JSONResponse:
    """Log the current exception and answer 500 with a short message (never a traceback)."""
    log.exception("unexpected error in %s", what)
    return JSONResponse(
        {"error": "internal", "message": f"internal server error in {what}", "hint": "see the server's log"},
        status_code=500,
    )


# -- store methods ----------------------------------------------------------------------------------------


class _Param:
    """One argument of a store method: its type hint, a validator for it, and whether it is required."""

    def __init__(self, name: str, hint: Any, required: bool) -> None:
        self.name = name
        self.hint = hint
        self.required = required
        check_hint = hint
        if typing.get_origin(hint) in (Iterable, typing.Iterable):  # pydantic checks iterables lazily
            (item,) = typing.get_args(hint) or (Any,)
            check_hint = list[item]  # type: ignore[valid-type]
        try:
            self.adapter: pydantic.TypeAdapter[Any] | None = pydantic.TypeAdapter(check_hint)
        except (pydantic.PydanticSchemaGenerationError, TypeError, NameError):
            self.adapter = None

    def problems(self, value: Any) -> list[str]:
        if self.adapter is None:
            return []
        try:
            self.adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            out = []
            for err in exc.errors(include_url=False):
                where = ".".join(str(part) for part in (self.name, *err["loc"]))
                out.append(f"{where}: {err['msg']}")
            return out
        return []

    def convert(self, value: Any) -> Any:
        """Validate and convert (for path parameters, which arrive as text)."""
        if self.adapter is None:
            return value
        return self.adapter.validate_python(value)


class _Method:
    """How to call one store method from a request."""

    def __init__(self, store: Any, op: str, route: StoreRoute) -> None:
        self.op = op
        self.route = route
        self.func = getattr(store, op)
        self.codec = CODECS[route.codec]
        hints = typing.get_type_hints(getattr(type(store), op))
        self.params: dict[str, _Param] = {}
        for name, param in inspect.signature(self.func).parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            self.params[name] = _Param(name, hints.get(name, Any), param.default is param.empty)
        missing = set(route.path_params) - set(self.params)
        if missing:
            raise TypeError(f"route {route.path} of {op} names {sorted(missing)}, which {op} does not take")

    async def arguments(self, request: Request) -> dict[str, Any]:
        raw: dict[str, Any] = {}
        problems: list[str] = []
        if self.route.verb == "GET":
            for key, text in request.query_params.items():
                raw[key] = _query_value(self.params.get(key), text)
        else:
            body = await request.body()
            if body.strip():
                try:
                    data = json.loads(body)
                except (ValueError, UnicodeDecodeError) as exc:
                    raise BadRequest(
                        f"the request body of {self.op} is not JSON: {exc}",
                        hint="send a JSON object with Content-Type: application/json",
                    ) from None
                if not isinstance(data, dict):
                    raise BadRequest(
                        f"the request body of {self.op} must be a JSON object, not {type(data).__name__}",
                        hint='send the arguments as an object, e.g. {"name": ...}',
                    )
                raw.update(data)
        for key in self.route.path_params:
            if key in raw:
                problems.append(f"{key}: given in the path; do not send it in the body")
        unknown = sorted(set(raw) - set(self.params))
        problems.extend(f"{key}: unknown argument of {self.op}" for key in unknown)
        kwargs: dict[str, Any] = {}
        for key, text in request.path_params.items():
            param = self.params[key]
            try:
                kwargs[key] = param.convert(text)
            except pydantic.ValidationError:
                problems.extend(param.problems(text))
        for name, param in self.params.items():
            if name in kwargs or name in self.route.path_params:
                continue
            if name not in raw:
                if param.required:
                    problems.append(f"{name}: missing required argument of {self.op}")
                continue
            value = from_wire(param.hint, raw[name])
            found = param.problems(value)
            if found:
                problems.extend(found)
            else:
                kwargs[name] = value
        if problems:
            raise ValidationError(
                f"invalid arguments for {self.op}: " + "; ".join(problems),
                hint=f"{self.op} takes: {', '.join(self.params)}",
                details=problems,
            )
        return kwargs

    def endpoint(self) -> Endpoint:
        async def handle(request: Request) -> Response:
            try:
                kwargs = await self.arguments(request)
                result = await run_in_threadpool(self.func, **kwargs)
                return JSONResponse(self.codec.encode(result))
            except SteadError as exc:
                return error_response(exc)
            except Exception:
                return internal_error(self.op)

        handle.__name__ = self.op
        return handle


def _query_value(param: _Param | None, text: str) -> Any:
    """A query parameter: JSON when it parses and fits the hint, else the plain text (``?name=iris``)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if param is not None and param.problems(from_wire(param.hint, value)) and not param.problems(text):
        return text
    return value


# -- blobs ------------------------------------------------------------------------------------------------


def _digest_of(request: Request) -> str:
    digest = str(request.path_params["digest"])
    if not _DIGEST_RE.fullmatch(digest):
        raise ValidationError(f"{digest[:80]!r} is not a sha256 digest", hint="a digest is 64 lowercase hex characters")
    return digest


def _blob_endpoints(store: Any, limit: int) -> tuple[Endpoint, Endpoint]:
    artifacts = store.artifacts

    async def put_blob(request: Request) -> Response:
        tmp: str | None = None
        try:
            digest = _digest_of(request)
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(
                    f"blob {digest} has {int(declared)} bytes, over this server's limit of {limit}",
                    hint="raise the server's blob limit (create_app(blob_limit=...))",
                )
            if await run_in_threadpool(artifacts.exists, digest):
                async for _chunk in request.stream():  # drain, so the connection stays usable
                    pass
                return JSONResponse({"digest": digest, "stored": False})
            fd, tmp = tempfile.mkstemp(prefix="stead-upload-")
            hasher = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                pending: list[bytes] = []
                pending_size = 0
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise PayloadTooLarge(f"blob {digest} is over this server's limit of {limit} bytes")
                    hasher.update(chunk)
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= CHUNK:
                        await run_in_threadpool(out.write, b"".join(pending))
                        pending, pending_size = [], 0
                if pending:
                    await run_in_threadpool(out.write, b"".join(pending))
            actual = hasher.hexdigest()
            if actual != digest:
                raise ValidationError(
                    f"the uploaded bytes hash to {actual}, not to {digest} named in the URL; nothing was stored",
                    hint="upload the bytes under their own sha256",
                    details={"digest": digest, "actual": actual, "size": size},
                )
            stored = await run_in_threadpool(artifacts.put_file, tmp)
            return JSONResponse({"digest": stored, "stored": True, "size": size})
        except SteadError as exc:
            return error_response(exc)
        except Exception:
            return internal_error("PUT blob")
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass

    async def get_blob(request: Request) -> Response:
        try:
            digest = _digest_of(request)
            size = await run_in_threadpool(artifacts.size, digest)
            headers = {"content-length": str(size), "content-type": "application/octet-stream"}
            if request.method == "HEAD":
                return Response(headers=headers)
            await run_in_threadpool(artifacts.verify, digest)
            stream = await run_in_threadpool(artifacts.open, digest)
            return StreamingResponse(_read_chunks(stream), headers=headers)
        except SteadError as exc:
            if request.method == "HEAD":
                return Response(status_code=exc.status_code)
            return error_response(exc)
        except Exception:
            return internal_error(f"{request.method} blob")

    return put_blob, get_blob


def _read_chunks(stream: typing.BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := stream.read(CHUNK):
            yield chunk
    finally:
        stream.close()


# -- info -------------------------------------------------------------------------------------------------


def _info_endpoint(store: Any) -> Endpoint:
    async def info(request: Request) -> Response:
        from stead.store.engine import HEAD

        return JSONResponse({"version": __version__, "backend": store.describe(), "schema_revision": HEAD})

    return info


def api_routes(store: Any, *, blob_limit: int = DEFAULT_BLOB_LIMIT) -> list[BaseRoute]:
    """The ``/api/v1`` routes over ``store`` (a SqlStore), each guarded with its role from ``ROUTES``."""
    routes: list[BaseRoute] = []
    for op, spec in ROUTES.items():
        method = _Method(store, op, spec)
        routes.append(guard(Route(API_PREFIX + spec.path, method.endpoint(), methods=[spec.verb], name=op), spec.role))
    put_blob, get_blob = _blob_endpoints(store, blob_limit)
    routes.append(guard(Route(API_PREFIX + BLOB_PATH, put_blob, methods=["PUT"], name="put_blob"), "write"))
    routes.append(guard(Route(API_PREFIX + BLOB_PATH, get_blob, methods=["GET", "HEAD"], name="get_blob"), "read"))
    routes.append(guard(Route(API_PREFIX + INFO_PATH, _info_endpoint(store), methods=["GET"], name="info"), "read"))
    return routes
