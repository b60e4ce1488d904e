"""What the hub does besides routing: enforcing time limits, and deleting finished
assignments after the retention time."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from arkitekt_server.rekuest._hub import Hub
    from arkitekt_server.rekuest._store import Store

__all__ = ["PRUNE_EVERY_SECONDS", "prune", "reap"]

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
            if job.cancelled is not None:  # its agent did not confirm the cancel in time
                message = (
                    f"{job.cancelled} (its agent did not confirm within {hub.cancel_grace:g} s)"
                )
                hub._finish(job, "cancelled", kind="cancelled", message=message)
                continue
            if job.agent is not None and job.agent.peer is not None:
                job.agent.peer.send({"t": "cancel", "id": job.id})
            message = f"{job.function!r} did not finish within {job.timeout:g} s; cancelled it"
            hub._finish(job, "error", kind="timeout", message=message)
