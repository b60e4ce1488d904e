"""What the running assignment is: ``progress()`` and ``log()`` find it here.

Each assignment sets a :class:`~contextvars.ContextVar` in its own task; worker threads of sync
functions get a copy of the context, so both work there too (they hop to the loop to send).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import anyio

from arkitekt.errors import AssignmentCancelledError, RekuestError
from arkitekt.protocol.rekuest import clip

__all__ = ["AssignmentContext", "current_assignment", "log", "progress"]

_log = logging.getLogger("arkitekt.rekuest.functions")
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class AssignmentContext:
    """The assignment the current task or worker thread runs.

    Attributes:
        id: the assignment's id.
        function: the function's name.
        cancelled: a cancel arrived; sync code sees it as an exception from
            :func:`progress`/:func:`log`.

    """

    __slots__ = (
        "_send",
        "cancel_scope",
        "cancelled",
        "function",
        "id",
        "last_progress",
        "loop",
        "thread_id",
    )

    def __init__(self, id: str, function: str, send: Callable[[dict[str, Any]], None]) -> None:
        self.id = id
        self.function = function
        self._send = send
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        self.cancelled = False
        self.cancel_scope: anyio.CancelScope | None = None
        self.last_progress: tuple[int | None, str | None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message to the server, from the loop or from any thread."""
        if threading.get_ident() == self.thread_id:
            self._send(message)
        else:
            if self.cancelled:
                raise AssignmentCancelledError(
                    f"assignment {self.id} of {self.function!r} was cancelled", self.id
                )
            self.loop.call_soon_threadsafe(self._send, message)

    def cancel(self) -> None:
        """Stop the assignment: cancels async code, flags sync code (on the loop only)."""
        self.cancelled = True
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()


_current: ContextVar[AssignmentContext | None] = ContextVar(
    "arkitekt_rekuest_assignment", default=None
)


def current_assignment() -> AssignmentContext | None:
    """The assignment running here, or ``None`` outside of one."""
    return _current.get()


def progress(percent: int | float | None = None, message: str | None = None) -> None:
    """Report how far the running assignment is (0 to 100) and/or what it does now.

    Outside an assignment (calling the function locally) this does nothing.

    Args:
        percent: how far, clamped to 0..100.
        message: a short status text (cut to ``MAX_TEXT_CHARS``).

    Raises:
        RekuestError: ``percent`` is not a finite number.
        AssignmentCancelledError: in a sync function's worker thread, once the assignment was
            cancelled (so that a loop calling ``progress`` stops).

    """
    context = _current.get()
    if context is None:
        return
    if percent is not None and not (isinstance(percent, int | float) and math.isfinite(percent)):
        raise RekuestError(f"progress(): percent must be a finite number, got {percent!r}")
    value = None if percent is None else max(0, min(100, round(percent)))
    message = None if message is None else clip(str(message))
    if context.last_progress == (value, message) and not context.cancelled:
        return  # nothing new (a tight loop reporting the same percentage sends it once)
    context.last_progress = (value, message)
    context.send({"t": "progress", "id": context.id, "p": value, "m": message})


def log(message: str, level: str = "info") -> None:
    """Write a log line of the running assignment (callers and the server see it).

    Outside an assignment it goes to the ``arkitekt.rekuest.functions`` logger only.

    Args:
        message: the text (cut to ``MAX_TEXT_CHARS`` for the server).
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.

    Raises:
        RekuestError: an unknown level (like a bad ``percent`` of :func:`progress`).
        AssignmentCancelledError: in a worker thread, once the assignment was cancelled.

    """
    if level not in _LEVELS:
        raise RekuestError(f"log(): unknown log level {level!r}; use one of {', '.join(_LEVELS)}")
    _log.log(_LEVELS[level], "%s", message)
    context = _current.get()
    if context is not None:
        context.send({"t": "log", "id": context.id, "level": level, "m": clip(str(message))})
