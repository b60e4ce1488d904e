"""Refuse requests whose ``Host`` header does not name this server (against DNS rebinding).

A web page on ``evil.example`` whose name is rebound to 127.0.0.1 can make the browser send
same-origin requests to a loopback server; they arrive with ``Host: evil.example``. Starlette's
``TrustedHostMiddleware`` does the same check but cannot parse IPv6 literals (``[::1]:8000``).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from arkitekt.protocol.hosts import host_of
from arkitekt.protocol.text import echo

__all__ = ["TrustedHosts"]


class TrustedHosts:
    """ASGI middleware: answer 400 (or close a websocket) unless the Host is one of ``hosts``.

    Args:
        app: the application to protect.
        hosts: the allowed host names or addresses; ``"*"`` allows any.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = {host_of(host) for host in hosts}
        self.any = "*" in self.hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = host_of(Headers(scope=scope).get("host", ""))
        if host in self.hosts:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await WebSocketClose(code=1008, reason="unknown Host")(scope, receive, send)
        else:
            message = (
                f"this server does not answer to the host {echo(host)}; reach it by one of "
                f"{', '.join(sorted(self.hosts))}, or add the name to `allowed_hosts`"
            )
            await PlainTextResponse(message, status_code=400)(scope, receive, send)
