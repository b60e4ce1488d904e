"""The transport: bearer tokens fetched lazily, refreshed early and on 401, closed on exit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from arkitekt import App, easy, whoami
from arkitekt.errors import InsecureTransportError, ServerUnreachableError
from arkitekt.fakts import StaticConfigGrant
from arkitekt.transport import Transport
from arkitekt_server import EmbeddedServer


def _transport(app: App) -> Transport:
    async def get() -> Transport:
        return await app.container.transport()

    return app.app_slot.scope.bridge.call(get)


def test_transport_opens_lazily_and_closes_with_the_scope(connect: Callable[..., App]) -> None:
    app = connect()
    with app:
        transport = _transport(app)
        assert _transport(app) is transport  # one per scope
        assert transport._token is None  # no token until a request needs one
        whoami()
        assert transport._token is not None
    assert transport.client.is_closed


def test_requests_carry_the_bearer_token(
    connect: Callable[..., App], server: EmbeddedServer
) -> None:
    app = connect()
    with app:
        transport = _transport(app)

        async def get() -> httpx.Response:
            return await transport.client.get(server.url + "/lok/userinfo/")

        response = app.app_slot.scope.bridge.call(get)
    assert response.status_code == 200
    assert response.request.headers["authorization"].startswith("Bearer ")


def test_token_is_refreshed_before_it_expires(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path
) -> None:
    # A 31 s token is within the 30 s refresh margin after one second.
    short = server_factory(auto_approve=True, access_token_ttl_seconds=31)
    app = easy("refresh", url=short.url, headless=True, cache_dir=tmp_path)
    with app:
        whoami()
        transport = _transport(app)
        first = transport._token
        transport._expires -= 2  # as if two seconds passed
        whoami()
        assert transport._token != first


def test_a_rejected_token_is_replaced_and_the_request_retried(connect: Callable[..., App]) -> None:
    app = connect()
    with app:
        whoami()
        transport = _transport(app)
        transport._token = "stale-token-the-server-does-not-know"
        info = whoami()  # 401 -> refresh -> retry
        assert transport._token != "stale-token-the-server-does-not-know"
    assert info.identifier.startswith("test-app-")


def test_plain_http_to_other_hosts_is_refused_for_configured_urls(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "lok": {
            "base_url": "http://192.0.2.1/lok",
            "client_id": "c",
            "client_secret": "s",
            "userinfo_url": "http://192.0.2.1/lok/userinfo/",
        }
    }
    app = easy("static", url="http://127.0.0.1:9", cache_dir=tmp_path)
    app.fakts.grant = StaticConfigGrant(config)
    with app, pytest.raises(InsecureTransportError, match=r"192\.0\.2\.1"):
        whoami()


def test_allow_insecure_lets_plain_http_through(tmp_path: Path) -> None:
    app = easy("static", url="http://127.0.0.1:9", cache_dir=tmp_path, allow_insecure=True)
    lok = {"base_url": "http://192.0.2.1/lok", "client_id": "c", "client_secret": "s"}
    app.fakts.grant = StaticConfigGrant({"lok": lok})
    # arkitekt lets it pass; the tests' loopback-only guard then refuses the connection.
    with app, pytest.raises(ServerUnreachableError, match=r"could not reach http://192\.0\.2\.1"):
        whoami()


def test_a_server_that_stops_mid_scope_is_a_clear_arkitekt_error(
    server_factory: Callable[..., EmbeddedServer], tmp_path: Path
) -> None:
    server = server_factory(auto_approve=True)
    app = easy("outage", url=server.url, headless=True, cache_dir=tmp_path)
    with app:
        whoami()
        server.stop()
        with pytest.raises(ServerUnreachableError, match="is the server running") as caught:
            whoami()
    assert f"could not reach {server.url}" in str(caught.value)
