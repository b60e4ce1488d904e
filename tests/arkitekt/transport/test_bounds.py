"""Every answer is read within a size limit (after decoding) and every request within a total
deadline, whatever the server sends: the ``recording_server`` fixture plays a hostile one.
"""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from arkitekt import App, awhoami, easy, whoami
from arkitekt.errors import (
    BadResponseError,
    DiscoveryError,
    ResponseTooLargeError,
    ServerUnreachableError,
)
from arkitekt.mikro import asearch_images, search_images

GZIP = {"content-encoding": "gzip"}


def _peak_bytes(call: Callable[[], Any]) -> tuple[BaseException, int]:
    """The error ``call`` raised and the most memory Python held meanwhile (all threads)."""
    tracemalloc.start()
    try:
        call()
    except Exception as error:
        return error, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    raise AssertionError("the call did not fail")


def test_a_gzip_bomb_for_discovery_stops_at_1_mib(
    recording_server: Any, gzip_bomb: bytes, tmp_path: Path
) -> None:
    recording_server.answers["/.well-known/fakts"] = (200, gzip_bomb, GZIP)
    app = easy("bombed", url=recording_server.url, headless=True, cache_dir=tmp_path)
    with app:
        error, peak = _peak_bytes(whoami)
    assert isinstance(error, DiscoveryError)
    assert f"{recording_server.url}/.well-known/fakts answered more than 1 MiB" in str(error)
    assert peak < 32 << 20, f"{peak >> 20} MiB held while reading a 512 MiB bomb"


@pytest.mark.parametrize(
    ("path", "call", "limit"),
    [("/lok/token/", whoami, "1 MiB"), ("/mikro/images/", search_images, "8 MiB")],
    ids=["token", "mikro"],
)
def test_a_gzip_bomb_stops_at_the_limit_of_its_kind(
    recording_server: Any,
    recorded_app: App,
    gzip_bomb: bytes,
    path: str,
    call: Callable[[], Any],
    limit: str,
) -> None:
    recording_server.answers[path] = (200, gzip_bomb, GZIP)
    with recorded_app:
        error, peak = _peak_bytes(call)
    assert isinstance(error, ResponseTooLargeError), error
    assert f"{recording_server.url}{path}" in str(error)
    assert f"answered more than {limit} (decoded)" in str(error)
    assert peak < 64 << 20, f"{peak >> 20} MiB held while reading a 512 MiB bomb"


def test_an_answer_over_its_declared_limit_is_not_read(
    recording_server: Any, recorded_app: App
) -> None:
    recording_server.answers["/lok/userinfo/"] = (200, b" " * (2 << 20))
    with recorded_app, pytest.raises(ResponseTooLargeError, match="more than 1 MiB"):
        whoami()


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS | 16, zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_compressed_answers_within_the_limit_are_decoded(
    recording_server: Any, recorded_app: App, wbits: int
) -> None:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    body = b'{"sub": "s", "client_id": "c", "identifier": "zipped", "version": "1"}'
    packed = compressor.compress(body) + compressor.flush()
    coding = "gzip" if wbits > zlib.MAX_WBITS else "deflate"
    recording_server.answers["/lok/userinfo/"] = (200, packed, {"content-encoding": coding})
    with recorded_app:
        assert whoami().identifier == "zipped"


def test_an_encoding_the_client_did_not_ask_for_is_refused(
    recording_server: Any, recorded_app: App
) -> None:
    recording_server.answers["/lok/userinfo/"] = (200, b"\x0b\x01", {"content-encoding": "br"})
    with recorded_app, pytest.raises(BadResponseError, match="content-encoding 'br'") as caught:
        whoami()
    assert f"{recording_server.url}/lok/userinfo/" in str(caught.value)


# A server that sends one byte every 0.1 s never trips httpx's per-read timeout of 1 s; the
# answer (head and 300 bytes of body) would take over 30 s. The outer fail_after only keeps a
# regression from hanging the suite.
_DRIP = 0.1
_BODY = (200, {"pad": "x" * 300})


@pytest.mark.anyio
@pytest.mark.parametrize("head", [True, False], ids=["head", "body"])
async def test_discovery_from_a_dripping_server_fails_at_its_deadline(
    recording_server: Any, tmp_path: Path, head: bool
) -> None:
    recording_server.answers["/.well-known/fakts"] = _BODY
    recording_server.drip["/.well-known/fakts"] = (_DRIP, head)
    app = easy(
        "dripped", url=recording_server.url, headless=True, cache_dir=tmp_path, discovery_timeout=1
    )
    with anyio.fail_after(20):
        async with app:
            with pytest.raises(DiscoveryError) as caught:
                await awhoami()
    assert f"{recording_server.url}/.well-known/fakts did not complete within 1 s" in str(
        caught.value
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "call"),
    [("/lok/token/", awhoami), ("/mikro/images/", asearch_images)],
    ids=["token", "mikro"],
)
@pytest.mark.parametrize("head", [True, False], ids=["head", "body"])
async def test_a_dripping_server_fails_at_the_timeout(
    recording_server: Any,
    record_app: Callable[..., App],
    path: str,
    call: Callable[[], Awaitable[Any]],
    head: bool,
) -> None:
    recording_server.answers[path] = _BODY
    recording_server.drip[path] = (_DRIP, head)
    with anyio.fail_after(20):
        async with record_app(timeout=1):
            with pytest.raises(ServerUnreachableError) as caught:
                await call()
    assert f"{recording_server.url}{path}" in str(caught.value)
    assert "did not complete within 1 s" in str(caught.value)
