"""The dispatcher: agents, callers and assignments in memory, recorded write-behind.

Decisions are made in memory on the server's loop (no database round trip on the hot path);
every change is recorded in the :class:`~arkitekt_server.rekuest._store.Store`, which commits in
batches. An assignment whose agent disconnects goes back to the waiting queue for
``max(wait, agent_grace)`` (the setting ``rekuest_agent_grace_seconds``): it is dispatched again
when an agent that provides the function (re)connects, or failed explicitly (``lost``) when the
time is up. An agent that reconnects while still holding an assignment (running, or with a
result not yet acknowledged) keeps it.

Time comes from the injected ``clock``; the time limits are enforced by :meth:`Hub.expire`,
which the service's periodic loop calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from arkitekt.protocol.rekuest import AgentMessage, ArgumentsInvalid, MessageError
from arkitekt.protocol.rekuest_frames import Cancelled, Done, Failed, Log, Yield
from arkitekt_server._db import utcnow
from arkitekt_server.rekuest._agents import Agents
from arkitekt_server.rekuest._binding import bind, check_result, choose
from arkitekt_server.rekuest._calls import HubError, check_call, check_register
from arkitekt_server.rekuest._peer import Peer
from arkitekt_server.rekuest._quotas import Quotas
from arkitekt_server.rekuest._refusals import refuse_agent_message, refuse_duplicate
from arkitekt_server.rekuest._restore import restore
from arkitekt_server.rekuest._state import AgentState, Assignment
from arkitekt_server.rekuest._store import Store

__all__ = [
    "EXPIRE_EVERY_SECONDS",
    "GRACE_SECONDS",
    "MAX_ATTEMPTS",
    "AgentState",
    "Assignment",
    "Hub",
    "HubError",
]

GRACE_SECONDS = 15.0
"""How long an assignment waits at least for an agent after its agent disconnected (default)."""
MAX_ATTEMPTS = 3
"""Deliveries of one assignment before it is failed (an agent dying on it each time; default)."""
EXPIRE_EVERY_SECONDS = 0.1
"""How often the service calls :meth:`Hub.expire`."""
REMEMBERED_IDS = 100_000
"""How many stored call ids the hub remembers to refuse reused ids without asking the database
(older ones are caught when the store finds them already stored)."""


class Hub:
    """Routes calls to agents and results back to callers.

    Args:
        store: where changes are recorded.
        max_pending_calls: unfinished assignments one app (caller) may have at once.
        max_pending_bytes: their arguments' encoded bytes, summed, per app.
        cancel_grace: seconds an agent has to confirm a cancel; then the assignment is
            cancelled without it (its app's slot is free again, its arguments forgotten).
        agent_grace: seconds an assignment waits at least for an agent after its agent
            disconnected (also after a restart).
        max_attempts: deliveries of one assignment before it is failed (``lost``).
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_attempts = max_attempts
        self.cancel_grace = cancel_grace
        self.agent_grace = agent_grace
        self.quotas = Quotas(max_pending_calls, max_pending_bytes)
        self.agents = Agents()
        self.jobs: dict[str, Assignment] = {}
        self.waiting: dict[str, Assignment] = {}
        self._expiring: dict[str, Assignment] = {}  # jobs with a timeout, or a cancel to confirm
        self._used: dict[str, None] = {}  # ids stored lately, oldest first
        store.on_duplicate = self._duplicate

    # -- startup -------------------------------------------------------------------------------
    async def load(self) -> None:
        """Restore agents (offline), their definitions, and unfinished assignments (waiting)."""
        agents, definitions, active = await self.store.load()
        restored = restore(agents, definitions, active, self.clock() + self.agent_grace)
        self.agents.add(restored.agents)
        for job in restored.waiting:
            self.waiting[job.id] = job
            self.admit(job)

    # -- callers -------------------------------------------------------------------------------
    def call(self, caller: Peer | None, caller_pk: int, msg: dict[str, Any]) -> Assignment:
        """Start an assignment from a ``call`` message; failures go to the caller.

        Raises:
            HubError: the message itself is malformed, or its id was used before.

        """
        id = msg.get("id")
        if not isinstance(id, str) or not 8 <= len(id) <= 64:
            raise HubError("a call needs a fresh id (a uuid of 8 to 64 characters)")
        if id in self.jobs or id in self._used:
            raise HubError(f"the call id {id!r} was used before; every call needs a fresh id")
        message, kwargs, size = check_call(msg)
        if (refusal := self.quotas.refusal(caller_pk, size)) is not None:
            raise HubError(refusal, 429)
        job = Assignment(id, message.f, caller, caller_pk)
        job.size = size
        job.raw = (message.args or [], kwargs)
        job.selector = message.agent
        job.stream = message.stream
        job.events = message.events
        job.wait = message.wait or 0.0
        if message.timeout is not None:
            job.timeout = message.timeout
            job.expires = self.clock() + job.timeout
            self._expiring[id] = job
        if caller is not None:
            caller.jobs.add(id)
        online = self.agents.providing(job.function, job.selector)
        if online:
            chosen = choose(job, online)
            if isinstance(chosen, str):
                self._reject(job, chosen)
            else:
                self._dispatch(job, *chosen, new=True)
            return job
        known = self.agents.definitions(job.function, job.selector)
        if known:  # refuse bad arguments now, if no known definition accepts them
            reasons = [bind(job, definition) for definition in known]
            if all(isinstance(reason, str) for reason in reasons):
                self._reject(job, str(reasons[0]))
                return job
        if job.wait > 0:
            self.waiting[id] = job
            self.admit(job)
            job.deadline = self.clock() + job.wait
            self._remember(id)
            self.store.insert(job.row("queued"))
        else:
            self._fail_early(job, "no_agent", self._no_agent_message(job))
        return job

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

    def knows(self, function: str, selector: str | None = None) -> bool:
        """Whether an agent (online or not) matching ``selector`` ever registered ``function``."""
        return bool(self.agents.definitions(function, selector))

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

    def caller_gone(self, caller: Peer) -> None:
        """Cancel what a disconnected caller was waiting for."""
        for id in list(caller.jobs):
            self.cancel(None, id, "its caller disconnected")
        caller.jobs.clear()

    # -- agents --------------------------------------------------------------------------------
    async def agent_connected(
        self, peer: Peer, client_pk: int, name: str, msg: dict[str, Any]
    ) -> AgentState:
        """Register an agent from its ``register`` message and hand it its assignments.

        Raises:
            HubError: the registration is invalid.

        """
        register = check_register(msg)  # all of it, before anything changes
        instance, definitions = register.instance, register.definitions
        key = f"{client_pk}:{instance}"
        agent = self.agents.get(key, client_pk, name, instance)
        if agent.peer is not None:  # an older connection of the same agent: replaced
            old = agent.peer
            self.agent_gone(agent, old)
            old.close(4000, "replaced by a new connection of the same agent")
        await self.store.save_agent(
            key, client_pk, name, instance, [d.model_dump() for d in definitions]
        )
        agent.set_definitions(definitions)
        self.agents.online(agent, peer)
        peer.send({"t": "registered", "agent": key})
        for id in register.holding:
            job = self.jobs.get(id)
            if job is None:  # finished meanwhile (failed, cancelled, or done elsewhere)
                peer.send({"t": "cancel", "id": id})
            elif job.agent is None and key in job.tried:  # it is still on it: keep it there
                self.waiting.pop(id, None)
                job.agent = agent
                job.tried.add(agent.key)
                agent.running[id] = job
                self.store.update(id, {"status": "assigned", "agent_key": key})
        self._pump_waiting()
        return agent

    def agent_message(self, agent: AgentState, msg: AgentMessage) -> None:
        """Handle one validated message of a registered agent."""
        job = self.jobs.get(msg.id)
        if job is not None and agent.key not in job.tried:
            return  # not an assignment this agent was ever given
        if job is None:
            if isinstance(msg, Done | Failed | Cancelled) and agent.peer is not None:
                agent.peer.send({"t": "ack", "ids": [msg.id]})  # nothing waits for it any more
            return
        caller = job.caller
        if isinstance(msg, Yield | Done):
            value = check_result(agent.definitions.get(job.function), msg)
            if isinstance(value, ArgumentsInvalid):
                self.agent_refused(agent, msg.model_dump(), str(value))
                return
            if isinstance(msg, Done):
                self._finish(job, "done", value=value, by=agent)
                return
            n = job.seq if msg.n is None else msg.n
            if n < job.seq:
                return  # a resent item the caller already has
            job.seq = n + 1
            if caller is not None:
                out = {"t": "yield", "id": job.id, "v": value}
                if (hint := agent.hints.get(job.function)) is not None:
                    out["r"] = hint
                caller.send(out)
        elif isinstance(msg, Failed):
            self._finish(job, "error", kind="remote", message=msg.m, tb=msg.tb, by=agent)
        elif isinstance(msg, Cancelled):
            self._finish(job, "cancelled", kind="cancelled", message="cancelled", by=agent)
        elif isinstance(msg, Log):
            self.store.log(job.id, msg.level, msg.m)
            if caller is not None and job.events:
                caller.send({"t": "log", "id": job.id, "level": msg.level, "m": msg.m})
        elif caller is not None and job.events:
            caller.send({"t": "progress", "id": job.id, "p": msg.p, "m": msg.m})

    def agent_refused(self, agent: AgentState, message: dict[str, Any], reason: str) -> None:
        """An agent sent a message that breaks the protocol: it fails its assignment only."""
        id = message.get("id")
        job = self.jobs.get(id) if isinstance(id, str) else None
        text = refuse_agent_message(agent, job, message, reason)
        if job is not None and text is not None:
            self._finish(job, "error", kind="remote", message=text, by=agent)

    def agent_gone(self, agent: AgentState, peer: Peer) -> None:
        """An agent's connection closed: its assignments wait for it (or another) to come."""
        if agent.peer is not peer:
            return
        self.agents.offline(agent)
        now = self.clock()
        for job in agent.running.values():
            job.agent = None
            job.deadline = now + max(job.wait, self.agent_grace)
            self.waiting[job.id] = job
            self.store.update(job.id, {"status": "queued"})
        agent.running.clear()
        self._pump_waiting()

    def agent_of(self, peer: Peer) -> AgentState | None:
        """The agent registered over ``peer`` (``None``: it never registered, or is gone)."""
        return self.agents.of(peer)

    # -- time ----------------------------------------------------------------------------------
    def expire(self, now: float) -> None:
        """Do what is due at ``now`` (on :attr:`clock`): fail assignments that waited for an
        agent in vain or ran past their timeout; end cancels their agent did not confirm."""
        for job in [job for job in self.waiting.values() if job.deadline <= now]:
            if job.attempts:
                message = (
                    f"the agent running {job.function!r} disconnected and no agent took the "
                    "assignment over in time"
                )
                self._finish(job, "error", kind="lost", message=message)
            else:
                self._finish(job, "error", kind="no_agent", message=self._no_agent_message(job))
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
        job.tried.add(agent.key)
        self.admit(job)  # before the send: a failed send releases it
        agent.running[job.id] = job
        if new:
            self._remember(job.id)
            self.store.insert(job.row("assigned"))
        else:
            fields = {"status": "assigned", "agent_key": agent.key, "attempts": job.attempts}
            self.store.update(job.id, {**fields, "args": bound})
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
        self.store.update(job.id, fields, on_commit=_acker(by, job.id) if by else None)


def _acker(agent: AgentState, id: str) -> Any:
    def ack() -> None:
        if agent.peer is not None:
            agent.peer.send({"t": "ack", "ids": [id]})

    return ack
