"""Request bodies are bounded per route before they are read: 413 with a clear message."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from arkitekt.protocol.rekuest import MAX_MESSAGE_CONTAINERS
from arkitekt.protocol.text import too_many_containers
from arkitekt_server import EmbeddedServer, ServerSettings
from arkitekt_server._gate import MAX_JSON_CONTAINERS
from arkitekt_server._service import SMALL_BODY_BYTES

LIMIT = 4096


@pytest.fixture
def small(server_factory: Callable[..., EmbeddedServer]) -> EmbeddedServer:
    return server_factory(auto_approve=True, max_body_bytes=LIMIT)


@pytest.fixture
def http(
    small: EmbeddedServer, fakts_for: Callable[[EmbeddedServer], Any]
) -> Iterator[httpx.Client]:
    token = fakts_for(small).auto_bearer("limits")
    headers = {"Authorization": f"Bearer {token}"}
    # parsing half a million containers takes seconds on a loaded machine: no 5 s default
    with httpx.Client(base_url=small.url, headers=headers, timeout=60) as client:
        yield client


def _detail(response: httpx.Response) -> str:
    assert response.status_code == 413, (response.status_code, response.text)
    return str(response.json()["detail"])


def test_a_body_within_the_limit_is_served(http: httpx.Client) -> None:
    assert http.post("/mikro/datasets/", json={"name": "fits"}).status_code == 201


def test_a_declared_length_over_the_limit_is_refused_before_reading(
    small: EmbeddedServer, http: httpx.Client
) -> None:
    host, port = small.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            (
                f"POST /mikro/datasets/ HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: {http.headers['authorization']}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {10 << 20}\r\n\r\n"
            ).encode()
            + b'{"name": "'
        )
        answer = raw.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413"), answer[:300]
    assert f"larger than the {LIMIT} bytes that POST /mikro/datasets/ accepts" in answer


def test_a_streamed_body_is_counted_and_cut_at_the_limit(http: httpx.Client) -> None:
    def parts() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(64):
            yield b"x" * 1024  # no Content-Length: chunked transfer encoding

    detail = _detail(
        http.post("/mikro/datasets/", content=parts(), headers={"Content-Type": "application/json"})
    )
    assert f"{LIMIT} bytes" in detail


def test_the_public_fakts_and_token_routes_take_only_small_bodies(small: EmbeddedServer) -> None:
    big = {"manifest": {"identifier": "x" * (SMALL_BODY_BYTES + 1), "version": "1"}}
    detail = _detail(httpx.post(small.url + "/f/start/", json=big))
    assert f"{SMALL_BODY_BYTES} bytes" in detail
    form = {"grant_type": "client_credentials", "scope": "x" * SMALL_BODY_BYTES}
    assert f"{SMALL_BODY_BYTES} bytes" in _detail(httpx.post(small.url + "/lok/token/", data=form))


def test_a_route_declares_its_own_larger_limit(http: httpx.Client) -> None:
    # The chunk PUT of mikro takes more than max_body_bytes (it bounds chunks by their grant):
    # the body reaches the route, which answers for the unknown grant, not 413.
    response = http.put("/mikro/uploads/nope/store/0/c/0/0/0/0/0", content=b"x" * (4 * LIMIT))
    assert response.status_code == 404, response.text


def test_a_json_body_is_bounded_in_what_it_expands_to(
    server_factory: Callable[..., EmbeddedServer], fakts_for: Callable[[EmbeddedServer], Any]
) -> None:
    server = server_factory(auto_approve=True)  # the default max_body_bytes
    token = fakts_for(server).auto_bearer("expansion")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    many = b'{"name": "n", "x": [' + b",".join([b"{}"] * (MAX_JSON_CONTAINERS + 1)) + b"]}"
    assert len(many) < ServerSettings().max_body_bytes  # within the byte limit
    with httpx.Client(base_url=server.url, headers=headers) as http:
        detail = _detail(http.post("/mikro/datasets/", content=many))
        assert f"more than the {MAX_JSON_CONTAINERS} JSON objects and arrays" in detail
        # brackets inside strings are no containers: a body of a few real ones is parsed
        brackets = json.dumps({"name": "[{" * 200, "description": "{[" * 4000}).encode()
        assert too_many_containers(brackets, limit=10) is False
        assert http.post("/mikro/datasets/", content=brackets).status_code == 201
        # fewer containers: parsed (and refused for its unknown field)
        fine = b'{"name": "n", "x": [' + b",".join([b"{}"] * 1000) + b"]}"
        assert http.post("/mikro/datasets/", content=fine).status_code == 422  # x: extra field


def test_a_route_declares_its_own_container_limit(http: httpx.Client) -> None:
    """An HTTP call holds as many objects and arrays as a websocket call may."""
    arguments = {"x": [[]] * (MAX_JSON_CONTAINERS + 1)}  # above the gate's default count
    call = {"function": "limits_nowhere", "arguments": arguments}
    response = http.post("/rekuest/assignments/", json=call)
    assert response.status_code == 404, response.text  # reached the hub: no such function
    flood = {"function": "limits_nowhere", "arguments": {"x": [[]] * MAX_MESSAGE_CONTAINERS}}
    detail = _detail(http.post("/rekuest/assignments/", json=flood))
    assert "objects and arrays" in detail
