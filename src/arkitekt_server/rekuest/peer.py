"""One websocket's outgoing side: messages queue up and leave in batches, one frame each."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from fastapi import WebSocket

from arkitekt.protocol.rekuest import dumps

__all__ = ["Peer"]

log = logging.getLogger("arkitekt_server.rekuest")


class Peer:
    """A connected agent or caller.

    :meth:`send` never blocks: it queues. :meth:`pump` writes everything queued as one frame
    whenever it wakes, so a burst of messages costs one websocket write.

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
                    await self.websocket.send_text(dumps(batch))
                if self.closing is not None:
                    code, reason = self.closing
                    await self.websocket.close(code, reason)
                    return
        except Exception as error:  # the socket went away; the reader notices too
            log.debug("rekuest peer send failed: %r", error)
        finally:
            self.closed = True
