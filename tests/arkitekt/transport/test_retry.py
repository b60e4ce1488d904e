"""A kept-alive connection the server closed: idempotent requests are resent once, POSTs not.

uvicorn answers a 500 and then closes the connection; the client only notices when it sends its
next request on it. The ``recording_server`` fixture does that deterministically (the race with
uvicorn's close, provoked every time): it answers ``/fail`` with a 500 on a kept-alive
connection, then reads the next request on that connection and closes it without an answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from arkitekt import App, whoami
from arkitekt.errors import ServerUnreachableError
from arkitekt.mikro import MikroError, get_image, search_images
from arkitekt.transport import IDEMPOTENT, Transport


def _send(app: App, method: str, path: str, **kwargs: Any) -> int:
    async def send() -> int:
        transport: Transport = await app.container.transport()
        url = transport.settings.url + path
        return (await transport.client.request(method, url, **kwargs)).status_code

    return app.app_slot.scope.bridge.call(send)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_idempotent_request_after_a_500_is_resent_on_a_fresh_connection(
    recording_server: Any, recorded_app: App, method: str
) -> None:
    with recorded_app as app:
        assert _send(app, "GET", "/fail") == 500
        assert _send(app, method, "/next", content=b"body") == 200
    # read on the connection the server closed, then again on a fresh one
    assert recording_server.seen[-2:] == [(method, "/next"), (method, "/next")]


def test_a_post_after_a_500_is_not_resent_and_says_why(
    recording_server: Any, recorded_app: App
) -> None:
    with recorded_app as app:
        assert _send(app, "GET", "/fail") == 500
        with pytest.raises(ServerUnreachableError, match="not idempotent") as caught:
            _send(app, "POST", "/create", json={"a": 1})
        assert _send(app, "GET", "/after") == 200  # the app still works
    assert recording_server.seen.count(("POST", "/create")) == 1
    assert f"POST {recording_server.url}/create" in str(caught.value)
    assert "is the server running" not in str(caught.value)


def test_a_post_marked_idempotent_is_resent(recording_server: Any, recorded_app: App) -> None:
    with recorded_app as app:
        assert _send(app, "GET", "/fail") == 500
        assert _send(app, "POST", "/poll", json={}, extensions={IDEMPOTENT: True}) == 200
    assert recording_server.seen.count(("POST", "/poll")) == 2


def test_api_calls_after_a_500_succeed_and_the_500_names_status_and_url(
    recording_server: Any, recorded_app: App
) -> None:
    with recorded_app:
        with pytest.raises(MikroError) as caught:
            get_image("fail")
        assert search_images().total == 0
        assert whoami().identifier == "recorded"
    message = str(caught.value)
    assert f"GET {recording_server.url}/mikro/images/fail" in message
    assert "HTTP 500" in message
    assert "is the server running" not in message
