"""The embedded server inside a host process: it leaves the host's logging alone."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from arkitekt_server import (
    ArkitektServerError,
    EmbeddedServer,
    PortInUseError,
    ServerSettings,
    ServerStartError,
)


def test_the_hosts_log_handlers_keep_working_through_start_and_stop(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path
) -> None:
    path = tmp_path / "host.log"
    handler = logging.FileHandler(path, mode="w")  # a closed "w" handler drops every record
    host = logging.getLogger("host-app")
    host.addHandler(handler)
    host.setLevel(logging.INFO)
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    try:
        host.info("before")
        server = server_factory(log_level="error")
        host.info("while")
        assert httpx.get(server.url + "/health/").status_code == 200
        server.stop()
        host.info("after")
        handler.flush()
        assert path.read_text().splitlines() == ["before", "while", "after"]
        assert (list(root.handlers), root.level) == before  # nothing added, removed or set
        assert logging.getLogger("arkitekt_server").level == logging.ERROR  # its own level
    finally:
        host.removeHandler(handler)
        handler.close()


def test_a_server_that_cannot_start_is_a_server_start_error(tmp_path: Path) -> None:
    """Its data dir is a file: the database cannot open, the server thread ends at start."""
    (tmp_path / "not-a-dir").write_text("")
    server = EmbeddedServer(
        ServerSettings(data_dir=tmp_path / "not-a-dir", port=0, log_level="critical")
    )
    with pytest.raises(ServerStartError, match="failed to start") as caught:
        server.start()
    assert isinstance(caught.value, RuntimeError)  # `except RuntimeError` keeps working
    assert isinstance(caught.value, ArkitektServerError)


def test_a_server_not_started_within_its_timeout_is_a_server_start_error(tmp_path: Path) -> None:
    server = EmbeddedServer(ServerSettings(data_dir=tmp_path, port=0), start_timeout=0)
    with pytest.raises(ServerStartError, match="did not start within 0 s"):
        server.start()


def test_a_port_in_use_is_a_port_in_use_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = EmbeddedServer(ServerSettings(data_dir=tmp_path / "data", port=port))
        with pytest.raises(PortInUseError, match=f"^port {port} is in use on 127.0.0.1 "):
            server.start()
    assert issubclass(PortInUseError, ServerStartError)
    assert not (tmp_path / "data").exists()  # refused before its database is made
