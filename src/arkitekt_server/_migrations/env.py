"""Alembic's environment: run the migrations on the connection the caller opened.

Loaded by Alembic (never imported by the server). :func:`arkitekt_server._migrations.upgrade`
puts its connection, already inside a transaction, in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from arkitekt_server._migrations._schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata(),
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
