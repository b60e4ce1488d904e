"""The transport resource: an httpx ``AsyncClient`` opened lazily and closed with the scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from arkitekt.fakts import Fakts
from arkitekt.settings import Settings

__all__ = ["Transport", "open_transport"]


class Transport:
    """The app's HTTP client. ``client`` is an ``httpx.AsyncClient`` bound to the app's loop."""

    def __init__(self, client: httpx.AsyncClient, fakts: Fakts) -> None:
        self.client = client
        self.fakts = fakts


@asynccontextmanager
async def open_transport(fakts: Fakts, settings: Settings) -> AsyncIterator[Transport]:
    """Open the app's HTTP client; it closes when the app scope ends."""
    async with httpx.AsyncClient(timeout=settings.timeout) as client:
        yield Transport(client, fakts)
