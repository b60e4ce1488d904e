"""Helpers shared by the tests (importable: ``from tests.helpers import until``).

Fixtures live in the ``conftest.py`` files; everything a test module imports lives here: waiting
for a condition (:func:`until`, :func:`wait_until`), a free loopback port, an app's bearer token,
a server in its own process (:class:`ServerProcess`) and raw rekuest websockets (:class:`Wire`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from websockets.sync.client import ClientConnection, connect

from arkitekt import App
from arkitekt.extension import syncify
from arkitekt_server import EmbeddedServer
from arkitekt_server._db import Database

__all__ = [
    "ServerProcess",
    "Wire",
    "abearer_token",
    "bearer_token",
    "database_args",
    "free_port",
    "server_database",
    "until",
    "wait_until",
]


async def until(
    check: Callable[[], object | Awaitable[object]], seconds: float = 10.0, interval: float = 0.02
) -> None:
    """Wait until ``check()`` (a plain or an async function) returns something true.

    Args:
        check: the condition; it may raise (an ``assert``) to fail the wait at once.
        seconds: the deadline; past it the wait fails.
        interval: seconds between two checks.

    Raises:
        AssertionError: the condition was still false after ``seconds``.
    """
    with anyio.move_on_after(seconds):
        while True:
            answer = check()
            if inspect.isawaitable(answer):
                answer = await answer
            if answer:
                return
            await anyio.sleep(interval)
    raise AssertionError(f"not true within {seconds:g} s: {check}")


def wait_until(check: Callable[[], object], seconds: float = 10.0, interval: float = 0.02) -> None:
    """Block the thread until ``check()`` returns something true (the blocking :func:`until`).

    Args:
        check: the condition; it may raise (an ``assert``) to fail the wait at once.
        seconds: the deadline; past it the wait fails.
        interval: seconds between two checks.

    Raises:
        AssertionError: the condition was still false after ``seconds``.
    """
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds:g} s: {check}")
        time.sleep(interval)


def server_database(server: EmbeddedServer) -> Database:
    """Another handle on a running server's database (as the CLI opens it); dispose it after."""
    return Database.of(server.settings.database_url, server.settings.data_dir)


def database_args(server: EmbeddedServer) -> list[str]:
    """The arguments that point an operator command (``arkitekt revoke ...``) at the server's
    database: its data dir, and its ``--database-url`` when it has one."""
    url = server.settings.database_url
    found = [] if url is None else ["--database-url", url.get_secret_value()]
    return ["--data-dir", str(server.settings.data_dir), *found]


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers started in other processes)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def abearer_token(app: App) -> str:
    """The bearer token the open ``app`` sends (approved on first use), for raw requests."""
    transport = await app.container.transport()
    return str(await transport.atoken())


bearer_token = syncify(abearer_token)
"""The blocking twin of :func:`abearer_token`, in the thread of ``with app:``."""


class ServerProcess:
    """``arkitekt server`` in its own process (on loopback; auto-approving unless told not to).

    Args:
        data_dir: its data directory.
        database_url: its ``database_url`` (default: SQLite in ``data_dir``), passed in its
            environment (as an operator should: arguments are visible to every user).
        env: more settings for its environment (``ARKITEKT_SERVER_...``).
        auto_approve: approve loopback apps at once (else an operator approves them).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None = None,
        env: dict[str, str] | None = None,
        auto_approve: bool = True,
    ) -> None:
        self.auto_approve = auto_approve
        self.data_dir = data_dir
        self.database_url = database_url
        self.env = env or {}
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self, *, wait: bool = True, same_port: bool = False) -> subprocess.Popen[str]:
        """Start the server; with ``wait``, return once it answers.

        A free port each time (another server may hold the last one), unless ``same_port``:
        a restart where its clients find it again.
        """
        if not (same_port and self.port):
            self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "arkitekt._cli", "server", "--port", str(self.port),
            "--data-dir", str(self.data_dir),
            "--auto-approve" if self.auto_approve else "--no-auto-approve",
        ]  # fmt: skip
        env = {**os.environ, "ARKITEKT_SERVER_LOG_LEVEL": "warning", **self.env}
        if self.database_url is not None:
            env["ARKITEKT_SERVER_DATABASE_URL"] = self.database_url
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if wait:
            wait_until(self._answers, 30, interval=0.1)
        return self.process

    def _answers(self) -> bool:
        try:
            httpx.get(self.url + "/.well-known/fakts", timeout=1)
        except httpx.TransportError:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.finish()}") from None
            return False
        return True

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def finish(self, timeout: float = 30) -> str:
        """Wait for the process to end; its output."""
        assert self.process is not None
        out, _ = self.process.communicate(timeout=timeout)
        self.output = out or ""
        return self.output

    def stop(self) -> str:
        """Ctrl+C, then wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.finish()

    def kill(self) -> None:
        """``kill -9``."""
        assert self.process is not None
        self.process.kill()
        self.finish()


class Wire:
    """Raw (blocking) rekuest websockets to a server, as any client could open them."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server
        self.sockets = contextlib.ExitStack()
        self._unread: dict[ClientConnection, list[dict[str, Any]]] = {}

    @staticmethod
    def token(app: App) -> str:
        """A bearer token of ``app`` (opened for it, approved on first use)."""
        with app:
            return bearer_token(app)

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
