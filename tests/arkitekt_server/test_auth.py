"""Every route but discovery, the fakts flow, the token endpoint, the approval page and the
health check requires a valid bearer token."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute

from arkitekt_server import EmbeddedServer
from arkitekt_server.app import HEALTH_PATH, load_services


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every HTTP route that is not declared public."""
    services = load_services()
    public = {HEALTH_PATH}.union(*(service.public_paths for service in services))
    found = []
    for service in services:
        for route in service.router.routes:
            if not isinstance(route, APIRoute):
                continue
            path = service.prefix + route.path
            if path not in public:
                concrete = re.sub(r"\{[^}]+\}", "1", path)
                found.extend((method, concrete) for method in sorted(route.methods))
    return found


def test_there_are_protected_routes(server: EmbeddedServer) -> None:
    assert ("GET", "/lok/userinfo/") in _routes()
    assert ("POST", "/lok/revoke/") in _routes()


@pytest.mark.parametrize("token", [None, "not-a-token", "x" * 43])
def test_every_protected_route_refuses_requests_without_a_valid_token(
    server: EmbeddedServer, token: str | None
) -> None:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url) as http:
        for method, path in _routes():
            response = http.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"


def test_api_docs_are_not_public(server: EmbeddedServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert http.get(path).status_code == 404


def test_health_answers_without_a_token(server: EmbeddedServer) -> None:
    answer: dict[str, Any] = httpx.get(server.url + HEALTH_PATH).json()
    assert answer["status"] == "ok"


def test_websocket_routes_exist_only_where_expected() -> None:
    # Websockets authenticate in their handler (close code 4401); the rekuest tests check it.
    for service in load_services():
        for route in service.router.routes:
            if isinstance(route, APIWebSocketRoute):
                assert service.name == "rekuest", route.path


def test_requests_naming_another_host_are_refused(server: EmbeddedServer) -> None:
    # A page whose DNS name was rebound to 127.0.0.1 sends its own name as Host.
    for path in ("/.well-known/fakts", "/health/", "/f/configure/?device_code=X"):
        refused = httpx.get(server.url + path, headers={"Host": "evil.example"})
        assert refused.status_code == 400, path
        assert "allowed_hosts" in refused.text
    start = httpx.post(
        server.url + "/f/start/",
        json={"manifest": {"identifier": "rebound", "version": "1"}},
        headers={"Host": "evil.example:8000"},
    )
    assert start.status_code == 400  # no auto-approval through a rebound name
    for host in ("127.0.0.1", "localhost:1234", "[::1]:8000"):
        assert httpx.get(server.url + "/health/", headers={"Host": host}).status_code == 200


def test_allowed_hosts_admits_configured_names(server_factory: Any) -> None:
    lab = server_factory(
        allowed_hosts=["lab.example.org"], public_url="https://arkitekt.example.org"
    )
    for host in ("lab.example.org", "arkitekt.example.org:443"):
        assert httpx.get(lab.url + "/health/", headers={"Host": host}).status_code == 200
    assert httpx.get(lab.url + "/health/", headers={"Host": "other.org"}).status_code == 400
