"""The dispatcher: agents, callers and assignments in memory, recorded write-behind.

Decisions are made in memory on the server's loop (no database round trip on the hot path);
every change is recorded in the :class:`~arkitekt_server.rekuest.store.Store`, which commits in
batches. An assignment whose agent disconnects goes back to the waiting queue for
``max(wait, GRACE_SECONDS)``: it is dispatched again when an agent that provides the function
(re)connects, or failed explicitly (``lost``) when the time is up. An agent that reconnects
while still holding an assignment (running, or with a result not yet acknowledged) keeps it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
from pydantic import ValidationError

from arkitekt.protocol.rekuest import ArgumentsInvalid, Definition, bind_arguments
from arkitekt_server.db import utcnow
from arkitekt_server.rekuest.peer import Peer
from arkitekt_server.rekuest.restore import restore
from arkitekt_server.rekuest.state import AgentState, Job
from arkitekt_server.rekuest.store import Store

__all__ = ["GRACE_SECONDS", "MAX_ATTEMPTS", "AgentState", "Hub", "HubError", "Job"]

log = logging.getLogger("arkitekt_server.rekuest")

GRACE_SECONDS = 15.0
"""How long an assignment waits at least for an agent after its agent disconnected."""
MAX_ATTEMPTS = 3
"""Deliveries of one assignment before it is failed (an agent dying on it each time)."""
REAP_INTERVAL = 0.1


class HubError(Exception):
    """A request the hub refuses (the message says why)."""


class Hub:
    """Routes calls to agents and results back to callers.

    Args:
        store: where changes are recorded.

    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.agents: dict[str, AgentState] = {}
        self.jobs: dict[str, Job] = {}
        self.waiting: dict[str, Job] = {}
        self._providers: dict[str, dict[str, AgentState]] = {}
        self._expiring: dict[str, Job] = {}  # jobs with a timeout

    # -- startup -------------------------------------------------------------------------------
    async def load(self) -> None:
        """Restore agents (offline), their definitions, and unfinished assignments (waiting)."""
        await restore(self, GRACE_SECONDS)

    # -- callers -------------------------------------------------------------------------------
    def call(self, caller: Peer | None, caller_pk: int, msg: dict[str, Any]) -> Job:
        """Start an assignment from a ``call`` message; failures go to the caller.

        Raises:
            HubError: the message itself is malformed (no usable id).

        """
        id = msg.get("id")
        if not isinstance(id, str) or not 8 <= len(id) <= 64 or id in self.jobs:
            raise HubError("a call needs a fresh id (a uuid of 8 to 64 characters)")
        job = Job(id, str(msg.get("f", "")), caller, caller_pk)
        args, kwargs = msg.get("args") or [], msg.get("kwargs") or {}
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            self._fail_early(job, "invalid", "args must be a list and kwargs an object")
            return job
        job.raw = (args, kwargs)
        job.selector = msg.get("agent")
        job.stream = bool(msg.get("stream", False))
        job.events = bool(msg.get("events", False))
        job.wait = max(0.0, float(msg.get("wait") or 0.0))
        if (timeout := msg.get("timeout")) is not None:
            job.timeout = float(timeout)
            job.expires = time.monotonic() + job.timeout
            self._expiring[id] = job
        if caller is not None:
            caller.jobs.add(id)
        online = self._online(job)
        definition = online[0].definitions[job.function] if online else self._known_definition(job)
        if definition is not None and not self._bind(job, definition):
            return job
        if online:
            self._dispatch(job, min(online, key=lambda agent: len(agent.running)), new=True)
        elif job.wait > 0:
            self.jobs[id] = self.waiting[id] = job
            job.deadline = time.monotonic() + job.wait
            self.store.insert(self._row(job, "queued"))
        else:
            self._fail_early(job, "no_agent", self._no_agent_message(job, definition))
        return job

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
        if msg.get("t") != "register":
            raise HubError("the first message of an agent must be `register`")
        instance = str(msg.get("instance") or "default")
        try:
            definitions = [Definition.model_validate(d) for d in msg.get("definitions") or []]
        except ValidationError as error:
            raise HubError(f"invalid definitions: {error}") from None
        if len({d.name for d in definitions}) != len(definitions):
            raise HubError("two definitions share a name")
        key = f"{client_pk}:{instance}"
        agent = self.agents.get(key)
        if agent is None:
            agent = self.agents[key] = AgentState(key, client_pk, name, instance)
        if agent.peer is not None:  # an older connection of the same agent: replaced
            old = agent.peer
            self.agent_gone(agent, old)
            old.close(4000, "replaced by a new connection of the same agent")
        await self.store.save_agent(
            key, client_pk, name, instance, [d.model_dump() for d in definitions]
        )
        agent.set_definitions(definitions)
        agent.peer = peer
        for fname in agent.definitions:
            self._providers.setdefault(fname, {})[key] = agent
        peer.send({"t": "registered", "agent": key})
        for id in msg.get("holding") or []:
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

    def agent_message(self, agent: AgentState, msg: dict[str, Any]) -> None:
        """Handle one message of a registered agent."""
        kind, id = msg.get("t"), msg.get("id")
        job = self.jobs.get(id) if isinstance(id, str) else None
        if job is not None and agent.key not in job.tried:
            return  # not an assignment this agent was ever given
        if job is None:
            if kind in ("done", "error", "cancelled") and agent.peer is not None:
                agent.peer.send({"t": "ack", "ids": [id]})  # nothing waits for it any more
            return
        caller = job.caller
        if kind == "yield":
            n = int(msg.get("n", job.seq))
            if n < job.seq:
                return  # a resent item the caller already has
            job.seq = n + 1
            if caller is not None:
                out = {"t": "yield", "id": job.id, "v": msg.get("v")}
                if (hint := agent.hints.get(job.function)) is not None:
                    out["r"] = hint
                caller.send(out)
        elif kind == "done":
            self._finish(job, "done", value=msg.get("v"), by=agent)
        elif kind == "error":
            self._finish(
                job, "error", kind="remote", message=str(msg.get("m")), tb=msg.get("tb"), by=agent
            )
        elif kind == "cancelled":
            self._finish(job, "cancelled", kind="cancelled", message="cancelled", by=agent)
        elif kind == "log":
            level, text = str(msg.get("level", "info")), str(msg.get("m", ""))
            self.store.log(job.id, level, text)
            if caller is not None and job.events:
                caller.send({"t": "log", "id": job.id, "level": level, "m": text})
        elif kind == "progress" and caller is not None and job.events:
            caller.send({"t": "progress", "id": job.id, "p": msg.get("p"), "m": msg.get("m")})

    def agent_gone(self, agent: AgentState, peer: Peer) -> None:
        """An agent's connection closed: its assignments wait for it (or another) to come."""
        if agent.peer is not peer:
            return
        agent.peer = None
        for fname in agent.definitions:
            self._providers.get(fname, {}).pop(agent.key, None)
        now = time.monotonic()
        for job in agent.running.values():
            job.agent = None
            job.deadline = now + max(job.wait, GRACE_SECONDS)
            self.waiting[job.id] = job
            self.store.update(job.id, {"status": "queued"})
        agent.running.clear()
        self._pump_waiting()

    # -- time ----------------------------------------------------------------------------------
    async def reap(self) -> None:
        """Fail waiting assignments and calls whose time is up, until cancelled."""
        while True:
            await anyio.sleep(REAP_INTERVAL)
            now = time.monotonic()
            for job in [job for job in self.waiting.values() if job.deadline <= now]:
                if job.attempts:
                    self._finish(
                        job,
                        "error",
                        kind="lost",
                        message=f"the agent running {job.function!r} disconnected and no agent "
                        "took the assignment over in time",
                    )
                else:
                    self._finish(job, "error", kind="no_agent", message=self._no_agent_message(job))
            for job in [job for job in self._expiring.values() if job.expires <= now]:
                if job.agent is not None and job.agent.peer is not None:
                    job.agent.peer.send({"t": "cancel", "id": job.id})
                message = f"{job.function!r} did not finish within {job.timeout:g} s; cancelled it"
                self._finish(job, "error", kind="timeout", message=message)

    # -- internals -----------------------------------------------------------------------------
    def _online(self, job: Job) -> list[AgentState]:
        providers = self._providers.get(job.function)
        if not providers:
            return []
        return [agent for agent in providers.values() if agent.matches(job.selector)]

    def _known_definition(self, job: Job) -> Definition | None:
        for agent in self.agents.values():
            if agent.matches(job.selector) and job.function in agent.definitions:
                return agent.definitions[job.function]
        return None

    def _no_agent_message(self, job: Job, definition: Definition | None = None) -> str:
        where = f" of agent {job.selector!r}" if job.selector else ""
        waited = f" (waited {job.wait:g} s)" if job.wait else ""
        if definition is None and self._known_definition(job) is None:
            return f"no function {job.function!r}{where} is registered on this server{waited}"
        return f"no agent{where} that provides {job.function!r} is online{waited}"

    def _bind(self, job: Job, definition: Definition) -> bool:
        if definition.stream != job.stream:
            use = "iterate()" if definition.stream else "call()"
            what = "a stream" if definition.stream else "not a stream"
            self._reject(job, f"{job.function!r} is {what}; use {use}")
            return False
        try:
            job.bound = bind_arguments(definition, *job.raw)
        except ArgumentsInvalid as error:
            self._reject(job, str(error))
            return False
        return True

    def _reject(self, job: Job, message: str) -> None:
        if job.id in self.jobs:  # stored while it waited for an agent
            self._finish(job, "error", kind="invalid", message=message)
        else:
            self._fail_early(job, "invalid", message)

    def _dispatch(self, job: Job, agent: AgentState, *, new: bool = False) -> None:
        if job.bound is None and not self._bind(job, agent.definitions[job.function]):
            return
        assert agent.peer is not None
        job.attempts += 1
        if job.attempts > MAX_ATTEMPTS:
            self._finish(
                job,
                "error",
                kind="lost",
                message=f"given up after {MAX_ATTEMPTS} deliveries: the agent disconnected "
                "each time it ran the assignment",
            )
            return
        job.agent = agent
        job.tried.add(agent.key)
        self.jobs[job.id] = job
        agent.running[job.id] = job
        if new:
            self.store.insert(self._row(job, "assigned"))
        else:
            fields = {"status": "assigned", "agent_key": agent.key, "attempts": job.attempts}
            self.store.update(job.id, {**fields, "args": job.bound})
        agent.peer.send({"t": "assign", "id": job.id, "f": job.function, "a": job.bound})

    def _pump_waiting(self) -> None:
        for job in list(self.waiting.values()):
            online = self._online(job)
            if online:
                del self.waiting[job.id]
                self._dispatch(job, min(online, key=lambda agent: len(agent.running)))

    def _row(self, job: Job, status: str) -> dict[str, Any]:
        return {
            "id": job.id,
            "function": job.function,
            "caller_pk": job.caller_pk,
            "agent_key": job.agent.key if job.agent is not None else None,
            "agent_filter": job.selector,
            "args": job.bound if job.bound is not None else {"__raw__": list(job.raw)},
            "stream": job.stream,
            "status": status,
            "attempts": job.attempts,
        }

    def _fail_early(self, job: Job, kind: str, message: str) -> None:
        """Fail a call that never became an assignment (nothing stored)."""
        job.failure = (kind, message)
        self._expiring.pop(job.id, None)
        if job.caller is not None:
            job.caller.jobs.discard(job.id)
            job.caller.send({"t": "error", "id": job.id, "kind": kind, "m": message, "tb": None})

    def _finish(
        self,
        job: Job,
        status: str,
        *,
        value: Any = None,
        kind: str | None = None,
        message: str | None = None,
        tb: str | None = None,
        by: AgentState | None = None,
    ) -> None:
        self.jobs.pop(job.id, None)
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
