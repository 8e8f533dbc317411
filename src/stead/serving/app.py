"""The ``stead serve`` application: Starlette app factory and server runner (layer: serving).

``create_app(settings, store=None, extra_routes=())`` mounts the ``/api/v1`` REST API and
``GET /v2/health/live`` behind the token middleware (``auth.py``); later work (predict, metrics, UI) passes
its routes as ``extra_routes``, each declaring its access with ``auth.guard``. ``create_app_from_env()``
is the factory ``uvicorn --workers N --factory`` imports in each worker. ``run_server`` refuses an open
server on a non-loopback address, prints one line and runs uvicorn; SIGTERM drains and exits 0.

``python -m stead.serving.app [--host H] [--port P]`` serves the store ``STEAD_URI`` names, without the CLI.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from stead.errors import ConfigError, SteadError
from stead.serving.api import DEFAULT_BLOB_LIMIT, api_routes, error_response, internal_error
from stead.serving.auth import Authenticator, AuthMiddleware, guard
from stead.settings import Settings

__all__ = ["create_app", "create_app_from_env", "is_loopback", "run_server"]

FACTORY = "stead.serving.app:create_app_from_env"


async def _live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        body = {"error": "not_found", "message": f"no route {request.method} {request.url.path}"}
    elif exc.status_code == 405:
        body = {"error": "invalid", "message": f"{request.method} is not allowed on {request.url.path}"}
    else:
        body = {"error": "invalid" if exc.status_code < 500 else "internal", "message": str(exc.detail)}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _stead_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SteadError)
    return error_response(exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return internal_error(f"{request.method} {request.url.path}")


def _open_server_store(settings: Settings) -> Any:
    if settings.backend == "http":
        raise ConfigError(
            f"STEAD_URI {settings.uri!r} is a stead server; `stead serve` needs a folder or a postgresql:// store",
            hint="export STEAD_URI=./.stead  (or postgresql://…) on the machine that runs stead serve",
        )
    from stead.store import open_store

    return open_store(settings)


def create_app(
    settings: Settings,
    store: Any = None,
    extra_routes: Iterable[BaseRoute] = (),
    *,
    blob_limit: int = DEFAULT_BLOB_LIMIT,
    exit_fast: bool = False,
) -> Starlette:
    """The ASGI app: ``/api/v1`` over ``store`` (opened from ``settings`` when None), health, ``extra_routes``.

    ``exit_fast`` (a ``--workers N`` worker process): once the lifespan has drained, flushed and closed
    everything, the process ends at exit without CPython's finalization (see ``exit_now``).
    """
    owned = store is None
    if store is None:
        store = _open_server_store(settings)
    # ---- prediction serving (issue 5): predict, feedback, KServe v1, readiness, /metrics; started by the lifespan
    from stead.serving.predict import PredictionService

    service = PredictionService(settings, store)
    routes: list[BaseRoute] = [
        guard(Route("/v2/health/live", _live, methods=["GET"], name="health_live"), "open"),
        *service.routes(),  # first: the router and the auth middleware match routes in order, predict is hot
        *api_routes(store, blob_limit=blob_limit),
        *extra_routes,
    ]
    # ---- MLflow-compatible API (issue 10): /api/2.0/mlflow, /ajax-api/2.0/mlflow and the artifact proxy
    from stead.serving.mlflow_api import mlflow_routes

    routes += mlflow_routes(store, settings)
    authenticator = Authenticator(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with service.running():
                yield
        finally:
            if owned:
                store.close()
            if exit_fast:
                atexit.register(exit_now, 0)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(AuthMiddleware, authenticator=authenticator, routes=routes)],
        exception_handlers={HTTPException: _http_error, SteadError: _stead_error, Exception: _unexpected},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.authenticator = authenticator
    app.state.predictions = service
    return app


def create_app_from_env() -> Starlette:
    """``create_app`` with settings re-read from the environment (the factory each uvicorn worker calls)."""
    return create_app(Settings.from_env(), exit_fast=True)


def exit_now(code: int = 0) -> None:
    """End the process at once, once everything it owns is drained, flushed and closed.

    CPython's finalization (tearing down the modules of numpy, pandas, pyarrow and scikit-learn) took 1.5 to
    4.5 s on a loaded machine after a shutdown that had itself finished in 40 ms; that was the slow
    ``SIGTERM``. Nothing is left to finalize then, so the server skips it, as gunicorn's workers do.
    """
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def listening_socket(host: str, port: int) -> socket.socket:
    """The listening socket the ``--workers N`` supervisor shares with its workers.

    uvicorn's own (``Config.bind_socket``) leaves ``proto`` at 0, and asyncio turns ``TCP_NODELAY`` on only for
    accepted sockets whose ``proto`` is ``IPPROTO_TCP``: Nagle's algorithm then delays every keep-alive
    response by the peer's delayed ACK, about 40 ms (uvicorn issue 3149). This one is made with
    ``IPPROTO_TCP`` and has ``TCP_NODELAY`` set itself (Linux passes it on to accepted sockets).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def run_server(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    controller: bool = True,
    insecure: bool = False,
    extra_routes: Iterable[BaseRoute] = (),
    factory: str = FACTORY,
) -> None:
    """Serve until SIGTERM or Ctrl-C. ``controller`` says whether the caller (the CLI, the composition root)
    runs the controller beside the server; the serving layer itself never imports it.

    With ``workers > 1`` each worker re-reads its settings from the environment (``create_app_from_env``), and
    the workers share a listening socket made with ``TCP_NODELAY`` (``listening_socket``). ``STEAD_LOOP``
    chooses the event loop: ``auto`` (uvloop when installed), ``asyncio`` or ``uvloop``. ``extra_routes`` (one
    worker) and ``factory`` (the ``module:function`` each of several workers calls) let the caller add routes,
    such as the web UI the CLI mounts.
    """
    import uvicorn

    if not settings.tokens and not insecure and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} with no tokens configured: anyone who can reach it could write",
            hint="set STEAD_TOKENS='token:admin,…' (or STEAD_TOKENS_FILE), or pass --insecure to serve it open",
        )
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    loop = os.environ.get("STEAD_LOOP") or "auto"  # uvloop when installed (uvicorn[standard]); or asyncio
    store = _open_server_store(settings)  # opens and migrates once, before any worker starts
    where = f"[{host}]" if ":" in host else host
    print(f"stead serving {store.describe()} on http://{where}:{port} (api: /api/v1)", flush=True)
    # uvicorn re-raises the SIGTERM it handled once it has drained; with a handler of ours in place, that
    # second delivery is a no-op and the process ends with status 0.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        if workers == 1:
            app = create_app(settings, store, extra_routes)
            uvicorn.run(app, host=host, port=port, log_level="warning", loop=loop)
        else:
            from uvicorn.supervisors import Multiprocess

            store.close()
            os.environ["STEAD_WORKERS"] = str(workers)  # each worker sizes its prediction threads to its share
            config = uvicorn.Config(
                factory, factory=True, host=host, port=port, workers=workers, log_level="warning", loop=loop
            )
            Multiprocess(config, sockets=[listening_socket(host, port)]).run()
    finally:
        if workers == 1:
            store.close()
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m stead.serving.app``: serve ``STEAD_URI`` (for tests and containers without the CLI)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m stead.serving.app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args(argv)
    try:
        run_server(Settings.from_env(), host=args.host, port=args.port, workers=args.workers, insecure=args.insecure)
    except SteadError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    exit_now(0)  # drained, flushed and closed: see exit_now
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
