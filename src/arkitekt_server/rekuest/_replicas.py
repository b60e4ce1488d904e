"""The hub's part in routing between replicas (PostgreSQL): forwarding a call to whichever
replica claims it, dispatching what this replica claimed, answers and cancels from other
replicas, and giving a row back when its agent leaves. :class:`~._hub.Hub` builds on it."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from arkitekt_server._db import utcnow
from arkitekt_server.rekuest._binding import choose
from arkitekt_server.rekuest._dispatch import Dispatcher
from arkitekt_server.rekuest._inbox import handoff
from arkitekt_server.rekuest._peer import Peer
from arkitekt_server.rekuest._restore import job_of
from arkitekt_server.rekuest._state import Assignment

__all__ = ["Replicas"]


class Replicas(Dispatcher):
    """Routing between replicas; every method but :meth:`cancel_elsewhere` needs
    :attr:`~._dispatch.Dispatcher.cluster`."""

    async def cancel_elsewhere(self, caller_pk: int, id: str) -> bool:
        """Cancel an unfinished assignment of app ``caller_pk`` this replica does not hold
        (PostgreSQL: another replica's agent runs it, or it waits for one)."""
        if self.cluster is None:
            return False
        rows = await self.store.rows([id], caller_pk)
        if not rows or rows[0].status not in ("queued", "assigned"):
            return False
        message = "cancelled by its caller"
        self.store.event(id, "agent", {"t": "cancel", "id": id, "m": message, "kind": "cancelled"})
        return True

    def claimed(self, rows: list[Any]) -> None:
        """Rows this replica claimed for its agents (:mod:`._relay`): dispatch them."""
        for row in rows:
            job = self._claim(self.jobs.get(row.id) or job_of(row), row.caller_replica)
            if job.agent is not None:  # its agent here has it already (it reconnected)
                continue
            online = self.agents.providing(job.function, job.selector)
            chosen = choose(job, online) if online else None
            if chosen is None:  # its agent left meanwhile
                self._requeue(job)
            elif isinstance(chosen, str):
                self._finish(job, "error", kind="invalid", message=chosen)
            else:
                self._dispatch(job, *chosen)

    def deliver(self, message: dict[str, Any]) -> None:
        """A message another replica sent here: an answer for a caller, or a cancel."""
        id, kind = message.get("id"), message.get("t")
        if not isinstance(id, str):
            return
        if kind == "cancel":
            self.cancel(None, id, str(message.get("m") or "cancelled by its caller"))
            return
        job = self.jobs.get(id)
        if kind == "moved":  # its caller resumed it on another replica
            self._moved(job)
            return
        if job is None or not job.remote:
            return
        if kind in ("done", "error"):
            self.release(job)
            self._expiring.pop(id, None)
            self._forwarded.pop(id, None)
            if job.caller is not None:
                job.caller.jobs.discard(id)
        if job.caller is not None:
            job.caller.send(message)

    def _moved(self, job: Assignment | None) -> None:
        if job is None or job.caller is None or isinstance(job.caller, Peer):
            return  # (a caller that reconnected here meanwhile keeps it)
        assert self.cluster is not None
        self._orphans.pop(job.id, None)
        if job.remote:  # nothing runs here: forget it
            self.release(job)
            self._expiring.pop(job.id, None)
            self._forwarded.pop(job.id, None)
        else:  # its agent is here: its answers go to the caller's new replica
            job.caller = self.cluster.caller

    def _claim(self, job: Assignment, caller_replica: str | None) -> Assignment:
        """Hold a claimed row's job here; its answers go to its caller's replica."""
        assert self.cluster is not None
        if caller_replica != self.cluster.replica and job.caller is None:
            job.caller = self.cluster.caller
        job.remote = False
        self._forwarded.pop(job.id, None)
        self.admit(job)
        return job

    def _forward(self, job: Assignment) -> None:
        """Store a call for an agent of another replica: handed to the replica of one that
        provides it (:mod:`._inbox`), or queued for whichever claims it."""
        assert self.cluster is not None
        job.remote = True
        self.admit(job)
        self._remember(job.id)
        if job.wait > 0:  # then this replica fails it, unless an agent's replica claimed it
            job.deadline = self.clock() + job.wait
            self._forwarded[job.id] = job
        # and if this replica dies meanwhile, any replica does, a grace later
        until = utcnow() + dt.timedelta(seconds=job.wait + self.agent_grace)
        row = job.row("queued")
        row.update(caller_replica=self.cluster.replica, wait_until=until)
        providers = self.agents.providing_elsewhere(job.function, job.selector)
        replicas = sorted({agent.replica for agent in providers if agent.replica is not None})
        if replicas:
            target = random.choice(replicas)  # noqa: S311 -- spreading load, not a secret
            text = handoff(target, row)
            if text is not None:  # queued, but for it alone while the lease holds
                lease = self.cluster.lease_until()
                self.store.insert({**row, "replica": target, "lease_until": lease}, text)
                return
        self.store.insert(row)
        self.store.notify("work")

    def _requeue(self, job: Assignment) -> None:
        """Give a job's row back to every replica (its agent left); keep it only for its
        caller here."""
        until = utcnow() + dt.timedelta(seconds=max(job.wait, self.agent_grace))
        fields = {"status": "queued", "replica": None, "lease_until": None, "wait_until": until}
        self.store.update(job.id, fields)
        self.store.notify("work")
        assert self.cluster is not None
        if job.caller is not None and job.caller is not self.cluster.caller:
            job.remote = True  # its caller is here (or away, with a mailbox here)
        else:
            self.release(job)
            self._expiring.pop(job.id, None)
