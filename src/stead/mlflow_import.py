"""MLflow compatibility in the core (layer: same as lineage and reproduce): versions from MLflow model files, and
``stead import mlflow``.

``register_mlflow_model`` turns MLflow model files already in the artifact store (``{relative path: sha256}``,
with an ``MLmodel`` among them) into a version of flavor ``mlflow``: it adds the ``stead-model.json`` that
``flavors.mlflow_meta`` writes, and records the version with its run. MLflow's formats are pickle-based, so
the version loads only with the recorded opt-in (``allow_pickle``, audited by the store, or later an admin's
``stead models trust``).

``import_mlflow(store, uri)`` copies an MLflow tracking store into stead: a ``sqlite:///`` file (read with the
standard library's ``sqlite3``; mlflow need not be installed) or a ``file:`` folder / plain path of an
``mlruns`` layout. It copies experiments, runs (params, every metric point, tags, status and times), their
artifacts, and registered models with their versions, tags and aliases. Run ids are kept (MLflow's are uuid
hex, as stead's are) and tagged ``mlflow.run_id``; every copied object is noted in ``mlflow_objects`` (kind
``import``), so running it again copies only what is new. What cannot be mapped is reported, never guessed.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from stead.entities import ModelVersion
from stead.errors import NotFoundError, SteadError, ValidationError

__all__ = ["ImportReport", "import_mlflow", "register_mlflow_model"]

META_FILE = "stead-model.json"
MLMODEL = "MLmodel"
IMPORT_KIND = "import"  # mlflow_objects kind of the import's id mapping


def register_mlflow_model(
    store: Any,
    name: str,
    files: Mapping[str, str],
    *,
    run_id: str | None = None,
    source: str | None = None,
    allow_pickle: bool = False,
    actor: str | None = None,
) -> ModelVersion:
    """Record the MLflow model whose files (``{relative path: sha256}``, stored) are ``files`` as a version."""
    from stead import flavors

    files = {k: v for k, v in files.items() if k != META_FILE}
    if MLMODEL not in files:
        raise ValidationError(
            f"model {name!r}: the source holds no {MLMODEL} file, so it is not an MLflow model",
            hint="register the folder that mlflow.<flavor>.log_model wrote",
        )
    with tempfile.TemporaryDirectory(prefix="stead-mlflow-") as tmp:
        for rel in (MLMODEL, "requirements.txt"):
            if rel in files:
                store.artifacts.copy_to(files[rel], Path(tmp) / rel, name=rel)
        meta = flavors.mlflow_meta(tmp)
    data = (json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n").encode()
    manifest = {**files, META_FILE: store.artifacts.put_bytes(data)}
    version: ModelVersion = store.create_model_version(
        name,
        "mlflow",
        manifest,
        signature=meta["signature"],
        requirements=meta["requirements"],
        run_id=run_id,
        allow_pickle=allow_pickle,
        source=source,
        actor=actor,
    )
    return version


# ------------------------------------------------------------------------------------------------ reading MLflow


@dataclass
class _Source:
    """One MLflow tracking store, read as plain rows (dicts)."""

    uri: str
    experiments: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    aliases: list[dict[str, Any]] = field(default_factory=list)
    logged_models: dict[str, str] = field(default_factory=dict)  # model id -> artifact location
    metric_points: Callable[[str], list[tuple[str, float, int, float]]] = lambda run_id: []
    close: Callable[[], None] = lambda: None


def _local_path(uri: str | None, base: Path | None = None) -> Path | None:
    """A local folder from an artifact URI (``file:…`` or a plain path); None for anything remote."""
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        path = Path(uri)
        return path if path.is_absolute() or base is None else base / path
    return None


def _read_sqlite(uri: str) -> _Source:
    path = Path(unquote(uri[len("sqlite:///") :])) if uri.startswith("sqlite:///") else Path(uri)
    if not path.is_file():
        raise NotFoundError(f"no MLflow sqlite store at {str(path)!r}", hint="pass --from sqlite:///path/to/mlflow.db")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "experiments" not in tables or "runs" not in tables:
        raise ValidationError(f"{path} is not an MLflow tracking store: it has no experiments and runs tables")

    def rows(sql: str, *args: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in conn.execute(sql, args)]

    src = _Source(uri=uri)
    for e in rows("SELECT * FROM experiments ORDER BY experiment_id"):
        tags = rows("SELECT key, value FROM experiment_tags WHERE experiment_id = ?", e["experiment_id"])
        e["tags"] = {t["key"]: t["value"] for t in tags}
        src.experiments.append(e)
    for r in rows("SELECT * FROM runs ORDER BY start_time, run_uuid"):
        rid = r["run_uuid"]
        r["params"] = {p["key"]: p["value"] for p in rows("SELECT key, value FROM params WHERE run_uuid = ?", rid)}
        r["tags"] = {t["key"]: t["value"] for t in rows("SELECT key, value FROM tags WHERE run_uuid = ?", rid)}
        src.runs.append(r)

    def points(run_id: str) -> list[tuple[str, float, int, float]]:
        out = []
        for m in rows(
            "SELECT key, value, step, timestamp, is_nan FROM metrics WHERE run_uuid = ? ORDER BY key, step, timestamp",
            run_id,
        ):
            value = math.nan if m["is_nan"] else float(m["value"])
            out.append((str(m["key"]), value, int(m["step"] or 0), float(m["timestamp"] or 0) / 1000.0))
        return out

    src.metric_points = points
    if "registered_models" in tables:
        for m in rows("SELECT * FROM registered_models ORDER BY creation_time, name"):
            tags = rows("SELECT key, value FROM registered_model_tags WHERE name = ?", m["name"])
            m["tags"] = {t["key"]: t["value"] for t in tags}
            src.models.append(m)
        for v in rows("SELECT * FROM model_versions ORDER BY name, version"):
            tags = rows(
                "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", v["name"], v["version"]
            )
            v["tags"] = {t["key"]: t["value"] for t in tags}
            src.versions.append(v)
    if "registered_model_aliases" in tables:
        src.aliases = rows("SELECT name, alias, version FROM registered_model_aliases ORDER BY name, alias")
    if "logged_models" in tables:
        for lm in rows("SELECT model_id, artifact_location FROM logged_models"):
            src.logged_models[lm["model_id"]] = lm["artifact_location"]
    src.close = conn.close
    return src


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _kv_folder(folder: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                out[p.relative_to(folder).as_posix()] = p.read_text()
    return out


def _read_folder(uri: str) -> _Source:
    root = _local_path(uri)
    if root is None or not root.is_dir():
        raise NotFoundError(f"no MLflow file store at {uri!r}", hint="pass --from file:/path/to/mlruns")
    src = _Source(uri=uri)
    run_dirs: dict[str, Path] = {}
    for exp_dir in sorted(p for p in root.iterdir() if p.is_dir() and (p / "meta.yaml").is_file()):
        meta = _yaml(exp_dir / "meta.yaml")
        if "experiment_id" not in meta:
            continue
        meta["tags"] = _kv_folder(exp_dir / "tags")
        src.experiments.append(meta)
        for run_dir in sorted(p for p in exp_dir.iterdir() if p.is_dir() and (p / "meta.yaml").is_file()):
            r = _yaml(run_dir / "meta.yaml")
            rid = str(r.get("run_id") or r.get("run_uuid") or run_dir.name)
            r["run_uuid"] = rid
            r["experiment_id"] = str(r.get("experiment_id", meta["experiment_id"]))
            r["params"] = _kv_folder(run_dir / "params")
            r["tags"] = _kv_folder(run_dir / "tags")
            r["name"] = r.get("run_name") or r["tags"].get("mlflow.runName")
            r["status"] = r.get("status")
            run_dirs[rid] = run_dir
            src.runs.append(r)
        models_dir = exp_dir / "models"
        if models_dir.is_dir():
            for lm_dir in models_dir.iterdir():
                lm = _yaml(lm_dir / "meta.yaml")
                if lm.get("model_id"):
                    src.logged_models[str(lm["model_id"])] = str(lm.get("artifact_location") or lm_dir / "artifacts")
    src.runs.sort(key=lambda r: (r.get("start_time") or 0, r["run_uuid"]))

    def points(run_id: str) -> list[tuple[str, float, int, float]]:
        out = []
        metrics_dir = run_dirs[run_id] / "metrics"
        if metrics_dir.is_dir():
            for p in sorted(metrics_dir.rglob("*")):
                if not p.is_file():
                    continue
                key = p.relative_to(metrics_dir).as_posix()
                for line in p.read_text().splitlines():
                    parts = line.split()
                    if len(parts) >= 2:
                        step = int(parts[2]) if len(parts) > 2 else 0
                        out.append((key, float(parts[1]), step, float(parts[0]) / 1000.0))
        return out

    src.metric_points = points
    registry = root / "models"
    if registry.is_dir():
        for model_dir in sorted(p for p in registry.iterdir() if p.is_dir() and (p / "meta.yaml").is_file()):
            m = _yaml(model_dir / "meta.yaml")
            m["tags"] = _kv_folder(model_dir / "tags")
            src.models.append(m)
            for alias, version in _kv_folder(model_dir / "aliases").items():
                src.aliases.append({"name": m.get("name"), "alias": alias, "version": int(version)})
            for v_dir in sorted(model_dir.glob("version-*"), key=lambda p: int(p.name.split("-")[1] or 0)):
                v = _yaml(v_dir / "meta.yaml")
                if v:
                    v["tags"] = _kv_folder(v_dir / "tags")
                    src.versions.append(v)
    return src


def read_source(uri: str) -> _Source:
    """The rows of the MLflow store at ``uri`` (``sqlite:///…``, ``file:…`` or a folder path)."""
    if uri.startswith("sqlite:"):
        return _read_sqlite(uri)
    if uri.endswith(".db") and Path(uri).is_file():
        return _read_sqlite(uri)
    if urlparse(uri).scheme not in ("", "file"):
        raise ValidationError(
            f"cannot import from {uri!r}: stead reads MLflow stores from a sqlite:/// file or a file: folder",
            hint="for a database server, export it to sqlite first, or point --from at its mlruns folder",
        )
    return _read_folder(uri)


# ------------------------------------------------------------------------------------------------ copying


@dataclass
class ImportReport:
    """What ``import_mlflow`` did: counts of what it copied and skipped, and what it could not map."""

    copied: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)

    def add(self, what: str, n: int = 1, *, skipped: bool = False) -> None:
        bucket = self.skipped if skipped else self.copied
        bucket[what] = bucket.get(what, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {"copied": dict(self.copied), "skipped": dict(self.skipped), "unmapped": list(self.unmapped)}


def _files_under(folder: Path) -> Iterator[tuple[str, Path]]:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            yield p.relative_to(folder).as_posix(), p


def _status(value: Any) -> str:
    names = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
    text = names.get(value, value) if isinstance(value, int) else str(value or "FINISHED")
    return text if text in ("RUNNING", "FINISHED", "FAILED", "KILLED") else "RUNNING"


def _experiment_name(exp: Mapping[str, Any]) -> str:
    return str(exp.get("name") or f"mlflow-{exp.get('experiment_id')}")


def import_mlflow(
    store: Any,
    uri: str,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    actor: str | None = None,
) -> ImportReport:
    """Copy the MLflow tracking store at ``uri`` into ``store``; only what is new (see the module docstring).

    ``progress(stage, done, total)`` is called as it goes.
    """
    src = read_source(uri)
    try:
        return _import(store, src, uri, progress, actor)
    finally:
        src.close()


def _import(
    store: Any, src: _Source, uri: str, progress: Callable[[str, int, int], None] | None, actor: str | None
) -> ImportReport:
    report = ImportReport()
    done = store.mlflow_objects(IMPORT_KIND)
    tick = progress or (lambda stage, i, n: None)
    exp_names: dict[str, str] = {}
    deleted_exps: set[str] = set()

    # experiments
    existing = {e.name for e in store.list_experiments()}
    for i, exp in enumerate(src.experiments, 1):
        eid, name = str(exp.get("experiment_id")), _experiment_name(exp)
        exp_names[eid] = name
        if exp.get("lifecycle_stage") == "deleted":
            deleted_exps.add(eid)
        if name in existing:
            report.add("experiments", skipped=True)
        else:
            try:
                new_id = store.mlflow_create_experiment(name)
            except SteadError as exc:
                report.unmapped.append(f"experiment {eid} {name!r}: {exc.message}")
                continue
            tags = {k: v for k, v in (exp.get("tags") or {}).items()}
            if tags:
                store.mlflow_put_object("experiment", str(new_id), {"tags": tags})
            report.add("experiments")
            existing.add(name)
        tick("experiments", i, len(src.experiments))

    # runs with params, metric history, tags, artifacts
    for i, run in enumerate(src.runs, 1):
        rid = str(run["run_uuid"])
        key = f"run:{rid}"
        tick("runs", i, len(src.runs))
        if key in done:
            report.add("runs", skipped=True)
            continue
        exp_name = exp_names.get(str(run.get("experiment_id")))
        if exp_name is None:
            report.unmapped.append(f"run {rid}: its experiment {run.get('experiment_id')} is not in the store")
            continue
        try:
            store.get_run(rid)
            taken = True
        except NotFoundError:
            taken = False
        if taken:  # a run with this id already exists in stead (e.g. logged through the MLflow API)
            store.mlflow_put_object(IMPORT_KIND, key, {"source": uri, "run_id": rid, "existing": True})
            report.add("runs", skipped=True)
            continue
        try:
            _copy_run(store, src, run, exp_name, report)
        except SteadError as exc:
            report.unmapped.append(f"run {rid}: {exc.message}")
            continue
        if run.get("lifecycle_stage") == "deleted" or str(run.get("experiment_id")) in deleted_exps:
            store.mlflow_put_object("run", rid, {"lifecycle_stage": "deleted"})
        store.mlflow_put_object(IMPORT_KIND, key, {"source": uri, "run_id": rid})
        report.add("runs")

    # registered models, versions, aliases
    runs_by_id = {str(r["run_uuid"]): r for r in src.runs}
    for m in src.models:
        name = str(m.get("name"))
        try:
            created = store.mlflow_create_model(name, m.get("description"))
        except SteadError as exc:
            report.unmapped.append(f"registered model {name!r}: {exc.message}")
            continue
        if created:
            report.add("registered models")
        if m.get("tags"):
            store.mlflow_put_object("registered_model", name, {"tags": dict(m["tags"])})
    model_names = {str(m.get("name")) for m in src.models}
    version_map: dict[tuple[str, int], int] = {}
    for k, doc in done.items():
        if k.startswith("version:"):
            version_map[(doc["name"], int(doc["mlflow_version"]))] = int(doc["version"])
    for i, v in enumerate(src.versions, 1):
        name, number = str(v.get("name")), int(v.get("version") or 0)
        tick("model versions", i, len(src.versions))
        key = f"version:{name}/{number}"
        if key in done:
            report.add("model versions", skipped=True)
            continue
        if name not in model_names or v.get("current_stage") == "Deleted_Internal":
            continue
        try:
            mv = _copy_version(store, src, v, runs_by_id, actor)
        except SteadError as exc:
            report.unmapped.append(f"model version {name}/{number}: {exc.message}")
            continue
        version_map[(name, number)] = mv.version
        doc = {"source": v.get("source"), "mlflow_version": number, "tags": dict(v.get("tags") or {})}
        if v.get("description"):
            doc["description"] = v["description"]
        store.mlflow_put_object("model_version", f"{name}/{mv.version}", doc)
        store.mlflow_put_object(
            IMPORT_KIND, key, {"source": uri, "name": name, "mlflow_version": number, "version": mv.version}
        )
        report.add("model versions")
    for a in src.aliases:
        name, alias, number = str(a["name"]), str(a["alias"]), int(a["version"])
        target = version_map.get((name, number))
        if target is None:
            report.unmapped.append(f"alias {name}@{alias}: version {number} was not copied")
            continue
        try:
            current = store.resolve_version(f"{name}@{alias}").version
        except SteadError:
            current = None
        if current == target:
            report.add("aliases", skipped=True)
            continue
        try:
            store.set_alias(name, alias, target, None, False, "imported from MLflow", actor)
        except SteadError as exc:
            report.unmapped.append(f"alias {name}@{alias}: {exc.message}")
            continue
        report.add("aliases")
    return report


def _copy_run(store: Any, src: _Source, run: Mapping[str, Any], exp_name: str, report: ImportReport) -> None:
    rid = str(run["run_uuid"])
    tags = {k: v for k, v in dict(run.get("tags") or {}).items()}
    tags["mlflow.run_id"] = rid
    user = run.get("user_id") or tags.get("mlflow.user")
    start = float(run.get("start_time") or 0) / 1000.0
    store.mlflow_create_run(exp_name, rid, run.get("name") or tags.get("mlflow.runName"), start, {}, user)
    params = dict(run.get("params") or {})
    points = src.metric_points(rid)
    # in slices, so one run with a long history never makes one huge request
    items = list(tags.items())
    for n in range(0, max(len(points), 1), 5000):
        store.mlflow_log_batch(rid, points[n : n + 5000], params if n == 0 else None, dict(items) if n == 0 else None)
    report.add("metric points", len(points))
    report.add("params", len(params))
    folder = _local_path(run.get("artifact_uri"))
    if folder is not None and folder.is_dir():
        files: dict[str, list[Any]] = {}
        for rel, path in _files_under(folder):
            files[f"0/{rid}/artifacts/{rel}"] = [store.artifacts.put_file(path), path.stat().st_size]
        if files:
            store.mlflow_record_files(files)
            report.add("artifacts", len(files))
    elif run.get("artifact_uri"):
        report.unmapped.append(f"run {rid}: artifacts at {run['artifact_uri']} are not on this machine; not copied")
    end = run.get("end_time")
    store.mlflow_update_run(rid, _status(run.get("status")), float(end) / 1000.0 if end else None)


def _version_folder(src: _Source, v: Mapping[str, Any], runs: Mapping[str, Mapping[str, Any]]) -> Path | None:
    source = str(v.get("source") or "")
    storage = v.get("storage_location")
    candidates: list[str | None] = [storage]
    if source.startswith("models:/"):
        model_id = source[len("models:/") :].strip("/")
        candidates.append(src.logged_models.get(model_id) or src.logged_models.get(str(v.get("model_id"))))
    elif source.startswith("runs:/"):
        run_id, _, sub = source[len("runs:/") :].partition("/")
        base = runs.get(run_id, {}).get("artifact_uri")
        candidates.append(f"{str(base).rstrip('/')}/{sub}" if base else None)
    else:
        candidates.append(source)
    if v.get("model_id"):
        candidates.append(src.logged_models.get(str(v["model_id"])))
    for c in candidates:
        folder = _local_path(c)
        if folder is not None and (folder / MLMODEL).is_file():
            return folder
    return None


def _copy_version(
    store: Any, src: _Source, v: Mapping[str, Any], runs: Mapping[str, Mapping[str, Any]], actor: str | None
) -> ModelVersion:
    folder = _version_folder(src, v, runs)
    if folder is None:
        raise NotFoundError(f"its files ({v.get('source')}) are not on this machine or hold no {MLMODEL}")
    files = {rel: store.artifacts.put_file(path) for rel, path in _files_under(folder)}
    run_id = v.get("run_id") or None
    if run_id is not None:
        try:
            store.get_run(run_id)
        except NotFoundError:
            run_id = None
    return register_mlflow_model(
        store, str(v["name"]), files, run_id=run_id, source=str(v.get("source") or ""), actor=actor
    )
