"""What the hub does besides routing: enforcing time limits, refusing reused call ids, and
deleting finished assignments after the retention time."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from arkitekt_server.rekuest.hub import Hub
    from arkitekt_server.rekuest.store import Store

__all__ = ["PRUNE_EVERY_SECONDS", "prune", "reap", "refuse_duplicate"]

log = logging.getLogger("arkitekt_server.rekuest")

PRUNE_EVERY_SECONDS = 600.0
"""How often finished assignments older than ``rekuest_retention_seconds`` are deleted."""


async def prune(store: Store, retention_seconds: float) -> None:
    """One round of pruning: delete assignments finished more than ``retention_seconds`` ago."""
    removed = await store.prune(retention_seconds)
    if removed:
        log.info("rekuest: pruned %d finished assignments", removed)


async def reap(hub: Hub, interval: float) -> None:
    """Every ``interval`` seconds, fail waiting assignments and calls whose time is up."""
    while True:
        await anyio.sleep(interval)
        now = time.monotonic()
        for job in [job for job in hub.waiting.values() if job.deadline <= now]:
            if job.attempts:
                hub._finish(
                    job,
                    "error",
                    kind="lost",
                    message=f"the agent running {job.function!r} disconnected and no agent "
                    "took the assignment over in time",
                )
            else:
                message = hub._no_agent_message(job)
                hub._finish(job, "error", kind="no_agent", message=message)
        for job in [job for job in hub._expiring.values() if job.expires <= now]:
            if job.agent is not None and job.agent.peer is not None:
                job.agent.peer.send({"t": "cancel", "id": job.id})
            message = f"{job.function!r} did not finish within {job.timeout:g} s; cancelled it"
            hub._finish(job, "error", kind="timeout", message=message)


def refuse_duplicate(hub: Hub, id: str) -> None:
    """The store found ``id`` stored before (by an earlier run): refuse that call after all.

    Nothing of it is recorded (that would change the earlier call's row); its agent is told to
    cancel it, its caller gets a ``refused`` error.
    """
    log.warning("rekuest: refused a call whose id %r was used before", id)
    job = hub.jobs.pop(id, None)
    if job is None:
        return
    hub.waiting.pop(id, None)
    hub._expiring.pop(id, None)
    if job.agent is not None:
        job.agent.running.pop(id, None)
        if job.agent.peer is not None:
            job.agent.peer.send({"t": "cancel", "id": id})
    if job.caller is not None:
        job.caller.jobs.discard(id)
        message = f"the call id {id!r} was used before; every call needs a fresh id"
        job.caller.send({"t": "error", "id": id, "kind": "refused", "m": message, "tb": None})
