"""One websocket's outgoing side: messages queue up and leave in batches, one frame each."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import anyio
from fastapi import WebSocket

from arkitekt.protocol.rekuest import MessageError, frames

__all__ = ["Peer"]

log = logging.getLogger("arkitekt_server.rekuest")


class Peer:
    """A connected agent or caller.

    :meth:`send` never blocks: it queues. :meth:`pump` writes everything queued as one frame
    whenever it wakes (several, if the frame limit needs it), so a burst of messages costs one
    websocket write. A message that cannot be encoded never stops the pump: a result or stream
    item becomes an error for its call, anything else is dropped (both logged).

    Args:
        websocket: the accepted websocket.
        client_pk: the app (client) behind it.

    """

    def __init__(self, websocket: WebSocket, client_pk: int) -> None:
        self.websocket = websocket
        self.client_pk = client_pk
        self.jobs: set[str] = set()  # a caller's unfinished assignments
        self.closed = False
        self._outbox: list[dict[str, Any]] = []
        self._wake = anyio.Event()
        self.closing: tuple[int, str] | None = None

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message (dropped once the peer is closed)."""
        if self.closed:
            return
        self._outbox.append(message)
        self._wake.set()

    def close(self, code: int, reason: str) -> None:
        """Ask the pump to flush and close the socket with ``code``."""
        self.closing = (code, reason)
        self._wake.set()

    async def pump(self) -> None:
        """Write queued messages until closed; returns when the socket is closed."""
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                if self._outbox:
                    batch, self._outbox = self._outbox, []
                    for frame in frames(batch, _undeliverable):
                        await self.websocket.send_text(frame)
                if self.closing is not None:
                    code, reason = self.closing
                    await self.websocket.close(code, reason)
                    return
        except Exception as error:  # the socket went away; the reader notices too
            log.debug("rekuest peer send failed: %r", error)
        finally:
            self.closed = True


def _undeliverable(message: Mapping[str, Any], error: MessageError) -> dict[str, Any] | None:
    """What to send instead of a message that cannot be encoded (validation should prevent it)."""
    kind, id = message.get("t"), message.get("id")
    log.warning("rekuest: could not send a %r message (%s)", kind, error)
    if kind in ("done", "yield", "error") and isinstance(id, str):
        reason = f"the server could not send this call's answer: {error}"
        return {"t": "error", "id": id, "kind": "refused", "m": reason, "tb": None}
    return None
