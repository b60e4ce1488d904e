"""The app's blocking client (``Transport.blocking``) keeps the async client's guarantees.

Its requests carry the app's bearer token (fetched on the app's loop), its answers are read
within their size limit after decoding and within the request's total deadline, and a dropped
kept-alive connection is resent once for idempotent requests. The ``recording_server`` fixture
plays the server (also a hostile one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from arkitekt import App
from arkitekt.errors import (
    BadResponseError,
    BridgeError,
    ResponseTooLargeError,
    ServerUnreachableError,
)
from arkitekt.transport import MAX_BODY, Transport, blocking_client


def _transport(app: App) -> Transport:
    async def get() -> Transport:
        return await app.container.transport()  # type: ignore[no-any-return]

    return app.app_slot.scope.bridge.call(get)


def _in_thread(call: Callable[[], Any]) -> Any:
    """``call()`` in a worker thread, as zarr's store makes its requests."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(30)


def test_requests_carry_the_token_fetched_once_on_the_apps_loop(
    recording_server: Any, recorded_app: App
) -> None:
    recording_server.answers["/chunk"] = (200, b"\x00" * 100_000)
    with recorded_app as app:
        transport = _transport(app)
        client = transport.blocking()
        assert blocking_client(transport.client) is client
        url = recording_server.url + "/chunk"

        def get() -> httpx.Response:
            return client.get(url, extensions={MAX_BODY: 200_000})

        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda _: get(), range(8)))
        assert {len(response.content) for response in responses} == {100_000}
        assert {response.request.headers["authorization"] for response in responses} == {
            f"Bearer {transport._token}"
        }
    assert recording_server.seen.count(("POST", "/lok/token/")) == 1
    assert client.is_closed  # closed with the app's scope


def test_a_token_needed_on_the_apps_loop_is_refused(
    recording_server: Any, recorded_app: App
) -> None:
    with recorded_app as app:
        transport = _transport(app)

        async def on_loop() -> None:
            transport.blocking().get(recording_server.url + "/x")

        with pytest.raises(BridgeError, match="used on the app's event loop"):
            app.app_slot.scope.bridge.call(on_loop)


def test_a_rejected_token_is_replaced_and_the_request_retried(
    recording_server: Any, recorded_app: App
) -> None:
    with recorded_app as app:
        transport = _transport(app)
        client = transport.blocking()
        _in_thread(lambda: client.get(recording_server.url + "/x"))
        first = transport._token
        recording_server.answers["/guarded"] = (401, {"detail": "expired"})
        response = _in_thread(lambda: client.get(recording_server.url + "/guarded"))
        assert response.status_code == 401  # the server keeps refusing: answered as it is
        assert response.request.headers["authorization"] == f"Bearer {first}"
    assert recording_server.seen.count(("GET", "/guarded")) == 2
    assert recording_server.seen.count(("POST", "/lok/token/")) == 2  # refreshed once


def test_a_large_answer_arrives_whole_in_large_reads(
    recording_server: Any, recorded_app: App
) -> None:
    from arkitekt.transport import _sync

    body = bytes(range(256)) * (3 * _sync.READ_BYTES // 256) + b"tail"
    recording_server.answers["/chunk"] = (200, body)
    with recorded_app as app:
        client = _transport(app).blocking()
        url = recording_server.url + "/chunk"
        response = _in_thread(lambda: client.get(url, extensions={MAX_BODY: len(body)}))
        assert response.content == body
        with pytest.raises(ResponseTooLargeError):  # a byte over its limit
            _in_thread(lambda: client.get(url, extensions={MAX_BODY: len(body) - 1}))


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "streamed"])
def test_an_answer_over_its_limit_is_refused(
    recording_server: Any, recorded_app: App, gzip_bomb: bytes, declared: bool
) -> None:
    answer = (200, b"x" * 5000) if declared else (200, gzip_bomb, {"content-encoding": "gzip"})
    recording_server.answers["/big"] = answer
    with recorded_app as app:
        client = _transport(app).blocking()
        url = recording_server.url + "/big"
        with pytest.raises(ResponseTooLargeError, match="answered more than 1000 bytes"):
            _in_thread(lambda: client.get(url, extensions={MAX_BODY: 1000}))


def test_a_coding_the_client_did_not_ask_for_is_refused(
    recording_server: Any, recorded_app: App
) -> None:
    recording_server.answers["/br"] = (200, b"abc", {"content-encoding": "br"})
    with recorded_app as app:
        client = _transport(app).blocking()
        with pytest.raises(BadResponseError, match="content-encoding 'br'"):
            _in_thread(lambda: client.get(recording_server.url + "/br"))


@pytest.mark.parametrize("head", [True, False], ids=["head", "body"])
def test_a_dripping_server_fails_at_the_deadline(
    recording_server: Any, record_app: Callable[..., App], head: bool
) -> None:
    recording_server.answers["/drip"] = (200, {"pad": "x" * 300})
    recording_server.drip["/drip"] = (0.1, head)  # the whole answer would take over 30 s
    with record_app(timeout=1) as app:
        client = _transport(app).blocking()
        _in_thread(lambda: client.get(recording_server.url + "/warm"))  # the token
        start = time.monotonic()
        with pytest.raises(ServerUnreachableError, match="did not complete within 1 s"):
            _in_thread(lambda: client.get(recording_server.url + "/drip"))
        assert time.monotonic() - start < 10  # at the deadline, not at the end of the drip


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_an_idempotent_request_on_a_dropped_connection_is_resent(
    recording_server: Any, recorded_app: App, method: str
) -> None:
    with recorded_app as app:
        client = _transport(app).blocking()
        assert _in_thread(lambda: client.get(recording_server.url + "/fail")).status_code == 500
        url = recording_server.url + "/next"
        response = _in_thread(lambda: client.request(method, url, content=b"body"))
        assert response.status_code == 200
    assert recording_server.seen[-2:] == [(method, "/next"), (method, "/next")]


def test_a_post_on_a_dropped_connection_is_not_resent(
    recording_server: Any, recorded_app: App
) -> None:
    with recorded_app as app:
        client = _transport(app).blocking()
        _in_thread(lambda: client.get(recording_server.url + "/fail"))
        with pytest.raises(ServerUnreachableError, match="not idempotent"):
            _in_thread(lambda: client.post(recording_server.url + "/create", content=b"{}"))
    assert recording_server.seen.count(("POST", "/create")) == 1
