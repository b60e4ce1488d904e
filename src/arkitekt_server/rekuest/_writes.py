"""The SQL helpers of the store's batched writes: inserts of ids not stored before, updates
grouped by the columns they change, and telling refused data from an unreachable database."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, Update, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from arkitekt_server.rekuest._models import AssignmentRow

__all__ = ["group", "insert_new", "refused", "stored", "update_of"]

_ASSIGNMENTS = cast(Table, AssignmentRow.__table__)


def group(updates: dict[str, dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Updates grouped by the set of columns they change (one executemany per group)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for id, fields in updates.items():
        keys = tuple(sorted(fields))
        row = {f"b_{key}": value for key, value in fields.items()}
        row["b_id"] = id
        groups.setdefault(keys, []).append(row)
    return groups


def update_of(keys: tuple[str, ...]) -> Update:
    """An executemany update of the columns ``keys`` (parameters ``b_<column>``, ``b_id``)."""
    return (
        update(_ASSIGNMENTS)
        .where(_ASSIGNMENTS.c.id == bindparam("b_id"))
        .values({key: bindparam(f"b_{key}") for key in keys})
    )


async def insert_new(connection: AsyncConnection, rows: dict[str, dict[str, Any]]) -> list[str]:
    """Insert the assignment ``rows`` (by id) whose ids are not stored yet; returns the others.

    On PostgreSQL one statement (``ON CONFLICT DO NOTHING RETURNING``) both finds and skips
    them; elsewhere they are looked up first.
    """
    if not rows:
        return []
    if connection.dialect.name == "postgresql":
        skipping = pg_insert(_ASSIGNMENTS).on_conflict_do_nothing(index_elements=["id"])
        result = await connection.execute(
            skipping.returning(_ASSIGNMENTS.c.id), list(rows.values())
        )
        new = set(result.scalars())
        return [id for id in rows if id not in new]
    duplicates = await stored(connection, list(rows))
    fresh = [row for id, row in rows.items() if id not in duplicates]
    if fresh:
        await connection.execute(insert(_ASSIGNMENTS), fresh)
    return duplicates


async def stored(connection: AsyncConnection, ids: list[str]) -> list[str]:
    """Which of ``ids`` are stored already."""
    found: list[str] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        result = await connection.execute(
            select(_ASSIGNMENTS.c.id).where(_ASSIGNMENTS.c.id.in_(chunk))
        )
        found += result.scalars()
    return found


def refused(error: BaseException) -> bool:
    """Whether the database refused the data (not: could not be reached)."""
    if isinstance(error, IntegrityError | DataError):
        return True
    return isinstance(error, StatementError) and not isinstance(error, DBAPIError)
