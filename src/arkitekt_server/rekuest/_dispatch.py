"""The hub's core: the jobs it holds, handing one to an agent, ending one, and its time limits.

:class:`~arkitekt_server.rekuest._hub.Hub` builds on it (callers, agents, replicas). Time comes
from the injected ``clock``; :meth:`Dispatcher.expire` enforces the limits.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from arkitekt.protocol.rekuest import MessageError
from arkitekt_server._db import utcnow
from arkitekt_server.rekuest._agents import Agents
from arkitekt_server.rekuest._binding import choose
from arkitekt_server.rekuest._quotas import Quotas
from arkitekt_server.rekuest._refusals import refuse_duplicate
from arkitekt_server.rekuest._state import AgentState, Assignment, Caller, Mailbox
from arkitekt_server.rekuest._store import Store

__all__ = ["GRACE_SECONDS", "MAX_ATTEMPTS", "Cluster", "Dispatcher"]

GRACE_SECONDS = 15.0
"""How long an assignment waits at least for an agent after its agent disconnected (default)."""
MAX_ATTEMPTS = 3
"""Deliveries of one assignment before it is failed (an agent dying on it each time; default)."""
REMEMBERED_IDS = 100_000
"""How many stored call ids the hub remembers to refuse reused ids without asking the database
(older ones are caught when the store finds them already stored)."""


class Cluster(Protocol):
    """The hub's view of the other replicas (PostgreSQL; :class:`~._relay.Relay`)."""

    @property
    def replica(self) -> str:
        """This replica's id."""

    @property
    def caller(self) -> Caller:
        """Sends to the replica of a call's caller (resolved from its row when written)."""

    def wake(self, what: str) -> None:
        """Ask the relay to do ``what`` soon: ``"work"`` (claim), ``"events"``, ``"agents"``."""

    def lease_until(self) -> dt.datetime:
        """Until when a claim made now holds."""

    def expire_queued(self, id: str, kind: str, message: str) -> None:
        """Fail the row ``id`` with ``kind`` and ``message`` if no replica claimed it yet (its
        caller's :meth:`~._hub.Hub.deliver` then gets the error)."""

    async def adopt(self, ids: list[str], agent_key: str) -> list[Any]:
        """Claim the unfinished rows of ``ids`` last given to ``agent_key`` (it reconnected)."""

    async def resume(self, ids: list[str], caller_pk: int) -> tuple[list[Any], set[str]]:
        """The rows of ``ids`` of app ``caller_pk``, and which of them have answers not yet
        read (sent to their caller's old replica); their answers come here from now on."""


class Dispatcher:
    """Holds unfinished jobs, dispatches and finishes them (see the module).

    Args:
        store: where changes are recorded.
        max_pending_calls: unfinished assignments one app (caller) may have at once.
        max_pending_bytes: their arguments' encoded bytes, summed, per app.
        cancel_grace: seconds an agent has to confirm a cancel; then the assignment is
            cancelled without it (its app's slot is free again, its arguments forgotten).
        agent_grace: seconds an assignment waits at least for an agent after its agent
            disconnected (also after a restart).
        max_attempts: deliveries of one assignment before it is failed (``lost``).
        resume_grace: seconds the calls of a caller whose connection dropped keep running
            for it to resume them; then they are cancelled.
        clock: the time in seconds, monotonic; deadlines and :meth:`expire` use it.

    """

    def __init__(
        self,
        store: Store,
        max_pending_calls: int = 10_000,
        max_pending_bytes: int = 64 * 1024 * 1024,
        cancel_grace: float = 10.0,
        agent_grace: float = GRACE_SECONDS,
        max_attempts: int = MAX_ATTEMPTS,
        resume_grace: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_attempts = max_attempts
        self.cancel_grace = cancel_grace
        self.agent_grace = agent_grace
        self.resume_grace = resume_grace
        self.quotas = Quotas(max_pending_calls, max_pending_bytes)
        self.agents = Agents()
        self.jobs: dict[str, Assignment] = {}
        self.waiting: dict[str, Assignment] = {}
        self.cluster: Cluster | None = None
        """Set on PostgreSQL: assignments are then claimed by the replica of their agent."""
        self._expiring: dict[str, Assignment] = {}  # jobs with a timeout, or a cancel to confirm
        self._forwarded: dict[str, Assignment] = {}  # calls whose row waits, by deadline
        self._orphans: dict[str, tuple[float, Mailbox]] = {}  # calls whose caller is away
        self._used: dict[str, None] = {}  # ids stored lately, oldest first
        store.on_duplicate = self._duplicate

    def admit(self, job: Assignment) -> None:
        """Hold an unfinished assignment in :attr:`jobs`, counted against its app's quotas
        (until :meth:`release`); the one way into :attr:`jobs`, so every release has its count."""
        if job.id not in self.jobs:
            self.jobs[job.id] = job
            if job.size >= 0:
                self.quotas.add(job.caller_pk, job.size)

    def release(self, job: Assignment) -> None:
        """Forget a finished (or refused) assignment, and count it no more."""
        if self.jobs.pop(job.id, None) is not None and job.size >= 0:
            self.quotas.remove(job.caller_pk, job.size)

    def cancel(
        self, caller_pk: int | None, id: str, reason: str = "cancelled by its caller"
    ) -> bool:
        """Cancel an assignment (``caller_pk`` must be its caller's, unless ``None``)."""
        job = self.jobs.get(id)
        if job is None or (caller_pk is not None and job.caller_pk != caller_pk):
            return False
        agent = job.agent
        if agent is not None and agent.peer is not None:
            agent.peer.send({"t": "cancel", "id": id})  # the agent answers `cancelled`
            # ... within the grace, or the job ends without it: an agent that ignores cancels
            # must not hold its caller's slots (and the arguments) for as long as it is online
            if job.cancelled is None:
                job.cancelled = reason
                job.expires = min(job.expires or math.inf, self.clock() + self.cancel_grace)
                self._expiring[id] = job
        else:
            self._finish(job, "cancelled", kind="cancelled", message=reason)
        return True

    # -- time ----------------------------------------------------------------------------------
    def expire(self, now: float) -> None:
        """Do what is due at ``now`` (on :attr:`clock`): fail assignments that waited for an
        agent in vain or ran past their timeout; end cancels their agent did not confirm;
        cancel calls whose caller left and did not resume them in time."""
        for job in [job for job in self.waiting.values() if job.deadline <= now]:
            if job.attempts:
                message = (
                    f"the agent running {job.function!r} disconnected and no agent took the "
                    "assignment over in time"
                )
                self._finish(job, "error", kind="lost", message=message)
            else:
                self._finish(job, "error", kind="no_agent", message=self._no_agent_message(job))
        for job in [job for job in self._forwarded.values() if job.deadline <= now]:
            del self._forwarded[job.id]
            if self.cluster is not None:
                message = self._no_agent_message(job)
                self.cluster.expire_queued(job.id, "no_agent", message)
        for job in [job for job in self._expiring.values() if job.expires <= now]:
            if job.cancelled is not None:  # its agent did not confirm the cancel in time
                message = (
                    f"{job.cancelled} (its agent did not confirm within {self.cancel_grace:g} s)"
                )
                self._finish(job, "cancelled", kind="cancelled", message=message)
                continue
            if job.agent is not None and job.agent.peer is not None:
                job.agent.peer.send({"t": "cancel", "id": job.id})
            message = f"{job.function!r} did not finish within {job.timeout:g} s; cancelled it"
            self._finish(job, "error", kind="timeout", message=message)
        for id in [id for id, (deadline, _) in self._orphans.items() if deadline <= now]:
            _, mailbox = self._orphans.pop(id)
            orphan = self.jobs.get(id)
            if orphan is not None and orphan.caller is mailbox and not mailbox.cancel:
                orphan.caller = None
            elif orphan is not None and orphan.caller is mailbox:
                grace = f"{self.resume_grace:g} s"
                self.cancel(None, id, f"its caller disconnected and did not resume it in {grace}")

    # -- internals -----------------------------------------------------------------------------
    def _no_agent_message(self, job: Assignment) -> str:
        where = f" of agent {job.selector!r}" if job.selector else ""
        waited = f" (waited {job.wait:g} s)" if job.wait else ""
        if not self.agents.definitions(job.function, job.selector):
            return f"no function {job.function!r}{where} is registered on this server{waited}"
        return f"no agent{where} that provides {job.function!r} is online{waited}"

    def _remember(self, id: str) -> None:
        """Remember an id that is stored now, so that a caller cannot use it again."""
        self._used[id] = None
        if len(self._used) > REMEMBERED_IDS:
            del self._used[next(iter(self._used))]

    def _duplicate(self, id: str) -> None:
        """The store found ``id`` stored before (by an earlier run): refuse that call after all
        (nothing of it is recorded: that would change the earlier call's row)."""
        job = self.jobs.get(id)
        refuse_duplicate(id, job)
        if job is not None:
            self.release(job)
            self.waiting.pop(id, None)
            self._expiring.pop(id, None)
            if job.agent is not None:
                job.agent.running.pop(id, None)

    def _reject(self, job: Assignment, message: str) -> None:
        if job.id in self.jobs:  # stored while it waited for an agent
            self._finish(job, "error", kind="invalid", message=message)
        else:
            self._fail_early(job, "invalid", message)

    def _dispatch(
        self, job: Assignment, agent: AgentState, bound: dict[str, Any], *, new: bool = False
    ) -> None:
        assert agent.peer is not None
        job.bound = bound
        job.attempts += 1
        if job.attempts > self.max_attempts:
            self._finish(
                job,
                "error",
                kind="lost",
                message=f"given up after {self.max_attempts} deliveries: the agent disconnected "
                "each time it ran the assignment",
            )
            return
        job.agent = agent
        job.remote = False
        job.tried.add(agent.key)
        self.admit(job)  # before the send: a failed send releases it
        agent.running[job.id] = job
        if new:
            self._remember(job.id)
            row = job.row("assigned")
            if self.cluster is not None:  # ours while we renew the lease
                replica = self.cluster.replica
                lease = self.cluster.lease_until()
                row.update(replica=replica, caller_replica=replica, lease_until=lease)
            self.store.insert(row)
        else:
            fields = {"status": "assigned", "agent_key": agent.key, "attempts": job.attempts}
            # between replicas the row is ours already (claimed, leased): lazy, so that the
            # agent's answer need not wait for this write (a kill -9 meanwhile loses no call:
            # the row is queued again when its lease lapses)
            lazy = self.cluster is not None
            self.store.update(job.id, {**fields, "args": bound}, lazy=lazy)
        try:  # bound arguments (defaults filled in) may be bigger than the call was
            agent.peer.send(
                {"t": "assign", "id": job.id, "f": job.function, "a": bound}, strict=True
            )
        except MessageError as error:
            reason = f"the arguments cannot be sent to the agent: {error}"
            self._finish(job, "error", kind="invalid", message=reason)

    def _pump_waiting(self) -> None:
        for job in list(self.waiting.values()):
            online = self.agents.providing(job.function, job.selector)
            if online:
                chosen = choose(job, online)
                if isinstance(chosen, str):
                    self._reject(job, chosen)  # finishes it (it is stored)
                else:
                    del self.waiting[job.id]
                    self._dispatch(job, *chosen)

    def _fail_early(self, job: Assignment, kind: str, message: str) -> None:
        """Fail a call that never became an assignment (nothing stored)."""
        job.failure = (kind, message)
        self._expiring.pop(job.id, None)
        if job.caller is not None:
            job.caller.jobs.discard(job.id)
            job.caller.send({"t": "error", "id": job.id, "kind": kind, "m": message, "tb": None})

    def _finish(
        self,
        job: Assignment,
        status: str,
        *,
        value: Any = None,
        kind: str | None = None,
        message: str | None = None,
        tb: str | None = None,
        by: AgentState | None = None,
    ) -> None:
        self.release(job)
        self.waiting.pop(job.id, None)
        self._expiring.pop(job.id, None)
        self._forwarded.pop(job.id, None)
        if job.agent is not None:
            job.agent.running.pop(job.id, None)
            if by is not None and job.agent is not by and job.agent.peer is not None:
                job.agent.peer.send({"t": "cancel", "id": job.id})  # a duplicate delivery
        caller = job.caller
        if caller is not None:
            caller.jobs.discard(job.id)
            if status == "done":
                out: dict[str, Any] = {"t": "done", "id": job.id, "v": value}
                if by is not None and (hint := by.hints.get(job.function)) is not None:
                    out["r"] = hint
            else:
                out = {"t": "error", "id": job.id, "kind": kind, "m": message, "tb": tb}
            caller.send(out)
        fields = {
            "status": status,
            "result": value,
            "error_kind": kind,
            "error": message,
            "traceback": tb,
            "finished_at": utcnow(),
        }
        if job.remote:  # another replica's agent may run it: tell it (or end the waiting row)
            cancel = {"t": "cancel", "id": job.id, "m": message, "kind": kind}
            self.store.event(job.id, "agent", cancel)
            return
        self.store.update(job.id, fields, on_commit=_acker(by, job.id) if by else None)


def _acker(agent: AgentState, id: str) -> Any:
    def ack() -> None:
        if agent.peer is not None:
            agent.peer.send({"t": "ack", "ids": [id]})

    return ack
