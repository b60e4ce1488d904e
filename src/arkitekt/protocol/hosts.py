"""Host names and server URLs: which host a URL names, and the one spelling of a server's URL.

:func:`host_of` and :func:`is_loopback` tell which host a URL or ``Host`` header names and
whether it is this machine; :func:`discovery_url` checks the URL an app discovers its server at
and gives it one spelling. Shared by the client (its plain-http guard, local-disk image reads,
the URL an app is configured with) and the server (its ``Host`` check against DNS rebinding,
auto-approval of loopback clients).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from arkitekt.protocol.text import echo

__all__ = ["discovery_url", "host_of", "is_loopback"]

_SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EXAMPLES = "like https://lab.example.org or http://127.0.0.1:8000"
_URL_ECHO = 100  # a URL is longer than most inputs a message repeats


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


def discovery_url(value: str) -> str:
    """``value``, the URL an app discovers its server at, in its one spelling.

    Spellings of one server give one string, so what is remembered per URL (an app's
    approval) is found whichever was typed: the scheme and host are lowercased, a default
    port (80 for http, 443 for https) and trailing slashes are dropped. Without a scheme (tried
    as https, then http) the value must still look like an address: a name with a dot,
    ``localhost``, an IP address, or any host with a port.

    Example:
        >>> discovery_url("HTTP://Lab.Example.org:80/"), discovery_url("127.0.0.1:8000/")
        ('http://lab.example.org', '127.0.0.1:8000')

    Raises:
        ValueError: not an http(s) URL of a server; the message shows the value (without a
            password in it) and what a valid one looks like.

    """
    text = value.strip()
    scheme, has_scheme, rest = text.partition("://")
    if not has_scheme:
        scheme, rest = "", text
    scheme = scheme.lower()
    try:
        parts = urlsplit("//" + rest)
        port = parts.port
    except ValueError:
        why = "its port is not a number from 1 to 65535" if has_scheme else "it names no server"
        raise ValueError(_not_a_url(text, why)) from None
    if has_scheme and not scheme:
        raise ValueError(_not_a_url(text, "nothing before ://"))
    if has_scheme and scheme not in _SCHEMES:
        raise ValueError(
            f"{_shown(text)} uses the scheme {scheme!r}; arkitekt talks http and https only: "
            f"give a URL {_EXAMPLES}"
        )
    if "@" in parts.netloc:
        raise ValueError(
            f"{_shown(text)} holds a user name or password (user:password@); give the "
            "server's address alone and log in with `arkitekt login` or a token (FAKTS_TOKEN)"
        )
    if parts.query or parts.fragment or "?" in rest or "#" in rest:
        raise ValueError(_not_a_url(text, "a server's address has no ?query or #fragment"))
    host = (parts.hostname or "").lower()
    if port == 0:
        raise ValueError(_not_a_url(text, "its port is not a number from 1 to 65535"))
    if not _is_host(host) or not (has_scheme or port is not None or _looks_like_address(host)):
        raise ValueError(_not_a_url(text, "it names no server"))
    shown_host = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        shown_host += f":{port}"
    path = parts.path.rstrip("/")
    return f"{scheme}://{shown_host}{path}" if has_scheme else f"{shown_host}{path}"


def _shown(text: str) -> str:
    """``text`` as a message shows it: cut short, a password in it replaced by ``***``."""
    scheme, has_scheme, rest = text.partition("://")
    authority, slash, tail = rest.partition("/")
    if has_scheme and "@" in authority:
        text = f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{tail}"
    elif not has_scheme and "@" in text.partition("/")[0]:
        text = "***@" + text.partition("@")[2]
    return echo(text, _URL_ECHO)


def _not_a_url(text: str, why: str) -> str:
    return f"{_shown(text)} is not a URL of a server ({why}): give one {_EXAMPLES}"


def _is_host(host: str) -> bool:
    """Whether ``host`` is an IP address or a name made of valid labels."""
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.removesuffix(".").split(".")
    return len(host) <= 253 and all(
        0 < len(label) <= 63
        and not label.startswith("-")
        and not label.endswith("-")
        and all(char.isalnum() or char in "-_" for char in label)
        for label in labels
    )


def _looks_like_address(host: str) -> bool:
    """Whether a host given without scheme or port reads as an address rather than a word."""
    if host == "localhost" or "." in host.strip("."):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
