"""A kept-alive connection the server closed: idempotent requests are resent once, POSTs not.

uvicorn answers a 500 and then closes the connection; the client only notices when it sends its
next request on it. The server here does that deterministically: it answers ``/fail`` with a
500 on a kept-alive connection, then reads the next request on that connection and closes it
without an answer (a race with uvicorn's close, provoked every time).
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arkitekt import App, easy, whoami
from arkitekt.errors import ServerUnreachableError
from arkitekt.fakts import StaticConfigGrant
from arkitekt.mikro import MikroError, get_image, search_images
from arkitekt.transport import IDEMPOTENT, Transport

_ANSWERS: dict[str, Any] = {
    "/lok/token/": {"access_token": "t", "token_type": "Bearer", "expires_in": 3600},
    "/lok/userinfo/": {"sub": "s", "client_id": "c", "identifier": "dropping", "version": "1"},
    "/mikro/images/": {"items": [], "total": 0, "offset": 0, "limit": 50},
}


class _DroppingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str]] = []  # (method, path) of every request read

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(socketserver.StreamRequestHandler):
    server: _DroppingServer

    def handle(self) -> None:
        failed = False
        while line := self.rfile.readline():
            method, target, _ = line.decode().split(" ", 2)
            length = 0
            while (header := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = header.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            self.rfile.read(length)
            path = target.split("?")[0]
            self.server.seen.append((method, path))
            if failed:
                return  # close without answering: what the client finds after a 500
            failed = "fail" in path
            status = "500 Internal Server Error" if failed else "200 OK"
            body = (
                b"Internal Server Error" if failed else json.dumps(_ANSWERS.get(path, {})).encode()
            )
            self.wfile.write(
                f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n"
                "content-type: application/json\r\n\r\n".encode()
                + body
            )


@pytest.fixture
def dropping() -> Iterator[_DroppingServer]:
    server = _DroppingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def _app(server: _DroppingServer, tmp_path: Path) -> App:
    app = easy("dropping", url=server.url, headless=True, cache_dir=tmp_path)
    lok = {
        "base_url": server.url + "/lok",
        "client_id": "c",
        "client_secret": "s",
        "userinfo_url": server.url + "/lok/userinfo/",
    }
    mikro = {"endpoint_url": server.url + "/mikro/"}
    app.fakts.grant = StaticConfigGrant({"lok": lok, "mikro": mikro})
    return app


def _send(app: App, method: str, path: str, **kwargs: Any) -> int:
    async def send() -> int:
        transport: Transport = await app.container.transport()
        url = transport.settings.url + path
        return (await transport.client.request(method, url, **kwargs)).status_code

    return app.runtime.scope.bridge.call(send)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_an_idempotent_request_after_a_500_is_resent_on_a_fresh_connection(
    dropping: _DroppingServer, tmp_path: Path, method: str
) -> None:
    with _app(dropping, tmp_path) as app:
        assert _send(app, "GET", "/fail") == 500
        assert _send(app, method, "/next", content=b"body") == 200
    # read on the connection the server closed, then again on a fresh one
    assert dropping.seen[-2:] == [(method, "/next"), (method, "/next")]


def test_a_post_after_a_500_is_not_resent_and_says_why(
    dropping: _DroppingServer, tmp_path: Path
) -> None:
    with _app(dropping, tmp_path) as app:
        assert _send(app, "GET", "/fail") == 500
        with pytest.raises(ServerUnreachableError, match="not idempotent") as caught:
            _send(app, "POST", "/create", json={"a": 1})
        assert _send(app, "GET", "/after") == 200  # the app still works
    assert dropping.seen.count(("POST", "/create")) == 1
    assert f"POST {dropping.url}/create" in str(caught.value)
    assert "is the server running" not in str(caught.value)


def test_a_post_marked_idempotent_is_resent(dropping: _DroppingServer, tmp_path: Path) -> None:
    with _app(dropping, tmp_path) as app:
        assert _send(app, "GET", "/fail") == 500
        assert _send(app, "POST", "/poll", json={}, extensions={IDEMPOTENT: True}) == 200
    assert dropping.seen.count(("POST", "/poll")) == 2


def test_api_calls_after_a_500_succeed_and_the_500_names_status_and_url(
    dropping: _DroppingServer, tmp_path: Path
) -> None:
    with _app(dropping, tmp_path):
        with pytest.raises(MikroError) as caught:
            get_image("fail")
        assert search_images().total == 0
        assert whoami().identifier == "dropping"
    message = str(caught.value)
    assert f"GET {dropping.url}/mikro/images/fail" in message
    assert "HTTP 500" in message
    assert "is the server running" not in message
