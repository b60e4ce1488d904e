"""Which agent gets a call, and its arguments bound to *that agent's* definition.

Several apps may register functions of the same name, with different definitions. A call is
therefore bound against the definition of the agent it goes to, never another's: among the
agents online that match the call's selector, those whose definition accepts the arguments are
eligible, and the least loaded of them gets it. Results are checked against the definition
of the agent that sent them.
"""

from __future__ import annotations

from typing import Any

from arkitekt.protocol.rekuest import ArgumentsInvalid, Definition, bind_arguments, check_value
from arkitekt.protocol.rekuest_messages import Done, Yield
from arkitekt_server.rekuest._state import AgentState, Assignment

__all__ = ["bind", "check_result", "choose"]


def bind(job: Assignment, definition: Definition) -> dict[str, Any] | str:
    """The job's arguments bound to ``definition``, or why they do not fit it."""
    if definition.stream != job.stream:
        use = "iterate()" if definition.stream else "call()"
        what = "a stream" if definition.stream else "not a stream"
        return f"{job.function!r} is {what}; use {use}"
    try:
        return bind_arguments(definition, *job.raw)
    except ArgumentsInvalid as error:
        return str(error)


def choose(job: Assignment, online: list[AgentState]) -> tuple[AgentState, dict[str, Any]] | str:
    """The least-loaded agent of ``online`` whose definition accepts the job's arguments.

    Returns:
        The agent and the arguments bound to its definition, or (no agent accepts them) why
        the arguments do not fit (the reason of the least-loaded agent's definition).

    """
    if len(online) == 1:  # the common case: no grouping needed
        agent = online[0]
        bound = bind(job, agent.definitions[job.function])
        return bound if isinstance(bound, str) else (agent, bound)
    by_definition: dict[str, dict[str, Any] | str] = {}
    reason = ""
    for agent in sorted(online, key=lambda agent: len(agent.running)):
        fingerprint = agent.fingerprints[job.function]
        if fingerprint not in by_definition:
            by_definition[fingerprint] = bind(job, agent.definitions[job.function])
        bound = by_definition[fingerprint]
        if not isinstance(bound, str):
            return agent, bound  # sorted by load: the first that accepts is the least loaded
        reason = reason or bound
    return reason


def check_result(definition: Definition | None, message: Done | Yield) -> Any:
    """The value of a ``done``/``yield`` checked against the definition's return port.

    Returns:
        The (normalised) value, or the :class:`ArgumentsInvalid` saying why it does not fit.

    """
    if definition is None:  # not known here (never happens for an assignment it was given)
        return message.v
    item = isinstance(message, Yield)
    if item and not definition.stream:
        return ArgumentsInvalid(f"{definition.name!r} is not a stream; it cannot yield")
    port = definition.returns[0] if definition.returns else None
    where = "the stream item" if item else "the return value"
    if port is None or (definition.stream and not item):
        if message.v is None:
            return None
        return ArgumentsInvalid(f"{where}: {definition.name!r} returns nothing, got a value")
    try:
        return check_value(port, message.v, where)
    except ArgumentsInvalid as error:
        return error
