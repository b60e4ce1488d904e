"""One websocket's outgoing side, shared by the agent, the caller and the server's peers.

Senders queue messages without waiting (:meth:`Outbox.put`); one writer task
(:meth:`Outbox.pump`) writes whatever queued up while it waited as few frames as the limits
allow (:func:`~arkitekt.protocol.rekuest_frames.frames`), so a burst of messages costs one write.
A message that cannot be encoded never stops the writer: the outbox's ``refuse`` callback is told
and answers a replacement (an error for its call) or ``None`` (dropped).

Each side keeps its own policy around it: the client sides catch their websocket library's
``ConnectionClosed``, the server bounds the queue (:attr:`Outbox.chars`, ``len``) and closes the
socket after the last flush (:meth:`Outbox.finish`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from arkitekt.protocol.rekuest_frames import MessageError, frames

__all__ = ["Outbox", "Refuse"]

Refuse = Callable[[Mapping[str, Any], MessageError], Mapping[str, Any] | None]
"""Told a queued message that cannot be encoded, and why; answers a replacement or ``None``."""


def _drop(message: Mapping[str, Any], error: MessageError) -> None:
    """The default ``refuse``: drop the message (for senders that queue encoded messages only)."""


class Outbox:
    """Messages waiting for one websocket's writer.

    Args:
        refuse: told each queued message that cannot be encoded (see :data:`Refuse`); by
            default such a message is dropped.

    """

    def __init__(self, refuse: Refuse = _drop) -> None:
        self._messages: list[Mapping[str, Any] | str] = []
        self._chars = 0
        self._wake = anyio.Event()
        self._refuse = refuse
        self._finishing = False
        self._stopped = False

    def __len__(self) -> int:
        """How many messages are queued."""
        return len(self._messages)

    @property
    def chars(self) -> int:
        """Characters of the encoded messages queued (messages not yet encoded count nothing)."""
        return self._chars

    def put(self, message: Mapping[str, Any] | str) -> None:
        """Queue a message, or an encoded one, for the next frame; dropped once stopped."""
        if self._stopped:
            return
        self._messages.append(message)
        if isinstance(message, str):
            self._chars += len(message)
        self._wake.set()

    def clear(self) -> None:
        """Drop everything queued."""
        self._messages, self._chars = [], 0

    def finish(self) -> None:
        """Let the writer write what is queued, then return."""
        self._finishing = True
        self._wake.set()

    def stop(self) -> None:
        """Make the writer return when it next wakes, writing nothing more (the socket is gone)."""
        self._stopped = True
        self._wake.set()

    async def pump(self, write: Callable[[str], Awaitable[Any]]) -> None:
        """Write what is queued with ``write``, a batch whenever woken, until finished or stopped.

        Args:
            write: sends one text frame (its errors propagate: the socket is gone).

        """
        while not self._stopped:
            await self._wake.wait()
            self._wake = anyio.Event()
            if self._messages and not self._stopped:
                batch = self._messages
                self.clear()
                for frame in frames(batch, self._refuse):
                    await write(frame)
            if self._finishing:
                return
