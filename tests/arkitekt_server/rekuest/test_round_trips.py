"""The cost of a call between replicas, counted (not timed): the database round trips on its
path, its notifications, and answers carried by their notification (no read); plus the
inbox's ordering of carried and read events (no database)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, func, make_url, select

from arkitekt.protocol.rekuest_messages import Log
from arkitekt_server._db import Database
from arkitekt_server.rekuest._inbox import HANDED, Inbox, handed, handoff
from arkitekt_server.rekuest._models import EventRow
from arkitekt_server.rekuest._relay import CHANNEL
from tests.arkitekt_server.rekuest.hubs import (
    CALLER_PK,
    LEASE,
    FakePeer,
    WallClock,
    done,
    register_agent,
    started,
    stored_row,
)
from tests.helpers import until

ROUND_TRIPS = 2
"""Round trips on a call's path as measured: the caller's replica stores the call (its
notification hands it to the agent's replica: no claim), the agent's replica stores its
answer (its notification carries it: no read). 10 before batches became single statements
and calls and answers rode on their notifications."""


class RoundTrips:
    """Counts what an engine sends: statements, and ``BEGIN``/``COMMIT``/``ROLLBACK`` of
    connections that are not in autocommit mode (those send none)."""

    def __init__(self, database: Database) -> None:
        self.statements: list[str] = []
        engine = database.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._statement)
        for name in ("begin", "commit", "rollback"):
            event.listen(engine, name, self._transaction(name.upper()))

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(" ".join(statement.split())[:60])

    def _transaction(self, name: str) -> Any:
        def record(conn: Any) -> None:
            if not conn.connection.dbapi_connection.autocommit:
                self.statements.append(name)

        return record


@pytest.fixture
async def listening(database: Database) -> AsyncIterator[tuple[asyncpg.Connection, list[str]]]:
    """A connection listening on the replicas' channel, and the payloads it got."""
    url = make_url(database.url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    payloads: list[str] = []
    await connection.add_listener(CHANNEL, lambda *args: payloads.append(args[3]))
    try:
        yield connection, payloads
    finally:
        await connection.close()


@pytest.mark.anyio
async def test_a_call_between_replicas_takes_two_round_trips_no_claim_and_no_read(
    database: Database, listening: tuple[asyncpg.Connection, list[str]]
) -> None:
    listener, payloads = listening
    wall = WallClock()
    front, back = await started(database, wall, 2)
    for replica in (front, back):  # as their loops listen
        await listener.add_listener(CHANNEL, replica.relay.notified)
    agent = await register_agent(back)
    await front.settle("agents")
    await front.relay.round({"events"})  # caught up: answers may now come carried
    counted = RoundTrips(database)
    caller = FakePeer(CALLER_PK)
    for n in range(3):  # the first one warms connections and prepared statements
        id = f"call-{n:04d}"
        counted.statements.clear()
        payloads.clear()
        front.hub.call(caller, CALLER_PK, {"t": "call", "id": id, "f": "f"})
        await front.hub.store.flush()
        await until(lambda id=id: any(m["id"] == id for m in agent.of("assign")), 10)
        done(back, id, n)
        await back.hub.store.flush()
        await until(lambda id=id: any(m["id"] == id for m in caller.of("done")), 10)
        assert len(counted.statements) <= ROUND_TRIPS, counted.statements
        handed = [p for p in payloads if p.startswith(f"a:{back.relay.replica}:")]
        answers = [p for p in payloads if p.startswith(f"e:{front.relay.replica}:")]
        assert (len(handed), len(answers), len(payloads)) == (1, 1, 2), payloads
    assert [m["v"] for m in caller.of("done")] == [0, 1, 2]
    assert [m["id"] for m in agent.of("assign")] == ["call-0000", "call-0001", "call-0002"]
    await back.relay.round({"work"})  # a re-scan's claim does not dispatch them again
    assert len(agent.of("assign")) == 3
    async with database.sessions() as session:  # the answers were delivered, not read
        assert await session.scalar(select(func.count()).select_from(EventRow)) == 3
    await front.relay.round({"acks"})
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(EventRow)) == 0


@pytest.mark.anyio
async def test_answers_too_big_to_be_carried_are_read_and_keep_their_order(
    database: Database, listening: tuple[asyncpg.Connection, list[str]]
) -> None:
    listener, payloads = listening
    wall = WallClock()
    front, back = await started(database, wall, 2)
    await listener.add_listener(CHANNEL, front.relay.notified)
    await register_agent(back)
    await front.settle("agents", "events")
    caller = FakePeer(CALLER_PK)
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-big1", "f": "f", "events": True})
    await front.hub.store.flush()
    await back.relay.round({"work"})
    agent = next(iter(back.hub.agents.by_key.values()))
    back.hub.agent_message(agent, Log(t="log", id="call-big1", m="x" * 9000))
    await back.hub.store.flush()
    await until(lambda: f"e:{front.relay.replica}" in payloads, 10)  # bare: read it
    done(back, "call-big1", 5)
    await back.hub.store.flush()
    await until(lambda: any(p.startswith(f"e:{front.relay.replica}:") for p in payloads), 10)
    assert caller.sent == []  # the small answer waits for the read of the big line
    await front.relay.round({"events"})
    assert [(m["t"], len(m.get("m", ""))) for m in caller.sent] == [("log", 9000), ("done", 0)]
    assert caller.of("done")[0]["v"] == 5


def _events(*ids: int) -> str:
    return "[" + ",".join(f'[{id}, "a{id}", "{{\\"id\\": \\"a{id}\\"}}"]' for id in ids) + "]"


def test_carried_events_wait_for_a_due_read_and_are_delivered_once_in_order() -> None:
    got: list[str] = []
    inbox = Inbox(lambda message: got.append(message["id"]))
    assert not inbox.carried(_events(3))  # behind (nothing read yet): it waits
    assert got == []
    generation = inbox.generation
    # the read finds 1, 2 and 3 (3 was committed before it began) and 4 is carried meanwhile
    assert not inbox.carried(_events(4))
    assert inbox.read([(1, "a1", '{"id": "a1"}'), (2, "a2", '{"id": "a2"}'),
                       (3, "a3", '{"id": "a3"}')], generation, complete=True)  # fmt: skip
    assert got == ["a1", "a2", "a3", "a4"]
    assert inbox.unacked == {4}  # its row is left: acked later
    assert not inbox.behind
    assert inbox.carried(_events(5))  # caught up: at once
    assert got[-1] == "a5"
    assert inbox.read([(4, "a4", '{"id": "a4"}')], inbox.generation, complete=True) is False
    assert got[-1] == "a5"  # a re-scan does not deliver 4 again
    assert inbox.unacked == {5}
    inbox.acked([5])
    assert inbox.unacked == set()


def test_a_read_that_missed_a_notification_meanwhile_keeps_carried_events_waiting() -> None:
    got: list[str] = []
    inbox = Inbox(lambda message: got.append(message["id"]))
    generation = inbox.generation
    inbox.missed()  # a bare notification came while the read ran
    inbox.read([], generation, complete=True)
    assert inbox.behind
    assert not inbox.carried(_events(7))
    assert got == []
    inbox.read([(6, "a6", '{"id": "a6"}')], inbox.generation, complete=True)
    assert got == ["a6", "a7"]
    assert not inbox.behind


@pytest.mark.anyio
async def test_a_handed_call_waits_for_its_replica_while_the_lease_holds_then_goes_to_any(
    database: Database,
) -> None:
    wall = WallClock()
    front, dead, spare = await started(database, wall, 3)
    await register_agent(dead)
    await front.settle("agents")
    caller = FakePeer(CALLER_PK)
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-hand", "f": "f"})
    await front.settle()  # handed to `dead`, which never hears of it
    row = await stored_row(database, "call-hand")
    assert (row.status, row.replica) == ("queued", dead.relay.replica)
    late = await register_agent(spare)
    await spare.settle("work")
    assert late.of("assign") == []  # the lease holds: it is `dead`'s
    wall.now += dt.timedelta(seconds=LEASE * 2)
    await spare.settle("work")
    assert [m["id"] for m in late.of("assign")] == ["call-hand"]
    done(spare, "call-hand", 4)
    await spare.settle()
    await front.settle("events")
    assert [m["v"] for m in caller.of("done")] == [4]


@pytest.mark.anyio
async def test_a_claim_never_takes_again_a_handed_call_finished_but_not_written(
    database: Database, listening: tuple[asyncpg.Connection, list[str]]
) -> None:
    listener, _ = listening
    wall = WallClock()
    front, back = await started(database, wall, 2)
    await listener.add_listener(CHANNEL, back.relay.notified)
    agent = await register_agent(back)
    await front.settle("agents")
    caller = FakePeer(CALLER_PK)
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-once", "f": "f"})
    await front.settle()
    await until(lambda: len(agent.of("assign")) == 1, 10)
    done(back, "call-once", 3)  # not written yet: the row is still queued for `back`
    await back.relay.round({"work"})
    assert len(agent.of("assign")) == 1
    await back.settle()
    await front.settle("events")
    assert [m["v"] for m in caller.of("done")] == [3]
    assert (await stored_row(database, "call-once")).status == "done"


def test_a_handoff_carries_a_row_that_fits_and_nothing_else_is_taken_for_one() -> None:
    row = {key: None for key in HANDED} | {"id": "call-1", "function": "f", "caller_pk": 1}
    row |= {"args": {"x": 1}, "stream": False, "events": True, "attempts": 0}
    text = handoff("r1", row)
    assert text is not None
    assert text.startswith("a:r1:")
    got = handed(text.removeprefix("a:r1:"))
    assert got is not None
    assert (got.id, got.args, got.events) == ("call-1", {"x": 1}, True)
    assert handoff("r1", row | {"args": {"x": "y" * 8000}}) is None  # too big: claimed instead
    for bad in ("", "[]", '{"id": 1}', text.removeprefix("a:r1:").replace('"f"', "7")):
        assert handed(bad) is None
