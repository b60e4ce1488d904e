"""The hub's routing decisions, driven directly: peers that record what they are sent, a clock
the test sets, and :meth:`Hub.expire` called by the test (no sockets, no sleeps). The store is
real (SQLite in a temporary directory) but never runs: its writes stay buffered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import arkitekt_server.rekuest  # noqa: F401 -- registers the tables
from arkitekt.protocol.rekuest_messages import Cancelled, Done
from arkitekt_server._db import Database
from arkitekt_server.rekuest._hub import Hub
from arkitekt_server.rekuest._store import Store
from tests.arkitekt_server.rekuest.hubs import AGENT_PK, CALLER_PK, DEFINITION, Clock, FakePeer


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    database = Database.in_dir(tmp_path)
    await database.create_tables()
    try:
        yield Store(database)
    finally:
        await database.dispose()


def make_hub(store: Store, clock: Clock, **limits: Any) -> Hub:
    return Hub(store, agent_grace=15.0, cancel_grace=10.0, clock=clock, **limits)


async def connect(hub: Hub, instance: str = "a", holding: list[str] | None = None) -> FakePeer:
    peer = FakePeer(AGENT_PK)
    message = {
        "t": "register",
        "instance": instance,
        "definitions": [DEFINITION],
        "holding": holding or [],
    }
    await hub.agent_connected(peer, AGENT_PK, "agent-app", message)
    return peer


def call(hub: Hub, caller: FakePeer, id: str = "call-0001", **fields: Any) -> None:
    hub.call(caller, CALLER_PK, {"t": "call", "id": id, "f": "f", **fields})


@pytest.mark.anyio
async def test_a_call_is_assigned_to_the_agent_and_its_result_reaches_the_caller(
    store: Store,
) -> None:
    hub = make_hub(store, Clock())
    agent, caller = await connect(hub), FakePeer(CALLER_PK)
    call(hub, caller)
    assert agent.of("assign") == [{"t": "assign", "id": "call-0001", "f": "f", "a": {}}]
    state = hub.agent_of(agent)
    assert state is not None
    hub.agent_message(state, Done(t="done", id="call-0001", v=7))
    assert caller.of("done")[0]["v"] == 7
    assert hub.jobs == {}


@pytest.mark.anyio
async def test_a_lost_agents_assignment_waits_out_the_grace_for_another_then_fails(
    store: Store,
) -> None:
    clock = Clock()
    hub = make_hub(store, clock)
    first, caller = await connect(hub), FakePeer(CALLER_PK)
    call(hub, caller, "call-0001")
    call(hub, caller, "call-0002")
    state = hub.agent_of(first)
    assert state is not None
    hub.agent_gone(state, first)
    assert set(hub.waiting) == {"call-0001", "call-0002"}

    clock.now += 14.9
    hub.expire(clock())  # within the grace: nothing happens
    assert set(hub.waiting) == {"call-0001", "call-0002"}
    assert caller.of("error") == []
    second = await connect(hub, "b")  # another provider takes them over
    assert [m["id"] for m in second.of("assign")] == ["call-0001", "call-0002"]
    assert hub.waiting == {}

    other = hub.agent_of(second)
    assert other is not None
    hub.agent_gone(other, second)  # lost again, and nobody comes this time
    clock.now += 15.0
    hub.expire(clock())
    errors = caller.of("error")
    assert [(e["id"], e["kind"]) for e in errors] == [("call-0001", "lost"), ("call-0002", "lost")]
    assert "disconnected and no agent took the assignment over in time" in errors[0]["m"]
    assert hub.jobs == {}


@pytest.mark.anyio
async def test_an_agent_back_in_time_still_holding_its_assignment_keeps_it(store: Store) -> None:
    clock = Clock()
    hub = make_hub(store, clock)
    first, caller = await connect(hub), FakePeer(CALLER_PK)
    call(hub, caller)
    state = hub.agent_of(first)
    assert state is not None
    hub.agent_gone(state, first)
    again = await connect(hub, holding=["call-0001"])
    assert again.of("assign") == []  # not delivered twice: it runs it still
    clock.now += 60
    hub.expire(clock())
    assert caller.of("error") == []
    assert "call-0001" in hub.jobs


@pytest.mark.anyio
async def test_an_assignment_is_given_up_after_max_attempts_deliveries(store: Store) -> None:
    hub = make_hub(store, Clock(), max_attempts=2)
    caller = FakePeer(CALLER_PK)
    peer = await connect(hub)
    call(hub, caller)
    for _ in range(2):  # the agent dies on it each time, and comes back without it
        assert [m["id"] for m in peer.of("assign")] == ["call-0001"]
        state = hub.agent_of(peer)
        assert state is not None
        hub.agent_gone(state, peer)
        peer = await connect(hub)
    assert peer.of("assign") == []
    [error] = caller.of("error")
    assert error["kind"] == "lost"
    assert error["m"].startswith("given up after 2 deliveries")
    assert hub.jobs == {}
    assert hub.waiting == {}


@pytest.mark.anyio
async def test_a_call_past_its_timeout_is_cancelled_on_its_agent_and_failed(
    store: Store,
) -> None:
    clock = Clock()
    hub = make_hub(store, clock)
    agent, caller = await connect(hub), FakePeer(CALLER_PK)
    call(hub, caller, timeout=5.0)
    clock.now += 4.9
    hub.expire(clock())
    assert caller.of("error") == []
    assert agent.of("cancel") == []
    clock.now += 0.1
    hub.expire(clock())
    assert agent.of("cancel") == [{"t": "cancel", "id": "call-0001"}]
    [error] = caller.of("error")
    assert error["kind"] == "timeout"
    assert error["m"] == "'f' did not finish within 5 s; cancelled it"
    assert hub.jobs == {}


@pytest.mark.anyio
async def test_a_call_waiting_for_an_agent_fails_when_its_wait_is_up(store: Store) -> None:
    clock = Clock()
    hub = make_hub(store, clock)
    caller = FakePeer(CALLER_PK)
    call(hub, caller, wait=3.0)
    assert "call-0001" in hub.waiting
    clock.now += 3.0
    hub.expire(clock())
    [error] = caller.of("error")
    assert error["kind"] == "no_agent"
    assert error["m"] == "no function 'f' is registered on this server (waited 3 s)"


@pytest.mark.anyio
async def test_a_cancel_ends_when_the_agent_confirms_it(store: Store) -> None:
    clock = Clock()
    hub = make_hub(store, clock)
    agent, caller = await connect(hub), FakePeer(CALLER_PK)
    call(hub, caller)
    assert hub.cancel(CALLER_PK, "call-0001")
    assert agent.of("cancel") == [{"t": "cancel", "id": "call-0001"}]
    assert caller.of("error") == []  # until the agent confirms (or the grace is up)
    state = hub.agent_of(agent)
    assert state is not None
    hub.agent_message(state, Cancelled(t="cancelled", id="call-0001"))
    [error] = caller.of("error")
    assert (error["kind"], error["m"]) == ("cancelled", "cancelled")
    clock.now += 60
    hub.expire(clock())  # nothing left to expire
    assert len(caller.of("error")) == 1
    assert hub.jobs == {}


@pytest.mark.anyio
async def test_a_cancel_the_agent_does_not_confirm_ends_after_the_cancel_grace(
    store: Store,
) -> None:
    clock = Clock()
    hub = make_hub(store, clock)
    await connect(hub)
    caller = FakePeer(CALLER_PK)
    call(hub, caller)
    hub.cancel(CALLER_PK, "call-0001")
    clock.now += 9.9
    hub.expire(clock())
    assert caller.of("error") == []
    clock.now += 0.1
    hub.expire(clock())
    [error] = caller.of("error")
    assert error["kind"] == "cancelled"
    assert error["m"] == "cancelled by its caller (its agent did not confirm within 10 s)"
    assert hub.jobs == {}


@pytest.mark.anyio
async def test_a_caller_that_left_resumes_its_calls_or_they_are_cancelled_after_the_grace(
    store: Store,
) -> None:
    clock = Clock()
    hub = make_hub(store, clock, resume_grace=60.0)
    agent, caller = await connect(hub), FakePeer(CALLER_PK)
    for id in ("call-0001", "call-0002", "call-0003"):
        call(hub, caller, id)
    state = hub.agent_of(agent)
    assert state is not None
    hub.caller_gone(caller)  # its connection dropped: the calls go on
    hub.agent_message(state, Done(t="done", id="call-0001", v=1))  # finished meanwhile
    clock.now += 59.9
    hub.expire(clock())
    assert agent.of("cancel") == []

    back = FakePeer(CALLER_PK)
    await hub.resume(back, CALLER_PK, ["call-0001", "call-0002", "call-9999"])
    assert [(m["id"], m["v"]) for m in back.of("done")] == [("call-0001", 1)]  # from its row
    assert [(m["id"], m["kind"]) for m in back.of("error")] == [("call-9999", "unknown")]
    clock.now += 1.0
    hub.expire(clock())  # call-0003 was not resumed: cancelled on its agent
    assert agent.of("cancel") == [{"t": "cancel", "id": "call-0003"}]
    hub.agent_message(state, Done(t="done", id="call-0002", v=2))
    assert [m["id"] for m in back.of("done")] == ["call-0001", "call-0002"]
    assert caller.of("done") == []  # nothing reached the old connection


@pytest.mark.anyio
async def test_a_caller_cut_off_for_not_reading_loses_its_calls_at_once(store: Store) -> None:
    hub = make_hub(store, Clock())
    agent, caller = await connect(hub), FakePeer(CALLER_PK)
    call(hub, caller)
    hub.caller_gone(caller, resumable=False)
    assert agent.of("cancel") == [{"t": "cancel", "id": "call-0001"}]
