"""What peers are told when the hub refuses after the fact: reused call ids, and messages of
agents that break the protocol (the hub updates its state; either fails only the assignment
concerned). Refusals are logged through :func:`~arkitekt_server.rekuest._peer.warn`,
rate-limited."""

from __future__ import annotations

from typing import Any

from arkitekt_server.rekuest._peer import warn
from arkitekt_server.rekuest._state import AgentState, Assignment

__all__ = ["refuse_agent_message", "refuse_duplicate"]


def refuse_agent_message(
    agent: AgentState, job: Assignment | None, message: dict[str, Any], reason: str
) -> str | None:
    """Tell an agent its message (about ``job``) breaks the protocol.

    The agent gets ``refused``; a terminal message is acknowledged, so that an agent that keeps
    it does not send it again forever; an assignment it may still run is cancelled on it.

    Returns:
        Why ``job`` fails (``None``: the agent was never given it, nothing changes).
    """
    id, kind = message.get("id"), str(message.get("t"))[:20]
    id = id if isinstance(id, str) else None
    warn("rekuest: refused a %r message of agent %s: %s", kind, agent.key, reason)
    if agent.peer is not None:
        agent.peer.send({"t": "refused", "id": id, "m": reason})
    if job is None or agent.key not in job.tried:
        if id is not None and kind in ("done", "error", "cancelled") and agent.peer:
            agent.peer.send({"t": "ack", "ids": [id]})
        return None
    if job.agent is agent and agent.peer is not None and kind not in ("done", "error"):
        agent.peer.send({"t": "cancel", "id": id})  # it may still run: stop it
    return f"agent {agent.name!r} sent an invalid {kind!r} message: {reason}"


def refuse_duplicate(id: str, job: Assignment | None) -> None:
    """Tell the peers of a call whose id was stored before (by an earlier run) that it is
    refused after all: its agent is told to cancel it, its caller gets a ``refused`` error."""
    warn("rekuest: refused a call whose id %r was used before", id)
    if job is None:
        return
    if job.agent is not None and job.agent.peer is not None:
        job.agent.peer.send({"t": "cancel", "id": id})
    if job.caller is not None:
        job.caller.jobs.discard(id)
        message = f"the call id {id!r} was used before; every call needs a fresh id"
        job.caller.send({"t": "error", "id": id, "kind": "refused", "m": message, "tb": None})
