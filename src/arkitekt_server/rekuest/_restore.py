"""Restoring the hub on startup: agents, definitions and unfinished assignments, rebuilt from
stored rows (the hub applies them, :meth:`~arkitekt_server.rekuest._hub.Hub.load`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from arkitekt.protocol.rekuest import Definition, MessageError, encode
from arkitekt_server.rekuest._models import AgentRow, AssignmentRow, DefinitionRow
from arkitekt_server.rekuest._state import AgentState, Assignment

__all__ = ["Restored", "answer_of", "job_of", "restore"]

log = logging.getLogger("arkitekt_server.rekuest")


@dataclass
class Restored:
    """The hub's state as stored: every agent (offline) and the unfinished assignments."""

    agents: dict[str, AgentState] = field(default_factory=dict)
    """By key, with their definitions."""
    waiting: list[Assignment] = field(default_factory=list)
    """Unfinished assignments, each waiting for an agent (its size counted)."""


def restore(
    agents: Sequence[AgentRow] | Sequence[Any],
    definitions: Sequence[DefinitionRow] | Sequence[Any],
    active: Sequence[AssignmentRow],
    deadline: float,
) -> Restored:
    """Rebuild agents (offline), their definitions, and the unfinished assignments from rows.

    Args:
        agents: the stored agents.
        definitions: their stored definitions (one that no longer parses is skipped).
        active: the unfinished assignments.
        deadline: when (on the hub's clock) the assignments stop waiting for an agent.

    Returns:
        The state, for the hub to take over.
    """
    restored = Restored()
    by_id: dict[int, AgentState] = {}
    for row in agents:
        state = AgentState(row.key, row.client_pk, row.name, row.instance)
        restored.agents[row.key] = by_id[row.id] = state
    grouped: dict[int, list[Definition]] = {}
    for drow in definitions:
        try:
            grouped.setdefault(drow.agent_id, []).append(Definition.model_validate(drow.definition))
        except ValidationError:
            log.warning("ignoring a stored definition that no longer parses: %s", drow.name)
    for agent_id, defs in grouped.items():
        if agent_id in by_id:
            by_id[agent_id].set_definitions(defs)
    for arow in active:
        job = job_of(arow)
        job.deadline = deadline
        restored.waiting.append(job)
    if active:
        log.info("rekuest: %d unfinished assignment(s) wait for their agents", len(active))
    return restored


def job_of(row: Any) -> Assignment:
    """The unfinished assignment of a stored row (an ``AssignmentRow`` or a selected row);
    its caller is not set."""
    job = Assignment(row.id, row.function, None, row.caller_pk)
    job.selector = row.agent_filter
    job.stream = row.stream
    job.events = bool(row.events)
    job.attempts = row.attempts
    raw = row.args.get("__raw__") if isinstance(row.args, dict) else None
    if raw is None:
        job.bound = row.args
        job.raw = ([], dict(row.args))  # bound again to the definition of its next agent
    else:  # never validated: no definition was known yet
        job.raw = (list(raw[0]), dict(raw[1]))
    if row.agent_key is not None:
        job.tried.add(row.agent_key)
    try:  # counted against its app's limits, as when it was made
        job.size = len(encode(row.args))
    except MessageError:
        job.size = 0
    return job


def answer_of(row: Any, hint: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the caller of a finished row is sent (``None``: it is not finished); ``hint`` is
    the return port of its function, sent with a result."""
    if row.status == "done":
        answer: dict[str, Any] = {"t": "done", "id": row.id, "v": row.result}
        if hint is not None:
            answer["r"] = hint
        return answer
    if row.status in ("error", "cancelled"):
        kind = row.error_kind or ("cancelled" if row.status == "cancelled" else "lost")
        message = row.error or row.status
        return {"t": "error", "id": row.id, "kind": kind, "m": message, "tb": row.traceback}
    return None
