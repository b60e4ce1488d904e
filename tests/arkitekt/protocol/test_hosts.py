"""One way to read a host out of a URL or a ``Host`` header, and to tell loopback."""

from __future__ import annotations

import pytest

from arkitekt.protocol.hosts import host_of, is_loopback


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("https://Lab.example.org:8443/x", "lab.example.org"),
        ("http://user:pw@lab.example.org/", "lab.example.org"),
        ("https://[::1]:8443/x", "::1"),
        ("lab.example.org:8000", "lab.example.org"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8000", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("", ""),
    ],
)
def test_host_of_urls_and_host_headers(value: str, host: str) -> None:
    assert host_of(value) == host


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("app.localhost", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("10.0.0.1", False),
        ("lab.example.org", False),
        ("", False),
        (None, False),
    ],
)
def test_is_loopback(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback
