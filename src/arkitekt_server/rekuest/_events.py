"""The SQL of the messages between replicas (PostgreSQL): event rows and their notifications.

A message for another replica is an *event* row, whose receiver is found from the
assignment's row when written (so a caller that resumed elsewhere gets it), announced by
``NOTIFY`` (``e:<replica>``) in the same statement; the receiver reads (and deletes) its rows
(or, when the store's batch carried them in the notification, deletes them, :func:`ack_events`).
Each function runs on a connection inside the caller's transaction; none commits. The
statements on every call's path are built once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    Integer,
    Select,
    Text,
    any_,
    bindparam,
    case,
    column,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import ReturningDelete

from arkitekt_server.rekuest._claims import ASSIGNMENTS, CLAIM_BATCH, EVENTS, expire_queued

__all__ = ["ack_events", "forget", "post", "take_events"]


async def post(
    connection: AsyncConnection,
    channel: str,
    events: Sequence[tuple[str, str, str]],
    notices: Iterable[str],
) -> None:
    """Write ``events`` (``(to, assignment id, message)``; ``to`` is ``"caller"`` or
    ``"agent"``) and notify their receivers and ``notices`` on ``channel`` (at commit).

    Both take one statement each, whatever their number: events are inserted in their order
    (their ids, which their receiver reads them by, follow it) and notify their replicas in
    the same statement.
    """
    if events:
        await connection.execute(
            _SEND,
            {
                "s_to": [to for to, _, _ in events],
                "s_id": [id for _, id, _ in events],
                "s_message": [text for _, _, text in events],
                "s_channel": channel,
            },
        )
        cancels = [_ending(id, text) for to, id, text in events if to == "agent"]
        if cancels:  # a cancel of a row no replica claimed yet: it ends here
            ended = set(await expire_queued(connection, cancels))
            answers = [  # and its caller's replica is told, as by an agent's replica
                ("caller", id, json.dumps({"t": "error", "id": id, "kind": kind, "m": message}))
                for id, kind, message in cancels
                if id in ended
            ]
            if answers:
                await post(connection, channel, answers, ())
    told = sorted(set(notices))
    if told:
        await connection.execute(_NOTIFY, {"n_channel": channel, "n_payload": told})


def _send() -> Select[Any]:
    """The statement of :func:`post`'s events: ``s_to``, ``s_id``, ``s_message`` (arrays, one
    element per event) and ``s_channel``."""
    a = ASSIGNMENTS.c
    given = (
        func.unnest(
            bindparam("s_to", type_=ARRAY(Text)),
            bindparam("s_id", type_=ARRAY(Text)),
            bindparam("s_message", type_=ARRAY(Text)),
        )
        .table_valued("to_", "aid", "message", with_ordinality="n")
        .render_derived(name="given")
    )
    target = case((given.c.to_ == "caller", a.caller_replica), else_=a.replica)
    source = (
        select(target, a.id, given.c.message)
        .select_from(given.join(ASSIGNMENTS, a.id == given.c.aid))
        .where(target.is_not(None))
        .order_by(given.c.n)
    )
    columns = ["replica", "assignment_id", "message"]
    sent = insert(EVENTS).from_select(columns, source).returning(EVENTS.c.replica).cte("sent")
    receivers = select(sent.c.replica).distinct().subquery("receivers")
    payload = literal("e:") + receivers.c.replica
    return select(func.pg_notify(bindparam("s_channel", type_=Text), payload))


_SEND = _send()
_NOTIFY = select(func.pg_notify(bindparam("n_channel", type_=Text), column("payload"))).select_from(
    func.unnest(bindparam("n_payload", type_=ARRAY(Text))).alias("payload")
)


def _ending(id: str, text: str) -> tuple[str, str, str]:
    message = json.loads(text)
    kind = str(message.get("kind") or "cancelled")
    return id, kind, str(message.get("m") or "cancelled by its caller")


async def forget(connection: AsyncConnection, ids: Select[Any]) -> None:
    """Delete the events of the assignments ``ids`` selects (they are pruned)."""
    await connection.execute(delete(EVENTS).where(EVENTS.c.assignment_id.in_(ids)))


async def take_events(connection: AsyncConnection, replica: str) -> list[tuple[int, str, str]]:
    """Read and delete the oldest events for ``replica``: ``(id, assignment id, message)``."""
    result = await connection.execute(_TAKE_EVENTS, {"t_replica": replica})
    return sorted((row.id, row.assignment_id, row.message) for row in result.all())


async def ack_events(connection: AsyncConnection, replica: str, ids: list[int]) -> None:
    """Delete the events ``ids`` of ``replica`` (delivered from their notifications; those
    moved to another replica meanwhile stay, for it)."""
    await connection.execute(_ACK_EVENTS, {"k_replica": replica, "k_ids": ids})


def _take_events() -> ReturningDelete[Any, Any, Any]:
    """The statement of :func:`take_events` (built once: it runs on every call's path)."""
    e = EVENTS.c
    oldest = (
        select(e.id)
        .where(e.replica == bindparam("t_replica", type_=Text))
        .order_by(e.id)
        .limit(CLAIM_BATCH)
        .with_for_update(skip_locked=True)
    )
    return delete(EVENTS).where(e.id.in_(oldest)).returning(e.id, e.assignment_id, e.message)


_TAKE_EVENTS = _take_events()
_ACK_EVENTS = delete(EVENTS).where(
    EVENTS.c.replica == bindparam("k_replica", type_=Text),
    EVENTS.c.id == any_(bindparam("k_ids", type_=ARRAY(Integer))),
)
