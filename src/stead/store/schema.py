"""Every table of the metadata store, in one place (layer: store).

SQLAlchemy Core tables, the same on SQLite and PostgreSQL. Times are seconds since the epoch (UTC) as
double precision: one portable type that orders and compares cheaply. JSON documents are stored as
text (``JSONText``) so both backends read them the same way. Each change here ships with an Alembic
migration under ``migrations/versions``; ``tests/store/test_migrations.py`` checks that the migrations
produce exactly these tables.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class JSONText(TypeDecorator[Any]):
    """A JSON document stored as text; NaN and infinities are kept (Python's json writes them)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(value)


def _id(name: str = "id") -> Column[Any]:
    return Column(name, String(64), nullable=False)


store_info = Table(
    "store_info",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# ---------------------------------------------------------------- tracking
experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("created_at", Double, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    _id(),
    Column("experiment_id", Integer, nullable=False),
    Column("name", String(256)),
    Column("status", String(16), nullable=False),
    Column("start_time", Double, nullable=False),
    Column("end_time", Double),
    Column("heartbeat_at", Double),
    Column("seed", BigInteger),
    Column("env", JSONText),
    Column("error", Text),
    Column("created_by", String(256)),
    PrimaryKeyConstraint("id"),
    ForeignKeyConstraint(["experiment_id"], ["experiments.id"]),
    Index(None, "experiment_id", "start_time"),
    Index(None, "status", "heartbeat_at"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(64), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    Index(None, "key", "run_id"),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(64), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Text, nullable=False),
    PrimaryKeyConstraint("run_id", "key"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    Index(None, "key", "run_id"),
)

# Every logged point. ``value`` is NULL and ``nonfinite`` holds 'nan', 'inf' or '-inf' for the values SQL
# cannot keep faithfully (SQLite turns NaN into NULL).
metrics = Table(
    "metrics",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Double, nullable=False),
    Column("value", Double),
    Column("nonfinite", String(4)),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    Index(None, "run_id", "key", "step"),
)

# The latest value of each metric of a run (highest step, then latest timestamp): what search filters on.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(64), nullable=False),
    Column("key", String(250), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Double, nullable=False),
    Column("value", Double),
    Column("nonfinite", String(4)),
    PrimaryKeyConstraint("run_id", "key"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    Index(None, "key", "value"),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(64), nullable=False),
    Column("name", String(1024), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    PrimaryKeyConstraint("run_id", "name"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
)

datasets = Table(
    "datasets",
    metadata,
    _id(),
    Column("name", String(256), nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("columns", Integer, nullable=False),
    Column("schema", JSONText, nullable=False),
    Column("profile", JSONText, nullable=False),
    Column("data_digest", String(64)),
    Column("sample_digest", String(64)),
    Column("source", Text),
    Column("created_at", Double, nullable=False),
    PrimaryKeyConstraint("id"),
    Index(None, "name", "created_at"),
)

dataset_uses = Table(
    "dataset_uses",
    metadata,
    Column("run_id", String(64), nullable=False),
    Column("dataset_id", String(64), nullable=False),
    Column("role", String(128), nullable=False),
    Column("name", String(256), nullable=False),
    Column("at", Double, nullable=False),
    PrimaryKeyConstraint("run_id", "dataset_id", "role"),
    ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["dataset_id"], ["datasets.id"]),
    Index(None, "dataset_id"),
)

# ---------------------------------------------------------------- registry
models = Table(
    "models",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("created_at", Double, nullable=False),
    Column("description", Text),
    Column("next_version", Integer, nullable=False, default=1),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("run_id", String(64)),
    Column("flavor", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_reason", Text),
    Column("signature", JSONText),
    Column("manifest", JSONText, nullable=False),
    Column("requirements", JSONText),
    Column("allow_pickle", Boolean, nullable=False, default=False),
    Column("gate_results", JSONText),
    Column("metrics", JSONText),
    Column("source", Text),
    Column("created_at", Double, nullable=False),
    Column("created_by", String(256)),
    PrimaryKeyConstraint("name", "version"),
    ForeignKeyConstraint(["name"], ["models.name"]),
    Index(None, "run_id"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("name", String(128), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("updated_at", Double, nullable=False),
    PrimaryKeyConstraint("name", "alias"),
    ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"]),
)

alias_audit = Table(
    "alias_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("alias", String(128), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("actor", String(256), nullable=False),
    Column("reason", Text),
    Column("outcome", String(16), nullable=False),
    Column("at", Double, nullable=False),
    Index(None, "name", "at"),
)

# Risky or administrative acts that are not alias moves: trust (pickle opt-in), forced deploys, state changes.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(512), nullable=False),
    Column("reason", Text),
    Column("details", JSONText),
    Index(None, "target", "at"),
)

# ---------------------------------------------------------------- deployments and serving
deployments = Table(
    "deployments",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("model", String(128), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

# Every revision of a deployment's routes; ``routes`` is a list of {version, kind, weight} where kind is
# primary, canary, ab or shadow.
deployment_revisions = Table(
    "deployment_revisions",
    metadata,
    Column("deployment", String(128), nullable=False),
    Column("revision", Integer, nullable=False),
    Column("routes", JSONText, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("reason", Text),
    Column("source", String(32), nullable=False),
    Column("at", Double, nullable=False),
    PrimaryKeyConstraint("deployment", "revision"),
    ForeignKeyConstraint(["deployment"], ["deployments.name"]),
)

# Columnar prediction-log segments (Parquet blobs in the artifact store), indexed here for scans by time.
prediction_segments = Table(
    "prediction_segments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(128), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("min_time", Double, nullable=False),
    Column("max_time", Double, nullable=False),
    Column("writer", String(128), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    UniqueConstraint("writer", "sequence"),
    Index(None, "deployment", "max_time"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("deployment", String(128), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("label", JSONText, nullable=False),
    Column("at", Double, nullable=False),
    PrimaryKeyConstraint("deployment", "request_id"),
    Index(None, "deployment", "at"),
)

# Per-version health written by every serving worker every few seconds: what canary analysis reads.
serving_stats = Table(
    "serving_stats",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("deployment", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("route", String(16), nullable=False),
    Column("worker", String(128), nullable=False),
    Column("window_start", Double, nullable=False),
    Column("window_end", Double, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("errors_4xx", Integer, nullable=False),
    Column("errors_5xx", Integer, nullable=False),
    Column("latency", JSONText, nullable=False),
    Index(None, "deployment", "window_end"),
)

# ---------------------------------------------------------------- monitoring
monitor_reports = Table(
    "monitor_reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("deployment", String(128), nullable=False),
    Column("model", String(128)),
    Column("version", Integer),
    Column("at", Double, nullable=False),
    Column("window_start", Double),
    Column("window_end", Double),
    Column("rows", Integer, nullable=False),
    Column("drift_share", Double),
    Column("drifted", Boolean),
    Column("report", JSONText, nullable=False),
    Index(None, "deployment", "at"),
)

drift_points = Table(
    "drift_points",
    metadata,
    Column("report_id", Integer, nullable=False),
    Column("deployment", String(128), nullable=False),
    Column("at", Double, nullable=False),
    Column("feature", String(256), nullable=False),
    Column("method", String(32), nullable=False),
    Column("statistic", Double),
    Column("p_value", Double),
    Column("drifted", Boolean, nullable=False),
    PrimaryKeyConstraint("report_id", "feature"),
    ForeignKeyConstraint(["report_id"], ["monitor_reports.id"], ondelete="CASCADE"),
    Index(None, "deployment", "feature", "at"),
)

# ``open_key`` is "<deployment>|<rule>" while the alert is open and NULL once resolved, so the unique
# constraint allows one open alert per rule (NULLs never collide) and any number of resolved ones.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(256), nullable=False),
    Column("deployment", String(128), nullable=False),
    Column("opened_at", Double, nullable=False),
    Column("resolved_at", Double),
    Column("acknowledged", Boolean, nullable=False, default=False),
    Column("acknowledged_by", String(256)),
    Column("open_key", String(400), unique=True),
    Column("report_id", Integer),
    Column("details", JSONText),
    Index(None, "deployment", "opened_at"),
)

# ---------------------------------------------------------------- the closed loop
trigger_firings = Table(
    "trigger_firings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("idempotency_key", String(256), nullable=False, unique=True),
    Column("cause", JSONText),
    Column("fired_at", Double, nullable=False),
    Column("pipeline_run_id", String(64)),
    Index(None, "model", "fired_at"),
)

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    _id(),
    Column("model", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("reason", Text),
    Column("run_id", String(64)),
    Column("version", Integer),
    Column("steps", JSONText, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("ended_at", Double),
    Column("error", Text),
    PrimaryKeyConstraint("id"),
    Index(None, "model", "started_at"),
)

rollouts = Table(
    "rollouts",
    metadata,
    _id(),
    Column("deployment", String(128), nullable=False),
    Column("model", String(128), nullable=False),
    Column("candidate", Integer, nullable=False),
    Column("baseline", Integer),
    Column("steps", JSONText, nullable=False),
    Column("step_index", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("pipeline_run_id", String(64)),
    Column("started_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    PrimaryKeyConstraint("id"),
    Index(None, "deployment", "status"),
)

canary_decisions = Table(
    "canary_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", String(64), nullable=False),
    Column("at", Double, nullable=False),
    Column("step", Integer, nullable=False),
    Column("decision", String(16), nullable=False),
    Column("evidence", JSONText, nullable=False),
    ForeignKeyConstraint(["rollout_id"], ["rollouts.id"]),
    Index(None, "rollout_id", "at"),
)

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(256), nullable=False),
    Column("expires_at", Double, nullable=False),
)

# ---------------------------------------------------------------- lineage
# Nodes are addressed as "<kind>:<id>" (dataset:<hash>, run:<id>, version:<name>/<n>, deployment:<name>,
# report:<id>, alert:<id>, pipeline:<id>). Edges are written at the moment things happen.
lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("source", String(400), nullable=False),
    Column("target", String(400), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("at", Double, nullable=False),
    Column("attrs", JSONText),
    UniqueConstraint("source", "target", "kind"),
    Index(None, "target"),
)

# ---------------------------------------------------------------- MLflow compatibility (issue 10)
# What MLflow's API knows and stead's own tables do not: experiment and registered-model tags, run lifecycle
# (deleted/restored), MLflow 3 logged models, model-version tags, and the id mapping of `stead import mlflow`.
# One JSON document per (kind, key).
mlflow_objects = Table(
    "mlflow_objects",
    metadata,
    Column("kind", String(32), nullable=False),
    Column("key", String(400), nullable=False),
    Column("doc", JSONText, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    PrimaryKeyConstraint("kind", "key"),
)

# The artifact proxy's files that belong to no run (logged models' files): MLflow artifact path -> blob.
# Files under "<experiment>/<run id>/artifacts/" are run artifacts and live in ``run_artifacts``.
mlflow_files = Table(
    "mlflow_files",
    metadata,
    Column("path", String(1024), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    PrimaryKeyConstraint("path"),
)
