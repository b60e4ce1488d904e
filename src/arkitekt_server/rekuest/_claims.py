"""The SQL of rekuest between replicas (PostgreSQL): claims, leases, the replicas' liveness.

Each function runs on a connection inside the caller's transaction; none commits. A replica
*claims* queued rows for its agents (``FOR UPDATE SKIP LOCKED``, so two replicas never take the
same row) and holds them by a lease it renews; a row whose lease lapsed (its replica died) is
queued again by whichever replica notices. Messages for another replica are *event* rows, whose
receiver is found from the assignment's row when written (so a caller that resumed elsewhere
gets them), announced by ``NOTIFY`` (``e:<replica>``, ``work``,
``agents``); the receiver reads (and deletes) its rows, unless their notification carried
them (:mod:`~arkitekt_server.rekuest._inbox`). Their SQL is in
:mod:`~arkitekt_server.rekuest._events` and :mod:`~arkitekt_server.rekuest._batch`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    Row,
    Select,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningUpdate

from arkitekt_server.rekuest._models import (
    AgentRow,
    AssignmentRow,
    DefinitionRow,
    EventRow,
    ReplicaRow,
)

__all__ = [
    "CHANNEL",
    "CLAIM_BATCH",
    "adopt",
    "alive",
    "claim",
    "directory",
    "expire_queued",
    "heartbeat",
    "reap",
    "resume",
    "take",
]

ASSIGNMENTS = cast(Table, AssignmentRow.__table__)
EVENTS = cast(Table, EventRow.__table__)
REPLICAS = cast(Table, ReplicaRow.__table__)
AGENTS = cast(Table, AgentRow.__table__)
UNFINISHED = ("queued", "assigned")
CHANNEL = "arkitekt_rekuest"
"""The NOTIFY channel of every replica."""
CLAIM_BATCH = 500
"""Rows claimed (and events read) in one transaction at most."""


async def expire_queued(
    connection: AsyncConnection, endings: Sequence[tuple[str, str, str]]
) -> list[str]:
    """End the rows of ``endings`` (``(id, error kind, message)``) that no replica claimed
    yet; returns their ids."""
    a = ASSIGNMENTS.c
    ended: list[str] = []
    for id, kind, message in endings:
        status = "cancelled" if kind == "cancelled" else "error"
        result = await connection.execute(
            update(ASSIGNMENTS)
            .where(a.id == id, a.status == "queued")
            .values(status=status, error_kind=kind, error=message, finished_at=func.now())
            .returning(a.id)
        )
        ended += result.scalars()
    return ended


async def heartbeat(connection: AsyncConnection, replica: str, until: dt.datetime) -> None:
    """Keep ``replica`` alive and renew its leases until ``until``."""
    upsert = pg_insert(REPLICAS).values(id=replica, alive_until=until)
    await connection.execute(
        upsert.on_conflict_do_update(index_elements=["id"], set_={"alive_until": until})
    )
    a = ASSIGNMENTS.c
    await connection.execute(
        update(ASSIGNMENTS)
        .where(a.replica == replica, a.status == "assigned")
        .values(lease_until=until)
    )


async def claim(
    connection: AsyncConnection,
    replica: str,
    wanted: dict[str, set[str]],
    until: dt.datetime,
    now: dt.datetime,
) -> Sequence[Row[Any]]:
    """Claim for ``replica`` (leased until ``until``) the oldest queued rows it has agents
    for, in one statement (rows another replica is claiming are skipped, and rows handed to
    another replica while their lease holds, see :mod:`._inbox`).

    Args:
        connection: an autocommit connection (the statement is its own transaction).
        replica: the claiming replica.
        wanted: function -> the names and keys of the agents here that provide it (a row
            with an agent filter is taken only if it names one of them).
        until: the lease.
        now: the time (a lease before it lapsed).
    """
    pairs: list[tuple[str, str | None]] = [
        (function, name) for function, names in sorted(wanted.items()) for name in sorted(names)
    ]
    pairs += [(function, None) for function, names in wanted.items() if not names]
    result = await connection.execute(
        _CLAIM,
        {
            "c_function": [function for function, _ in pairs],
            "c_name": [name for _, name in pairs],
            "c_replica": replica,
            "c_until": until,
            "c_now": now,
        },
    )
    rows: Sequence[Row[Any]] = result.all()
    return rows


def _claim() -> ReturningUpdate[Any]:
    """The statement of :func:`claim` (built once: it runs on every call's path)."""
    a = ASSIGNMENTS.c
    wanted = (
        func.unnest(
            bindparam("c_function", type_=ARRAY(Text)), bindparam("c_name", type_=ARRAY(Text))
        )
        .table_valued("f", "agent")
        .render_derived(name="wanted")
    )
    fits = (
        select(literal(1))
        .select_from(wanted)
        .where(
            wanted.c.f == a.function,
            or_(a.agent_filter.is_(None), a.agent_filter == wanted.c.agent),
        )
        .exists()
    )
    free = or_(
        a.replica.is_(None),
        a.replica == bindparam("c_replica", type_=ASSIGNMENTS.c.replica.type),
        a.lease_until.is_(None),
        a.lease_until < bindparam("c_now", type_=ASSIGNMENTS.c.lease_until.type),
    )
    oldest = (
        select(a.id)
        .where(a.status == "queued", fits, free)
        .order_by(a.created_at)
        .limit(CLAIM_BATCH)
        .with_for_update(skip_locked=True)
    )
    return (
        update(ASSIGNMENTS)
        .where(a.id.in_(oldest), a.status == "queued")
        .values(
            status="assigned",
            replica=bindparam("c_replica", type_=ASSIGNMENTS.c.replica.type),
            lease_until=bindparam("c_until", type_=ASSIGNMENTS.c.lease_until.type),
        )
        .returning(*ASSIGNMENTS.c)
    )


_CLAIM = _claim()


async def take(
    connection: AsyncConnection, replica: str, ids: list[str], until: dt.datetime
) -> None:
    """Mark the (locked) rows ``ids`` assigned to ``replica``, leased until ``until``."""
    if ids:
        await connection.execute(
            update(ASSIGNMENTS)
            .where(ASSIGNMENTS.c.id.in_(ids))
            .values(status="assigned", replica=replica, lease_until=until)
        )


async def adopt(
    connection: AsyncConnection, replica: str, ids: list[str], agent_key: str, until: dt.datetime
) -> Sequence[Row[Any]]:
    """Claim the unfinished rows of ``ids`` last given to ``agent_key``: it reconnected here
    while holding them (their old replica died, or lost it)."""
    a = ASSIGNMENTS.c
    rows = (
        await connection.execute(
            select(ASSIGNMENTS)
            .where(a.id.in_(ids), a.status.in_(UNFINISHED), a.agent_key == agent_key)
            .with_for_update()
        )
    ).all()
    await take(connection, replica, [row.id for row in rows], until)
    return rows


async def resume(
    connection: AsyncConnection, replica: str, ids: list[str], caller_pk: int
) -> tuple[Sequence[Row[Any]], set[str]]:
    """The rows of ``ids`` of app ``caller_pk``, and which of them have events not yet read;
    the rows and those events answer ``replica`` from now on."""
    a = ASSIGNMENTS.c
    rows = (
        await connection.execute(
            select(ASSIGNMENTS).where(a.id.in_(ids), a.caller_pk == caller_pk).with_for_update()
        )
    ).all()
    mine = [row.id for row in rows]
    if not mine:
        return rows, set()
    await connection.execute(
        update(ASSIGNMENTS).where(a.id.in_(mine)).values(caller_replica=replica)
    )
    moved = await connection.execute(
        update(EVENTS)
        .where(EVENTS.c.assignment_id.in_(mine))
        .values(replica=replica)
        .returning(EVENTS.c.assignment_id)
    )
    pending = set(moved.scalars())
    left = [  # the replica the caller left lets go of them (cancelling nothing)
        {"replica": row.caller_replica, "assignment_id": row.id, "message": _moved(row.id)}
        for row in rows
        if row.caller_replica not in (None, replica)
    ]
    if left:
        await connection.execute(insert(EVENTS), left)
        for old in {event["replica"] for event in left}:
            await connection.execute(select(func.pg_notify(CHANNEL, f"e:{old}")))
    return rows, pending


def _moved(id: str) -> str:
    return json.dumps({"t": "moved", "id": id})


def alive(now: dt.datetime) -> Select[Any]:
    """The ids of the replicas alive at ``now``."""
    return select(REPLICAS.c.id).where(REPLICAS.c.alive_until >= now)


async def directory(
    connection: AsyncConnection, now: dt.datetime
) -> tuple[list[Row[Any]], list[Row[Any]], set[str]]:
    """Every agent, every definition, and the agents online on a live replica (their keys)."""
    agents = list((await connection.execute(select(AGENTS))).all())
    definitions = list((await connection.execute(select(DefinitionRow.__table__))).all())
    online = await connection.execute(
        select(AGENTS.c.key).where(AGENTS.c.connected, AGENTS.c.replica.in_(alive(now)))
    )
    return agents, definitions, set(online.scalars())


async def reap(
    connection: AsyncConnection, now: dt.datetime, grace_until: dt.datetime
) -> tuple[int, list[tuple[str, str, str]], bool]:
    """Queue again the rows whose lease lapsed (waiting until ``grace_until``), fail the
    queued rows whose wait is over, and mark the agents of dead replicas offline.

    Returns:
        How many rows were queued again, the events for the callers of the failed rows, and
        whether agents went offline.
    """
    a = ASSIGNMENTS.c
    lapsed = await connection.execute(
        update(ASSIGNMENTS)
        .where(a.status == "assigned", a.lease_until < now)
        .values(status="queued", replica=None, lease_until=None, wait_until=grace_until)
        .returning(a.id)
    )
    requeued = len(lapsed.all())
    over = (
        await connection.execute(
            select(a.id, a.function, a.attempts)
            .where(a.status == "queued", a.wait_until < now)
            .with_for_update(skip_locked=True)
        )
    ).all()
    events: list[tuple[str, str, str]] = []
    if over:
        failures = [_failure(row.id, row.function, row.attempts) for row in over]
        await connection.execute(
            update(ASSIGNMENTS)
            .where(a.id == bindparam("b_id"))
            .values(
                status="error",
                error_kind=bindparam("b_kind"),
                error=bindparam("b_message"),
                finished_at=now,
            ),
            failures,
        )
        for failure in failures:
            message = {"t": "error", "id": failure["b_id"], "kind": failure["b_kind"]}
            message.update(m=failure["b_message"], tb=None)
            events.append(("caller", failure["b_id"], json.dumps(message)))
    gone = await connection.execute(
        update(AGENTS)
        .where(AGENTS.c.connected, AGENTS.c.replica.not_in(alive(now)))
        .values(connected=False)
        .returning(AGENTS.c.id)
    )
    offline = bool(gone.all())
    await connection.execute(
        delete(REPLICAS).where(REPLICAS.c.alive_until < now - dt.timedelta(days=1))
    )
    return requeued, events, offline


def _failure(id: str, function: str, attempts: int) -> dict[str, Any]:
    if attempts:
        kind = "lost"
        message = (
            f"the agent running {function!r} disconnected and no agent took the assignment "
            "over in time"
        )
    else:
        kind, message = "no_agent", f"no agent that provides {function!r} came online in time"
    return {"b_id": id, "b_kind": kind, "b_message": message}
