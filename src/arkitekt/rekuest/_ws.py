"""Opening the rekuest websockets: URL from the claimed config, bearer token, insecure guard."""

from __future__ import annotations

from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from arkitekt.errors import ConfigError
from arkitekt.fakts._http import check_secure
from arkitekt.protocol.rekuest import MAX_FRAME_BYTES
from arkitekt.transport import Transport

__all__ = ["endpoint", "open_socket"]


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
