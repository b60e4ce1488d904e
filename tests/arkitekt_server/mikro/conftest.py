"""Shared by the mikro server tests: hostile chunks, a server in its own process, its memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from arkitekt import App
from arkitekt_server import EmbeddedServer


def zstd_rle_frame(declared: int, total: int) -> bytes:
    """A zstd frame of ``total`` zero bytes in RLE blocks (4 bytes per 128 KiB), declaring a
    content size of ``declared``: 1 GiB fits in 33 KB."""
    block = 1 << 17
    header = (0xFD2FB528).to_bytes(4, "little") + bytes([0xC0, 17 - 10 << 3])
    header += declared.to_bytes(8, "little")  # FCS flag 3: 8 bytes, window descriptor above
    blocks = bytearray()
    left = total
    while left:
        size = min(block, left)
        left -= size
        blocks += ((size << 3) | (1 << 1) | (0 if left else 1)).to_bytes(3, "little") + b"\0"
    return header + bytes(blocks)


@pytest.fixture
def zstd_bomb() -> Callable[[int, int], bytes]:
    """``zstd_bomb(declared, total)``: see :func:`zstd_rle_frame`."""
    return zstd_rle_frame


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


@pytest.fixture
def peak_rss_mib() -> Callable[[int], float]:
    """``peak_rss_mib(pid)``: the peak resident memory (VmHWM) of a process so far, in MiB."""
    return _peak_rss_mib


class ServerProcess:
    """``arkitekt server`` in its own process (auto-approving, on loopback)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self, *, wait: bool = True) -> subprocess.Popen[str]:
        """Start the server on a free port; with ``wait``, return once it answers."""
        self.port = _free_port()  # a new one each time: another server may hold the last one
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable, "-m", "arkitekt.cli", "server", "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--auto-approve",
        ]  # fmt: skip
        env = {**os.environ, "ARKITEKT_SERVER_LOG_LEVEL": "warning"}
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + 30
        while wait:
            try:
                httpx.get(self.url + "/.well-known/fakts", timeout=1)
                break
            except httpx.TransportError:
                if self.process.poll() is not None:
                    raise AssertionError(f"the server exited: {self.finish()}") from None
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        return self.process

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


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """An ``arkitekt server`` subprocess on its own data dir and port (not started yet)."""
    server = ServerProcess(tmp_path / "data")
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.kill()
        server.finish()


@pytest.fixture
def bearer() -> Callable[[App], str]:
    """The bearer token of an open app (for raw HTTP requests next to the client)."""

    def token(app: App) -> str:
        async def get() -> str:
            transport = await app.container.transport()
            return await transport.atoken()

        return app.runtime.scope.bridge.call(get)

    return token


@pytest.fixture
def http(
    server: EmbeddedServer, connect: Callable[..., App], bearer: Callable[[App], str]
) -> Iterator[httpx.Client]:
    """An HTTP client on the session server's ``/mikro`` with the bearer token of a fresh app."""
    with (
        connect() as app,
        httpx.Client(
            base_url=server.url + "/mikro", headers={"Authorization": f"Bearer {bearer(app)}"}
        ) as client,
    ):
        yield client


@pytest.fixture
def other(
    server: EmbeddedServer, connect: Callable[..., App], bearer: Callable[[App], str]
) -> Iterator[httpx.Client]:
    """Like ``http``, for a second app."""
    with (
        connect() as app,
        httpx.Client(
            base_url=server.url + "/mikro", headers={"Authorization": f"Bearer {bearer(app)}"}
        ) as client,
    ):
        yield client
