"""Write-behind persistence of assignments: changes are buffered and committed in batches.

The hub decides in memory and records here; one background task commits whatever piled up in
one transaction (an assignment that finishes before its insert was committed is inserted
finished: one write per call). Callbacks registered with a change run once it is committed; the
hub uses them to acknowledge results to agents, which keep results until then.

Writes are never cancelled half-way (a transaction cancelled on SQLite may keep the database
locked for the next one), and the store's own writes never overlap. At shutdown, :meth:`close`
writes what is left, waiting out a database another process keeps locked (up to
:data:`CLOSE_SECONDS`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import anyio
from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import OperationalError

from arkitekt.protocol.rekuest import encode
from arkitekt_server._db import Database, utcnow
from arkitekt_server._dbfaults import is_unavailable
from arkitekt_server._logs import Outage
from arkitekt_server.rekuest._batch import foldable, write_batch
from arkitekt_server.rekuest._events import forget, post
from arkitekt_server.rekuest._held import HeldConnection
from arkitekt_server.rekuest._models import FINISHED, AssignmentRow, LogRow
from arkitekt_server.rekuest._records import AgentRecords
from arkitekt_server.rekuest._writes import group, insert_new, refused, update_of

__all__ = ["CLOSE_SECONDS", "LAZY_SECONDS", "Store"]

log = logging.getLogger("arkitekt_server.rekuest")

LAZY_SECONDS = 0.05
"""How long a lazy change (see :meth:`Store.update`) waits at most for the next batch."""
CLOSE_SECONDS = 60.0
"""How long the final write at shutdown retries while the database is locked (busy)."""
RETRY_FIRST_SECONDS = 0.5
"""The pause after a failed batch; it doubles with each failure in a row."""
RETRY_MAX_SECONDS = 10.0
"""The longest pause between two tries of a failed batch (the database away)."""

_ASSIGNMENTS = cast(Table, AssignmentRow.__table__)
_LOGS = cast(Table, LogRow.__table__)
_COLUMNS = [column.name for column in _ASSIGNMENTS.columns]


class Store(AgentRecords):
    """Buffers assignment changes and commits them in batches.

    Args:
        database: the server's database.
        interval: how long a batch collects after the first change (seconds).

    """

    def __init__(self, database: Database, interval: float = 0.005) -> None:
        super().__init__(database)
        self.interval = interval
        self._held: HeldConnection | None = None
        if database.dialect == "postgresql":  # batches are on the path between replicas
            self._held = HeldConnection(database.engine, autocommit=True)
        self._inserts: dict[str, dict[str, Any]] = {}
        self._updates: dict[str, dict[str, Any]] = {}
        self._logs: list[dict[str, Any]] = []
        self._events: list[tuple[str, str, str]] = []  # (to, assignment id, message)
        self._notices: set[str] = set()
        self._handoffs: dict[str, str] = {}  # insert id -> its notification, once stored
        self._callbacks: list[Callable[[], None]] = []
        self._changed = anyio.Event()  # any change
        self._dirty = anyio.Event()  # a change to write now (not lazy)
        self._lock = anyio.Lock()
        self.on_duplicate: Callable[[str], None] | None = None
        """Told the id of an insert that was not stored: that id was stored before."""

    # -- recording (sync, in memory) ---------------------------------------------------------
    def insert(self, row: dict[str, Any], handoff: str | None = None) -> None:
        """Record a new assignment (keys: any columns; the rest take their defaults), and the
        notification ``handoff`` to send once it is stored (PostgreSQL; not if its id was
        stored before, and at most once)."""
        full = dict.fromkeys(_COLUMNS)
        full.update(attempts=0, stream=False, events=False, created_at=utcnow())
        full.update(row)
        self._inserts[row["id"]] = full
        if handoff is not None:
            self._handoffs[row["id"]] = handoff
        self._wake()

    def update(
        self,
        id: str,
        fields: dict[str, Any],
        on_commit: Callable[[], None] | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        """Record a change of an assignment; ``on_commit`` runs once it is stored.

        A ``lazy`` change is one nothing waits for: it is written with the next batch, or
        after :data:`LAZY_SECONDS` at the latest (so that an assignment that finishes soon is
        written once, not twice, and its finish does not wait for the first write).
        """
        pending = self._inserts.get(id)
        if pending is not None:
            pending.update(fields)
        else:
            self._updates.setdefault(id, {}).update(fields)
        if on_commit is not None:
            self._callbacks.append(on_commit)
        self._wake(lazy=lazy)

    def log(self, assignment_id: str, level: str, message: str) -> None:
        """Record a log line of an assignment."""
        self._logs.append(
            {"assignment_id": assignment_id, "level": level, "message": message, "at": utcnow()}
        )
        self._wake()

    def event(self, assignment_id: str, to: str, message: dict[str, Any]) -> None:
        """Record a message for the replica of an assignment's ``"caller"`` or ``"agent"``
        (found from its row when written; PostgreSQL only). A cancel for an agent ends a row
        no agent claimed yet."""
        self._events.append((to, assignment_id, encode(message)))
        self._wake()

    def notify(self, notice: str) -> None:
        """Notify every replica of ``notice`` once the batch is committed (PostgreSQL only)."""
        self._notices.add(notice)
        self._wake()

    def _wake(self, *, lazy: bool = False) -> None:
        self._changed.set()
        if not lazy:
            self._dirty.set()

    # -- committing ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Commit batches until cancelled.

        A failed batch is put back and retried, after a pause that doubles up to
        :data:`RETRY_MAX_SECONDS`; a database that is away is one warning line (see
        :class:`~arkitekt_server._logs.Outage`), not a traceback per retry.
        """
        outage = Outage(log, "storing rekuest assignments")
        pause = RETRY_FIRST_SECONDS
        while True:
            await self._changed.wait()
            if not self._dirty.is_set():  # lazy changes alone: a batch soon may take them
                with anyio.move_on_after(LAZY_SECONDS):
                    await self._dirty.wait()
            # only this loop replaces them (flush() may run elsewhere)
            self._changed, self._dirty = anyio.Event(), anyio.Event()
            await anyio.sleep(self.interval)
            try:
                # A round that began finishes: a cancelled query would orphan its connection
                # (see _periodic.every); a cancel lands in the pauses.
                with anyio.CancelScope(shield=True):
                    await self.flush()
            except Exception as error:  # keep going: the batch was put back and is retried
                if is_unavailable(error):
                    outage.failed(error)
                else:
                    log.exception("could not store rekuest assignments; retrying")
                await anyio.sleep(pause)
                pause = min(2 * pause, RETRY_MAX_SECONDS)
                self._changed.set()  # retry even if nothing new comes
                self._dirty.set()
            else:
                outage.over()
                pause = RETRY_FIRST_SECONDS

    async def close(self) -> None:
        """Write what is left (at shutdown, after :meth:`run` was cancelled).

        A locked database (another process writing, such as the CLI) is waited out, retrying
        with backoff for up to :data:`CLOSE_SECONDS`.
        """
        deadline = anyio.current_time() + CLOSE_SECONDS
        delay = 0.1
        try:
            while True:
                try:
                    await self.flush()
                    return
                except OperationalError as error:
                    if anyio.current_time() + delay > deadline:
                        raise
                    log.warning("rekuest: the database is busy (%s); writing again", error.orig)
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 2.0)
        finally:
            if self._held is not None:
                await self._held.close()

    async def flush(self) -> None:
        """Commit everything recorded so far, then run the callbacks of what was committed.

        A row the database refuses (an id stored before, a value it cannot hold) never stalls
        the others: the batch is then written change by change, and only the refused change is
        dropped (and logged; an id stored before is reported to :attr:`on_duplicate`). Other
        errors (the database is unreachable) put the batch back to be retried.
        """
        async with self._lock:
            inserts, self._inserts = self._inserts, {}
            updates, self._updates = self._updates, {}
            logs, self._logs = self._logs, []
            callbacks, self._callbacks = self._callbacks, []
            events, self._events = self._events, []
            notices, self._notices = self._notices, set()
            handoffs, self._handoffs = self._handoffs, {}
            if not (inserts or updates or logs or callbacks or events or notices):
                return
            try:
                with anyio.CancelScope(shield=True):  # never half-way: see the module
                    try:
                        duplicates = await self._write(
                            inserts, updates, logs, events, notices, handoffs
                        )
                    except Exception as error:
                        if not refused(error):
                            raise
                        log.warning(
                            "rekuest: a batch was refused (%s); storing it row by row", error
                        )
                        duplicates = await self._write_each(inserts, updates, logs)
                        await self._write({}, {}, [], events, notices)
            except BaseException:
                self._restore(inserts, updates, logs, callbacks)
                self._events[:0] = events
                self._notices |= notices
                self._handoffs = handoffs | self._handoffs
                raise
            for id in duplicates:
                self._updates.pop(id, None)  # changes of the refused call, not of the stored one
        for id in duplicates:
            if self.on_duplicate is not None:
                self.on_duplicate(id)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("a rekuest commit callback failed")

    async def _write(
        self,
        inserts: dict[str, dict[str, Any]],
        updates: dict[str, dict[str, Any]],
        logs: list[dict[str, Any]],
        events: list[tuple[str, str, str]] | None = None,
        notices: set[str] | None = None,
        handoffs: dict[str, str] | None = None,
    ) -> list[str]:
        """Write one batch in one transaction; returns the ids of inserts stored before.

        On PostgreSQL most batches are one statement (:mod:`~._batch`). A batch written row
        by row sends no handoffs: their rows' replica finds them when it re-scans.
        """
        events, notices, handoffs = events or [], notices or set(), handoffs or {}
        if self._held is not None and foldable(inserts, updates, events):
            async with self._held.use() as connection:
                return await write_batch(
                    connection, inserts, updates, logs, events, notices, self.channel, handoffs
                )
        async with self.database.engine.begin() as connection:
            duplicates = await insert_new(connection, inserts)
            for keys, changes in group(updates).items():
                await connection.execute(update_of(keys), changes)
            if logs:
                await connection.execute(insert(_LOGS), logs)
            told = notices | {text for id, text in handoffs.items() if id not in duplicates}
            if self.channel is not None and (events or told):
                await post(connection, self.channel, events, told)
        return duplicates

    async def _write_each(
        self,
        inserts: dict[str, dict[str, Any]],
        updates: dict[str, dict[str, Any]],
        logs: list[dict[str, Any]],
    ) -> list[str]:
        """Write change by change, dropping those the database refuses.

        What was written is removed from the arguments, so that after an error they hold
        exactly what is left to retry.
        """
        duplicates: list[str] = []
        for id, row in list(inserts.items()):
            try:
                duplicates += await self._write({id: row}, {}, [])
            except Exception as error:
                if not refused(error):
                    raise
                log.error("rekuest: dropped assignment %r the database refused: %s", id, error)
            del inserts[id]
        for id, fields in list(updates.items()):
            try:
                await self._write({}, {id: fields}, [])
            except Exception as error:
                if not refused(error):
                    raise
                log.error("rekuest: dropped a change of %r the database refused: %s", id, error)
            del updates[id]
        while logs:
            try:
                await self._write({}, {}, logs[:1])
            except Exception as error:
                if not refused(error):
                    raise
                log.error("rekuest: dropped a log line the database refused: %s", error)
            del logs[0]
        return duplicates

    def _restore(
        self,
        inserts: dict[str, dict[str, Any]],
        updates: dict[str, dict[str, Any]],
        logs: list[dict[str, Any]],
        callbacks: list[Callable[[], None]],
    ) -> None:
        for id, row in inserts.items():
            row.update(self._inserts.pop(id, {}))
            row.update(self._updates.pop(id, {}))
            self._inserts[id] = row
        for id, fields in updates.items():
            fields.update(self._updates.get(id, {}))
            self._updates[id] = fields
        self._logs[:0] = logs
        self._callbacks[:0] = callbacks
        self._wake()

    def pending(self) -> set[str]:
        """The ids of assignments with changes not written yet (not those being written)."""
        return set(self._inserts) | set(self._updates)

    @contextlib.asynccontextmanager
    async def idle(self) -> AsyncIterator[None]:
        """While in it, no batch is being written (what is not pending is in the database)."""
        async with self._lock:
            yield

    # -- direct reads and writes (rare; the agents' in :class:`AgentRecords`) -------------------
    async def prune(self, retention_seconds: float) -> int:
        """Delete assignments (and their log lines) finished more than ``retention_seconds`` ago.

        Only finished rows are deleted, and a finished row is stored only once its result was
        handed on (acknowledged to its agent, sent to a connected caller); unfinished ones are
        never touched. Returns how many assignments were deleted.
        """
        cutoff = utcnow() - dt.timedelta(seconds=retention_seconds)
        old = (
            select(AssignmentRow.id)
            .where(AssignmentRow.status.in_(FINISHED))
            .where(AssignmentRow.finished_at < cutoff)
        )
        async with self._lock:
            with anyio.CancelScope(shield=True):  # never half-way: see the module
                async with self.database.engine.begin() as connection:
                    await connection.execute(delete(_LOGS).where(_LOGS.c.assignment_id.in_(old)))
                    await forget(connection, old)
                    result = await connection.execute(
                        delete(_ASSIGNMENTS).where(_ASSIGNMENTS.c.id.in_(old))
                    )
        return int(result.rowcount or 0)

    async def rows(self, ids: list[str], caller_pk: int) -> list[AssignmentRow]:
        """The rows of ``ids`` made by app ``caller_pk``, after committing what is pending."""
        await self.flush()
        async with self.database.sessions() as session:
            query = select(AssignmentRow).where(
                AssignmentRow.id.in_(ids), AssignmentRow.caller_pk == caller_pk
            )
            return list(await session.scalars(query))

    async def get(self, id: str) -> tuple[AssignmentRow | None, list[LogRow]]:
        """An assignment and its logs, after committing what is pending."""
        await self.flush()
        async with self.database.sessions() as session:
            row = await session.get(AssignmentRow, id)
            logs = list(
                await session.scalars(
                    select(LogRow).where(LogRow.assignment_id == id).order_by(LogRow.id)
                )
            )
        return row, logs
