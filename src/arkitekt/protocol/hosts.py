"""Host names: which host a URL or ``Host`` header names, and whether it is this machine.

Shared by the client (its plain-http guard, local-disk image reads) and the server (its
``Host`` check against DNS rebinding, auto-approval of loopback clients).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["host_of", "is_loopback"]


def host_of(value: str) -> str:
    """The host a URL or a ``Host`` header names: lowercased, without port or IPv6 brackets.

    A bare IPv6 address (``::1``) is returned as it is.

    Example:
        >>> host_of("https://Lab.example.org:8443/x"), host_of("[::1]:8000"), host_of("::1")
        ('lab.example.org', '::1', '::1')

    """
    authority = value.strip().lower()
    if "://" in authority:
        authority = urlsplit(authority).netloc.rpartition("@")[2]
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address, ``localhost`` or a ``*.localhost`` name) is this machine."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
