"""Deployments: routes (primary, canary, sticky A/B, shadow), promote, rollback, history, and reading the
prediction log (layer: deployments; store writes only, no web framework).

A deployment is a named set of routes, each pinning a model version (an alias is resolved when deploying).
Every change is a new stored revision with who, why and when, written compare-and-set on the revision read,
so concurrent changes never interleave. ``canary`` and ``ab`` are percentages of the traffic (0-100,
exclusive): a canary is chosen per request, an A/B route sticky on the request's ``routing_key``; a shadow
gets a copy of every request after the answer is sent.

>>> plan_routes([], "churn", 1)
[{'model': 'churn', 'version': 1, 'kind': 'primary', 'weight': 1.0}]
>>> now = plan_routes([], "churn", 1)
>>> [(r["version"], r["kind"], r["weight"]) for r in plan_routes(now, "churn", 2, canary=10)]
[(1, 'primary', 0.9), (2, 'canary', 0.1)]
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stead.entities import Deployment, DeploymentRevision, ModelVersion, Ref
from stead.errors import ConflictError, ValidationError

if TYPE_CHECKING:
    import pandas as pd

    from stead.store.sql import SqlStore

__all__ = [
    "PREDICTION_COLUMNS",
    "deploy",
    "get_deployment",
    "labelled_counts",
    "labelled_predictions",
    "list_deployments",
    "plan_routes",
    "promote",
    "read_predictions",
    "rollback",
]

ATTEMPTS = 3
# The fixed columns of the prediction log (then ``inputs.<column>`` and ``outputs.<name>``).
PREDICTION_COLUMNS = ("request_id", "time", "model", "version", "route", "latency_ms", "label")


def _share(value: float | None, flag: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < float(value) < 100:
        raise ValidationError(
            f"{flag} must be a percentage above 0 and below 100, got {value!r}",
            hint=f"for example {flag} 10; deploy with no flag to send all traffic to one version",
        )
    return round(float(value) / 100.0, 6)


def plan_routes(
    current: Sequence[dict[str, Any]],
    model: str,
    version: int,
    canary: float | None = None,
    ab: float | None = None,
    shadow: bool = False,
) -> list[dict[str, Any]]:
    """The routes after deploying ``model/version`` onto ``current`` (pure).

    No flag: that version alone. ``canary`` / ``ab`` (percent): it takes that share beside the current
    primary, replacing any canary or A/B route; the shadow stays. ``shadow``: it replaces the shadow route and
    the rest stays.

    >>> base = plan_routes([], "m", 1)
    >>> [(r["version"], r["kind"]) for r in plan_routes(plan_routes(base, "m", 2, ab=50), "m", 3, shadow=True)]
    [(1, 'primary'), (2, 'ab'), (3, 'shadow')]
    >>> plan_routes(base, "m", 1, canary=10)
    Traceback (most recent call last):
    ...
    stead.errors.ValidationError: m/1 is already the primary of this deployment: a canary of it would change nothing
    """
    flags = [name for name, on in (("canary", canary is not None), ("ab", ab is not None), ("shadow", shadow)) if on]
    if len(flags) > 1:
        raise ValidationError(
            f"choose one of canary, ab and shadow per deploy, got {' and '.join(flags)}",
            hint="deploy twice to combine routes, e.g. a canary and then a shadow",
        )
    c_share, ab_share = _share(canary, "--canary"), _share(ab, "--ab")
    if not flags:
        return [{"model": model, "version": version, "kind": "primary", "weight": 1.0}]
    primary = next((dict(r) for r in current if r["kind"] == "primary"), None)
    if primary is None:
        raise ValidationError(
            f"a {flags[0]} route needs a primary to sit beside, and this deployment has none yet",
            hint=f"deploy a primary first: stead deploy {model}/{version} --to DEPLOYMENT",
        )
    if (primary["model"], primary["version"]) == (model, version):
        raise ValidationError(
            f"{model}/{version} is already the primary of this deployment: a {flags[0]} of it would change nothing"
        )
    if shadow:
        kept = [dict(r) for r in current if r["kind"] != "shadow"]
        return [*kept, {"model": model, "version": version, "kind": "shadow", "weight": 1.0}]
    share = c_share if c_share is not None else ab_share
    assert share is not None
    primary["weight"] = round(1.0 - share, 6)
    kind = "canary" if c_share is not None else "ab"
    shadows = [dict(r) for r in current if r["kind"] == "shadow"]
    return [primary, {"model": model, "version": version, "kind": kind, "weight": share}, *shadows]


def _current(store: SqlStore, name: str) -> Deployment | None:
    from stead.errors import NotFoundError

    try:
        return store.get_deployment(name, history=0)
    except NotFoundError:
        return None


def _routes(d: Deployment | None) -> list[dict[str, Any]]:
    return [] if d is None else [r.model_dump() for r in d.routes]


def _resolve(store: SqlStore, ref: str | Ref | ModelVersion) -> ModelVersion:
    if isinstance(ref, ModelVersion):
        return ref
    parsed = Ref.parse(ref) if isinstance(ref, str) else ref
    if parsed.kind not in ("version", "alias"):
        raise ValidationError(f"{ref} is not a model reference", hint="deploy NAME@ALIAS or NAME/VERSION")
    return store.resolve_version(parsed)


def deploy(
    store: SqlStore,
    ref: str | Ref | ModelVersion,
    deployment: str,
    canary: float | None = None,
    ab: float | None = None,
    shadow: bool = False,
    force: bool = False,
    reason: str | None = None,
    actor: str | None = None,
) -> Deployment:
    """Route ``deployment`` to the version ``ref`` names now (an alias is pinned to its version).

    A ``rejected`` version is refused unless ``force`` with a ``reason`` (audited; an admin's token over HTTP).
    """
    version = _resolve(store, ref)
    if force and (not isinstance(reason, str) or not reason.strip()):
        raise ValidationError("--force needs --reason: a forced deploy is audited with why it was needed")
    source = "canary" if canary is not None else "ab" if ab is not None else "shadow" if shadow else "deploy"
    for attempt in range(ATTEMPTS):
        current = _current(store, deployment)
        routes = plan_routes(_routes(current), version.name, version.version, canary, ab, shadow)
        expected = None if current is None else current.revision
        try:
            if force:
                return store.force_deployment(deployment, routes, expected, reason or "", actor, source)
            return store.write_deployment(deployment, routes, expected, actor, reason, source)
        except ConflictError as exc:
            if not isinstance(exc.details, dict) or attempt + 1 == ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def promote(store: SqlStore, deployment: str, reason: str | None = None, actor: str | None = None) -> Deployment:
    """Make the canary (or A/B) route the deployment's sole route and move ``champion`` to it, atomically."""
    for attempt in range(ATTEMPTS):
        current = store.get_deployment(deployment, history=0)
        candidate = next((r for r in current.routes if r.kind in ("canary", "ab")), None)
        if candidate is None:
            raise ConflictError(
                f"deployment {deployment!r} has no canary or A/B route to promote",
                hint=f"start one with: stead deploy NAME/VERSION --to {deployment} --canary 10",
            )
        routes = [{"model": candidate.model, "version": candidate.version, "kind": "primary", "weight": 1.0}]
        try:
            return store.write_deployment(
                deployment, routes, current.revision, actor, reason, "promote", champion=candidate.version
            )
        except ConflictError as exc:
            if not isinstance(exc.details, dict) or attempt + 1 == ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def rollback(store: SqlStore, deployment: str, reason: str | None = None, actor: str | None = None) -> Deployment:
    """Store the previous revision's routes as a new revision (so a rollback can itself be rolled back).

    When the revision undone was a promote, ``champion`` moves back to the restored primary in the same
    transaction.
    """
    for attempt in range(ATTEMPTS):
        history = store.deployment_history(deployment, limit=2)
        if len(history) < 2:
            raise ConflictError(
                f"deployment {deployment!r} has only one revision: there is nothing to roll back to",
                hint=f"deploy another version with: stead deploy NAME/VERSION --to {deployment}",
            )
        previous, current = history[-2], history[-1]
        routes = [r.model_dump() for r in previous.routes]
        champion = None
        if current.source == "promote":
            primary = next(r for r in previous.routes if r.kind == "primary")
            promoted = current.routes[0]
            if primary.model == promoted.model:
                champion = primary.version
        why = reason or f"rollback of revision {current.revision} to the routes of revision {previous.revision}"
        try:
            return store.write_deployment(deployment, routes, current.revision, actor, why, "rollback", champion)
        except ConflictError as exc:
            if not isinstance(exc.details, dict) or attempt + 1 == ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def get_deployment(store: SqlStore, name: str, history: int = 20) -> Deployment:
    """A deployment with its routes, last ``history`` revisions and serving events."""
    return store.get_deployment(name, history)


def list_deployments(store: SqlStore) -> list[Deployment]:
    return store.list_deployments()


def deployment_history(store: SqlStore, name: str) -> list[DeploymentRevision]:
    return store.deployment_history(name)


# ---------------------------------------------------------------- the prediction log, read side


def _timestamp(since: datetime | str | float | None) -> float | None:
    if since is None:
        return None
    if isinstance(since, int | float) and not isinstance(since, bool):
        return float(since)
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"since {since!r} is not an ISO-8601 time", hint="for example 2025-01-31T12:00:00Z"
            ) from None
    if isinstance(since, datetime):
        return (since if since.tzinfo else since.replace(tzinfo=UTC)).timestamp()
    raise ValidationError(f"since must be a datetime or an ISO-8601 string, got {type(since).__name__}")


def _label_of(label: Any, row: int, rows: int) -> Any:
    if rows > 1 and isinstance(label, list) and len(label) == rows:
        return label[row]
    return label


def read_predictions(
    store: SqlStore, deployment: str, since: datetime | str | float | None = None, limit: int | None = None
) -> pd.DataFrame:
    """The prediction log of ``deployment`` as a DataFrame, oldest first, with labels where feedback arrived.

    Columns: ``request_id``, ``time`` (UTC), ``model``, ``version``, ``route``, ``latency_ms``, ``label``,
    then ``inputs.<column>`` and ``outputs.<name>``. ``limit`` keeps the newest rows. One row per predicted
    instance (``row`` numbers them within their request); a list label of a many-row request is spread
    over its rows.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValidationError(f"limit must be a non-negative integer, got {limit!r}")
    start = _timestamp(since)
    segments = store.prediction_segments(deployment, since=start)
    tables: list[pa.Table] = []
    rows = 0
    for seg in reversed(segments):  # newest first, so a limit reads only what it needs
        with store.artifacts.open(seg["digest"], name=f"prediction segment of {deployment}") as fh:
            table = pq.read_table(io.BytesIO(fh.read()))
        tables.append(table)
        rows += table.num_rows
        if limit is not None and start is None and rows >= limit:
            break
    if not tables:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in PREDICTION_COLUMNS})
    frame = pa.concat_tables(list(reversed(tables)), promote_options="default").to_pandas()
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    if start is not None:
        frame = frame[frame["time"] >= pd.Timestamp(start, unit="s", tz="UTC")]
    frame = frame.sort_values(["time", "request_id", "row"], kind="stable")
    if limit is not None:
        frame = frame.tail(limit)
    frame = frame.reset_index(drop=True)
    labels = store.get_feedback(deployment, sorted(set(frame["request_id"]))) if len(frame) else {}
    counts = frame.groupby("request_id")["row"].transform("size") if len(frame) else frame["row"]
    frame.insert(
        list(frame.columns).index("latency_ms") + 1,
        "label",
        pd.Series(
            [
                _label_of(labels[rid], int(row), int(n)) if rid in labels else None
                for rid, row, n in zip(frame["request_id"], frame["row"], counts, strict=True)
            ],
            dtype=object,
            index=frame.index,
        ),
    )
    return frame  # type: ignore[no-any-return]


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a prediction-log frame that have a label, shadow copies left out (their primary row is there)."""
    return frame[(frame["route"] != "shadow") & frame["label"].notna()]


def labelled_predictions(store: SqlStore, deployment: str, since: float, target: str) -> pd.DataFrame:
    """The predictions ``deployment`` served since ``since`` (seconds) that have a label, as training rows:
    one column per logged input and ``target`` holding the label, oldest first."""
    frame = _labelled(read_predictions(store, deployment, since=since))
    inputs = [c for c in frame.columns if c.startswith("inputs.")]
    rows = frame[inputs].rename(columns=lambda c: c[len("inputs.") :]).reset_index(drop=True)
    if target in rows.columns:
        raise ValidationError(
            f"the deployment {deployment!r} logs an input named {target!r}, the model's target",
            hint="a target cannot also be an input; rename one of them",
        )
    rows[target] = frame["label"].to_numpy()
    return rows.infer_objects()


def labelled_counts(store: SqlStore, deployment: str, since: Sequence[float]) -> list[int]:
    """For each time in ``since`` (seconds), how many predictions served from then on have a label (the rows
    :func:`labelled_predictions` would return), from one read of the log."""
    import numpy as np
    import pandas as pd

    if not since:
        return []
    frame = _labelled(read_predictions(store, deployment, since=min(since)))
    if not len(frame):
        return [0] * len(since)
    times = np.sort((frame["time"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy())
    return [int(len(times) - np.searchsorted(times, t, side="left")) for t in since]
