"""The message layer between replicas (PostgreSQL): one loop per replica, woken by NOTIFY.

Each replica has a random id (per process start). Its :class:`Relay` keeps it alive (a
heartbeat that also renews the leases of the rows it claimed), claims queued rows its agents
provide, reads the events other replicas sent it, queues again the rows of dead replicas and
fails those that waited in vain, and keeps the directory of agents online on other replicas.
``LISTEN`` on a dedicated connection wakes it at once; a periodic re-scan
(``rekuest_rescan_seconds``) does everything anyway, so a missed notification only delays.
On a call's usual path nothing here touches the database: the call is handed to this replica
and its answers carried to the caller's in their notifications (:mod:`._inbox`).
The SQL is in :mod:`~arkitekt_server.rekuest._claims` and
:mod:`~arkitekt_server.rekuest._events`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import asyncpg
from sqlalchemy import make_url

from arkitekt.protocol.rekuest import MessageError
from arkitekt_server._db import Database, utcnow
from arkitekt_server.rekuest import _claims as claims
from arkitekt_server.rekuest._events import ack_events, post, take_events
from arkitekt_server.rekuest._held import HeldConnection
from arkitekt_server.rekuest._inbox import Inbox, handed
from arkitekt_server.rekuest._restore import restore
from arkitekt_server.rekuest._store import Store

if TYPE_CHECKING:
    from arkitekt_server.rekuest._hub import Hub

__all__ = ["CHANNEL", "Relay", "RemoteCaller"]

log = logging.getLogger("arkitekt_server.rekuest")

CHANNEL = claims.CHANNEL
ACK_SECONDS = 0.05
"""How long the rows of events delivered from their notifications wait to be deleted (then
all of them in one statement, off the calls' path)."""
REMEMBERED_HANDOFFS = 100_000
"""How many ids of rows handed to this replica it remembers (to dispatch each once)."""
_ALL = frozenset({"reap", "agents", "work", "acks", "events"})


class RemoteCaller:
    """The caller of a claimed row, on another replica: answers become events for it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.jobs: set[str] = set()  # never filled: the caller's replica keeps its own

    def send(self, message: dict[str, Any], *, strict: bool = False) -> None:
        """Record ``message`` for the replica of its call's caller."""
        id = message.get("id")
        if not isinstance(id, str):
            return
        try:
            self.store.event(id, "caller", message)
        except MessageError as error:  # validated before: should not happen
            reason = f"the server could not send this call's answer: {error}"
            self.store.event(id, "caller", {"t": "error", "id": id, "kind": "refused", "m": reason})


class Relay:
    """This replica's part in routing between replicas (see the module).

    Args:
        hub: this replica's hub (it gets :attr:`Hub.cluster` set to this relay).
        database: the PostgreSQL database.
        lease: seconds a claim lasts (renewed every third of it).
        rescan: seconds between full scans.
        clock: monotonic seconds, for the loop's timing.
        now: the wall clock (UTC) of leases and waits in rows.

    """

    def __init__(
        self,
        hub: Hub,
        database: Database,
        *,
        lease: float,
        rescan: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.replica = uuid.uuid4().hex
        self.hub = hub
        self.database = database
        self.lease = lease
        self.rescan = rescan
        self.clock = clock
        self.now = now
        self.caller = RemoteCaller(hub.store)
        self._due: set[str] = set(_ALL)
        self._endings: list[tuple[str, str, str]] = []
        self._woken = anyio.Event()
        self._reads = HeldConnection(database.engine, autocommit=True)  # claims, events
        self.inbox = Inbox(hub.deliver)
        self._ack_at = math.inf  # when the delivered events' rows are deleted
        self._handed: dict[str, None] = {}  # ids of rows handed here lately, oldest first
        hub.cluster = self
        hub.store.channel = CHANNEL

    # -- for the hub (the Cluster protocol) -------------------------------------------------------
    def wake(self, what: str) -> None:
        """Do ``what`` (``"work"``, ``"events"``, ``"agents"``, ``"reap"``) soon."""
        self._due.add(what)
        self._woken.set()

    def lease_until(self) -> dt.datetime:
        """Until when a claim made now holds."""
        return self.now() + dt.timedelta(seconds=self.lease)

    def expire_queued(self, id: str, kind: str, message: str) -> None:
        """Fail the row ``id`` if it still waits (see the ``Cluster`` protocol)."""
        self._endings.append((id, kind, message))
        self.wake("expire")

    async def adopt(self, ids: list[str], agent_key: str) -> list[Any]:
        """Claim the unfinished rows of ``ids`` last given to ``agent_key``."""
        async with self.database.engine.begin() as connection:
            rows = await claims.adopt(connection, self.replica, ids, agent_key, self.lease_until())
        return list(rows)

    async def resume(self, ids: list[str], caller_pk: int) -> tuple[list[Any], set[str]]:
        """The rows of ``ids`` of app ``caller_pk``, and those with answers not yet read;
        their answers come to this replica from now on."""
        await self.hub.store.flush()  # what this replica finished, first
        async with self.database.engine.begin() as connection:
            rows, pending = await claims.resume(connection, self.replica, ids, caller_pk)
        if pending:  # their older answers are rows to read: newer ones wait for them
            self.inbox.missed()
        return list(rows), pending

    # -- the loop ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Announce this replica and read the directory (before serving)."""
        await self.beat()
        await self._refresh()

    async def run(self) -> None:
        """Listen and do what is due, until cancelled."""
        listener: Any = None
        next_beat = self.clock() + self.lease / 3
        next_scan = 0.0
        try:
            while True:
                wait = min(next_beat, next_scan, self._ack_at) - self.clock()
                with anyio.move_on_after(max(0.0, wait)):
                    await self._woken.wait()
                self._woken = anyio.Event()
                due, self._due = self._due, set()
                if self.clock() >= self._ack_at:
                    self._ack_at = math.inf
                    due.add("acks")
                try:
                    # a round that began finishes: a cancelled query would orphan its connection
                    with anyio.CancelScope(shield=True):
                        if listener is None or listener.is_closed():
                            self.inbox.missed()  # (while it was away)
                            due |= {"events", "work"}  # (handoffs missed meanwhile)
                            listener = await self._listen()
                        if self.clock() >= next_beat:
                            next_beat = self.clock() + self.lease / 3
                            await self.beat()
                        if self.clock() >= next_scan:
                            next_scan = self.clock() + self.rescan
                            due |= _ALL
                        await self.round(due)
                except Exception:  # the database may be away: the next round tries again
                    log.exception("rekuest: the relay between replicas failed; retrying")
                    self._due |= due
                    await anyio.sleep(min(1.0, self.rescan))
        finally:
            await self.close()
            if listener is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(2.0):
                    await listener.close()

    async def close(self) -> None:
        """Give back the connection kept for claims and events (:meth:`run` does at its end)."""
        await self._reads.close()

    async def round(self, due: set[str]) -> None:
        """Do ``due`` now (see :meth:`wake`), and fail the forwarded calls that waited in vain."""
        if self._endings:
            await self._expire()
        if "reap" in due:
            await self._reap()
        if "agents" in due:
            await self._refresh()
        if "work" in due:
            await self._claim()
        if "acks" in due:
            await self._acks()
        if "events" in due:
            await self._events()

    async def _listen(self) -> Any:
        url = make_url(self.database.url).set(drivername="postgresql")
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))
        await connection.add_listener(CHANNEL, self.notified)
        return connection

    def notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        """The listener's callback: a notification on :data:`CHANNEL`."""
        mine = f"e:{self.replica}"
        if payload in ("work", "agents"):
            self.wake(payload)
        elif payload == mine:  # its events are too big to be carried: read them
            self.inbox.missed()
            self.wake("events")
        elif payload.startswith(f"a:{self.replica}:"):  # a call handed to this replica
            row = handed(payload[len(f"a:{self.replica}:") :])
            if row is not None and self._first(row.id):
                try:
                    self.hub.claimed([row])
                except Exception:  # (its re-scan claims it, or any replica once leased out)
                    log.exception("rekuest: could not dispatch a call handed to this replica")
        elif payload.startswith(mine + ":"):
            if self.inbox.carried(payload[len(mine) + 1 :]):
                if self._ack_at == math.inf:  # the loop learns when to delete their rows
                    self._ack_at = self.clock() + ACK_SECONDS
                    self._woken.set()
            elif self.inbox.behind:
                self.wake("events")

    async def _expire(self) -> None:
        endings, self._endings = self._endings, []
        try:
            async with self.database.engine.begin() as connection:
                ended = set(await claims.expire_queued(connection, endings))
        except BaseException:
            self._endings[:0] = endings
            raise
        for id, kind, message in endings:
            if id in ended:
                self.hub.deliver({"t": "error", "id": id, "kind": kind, "m": message, "tb": None})

    async def beat(self) -> None:
        """Keep this replica alive and renew its leases."""
        async with self.database.engine.begin() as connection:
            await claims.heartbeat(connection, self.replica, self.lease_until())

    def _first(self, id: str) -> bool:
        """Whether the row ``id`` is new here: handed (:mod:`._inbox`) or claimed, each row is
        dispatched once (a claim may take a row handed here before its handoff comes)."""
        if id in self._handed:
            return False
        self._handed[id] = None
        if len(self._handed) > REMEMBERED_HANDOFFS:
            del self._handed[next(iter(self._handed))]
        return True

    async def _claim(self) -> None:
        wanted = self.hub.agents.local_selectors()
        if not wanted:
            return
        store = self.hub.store
        # A row handed here stays queued until its dispatch is written, so a claim may take
        # it: one finished here meanwhile is written by then, or pending (and then skipped).
        async with store.idle():
            async with self._reads.use() as connection:  # one statement: no BEGIN, no COMMIT
                rows = await claims.claim(
                    connection, self.replica, wanted, self.lease_until(), self.now()
                )
            pending = store.pending()
        fresh = [row for row in rows if row.id in self.hub.jobs or row.id not in pending]
        for row in fresh:
            self._first(row.id)  # its handoff, if it comes later, is not dispatched again
        if fresh:
            self.hub.claimed(fresh)
        if len(rows) == claims.CLAIM_BATCH:
            self.wake("work")

    async def _events(self) -> None:
        while True:
            generation = self.inbox.generation
            async with self._reads.use() as connection:
                events = await take_events(connection, self.replica)
            complete = len(events) < claims.CLAIM_BATCH
            if self.inbox.read(events, generation, complete=complete):
                self.wake("acks")
            if complete and not self.inbox.behind:
                return

    async def _acks(self) -> None:
        ids = sorted(self.inbox.unacked)
        if ids:
            async with self._reads.use() as connection:
                await ack_events(connection, self.replica, ids)
            self.inbox.acked(ids)

    async def _reap(self) -> None:
        now = self.now()
        grace = now + dt.timedelta(seconds=self.hub.agent_grace)
        async with self.database.engine.begin() as connection:
            requeued, events, offline = await claims.reap(connection, now, grace)
            notices = {"work"} if requeued else set()
            if offline:
                notices.add("agents")
            if events or notices:
                await post(connection, CHANNEL, events, notices)
        if requeued:
            log.info("rekuest: %d assignment(s) of a lost replica are queued again", requeued)

    async def _refresh(self) -> None:
        async with self.database.engine.begin() as connection:
            agents, definitions, online = await claims.directory(connection, self.now())
        stored = restore(agents, definitions, [], 0.0).agents
        replicas = {row.key: row.replica for row in agents}
        for key, state in stored.items():
            replica = replicas.get(key)
            elsewhere = key in online and replica != self.replica
            state.replica = replica if elsewhere else None
        self.hub.agents.elsewhere(stored)
