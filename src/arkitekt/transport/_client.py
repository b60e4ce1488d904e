"""The transport resource: the app's ``httpx.AsyncClient`` with OAuth2 bearer tokens.

Opened lazily on the first service call inside the scope and closed with it. The first request
that needs a token runs the fakts grant (once, however many calls race for it), exchanges the
claimed ``lok`` client credentials for a bearer token, and refreshes it before it expires and
when the server answers 401. If the server no longer accepts the approval itself (revoked or
expired), the grant runs again, once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from pydantic import ValidationError

from arkitekt._http import IDEMPOTENT, check_secure
from arkitekt._settings import Settings
from arkitekt.errors import BridgeError, ConfigError, GrantError
from arkitekt.fakts import Fakts
from arkitekt.protocol.fakts import TokenResponse
from arkitekt.transport._sync import SyncTransport
from arkitekt.transport._wire import ACCEPT_ENCODING, MAX_BODY, BoundedTransport

__all__ = ["IDEMPOTENT", "MAX_BODY", "Transport", "blocking_client", "open_transport"]

log = logging.getLogger("arkitekt.transport")

# Refresh a bearer token this many seconds before it expires.
_REFRESH_MARGIN = 30.0


class Transport:
    """The app's HTTP client and the configuration and tokens it needs.

    Services resolve it per call (``await self._transport()``), then use :attr:`client`, whose
    requests carry the bearer token automatically.

    Attributes:
        client: an ``httpx.AsyncClient`` bound to the app's loop.

    """

    def __init__(self, client: httpx.AsyncClient, fakts: Fakts, settings: Settings) -> None:
        self.client = client
        self.fakts = fakts
        self.settings = settings
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # built off a loop (tests): no blocking client's token fetches
            self._loop = None
        self._blocking: httpx.Client | None = None
        self._blocking_lock = threading.Lock()
        self._config: dict[str, Any] | None = None
        self._config_lock = anyio.Lock()
        self._token_lock = anyio.Lock()
        self._token: str | None = None
        self._expires = 0.0
        self._regranted = False

    async def aconfig(self) -> dict[str, Any]:
        """The claimed configuration; the first call runs the grant."""
        if self._config is None:
            async with self._config_lock:
                if self._config is None:
                    self._config = await self.fakts.aload(self.client)
        return self._config

    async def agroup(self, name: str) -> dict[str, Any]:
        """One group of the configuration (``"mikro"``, ``"rekuest"``, ...).

        Raises:
            ConfigError: the server's configuration has no such group.

        """
        config = await self.aconfig()
        group = config.get(name)
        if not isinstance(group, dict):
            raise ConfigError(
                f"the server's configuration has no {name!r} group (it has: "
                f"{', '.join(sorted(config)) or 'none'}); does this server offer {name}?"
            )
        return group

    async def atoken(self) -> str:
        """A valid bearer token (fetched or refreshed when needed)."""
        token = self._token
        if token is not None and time.monotonic() < self._expires - _REFRESH_MARGIN:
            return token
        async with self._token_lock:
            if self._token is not None and time.monotonic() < self._expires - _REFRESH_MARGIN:
                return self._token
            return await self._fetch()

    async def arefresh(self, stale: str | None) -> str:
        """A new bearer token, unless another call already replaced ``stale``."""
        async with self._token_lock:
            if self._token is not None and self._token != stale:
                return self._token
            return await self._fetch()

    def blocking(self) -> httpx.Client:
        """The app's blocking client, for many large requests from worker threads.

        Its requests carry the bearer token and have the bounds of :attr:`client` (the
        timeout as a total deadline, answer size limits after decoding, one retry of a dropped
        connection). Use it only off the app's event loop (e.g. in ``asyncio.to_thread``); a
        token it lacks is fetched on the app's loop. It closes with the app's scope.
        """
        with self._blocking_lock:
            if self._blocking is None:
                allow = self.settings.allow_insecure

                def guard(request: httpx.Request) -> None:
                    check_secure(request.url, allow)

                self._blocking = httpx.Client(
                    timeout=self.settings.timeout,
                    headers={"Accept-Encoding": ACCEPT_ENCODING},
                    event_hooks={"request": [guard]},
                    transport=SyncTransport(),
                    auth=_BlockingBearerAuth(self),
                )
            return self._blocking

    def on_loop(self, fn: Any, *args: Any) -> Any:
        """Run the coroutine function ``fn(*args)`` on the app's loop from another thread.

        Raises:
            BridgeError: called on the app's loop, or the loop did not run it within the
                ``timeout`` setting (it is blocked: compute image data off the loop).

        """
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if self._loop is None or running is self._loop:
            raise BridgeError("the app's blocking client was used on the app's event loop")
        future = asyncio.run_coroutine_threadsafe(fn(*args), self._loop)
        try:
            return future.result(self.settings.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise BridgeError(
                f"the app's event loop did not answer within {self.settings.timeout:g} s (is it "
                "blocked? in async code compute image data off the loop: "
                "`await anyio.to_thread.run_sync(lambda: image.data.values)`)"
            ) from None

    def close_blocking(self) -> None:
        """Close the blocking client (when the app's scope ends)."""
        with self._blocking_lock:
            if self._blocking is not None:
                self._blocking.close()
                self._blocking = None

    async def _fetch(self) -> str:
        try:
            return await self._exchange(await self.agroup("lok"))
        except GrantError:
            if self._regranted or self.fakts.settings.fakts is not None:
                raise
            self._regranted = True  # once: a revoked or expired approval asks again
            log.warning("the server no longer accepts this app's approval; asking again")
            async with self._config_lock:
                self._config = await self.fakts.aload(self.client, fresh=True)
            return await self._exchange(await self.agroup("lok"))

    async def _exchange(self, lok: dict[str, Any]) -> str:
        try:
            url = lok.get("token_url") or str(lok["base_url"]).rstrip("/") + "/token/"
            credentials = (str(lok["client_id"]), str(lok["client_secret"]))
        except KeyError as error:
            raise ConfigError(f"the 'lok' group lacks {error.args[0]!r}") from None
        data = {"grant_type": "client_credentials"}
        if lok.get("scopes"):
            data["scope"] = " ".join(lok["scopes"])
        response = await self.client.post(  # a second token for the same client is harmless
            url, data=data, auth=httpx.BasicAuth(*credentials), extensions={IDEMPOTENT: True}
        )
        if response.status_code in (400, 401):
            raise GrantError(f"the token endpoint {url} refused the client: {response.text[:200]}")
        if response.is_error:
            raise GrantError(f"the token endpoint {url} answered HTTP {response.status_code}")
        try:
            answer = TokenResponse.model_validate_json(response.content)
        except ValidationError:
            raise GrantError(
                f"the token endpoint {url} did not answer an OAuth2 token: {response.text[:200]}"
            ) from None
        self._token = answer.access_token
        self._expires = time.monotonic() + answer.expires_in
        return answer.access_token


class _BearerAuth(httpx.Auth):
    """Adds the bearer token; on 401, refreshes it and retries once."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        raise RuntimeError("the arkitekt transport is async only (see Transport.blocking)")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.transport.atoken()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = await self.transport.arefresh(token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


class _BlockingBearerAuth(httpx.Auth):
    """:class:`_BearerAuth` for the blocking client: tokens come from the app's loop."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _token(self) -> str:
        transport = self._transport
        token = transport._token
        if token is not None and time.monotonic() < transport._expires - _REFRESH_MARGIN:
            return token
        return str(transport.on_loop(transport.atoken))

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        token = self._token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = self._transport.on_loop(self._transport.arefresh, token)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise RuntimeError("the blocking client is sync only")
        yield request  # pragma: no cover


def blocking_client(client: httpx.AsyncClient) -> httpx.Client | None:
    """The app's blocking client beside its async ``client`` (None for any other client)."""
    auth = client.auth
    return auth.transport.blocking() if isinstance(auth, _BearerAuth) else None


@asynccontextmanager
async def open_transport(fakts: Fakts, settings: Settings) -> AsyncIterator[Transport]:
    """Open the app's HTTP client; it closes when the app scope ends."""
    allow = settings.allow_insecure

    async def guard(request: httpx.Request) -> None:
        check_secure(request.url, allow)

    async with httpx.AsyncClient(
        timeout=settings.timeout,
        headers={"Accept-Encoding": ACCEPT_ENCODING},
        event_hooks={"request": [guard]},
        transport=BoundedTransport(),
    ) as client:
        transport = Transport(client, fakts, settings)
        client.auth = _BearerAuth(transport)
        try:
            yield transport
        finally:
            transport.close_blocking()
