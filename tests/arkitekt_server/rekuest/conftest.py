from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import arkitekt_server.rekuest  # noqa: F401 -- registers the tables
from arkitekt_server import EmbeddedServer
from arkitekt_server._db import Database
from tests.arkitekt_server.rekuest.hubs import Replica
from tests.helpers import Wire

__all__ = ["database", "wire"]


@pytest.fixture
def wire(server: EmbeddedServer) -> Iterator[Wire]:
    """Raw rekuest websockets to the session server (closed after the test)."""
    made = Wire(server)
    with made.sockets:
        yield made


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    """A fresh PostgreSQL database with the tables; the replicas opened on it closed after."""
    made = Database(postgres_url)
    await made.create_tables()
    try:
        yield made
    finally:
        while Replica.opened:
            await Replica.opened.pop().close()
        await made.dispose()
