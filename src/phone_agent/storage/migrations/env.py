"""Alembic environment: runs on the connection handed over by phone_agent.storage.migrate."""

from __future__ import annotations

from alembic import context

from phone_agent.storage.tables import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations with `phone-agent db upgrade`, which provides the connection.")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
