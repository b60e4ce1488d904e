"""Fixtures of the mikro server tests: hostile chunks, raw HTTP with an app's bearer token."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from arkitekt import App, easy
from arkitekt_server import EmbeddedServer
from tests.helpers import bearer_token


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


@contextmanager
def _mikro_client(server: EmbeddedServer, connect: Callable[..., App]) -> Iterator[httpx.Client]:
    with (
        connect() as app,
        httpx.Client(
            base_url=server.url + "/mikro",
            headers={"Authorization": f"Bearer {bearer_token(app)}"},
        ) as client,
    ):
        yield client


@pytest.fixture
def http(server: EmbeddedServer, connect: Callable[..., App]) -> Iterator[httpx.Client]:
    """An HTTP client on the session server's ``/mikro`` with the bearer token of a fresh app."""
    with _mikro_client(server, connect) as client:
        yield client


@pytest.fixture
def other(server: EmbeddedServer, connect: Callable[..., App]) -> Iterator[httpx.Client]:
    """Like ``http``, for a second app."""
    with _mikro_client(server, connect) as client:
        yield client


@pytest.fixture
def s3_http(s3_server: EmbeddedServer, tmp_path: Path) -> Iterator[httpx.Client]:
    """Like ``http``, on :func:`s3_server`."""
    app = easy(f"s3-http-{uuid.uuid4().hex[:8]}", url=s3_server.url, headless=True,
               cache_dir=tmp_path / "s3-cache")  # fmt: skip
    with (
        app,
        httpx.Client(
            base_url=s3_server.url + "/mikro",
            headers={"Authorization": f"Bearer {bearer_token(app)}"},
        ) as client,
    ):
        yield client
