"""Routing between replicas, driven directly: three hubs with their relays on one PostgreSQL
database, peers that record what they are sent, wall clocks the test sets, and relay rounds
the test runs (no sockets, no sleeps, no relay loop)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
import pytest

from arkitekt_server._db import Database
from tests.arkitekt_server.rekuest.hubs import (
    CALLER_PK,
    LEASE,
    FakePeer,
    Replica,
    WallClock,
    done,
    register_agent,
    started,
    stored_row,
)
from tests.helpers import until


@pytest.mark.anyio
async def test_an_agent_on_one_replica_serves_a_caller_on_another(database: Database) -> None:
    wall = WallClock()
    front, back = await started(database, wall, 2)
    agent = await register_agent(back)
    await front.settle("agents")  # the front learns the agent is online on the back
    assert front.hub.agents.providing_elsewhere("f", None)

    caller = FakePeer(CALLER_PK)
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-0001", "f": "f"})
    await front.settle()
    assert (await stored_row(database, "call-0001")).status == "queued"
    await back.settle("work")  # claims it for its agent
    assert [m["id"] for m in agent.of("assign")] == ["call-0001"]
    row = await stored_row(database, "call-0001")
    assert (row.status, row.replica) == ("assigned", back.relay.replica)

    done(back, "call-0001", 7)
    await back.settle()
    assert caller.of("done") == []
    await front.settle("events")
    assert [(m["id"], m["v"]) for m in caller.of("done")] == [("call-0001", 7)]
    assert "call-0001" not in front.hub.jobs  # its slot is free again
    assert (await stored_row(database, "call-0001")).status == "done"


@pytest.mark.anyio
async def test_answers_written_in_one_batch_reach_the_caller_in_their_order(
    database: Database,
) -> None:
    wall = WallClock()
    front, back = await started(database, wall, 2)
    agent = await register_agent(back)
    await front.settle("agents")
    caller = FakePeer(CALLER_PK)
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-0001", "f": "f"})
    await front.settle()
    await back.settle("work")
    assert [m["id"] for m in agent.of("assign")] == ["call-0001"]

    for n in range(5):  # one batch: one statement writes them all
        back.hub.store.event("call-0001", "caller", {"t": "yield", "id": "call-0001", "n": n})
    done(back, "call-0001", 7)
    await back.settle()
    await front.settle("events")
    assert [(m["t"], m.get("n")) for m in caller.sent] == [
        *[("yield", n) for n in range(5)],
        ("done", None),
    ]
    row = await stored_row(database, "call-0001")  # the lazy dispatch record came with the finish
    assert (row.status, row.attempts, row.agent_key) == ("done", 1, agent_key(back))


@pytest.mark.anyio
async def test_a_lazy_change_alone_is_written_by_the_store(database: Database) -> None:
    wall = WallClock()
    front, back = await started(database, wall, 2)
    await register_agent(back)
    await front.settle("agents")
    front.hub.call(FakePeer(CALLER_PK), CALLER_PK, {"t": "call", "id": "call-0001", "f": "f"})
    await front.settle()
    await back.relay.round({"work"})  # claimed and dispatched; its record waits (lazy)
    assert (await stored_row(database, "call-0001")).attempts == 0

    async def written() -> bool:
        return (await stored_row(database, "call-0001")).attempts == 1

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(back.hub.store.run)
        await until(written)
        tasks.cancel_scope.cancel()


def agent_key(replica: Replica) -> str:
    return next(iter(replica.hub.agents.by_key))


@pytest.mark.anyio
async def test_a_dead_replicas_rows_go_to_the_replica_its_agent_reconnects_to(
    database: Database,
) -> None:
    wall = WallClock()
    front, back = await started(database, wall, 2)
    agent = await register_agent(back)
    await front.settle("agents")
    caller = FakePeer(CALLER_PK)
    for id in ("call-0001", "call-0002"):
        front.hub.call(caller, CALLER_PK, {"t": "call", "id": id, "f": "f"})
    await front.settle()
    await back.settle("work")
    await back.hub.store.flush()  # which agent has them (the back records it within ms)
    assert len(agent.of("assign")) == 2

    # the back dies (kill -9: nothing more from it); its lease is still good for a while
    wall.now += dt.timedelta(seconds=LEASE / 2)
    await front.relay.beat()
    await front.settle("reap")
    assert (await stored_row(database, "call-0001")).status == "assigned"
    wall.now += dt.timedelta(seconds=LEASE)  # ... and then it lapsed
    await front.relay.beat()
    await front.settle("reap", "agents")
    row = await stored_row(database, "call-0001")
    assert (row.status, row.replica) == ("queued", None)
    assert not front.hub.agents.providing_elsewhere("f", None)  # the back's agent is offline

    # the agent reconnects to the front, still running call-0001: it keeps it there, and
    # the front claims call-0002 for it (delivered again: at least once)
    again = await register_agent(front, holding=["call-0001"])
    await front.settle("work")
    assert [m["id"] for m in again.of("assign")] == ["call-0002"]
    assert again.of("cancel") == []
    done(front, "call-0001", 1)
    done(front, "call-0002", 2)
    await front.settle("events")
    assert sorted((m["id"], m["v"]) for m in caller.of("done")) == [
        ("call-0001", 1),
        ("call-0002", 2),
    ]
    for id in ("call-0001", "call-0002"):
        assert (await stored_row(database, id)).status == "done"


@pytest.mark.anyio
async def test_a_caller_resumes_on_another_replica_and_gets_its_result(
    database: Database,
) -> None:
    wall = WallClock()
    front, back, other = await started(database, wall, 3)
    await register_agent(back)
    await front.settle("agents")
    caller = FakePeer(CALLER_PK)
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-0001", "f": "f"})
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-0002", "f": "f"})
    await front.settle()
    await back.settle("work")
    done(back, "call-0002", 2)  # finished before the caller comes back
    await back.settle()

    # the front dies; the caller reconnects to another replica and resumes its calls by id
    moved = FakePeer(CALLER_PK)
    await other.hub.resume(moved, CALLER_PK, ["call-0001", "call-0002", "call-9999"])
    await other.settle("events")  # call-0002's answer, on its way to the front, comes here
    assert [(m["id"], m["v"]) for m in moved.of("done")] == [("call-0002", 2)]
    assert [(m["id"], m["kind"]) for m in moved.of("error")] == [("call-9999", "unknown")]
    stranger = FakePeer(CALLER_PK + 1)  # another app cannot resume them
    await other.hub.resume(stranger, CALLER_PK + 1, ["call-0001"])
    assert [m["kind"] for m in stranger.of("error")] == ["unknown"]

    done(back, "call-0001", 1)
    await back.settle()
    await other.settle("events")
    assert sorted((m["id"], m["v"]) for m in moved.of("done")) == [
        ("call-0001", 1),
        ("call-0002", 2),
    ]
    await front.settle("events")  # (had it lived) nothing goes to the old replica any more
    assert caller.of("done") == []


@pytest.mark.anyio
async def test_a_forwarded_call_that_no_replica_claims_fails_on_its_callers_replica(
    database: Database,
) -> None:
    wall = WallClock()
    front, back = await started(database, wall, 2)
    caller = FakePeer(CALLER_PK)
    message: dict[str, Any] = {"t": "call", "id": "call-0001", "f": "f", "wait": 5}
    front.hub.call(caller, CALLER_PK, message)
    await front.settle()
    front.clock.now += 6
    front.hub.expire(front.clock.now)
    await front.settle()
    [error] = caller.of("error")
    assert (error["id"], error["kind"]) == ("call-0001", "no_agent")
    assert "no function 'f'" in error["m"]
    assert "(waited 5 s)" in error["m"]
    assert (await stored_row(database, "call-0001")).status == "error"
    # an agent coming later finds nothing to claim
    agent = await register_agent(back)
    await back.settle("work")
    assert agent.of("assign") == []


@pytest.mark.anyio
async def test_cancels_and_time_limits_reach_the_replica_of_the_agent(database: Database) -> None:
    wall = WallClock()
    front, back = await started(database, wall, 2)
    agent = await register_agent(back)
    await front.settle("agents")
    caller = FakePeer(CALLER_PK)
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-0001", "f": "f"})
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-0002", "f": "f", "timeout": 5})
    await front.settle()
    await back.settle("work")
    assert len(agent.of("assign")) == 2

    assert front.hub.cancel(CALLER_PK, "call-0001")  # the caller's replica answers at once
    front.clock.now += 6
    front.hub.expire(front.clock.now)  # call-0002 ran past its timeout
    assert [(m["id"], m["kind"]) for m in caller.of("error")] == [
        ("call-0001", "cancelled"),
        ("call-0002", "timeout"),
    ]
    assert front.hub.jobs == {}
    await front.settle()
    await back.settle("events")  # ... and the agent's replica tells the agent
    assert agent.of("cancel") == [
        {"t": "cancel", "id": "call-0001"},
        {"t": "cancel", "id": "call-0002"},
    ]


@pytest.mark.anyio
async def test_a_call_over_http_is_cancelled_through_any_replica(database: Database) -> None:
    wall = WallClock()
    front, back = await started(database, wall, 2)
    message: dict[str, Any] = {"t": "call", "id": "call-0001", "f": "f", "wait": 30}
    front.hub.call(None, CALLER_PK, message)  # waits for an agent: queued
    await front.settle()
    assert not await back.hub.cancel_elsewhere(CALLER_PK + 1, "call-0001")  # not that app's
    assert await back.hub.cancel_elsewhere(CALLER_PK, "call-0001")
    await back.settle()
    row = await stored_row(database, "call-0001")
    assert (row.status, row.error_kind) == ("cancelled", "cancelled")
    assert not await back.hub.cancel_elsewhere(CALLER_PK, "call-0001")  # finished now
    assert "call-0001" in front.hub.jobs
    await front.settle("events")  # its replica is told: the call no longer counts there
    assert front.hub.jobs == {}


@pytest.mark.anyio
async def test_the_replica_a_caller_left_lets_go_of_its_calls_without_cancelling_them(
    database: Database,
) -> None:
    wall = WallClock()
    front, back, other = await started(database, wall, 3)
    agent = await register_agent(back)
    await front.settle("agents")
    caller = FakePeer(CALLER_PK)
    front.hub.call(caller, CALLER_PK, {"t": "call", "id": "call-0001", "f": "f"})
    await front.settle()
    await back.settle("work")
    front.hub.caller_gone(caller)  # its connection to the (living) front dropped

    moved = FakePeer(CALLER_PK)  # ... and it resumed on another replica
    await other.hub.resume(moved, CALLER_PK, ["call-0001"])
    await front.settle("events")
    assert front.hub.jobs == {}  # let go of
    front.clock.now += 3600
    front.hub.expire(front.clock.now)  # long after its resume grace: nothing is cancelled
    await front.settle()
    await back.settle("events")
    assert agent.of("cancel") == []
    done(back, "call-0001", 1)
    await back.settle()
    await other.settle("events")
    assert [(m["id"], m["v"]) for m in moved.of("done")] == [("call-0001", 1)]


@pytest.mark.anyio
async def test_a_call_its_dead_replica_never_stored_is_delivered_again_to_the_agent_holding_it(
    database: Database,
) -> None:
    """The one replica dies after handing a call to its agent but before storing it; the agent
    finished it (its result is held, never acknowledged). On the restarted replica the caller
    resumes (``unknown``) and sends the call again before the agent is back, so it is forwarded;
    then the agent registers holding it: its result for a call it was never given here is
    ignored (the call is not cancelled on it), and the call is claimed and delivered to it
    again. The agent answers that delivery with what it holds (see
    :meth:`arkitekt.rekuest._agent.Agent._delivered_again`)."""
    wall = WallClock()
    [dead] = await started(database, wall)
    old = await register_agent(dead)
    caller = FakePeer(CALLER_PK)
    call = {"t": "call", "id": "call-0001", "f": "f", "wait": 20.0}
    dead.hub.call(caller, CALLER_PK, call)
    assert [m["id"] for m in old.of("assign")] == ["call-0001"]  # never stored: kill -9

    wall.now += dt.timedelta(seconds=LEASE * 2)  # (its replica's lease long lapsed)
    [restarted] = await started(database, wall)
    back = FakePeer(CALLER_PK)
    await restarted.hub.resume(back, CALLER_PK, ["call-0001"])
    assert [m["kind"] for m in back.of("error")] == ["unknown"]
    restarted.hub.call(back, CALLER_PK, call)  # sent again, no agent online yet: forwarded
    await restarted.settle()
    assert (await stored_row(database, "call-0001")).status == "queued"

    agent = await register_agent(restarted, holding=["call-0001"])
    done(restarted, "call-0001", 2)  # its held result, sent again with the registration
    assert back.of("done") == []  # not its assignment here (yet)
    assert agent.of("ack") == []
    assert agent.of("cancel") == []  # (a cancel would only make it run the call again)
    await restarted.settle("work")
    assert [m["id"] for m in agent.of("assign")] == ["call-0001"]  # delivered again
    done(restarted, "call-0001", 2)  # ... and answered with what it held
    await restarted.settle()
    assert [(m["id"], m["v"]) for m in back.of("done")] == [("call-0001", 2)]
    assert [m["ids"] for m in agent.of("ack")] == [["call-0001"]]
    assert (await stored_row(database, "call-0001")).status == "done"
