"""What the hub refuses after the fact: reused call ids, and messages of agents that break the
protocol. Either fails only the assignment concerned. Refusals are logged through :func:`warn`,
which is rate-limited, so that a peer sending garbage cannot fill the log."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from arkitekt_server._logs import WARNINGS_PER_WINDOW, WINDOW_SECONDS, Throttled

if TYPE_CHECKING:
    from arkitekt_server.rekuest._hub import Hub
    from arkitekt_server.rekuest._state import AgentState

__all__ = [
    "WARNINGS_PER_WINDOW",
    "WINDOW_SECONDS",
    "refuse_agent_message",
    "refuse_duplicate",
    "warn",
]

log = logging.getLogger("arkitekt_server.rekuest")

warn = Throttled(log, "rekuest: refusal")
"""Log a refusal warning (``text`` and ``args`` as for ``logging``), rate-limited."""


def refuse_agent_message(hub: Hub, agent: AgentState, message: dict[str, Any], reason: str) -> None:
    """Fail the assignment of an agent's message that breaks the protocol, and tell the agent.

    The agent gets ``refused``; a terminal message is acknowledged, so that an agent that keeps
    it does not send it again forever; an assignment it may still run is cancelled on it. A
    message naming an assignment the agent was never given changes nothing.
    """
    id, kind = message.get("id"), str(message.get("t"))[:20]
    id = id if isinstance(id, str) else None
    warn("rekuest: refused a %r message of agent %s: %s", kind, agent.key, reason)
    if agent.peer is not None:
        agent.peer.send({"t": "refused", "id": id, "m": reason})
    job = hub.jobs.get(id) if id is not None else None
    if job is None or agent.key not in job.tried:
        if id is not None and kind in ("done", "error", "cancelled") and agent.peer:
            agent.peer.send({"t": "ack", "ids": [id]})
        return
    if job.agent is agent and agent.peer is not None and kind not in ("done", "error"):
        agent.peer.send({"t": "cancel", "id": id})  # it may still run: stop it
    text = f"agent {agent.name!r} sent an invalid {kind!r} message: {reason}"
    hub._finish(job, "error", kind="remote", message=text, by=agent)


def refuse_duplicate(hub: Hub, id: str) -> None:
    """The store found ``id`` stored before (by an earlier run): refuse that call after all.

    Nothing of it is recorded (that would change the earlier call's row); its agent is told to
    cancel it, its caller gets a ``refused`` error.
    """
    warn("rekuest: refused a call whose id %r was used before", id)
    job = hub.jobs.get(id)
    if job is None:
        return
    hub.release(job)
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
