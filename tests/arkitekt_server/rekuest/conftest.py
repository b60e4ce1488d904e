from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from arkitekt import App
from arkitekt_server import EmbeddedServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Wire:
    """Raw (blocking) rekuest websockets to a server, as any client could open them."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server
        self.sockets = contextlib.ExitStack()
        self._unread: dict[ClientConnection, list[dict[str, Any]]] = {}

    @staticmethod
    def token(app: App) -> str:
        """A bearer token of ``app`` (approved on first use)."""

        async def get() -> str:
            transport = await app.rekuest._transport()
            return str(await transport.atoken())

        with app:
            return str(app.rekuest.app_slot.scope.bridge.call(get))

    def socket(self, token: str, kind: str) -> ClientConnection:
        """A new ``agent`` or ``caller`` socket, to use as a context manager."""
        url = self.server.url.replace("http://", "ws://") + f"/rekuest/{kind}/ws"
        headers = {"Authorization": f"Bearer {token}"}
        return connect(url, additional_headers=headers, max_size=None, compression=None)

    def open(self, token: str, kind: str) -> ClientConnection:
        """An open ``agent`` or ``caller`` socket (a caller's ``ready`` is read), closed after
        the test."""
        socket = self.sockets.enter_context(self.socket(token, kind))
        if kind == "caller":
            assert self.recv(socket) == [{"t": "ready"}]
        return socket

    def recv(self, socket: ClientConnection) -> list[dict[str, Any]]:
        """The messages left unread by :meth:`until`, or those of the next frame (10 s at most)."""
        unread = self._unread.pop(socket, [])
        return unread or list(json.loads(socket.recv(timeout=10)))

    def until(
        self, socket: ClientConnection, wanted: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """Read until a message ``wanted`` accepts; return it (later ones stay unread)."""
        while True:
            messages = self.recv(socket)
            for n, message in enumerate(messages):
                if wanted(message):
                    if messages[n + 1 :]:
                        self._unread[socket] = messages[n + 1 :]
                    return message

    def register(self, socket: ClientConnection, *definitions: dict[str, Any]) -> None:
        """Register an agent over ``socket``."""
        socket.send(json.dumps([{"t": "register", "definitions": list(definitions)}]))
        assert self.recv(socket)[0]["t"] == "registered"

    def assignment(self, agent: ClientConnection) -> dict[str, Any]:
        """The next ``assign`` message an agent gets."""
        return self.until(agent, lambda message: message["t"] == "assign")

    def call(self, caller: ClientConnection, function: str, **fields: Any) -> str:
        """Send a call; return its id."""
        id = uuid.uuid4().hex
        caller.send(json.dumps([{"t": "call", "id": id, "f": function, **fields}]))
        return id

    def answer(self, caller: ClientConnection, id: str) -> dict[str, Any]:
        """The final answer (``done`` or ``error``) of call ``id``."""
        return self.until(caller, lambda m: m.get("id") == id and m["t"] in ("done", "error"))


@pytest.fixture
def wire(server: EmbeddedServer) -> Iterator[Wire]:
    """Raw rekuest websockets to the session server (closed after the test)."""
    made = Wire(server)
    with made.sockets:
        yield made
