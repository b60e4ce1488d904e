"""Bad JSON and wrong fields on every fakts endpoint: a clear 4xx, never a 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest

from arkitekt.protocol.fakts import (
    MAX_LOGO_CHARS,
    MAX_REDIRECT_URIS,
    MAX_SCOPE_CHARS,
    MAX_SCOPES,
    MAX_URI_CHARS,
    MAX_VERSION_CHARS,
)
from arkitekt_server import EmbeddedServer


@pytest.fixture
def fakts(server: EmbeddedServer, fakts_for: Any) -> Any:
    """These tests change nothing: the shared session server will do."""
    return fakts_for(server)


ENDPOINTS = ["/f/start/", "/f/challenge/", "/f/claim/", "/f/retrieve/", "/f/redeem/"]
BODIES: list[tuple[str, bytes]] = [
    ("not json", b"{manifest: nope"),
    ("empty", b""),
    ("a list", b"[1, 2]"),
    ("wrong fields", b'{"hello": "world"}'),
    ("wrong types", b'{"manifest": 7, "code": [], "token": {}}'),
    ("manifest without version", b'{"manifest": {"identifier": "x"}}'),
]
SPECIFIC: list[tuple[str, bytes]] = [
    (
        "/f/start/",
        b'{"manifest": {"identifier": "x", "version": "1"}, "expiration_time_seconds": 1e12}',
    ),
    ("/f/start/", b'{"manifest": {"identifier": "", "version": "1"}}'),
    (
        "/f/start/",
        b'{"manifest": {"identifier": "x", "version": "1"}, "requested_client_kind": "robot"}',
    ),
    ("/f/challenge/", b'{"code": ""}'),
    ("/f/claim/", b'{"token": ""}'),
    ("/f/redeem/", b'{"manifest": {"identifier": "x", "version": "1"}}'),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(("label", "body"), BODIES, ids=[label for label, _ in BODIES])
def test_bad_bodies_get_a_clear_4xx(fakts: Any, endpoint: str, label: str, body: bytes) -> None:
    response = fakts.http.post(endpoint, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (label, response.status_code, response.text)
    detail = response.json()["detail"]
    assert detail, label
    assert isinstance(detail, list)
    assert {"loc", "msg"} <= set(detail[0])


@pytest.mark.parametrize(("endpoint", "body"), SPECIFIC)
def test_wrong_values_get_a_clear_4xx(fakts: Any, endpoint: str, body: bytes) -> None:
    response = fakts.http.post(endpoint, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"]


def test_the_approval_form_rejects_missing_fields(fakts: Any) -> None:
    response = fakts.http.post("/f/configure/", data={"device_code": "X"})
    assert response.status_code == 422
    bad_action = fakts.http.post(
        "/f/configure/", data={"device_code": "X", "nonce": "n", "action": "maybe"}
    )
    assert bad_action.status_code == 422
    assert fakts.http.get("/f/configure/").status_code == 400


_FIT = {"identifier": "x", "version": "1"}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"scopes": ["s"] * (MAX_SCOPES + 1)}, ["body", "manifest", "scopes"]),
        ({"scopes": ["s" * (MAX_SCOPE_CHARS + 1)]}, ["body", "manifest", "scopes", 0]),
        ({"logo": "l" * (MAX_LOGO_CHARS + 1)}, ["body", "manifest", "logo"]),
        ({"identifier": "i" * 201}, ["body", "manifest", "identifier"]),
        ({"version": "v" * 101}, ["body", "manifest", "version"]),
        ({"identifier": "a\0b"}, ["body", "manifest", "identifier"]),
        ({"scopes": ["read", "\0"]}, ["body", "manifest", "scopes", 1]),
    ],
)
def test_a_manifest_beyond_its_bounds_is_422_naming_the_field(
    fakts: Any, change: dict[str, Any], loc: list[Any]
) -> None:
    response = fakts.http.post("/f/start/", json={"manifest": _FIT | change})
    assert response.status_code == 422, response.text
    assert [problem["loc"] for problem in response.json()["detail"]] == [loc]


@pytest.mark.parametrize(
    "uris", [["u"] * (MAX_REDIRECT_URIS + 1), ["u" * (MAX_URI_CHARS + 1)]], ids=["many", "long"]
)
def test_redirect_uris_are_bounded(fakts: Any, uris: list[str]) -> None:
    response = fakts.http.post("/f/start/", json={"manifest": _FIT, "redirect_uris": uris})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", "redirect_uris"]


def test_the_largest_manifest_makes_a_small_row(fakts: Any) -> None:
    largest = {
        "identifier": "i" * 200,
        "version": "v" * MAX_VERSION_CHARS,
        "scopes": ["s" * MAX_SCOPE_CHARS] * MAX_SCOPES,
        "logo": "l" * MAX_LOGO_CHARS,
    }
    body = {"manifest": largest, "redirect_uris": ["u" * MAX_URI_CHARS] * MAX_REDIRECT_URIS}
    assert len(json.dumps(body)) < 8 << 10  # what a code's row holds at most
    assert fakts.http.post("/f/start/", json=body).json()["status"] == "granted"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("identifier", "evil\x1b]0;pwned\x07"),
        ("identifier", "evil\nINFO arkitekt_server: org.trusted approved"),
        ("identifier", "\u202eppa.reweiv.bal.gro"),
        ("identifier", "org lab viewer"),
        ("version", "1.0 - verified by your IT admin, safe to approve"),
        ("version", "1.0\u2066"),
        ("scopes", ["read\r\nwrite"]),
    ],
)
def test_a_manifest_cannot_carry_what_would_fool_the_operator(
    fakts: Any, field: str, value: Any
) -> None:
    """Names are shown as they are, on the page, in the CLI and in logs: no terminal escapes,
    forged log lines, text-direction tricks or messages hidden in a version."""
    response = fakts.http.post("/f/start/", json={"manifest": {**_FIT, field: value}})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:3] == ["body", "manifest", field]
