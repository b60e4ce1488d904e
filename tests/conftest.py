"""Fixtures shared by every test: a real server on a loopback port, apps connected to it.

Tests contact nothing but loopback: a guard refuses any other socket connection.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from arkitekt import App, easy
from arkitekt_server import EmbeddedServer, ServerSettings

_counter = itertools.count()
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_loopback(address: Any) -> None:
    if not isinstance(address, tuple):
        return  # AF_UNIX paths
    host = address[0]
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConnectionRefusedError(f"tests may only contact loopback, not {host!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_loopback(address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_loopback(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., EmbeddedServer]]:
    """Start servers with their own data dir: ``server_factory(auto_approve=False, ...)``."""
    started: list[EmbeddedServer] = []

    def start(**settings: Any) -> EmbeddedServer:
        settings.setdefault("data_dir", tmp_path / f"server-{len(started)}")
        settings.setdefault("log_level", "warning")
        server = EmbeddedServer(ServerSettings(host="127.0.0.1", port=0, **settings))
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """One auto-approving server for the whole session (use unique app identifiers)."""
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path_factory.mktemp("server"),
        auto_approve=True,
        log_level="warning",
    )
    with EmbeddedServer(settings) as running:
        yield running


@pytest.fixture
def connect(server: EmbeddedServer, tmp_path: Path) -> Callable[..., App]:
    """Build apps that find the session server: ``connect()`` or ``connect("name", ...)``."""

    def build(identifier: str | None = None, **kwargs: Any) -> App:
        kwargs.setdefault("url", server.url)
        kwargs.setdefault("headless", True)
        kwargs.setdefault("cache_dir", tmp_path / "token-cache")
        return easy(identifier or f"test-app-{next(_counter)}", **kwargs)

    return build
