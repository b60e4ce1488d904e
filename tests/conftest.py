"""Fixtures shared by every test: a real server on a loopback port, apps connected to it.

Tests contact nothing but loopback: a guard refuses any other socket connection.
"""

from __future__ import annotations

import itertools
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from arkitekt import App, easy
from arkitekt.protocol.hosts import is_loopback
from arkitekt_server import EmbeddedServer, ServerSettings
from tests import services
from tests.arkitekt.mikro.buckets import s3_settings
from tests.helpers import ServerProcess

_counter = itertools.count()
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _check_loopback(address: Any) -> None:
    if not isinstance(address, tuple):
        return  # AF_UNIX paths
    host = address[0]
    if not is_loopback(host):
        raise ConnectionRefusedError(f"tests may only contact loopback, not {host!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check_loopback(address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check_loopback(address)
    return _real_connect_ex(self, address)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio, the loop the apps run on."""
    return "asyncio"


@pytest.fixture(autouse=True, scope="session")
def _loopback_only() -> Iterator[None]:
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.fixture
def peak_rss_mib() -> Callable[[int], float]:
    """``peak_rss_mib(pid)``: the peak resident memory (VmHWM) of a process so far, in MiB."""
    return _peak_rss_mib


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The ``database_url`` of this test's servers: ``None`` (SQLite in the data dir) on the
    ``sqlite`` backend, a fresh PostgreSQL database (dropped after the test) on ``postgresql``."""
    if backend == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def server_process(tmp_path: Path, database_url: str | None) -> Iterator[ServerProcess]:
    """An ``arkitekt server`` subprocess on its own data dir and port (not started yet)."""
    server = ServerProcess(tmp_path / "data", database_url=database_url)
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.kill()
        server.finish()


@pytest.fixture
def server_factory(
    tmp_path: Path, database_url: str | None
) -> Iterator[Callable[..., EmbeddedServer]]:
    """Start servers with their own data dir: ``server_factory(auto_approve=False, ...)``.

    On the ``postgresql`` backend they share the test's database unless given another.
    """
    started: list[EmbeddedServer] = []

    def start(**settings: Any) -> EmbeddedServer:
        settings.setdefault("data_dir", tmp_path / f"server-{len(started)}")
        settings.setdefault("database_url", database_url)
        settings.setdefault("log_level", "warning")
        server = EmbeddedServer(ServerSettings(host="127.0.0.1", port=0, **settings))
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def connect(server: EmbeddedServer, tmp_path: Path) -> Callable[..., App]:
    """Build apps that find the session server: ``connect()`` or ``connect("name", ...)``."""

    def build(identifier: str | None = None, **kwargs: Any) -> App:
        kwargs.setdefault("url", server.url)
        kwargs.setdefault("headless", True)
        kwargs.setdefault("cache_dir", tmp_path / "token-cache")
        return easy(identifier or f"test-app-{next(_counter)}", **kwargs)

    return build


def _missing(error: services.ServiceMissingError) -> None:
    """Skip the test, naming what is missing; under CI nothing may be skipped."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {error}", pytrace=False)
    pytest.skip(str(error))


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A PostgreSQL superuser URL: ``$ARKITEKT_TEST_POSTGRES_URL``, or a cluster of our own."""
    given = os.environ.get(services.POSTGRES_ENV)
    if given:
        yield given
        return
    try:
        cluster = services.postgres_cluster()
        url = cluster.__enter__()
    except services.ServiceMissingError as error:
        _missing(error)
        raise AssertionError("unreachable") from None
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test (dropped after it), as an asyncpg URL."""
    with services.postgres_database(postgres_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def session_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """A PostgreSQL database for the whole session (the session server's on that backend)."""
    with services.postgres_database(postgres_admin_url) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 endpoint on loopback: ``$ARKITEKT_TEST_S3_ENDPOINT``, or moto's server of our own."""
    given = os.environ.get(services.S3_ENDPOINT_ENV)
    if given:
        yield given
        return
    with services.s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3_bucket() -> str:
    """A bucket name no other test uses (the bucket itself does not exist yet)."""
    return f"test-{uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session")
def s3_server(
    s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedServer]:
    """An auto-approving server whose images live in a bucket of the test S3 endpoint."""
    settings = ServerSettings(
        host="127.0.0.1",
        port=0,
        data_dir=tmp_path_factory.mktemp("s3-server"),
        auto_approve=True,
        log_level="warning",
        s3=s3_settings(s3_endpoint, f"mikro-{uuid.uuid4().hex[:12]}"),
    )
    with EmbeddedServer(settings) as running:
        yield running
