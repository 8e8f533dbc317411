"""HttpStore: the Store over a running ``stead serve`` (layer: store; speaks to the server only over HTTP).

Each public method mirrors ``SqlStore``'s, signature for signature, and is one ``_call`` through the shared
route table (``stead.store.routes``). Errors the server sends come back as the same ``SteadError`` class,
message and hint (``errors.from_dict``). Blobs go through ``HttpArtifacts``, which has ``ArtifactStore``'s
API and verifies every byte it downloads against the digest.

One ``httpx.Client`` (keep-alive, connect timeout 5 s, read timeout 60 s) is shared by every thread of
the process. Idempotent requests (GET, HEAD, and blob PUTs, which are content-addressed) are retried once
when the connection drops; a server that cannot be reached is a ``StoreError`` with a hint to start it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, cast

import httpx

from stead._version import __version__
from stead.entities import Alert, AliasMove, DatasetVersion, Experiment, MetricPoint, ModelVersion, Ref, Run, RunList
from stead.errors import NotFoundError, RemoteError, StoreError, from_dict
from stead.settings import Settings
from stead.store.artifacts import CHUNK, BlobStore, _check_digest, _label
from stead.store.routes import API_PREFIX, BLOB_PATH, CODECS, ROUTES, to_wire

__all__ = ["HttpArtifacts", "HttpStore"]

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT"})
_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError)


class _Wire:
    """The one HTTP connection pool to a stead server, and the mapping of its failures to SteadErrors."""

    def __init__(self, settings: Settings) -> None:
        self.base = settings.uri.rstrip("/")
        headers = {"user-agent": f"stead/{__version__}", "accept": "application/json"}
        if settings.token:
            headers["authorization"] = f"Bearer {settings.token}"
        self.client = httpx.Client(
            base_url=self.base,
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        check: bool = True,
    ) -> httpx.Response:
        """Send one request (``content`` is a factory, so a retry can send the body again)."""
        attempts = 2 if method in _IDEMPOTENT else 1
        for attempt in range(attempts):
            body = content() if content is not None else None
            try:
                request = self.client.build_request(method, path, params=params, content=body, headers=headers)
                response = self.client.send(request, stream=stream)
            except httpx.TimeoutException as exc:
                phase = "connect" if isinstance(exc, httpx.ConnectTimeout) else "answer"
                limit = CONNECT_TIMEOUT if phase == "connect" else READ_TIMEOUT
                raise StoreError(
                    f"the stead server at {self.base} did not {phase} within {limit:g} s ({method} {path})",
                    hint="check that `stead serve` is running and not overloaded",
                ) from None
            except _DROPPED as exc:
                if attempt + 1 < attempts:
                    continue
                raise self._unreachable(exc) from None
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from None
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            if check and response.status_code >= 400:
                raise self.error(response)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _unreachable(self, exc: Exception) -> StoreError:
        return StoreError(
            f"cannot reach the stead server at {self.base}: {exc or type(exc).__name__}",
            hint="start it with: stead serve",
        )

    def error(self, response: httpx.Response) -> Exception:
        """The SteadError an error response stands for (the server's own class, message and hint)."""
        if not response.is_closed:
            response.read()
            response.close()
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return from_dict(body, response.status_code)
        text = response.text.strip().replace("\n", " ")[:200]
        return RemoteError(
            f"the stead server at {self.base} answered {response.status_code} {response.reason_phrase}"
            + (f": {text}" if text else ""),
            hint="is STEAD_URI the address of a stead server?",
        )


class _ResponseReader(io.RawIOBase):
    """A raw binary stream over a streamed HTTP response body (closed with the response)."""

    def __init__(self, response: httpx.Response, label: str, base: str) -> None:
        self._response = response
        self._chunks: Iterator[bytes] = response.iter_bytes(CHUNK)
        self._pending = memoryview(b"")
        self._label = label
        self._base = base

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:
        try:
            return next(self._chunks, b"")
        except httpx.HTTPError as exc:
            raise StoreError(
                f"lost the connection to the stead server at {self._base} while downloading {self._label}: {exc}",
                hint="try again; check the server's log",
            ) from None

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._pending:
            self._pending = memoryview(self._next())
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def readall(self) -> bytes:
        parts = [bytes(self._pending)]
        self._pending = memoryview(b"")
        while chunk := self._next():
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def _hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class HttpArtifacts(BlobStore):
    """``ArtifactStore``'s API over ``/api/v1/blobs/{digest}``; downloads are verified here too."""

    def __init__(self, wire: _Wire) -> None:
        self._wire = wire
        self.root = f"{wire.base}{API_PREFIX}/blobs"

    def __repr__(self) -> str:
        return f"HttpArtifacts({self.root!r})"

    def _path(self, digest: str) -> str:
        return API_PREFIX + BLOB_PATH.format(digest=_check_digest(digest))

    def _head(self, digest: str) -> int | None:
        response = self._wire.request("HEAD", self._path(digest), check=False)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise self._wire.error(response)
        return int(response.headers.get("content-length", "0"))

    def _missing(self, digest: str, name: str | None) -> NotFoundError:
        return NotFoundError(
            f"{_label(digest, name)} is missing from the stead server at {self._wire.base}",
            hint="the blob may have been deleted or never uploaded",
            details={"digest": digest, "name": name},
        )

    # primitives

    def exists(self, digest: str) -> bool:
        return self._head(digest) is not None

    def size(self, digest: str) -> int:
        size = self._head(digest)
        if size is None:
            raise self._missing(digest, None)
        return size

    def local_path(self, digest: str) -> None:
        """Always None: blobs live on the server."""
        _check_digest(digest)
        return None

    def _upload(self, digest: str, content: Callable[[], Any], size: int) -> None:
        self._wire.request(
            "PUT",
            self._path(digest),
            content=content,
            headers={"content-type": "application/octet-stream", "content-length": str(size)},
        )

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self._upload(digest, lambda: bytes(data), len(data))
        return digest

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Hash the file, then (unless the server has it) stream it up; never whole in memory."""
        digest, size = _hash_file(path)
        if not self.exists(digest):
            self._upload(digest, lambda: open(path, "rb"), size)  # noqa: SIM115 - closed by the request
        return digest

    def put_stream(self, fileobj: IO[bytes]) -> str:
        with tempfile.TemporaryDirectory(prefix="stead-upload-") as spool_dir:
            spool = os.path.join(spool_dir, "blob")
            with open(spool, "wb") as out:
                while chunk := fileobj.read(CHUNK):
                    out.write(chunk)
            return self.put_file(spool)

    def _open_raw(self, digest: str, name: str | None) -> IO[bytes]:
        response = self._wire.request("GET", self._path(digest), stream=True, check=False)
        if response.status_code == 404:
            response.close()
            raise self._missing(digest, name)
        if response.status_code >= 400:
            raise self._wire.error(response)
        return cast(IO[bytes], _ResponseReader(response, _label(digest, name), self._wire.base))


class HttpStore:
    """The Store on a stead server (``STEAD_URI=http://host:port``); see ``SqlStore`` for each method."""

    dialect = "http"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.uri
        self._wire = _Wire(settings)
        self.artifacts = HttpArtifacts(self._wire)

    def close(self) -> None:
        self._wire.close()

    def describe(self) -> str:
        return f"stead server at {self._wire.base}"

    def __repr__(self) -> str:
        return f"HttpStore({self.url!r})"

    def _call(self, op: str, /, **kwargs: Any) -> Any:
        route = ROUTES[op]
        path = API_PREFIX + route.url({k: kwargs.pop(k) for k in route.path_params})
        payload = to_wire(kwargs)
        if route.verb == "GET":
            params = {k: json.dumps(v, allow_nan=False) for k, v in payload.items()}
            response = self._wire.request("GET", path, params=params)
        else:
            body = json.dumps(payload, allow_nan=False).encode()
            response = self._wire.request(
                route.verb, path, content=lambda: body, headers={"content-type": "application/json"}
            )
        try:
            data = response.json()
        except ValueError:
            raise RemoteError(
                f"the stead server at {self._wire.base} answered {op} with something that is not JSON",
                hint="is STEAD_URI the address of a stead server?",
            ) from None
        return CODECS[route.codec].decode(data)

    # ------------------------------------------------------------ experiments
    def list_experiments(self) -> list[Experiment]:
        return self._call("list_experiments")  # type: ignore[no-any-return]

    # ------------------------------------------------------------ runs
    def create_run(
        self,
        experiment: str,
        *,
        name: str | None = None,
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        seed: int | None = None,
        env: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        start_time: float | None = None,
    ) -> str:
        return self._call(  # type: ignore[no-any-return]
            "create_run",
            experiment=experiment,
            name=name,
            params=params,
            tags=tags,
            seed=seed,
            env=env,
            run_id=run_id,
            start_time=start_time,
        )

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[tuple[str, float, int, float]] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._call("log_batch", run_id=run_id, metrics=metrics, params=params, tags=tags)

    def heartbeat(self, run_id: str) -> None:
        self._call("heartbeat", run_id=run_id)

    def end_run(self, run_id: str, status: str, error: str | None = None) -> None:
        self._call("end_run", run_id=run_id, status=status, error=error)

    def fail_stale_runs(self, timeout: float | None = None) -> int:
        return self._call("fail_stale_runs", timeout=timeout)  # type: ignore[no-any-return]

    def get_run(self, run_id: str) -> Run:
        return self._call("get_run", run_id=run_id)  # type: ignore[no-any-return]

    def get_metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return self._call("get_metric_history", run_id=run_id, key=key)  # type: ignore[no-any-return]

    def search_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: str | Sequence[str] | None = None,
        max_results: int = 1000,
        page_token: str | None = None,
    ) -> RunList:
        return self._call(  # type: ignore[no-any-return]
            "search_runs",
            experiment=experiment,
            filter=filter,
            order_by=order_by,
            max_results=max_results,
            page_token=page_token,
        )

    def delete_run(self, run_id: str) -> None:
        self._call("delete_run", run_id=run_id)

    # ------------------------------------------------------------ artifacts of runs
    def record_artifacts(self, run_id: str, items: Mapping[str, tuple[str, int]]) -> None:
        self._call("record_artifacts", run_id=run_id, items=items)

    # ------------------------------------------------------------ datasets
    def put_dataset(
        self,
        dataset_id: str,
        name: str,
        *,
        rows: int,
        columns: int,
        schema: list[dict[str, Any]],
        profile: dict[str, Any],
        data_digest: str | None,
        sample_digest: str | None,
        source: str | None,
    ) -> DatasetVersion:
        return self._call(  # type: ignore[no-any-return]
            "put_dataset",
            dataset_id=dataset_id,
            name=name,
            rows=rows,
            columns=columns,
            schema=schema,
            profile=profile,
            data_digest=data_digest,
            sample_digest=sample_digest,
            source=source,
        )

    def has_dataset(self, dataset_id: str) -> bool:
        return self._call("has_dataset", dataset_id=dataset_id)  # type: ignore[no-any-return]

    def record_dataset_use(self, run_id: str, dataset_id: str, role: str, name: str) -> None:
        self._call("record_dataset_use", run_id=run_id, dataset_id=dataset_id, role=role, name=name)

    def get_dataset(self, dataset_id: str) -> DatasetVersion:
        return self._call("get_dataset", dataset_id=dataset_id)  # type: ignore[no-any-return]

    def list_datasets(self, name: str | None = None, limit: int = 100) -> list[DatasetVersion]:
        return self._call("list_datasets", name=name, limit=limit)  # type: ignore[no-any-return]

    def dataset_usage(self, dataset_id: str) -> list[dict[str, Any]]:
        return self._call("dataset_usage", dataset_id=dataset_id)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ lineage
    def add_edge(self, source: str, target: str, kind: str, attrs: Mapping[str, Any] | None = None) -> None:
        self._call("add_edge", source=source, target=target, kind=kind, attrs=attrs)

    def edges_of(self, nodes: Iterable[str], direction: str) -> list[dict[str, Any]]:
        return self._call("edges_of", nodes=list(nodes), direction=direction)  # type: ignore[no-any-return]

    # ------------------------------------------------------------ info
    def counts(self) -> dict[str, int]:
        return self._call("counts")  # type: ignore[no-any-return]

    # pipelines (issue 7)
    def create_pipeline_run(
        self,
        model: str,
        trigger: str,
        reason: str | None = None,
        key: str | None = None,
        cause: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self._call(  # type: ignore[no-any-return]
            "create_pipeline_run", model=model, trigger=trigger, reason=reason, key=key, cause=cause
        )

    def update_pipeline_run(
        self,
        pipeline_id: str,
        status: str | None = None,
        step: dict[str, Any] | None = None,
        run_id: str | None = None,
        version: int | None = None,
        error: str | None = None,
    ) -> None:
        self._call(
            "update_pipeline_run",
            pipeline_id=pipeline_id,
            status=status,
            step=step,
            run_id=run_id,
            version=version,
            error=error,
        )

    def get_pipeline_run(self, pipeline_id: str) -> dict[str, Any]:
        return self._call("get_pipeline_run", pipeline_id=pipeline_id)  # type: ignore[no-any-return]

    def list_pipeline_runs(self, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self._call("list_pipeline_runs", model=model, limit=limit)  # type: ignore[no-any-return]

    # the controller (issue 7)
    def acquire_lease(self, name: str, holder: str, ttl: float) -> dict[str, Any]:
        return self._call("acquire_lease", name=name, holder=holder, ttl=ttl)  # type: ignore[no-any-return]

    def release_lease(self, name: str, holder: str) -> None:
        self._call("release_lease", name=name, holder=holder)

    def create_rollout(
        self,
        deployment: str,
        model: str,
        candidate: int,
        baseline: int | None,
        steps: list[int],
        pipeline_run_id: str | None = None,
    ) -> dict[str, Any]:
        return self._call(  # type: ignore[no-any-return]
            "create_rollout",
            deployment=deployment,
            model=model,
            candidate=candidate,
            baseline=baseline,
            steps=steps,
            pipeline_run_id=pipeline_run_id,
        )

    def update_rollout(
        self,
        rollout_id: str,
        step_index: int | None = None,
        status: str | None = None,
        expected_step: int | None = None,
    ) -> dict[str, Any]:
        return self._call(  # type: ignore[no-any-return]
            "update_rollout", rollout_id=rollout_id, step_index=step_index, status=status, expected_step=expected_step
        )

    def list_rollouts(
        self, deployment: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return self._call(  # type: ignore[no-any-return]
            "list_rollouts", deployment=deployment, status=status, limit=limit
        )

    def add_canary_decision(self, rollout_id: str, step: int, decision: str, evidence: dict[str, Any]) -> int:
        return self._call(  # type: ignore[no-any-return]
            "add_canary_decision", rollout_id=rollout_id, step=step, decision=decision, evidence=evidence
        )

    def canary_decisions(self, rollout_id: str | None = None, deployment: str | None = None) -> list[dict[str, Any]]:
        return self._call(  # type: ignore[no-any-return]
            "canary_decisions", rollout_id=rollout_id, deployment=deployment
        )

    def add_serving_stats(self, rows: list[dict[str, Any]]) -> int:
        return self._call("add_serving_stats", rows=rows)  # type: ignore[no-any-return]

    def serving_stats(self, deployment: str, since: float | None = None) -> list[dict[str, Any]]:
        return self._call("serving_stats", deployment=deployment, since=since)  # type: ignore[no-any-return]

    # registry (``actor`` defaults to this client's STEAD_USER, as SqlStore defaults it to its settings' user)
    def create_model_version(
        self,
        name: str,
        flavor: str,
        manifest: dict[str, str],
        signature: dict[str, Any] | None = None,
        requirements: list[str] | None = None,
        run_id: str | None = None,
        allow_pickle: bool = False,
        metrics: dict[str, float] | None = None,
        source: str | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        return self._call(  # type: ignore[no-any-return]
            "create_model_version",
            name=name,
            flavor=flavor,
            manifest=manifest,
            signature=signature,
            requirements=requirements,
            run_id=run_id,
            allow_pickle=allow_pickle,
            metrics=metrics,
            source=source,
            actor=actor or self.settings.user,
        )

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        return self._call("get_model_version", name=name, version=version)  # type: ignore[no-any-return]

    def resolve_version(self, ref: Ref | str) -> ModelVersion:
        return self._call("resolve_version", ref=str(ref))  # type: ignore[no-any-return]

    def list_models(self) -> list[dict[str, Any]]:
        return self._call("list_models")  # type: ignore[no-any-return]

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        return self._call("list_model_versions", name=name)  # type: ignore[no-any-return]

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        expected: int | None = None,
        check_expected: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> AliasMove:
        return self._call(  # type: ignore[no-any-return]
            "set_alias",
            name=name,
            alias=alias,
            version=version,
            expected=expected,
            check_expected=check_expected,
            reason=reason,
            actor=actor or self.settings.user,
        )

    def delete_alias(
        self,
        name: str,
        alias: str,
        expected: int | None = None,
        check_expected: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> AliasMove:
        return self._call(  # type: ignore[no-any-return]
            "delete_alias",
            name=name,
            alias=alias,
            expected=expected,
            check_expected=check_expected,
            reason=reason,
            actor=actor or self.settings.user,
        )

    def alias_history(self, name: str, alias: str | None = None, limit: int = 1000) -> list[AliasMove]:
        return self._call("alias_history", name=name, alias=alias, limit=limit)  # type: ignore[no-any-return]

    def set_version_state(
        self,
        name: str,
        version: int,
        state: str,
        reason: str | None = None,
        gate_results: list[dict[str, Any]] | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        return self._call(  # type: ignore[no-any-return]
            "set_version_state",
            name=name,
            version=version,
            state=state,
            reason=reason,
            gate_results=gate_results,
            actor=actor or self.settings.user,
        )

    def trust_version(self, name: str, version: int, reason: str, actor: str | None = None) -> ModelVersion:
        return self._call(  # type: ignore[no-any-return]
            "trust_version", name=name, version=version, reason=reason, actor=actor or self.settings.user
        )

    def audit_log(self, target: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return self._call("audit_log", target=target, limit=limit)  # type: ignore[no-any-return]

    # ---- deployments (issue 5); their entities are imported at the end of this module
    def write_deployment(
        self,
        name: str,
        routes: list[dict[str, Any]],
        expected_revision: int | None,
        actor: str | None = None,
        reason: str | None = None,
        source: str = "deploy",
        champion: int | None = None,
    ) -> Deployment:
        return self._call(  # type: ignore[no-any-return]
            "write_deployment",
            name=name,
            routes=routes,
            expected_revision=expected_revision,
            actor=actor or self.settings.user,
            reason=reason,
            source=source,
            champion=champion,
        )

    def force_deployment(
        self,
        name: str,
        routes: list[dict[str, Any]],
        expected_revision: int | None,
        reason: str,
        actor: str | None = None,
        source: str = "deploy",
        champion: int | None = None,
    ) -> Deployment:
        return self._call(  # type: ignore[no-any-return]
            "force_deployment",
            name=name,
            routes=routes,
            expected_revision=expected_revision,
            reason=reason,
            actor=actor or self.settings.user,
            source=source,
            champion=champion,
        )

    def get_deployment(self, name: str, history: int = 20) -> Deployment:
        return self._call("get_deployment", name=name, history=history)  # type: ignore[no-any-return]

    def list_deployments(self) -> list[Deployment]:
        return self._call("list_deployments")  # type: ignore[no-any-return]

    def deployment_history(self, name: str, limit: int = 1000) -> list[DeploymentRevision]:
        return self._call("deployment_history", name=name, limit=limit)  # type: ignore[no-any-return]

    def deployment_revisions(self) -> dict[str, int]:
        return self._call("deployment_revisions")  # type: ignore[no-any-return]

    def record_deployment_event(
        self, name: str, action: str, details: dict[str, Any], reason: str | None = None, actor: str | None = None
    ) -> None:
        self._call(
            "record_deployment_event",
            name=name,
            action=action,
            details=details,
            reason=reason,
            actor=actor or self.settings.user,
        )

    def add_prediction_segment(
        self,
        deployment: str,
        digest: str,
        rows: int,
        min_time: float,
        max_time: float,
        writer: str,
        sequence: int,
    ) -> bool:
        return self._call(  # type: ignore[no-any-return]
            "add_prediction_segment",
            deployment=deployment,
            digest=digest,
            rows=rows,
            min_time=min_time,
            max_time=max_time,
            writer=writer,
            sequence=sequence,
        )

    def prediction_segments(
        self, deployment: str, since: float | None = None, until: float | None = None
    ) -> list[dict[str, Any]]:
        return self._call(  # type: ignore[no-any-return]
            "prediction_segments", deployment=deployment, since=since, until=until
        )

    def record_feedback(self, deployment: str, labels: dict[str, Any]) -> int:
        return self._call("record_feedback", deployment=deployment, labels=labels)  # type: ignore[no-any-return]

    def get_feedback(self, deployment: str, request_ids: list[str] | None = None) -> dict[str, Any]:
        return self._call(  # type: ignore[no-any-return]
            "get_feedback", deployment=deployment, request_ids=request_ids
        )

    # ---- monitoring (issue 6): monitor reports, drift history and alerts
    def add_monitor_report(
        self,
        deployment: str,
        report: dict[str, Any],
        model: str | None = None,
        version: int | None = None,
        at: float | None = None,
    ) -> int:
        return self._call(  # type: ignore[no-any-return]
            "add_monitor_report", deployment=deployment, report=report, model=model, version=version, at=at
        )

    def list_monitor_reports(self, deployment: str, limit: int = 100, with_report: bool = True) -> list[dict[str, Any]]:
        return self._call(  # type: ignore[no-any-return]
            "list_monitor_reports", deployment=deployment, limit=limit, with_report=with_report
        )

    def drift_history(self, deployment: str, feature: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        return self._call("drift_history", deployment=deployment, feature=feature, limit=limit)  # type: ignore[no-any-return]

    def open_alert(
        self,
        deployment: str,
        rule: str,
        report_id: int | None = None,
        details: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> Alert:
        return self._call(  # type: ignore[no-any-return]
            "open_alert", deployment=deployment, rule=rule, report_id=report_id, details=details, at=at
        )

    def resolve_alert(self, alert_id: int, at: float | None = None) -> Alert:
        return self._call("resolve_alert", alert_id=alert_id, at=at)  # type: ignore[no-any-return]

    def ack_alert(self, alert_id: int, actor: str | None = None) -> Alert:
        return self._call("ack_alert", alert_id=alert_id, actor=actor or self.settings.user)  # type: ignore[no-any-return]

    def list_alerts(self, open_only: bool = True, deployment: str | None = None, limit: int = 1000) -> list[Alert]:
        return self._call(  # type: ignore[no-any-return]
            "list_alerts", open_only=open_only, deployment=deployment, limit=limit
        )

    # ---- MLflow compatibility (issue 10): mirrors of SqlStore's mlflow_* methods
    def mlflow_create_experiment(self, name: str) -> int:
        return self._call("mlflow_create_experiment", name=name)  # type: ignore[no-any-return]

    def mlflow_create_run(
        self,
        experiment: str,
        run_id: str | None = None,
        name: str | None = None,
        start_time: float | None = None,
        tags: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> str:
        return self._call(  # type: ignore[no-any-return]
            "mlflow_create_run",
            experiment=experiment,
            run_id=run_id,
            name=name,
            start_time=start_time,
            tags=dict(tags) if tags is not None else None,
            user=user,
        )

    def mlflow_update_run(
        self, run_id: str, status: str | None = None, end_time: float | None = None, name: str | None = None
    ) -> None:
        self._call("mlflow_update_run", run_id=run_id, status=status, end_time=end_time, name=name)

    def mlflow_log_batch(
        self,
        run_id: str,
        metrics: Sequence[tuple[str, float, int, float]] = (),
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        delete_tags: Sequence[str] = (),
    ) -> None:
        self._call(
            "mlflow_log_batch",
            run_id=run_id,
            metrics=[list(m) for m in metrics],
            params=dict(params) if params is not None else None,
            tags=dict(tags) if tags is not None else None,
            delete_tags=list(delete_tags),
        )

    def mlflow_objects(
        self, kind: str, keys: list[str] | None = None, prefix: str | None = None
    ) -> dict[str, dict[str, Any]]:
        return self._call("mlflow_objects", kind=kind, keys=keys, prefix=prefix)  # type: ignore[no-any-return]

    def mlflow_put_object(self, kind: str, key: str, doc: dict[str, Any], merge: bool = True) -> dict[str, Any]:
        return self._call("mlflow_put_object", kind=kind, key=key, doc=doc, merge=merge)  # type: ignore[no-any-return]

    def mlflow_record_files(self, files: dict[str, list[Any]]) -> None:
        self._call("mlflow_record_files", files=files)

    def mlflow_list_files(self, prefix: str) -> dict[str, list[Any]]:
        return self._call("mlflow_list_files", prefix=prefix)  # type: ignore[no-any-return]

    def mlflow_create_model(self, name: str, description: str | None = None) -> bool:
        return self._call("mlflow_create_model", name=name, description=description)  # type: ignore[no-any-return]


from stead.entities import Deployment, DeploymentRevision  # noqa: E402 - the deployments section's entities
