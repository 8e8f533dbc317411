"""The ``/api/v1`` route table shared by the server and the HTTP client (layer: store; no web framework here).

Every public ``SqlStore`` method has exactly one entry in ``ROUTES``: its HTTP verb, its path under
``/api/v1``, the minimum role a token needs, and the codec of its return value. The server
(``stead.serving.api``) builds its endpoints from this table, and ``HttpStore`` (``stead.store.http``) calls
them through it, so the two cannot drift apart; ``tests/store/test_http_mirror.py`` checks that the public
methods of ``SqlStore``, the keys of ``ROUTES`` and the public methods of ``HttpStore`` are the same set
with the same signatures.

How to add a store method (say ``SqlStore.get_model_version(name, version)``):

1. add one line here, e.g. ``"get_model_version": Route("GET", "/models/{name}/versions/{version}", "read",
   "modelversion")``; path parameters are named like the method's arguments, every other argument travels
   as JSON (the body, or for ``GET`` one JSON-encoded query parameter per argument). A path parameter that
   is not a ``str`` is validated by the server and converted from its text (``"3"`` → ``3``).
2. if it returns an entity that has no codec yet, register one in ``CODECS``, e.g.
   ``"modelversion": entity_codec(ModelVersion)`` (``entities_codec`` for a list of them); ``"json"`` fits
   plain JSON values (str, int, bool, dicts and lists of them) and ``"none"`` fits ``None``.
3. add the mirror method to ``HttpStore``, with the same signature:
   ``return self._call("get_model_version", name=name, version=version)  # type: ignore[no-any-return]``.

The server checks arguments against the ``SqlStore`` method's signature and type hints (unknown, missing or
mistyped arguments get 422 naming the field), so nothing else needs writing.

JSON has no NaN or infinity: ``to_wire`` turns non-finite floats into the strings ``"NaN"``, ``"Infinity"``
and ``"-Infinity"`` (in requests and responses alike), and ``from_wire`` turns them back where the type
hint says ``float``; entity codecs get the same from pydantic, which reads those strings as floats.
"""

from __future__ import annotations

import math
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from stead.entities import (
    AliasMove,
    DatasetVersion,
    Experiment,
    MetricPoint,
    ModelVersion,
    Run,
    RunList,
    encode_float,
)

__all__ = [
    "API_PREFIX",
    "BLOB_PATH",
    "CODECS",
    "INFO_PATH",
    "NONFINITE",
    "ROUTES",
    "Codec",
    "Role",
    "Route",
    "entities_codec",
    "entity_codec",
    "from_wire",
    "to_wire",
]

API_PREFIX = "/api/v1"
BLOB_PATH = "/blobs/{digest}"  # PUT (write), GET and HEAD (read): raw bytes, named by their sha256
INFO_PATH = "/info"  # GET (read): {"version", "backend", "schema_revision"}

Role = Literal["read", "write", "admin"]
Verb = Literal["GET", "POST", "PUT", "DELETE"]
NONFINITE: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_PARAM_RE = re.compile(r"{(\w+)(?::\w+)?}")


@dataclass(frozen=True)
class Route:
    """One store method over HTTP: ``verb`` and ``path`` (under ``/api/v1``), the least role, the return codec.

    A path parameter may carry a Starlette converter, e.g. ``{key:path}`` for values that contain ``/``.
    """

    verb: Verb
    path: str
    role: Role
    codec: str

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PARAM_RE.findall(self.path))

    def url(self, values: Mapping[str, Any]) -> str:
        """The path (without the prefix) with ``values`` filled in, each percent-encoded."""
        return _PARAM_RE.sub(lambda m: quote(str(values[m.group(1)]), safe=""), self.path)


# fmt: off
ROUTES: dict[str, Route] = {
    # experiments
    "list_experiments":   Route("GET",    "/experiments",                       "read",  "experiments"),
    # runs
    "create_run":         Route("POST",   "/runs",                              "write", "json"),
    "search_runs":        Route("POST",   "/runs/search",                       "read",  "runlist"),
    "fail_stale_runs":    Route("POST",   "/runs/stale",                        "write", "json"),
    "get_run":            Route("GET",    "/runs/{run_id}",                     "read",  "run"),
    "delete_run":         Route("DELETE", "/runs/{run_id}",                     "write", "none"),
    "log_batch":          Route("POST",   "/runs/{run_id}/batch",               "write", "none"),
    "heartbeat":          Route("POST",   "/runs/{run_id}/heartbeat",           "write", "none"),
    "end_run":            Route("POST",   "/runs/{run_id}/end",                 "write", "none"),
    "get_metric_history": Route("GET",    "/runs/{run_id}/metrics/{key:path}",  "read",  "metricpoints"),
    "record_artifacts":   Route("POST",   "/runs/{run_id}/artifacts",           "write", "none"),
    "record_dataset_use": Route("POST",   "/runs/{run_id}/datasets",            "write", "none"),
    # datasets
    "put_dataset":        Route("POST",   "/datasets",                          "write", "dataset"),
    "list_datasets":      Route("GET",    "/datasets",                          "read",  "datasets"),
    "get_dataset":        Route("GET",    "/datasets/{dataset_id}",             "read",  "dataset"),
    "has_dataset":        Route("GET",    "/datasets/{dataset_id}/exists",      "read",  "json"),
    "dataset_usage":      Route("GET",    "/datasets/{dataset_id}/usage",       "read",  "usage"),
    # lineage
    "add_edge":           Route("POST",   "/lineage/edges",                     "write", "none"),
    "edges_of":           Route("POST",   "/lineage/edges/query",               "read",  "json"),
    # registry
    "create_model_version": Route("POST",   "/models/{name}/versions",                    "write", "modelversion"),
    "list_models":          Route("GET",    "/models",                                    "read",  "json"),
    "list_model_versions":  Route("GET",    "/models/{name}/versions",                    "read",  "modelversions"),
    "get_model_version":    Route("GET",    "/models/{name}/versions/{version}",          "read",  "modelversion"),
    "resolve_version":      Route("GET",    "/model-refs/resolve",                        "read",  "modelversion"),
    "set_version_state":    Route("POST",   "/models/{name}/versions/{version}/state",    "write", "modelversion"),
    "trust_version":        Route("POST",   "/models/{name}/versions/{version}/trust",    "admin", "modelversion"),
    "set_alias":            Route("PUT",    "/models/{name}/aliases/{alias}",             "write", "aliasmove"),
    "delete_alias":         Route("DELETE", "/models/{name}/aliases/{alias}",             "write", "aliasmove"),
    "alias_history":        Route("GET",    "/models/{name}/alias-history",               "read",  "aliasmoves"),
    "audit_log":            Route("GET",    "/audit",                                     "read",  "json"),
    # info
    "counts":             Route("GET",    "/counts",                            "read",  "json"),
}
# fmt: on


# -- the wire format -----------------------------------------------------------------------------------


def to_wire(value: Any) -> Any:
    """``value`` as plain JSON data: entities dumped by alias, non-finite floats as ``"NaN"``/``"Infinity"``/
    ``"-Infinity"``, tuples, sets and other iterables as lists, datetimes as ISO-8601 strings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, BaseModel):
        return to_wire(value.model_dump(mode="json", by_alias=True))
    if isinstance(value, Mapping):
        return {str(k): to_wire(v) for k, v in value.items()}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        raise TypeError("bytes cannot travel as JSON; store them as a blob and send the digest")
    if isinstance(value, Iterable):
        return [to_wire(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return to_wire(item())
    raise TypeError(f"a {type(value).__name__} cannot travel as JSON")


def _is_float_marker(value: Any) -> bool:
    return isinstance(value, str) and value in NONFINITE


def from_wire(hint: Any, value: Any) -> Any:
    """Undo ``to_wire``'s float markers in ``value`` wherever the type ``hint`` expects a float.

    Strings where the hint says ``str`` (a tag whose value is ``"NaN"``) are left alone.
    """
    if value is None or hint is Any:
        return value
    if hint is float:
        return NONFINITE[value] if _is_float_marker(value) else value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        if _is_float_marker(value):
            return NONFINITE[value] if float in args and str not in args else value
        for arg in args:
            if arg is type(None):
                continue
            inner = typing.get_origin(arg) or arg
            if (isinstance(value, list) and inner in _SEQUENCES) or (isinstance(value, dict) and inner in _MAPPINGS):
                return from_wire(arg, value)
        return value
    if isinstance(value, list) and origin in _SEQUENCES:
        if origin is tuple and args and args[-1] is not Ellipsis:
            return [from_wire(a, v) for a, v in zip(args, value, strict=False)] + value[len(args) :]
        item = args[0] if args else Any
        return [from_wire(item, v) for v in value]
    if isinstance(value, dict) and origin in _MAPPINGS:
        item = args[1] if len(args) == 2 else Any
        return {k: from_wire(item, v) for k, v in value.items()}
    return value


_SEQUENCES: tuple[Any, ...] = (list, tuple, set, frozenset, Sequence, Iterable, typing.Sequence, typing.Iterable)
_MAPPINGS: tuple[Any, ...] = (dict, Mapping, typing.Mapping)


# -- codecs: return values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """How a route's return value becomes JSON (server) and comes back (client)."""

    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


def entity_codec(cls: type[BaseModel]) -> Codec:
    """A codec for one pydantic entity."""
    return Codec(encode=to_wire, decode=cls.model_validate)


def entities_codec(cls: type[BaseModel]) -> Codec:
    """A codec for a list of pydantic entities."""
    return Codec(encode=to_wire, decode=lambda body: [cls.model_validate(item) for item in body])


def _encode_runlist(runs: RunList) -> dict[str, Any]:
    return {"runs": to_wire(list(runs)), "next_page_token": getattr(runs, "next_page_token", None)}


def _decode_runlist(body: dict[str, Any]) -> RunList:
    out = RunList(Run.model_validate(item) for item in body["runs"])
    out.next_page_token = body.get("next_page_token")
    return out


def _decode_usage(body: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "at": datetime.fromisoformat(row["at"]) if row.get("at") else row.get("at")} for row in body]


CODECS: dict[str, Codec] = {
    "none": Codec(encode=lambda _value: None, decode=lambda _body: None),
    "json": Codec(encode=to_wire, decode=lambda body: body),
    "run": entity_codec(Run),
    "runlist": Codec(encode=_encode_runlist, decode=_decode_runlist),
    "dataset": entity_codec(DatasetVersion),
    "datasets": entities_codec(DatasetVersion),
    "metricpoints": entities_codec(MetricPoint),
    "experiments": entities_codec(Experiment),
    "modelversion": entity_codec(ModelVersion),
    "modelversions": entities_codec(ModelVersion),
    "aliasmove": entity_codec(AliasMove),
    "aliasmoves": entities_codec(AliasMove),
    "usage": Codec(encode=to_wire, decode=_decode_usage),  # dicts whose "at" is a datetime
}


# ---- deployments (issue 5): routes and codecs of the deployment and prediction-log store methods
from stead.entities import Deployment, DeploymentRevision  # noqa: E402

CODECS.update(
    {
        "deployment": entity_codec(Deployment),
        "deployments": entities_codec(Deployment),
        "revisions": entities_codec(DeploymentRevision),
    }
)
# fmt: off
ROUTES.update({
    "create_pipeline_run":     Route("POST", "/pipelines",                          "write", "json"),
    "update_pipeline_run":     Route("POST", "/pipelines/{pipeline_id}",            "write", "none"),
    "get_pipeline_run":        Route("GET",  "/pipelines/{pipeline_id}",            "read",  "json"),
    "list_pipeline_runs":      Route("GET",  "/pipelines",                          "read",  "json"),
    "acquire_lease":           Route("POST", "/leases/{name}",                      "write", "json"),
    "release_lease":           Route("POST", "/leases/{name}/release",              "write", "none"),
    "create_rollout":          Route("POST", "/rollouts",                           "write", "json"),
    "update_rollout":          Route("POST", "/rollouts/{rollout_id}",              "write", "json"),
    "list_rollouts":           Route("GET",  "/rollouts",                           "read",  "json"),
    "add_canary_decision":     Route("POST", "/rollouts/{rollout_id}/decisions",    "write", "json"),
    "canary_decisions":        Route("GET",  "/canary-decisions",                   "read",  "json"),
    "add_serving_stats":       Route("POST", "/serving-stats",                      "write", "json"),
    "serving_stats":           Route("GET",  "/serving-stats/{deployment}",         "read",  "json"),
})
# fmt: on
# fmt: off
ROUTES.update({
    "write_deployment":        Route("POST", "/deployments/{name}/revisions",       "write", "deployment"),
    "force_deployment":        Route("POST", "/deployments/{name}/forced-revisions", "admin", "deployment"),
    "get_deployment":          Route("GET",  "/deployments/{name}",                 "read",  "deployment"),
    "list_deployments":        Route("GET",  "/deployments",                        "read",  "deployments"),
    "deployment_history":      Route("GET",  "/deployments/{name}/revisions",       "read",  "revisions"),
    "deployment_revisions":    Route("GET",  "/deployment-revisions",               "read",  "json"),
    "record_deployment_event": Route("POST", "/deployments/{name}/events",          "write", "none"),
    "add_prediction_segment":  Route("POST", "/predictions/{deployment}/segments",  "write", "json"),
    "prediction_segments":     Route("GET",  "/predictions/{deployment}/segments",  "read",  "json"),
    "record_feedback":         Route("POST", "/predictions/{deployment}/feedback",  "write", "json"),
    "get_feedback":            Route("POST", "/predictions/{deployment}/feedback/query", "read", "json"),
})
# fmt: on


# ---- monitoring (issue 6): monitor reports, drift history and alerts
from stead.entities import Alert  # noqa: E402

CODECS.update({"alert": entity_codec(Alert), "alerts": entities_codec(Alert)})
# fmt: off
ROUTES.update({
    "add_monitor_report":      Route("POST", "/monitor/{deployment}/reports",       "write", "json"),
    "list_monitor_reports":    Route("GET",  "/monitor/{deployment}/reports",       "read",  "json"),
    "drift_history":           Route("GET",  "/monitor/{deployment}/drift",         "read",  "json"),
    "open_alert":              Route("POST", "/alerts",                             "write", "alert"),
    "list_alerts":             Route("GET",  "/alerts",                             "read",  "alerts"),
    "resolve_alert":           Route("POST", "/alerts/{alert_id}/resolve",          "write", "alert"),
    "ack_alert":               Route("POST", "/alerts/{alert_id}/ack",              "write", "alert"),
})
# fmt: on


# ---- MLflow compatibility (issue 10): the store methods behind /api/2.0/mlflow and `stead import mlflow`
# fmt: off
ROUTES.update({
    "mlflow_create_experiment": Route("POST", "/mlflow/experiments",                "write", "json"),
    "mlflow_create_run":        Route("POST", "/mlflow/runs",                       "write", "json"),
    "mlflow_update_run":        Route("POST", "/mlflow/runs/{run_id}",              "write", "none"),
    "mlflow_log_batch":         Route("POST", "/mlflow/runs/{run_id}/batch",        "write", "none"),
    "mlflow_objects":           Route("POST", "/mlflow/objects/{kind}/query",       "read",  "json"),
    "mlflow_put_object":        Route("PUT",  "/mlflow/objects/{kind}/{key:path}",  "write", "json"),
    "mlflow_record_files":      Route("POST", "/mlflow/files",                      "write", "none"),
    "mlflow_list_files":        Route("POST", "/mlflow/files/query",                "read",  "json"),
    "mlflow_create_model":      Route("POST", "/mlflow/models",                     "write", "json"),
})
# fmt: on
