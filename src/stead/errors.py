"""The one error tree of stead (layer: errors, the bottom; imports nothing of stead).

Every error carries a ``headline`` (printed by the CLI), a ``hint`` (the fix, one line) and a
``status_code`` (used by the HTTP server). The SDK, CLI and server raise and render the same classes.

::

    SteadError                      the root; never raised itself
    ├── ValidationError             bad input: a name, a value, a file (422 / exit 1)
    │   └── ConfigError             stead.yaml or settings are wrong
    ├── NotFoundError               no such run, model, alias, deployment (404)
    ├── ConflictError               a compare-and-set lost, or a state forbids the change (409)
    ├── IntegrityError              stored bytes do not match their recorded hash (500)
    ├── StoreError                  the store cannot be opened or migrated (500)
    │   └── SchemaTooNewError       the store was written by a newer stead
    ├── AuthError                   missing or unknown token (401)
    │   └── ForbiddenError          the token's role is too low (403)
    ├── MissingDependency           an optional extra is not installed
    └── RemoteError                 the server answered with an error we cannot map
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthError",
    "ConfigError",
    "ConflictError",
    "ForbiddenError",
    "IntegrityError",
    "MissingDependency",
    "NotFoundError",
    "RemoteError",
    "SchemaTooNewError",
    "SteadError",
    "StoreError",
    "ValidationError",
]


class SteadError(Exception):
    """The root of every error stead raises on purpose."""

    headline = "stead error"
    status_code = 500
    code = "internal"

    def __init__(self, message: str, *, hint: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the server answers with, and the HTTP client turns back into this class."""
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.details is not None:
            body["details"] = self.details
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ValidationError(SteadError):
    """Raised when input (an argument, a request body, a name, a file) is not acceptable."""

    headline = "invalid input"
    status_code = 422
    code = "invalid"


class ConfigError(ValidationError):
    """Raised when stead.yaml or a STEAD_* setting is wrong."""

    headline = "invalid configuration"
    code = "config"


class NotFoundError(SteadError):
    """Raised when a run, dataset, model, version, alias or deployment does not exist."""

    headline = "not found"
    status_code = 404
    code = "not_found"


class ConflictError(SteadError):
    """Raised when a compare-and-set lost a race or the object's state forbids the change."""

    headline = "conflict"
    status_code = 409
    code = "conflict"


class IntegrityError(SteadError):
    """Raised when stored bytes do not match the hash recorded for them."""

    headline = "integrity check failed"
    status_code = 500
    code = "integrity"


class StoreError(SteadError):
    """Raised when the store cannot be opened, migrated or reached."""

    headline = "store unavailable"
    status_code = 500
    code = "store"


class SchemaTooNewError(StoreError):
    """Raised when the store's schema was written by a newer stead than this one."""

    headline = "store is newer than this stead"
    code = "schema_too_new"


class AuthError(SteadError):
    """Raised when a write (or a closed read) comes without a known token."""

    headline = "authentication required"
    status_code = 401
    code = "unauthenticated"


class ForbiddenError(AuthError):
    """Raised when the token is known but its role is too low."""

    headline = "forbidden"
    status_code = 403
    code = "forbidden"


class MissingDependency(SteadError):
    """Raised when a feature needs an optional extra that is not installed."""

    headline = "missing optional dependency"
    status_code = 500
    code = "missing_dependency"


class RemoteError(SteadError):
    """Raised when a stead server answers with an error that maps to no other class."""

    headline = "server error"
    code = "remote"


_BY_CODE: dict[str, type[SteadError]] = {
    cls.code: cls
    for cls in (
        SteadError,
        ValidationError,
        ConfigError,
        NotFoundError,
        ConflictError,
        IntegrityError,
        StoreError,
        SchemaTooNewError,
        AuthError,
        ForbiddenError,
        MissingDependency,
        RemoteError,
    )
}


def from_dict(body: dict[str, Any], status_code: int) -> SteadError:
    """Rebuild the error a server sent (see ``SteadError.to_dict``)."""
    cls = _BY_CODE.get(str(body.get("error", "")), RemoteError)
    message = str(body.get("message") or body.get("detail") or f"server answered {status_code}")
    return cls(message, hint=body.get("hint"), details=body.get("details"))


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or raise ``MissingDependency`` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingDependency(
            f"this feature needs the '{module}' package, which is not installed",
            hint=f"pip install 'stead[{extra}]'",
        ) from exc
