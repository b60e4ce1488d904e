"""Hubs driven directly (no sockets, no sleeps): peers that record what they are sent, clocks
the test sets, and replicas (a hub, its store and its relay) sharing one database.

Shared by the hub's routing tests and the tests between replicas; the ``database`` fixture
that closes the replicas a test opened is in this directory's ``conftest.py``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from arkitekt.protocol.rekuest_messages import Done
from arkitekt_server._db import Database, utcnow
from arkitekt_server.rekuest._hub import Hub
from arkitekt_server.rekuest._models import AssignmentRow
from arkitekt_server.rekuest._peer import Peer
from arkitekt_server.rekuest._relay import Relay
from arkitekt_server.rekuest._store import Store

__all__ = [
    "AGENT_PK",
    "CALLER_PK",
    "DEFINITION",
    "LEASE",
    "Clock",
    "FakePeer",
    "Replica",
    "WallClock",
    "done",
    "register_agent",
    "started",
    "stored_row",
]

CALLER_PK = 1
AGENT_PK = 2
DEFINITION = {"name": "f", "returns": [{"key": "return", "kind": "int"}]}
LEASE = 10.0
"""The replicas' lease, seconds (of the :class:`WallClock`)."""


class FakePeer(Peer):
    """A peer without a websocket: what the hub sends it is kept in :attr:`sent`."""

    def __init__(self, client_pk: int) -> None:
        self.client_pk = client_pk
        self.jobs: set[str] = set()
        self.closed = False
        self.closing: tuple[int, str] | None = None
        self.sent: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], *, strict: bool = False) -> None:
        self.sent.append(message)

    def close(self, code: int, reason: str) -> None:
        self.closed = True
        self.closing = (code, reason)

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The messages of type ``kind`` sent so far."""
        return [message for message in self.sent if message["t"] == kind]


class Clock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class WallClock:
    """UTC time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now


class Replica:
    """A hub, its store and its relay (as one server process has them)."""

    opened: list[Replica] = []  # closed by the `database` fixture

    def __init__(self, database: Database, wall: WallClock) -> None:
        self.clock = Clock()
        self.hub = Hub(Store(database), agent_grace=15.0, clock=self.clock)
        self.relay = Relay(self.hub, database, lease=LEASE, rescan=1.0, now=wall)
        Replica.opened.append(self)

    async def close(self) -> None:
        """Write what is left, give back the connections the store and relay keep."""
        await self.hub.store.close()
        await self.relay.close()

    async def settle(self, *due: str) -> None:
        """Commit what the hub recorded, then do ``due`` (relay rounds)."""
        await self.hub.store.flush()
        await self.relay.round(set(due))


async def started(database: Database, wall: WallClock, count: int = 1) -> list[Replica]:
    """``count`` replicas on ``database``, their relays started (in order)."""
    replicas = [Replica(database, wall) for _ in range(count)]
    for replica in replicas:
        await replica.relay.start()
    return replicas


async def register_agent(replica: Replica, holding: list[str] | None = None) -> FakePeer:
    """An agent (providing :data:`DEFINITION`) registered on ``replica``, its record written."""
    peer = FakePeer(AGENT_PK)
    message = {"t": "register", "definitions": [DEFINITION], "holding": holding or []}
    await replica.hub.agent_connected(peer, AGENT_PK, "agent-app", message)
    await replica.hub.store.flush()
    return peer


async def stored_row(database: Database, id: str) -> AssignmentRow:
    """The stored row of assignment ``id`` (it must exist)."""
    async with database.sessions() as session:
        found = await session.get(AssignmentRow, id)
    assert found is not None
    return found


def done(replica: Replica, id: str, value: int) -> None:
    """The agent on ``replica`` answers assignment ``id`` with ``value``."""
    agent = next(iter(replica.hub.agents.by_key.values()))
    replica.hub.agent_message(agent, Done(t="done", id=id, v=value))
