from __future__ import annotations

from collections.abc import Iterator

import pytest

from arkitekt_server import EmbeddedServer
from tests.helpers import Wire

__all__ = ["wire"]


@pytest.fixture
def wire(server: EmbeddedServer) -> Iterator[Wire]:
    """Raw rekuest websockets to the session server (closed after the test)."""
    made = Wire(server)
    with made.sockets:
        yield made
