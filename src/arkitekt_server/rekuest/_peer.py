"""One websocket's outgoing side: messages queue up and leave in batches, one frame each.

Each peer's queue is bounded (:data:`MAX_OUTBOX_MESSAGES`, :data:`MAX_OUTBOX_BYTES`): a peer
that does not read what it is sent is closed with
:data:`~arkitekt.protocol.rekuest.CLOSE_OUTBOX_FULL`, and its assignments are handled as on any
disconnect, instead of its queue growing without end.

Refusals (of peers' messages, here and in the hub) are logged through :func:`warn`, which is
rate-limited, so that a peer sending garbage cannot fill the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
from fastapi import WebSocket

from arkitekt.protocol.outbox import Outbox
from arkitekt.protocol.rekuest import CLOSE_OUTBOX_FULL, MessageError, encode
from arkitekt_server._logs import Throttled

__all__ = ["MAX_OUTBOX_BYTES", "MAX_OUTBOX_MESSAGES", "Peer", "warn"]

log = logging.getLogger("arkitekt_server.rekuest")

warn = Throttled(log, "rekuest: refusal")
"""Log a refusal warning (``text`` and ``args`` as for ``logging``), rate-limited."""

MAX_OUTBOX_MESSAGES = 65_536
"""The most messages queued for one peer (16 full frames) before it is closed."""
MAX_OUTBOX_BYTES = 64 * 1024 * 1024
"""The most bytes (encoded) queued for one peer (four full frames) before it is closed."""


class Peer:
    """A connected agent or caller.

    :meth:`send` never blocks: it encodes and queues in the peer's
    :class:`~arkitekt.protocol.outbox.Outbox`. :meth:`pump` writes everything queued as one frame
    whenever it wakes (several, if the frame limits need it), so a burst of messages costs one
    websocket write. A message that cannot be encoded never stops anything: a result
    or stream item becomes an error for its call, anything else is dropped (both logged).

    Args:
        websocket: the accepted websocket.
        client_pk: the app (client) behind it.

    """

    def __init__(self, websocket: WebSocket, client_pk: int) -> None:
        self.websocket = websocket
        self.client_pk = client_pk
        self.jobs: set[str] = set()  # a caller's unfinished assignments
        self.closed = False
        self._outbox = Outbox()  # holds encoded messages only
        self.closing: tuple[int, str] | None = None
        self.scope: anyio.CancelScope | None = None
        """Cancelled when the outbox overflows: ends the peer's reader and writer at once."""

    def send(self, message: dict[str, Any], *, strict: bool = False) -> None:
        """Queue a message (dropped once the peer is closed); close the peer if it overflows.

        Raises:
            MessageError: with ``strict``, the message cannot be encoded (else it is replaced
                or dropped, see the class).

        """
        if self.closed:
            return
        try:
            text = encode(message)
        except MessageError as error:
            if strict:
                raise
            replacement = _undeliverable(message, error)
            if replacement is None:
                return
            try:
                text = encode(replacement)
            except MessageError:
                return
        self._outbox.put(text)
        if len(self._outbox) > MAX_OUTBOX_MESSAGES or self._outbox.chars > MAX_OUTBOX_BYTES:
            self._overflow()

    def _overflow(self) -> None:
        warn(
            "rekuest: closed a peer of app %s that does not read: %d messages (%d bytes) queued",
            self.client_pk,
            len(self._outbox),
            self._outbox.chars,
        )
        self._outbox.clear()
        self.closed = True
        self.closing = (CLOSE_OUTBOX_FULL, "too many messages queued: the peer does not read")
        if self.scope is not None:
            self.scope.cancel()  # the writer may be stuck on a socket nobody reads
        self._outbox.finish()

    def close(self, code: int, reason: str) -> None:
        """Ask the pump to flush and close the socket with ``code``."""
        self.closing = (code, reason)
        self._outbox.finish()

    async def pump(self) -> None:
        """Write queued messages until closed; returns when the socket is closed."""
        try:
            await self._outbox.pump(self.websocket.send_text)
            if self.closing is not None:  # always: the outbox finishes only for a close
                code, reason = self.closing
                await self.websocket.close(code, reason)
        except Exception as error:  # the socket went away; the reader notices too
            log.debug("rekuest peer send failed: %r", error)
        finally:
            self.closed = True


def _undeliverable(message: Mapping[str, Any], error: MessageError) -> dict[str, Any] | None:
    """What to send instead of a message that cannot be encoded (validation should prevent it)."""
    kind, id = message.get("t"), message.get("id")
    warn("rekuest: could not send a %r message (%s)", kind, error)
    if kind in ("done", "yield", "error") and isinstance(id, str):
        reason = f"the server could not send this call's answer: {error}"
        return {"t": "error", "id": id, "kind": "refused", "m": reason, "tb": None}
    return None
