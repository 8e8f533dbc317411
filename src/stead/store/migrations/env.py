"""Alembic environment: always runs on a connection handed in by ``stead.store.sql.migrate``."""

from __future__ import annotations

from alembic import context

from stead.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI by hand
    raise RuntimeError("stead migrations run through stead.store.sql.migrate(), not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
