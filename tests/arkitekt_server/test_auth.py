"""Every route but discovery, the fakts flow, the token endpoint, the approval page, the local
image viewer and the health check requires a valid bearer token.

The guard walks every route of the app the server runs (included routers and websockets too)
and cross-checks the walk against the OpenAPI schema, so a walk that sees too little fails.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from arkitekt_server import EmbeddedServer, ServerSettings
from arkitekt_server._app import HEALTH_PATH, create_app, load_services

PROTECTED_PREFIXES = ("/lok/", "/mikro/", "/rekuest/")
MIN_PROTECTED_OPERATIONS = 17  # as of issue 8: lok 2, mikro 10, rekuest 5
# ... and the routes of the image viewer, which answer without a token only in single-user
# mode (auto_approve) to loopback.
VIEWER_PATHS = (
    "/mikro/",
    "/mikro/images/1/thumbnail.png",
    "/mikro/images/1/view",
    "/mikro/images/1/slice.png",
    "/mikro/static/viewer.js",
    "/mikro/static/mikro.css",
)
PAGE_PATHS = ("/mikro/", "/mikro/images/1/view")
MIN_PROTECTED_WEBSOCKETS = 2  # the rekuest agent and caller sockets


def _app(tmp_path: Path) -> FastAPI:
    return create_app(ServerSettings(data_dir=tmp_path / "walk"))


def _public() -> set[str]:
    return {HEALTH_PATH}.union(*(service.public_paths for service in load_services()))


def _walk(app: FastAPI) -> tuple[list[tuple[str, str]], list[str]]:
    """(method, path) of every protected HTTP operation, and every protected websocket path."""
    public = _public()
    operations, sockets = [], []
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, str(context.path)
        if path in public:
            continue
        if isinstance(route, APIRoute):
            operations.extend((method, path) for method in sorted(context.methods or ()))
        elif isinstance(route, APIWebSocketRoute):
            sockets.append(path)
    return operations, sockets


def _schema_path(path: str) -> str:
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)  # the schema drops convertors (":path")


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_the_walk_sees_every_route(tmp_path: Path) -> None:
    app = _app(tmp_path)
    operations, sockets = _walk(app)
    assert len(operations) >= MIN_PROTECTED_OPERATIONS, operations
    assert len(sockets) >= MIN_PROTECTED_WEBSOCKETS, sockets
    for prefix in PROTECTED_PREFIXES:
        assert any(path.startswith(prefix) for _, path in operations), prefix
    # The schema FastAPI builds from the same app lists the same operations: neither view lost
    # any (a route walk that stopped at included routers saw 7 of 19).
    public = {_schema_path(path) for path in _public()}
    documented = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        if path not in public
        for method in item
    }
    assert documented == {(method, _schema_path(path)) for method, path in operations}


@pytest.mark.parametrize("token", [None, "not-a-token", "x" * 43])
def test_every_protected_route_refuses_requests_without_a_valid_token(
    server: EmbeddedServer, tmp_path: Path, token: str | None
) -> None:
    operations, _ = _walk(_app(tmp_path))
    assert len(operations) >= MIN_PROTECTED_OPERATIONS
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url) as http:
        for method, path in operations:
            response = http.request(method, _concrete(path), headers=headers, json={})
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.anyio
@pytest.mark.parametrize("token", [None, "x" * 43])
async def test_every_protected_websocket_refuses_connections_without_a_valid_token(
    server: EmbeddedServer, tmp_path: Path, token: str | None
) -> None:
    _, sockets = _walk(_app(tmp_path))
    assert len(sockets) >= MIN_PROTECTED_WEBSOCKETS
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    for path in sockets:
        url = server.url.replace("http://", "ws://") + path
        async with ws_connect(url, additional_headers=headers) as socket_:
            with pytest.raises(ConnectionClosed) as closed:
                await socket_.recv()
        code = closed.value.rcvd.code if closed.value.rcvd else None
        assert code == 4401, (path, code)


def test_the_viewer_needs_a_token_unless_single_user(
    manual_server: EmbeddedServer, server: EmbeddedServer
) -> None:
    for path in VIEWER_PATHS:
        response = httpx.get(manual_server.url + path)
        if path in PAGE_PATHS:  # a person: to the operator's sign-in form
            assert response.status_code == 303, path
            assert response.url.join(response.headers["location"]).path == "/f/signin/"
        else:
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
        bad = httpx.get(server.url + path, headers={"Authorization": "Bearer " + "x" * 43})
        assert bad.status_code == 401, path


def test_an_unauthenticated_large_post_is_refused_before_its_body_is_read(
    server: EmbeddedServer,
) -> None:
    # FastAPI reads a route's body before its dependencies: without the gate, the server would
    # wait for all 10 MiB before saying 401. It answers after the headers and 64 KiB.
    size = 10 << 20
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            (
                f"POST /mikro/uploads/ HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
            ).encode()
            + b"[" * (64 << 10)
        )
        answer = raw.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert "bearer token is required" in answer


def test_api_docs_are_not_public(server: EmbeddedServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        for path in ("/docs", "/openapi.json", "/redoc"):
            assert http.get(path).status_code in (401, 404)


def test_unknown_paths_need_a_token_then_are_not_found(server: EmbeddedServer, bearer: str) -> None:
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/nowhere/").status_code == 401
        found = http.get("/nowhere/", headers={"Authorization": f"Bearer {bearer}"})
        assert found.status_code == 404


def test_health_answers_without_a_token(server: EmbeddedServer) -> None:
    answer: dict[str, Any] = httpx.get(server.url + HEALTH_PATH).json()
    assert answer["status"] == "ok"


def test_a_public_path_without_a_route_is_refused_at_build(tmp_path: Path) -> None:
    from arkitekt_server._gate import RequestGate

    app = _app(tmp_path)
    with pytest.raises(ValueError, match="/f/strat/"):
        RequestGate(app, public=["/f/strat/"], routes=app.routes, max_body_bytes=1, body_limits={})
    with pytest.raises(ValueError, match="/f/strat/"):
        RequestGate(
            app, public=[], routes=app.routes, max_body_bytes=1, body_limits={"/f/strat/": 1}
        )


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
