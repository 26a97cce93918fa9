"""Alembic environment of the metadata store: migrations run on the store's own connection."""

from __future__ import annotations

from alembic import context

from mlwarden.store.schema import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always hands its connection in
    raise RuntimeError("mlwarden runs its migrations through Store.migrate(), not the alembic CLI.")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
