"""Entities that cross every boundary: store rows, ``/api/v1`` JSON, ``--json`` output (layer: entities).

Frozen pydantic models; the store returns them, the server serialises them with ``model_dump(mode="json")``
and the HTTP client rebuilds them with ``model_validate``. Also the one ``Ref`` parser used by the SDK,
CLI and HTTP alike, and the name rules every entry point checks.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from stead.errors import ValidationError

__all__ = [
    "NAME_PATTERN",
    "Alert",
    "AliasMove",
    "DatasetUse",
    "DatasetVersion",
    "Deployment",
    "DeploymentRevision",
    "Experiment",
    "LineageGraph",
    "MetricPoint",
    "ModelVersion",
    "Ref",
    "Route",
    "Run",
    "RunList",
    "check_alias",
    "check_key",
    "check_name",
]

RunStatus = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]
RUN_STATUSES: tuple[str, ...] = ("RUNNING", "FINISHED", "FAILED", "KILLED")
VersionState = Literal["candidate", "approved", "rejected", "serving", "retired"]
VERSION_STATES: tuple[str, ...] = ("candidate", "approved", "rejected", "serving", "retired")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)
# Param, metric and tag keys: MLflow's rule (letters, digits, _ - . space /) minus anything that can escape
# a path; '/' is allowed inside keys (e.g. "train/loss") but not '..' segments or leading '/'.
KEY_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\- /:]{0,249}$"
_KEY_RE = re.compile(KEY_PATTERN)


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_name(value: object, what: str = "name") -> str:
    """Validate a model, deployment or experiment name; return it unchanged.

    >>> check_name("churn-v2")
    'churn-v2'
    """
    if not isinstance(value, str) or not _NAME_RE.match(value) or ".." in value:
        shown = repr(value) if not isinstance(value, str) or len(value) < 60 else repr(value[:57] + "...")
        raise ValidationError(
            f"{what} {shown} is not allowed: use 1-128 letters, digits, '_', '.' or '-', starting with a letter "
            f"or digit (pattern {NAME_PATTERN}), with no '..'",
            hint=f"for example: {what.split()[-1]} 'churn'",
        )
    return value


def check_alias(value: object) -> str:
    """Validate an alias: a name that is not all digits (``NAME@3`` means version 3)."""
    alias = check_name(value, "alias")
    if alias.isdigit():
        raise ValidationError(
            f"alias {alias!r} is all digits, which would read as a version number in NAME@{alias}",
            hint="use a word, e.g. 'champion' or 'challenger'",
        )
    return alias


def check_key(value: object, what: str, run_id: str | None = None) -> str:
    """Validate a param, metric or tag key."""
    where = f" of run {run_id}" if run_id else ""
    if not isinstance(value, str):
        raise ValidationError(f"{what} key{where} must be a string, got {type(value).__name__}")
    parts = value.split("/")
    if not _KEY_RE.match(value) or any(p in ("", ".", "..") for p in parts):
        shown = repr(value if len(value) < 60 else value[:57] + "...")
        raise ValidationError(
            f"{what} key {shown}{where} is not allowed: use at most 250 letters, digits, '_', '-', '.', ' ', ':' "
            "or '/' (no empty, '.' or '..' segments, no newline)",
            hint=f"for example: {what} 'train/loss'",
        )
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Experiment(_Frozen):
    id: int
    name: str
    created_at: datetime


class DatasetUse(_Frozen):
    dataset_id: str
    role: str
    name: str


class ModelVersionRef(_Frozen):
    name: str
    version: int


class Run(_Frozen):
    """A tracked run as the store sees it."""

    id: str
    experiment: str
    name: str | None = None
    status: RunStatus
    start_time: datetime
    end_time: datetime | None = None
    heartbeat_at: datetime | None = None
    seed: int | None = None
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    env: dict[str, Any] = Field(default_factory=dict)
    inputs: list[DatasetUse] = Field(default_factory=list)
    outputs: list[ModelVersionRef] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict)
    error: str | None = None


class RunList(list[Run]):
    """A page of runs; ``next_page_token`` is set when there are more."""

    next_page_token: str | None = None


class MetricPoint(_Frozen):
    key: str
    value: float
    step: int = 0
    timestamp: float


class DatasetVersion(_Frozen):
    """A dataset version; ``id`` is the hash of its content."""

    id: str
    name: str
    rows: int
    columns: int
    schema_: list[dict[str, Any]] = Field(default_factory=list, alias="schema")
    profile: dict[str, Any] = Field(default_factory=dict)
    data_digest: str | None = None
    sample_digest: str | None = None
    source: str | None = None
    created_at: datetime

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def schema(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.schema_


class ModelVersion(_Frozen):
    name: str
    version: int
    state: VersionState = "candidate"
    aliases: list[str] = Field(default_factory=list)
    run_id: str | None = None
    flavor: str
    signature: dict[str, Any] = Field(default_factory=dict)
    manifest: dict[str, str] = Field(default_factory=dict)
    requirements: list[str] = Field(default_factory=list)
    allow_pickle: bool = False
    gate_results: list[dict[str, Any]] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    state_reason: str | None = None
    created_at: datetime
    created_by: str | None = None


class AliasMove(_Frozen):
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None = None
    at: datetime
    outcome: Literal["moved", "conflict", "deleted"] = "moved"


class Alert(_Frozen):
    id: int
    rule: str
    deployment: str
    opened_at: datetime
    resolved_at: datetime | None = None
    acknowledged: bool = False
    details: dict[str, Any] = Field(default_factory=dict)


# ---- deployments (issue 5)
RouteKind = Literal["primary", "canary", "ab", "shadow"]
ROUTE_KINDS: tuple[str, ...] = ("primary", "canary", "ab", "shadow")


class Route(_Frozen):
    """One route of a deployment: which version gets what share of the traffic, and how it is chosen.

    ``weight`` is the share (0-1) of requests for ``primary``, ``canary`` and ``ab`` routes (they add up to 1);
    for ``shadow`` it is the share of requests copied to it after the answer is sent.
    """

    model: str
    version: int
    kind: RouteKind
    weight: float


class DeploymentRevision(_Frozen):
    """One stored set of routes of a deployment, with who changed it, why, when and how."""

    deployment: str
    revision: int
    routes: list[Route]
    actor: str
    reason: str | None = None
    source: str
    at: datetime


class Deployment(_Frozen):
    """A deployment's current routes (``revision`` is the latest stored revision) and, when asked, history."""

    name: str
    model: str
    revision: int
    routes: list[Route]
    created_at: datetime
    updated_at: datetime
    history: list[DeploymentRevision] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)


class LineageGraph(_Frozen):
    nodes: list[dict[str, str]] = Field(default_factory=list)
    edges: list[dict[str, str]] = Field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": list(self.nodes), "edges": list(self.edges)}


RefKind = Literal["version", "alias", "run", "dataset", "deployment"]


class Ref(_Frozen):
    """A reference to a stored object, parsed from ``NAME@ALIAS``, ``NAME/N``, ``NAME@N``, ``run:ID``,
    ``dataset:ID`` or ``deployment:NAME``.

    >>> Ref.parse("churn@champion")
    Ref(kind='alias', name='churn', version=None, alias='champion', id=None)
    >>> Ref.parse("churn/3").version
    3
    >>> Ref.parse("churn@3").kind
    'version'
    """

    kind: RefKind
    name: str | None = None
    version: int | None = None
    alias: str | None = None
    id: str | None = None

    @classmethod
    def parse(cls, text: str) -> Ref:
        if not isinstance(text, str) or not text:
            raise ValidationError(
                f"reference {text!r} is empty",
                hint="use NAME@ALIAS, NAME/VERSION, run:ID, dataset:ID or deployment:NAME",
            )
        for prefix in ("run:", "dataset:", "deployment:"):
            if text.startswith(prefix):
                ident = text[len(prefix) :]
                kind = prefix[:-1]
                if kind == "deployment":
                    return cls(kind="deployment", name=check_name(ident, "deployment name"))
                if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", ident):
                    raise ValidationError(f"{kind} id {ident!r} in reference {text!r} is not a valid id")
                return cls(kind=kind, id=ident)
        if "@" in text:
            name, _, tail = text.partition("@")
            check_name(name, "model name")
            if tail.isdigit():
                return cls(kind="version", name=name, version=int(tail))
            return cls(kind="alias", name=name, alias=check_alias(tail))
        if "/" in text:
            name, _, tail = text.partition("/")
            check_name(name, "model name")
            if not tail.isdigit() or int(tail) < 1:
                raise ValidationError(
                    f"reference {text!r}: the version after '/' must be a positive integer, got {tail!r}",
                    hint=f"use {name}/1 or {name}@champion",
                )
            return cls(kind="version", name=name, version=int(tail))
        raise ValidationError(
            f"reference {text!r} is not one of NAME@ALIAS, NAME/VERSION, run:ID, dataset:ID, deployment:NAME",
            hint=f"for a model write {text}@champion or {text}/1",
        )

    def __str__(self) -> str:
        if self.kind == "version":
            return f"{self.name}/{self.version}"
        if self.kind == "alias":
            return f"{self.name}@{self.alias}"
        if self.kind == "deployment":
            return f"deployment:{self.name}"
        return f"{self.kind}:{self.id}"


def encode_float(value: float) -> float | str:
    """JSON has no NaN/inf: encode them as strings (used by the API and --json)."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
