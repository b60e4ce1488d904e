"""The dispatcher: agents, callers and assignments in memory, recorded write-behind.

Decisions are made in memory on the server's loop (no database round trip on the hot path);
every change is recorded in the :class:`~arkitekt_server.rekuest._store.Store`, which commits in
batches. An assignment whose agent disconnects goes back to the waiting queue for
``max(wait, agent_grace)`` (the setting ``rekuest_agent_grace_seconds``): it is dispatched again
when an agent that provides the function (re)connects, or failed explicitly (``lost``) when the
time is up. An agent that reconnects while still holding an assignment (running, or with a
result not yet acknowledged) keeps it. A caller whose connection drops may reconnect and
``resume`` its calls by id within ``resume_grace``; else they are cancelled.

On PostgreSQL (several replicas, :attr:`Dispatcher.cluster` set) a call no agent connected here
takes is *forwarded*: its row waits (``queued``) until the replica of a providing agent claims
it (:meth:`Hub.claimed`), or is handed to one such replica at once; its answers come back as
events (:meth:`Hub.deliver`).

Time comes from the injected ``clock``; the time limits are enforced by :meth:`Hub.expire`,
which the service's periodic loop calls.
"""

from __future__ import annotations

import logging
from typing import Any

from arkitekt.protocol.rekuest import AgentMessage, ArgumentsInvalid
from arkitekt.protocol.rekuest_messages import Cancelled, Done, Failed, Log, Yield
from arkitekt_server.rekuest._binding import bind, check_result, choose
from arkitekt_server.rekuest._calls import HubError, check_call, check_register
from arkitekt_server.rekuest._dispatch import GRACE_SECONDS, MAX_ATTEMPTS
from arkitekt_server.rekuest._peer import Peer
from arkitekt_server.rekuest._refusals import refuse_agent_message
from arkitekt_server.rekuest._replicas import Replicas
from arkitekt_server.rekuest._restore import answer_of, job_of, restore
from arkitekt_server.rekuest._state import AgentState, Assignment, Mailbox

__all__ = [
    "EXPIRE_EVERY_SECONDS",
    "GRACE_SECONDS",
    "MAX_ATTEMPTS",
    "AgentState",
    "Assignment",
    "Hub",
    "HubError",
]

log = logging.getLogger("arkitekt_server.rekuest")

EXPIRE_EVERY_SECONDS = 0.1
"""How often the service calls :meth:`Hub.expire`."""


class Hub(Replicas):
    """Routes calls to agents and results back to callers (arguments:
    :class:`~._dispatch.Dispatcher`)."""

    # -- startup -------------------------------------------------------------------------------
    async def load(self) -> None:
        """Restore agents (offline), their definitions, and unfinished assignments (waiting)."""
        agents, definitions, active = await self.store.load()
        restored = restore(agents, definitions, active, self.clock() + self.agent_grace)
        self.agents.add(restored.agents)
        resume_by = self.clock() + self.resume_grace
        for job in restored.waiting:
            self.waiting[job.id] = job
            self.admit(job)
            job.caller = mailbox = Mailbox(cancel=False)  # for its caller, if it resumes
            self._orphans[job.id] = (resume_by, mailbox)

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
        elsewhere = self.cluster is not None and (
            job.wait > 0 or self.agents.providing_elsewhere(job.function, job.selector)
        )
        if elsewhere:
            self._forward(job)
        elif job.wait > 0:
            self.waiting[id] = job
            self.admit(job)
            job.deadline = self.clock() + job.wait
            self._remember(id)
            self.store.insert(job.row("queued"))
        else:
            self._fail_early(job, "no_agent", self._no_agent_message(job))
        return job

    def knows(self, function: str, selector: str | None = None) -> bool:
        """Whether an agent (online or not) matching ``selector`` ever registered ``function``."""
        return bool(self.agents.definitions(function, selector))

    def caller_gone(self, caller: Peer, *, resumable: bool = True) -> None:
        """A caller disconnected: its calls go on for ``resume_grace`` (it may resume them),
        unless not ``resumable`` (it was cut off), then they are cancelled now."""
        deadline = self.clock() + self.resume_grace
        for id in list(caller.jobs):
            job = self.jobs.get(id)
            if job is None or job.caller is not caller:
                continue
            if resumable:  # its answers wait in a mailbox
                job.caller = mailbox = Mailbox()
                self._orphans[id] = (deadline, mailbox)
            else:
                self.cancel(None, id, "its caller disconnected")
        caller.jobs.clear()

    async def resume(self, caller: Peer, caller_pk: int, ids: list[str]) -> None:
        """A (re)connected caller waits for its calls ``ids`` again: finished ones are answered
        from their rows, unfinished ones answer it from now on, unknown ones fail (``lost``)."""
        missing = []
        for id in ids:
            job = self.jobs.get(id)
            orphan = self._orphans.get(id)
            if job is not None and job.caller_pk == caller_pk:
                self._attach(job, caller)
            elif orphan is not None and id not in self.jobs:  # it finished meanwhile
                for message in self._orphans.pop(id)[1].messages:
                    caller.send(message)
            else:
                missing.append(id)
        if not missing:
            return
        pending: set[str] = set()  # ids with answers on their way from another replica
        if self.cluster is not None:
            rows, pending = await self.cluster.resume(missing, caller_pk)
        else:
            rows = await self.store.rows(missing, caller_pk)
        found = {row.id: row for row in rows}
        for id in missing:
            row = found.get(id)
            job = self.jobs.get(id)
            if row is not None and job is not None:  # it became ours meanwhile
                self._attach(job, caller)
                continue
            agent = self.agents.by_key.get(row.agent_key or "") if row is not None else None
            hint = agent.hints.get(row.function) if agent is not None and row else None
            answer = answer_of(row, hint) if row is not None else None
            if answer is not None and id not in pending:
                caller.send(answer)
            elif row is not None and self.cluster is not None:  # its agent's replica answers
                job = job_of(row)
                job.remote = True
                self.admit(job)
                self._attach(job, caller)
            else:
                reason = f"the server does not know the call {id!r} (never stored, or pruned)"
                caller.send({"t": "error", "id": id, "kind": "unknown", "m": reason, "tb": None})
        if self.cluster is not None:
            self.cluster.wake("events")

    def _attach(self, job: Assignment, caller: Peer) -> None:
        if job.caller is not caller and self.cluster is not None and not job.remote:
            self.store.update(job.id, {"caller_replica": self.cluster.replica})
        orphan = self._orphans.pop(job.id, None)
        if orphan is not None and job.caller is orphan[1]:  # what came while it was away
            for message in orphan[1].messages:
                caller.send(message)
        job.caller = caller
        caller.jobs.add(job.id)

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
        replica = self.cluster.replica if self.cluster is not None else None
        await self.store.save_agent(
            key, client_pk, name, instance, [d.model_dump() for d in definitions], replica
        )
        agent.set_definitions(definitions)
        held = [id for id in register.holding if id not in self.jobs or self.jobs[id].remote]
        if self.cluster is not None and held:  # rows queued again, or of another replica's
            for row in await self.cluster.adopt(held, key):
                adopted = self._claim(self.jobs.get(row.id) or job_of(row), row.caller_replica)
                adopted.tried.add(key)
        self.agents.online(agent, peer)
        peer.send({"t": "registered", "agent": key})
        for id in register.holding:
            job = self.jobs.get(id)
            if id in self._forwarded:  # sent again by its caller (never stored): a claim
                continue  # delivers it again, answered with what the agent has (no cancel)
            if job is None or job.remote:  # finished meanwhile, or another agent's now
                peer.send({"t": "cancel", "id": id})
            elif job.agent is None and key in job.tried:  # it is still on it: keep it there
                self.waiting.pop(id, None)
                job.agent = agent
                job.remote = False
                job.tried.add(agent.key)
                agent.running[id] = job
                fields: dict[str, Any] = {"status": "assigned", "agent_key": key}
                if self.cluster is not None:  # held by this replica from now on
                    fields.update(
                        replica=self.cluster.replica, lease_until=self.cluster.lease_until()
                    )
                self.store.update(id, fields)
        self._pump_waiting()
        if self.cluster is not None:
            self.cluster.wake("work")
        return agent

    def agent_message(self, agent: AgentState, msg: AgentMessage) -> None:
        """Handle one validated message of a registered agent."""
        job = self.jobs.get(msg.id)
        if job is not None and agent.key not in job.tried:  # never given to it (here)
            log.debug("rekuest: ignored %r of %s from agent %s", msg.t, msg.id, agent.key)
            return
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
                out = {"t": "yield", "id": job.id, "n": n, "v": value}
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
            if self.cluster is not None:
                self._requeue(job)
                continue
            job.deadline = now + max(job.wait, self.agent_grace)
            self.waiting[job.id] = job
            self.store.update(job.id, {"status": "queued"})
        agent.running.clear()
        self._pump_waiting()

    def agent_of(self, peer: Peer) -> AgentState | None:
        """The agent registered over ``peer`` (``None``: it never registered, or is gone)."""
        return self.agents.of(peer)
