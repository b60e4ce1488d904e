"""Opening the rekuest websockets: URL from the claimed config, bearer token, insecure guard.

Both client sides (the agent and the caller) open their socket through :func:`open_authorised`:
a token the server refuses (revoked, or expired early) is refreshed and tried once more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from arkitekt._http import check_secure
from arkitekt.errors import ConfigError
from arkitekt.protocol.rekuest import CLOSE_TOKEN_REFUSED, MAX_FRAME_BYTES
from arkitekt.transport import Transport

__all__ = ["endpoint", "open_authorised", "open_socket"]

_T = TypeVar("_T")


async def endpoint(transport: Transport, role: str) -> str:
    """The websocket URL of ``role`` (``"agent"`` or ``"caller"``) from the ``rekuest`` group.

    Raises:
        ConfigError: the server's config names no such endpoint.

    """
    group = await transport.agroup("rekuest")
    entry: Any = group.get(role)
    url = entry.get("endpoint_url") if isinstance(entry, dict) else None
    if not url and role == "caller":
        agent = group.get("agent")
        if isinstance(agent, dict) and str(agent.get("endpoint_url", "")).endswith("agent/ws"):
            url = str(agent["endpoint_url"]).removesuffix("agent/ws") + "caller/ws"
    if not url:
        raise ConfigError(f"the server's 'rekuest' config has no {role} endpoint_url")
    return str(url)


async def open_socket(transport: Transport, url: str, token: str | None = None) -> ClientConnection:
    """Connect a websocket to ``url`` with the app's bearer token.

    Args:
        transport: the app's transport (config, tokens, settings).
        url: a ``ws://`` or ``wss://`` URL.
        token: a token to use instead of the cached one (after a refresh).

    """
    check_secure(
        httpx.URL(url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)),
        transport.settings.allow_insecure,
    )
    token = token or await transport.atoken()
    return await connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        compression=None,
        max_size=MAX_FRAME_BYTES,
        open_timeout=transport.settings.timeout,
        ping_interval=20,
        ping_timeout=20,
    )


async def open_authorised(transport: Transport, open: Callable[[str], Awaitable[_T]]) -> _T:
    """``open(token)`` with the app's token; once more with a fresh one if the server refuses it.

    Args:
        transport: the app's transport (its token, and the refresh).
        open: connects with a token and waits for the server's first answer; the server
            refuses a token by closing with :data:`~arkitekt.protocol.rekuest.CLOSE_TOKEN_REFUSED`.

    Raises:
        ConnectionClosed: the server closed the socket for another reason, or refused the
            fresh token too.

    """
    token = await transport.atoken()
    try:
        return await open(token)
    except ConnectionClosed as closed:
        if closed.rcvd is None or closed.rcvd.code != CLOSE_TOKEN_REFUSED:
            raise
    return await open(await transport.arefresh(token))
