"""Settings: one typed object resolved from STEAD_* variables (layer: settings).

Nothing reads the environment at import time; call ``Settings.from_env()`` once at the edge (the CLI,
``stead.Client()``, ``stead.start_run()``) and pass the object down.

Variables (type, default):

- ``STEAD_URI`` (str, ``./.stead``): a folder (embedded SQLite + artifacts), ``postgresql://…`` or
  ``http(s)://host:port`` (a running ``stead serve``).
- ``STEAD_ARTIFACTS`` (str): the artifact root, any fsspec URL or folder. Default: ``<folder>/artifacts``
  for a folder store; required for a ``postgresql://`` store.
- ``STEAD_TOKEN`` (str, none): bearer token a client sends to a server.
- ``STEAD_TOKENS`` (str, none): the server's tokens, ``"tokenA:admin,tokenB:read"``.
- ``STEAD_TOKENS_FILE`` (path, none): lines of ``token role``.
- ``STEAD_AUTH_READS`` (bool, false): reads need a ``read`` token.
- ``STEAD_AUTH_PREDICT`` (bool, false): predict and feedback need a ``read`` token.
- ``STEAD_HEARTBEAT_TIMEOUT`` (float seconds, 60): a RUNNING run silent for longer becomes FAILED.
- ``STEAD_USER`` (str, the OS user): who is recorded in audit rows.
- ``STEAD_MLFLOW_ALLOW_PICKLE`` (bool, false): every model uploaded through the MLflow API gets the audited
  opt-in to load with pickle (otherwise an admin gives it per version: ``stead models trust``).
- ``STEAD_REPRODUCE_OF`` (run id, none): set by ``stead reproduce`` for the process it launches; runs of
  the original's experiment link to it, reuse its seed and refuse datasets whose content changed.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from stead.errors import ConfigError

__all__ = ["Settings"]

Backend = Literal["folder", "postgresql", "http"]
ROLES = ("read", "write", "admin")


def _bool(name: str, raw: str | None) -> bool:
    if raw is None or raw == "":
        return False
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected a boolean (1/0, true/false), got {raw!r}", hint=f"export {name}=1")


def _float(name: str, raw: str | None, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {raw!r}", hint=f"export {name}=60") from None
    if not value > 0:
        raise ConfigError(f"{name}: expected a positive number of seconds, got {raw!r}", hint=f"export {name}=60")
    return value


def parse_tokens(raw: str, source: str) -> dict[str, str]:
    """Parse ``token:role`` pairs (comma or newline separated) into ``{token: role}``."""
    tokens: dict[str, str] = {}
    for n, item in enumerate(raw.replace("\n", ",").split(","), start=1):
        item = item.strip()
        if not item or item.startswith("#"):
            continue
        token, sep, role = item.replace(" ", ":", 1).partition(":") if ":" not in item else item.partition(":")
        token, role = token.strip(), role.strip()
        if not sep or not token or role not in ROLES:
            raise ConfigError(
                f"{source}: entry {n} must be 'token:role' with a role in {', '.join(ROLES)}, got {item[:40]!r}",
                hint="STEAD_TOKENS='tokenA:admin,tokenB:read'",
            )
        tokens[token] = role
    return tokens


@dataclass(frozen=True)
class Settings:
    """Where the store lives and how to reach it; built once, passed explicitly."""

    uri: str = "./.stead"
    artifacts: str | None = None
    token: str | None = None
    tokens: Mapping[str, str] = field(default_factory=dict)
    auth_reads: bool = False
    auth_predict: bool = False
    heartbeat_timeout: float = 60.0
    user: str = "unknown"
    reproduce_of: str | None = None
    mlflow_allow_pickle: bool = False  # STEAD_MLFLOW_ALLOW_PICKLE (issue 10)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, uri: str | None = None) -> Settings:
        env = os.environ if environ is None else environ
        tokens: dict[str, str] = {}
        if env.get("STEAD_TOKENS"):
            tokens.update(parse_tokens(env["STEAD_TOKENS"], "STEAD_TOKENS"))
        if env.get("STEAD_TOKENS_FILE"):
            path = Path(env["STEAD_TOKENS_FILE"])
            try:
                text = path.read_text()
            except OSError as exc:
                raise ConfigError(
                    f"STEAD_TOKENS_FILE: cannot read {str(path)!r}: {exc.strerror}",
                    hint="point STEAD_TOKENS_FILE at a file of 'token role' lines",
                ) from None
            tokens.update(parse_tokens(text, "STEAD_TOKENS_FILE"))
        try:
            default_user = getpass.getuser()
        except (KeyError, OSError):
            default_user = "unknown"
        settings = cls(
            uri=uri or env.get("STEAD_URI") or "./.stead",
            artifacts=env.get("STEAD_ARTIFACTS") or None,
            token=env.get("STEAD_TOKEN") or None,
            tokens=tokens,
            auth_reads=_bool("STEAD_AUTH_READS", env.get("STEAD_AUTH_READS")),
            auth_predict=_bool("STEAD_AUTH_PREDICT", env.get("STEAD_AUTH_PREDICT")),
            heartbeat_timeout=_float("STEAD_HEARTBEAT_TIMEOUT", env.get("STEAD_HEARTBEAT_TIMEOUT"), 60.0),
            user=env.get("STEAD_USER") or default_user,
            reproduce_of=env.get("STEAD_REPRODUCE_OF") or None,
            mlflow_allow_pickle=_bool("STEAD_MLFLOW_ALLOW_PICKLE", env.get("STEAD_MLFLOW_ALLOW_PICKLE")),
        )
        settings.check()
        return settings

    @property
    def backend(self) -> Backend:
        lowered = self.uri.lower()
        if lowered.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            return "postgresql"
        if lowered.startswith(("http://", "https://")):
            return "http"
        return "folder"

    def check(self) -> None:
        """Refuse settings that cannot work, naming the variable and the fix."""
        if "://" in self.uri and self.backend == "folder" and not self.uri.lower().startswith("file://"):
            scheme = self.uri.split("://", 1)[0]
            raise ConfigError(
                f"STEAD_URI: unknown scheme {scheme!r} in {self.uri!r}; expected a folder, postgresql:// or http://",
                hint="export STEAD_URI=./.stead  (or postgresql://user@host/db, or http://127.0.0.1:8000)",
            )
        if self.backend == "postgresql" and not self.artifacts:
            raise ConfigError(
                "STEAD_ARTIFACTS: a postgresql:// store needs an artifact root",
                hint="export STEAD_ARTIFACTS=/srv/stead-artifacts  (or s3://bucket/prefix)",
            )

    @property
    def folder(self) -> Path:
        """The store folder of an embedded store."""
        uri = self.uri[len("file://") :] if self.uri.lower().startswith("file://") else self.uri
        return Path(uri).expanduser()

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the metadata database."""
        if self.backend == "folder":
            return f"sqlite:///{(self.folder / 'stead.db').resolve()}"
        if self.backend == "postgresql":
            rest = self.uri.split("://", 1)[1]
            return f"postgresql+psycopg://{rest}"
        raise ConfigError(f"STEAD_URI {self.uri!r} is a server, not a database")

    @property
    def artifact_root(self) -> str:
        if self.artifacts:
            return self.artifacts
        return str((self.folder / "artifacts").resolve())

    def with_uri(self, uri: str) -> Settings:
        from dataclasses import replace

        return replace(self, uri=uri, artifacts=None if uri != self.uri else self.artifacts)
