from __future__ import annotations

import json
import socketserver
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers

from arkitekt import App, Manifest, easy
from arkitekt._settings import Settings
from arkitekt.extension import ArkitektContainer, ScopedResource, ScopeKind
from arkitekt.fakts import StaticConfigGrant


class Journal:
    """Records what tracked resources did, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.fail_close: set[str] = set()


@asynccontextmanager
async def tracked(name: str, journal: Journal, **deps: Any) -> AsyncIterator[str]:
    journal.events.append(f"open {name}")
    try:
        yield name
    except BaseException as error:
        journal.events.append(f"{name} saw {type(error).__name__}")
        raise
    finally:
        journal.events.append(f"close {name}")
        if name in journal.fail_close:
            raise RuntimeError(f"{name} failed to close")


class TrackedContainer(ArkitektContainer):
    journal = providers.Singleton(Journal)
    first = ScopedResource(
        tracked, app_slot=ArkitektContainer.app_slot, name="first", journal=journal
    )
    second = ScopedResource(
        tracked, app_slot=ArkitektContainer.app_slot, name="second", journal=journal, first=first
    )
    per_task = ScopedResource(
        tracked,
        app_slot=ArkitektContainer.app_slot,
        kind=ScopeKind.TASK,
        name="task",
        journal=journal,
    )


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., App]:
    """Apps that contact nothing: a closed loopback port, headless, cache in tmp_path."""

    def build(
        identifier: str = "test-app", container: type[ArkitektContainer] = TrackedContainer
    ) -> App:
        settings = Settings(url="http://127.0.0.1:9", headless=True, cache_dir=tmp_path / "cache")
        return App(Manifest(identifier=identifier, version="0.1.0"), settings, container=container)

    return build


_ANSWERS: dict[str, tuple[int, Any]] = {
    "/lok/token/": (200, {"access_token": "t", "token_type": "Bearer", "expires_in": 3600}),
    "/lok/userinfo/": (
        200,
        {"sub": "s", "client_id": "c", "identifier": "recorded", "version": "1"},
    ),
    "/mikro/images/": (200, {"items": [], "total": 0, "offset": 0, "limit": 50}),
    "/mikro/datasets/": (200, []),
}


class RecordingServer(socketserver.ThreadingTCPServer):
    """A tiny HTTP/1.1 server on 127.0.0.1 that records every request it reads.

    It answers each path from :attr:`answers` (by default a token endpoint, userinfo, an
    empty image search and dataset list; other paths get ``{}``) on kept-alive connections. A
    path containing ``fail`` gets a 500; the next request on that connection is read (and
    recorded) but answered by closing the connection, as uvicorn does after a 500.

    Attributes:
        seen: ``(method, path)`` of every request read, in order.
        bodies: the body of every request read, in the same order.
        answers: path -> (status, body) or (status, body, headers): JSON, or ``bytes`` sent as
            they are, with extra headers (e.g. ``content-encoding``). Tests may set hostile
            answers here.
        drip: path -> (seconds, head): send that answer one byte every ``seconds``, its status
            line and headers too when ``head``, else only its body (a slow-loris server).

    """

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.seen: list[tuple[str, str]] = []
        self.bodies: list[bytes] = []
        self.answers: dict[str, tuple[Any, ...]] = dict(_ANSWERS)
        self.drip: dict[str, tuple[float, bool]] = {}
        self.closing = threading.Event()

    @property
    def url(self) -> str:
        """The server's root URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RecordingHandler(socketserver.StreamRequestHandler):
    server: RecordingServer

    def handle(self) -> None:
        failed = False
        while line := self.rfile.readline():
            method, target, _ = line.decode().split(" ", 2)
            length = 0
            while (header := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            sent = self.rfile.read(length)
            path = target.split("?")[0]
            self.server.seen.append((method, path))
            self.server.bodies.append(sent)
            if failed:
                return  # close without answering
            failed = "fail" in path
            code, payload = (500, b"Internal Server Error") if failed else (200, {})
            code, payload, *extra = self.server.answers.get(path, (code, payload))
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            headers = {"content-length": str(len(body)), "content-type": "application/json"}
            headers.update(extra[0] if extra else {})
            lines = [f"HTTP/1.1 {code} {HTTPStatus(code).phrase}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            head = ("\r\n".join(lines) + "\r\n\r\n").encode()
            if path in self.server.drip:
                self._drip(head, body, *self.server.drip[path])
                return
            try:
                self.wfile.write(head + body)
            except OSError:  # the client gave up (e.g. refused a large answer)
                return

    def _drip(self, head: bytes, body: bytes, seconds: float, with_head: bool) -> None:
        if not with_head:
            self.wfile.write(head)
        for byte in head + body if with_head else body:
            if self.server.closing.wait(seconds):
                return
            try:
                self.wfile.write(bytes([byte]))
            except OSError:  # the client gave up
                return


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    """A :class:`RecordingServer`, stopped after the test."""
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.closing.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


@pytest.fixture
def record_app(recording_server: RecordingServer, tmp_path: Path) -> Callable[..., App]:
    """Apps (not entered) whose static configuration points lok and mikro at
    :func:`recording_server`: requests reach nothing else.

    ``record_app(mikro={...}, **settings)``: more of the ``mikro`` group, and settings.
    """
    server = recording_server

    def build(mikro: dict[str, Any] | None = None, **settings: Any) -> App:
        app = easy(
            "recorded", url=server.url, headless=True, cache_dir=tmp_path / "recorded", **settings
        )
        lok = {
            "base_url": server.url + "/lok",
            "client_id": "c",
            "client_secret": "s",
            "userinfo_url": server.url + "/lok/userinfo/",
        }
        group = {"endpoint_url": server.url + "/mikro/", **(mikro or {})}
        app.fakts.grant = StaticConfigGrant({"lok": lok, "mikro": group})
        return app

    return build


@pytest.fixture
def recorded_app(record_app: Callable[..., App]) -> App:
    """``record_app()``: the recording server's app with default settings."""
    return record_app()


@pytest.fixture(scope="session")
def gzip_bomb() -> bytes:
    """512 MiB of zeros, gzip-compressed to about 0.5 MB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1 << 20)
    return b"".join(compressor.compress(zeros) for _ in range(512)) + compressor.flush()
