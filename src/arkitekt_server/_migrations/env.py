"""Alembic's environment: run the migrations on the connection the caller opened.

Loaded by Alembic (never imported by the server). :func:`arkitekt_server._migrations.upgrade`
puts its connection, already inside a transaction, in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext

from arkitekt_server._db import UTCDateTime
from arkitekt_server._migrations._schema import metadata


def _render_item(kind: str, item: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # A new revision stores what the column holds (naive UTC), not the application's type.
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime()"
    return False


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata(),
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
    compare_type=True,
    render_item=_render_item,
)
with context.begin_transaction():
    context.run_migrations()
