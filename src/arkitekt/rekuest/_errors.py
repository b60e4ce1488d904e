"""Errors of rekuest: registration, calls, and failures that happened on another machine."""

from __future__ import annotations

from arkitekt.errors import ArkitektError

__all__ = [
    "AgentLostError",
    "AssignmentCancelledError",
    "BadArgumentsError",
    "CallTimeoutError",
    "ConnectionLostError",
    "DefinitionError",
    "NoAgentError",
    "RekuestError",
    "RemoteError",
]


class RekuestError(ArkitektError):
    """Base class of every rekuest error.

    Attributes:
        assignment_id: the assignment concerned, when there is one.

    """

    def __init__(self, message: str, assignment_id: str | None = None) -> None:
        super().__init__(message)
        self.assignment_id = assignment_id


class DefinitionError(RekuestError, TypeError):
    """A function cannot be registered (missing or unsupported annotations, bad defaults)."""


class RemoteError(RekuestError):
    """The function raised on the agent.

    Attributes:
        remote_traceback: the traceback text as the agent printed it.

    """

    def __init__(
        self, message: str, remote_traceback: str = "", assignment_id: str | None = None
    ) -> None:
        text = message if not remote_traceback else f"{message}\n\nRemote {remote_traceback}"
        super().__init__(text, assignment_id)
        self.remote_message = message
        self.remote_traceback = remote_traceback


class BadArgumentsError(RekuestError, ValueError):
    """The arguments were refused before anything ran.

    By the server (they do not match the function's definition), or by the caller before
    sending (a value that cannot travel, or an unbounded ``wait``/``timeout``).
    """


class NoAgentError(RekuestError):
    """No agent that provides the function is online (or none came within ``wait`` seconds)."""


class AgentLostError(RekuestError):
    """The agent running the assignment disconnected and did not come back in time."""


class AssignmentCancelledError(RekuestError):
    """The assignment was cancelled (by ``cancel``, or by its caller going away).

    Raised inside a sync function's worker thread by ``progress``/``log`` once it is cancelled,
    so that cooperative code stops.
    """


class CallTimeoutError(RekuestError, TimeoutError):
    """The call did not finish within its ``timeout``; the assignment was cancelled."""


class ConnectionLostError(RekuestError, ConnectionError):
    """The connection to the server broke while the call was waiting for its result."""
