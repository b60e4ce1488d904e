from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from arkitekt_server import EmbeddedServer
from arkitekt_server._operator import OPERATOR_COOKIE, operator_secret

MANIFEST = {"identifier": "flow-app", "version": "1.0", "scopes": ["read", "write"]}


class Fakts:
    """A raw fakts v1 client (what any fakts client sends), for testing the server's side."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=10)

    def start(self, manifest: dict[str, Any] | None = None) -> str:
        answer = self.http.post("/f/start/", json={"manifest": manifest or MANIFEST}).json()
        assert answer["status"] == "granted"
        return str(answer["code"])

    def challenge(self, code: str) -> dict[str, Any]:
        response = self.http.post("/f/challenge/", json={"code": code})
        assert response.status_code == 200
        return dict(response.json())

    def claim(self, token: str) -> dict[str, Any]:
        response = self.http.post("/f/claim/", json={"token": token})
        assert response.status_code == 200
        return dict(response.json())

    def sign_in(self, secret: str | None = None, code: str = "X") -> httpx.Response:
        """Sign in as the operator (with the server's operator secret unless given)."""
        secret = secret if secret is not None else operator_secret(self.server.settings)
        return self.http.post("/f/signin/", data={"device_code": code, "secret": secret})

    def page(self, code: str, *, sign_in: bool = True) -> tuple[httpx.Response, str]:
        """The approval page of ``code`` and the nonce of its form ("" when there is none)."""
        if sign_in and OPERATOR_COOKIE not in self.http.cookies:
            assert self.sign_in().status_code == 303
        response = self.http.get("/f/configure/", params={"device_code": code})
        marker = "name='nonce' value='"
        start = response.text.find(marker)
        nonce = response.text[start + len(marker) :].split("'", 1)[0] if start >= 0 else ""
        return response, nonce

    def decide(self, code: str, action: str) -> httpx.Response:
        _, nonce = self.page(code)
        return self.http.post(
            "/f/configure/", data={"device_code": code, "nonce": nonce, "action": action}
        )

    def approved_config(self, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
        code = self.start(manifest)
        assert self.decide(code, "approve").status_code == 200
        token = self.challenge(code)["token"]
        return dict(self.claim(token)["config"])

    def auto_bearer(self, identifier: str = "bearer-fixture") -> str:
        """A bearer token from an auto-approving server (no decision needed)."""
        code = self.start({"identifier": identifier, "version": "1", "scopes": ["read"]})
        return self.bearer(self.claim(self.challenge(code)["token"])["config"])

    def bearer(self, config: dict[str, Any]) -> str:
        lok = config["lok"]
        response = self.http.post(
            lok["token_url"],
            data={"grant_type": "client_credentials"},
            auth=(lok["client_id"], lok["client_secret"]),
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
def manual_server(server_factory: Callable[..., EmbeddedServer]) -> EmbeddedServer:
    """A server that does not auto-approve: a person (page or CLI) must decide."""
    return server_factory(auto_approve=False)


@pytest.fixture
def fakts_for() -> Iterator[Callable[[EmbeddedServer], Fakts]]:
    """Raw fakts clients for a server: ``fakts_for(server)``."""
    made: list[Fakts] = []

    def build(server: EmbeddedServer) -> Fakts:
        made.append(Fakts(server))
        return made[-1]

    yield build
    for client in made:
        client.http.close()


@pytest.fixture
def fakts(manual_server: EmbeddedServer, fakts_for: Callable[[EmbeddedServer], Fakts]) -> Fakts:
    return fakts_for(manual_server)


@pytest.fixture
def bearer(server: EmbeddedServer, fakts_for: Callable[[EmbeddedServer], Fakts]) -> str:
    """A valid bearer token on the (auto-approving) session server."""
    return fakts_for(server).auto_bearer()


@pytest.fixture
def manifest() -> dict[str, Any]:
    return dict(MANIFEST)
