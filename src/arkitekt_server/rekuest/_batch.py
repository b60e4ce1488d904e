"""One batch of the store's changes as one statement (PostgreSQL): one round trip per batch.

Between replicas every batch is on a call's path (the caller's replica stores the call, the
agent's replica its answer), so a batch is written as a single autocommit statement instead of
a transaction of several (``BEGIN``, one statement per kind of change, ``COMMIT``): each kind is
a data-modifying CTE over ``unnest`` of one array per column, and the notifications are sent by
the same statement. Events carry their messages in their notification (``e:<replica>:<json>``,
while it fits in a payload), so that their receiver need not read them (see
:mod:`~arkitekt_server.rekuest._relay`).

All CTEs of one statement see the rows as they were before it; so a batch is foldable only if
its events do not depend on a row it inserts or re-routes (:func:`foldable`); the store writes
the others as a transaction. The SQL text holds only the table's own column names and numbered
parameters (``# noqa: S608``); every value is a parameter.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import JSON, Boolean, Integer, Table
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from arkitekt_server._db import UTCDateTime
from arkitekt_server.rekuest._models import AssignmentRow

__all__ = ["PAYLOAD_BYTES", "foldable", "write_batch"]

PAYLOAD_BYTES = 7900
"""The longest notification payload with messages (PostgreSQL refuses 8000 bytes and more);
a longer one is sent as ``e:<replica>`` alone, and its receiver reads its events."""

_ASSIGNMENTS = cast(Table, AssignmentRow.__table__)
_ROUTING = frozenset({"replica", "caller_replica"})


def _element(column: str) -> str:
    kind = _ASSIGNMENTS.c[column].type
    if isinstance(kind, JSON):
        return "json"
    if isinstance(kind, UTCDateTime):
        return "timestamp"
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, Integer):
        return "integer"
    return "text"


_ELEMENTS = {column.name: _element(column.name) for column in _ASSIGNMENTS.columns}
_COLUMNS = list(_ELEMENTS)


def foldable(
    inserts: dict[str, dict[str, Any]],
    updates: dict[str, dict[str, Any]],
    events: Sequence[tuple[str, str, str]],
) -> bool:
    """Whether one statement writes this batch as a transaction would.

    Not when an event is a cancel for an agent (it may end a waiting row, which needs the
    event written first), or its receiver comes from a row the same batch inserts or
    re-routes (the statement would see that row as it was).
    """
    for to, id, _ in events:
        if to == "agent" or id in inserts or not _ROUTING.isdisjoint(updates.get(id, ())):
            return False
    return True


async def write_batch(
    connection: AsyncConnection,
    inserts: dict[str, dict[str, Any]],
    updates: dict[str, dict[str, Any]],
    logs: list[dict[str, Any]],
    events: Sequence[tuple[str, str, str]],
    notices: Iterable[str],
    channel: str | None,
    handoffs: dict[str, str] | None = None,
) -> list[str]:
    """Write a :func:`foldable` batch in one statement on an autocommit ``connection``;
    returns the ids of inserts stored before (not stored again).

    Events and notices are sent on ``channel`` (none without one), and each of ``handoffs``
    (insert id -> notification) if that insert was stored.
    """
    sql, params = _statement(inserts, updates, logs, events, notices, channel, handoffs or {})
    result = await connection.exec_driver_sql(sql, tuple(params))
    new = set(result.scalar_one() or ())
    return [id for id in inserts if id not in new]


class _Params:
    """The statement's parameters: one array each, referred to as ``$n::type[]``."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def array(self, values: list[Any], element: str) -> str:
        self.values.append(values)
        # json travels as text and is cast per element (asyncpg has no json[] codec default)
        sent = "text" if element == "json" else element
        return f"${len(self.values)}::{sent}[]"

    def scalar(self, value: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::text"

    def column(self, column: str, rows: Iterable[dict[str, Any]]) -> str:
        element = _ELEMENTS[column]
        return self.array([_bound(column, element, row[column]) for row in rows], element)


def _bound(column: str, element: str, value: Any) -> Any:
    """``value`` as asyncpg sends it for ``column`` (what the ORM's types would make of it)."""
    try:
        if element == "json":
            return json.dumps(value)
        if element == "timestamp" and value is not None:
            if not isinstance(value, dt.datetime) or value.tzinfo is None:
                raise ValueError("naive datetimes are ambiguous; use utcnow()")
            return value.astimezone(dt.UTC).replace(tzinfo=None)
    except (TypeError, ValueError) as error:  # refused data, as the ORM would report it
        raise StatementError(f"{column}: {error}", None, None, error) from error
    return value


def _name(column: str) -> str:
    return f'"{column}"'


def _read(column: str, source: str) -> str:
    return f"{source}::json" if _ELEMENTS[column] == "json" else source


def _statement(
    inserts: dict[str, dict[str, Any]],
    updates: dict[str, dict[str, Any]],
    logs: list[dict[str, Any]],
    events: Sequence[tuple[str, str, str]],
    notices: Iterable[str],
    channel: str | None,
    handoffs: dict[str, str],
) -> tuple[str, list[Any]]:
    params = _Params()
    ctes: list[str] = []
    new = "ARRAY[]::text[]"
    if inserts:
        rows = list(inserts.values())
        arrays = ", ".join(params.column(column, rows) for column in _COLUMNS)
        aliases = ", ".join(f"c{n}" for n in range(len(_COLUMNS)))
        values = ", ".join(_read(column, f"u.c{n}") for n, column in enumerate(_COLUMNS))
        ctes.append(
            f"ins AS (INSERT INTO rekuest_assignment ({', '.join(map(_name, _COLUMNS))}) "  # noqa: S608
            f"SELECT {values} FROM unnest({arrays}) AS u({aliases}) "
            "ON CONFLICT (id) DO NOTHING RETURNING id)"
        )
        new = "ARRAY(SELECT id FROM ins)"
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for id, fields in updates.items():
        groups.setdefault(tuple(sorted(fields)), []).append({**fields, "id": id})
    for n, (keys, rows) in enumerate(groups.items()):
        arrays = ", ".join(params.column(column, rows) for column in ("id", *keys))
        aliases = ", ".join(f"c{k}" for k in range(len(keys) + 1))
        sets = ", ".join(
            f"{_name(key)} = {_read(key, f'v.c{k + 1}')}" for k, key in enumerate(keys)
        )
        ctes.append(
            f"upd{n} AS (UPDATE rekuest_assignment AS a SET {sets} "  # noqa: S608
            f"FROM unnest({arrays}) AS v({aliases}) WHERE a.id = v.c0)"
        )
    if logs:
        arrays = ", ".join(
            params.array([_bound(key, element, log[key]) for log in logs], element)
            for key, element in (
                ("assignment_id", "text"),
                ("level", "text"),
                ("message", "text"),
                ("at", "timestamp"),
            )
        )
        ctes.append(
            "logs AS (INSERT INTO rekuest_log (assignment_id, level, message, at) "  # noqa: S608
            f"SELECT * FROM unnest({arrays}))"
        )
    told = "0"
    if channel is not None:
        told = _notifications(params, ctes, events, sorted(set(notices)), channel)
        if handoffs and inserts:
            ids = params.array(list(handoffs), "text")
            payloads = params.array(list(handoffs.values()), "text")
            ctes.append(  # only those of calls stored now (not of an id stored before)
                f"handed AS (SELECT pg_notify({params.scalar(channel)}, h.p) "  # noqa: S608
                f"FROM unnest({ids}, {payloads}) AS h(id, p) JOIN ins ON ins.id = h.id)"
            )
            told = f"{told} + (SELECT count(*) FROM handed)"  # noqa: S608
    head = f"WITH {', '.join(ctes)} " if ctes else ""
    return f"{head}SELECT {new} AS new, {told} AS told", params.values


def _notifications(
    params: _Params,
    ctes: list[str],
    events: Sequence[tuple[str, str, str]],
    notices: list[str],
    channel: str,
) -> str:
    """Add the CTEs that insert ``events`` and notify their receivers and ``notices``; returns
    the expression that counts the notifications (referring to it makes them run)."""
    sources: list[str] = []
    if events:
        to = params.array([to for to, _, _ in events], "text")
        ids = params.array([id for _, id, _ in events], "text")
        messages = params.array([text for _, _, text in events], "text")
        target = "CASE WHEN g.t = 'caller' THEN a.caller_replica ELSE a.replica END"
        ctes.append(
            "sent AS (INSERT INTO rekuest_event (replica, assignment_id, message) "  # noqa: S608
            f"SELECT {target}, a.id, g.m FROM unnest({to}, {ids}, {messages}) "
            "WITH ORDINALITY AS g(t, aid, m, n) JOIN rekuest_assignment AS a ON a.id = g.aid "
            f"WHERE {target} IS NOT NULL ORDER BY g.n "
            "RETURNING id, replica, assignment_id, message)"
        )
        carried = (
            "SELECT replica, 'e:' || replica || ':' || json_agg(json_build_array(id, "
            "assignment_id, message) ORDER BY id)::text AS q FROM sent GROUP BY replica"
        )
        sources.append(
            f"SELECT CASE WHEN octet_length(q) <= {PAYLOAD_BYTES} THEN q "  # noqa: S608
            f"ELSE 'e:' || replica END FROM ({carried}) AS r"
        )
    if notices:
        sources.append(f"SELECT unnest({params.array(notices, 'text')})")
    if not sources:
        return "0"
    ctes.append(
        f"told AS (SELECT pg_notify({params.scalar(channel)}, p) FROM "  # noqa: S608
        f"({' UNION ALL '.join(sources)}) AS x(p))"
    )
    return "(SELECT count(*) FROM told)"
