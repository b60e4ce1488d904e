"""The URLs of the server: the root a request reached it at, and the websocket twin of a URL."""

from __future__ import annotations

from fastapi import Request

from arkitekt_server._settings import ServerSettings

__all__ = ["base_url", "ws_url"]


def base_url(request: Request) -> str:
    """The server's root URL as the client reached it (or the configured public URL), with ``/``."""
    settings: ServerSettings = request.app.state.settings
    if settings.public_url is not None:
        return settings.public_url + "/"
    return str(request.base_url)


def ws_url(http_url: str) -> str:
    """The websocket twin of an http(s) URL."""
    if http_url.startswith("https://"):
        return "wss://" + http_url.removeprefix("https://")
    return "ws://" + http_url.removeprefix("http://")
