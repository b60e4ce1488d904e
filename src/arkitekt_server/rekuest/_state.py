"""What the hub keeps in memory: agents (online or not) and unfinished assignments (jobs)."""

from __future__ import annotations

from typing import Any, Protocol

from arkitekt.protocol.rekuest import Definition
from arkitekt_server.rekuest._peer import Peer

__all__ = ["MAILBOX_MESSAGES", "AgentState", "Assignment", "Caller", "Mailbox"]

MAILBOX_MESSAGES = 256
"""Answers kept for one call whose caller is away (more stream items are dropped)."""


class Caller(Protocol):
    """Where a call's answers go: a caller's websocket (:class:`Peer`), or the caller's replica
    (:class:`~arkitekt_server.rekuest._relay.RemoteCaller`)."""

    jobs: set[str]

    def send(self, message: dict[str, Any], *, strict: bool = False) -> None:
        """Queue one message for the caller."""


class Mailbox:
    """The answers of one call whose caller's connection dropped, kept until it resumes the
    call (at most :data:`MAILBOX_MESSAGES`; a final ``done``/``error`` always).

    Args:
        cancel: cancel the call if its caller does not come back in time (not for a call
            restored after a restart: it may have come over HTTP, with no caller to wait for).

    """

    def __init__(self, *, cancel: bool = True) -> None:
        self.cancel = cancel
        self.jobs: set[str] = set()
        self.messages: list[dict[str, Any]] = []

    def send(self, message: dict[str, Any], *, strict: bool = False) -> None:
        """Keep ``message`` for the caller."""
        if len(self.messages) < MAILBOX_MESSAGES or message.get("t") in ("done", "error"):
            self.messages.append(message)


class AgentState:
    """An agent the hub knows: online (with a peer) or offline (definitions kept)."""

    __slots__ = (
        "client_pk",
        "definitions",
        "fingerprints",
        "hints",
        "instance",
        "key",
        "name",
        "peer",
        "replica",
        "running",
    )

    def __init__(self, key: str, client_pk: int, name: str, instance: str) -> None:
        self.key = key
        self.client_pk = client_pk
        self.name = name
        self.instance = instance
        self.peer: Peer | None = None
        self.replica: str | None = None  # online on this other replica (PostgreSQL)
        self.definitions: dict[str, Definition] = {}
        self.hints: dict[str, dict[str, Any] | None] = {}
        self.fingerprints: dict[str, str] = {}  # equal definitions, equal fingerprints
        self.running: dict[str, Assignment] = {}

    def set_definitions(self, definitions: list[Definition]) -> None:
        """Replace the definitions (and the return ports callers get with results, ``r``)."""
        self.definitions = {d.name: d for d in definitions}
        self.fingerprints = {d.name: d.model_dump_json() for d in definitions}
        self.hints = {
            d.name: d.returns[0].model_dump(exclude_defaults=True) if d.returns else None
            for d in definitions
        }

    @property
    def online(self) -> bool:
        """Connected here or to another replica."""
        return self.peer is not None or self.replica is not None

    def matches(self, selector: str | None) -> bool:
        """Whether ``selector`` (an app identifier or an agent key) names this agent."""
        return selector is None or selector in (self.name, self.key)


class Assignment:
    """One assignment that is not finished yet."""

    __slots__ = (
        "agent",
        "attempts",
        "bound",
        "caller",
        "caller_pk",
        "cancelled",
        "deadline",
        "events",
        "expires",
        "failure",
        "function",
        "id",
        "raw",
        "remote",
        "selector",
        "seq",
        "size",
        "stream",
        "timeout",
        "tried",
        "wait",
    )

    def __init__(self, id: str, function: str, caller: Caller | None, caller_pk: int) -> None:
        self.id = id
        self.function = function
        self.caller = caller
        self.caller_pk = caller_pk
        self.selector: str | None = None
        self.raw: tuple[list[Any], dict[str, Any]] = ([], {})
        self.bound: dict[str, Any] | None = None
        self.stream = False
        self.events = False
        self.wait = 0.0
        self.agent: AgentState | None = None
        self.deadline = 0.0
        self.attempts = 0
        self.seq = 0
        self.timeout = 0.0
        self.expires = 0.0
        self.cancelled: str | None = None  # why, once a cancel was sent to its agent
        self.tried: set[str] = set()  # keys of the agents it was delivered to
        self.failure: tuple[str, str] | None = None  # (kind, message) when refused at once
        self.size = -1  # the call's encoded bytes, once counted against its app's limits
        self.remote = False  # its row waits for, or is run by, an agent of any replica

    def row(self, status: str) -> dict[str, Any]:
        """Its stored row, as inserted with ``status``."""
        return {
            "id": self.id,
            "function": self.function,
            "caller_pk": self.caller_pk,
            "agent_key": self.agent.key if self.agent is not None else None,
            "agent_filter": self.selector,
            "args": self.bound if self.bound is not None else {"__raw__": list(self.raw)},
            "stream": self.stream,
            "events": self.events,
            "status": status,
            "attempts": self.attempts,
        }
