"""The MLflow tracking and registry REST API on ``stead serve`` (layer: serving).

``mlflow_routes(store, settings)`` answers what MLflow's Python client calls in everyday use, under
``/api/2.0/mlflow/…`` and ``/ajax-api/2.0/mlflow/…``, plus the artifact proxy
``/api/2.0/mlflow-artifacts/artifacts/…``, so a script with ``MLFLOW_TRACKING_URI=http://<stead>`` runs
unchanged. Everything it logs is an ordinary stead object:

- an MLflow experiment is a stead experiment; its id is stead's (as a string), and ``"0"`` is the experiment
  named ``Default``;
- a run is a stead run with the same id (tags, params, every metric point; times are epoch milliseconds on the
  wire). MLflow runs have no heartbeat, may be written after they end and reopened (``runs/update``);
  deleting one only marks it (``runs/restore`` undoes it);
- ``runs/log-inputs`` records each dataset as a stead dataset version (id: a hash of MLflow's digest, name and
  schema) used by the run, with the role taken from the ``mlflow.data.context`` tag (``training`` -> ``train``);
- files PUT through the artifact proxy go into the content-addressed store; those under
  ``<experiment>/<run>/artifacts/`` are the run's artifacts;
- MLflow 3 logged models (``models:/m-…``) are documents in ``mlflow_objects`` whose files live under
  ``<experiment>/models/<id>/artifacts/``; registering one creates a stead version of flavor ``mlflow``
  (loaded with ``mlflow.pyfunc``, only with the recorded pickle opt-in: ``STEAD_MLFLOW_ALLOW_PICKLE=1`` on the
  server, or an admin's ``stead models trust``), linked to its run;
- registered models, versions and aliases are stead's registry; a version's files are served back to MLflow
  from ``mlflow-artifacts:/stead-models/<name>/<version>`` (its manifest, verified on read).

Errors use MLflow's shape ``{"error_code": …, "message": …}`` and status, so the client raises its usual
exceptions; an unknown endpoint under the MLflow prefixes answers ``ENDPOINT_NOT_FOUND`` (404). Reads need
``read`` and writes ``write`` under stead's token auth (the client sends ``MLFLOW_TRACKING_TOKEN`` as a
bearer token); MLflow's read-only POSTs (the searches) count as reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import posixpath
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from stead.entities import Experiment, ModelVersion, Run
from stead.errors import AuthError, ConflictError, ForbiddenError, NotFoundError, SteadError, ValidationError
from stead.serving.auth import Access, guard
from stead.settings import Settings

__all__ = ["MlflowError", "mlflow_routes"]

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
VERSION_FILES = "stead-models"  # the artifact-proxy folder that serves registered versions' files
DEFAULT_EXPERIMENT = "Default"
MAX_METRICS, MAX_PARAMS, MAX_TAGS, MAX_ENTRIES = 1000, 100, 100, 1000
_LIST_FIELDS = {"experiment_ids", "order_by", "stages", "run_ids"}


class MlflowError(Exception):
    """An error as MLflow's server reports it: an ``error_code`` name, a message and an HTTP status."""

    STATUS = {
        "RESOURCE_DOES_NOT_EXIST": 404,
        "ENDPOINT_NOT_FOUND": 404,
        "RESOURCE_ALREADY_EXISTS": 400,
        "INVALID_PARAMETER_VALUE": 400,
        "BAD_REQUEST": 400,
        "INVALID_STATE": 500,
        "INTERNAL_ERROR": 500,
        "UNAUTHENTICATED": 401,
        "PERMISSION_DENIED": 403,
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return self.STATUS.get(self.code, 400)

    def response(self) -> JSONResponse:
        return JSONResponse({"error_code": self.code, "message": self.message}, status_code=self.status)


def _from_stead(exc: SteadError) -> MlflowError:
    text = exc.message + (f" ({exc.hint})" if exc.hint else "")
    if isinstance(exc, NotFoundError):
        return MlflowError("RESOURCE_DOES_NOT_EXIST", text)
    if isinstance(exc, ForbiddenError):
        return MlflowError("PERMISSION_DENIED", text)
    if isinstance(exc, AuthError):
        return MlflowError("UNAUTHENTICATED", text)
    if isinstance(exc, ValidationError | ConflictError):
        return MlflowError("INVALID_PARAMETER_VALUE", text)
    return MlflowError("INTERNAL_ERROR", text)


def _bad(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


def _missing(message: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", message)


# ------------------------------------------------------------------------------------------------ wire helpers


def _ms(value: Any) -> int | None:
    """Epoch milliseconds of a datetime / epoch seconds."""
    if value is None:
        return None
    ts = value.timestamp() if hasattr(value, "timestamp") else float(value)
    return round(ts * 1000)


def _num(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _float(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _bad(f"{what} must be a number, got {value!r}") from None


def _int(value: Any, what: str, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise _bad(f"missing value for required parameter {what!r}")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _bad(f"{what} must be an integer, got {value!r}") from None


def _str(body: Mapping[str, Any], key: str, *alternatives: str) -> str:
    for k in (key, *alternatives):
        value = body.get(k)
        if value not in (None, ""):
            return str(value)
    raise _bad(f"Missing value for required parameter '{key}'")


def _kv(items: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        if not isinstance(item, Mapping) or "key" not in item:
            raise _bad(f"expected {{key, value}} entries, got {item!r}")
        out[str(item["key"])] = "" if item.get("value") is None else str(item["value"])
    return out


def _tags(d: Mapping[str, Any] | None) -> list[dict[str, str]]:
    return [{"key": k, "value": str(v)} for k, v in sorted((d or {}).items())]


def _page(items: list[Any], max_results: int, token: str | None) -> tuple[list[Any], str | None]:
    start = _int(token, "page_token", 0) if token else 0
    chunk = items[start : start + max_results]
    return chunk, (str(start + max_results) if start + max_results < len(items) else None)


_SIMPLE = re.compile(
    r"""^\s*(?:attributes\.|attribute\.)?([`"]?)([\w.]+)\1\s*(=|!=|LIKE|ILIKE)\s*(['"])(.*)\4\s*$""", re.I
)
_TAG = re.compile(r"""^\s*tags?\.([`"]?)([^`"]+?)\1\s*(=|!=|LIKE|ILIKE)\s*(['"])(.*)\4\s*$""", re.I)


def _like(pattern: str, value: str, insensitive: bool) -> bool:
    regex = "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern) + "$"
    return re.match(regex, value, re.I if insensitive else 0) is not None


def _simple_filter(text: str | None, fields: Callable[[str], str | None], tags: Callable[[str], str | None]) -> bool:
    """A small filter for experiments, registered models, versions and logged models: clauses joined by AND,
    each ``field = 'v'``, ``!=``, ``LIKE`` or ``ILIKE`` on an attribute or a tag."""
    if not text or not text.strip():
        return True
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.I):
        m = _TAG.match(clause)
        if m:
            value = tags(m.group(2))
        else:
            m = _SIMPLE.match(clause)
            if not m:
                raise _bad(f"unsupported filter clause {clause!r}: use field = 'value', LIKE or ILIKE, joined by AND")
            value = fields(m.group(2).lower())
        op, want = m.group(3).upper(), m.group(5)
        if value is None:
            return False
        if op == "=" and value != want:
            return False
        if op == "!=" and value == want:
            return False
        if op in ("LIKE", "ILIKE") and not _like(want, value, op == "ILIKE"):
            return False
    return True


# ------------------------------------------------------------------------------------------------ the API


class MlflowApi:
    """The handlers: each takes the request's parameters (a dict) and returns the JSON answer."""

    def __init__(self, store: Any, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # ---- experiments
    def _experiments(self) -> list[Experiment]:
        return list(self.store.list_experiments())

    def _experiment_id(self, exp: Experiment) -> str:
        return "0" if exp.name == DEFAULT_EXPERIMENT else str(exp.id)

    def _experiment_name(self, experiment_id: str) -> str:
        if experiment_id == "0":
            return DEFAULT_EXPERIMENT
        for exp in self._experiments():
            if str(exp.id) == experiment_id:
                return exp.name
        raise _missing(f"No Experiment with id={experiment_id} exists")

    def _experiment_by_name(self, name: str) -> Experiment | None:
        return next((e for e in self._experiments() if e.name == name), None)

    def _experiment_json(self, exp: Experiment | None, name: str = DEFAULT_EXPERIMENT) -> dict[str, Any]:
        eid = "0" if exp is None else self._experiment_id(exp)
        doc = self.store.mlflow_objects("experiment", [eid]).get(eid, {})
        created = _ms(exp.created_at) if exp is not None else 0
        return {
            "experiment_id": eid,
            "name": exp.name if exp is not None else name,
            "artifact_location": f"mlflow-artifacts:/{eid}",
            "lifecycle_stage": doc.get("lifecycle_stage", "active"),
            "creation_time": created,
            "last_update_time": _ms(doc.get("_updated_at")) or created,
            "tags": _tags(doc.get("tags")),
        }

    def create_experiment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _str(body, "name")
        if name == DEFAULT_EXPERIMENT or self._experiment_by_name(name) is not None:
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.")
        try:
            new_id = self.store.mlflow_create_experiment(name)
        except ConflictError:
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment(name={name}) already exists.") from None
        tags = _kv(body.get("tags"))
        if tags:
            self.store.mlflow_put_object("experiment", str(new_id), {"tags": tags})
        return {"experiment_id": str(new_id)}

    def get_experiment(self, body: Mapping[str, Any]) -> dict[str, Any]:
        eid = _str(body, "experiment_id")
        if eid == "0":
            return {"experiment": self._experiment_json(self._experiment_by_name(DEFAULT_EXPERIMENT))}
        for exp in self._experiments():
            if str(exp.id) == eid:
                return {"experiment": self._experiment_json(exp)}
        raise _missing(f"No Experiment with id={eid} exists")

    def get_experiment_by_name(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _str(body, "experiment_name")
        exp = self._experiment_by_name(name)
        if exp is None and name != DEFAULT_EXPERIMENT:
            raise _missing(f"Could not find experiment with name '{name}'")
        return {"experiment": self._experiment_json(exp)}

    def search_experiments(self, body: Mapping[str, Any]) -> dict[str, Any]:
        found = [self._experiment_json(e) for e in self._experiments()]
        if not any(e["experiment_id"] == "0" for e in found):
            found.insert(0, self._experiment_json(None))
        view = str(body.get("view_type") or "ACTIVE_ONLY")
        out = []
        for e in found:
            deleted = e["lifecycle_stage"] == "deleted"
            if (view == "ACTIVE_ONLY" and deleted) or (view == "DELETED_ONLY" and not deleted):
                continue
            tags = {t["key"]: t["value"] for t in e["tags"]}
            fields = {"name": e["name"], "experiment_id": e["experiment_id"]}
            if _simple_filter(body.get("filter"), fields.get, tags.get):
                out.append(e)
        orders = body.get("order_by") or []
        for order in reversed(orders if isinstance(orders, list) else [orders]):
            key, _, direction = str(order).partition(" ")
            key = key.removeprefix("attributes.")

            def by(e: dict[str, Any], k: str = key) -> tuple[bool, Any]:
                return (e.get(k) is None, e.get(k))

            out.sort(key=by, reverse=direction.strip().upper() == "DESC")
        if not orders:
            out.sort(key=lambda e: e["creation_time"] or 0, reverse=True)
        page, token = _page(out, _int(body.get("max_results"), "max_results", 1000), body.get("page_token"))
        return {"experiments": page, **({"next_page_token": token} if token else {})}

    def set_experiment_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        eid = _str(body, "experiment_id")
        self._experiment_name(eid)
        self.store.mlflow_put_object("experiment", eid, {"tags": {_str(body, "key"): str(body.get("value", ""))}})
        return {}

    def delete_experiment_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        eid = _str(body, "experiment_id")
        self._experiment_name(eid)
        self.store.mlflow_put_object("experiment", eid, {"tags": {_str(body, "key"): None}})
        return {}

    # ---- runs
    def _run(self, run_id: str) -> Run:
        try:
            return self.store.get_run(run_id)  # type: ignore[no-any-return]
        except NotFoundError:
            raise _missing(f"Run '{run_id}' not found") from None

    def _run_json(self, run: Run, doc: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if doc is None:
            doc = self.store.mlflow_objects("run", [run.id]).get(run.id, {})
        exp = self._experiment_by_name(run.experiment)
        eid = self._experiment_id(exp) if exp is not None else "0"
        info = {
            "run_id": run.id,
            "run_uuid": run.id,
            "run_name": run.name or "",
            "experiment_id": eid,
            "user_id": run.tags.get("mlflow.user", ""),
            "status": run.status,
            "start_time": _ms(run.start_time),
            "artifact_uri": f"mlflow-artifacts:/{eid}/{run.id}/artifacts",
            "lifecycle_stage": doc.get("lifecycle_stage", "active"),
        }
        if run.end_time is not None:
            info["end_time"] = _ms(run.end_time)
        metrics = [
            {"key": k, "value": _num(v), "timestamp": info["start_time"], "step": 0} for k, v in run.metrics.items()
        ]
        datasets = []
        for use in run.inputs:
            try:
                ds = self.store.get_dataset(use.dataset_id)
            except NotFoundError:
                continue
            mlflow_doc = (ds.profile or {}).get("mlflow") or {}
            datasets.append(
                {
                    "tags": [{"key": "mlflow.data.context", "value": use.role}],
                    "dataset": {
                        "name": ds.name,
                        "digest": mlflow_doc.get("digest", ds.id[:8]),
                        "source_type": mlflow_doc.get("source_type", "stead"),
                        "source": ds.source or "",
                        "schema": mlflow_doc.get("schema", ""),
                        "profile": mlflow_doc.get("profile", ""),
                    },
                }
            )
        outputs = [{"model_id": mid, "step": step} for mid, step in (doc.get("outputs") or {}).items()]
        return {
            "info": info,
            "data": {
                "metrics": metrics,
                "params": [{"key": k, "value": v} for k, v in sorted(run.params.items())],
                "tags": _tags(run.tags),
            },
            "inputs": {"dataset_inputs": datasets},
            "outputs": {"model_outputs": outputs},
        }

    def _live_run(self, run_id: str) -> None:
        doc = self.store.mlflow_objects("run", [run_id]).get(run_id, {})
        if doc.get("lifecycle_stage") == "deleted":
            raise MlflowError("INVALID_PARAMETER_VALUE", f"The run {run_id} must be in the 'active' state.")

    def create_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        eid = str(body.get("experiment_id") or "0")
        name = self._experiment_name(eid)
        tags = _kv(body.get("tags"))
        run_name = body.get("run_name") or tags.get("mlflow.runName") or f"run-{uuid.uuid4().hex[:8]}"
        tags["mlflow.runName"] = str(run_name)
        user = body.get("user_id") or tags.get("mlflow.user")
        if user:
            tags.setdefault("mlflow.user", str(user))
        start = body.get("start_time")
        rid = self.store.mlflow_create_run(
            name, None, str(run_name), _int(start, "start_time") / 1000.0 if start else None, tags, user
        )
        return {"run": self._run_json(self._run(rid), {})}

    def update_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        rid = _str(body, "run_id", "run_uuid")
        self._run(rid)
        end = body.get("end_time")
        name = body.get("run_name") or None
        self.store.mlflow_update_run(
            rid, body.get("status") or None, _int(end, "end_time") / 1000.0 if end else None, name
        )
        if name:
            self.store.mlflow_log_batch(rid, (), None, {"mlflow.runName": str(name)})
        return {"run_info": self._run_json(self._run(rid))["info"]}

    def get_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"run": self._run_json(self._run(_str(body, "run_id", "run_uuid")))}

    def delete_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        rid = _str(body, "run_id")
        self._run(rid)
        self.store.mlflow_put_object("run", rid, {"lifecycle_stage": "deleted", "deleted_time": _ms(time.time())})
        return {}

    def restore_run(self, body: Mapping[str, Any]) -> dict[str, Any]:
        rid = _str(body, "run_id")
        self._run(rid)
        self.store.mlflow_put_object("run", rid, {"lifecycle_stage": "active", "deleted_time": None})
        return {}

    def _log(
        self,
        rid: str,
        metrics: Sequence[tuple[str, float, int, float]] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._run(rid)
        self._live_run(rid)
        self.store.mlflow_log_batch(rid, list(metrics), dict(params or {}) or None, dict(tags or {}) or None)
        if tags and tags.get("mlflow.runName"):
            self.store.mlflow_update_run(rid, None, None, tags["mlflow.runName"])

    @staticmethod
    def _metric(m: Mapping[str, Any]) -> tuple[str, float, int, float]:
        key = str(m.get("key") or "")
        if not key:
            raise _bad("Missing value for required parameter 'key'")
        ts = m.get("timestamp")
        return (
            key,
            _float(m.get("value"), f"metric {key!r}"),
            _int(m.get("step"), "step", 0),
            _int(ts, "timestamp") / 1000.0 if ts not in (None, "") else time.time(),
        )

    def log_metric(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._log(_str(body, "run_id", "run_uuid"), [self._metric(body)])
        return {}

    def log_param(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._log(_str(body, "run_id", "run_uuid"), params={_str(body, "key"): str(body.get("value", ""))})
        return {}

    def set_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._log(_str(body, "run_id", "run_uuid"), tags={_str(body, "key"): str(body.get("value", ""))})
        return {}

    def delete_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        rid = _str(body, "run_id")
        key = _str(body, "key")
        run = self._run(rid)
        if key not in run.tags:
            raise _missing(f"No tag with name: {key} in run with id {rid}")
        self.store.mlflow_log_batch(rid, (), None, None, [key])
        return {}

    def log_batch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        rid = _str(body, "run_id")
        metrics, params, tags = body.get("metrics") or [], body.get("params") or [], body.get("tags") or []
        for what, items, limit in (
            ("metrics", metrics, MAX_METRICS),
            ("params", params, MAX_PARAMS),
            ("tags", tags, MAX_TAGS),
        ):
            if len(items) > limit:
                raise _bad(f"A batch logging request can contain at most {limit} {what}. Got {len(items)} {what}.")
        if len(metrics) + len(params) + len(tags) > MAX_ENTRIES:
            raise _bad(f"A batch logging request can contain at most {MAX_ENTRIES} metrics, params and tags in total.")
        param_map = _kv(params)
        if len(param_map) != len(params):
            raise _bad("Duplicate parameter keys have been submitted in one batch.")
        points = [self._metric(m) for m in metrics]
        # MLflow 3 re-logs a run's metrics with the model_id of a model logged at that step: keep them on the
        # logged model, and do not repeat a point the run already has
        linked = [(m, p) for m, p in zip(metrics, points, strict=True) if m.get("model_id")]
        if linked:
            history: dict[str, set[tuple[int, float, float]]] = {}
            for _m, p in linked:
                if p[0] not in history:
                    history[p[0]] = {
                        (q.step, q.value, round(q.timestamp, 3)) for q in self.store.get_metric_history(rid, p[0])
                    }
            for m, p in linked:
                with contextlib.suppress(MlflowError):
                    self._logged(str(m["model_id"]))
                    self.store.mlflow_put_object("logged_model", str(m["model_id"]), {"metrics": {p[0]: p[1]}})
            repeated = {id(p) for _m, p in linked if (p[2], p[1], round(p[3], 3)) in history[p[0]]}
            points = [p for p in points if id(p) not in repeated]
        self._log(rid, points, param_map, _kv(tags))
        return {}

    def log_inputs(self, body: Mapping[str, Any]) -> dict[str, Any]:
        rid = _str(body, "run_id")
        self._run(rid)
        self._live_run(rid)
        for entry in body.get("datasets") or []:
            ds = entry.get("dataset") or {}
            tags = _kv(entry.get("tags"))
            name = str(ds.get("name") or "dataset")
            digest = str(ds.get("digest") or "")
            schema_text, profile_text = str(ds.get("schema") or ""), str(ds.get("profile") or "")
            dataset_id = hashlib.sha256(f"mlflow\0{name}\0{digest}\0{schema_text}".encode()).hexdigest()
            if not self.store.has_dataset(dataset_id):
                columns = _dataset_schema(schema_text)
                try:
                    profile = json.loads(profile_text) if profile_text else {}
                except ValueError:
                    profile = {}
                rows = profile.get("num_rows") if isinstance(profile, dict) else None
                self.store.put_dataset(
                    dataset_id,
                    _dataset_name(name),
                    rows=int(rows) if isinstance(rows, int | float) else 0,
                    columns=len(columns),
                    schema=columns,
                    profile={
                        "mlflow": {
                            "digest": digest,
                            "source_type": ds.get("source_type") or "",
                            "schema": schema_text,
                            "profile": profile_text,
                        }
                    },
                    data_digest=None,
                    sample_digest=None,
                    source=str(ds.get("source") or "") or None,
                )
            context = tags.get("mlflow.data.context") or name
            role = {"training": "train", "train": "train"}.get(context, context)
            try:
                self.store.record_dataset_use(rid, dataset_id, _dataset_name(role), _dataset_name(name))
            except ConflictError:  # the run has ended: MLflow still lets it gain inputs, stead keeps the record
                self.store.add_edge(f"dataset:{dataset_id}", f"run:{rid}", "input", {"role": role})
        return {}

    def log_outputs(self, body: Mapping[str, Any]) -> dict[str, Any]:
        rid = _str(body, "run_id")
        self._run(rid)
        outputs = {
            str(m["model_id"]): _int(m.get("step"), "step", 0) for m in body.get("models") or [] if m.get("model_id")
        }
        if outputs:
            self.store.mlflow_put_object("run", rid, {"outputs": outputs})
        return {}

    def search_runs(self, body: Mapping[str, Any]) -> dict[str, Any]:
        ids = body.get("experiment_ids") or []
        ids = ids if isinstance(ids, list) else [ids]
        names = []
        for eid in ids:
            try:
                names.append(self._experiment_name(str(eid)))
            except MlflowError:
                continue
        if ids and not names:
            return {}
        max_results = _int(body.get("max_results"), "max_results", 1000)
        orders = body.get("order_by") or []
        view = str(body.get("run_view_type") or "ACTIVE_ONLY")
        known = {e.name for e in self._experiments()}
        names = [n for n in names if n in known]
        if ids and not names:
            return {}
        start = _int(body.get("page_token"), "page_token", 0) if body.get("page_token") else 0
        out: list[dict[str, Any]] = []
        offset = 0
        # stead's search does the filtering and ordering; deleted runs are dropped here, so read on until full
        while True:
            token = None if offset == 0 else str(offset)
            from stead.store.search import encode_token

            token = encode_token(offset) if offset else None
            try:
                batch = self.store.search_runs(
                    names or None,
                    body.get("filter") or None,
                    orders if isinstance(orders, list) else [orders],
                    1000,
                    token,
                )
            except ValidationError as exc:
                raise _bad(exc.message) from None
            docs = self.store.mlflow_objects("run", [r.id for r in batch])
            for run in batch:
                stage = docs.get(run.id, {}).get("lifecycle_stage", "active")
                if (view == "ACTIVE_ONLY" and stage == "deleted") or (view == "DELETED_ONLY" and stage != "deleted"):
                    continue
                out.append(self._run_json(run, docs.get(run.id, {})))
            if batch.next_page_token is None or len(out) >= start + max_results + 1:
                break
            offset += 1000
        page = out[start : start + max_results]
        more = len(out) > start + max_results
        return {"runs": page, **({"next_page_token": str(start + max_results)} if more else {})}

    def get_metric_history(self, body: Mapping[str, Any]) -> dict[str, Any]:
        rid = _str(body, "run_id", "run_uuid")
        key = _str(body, "metric_key")
        self._run(rid)
        points = self.store.get_metric_history(rid, key)
        metrics = [
            {"key": key, "value": _num(p.value), "timestamp": _ms(p.timestamp), "step": p.step, "run_id": rid}
            for p in points
        ]
        page, token = _page(metrics, _int(body.get("max_results"), "max_results", 25000), body.get("page_token"))
        return {"metrics": page, **({"next_page_token": token} if token else {})}

    def list_artifacts(self, body: Mapping[str, Any]) -> dict[str, Any]:
        rid = _str(body, "run_id", "run_uuid")
        info = self._run_json(self._run(rid))["info"]
        base = f"{info['experiment_id']}/{rid}/artifacts"
        path = str(body.get("path") or "").strip("/")
        files = self.list_files(posixpath.join(base, path) if path else base)
        return {
            "root_uri": info["artifact_uri"],
            "files": [dict(f, path=posixpath.join(path, f["path"]) if path else f["path"]) for f in files],
        }

    # ---- logged models (MLflow 3)
    def _logged(self, model_id: str) -> dict[str, Any]:
        doc = self.store.mlflow_objects("logged_model", [model_id]).get(model_id)
        if doc is None or doc.get("deleted"):
            raise _missing(f"Logged model with ID '{model_id}' not found.")
        return dict(doc, model_id=model_id)

    @staticmethod
    def _logged_json(doc: Mapping[str, Any]) -> dict[str, Any]:
        mid, eid = doc["model_id"], doc["experiment_id"]
        info: dict[str, Any] = {
            "model_id": mid,
            "experiment_id": eid,
            "name": doc.get("name") or "",
            "creation_timestamp_ms": _ms(doc.get("_created_at")),
            "last_updated_timestamp_ms": _ms(doc.get("_updated_at")),
            "artifact_uri": f"mlflow-artifacts:/{eid}/models/{mid}/artifacts",
            "status": doc.get("status") or "LOGGED_MODEL_PENDING",
            "tags": _tags(doc.get("tags")),
        }
        for key in ("model_type", "source_run_id", "status_message"):
            if doc.get(key):
                info[key] = doc[key]
        params = [{"key": k, "value": v} for k, v in sorted((doc.get("params") or {}).items())]
        return {"info": info, "data": {"params": params, "metrics": []}}

    def create_logged_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        eid = _str(body, "experiment_id")
        self._experiment_name(eid)
        mid = f"m-{uuid.uuid4().hex}"
        doc: dict[str, Any] = {
            "experiment_id": eid,
            "name": body.get("name") or mid,
            "model_type": body.get("model_type") or None,
            "source_run_id": body.get("source_run_id") or None,
            "params": _kv(body.get("params")),
            "tags": _kv(body.get("tags")),
            "status": "LOGGED_MODEL_PENDING",
        }
        stored = self.store.mlflow_put_object("logged_model", mid, doc, False)
        return {"model": self._logged_json(dict(stored, model_id=mid, _created_at=time.time()))}

    def get_logged_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"model": self._logged_json(self._logged(_str(body, "model_id")))}

    def finalize_logged_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mid = _str(body, "model_id")
        self._logged(mid)
        status = str(body.get("status") or "LOGGED_MODEL_READY")
        self.store.mlflow_put_object("logged_model", mid, {"status": status})
        return {"model": self._logged_json(self._logged(mid))}

    def delete_logged_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mid = _str(body, "model_id")
        self._logged(mid)
        self.store.mlflow_put_object("logged_model", mid, {"deleted": True})
        return {}

    def set_logged_model_tags(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mid = _str(body, "model_id")
        self._logged(mid)
        self.store.mlflow_put_object("logged_model", mid, {"tags": _kv(body.get("tags"))})
        return {}

    def delete_logged_model_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mid = _str(body, "model_id")
        self._logged(mid)
        self.store.mlflow_put_object("logged_model", mid, {"tags": {_str(body, "tag_key"): None}})
        return {}

    def log_logged_model_params(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mid = _str(body, "model_id")
        self._logged(mid)
        self.store.mlflow_put_object("logged_model", mid, {"params": _kv(body.get("params"))})
        return {}

    def search_logged_models(self, body: Mapping[str, Any]) -> dict[str, Any]:
        ids = body.get("experiment_ids") or []
        ids = {str(i) for i in (ids if isinstance(ids, list) else [ids])}
        out = []
        for mid, doc in self.store.mlflow_objects("logged_model").items():
            if doc.get("deleted") or (ids and str(doc.get("experiment_id")) not in ids):
                continue
            doc = dict(doc, model_id=mid)
            fields = {k: str(v) for k, v in doc.items() if isinstance(v, str | int)}
            if _simple_filter(body.get("filter"), fields.get, (doc.get("tags") or {}).get):
                out.append(self._logged_json(doc))
        out.sort(key=lambda m: m["info"]["creation_timestamp_ms"] or 0, reverse=True)
        page, token = _page(out, _int(body.get("max_results"), "max_results", 100), body.get("page_token"))
        return {"models": page, **({"next_page_token": token} if token else {})}

    def list_logged_model_artifacts(self, body: Mapping[str, Any]) -> dict[str, Any]:
        doc = self._logged(_str(body, "model_id"))
        base = f"{doc['experiment_id']}/models/{doc['model_id']}/artifacts"
        path = str(body.get("artifact_directory_path") or "").strip("/")
        files = self.list_files(posixpath.join(base, path) if path else base)
        return {"files": [dict(f, path=posixpath.join(path, f["path"]) if path else f["path"]) for f in files]}

    # ---- registry
    def _model_doc(self, name: str) -> dict[str, Any]:
        return dict(self.store.mlflow_objects("registered_model", [name]).get(name, {}))

    def _version_json(self, mv: ModelVersion, doc: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if doc is None:
            key = f"{mv.name}/{mv.version}"
            doc = self.store.mlflow_objects("model_version", [key]).get(key, {})
        created = _ms(mv.created_at)
        out: dict[str, Any] = {
            "name": mv.name,
            "version": str(mv.version),
            "creation_timestamp": created,
            "last_updated_timestamp": _ms(doc.get("_updated_at")) or created,
            "user_id": mv.created_by or "",
            "current_stage": doc.get("stage") or "None",
            "description": doc.get("description") or "",
            "source": doc.get("source") or f"mlflow-artifacts:/{VERSION_FILES}/{mv.name}/{mv.version}",
            "run_id": mv.run_id or "",
            "status": "READY",
            "tags": _tags(doc.get("tags")),
            "aliases": list(mv.aliases),
        }
        if doc.get("model_id"):
            out["model_id"] = doc["model_id"]
        if doc.get("run_link"):
            out["run_link"] = doc["run_link"]
        return out

    def _versions(self, name: str) -> list[ModelVersion]:
        return list(self.store.list_model_versions(name))

    def _model_json(self, info: Mapping[str, Any]) -> dict[str, Any]:
        name = str(info["name"])
        doc = self._model_doc(name)
        versions = self._versions(name)
        created = _ms(info.get("created_at_ts"))
        out: dict[str, Any] = {
            "name": name,
            "creation_timestamp": created,
            "last_updated_timestamp": _ms(doc.get("_updated_at")) or created,
            "description": doc.get("description") or "",
            "tags": _tags(doc.get("tags")),
            "aliases": [{"alias": a, "version": str(v)} for a, v in sorted((info.get("aliases") or {}).items())],
        }
        if versions:
            out["latest_versions"] = [self._version_json(versions[0])]
        return out

    def _model_info(self, name: str) -> dict[str, Any]:
        for info in self.store.list_models():
            if info["name"] == name:
                return self._with_ts(info)
        raise _missing(f"Registered Model with name={name} not found")

    @staticmethod
    def _with_ts(info: Mapping[str, Any]) -> dict[str, Any]:
        from datetime import datetime

        out = dict(info)
        try:
            out["created_at_ts"] = datetime.fromisoformat(str(info.get("created_at"))).timestamp()
        except ValueError:
            out["created_at_ts"] = None
        return out

    def create_registered_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _str(body, "name")
        if not self.store.mlflow_create_model(name, body.get("description") or None):
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists.")
        doc: dict[str, Any] = {}
        if body.get("tags"):
            doc["tags"] = _kv(body.get("tags"))
        if body.get("description"):
            doc["description"] = str(body["description"])
        if doc:
            self.store.mlflow_put_object("registered_model", name, doc)
        return {"registered_model": self._model_json(self._model_info(name))}

    def get_registered_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"registered_model": self._model_json(self._model_info(_str(body, "name")))}

    def update_registered_model(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _str(body, "name")
        self._model_info(name)
        self.store.mlflow_put_object("registered_model", name, {"description": str(body.get("description") or "")})
        return {"registered_model": self._model_json(self._model_info(name))}

    def search_registered_models(self, body: Mapping[str, Any]) -> dict[str, Any]:
        out = []
        for info in self.store.list_models():
            name = str(info["name"])
            tags = self._model_doc(name).get("tags") or {}
            if _simple_filter(body.get("filter"), {"name": name}.get, tags.get):
                out.append(self._model_json(self._with_ts(info)))
        orders = body.get("order_by") or []
        if orders and "timestamp" in str(orders[0] if isinstance(orders, list) else orders):
            desc = "DESC" in str(orders[0] if isinstance(orders, list) else orders).upper()
            out.sort(key=lambda m: m["last_updated_timestamp"] or 0, reverse=desc)
        elif orders and "DESC" in str(orders[0] if isinstance(orders, list) else orders).upper():
            out.reverse()
        page, token = _page(out, _int(body.get("max_results"), "max_results", 100), body.get("page_token"))
        return {"registered_models": page, **({"next_page_token": token} if token else {})}

    def set_registered_model_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _str(body, "name")
        self._model_info(name)
        self.store.mlflow_put_object(
            "registered_model", name, {"tags": {_str(body, "key"): str(body.get("value", ""))}}
        )
        return {}

    def delete_registered_model_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _str(body, "name")
        self._model_info(name)
        self.store.mlflow_put_object("registered_model", name, {"tags": {_str(body, "key"): None}})
        return {}

    def get_latest_versions(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _str(body, "name")
        self._model_info(name)
        versions = self._versions(name)
        stages = body.get("stages") or []
        stages = [str(s).lower() for s in (stages if isinstance(stages, list) else [stages])]
        if stages and "none" not in stages:
            return {"model_versions": []}
        return {"model_versions": [self._version_json(versions[0])] if versions else []}

    def _files_of(self, source: str, model_id: str | None) -> dict[str, str]:
        """The stored files (relative path -> sha256) an MLflow model version source names."""
        prefix: str | None = None
        if model_id or source.startswith("models:/m-"):
            mid = model_id or source[len("models:/") :].strip("/")
            doc = self._logged(mid)
            prefix = f"{doc['experiment_id']}/models/{mid}/artifacts"
        elif source.startswith("mlflow-artifacts:"):
            prefix = re.sub(r"^mlflow-artifacts:(//[^/]*)?/?", "", source)
        elif source.startswith("runs:/"):
            rid, _, sub = source[len("runs:/") :].partition("/")
            run_json = self._run_json(self._run(rid))
            prefix = f"{run_json['info']['experiment_id']}/{rid}/artifacts/{sub.strip('/')}".rstrip("/")
        if prefix is None:
            raise _bad(f"stead can register only model files stored through its artifact proxy; got source {source!r}")
        prefix = prefix.strip("/")
        return {
            path[len(prefix) + 1 :]: digest
            for path, (digest, _size) in self.store.mlflow_list_files(prefix).items()
            if path.startswith(prefix + "/")
        }

    def create_model_version(self, body: Mapping[str, Any]) -> dict[str, Any]:
        from stead.mlflow_import import register_mlflow_model

        name = _str(body, "name")
        source = _str(body, "source")
        model_id = body.get("model_id") or None
        self._model_info(name)
        files = self._files_of(source, model_id)
        if not files:
            raise _bad(f"no files are stored at {source!r}: upload the model's files before registering it")
        run_id = body.get("run_id") or None
        if run_id is None and (model_id or source.startswith("models:/m-")):
            run_id = self._logged(model_id or source[len("models:/") :].strip("/")).get("source_run_id")
        if run_id is not None:
            try:
                self.store.get_run(run_id)
            except NotFoundError:
                run_id = None
        mv = register_mlflow_model(
            self.store,
            name,
            files,
            run_id=run_id,
            source=source,
            allow_pickle=self.settings.mlflow_allow_pickle,
            actor=self.settings.user,
        )
        doc: dict[str, Any] = {"source": source, "tags": _kv(body.get("tags"))}
        for key in ("description", "run_link"):
            if body.get(key):
                doc[key] = str(body[key])
        if model_id:
            doc["model_id"] = model_id
        stored = self.store.mlflow_put_object("model_version", f"{name}/{mv.version}", doc)
        return {"model_version": self._version_json(mv, dict(stored, _updated_at=time.time()))}

    def _version(self, body: Mapping[str, Any]) -> ModelVersion:
        name = _str(body, "name")
        number = _int(body.get("version"), "version")
        try:
            return self.store.get_model_version(name, number)  # type: ignore[no-any-return]
        except NotFoundError:
            raise _missing(f"Model Version (name={name}, version={number}) not found") from None

    def get_model_version(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"model_version": self._version_json(self._version(body))}

    def update_model_version(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mv = self._version(body)
        self.store.mlflow_put_object(
            "model_version", f"{mv.name}/{mv.version}", {"description": str(body.get("description") or "")}
        )
        return {"model_version": self._version_json(mv)}

    def search_model_versions(self, body: Mapping[str, Any]) -> dict[str, Any]:
        text = str(body.get("filter") or "")
        m = re.search(r"""\bname\s*=\s*(['"])(.*?)\1""", text)
        names = [m.group(2)] if m else [str(i["name"]) for i in self.store.list_models()]
        out = []
        for name in names:
            try:
                versions = self._versions(name)
            except NotFoundError:
                continue
            keys = [f"{name}/{v.version}" for v in versions]
            docs = self.store.mlflow_objects("model_version", keys)
            for v in versions:
                doc = docs.get(f"{v.name}/{v.version}", {})
                js = self._version_json(v, doc)
                fields = {
                    "name": v.name,
                    "version": str(v.version),
                    "run_id": v.run_id or "",
                    "source": js["source"],
                    "source_path": js["source"],
                }
                if _simple_filter(text, fields.get, (doc.get("tags") or {}).get):
                    out.append(js)
        page, token = _page(out, _int(body.get("max_results"), "max_results", 10000), body.get("page_token"))
        return {"model_versions": page, **({"next_page_token": token} if token else {})}

    def set_model_version_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mv = self._version(body)
        key = f"{mv.name}/{mv.version}"
        self.store.mlflow_put_object("model_version", key, {"tags": {_str(body, "key"): str(body.get("value", ""))}})
        return {}

    def delete_model_version_tag(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mv = self._version(body)
        self.store.mlflow_put_object("model_version", f"{mv.name}/{mv.version}", {"tags": {_str(body, "key"): None}})
        return {}

    def get_download_uri(self, body: Mapping[str, Any]) -> dict[str, Any]:
        mv = self._version(body)
        return {"artifact_uri": f"mlflow-artifacts:/{VERSION_FILES}/{mv.name}/{mv.version}"}

    def set_alias(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, alias = _str(body, "name"), _str(body, "alias")
        self._version(body)
        if alias.isdigit():
            raise _bad(f"alias {alias!r} cannot be all digits: NAME@N means version N")
        self.store.set_alias(
            name, alias, _int(body.get("version"), "version"), None, False, "MLflow API", self.settings.user
        )
        return {}

    def delete_alias(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, alias = _str(body, "name"), _str(body, "alias")
        self.store.delete_alias(name, alias, None, False, "MLflow API", self.settings.user)
        return {}

    def get_by_alias(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name, alias = _str(body, "name"), _str(body, "alias")
        try:
            mv = self.store.resolve_version(f"{name}@{alias}")
        except (NotFoundError, ValidationError):
            raise _missing(f"Registered model alias {alias} not found.") from None
        return {"model_version": self._version_json(mv)}

    # ---- the artifact proxy
    def _version_files(self, path: str) -> dict[str, list[Any]] | None:
        """Files of ``stead-models/<name>/<version>[/sub]`` (None when ``path`` is not under that folder)."""
        parts = path.split("/")
        if parts[0] != VERSION_FILES:
            return None
        if len(parts) < 3:
            return {}
        try:
            mv = self.store.get_model_version(parts[1], int(parts[2]))
        except (NotFoundError, ValueError):
            return {}
        base = f"{VERSION_FILES}/{mv.name}/{mv.version}"
        return {
            f"{base}/{rel}": [digest, None] for rel, digest in sorted(mv.manifest.items()) if rel != "stead-model.json"
        }

    def all_files(self, path: str) -> dict[str, list[Any]]:
        path = path.strip("/")
        files = self._version_files(path)
        return files if files is not None else dict(self.store.mlflow_list_files(path))

    def list_files(self, path: str) -> list[dict[str, Any]]:
        """The immediate children of ``path``: files and folders, as MLflow lists them."""
        path = path.strip("/")
        children: dict[str, dict[str, Any]] = {}
        for full, (digest, size) in self.all_files(path).items():
            if full == path:
                continue
            rest = full[len(path) + 1 :] if path else full
            head, sep, _tail = rest.partition("/")
            if sep:
                children.setdefault(head, {"path": head, "is_dir": True})
            else:
                if size is None:
                    size = self.store.artifacts.size(digest)
                children[head] = {"path": head, "is_dir": False, "file_size": int(size)}
        return [children[k] for k in sorted(children)]

    def file_digest(self, path: str) -> str | None:
        path = path.strip("/")
        found = self.all_files(path).get(path)
        return None if found is None else str(found[0])


def _dataset_name(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "dataset"
    return cleaned[:128]


def _dataset_schema(text: str) -> list[dict[str, Any]]:
    from stead.flavors import _mlflow_columns

    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        return []
    if isinstance(doc, dict) and "mlflow_colspec" in doc:
        return _mlflow_columns(doc["mlflow_colspec"])
    return []


# ------------------------------------------------------------------------------------------------ routing

# (path under the MLflow prefixes, methods, handler name, access)
_ENDPOINTS: list[tuple[str, list[str], str, Access]] = [
    ("/experiments/create", ["POST"], "create_experiment", "write"),
    ("/experiments/get", ["GET"], "get_experiment", "read"),
    ("/experiments/get-by-name", ["GET"], "get_experiment_by_name", "read"),
    ("/experiments/search", ["POST", "GET"], "search_experiments", "read"),
    ("/experiments/set-experiment-tag", ["POST"], "set_experiment_tag", "write"),
    ("/experiments/delete-experiment-tag", ["POST"], "delete_experiment_tag", "write"),
    ("/runs/create", ["POST"], "create_run", "write"),
    ("/runs/update", ["POST"], "update_run", "write"),
    ("/runs/get", ["GET"], "get_run", "read"),
    ("/runs/delete", ["POST"], "delete_run", "write"),
    ("/runs/restore", ["POST"], "restore_run", "write"),
    ("/runs/log-metric", ["POST"], "log_metric", "write"),
    ("/runs/log-parameter", ["POST"], "log_param", "write"),
    ("/runs/set-tag", ["POST"], "set_tag", "write"),
    ("/runs/delete-tag", ["POST"], "delete_tag", "write"),
    ("/runs/log-batch", ["POST"], "log_batch", "write"),
    ("/runs/log-inputs", ["POST"], "log_inputs", "write"),
    ("/runs/outputs", ["POST"], "log_outputs", "write"),
    ("/runs/search", ["POST", "GET"], "search_runs", "read"),
    ("/metrics/get-history", ["GET"], "get_metric_history", "read"),
    ("/artifacts/list", ["GET"], "list_artifacts", "read"),
    ("/logged-models", ["POST"], "create_logged_model", "write"),
    ("/logged-models/search", ["POST"], "search_logged_models", "read"),
    ("/logged-models/{model_id}", ["GET"], "get_logged_model", "read"),
    ("/logged-models/{model_id}", ["PATCH"], "finalize_logged_model", "write"),
    ("/logged-models/{model_id}", ["DELETE"], "delete_logged_model", "write"),
    ("/logged-models/{model_id}/tags", ["PATCH"], "set_logged_model_tags", "write"),
    ("/logged-models/{model_id}/tags/{tag_key:path}", ["DELETE"], "delete_logged_model_tag", "write"),
    ("/logged-models/{model_id}/params", ["POST"], "log_logged_model_params", "write"),
    ("/logged-models/{model_id}/artifacts/directories", ["GET"], "list_logged_model_artifacts", "read"),
    ("/registered-models/create", ["POST"], "create_registered_model", "write"),
    ("/registered-models/get", ["GET"], "get_registered_model", "read"),
    ("/registered-models/update", ["PATCH"], "update_registered_model", "write"),
    ("/registered-models/search", ["GET"], "search_registered_models", "read"),
    ("/registered-models/set-tag", ["POST"], "set_registered_model_tag", "write"),
    ("/registered-models/delete-tag", ["DELETE"], "delete_registered_model_tag", "write"),
    ("/registered-models/get-latest-versions", ["POST", "GET"], "get_latest_versions", "read"),
    ("/registered-models/alias", ["POST"], "set_alias", "write"),
    ("/registered-models/alias", ["DELETE"], "delete_alias", "write"),
    ("/registered-models/alias", ["GET"], "get_by_alias", "read"),
    ("/model-versions/create", ["POST"], "create_model_version", "write"),
    ("/model-versions/get", ["GET"], "get_model_version", "read"),
    ("/model-versions/update", ["PATCH"], "update_model_version", "write"),
    ("/model-versions/search", ["GET"], "search_model_versions", "read"),
    ("/model-versions/set-tag", ["POST"], "set_model_version_tag", "write"),
    ("/model-versions/delete-tag", ["DELETE"], "delete_model_version_tag", "write"),
    ("/model-versions/get-download-uri", ["GET"], "get_download_uri", "read"),
]
ENDPOINTS = tuple((path, tuple(methods)) for path, methods, _h, _a in _ENDPOINTS)
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


async def _params(request: Request) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        out[key] = values if key in _LIST_FIELDS or len(values) > 1 else values[0]
    if request.method not in ("GET", "HEAD"):
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise _bad("the request body is not valid JSON") from None
            if not isinstance(body, dict):
                raise _bad("the request body must be a JSON object")
            out.update(body)
    out.update(request.path_params)
    return out


def _guarded(fn: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            result = await fn(request)
        except MlflowError as exc:
            return exc.response()
        except SteadError as exc:
            return _from_stead(exc).response()
        except Exception as exc:  # the client expects MLflow's error shape even for our own bugs
            return MlflowError("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}").response()
        return result if isinstance(result, Response) else JSONResponse(result)

    return endpoint


def mlflow_routes(store: Any, settings: Settings) -> list[BaseRoute]:
    """The routes of the MLflow-compatible API (see the module docstring), each guarded for stead's auth."""
    api = MlflowApi(store, settings)
    routes: list[BaseRoute] = []

    def handler(name: str) -> Callable[[Request], Any]:
        method = getattr(api, name)

        async def call(request: Request) -> Any:
            params = await _params(request)
            return await run_in_threadpool(method, params)

        return _guarded(call)

    for prefix in PREFIXES:
        for path, methods, name, access in _ENDPOINTS:
            routes.append(guard(Route(prefix + path, handler(name), methods=methods, name=f"mlflow:{name}"), access))

    async def put_artifact(request: Request) -> Response:
        path = str(request.path_params["path"]).strip("/")
        from stead.store.artifacts import safe_name

        safe_name(path)
        if path.split("/")[0] == VERSION_FILES:
            raise _bad(f"{VERSION_FILES}/ holds registered versions' files and is read-only")
        chunks = _Chunks()
        async for chunk in request.stream():
            await run_in_threadpool(chunks.write, chunk)
        digest, size = await run_in_threadpool(chunks.commit, store)
        await run_in_threadpool(store.mlflow_record_files, {path: [digest, size]})
        return JSONResponse({})

    async def get_artifact(request: Request) -> Response:
        path = str(request.path_params["path"]).strip("/")
        digest = await run_in_threadpool(api.file_digest, path)
        if digest is None:
            raise _missing(f"artifact {path!r} not found")
        fh = await run_in_threadpool(store.artifacts.open, digest, name=path)

        def read() -> Iterator[bytes]:
            try:
                while chunk := fh.read(1024 * 1024):
                    yield chunk
            finally:
                fh.close()

        return StreamingResponse(iterate_in_threadpool(read()), media_type="application/octet-stream")

    async def list_artifacts(request: Request) -> Response:
        path = str(request.query_params.get("path") or "")
        files = await run_in_threadpool(api.list_files, path)
        return JSONResponse({"files": files})

    async def not_found(request: Request) -> Response:
        raise MlflowError("ENDPOINT_NOT_FOUND", f"No API endpoint for {request.method} {request.url.path}")

    routes += [
        guard(Route(ARTIFACTS, _guarded(list_artifacts), methods=["GET"], name="mlflow:artifacts:list"), "read"),
        guard(
            Route(ARTIFACTS + "/{path:path}", _guarded(put_artifact), methods=["PUT"], name="mlflow:artifacts:put"),
            "write",
        ),
        guard(
            Route(ARTIFACTS + "/{path:path}", _guarded(get_artifact), methods=["GET"], name="mlflow:artifacts:get"),
            "read",
        ),
    ]
    for prefix in (*PREFIXES, "/api/2.0/mlflow-artifacts"):
        routes.append(
            guard(
                Route(prefix + "/{rest:path}", _guarded(not_found), methods=_ALL_METHODS, name=f"mlflow:404:{prefix}"),
                "read",
            )
        )
    return routes


class _Chunks:
    """An upload spooled to a temporary file, then put into the content-addressed store."""

    def __init__(self) -> None:
        import tempfile

        self._file = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 - closed in commit
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.size += len(chunk)

    def commit(self, store: Any) -> tuple[str, int]:
        try:
            self._file.seek(0)
            digest = store.artifacts.put_stream(self._file)
        finally:
            self._file.close()
        return str(digest), self.size
