"""Bearer-token auth for ``stead serve`` (layer: serving).

Tokens come from the settings (``STEAD_TOKENS`` / ``STEAD_TOKENS_FILE``: ``token → role``); roles rank
``read`` < ``write`` < ``admin``. A request sends ``Authorization: Bearer <token>``. A missing or unknown
token gets 401 (with ``WWW-Authenticate: Bearer``), a token whose role is too low 403, both as the usual
JSON error body. With no tokens configured everything is open (the server then refuses to bind anything but
loopback, see ``app.run_server``). Reads are open unless ``STEAD_AUTH_READS=1``; predict and feedback are
open unless ``STEAD_AUTH_PREDICT=1`` (then they need ``read``); health routes are always open.

Each route declares its access with ``guard(route, access)``; a route that declares nothing needs ``read``
for GET/HEAD/OPTIONS and ``write`` for anything else. ``AuthMiddleware`` (pure ASGI) finds the route a
request matches, checks the token, and leaves the caller's role in ``request.state.role`` (None when open
and no token was sent) for handlers that need finer checks (``require_role``).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from stead.errors import AuthError, ForbiddenError
from stead.settings import Settings

__all__ = ["Access", "AuthMiddleware", "Authenticator", "guard", "require_role"]

Access = Literal["open", "predict", "read", "write", "admin"]
RANK = {"read": 1, "write": 2, "admin": 3}
_ACCESS_ATTR = "stead_access"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def guard(route: BaseRoute, access: Access) -> BaseRoute:
    """Declare the access a route needs (``open`` routes never ask for a token); returns the route."""
    setattr(route, _ACCESS_ATTR, access)
    return route


def access_of(route: BaseRoute, method: str) -> Access:
    declared: Access | None = getattr(route, _ACCESS_ATTR, None)
    if declared is not None:
        return declared
    return "read" if method in _READ_METHODS else "write"


class Authenticator:
    """Checks a request's bearer token against the configured tokens, in constant time."""

    def __init__(self, settings: Settings) -> None:
        self._tokens = [(token.encode(), role) for token, role in settings.tokens.items()]
        self.auth_reads = settings.auth_reads
        self.auth_predict = settings.auth_predict

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def role_of(self, presented: str) -> str | None:
        """The role of ``presented``, comparing against every known token (no early exit)."""
        wanted = presented.encode()
        found: str | None = None
        for token, role in self._tokens:
            if hmac.compare_digest(wanted, token):
                found = role
        return found

    def needed(self, access: Access) -> str | None:
        """The least role ``access`` needs under this configuration, or None when it is open."""
        if not self._tokens or access == "open":
            return None
        if access == "predict":
            return "read" if self.auth_predict else None
        if access == "read":
            return "read" if self.auth_reads else None
        return access

    def check(self, authorization: str | None, access: Access) -> str | None:
        """The caller's role (None when open and no token came); AuthError / ForbiddenError otherwise."""
        presented = _bearer(authorization)
        role = self.role_of(presented) if presented is not None and self._tokens else None
        needed = self.needed(access)
        if needed is None:
            return role
        if presented is None:
            raise AuthError(
                f"this request needs a token with the {needed!r} role",
                hint="send 'Authorization: Bearer <token>' (the SDK and CLI send STEAD_TOKEN)",
            )
        if role is None:
            raise AuthError("unknown token", hint="check STEAD_TOKEN against the server's STEAD_TOKENS")
        if RANK[role] < RANK[needed]:
            raise ForbiddenError(
                f"this request needs the {needed!r} role; the token has {role!r}",
                hint=f"ask an admin for a token with the {needed!r} role",
            )
        return role


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def error_response(exc: AuthError) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"}
    if isinstance(exc, ForbiddenError):
        headers["www-authenticate"] = 'Bearer error="insufficient_scope"'
    return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=headers)


class AuthMiddleware:
    """Pure-ASGI middleware: match the route, check the token, answer 401/403 or pass the request on."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.authenticator = authenticator
        self.routes = routes

    def _access(self, scope: Scope) -> Access:
        method = str(scope.get("method", "GET"))
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return access_of(route, method)
        return "read" if method in _READ_METHODS else "write"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization: str | None = None
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            role = self.authenticator.check(authorization, self._access(scope))
        except AuthError as exc:
            await error_response(exc)(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["role"] = role
        await self.app(scope, receive, send)


def require_role(request: Request, role: str) -> None:
    """For handlers that need more than their route declares (e.g. an admin-only flag): raise unless allowed.

    With no tokens configured everything is allowed.
    """
    authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None or not authenticator.enabled:
        return
    have = getattr(request.state, "role", None)
    if have is None:
        raise AuthError(f"this needs a token with the {role!r} role", hint="send 'Authorization: Bearer <token>'")
    if RANK[have] < RANK[role]:
        raise ForbiddenError(f"this needs the {role!r} role; the token has {have!r}")
