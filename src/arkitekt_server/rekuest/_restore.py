"""Restoring the hub on startup: agents, definitions and unfinished assignments."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from pydantic import ValidationError

from arkitekt.protocol.rekuest import Definition, MessageError, encode
from arkitekt_server.rekuest._state import AgentState, Assignment

if TYPE_CHECKING:
    from arkitekt_server.rekuest._hub import Hub

__all__ = ["restore"]

log = logging.getLogger("arkitekt_server.rekuest")


async def restore(hub: Hub, grace: float) -> None:
    """Load every agent (offline), its definitions, and the unfinished assignments.

    The assignments wait ``grace`` seconds for an agent that provides their function.
    """
    agents, definitions, active = await hub.store.load()
    by_id: dict[int, AgentState] = {}
    for row in agents:
        state = AgentState(row.key, row.client_pk, row.name, row.instance)
        hub.agents[row.key] = by_id[row.id] = state
    grouped: dict[int, list[Definition]] = {}
    for drow in definitions:
        try:
            grouped.setdefault(drow.agent_id, []).append(Definition.model_validate(drow.definition))
        except ValidationError:
            log.warning("ignoring a stored definition that no longer parses: %s", drow.name)
    for agent_id, defs in grouped.items():
        if agent_id in by_id:
            by_id[agent_id].set_definitions(defs)
    deadline = time.monotonic() + grace
    for arow in active:
        job = Assignment(arow.id, arow.function, None, arow.caller_pk)
        job.selector = arow.agent_filter
        job.stream = arow.stream
        job.attempts = arow.attempts
        raw = arow.args.get("__raw__") if isinstance(arow.args, dict) else None
        if raw is None:
            job.bound = arow.args
            job.raw = ([], dict(arow.args))  # bound again to the definition of its next agent
        else:  # never validated: no definition was known yet
            job.raw = (list(raw[0]), dict(raw[1]))
        if arow.agent_key is not None:
            job.tried.add(arow.agent_key)
        job.deadline = deadline
        hub.waiting[job.id] = job
        try:  # counted against its app's limits, as when it was made
            job.size = len(encode(arow.args))
        except MessageError:
            job.size = 0
        hub.admit(job)
    if active:
        log.info("rekuest: %d unfinished assignment(s) wait for their agents", len(active))
