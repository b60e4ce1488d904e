"""Grants: how an app obtains its configuration. Swappable before entering the app.

Example:
    >>> from arkitekt import easy
    >>> from arkitekt.fakts import StaticConfigGrant
    >>> app = easy("offline-app")
    >>> app.fakts.grant = StaticConfigGrant({"self": {"deployment_name": "offline"}})

:func:`default_grant` picks one from the settings: a static config (``fakts:`` in YAML) needs
no server; a static token (``FAKTS_TOKEN``) is redeemed; otherwise a device code is approved by
a person, and its claim token is cached so the next run needs no approval.

"""

from __future__ import annotations

import logging
import sys
import webbrowser
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import httpx

from arkitekt.errors import ConfigError, DiscoveryError, GrantError, ServerUnreachableError
from arkitekt.fakts._http import IDEMPOTENT, NO_AUTH, read_model
from arkitekt.fakts.cache import CacheEntry, TokenCache
from arkitekt.fakts.discovery import discover
from arkitekt.protocol.fakts import (
    ChallengeRequest,
    ChallengeResponse,
    ClaimRequest,
    ClaimResponse,
    Manifest,
    RedeemRequest,
    RedeemResponse,
    RetrieveRequest,
    StartRequest,
    StartResponse,
)
from arkitekt.settings import Settings

__all__ = [
    "CachedGrant",
    "ClaimGrant",
    "DeviceCodeGrant",
    "Grant",
    "GrantContext",
    "RetrieveGrant",
    "StaticConfigGrant",
    "StaticTokenGrant",
    "default_grant",
]

log = logging.getLogger("arkitekt.fakts")


@dataclass(frozen=True)
class GrantContext:
    """What a grant works with: the app's HTTP client, manifest, settings and token cache."""

    client: httpx.AsyncClient
    manifest: Manifest
    settings: Settings
    cache: TokenCache


class Grant(ABC):
    """Obtains the app's configuration (a dict of groups such as ``lok`` and ``mikro``)."""

    @abstractmethod
    async def aconfig(self, ctx: GrantContext) -> dict[str, Any]:
        """The configuration."""

    def forget(self, ctx: GrantContext) -> None:  # noqa: B027  (optional hook)
        """Drop whatever the grant remembers (the server no longer accepts it)."""


async def aclaim(ctx: GrantContext, entry: CacheEntry) -> dict[str, Any]:
    """Trade a claim token for the configuration at ``{base_url}claim/``.

    Raises:
        GrantError: the server refused the token (revoked, expired, unknown).

    """
    response = await ctx.client.post(
        entry.base_url + "claim/",
        json=ClaimRequest(token=entry.token).model_dump(),
        auth=NO_AUTH,
        extensions={IDEMPOTENT: True},  # claiming twice returns the same configuration
    )
    answer = read_model(response, ClaimResponse, "claim")
    if answer.status != "granted" or answer.config is None:
        raise GrantError(f"the server refused the claim: {answer.message or answer.status}")
    return answer.config


class ClaimGrant(Grant):
    """A grant that gets a claim token from a server, then claims the configuration."""

    @abstractmethod
    async def aclaim_token(self, ctx: GrantContext) -> CacheEntry:
        """The server's fakts root and a claim token for it."""

    async def aconfig(self, ctx: GrantContext) -> dict[str, Any]:
        """Get a claim token and claim the configuration with it."""
        return await aclaim(ctx, await self.aclaim_token(ctx))


async def _discover(ctx: GrantContext) -> str:
    settings = ctx.settings
    known = await discover(
        ctx.client,
        settings.url,
        per_url_timeout=settings.discovery_timeout,
        allow_insecure=settings.allow_insecure,
    )
    return known.base_url if known.base_url.endswith("/") else known.base_url + "/"


class DeviceCodeGrant(ClaimGrant):
    """Discover the server, ask for a device code and wait until a person approves it.

    The approval link is printed (and opened in a browser unless the app is headless).

    Args:
        open_browser: open the link in a browser; default: unless ``settings.headless``.
        poll_interval: seconds between polls of the challenge.

    """

    def __init__(self, *, open_browser: bool | None = None, poll_interval: float = 1.0) -> None:
        self.open_browser = open_browser
        self.poll_interval = poll_interval

    async def aclaim_token(self, ctx: GrantContext) -> CacheEntry:
        """Run the device-code flow until the code is approved."""
        base = await _discover(ctx)
        manifest = ctx.manifest
        request = StartRequest(manifest=manifest, expiration_time_seconds=300)
        response = await ctx.client.post(
            base + "start/", json=request.model_dump(mode="json"), auth=NO_AUTH
        )
        started = read_model(response, StartResponse, "start")
        if started.status != "granted" or not started.code:
            raise GrantError(f"the server did not start a grant: {started.message}")
        link = f"{base}configure/?device_code={started.code}&grant=device_code"
        timeout = ctx.settings.approval_timeout
        announced = False  # only ask a person if the server did not approve at once
        with anyio.move_on_after(timeout):
            while True:
                response = await ctx.client.post(
                    base + "challenge/",
                    json=ChallengeRequest(code=started.code).model_dump(),
                    auth=NO_AUTH,
                    extensions={IDEMPOTENT: True},  # a poll: asking twice changes nothing
                )
                answer = read_model(response, ChallengeResponse, "challenge")
                if answer.status == "granted" and answer.token:
                    return CacheEntry(base_url=base, token=answer.token)
                if answer.status == "denied":
                    raise GrantError(f"{manifest.identifier} was denied access at {base}")
                if answer.status == "error":
                    raise GrantError(f"the grant failed: {answer.message or 'unknown error'}")
                if not announced:
                    await self._announce(ctx, link, started.code)
                    announced = True
                await anyio.sleep(self.poll_interval)
        raise GrantError(
            f"{manifest.identifier} was not approved within {timeout:g} s; "
            f"approve it at {link} or raise approval_timeout"
        )

    async def _announce(self, ctx: GrantContext, link: str, code: str) -> None:
        print(
            f"arkitekt: approve {ctx.manifest.identifier}@{ctx.manifest.version} at {link}\n"
            f"          (or on the server: arkitekt approve {code})",
            file=sys.stderr,
            flush=True,
        )
        wanted = not ctx.settings.headless if self.open_browser is None else self.open_browser
        if wanted:
            await anyio.to_thread.run_sync(webbrowser.open, link)


class StaticTokenGrant(ClaimGrant):
    """Redeem a static token (``arkitekt token create``) for a claim token; no person needed.

    Args:
        token: the static token; default: ``settings.token`` (``FAKTS_TOKEN``).

    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token

    async def aclaim_token(self, ctx: GrantContext) -> CacheEntry:
        """Redeem the token."""
        token = self.token
        if token is None and ctx.settings.token is not None:
            token = ctx.settings.token.get_secret_value()
        if not token:
            raise ConfigError("StaticTokenGrant needs a token (easy(token=...) or FAKTS_TOKEN)")
        base = await _discover(ctx)
        request = RedeemRequest(manifest=ctx.manifest, token=token)
        response = await ctx.client.post(
            base + "redeem/", json=request.model_dump(mode="json"), auth=NO_AUTH
        )
        answer = read_model(response, RedeemResponse, "redeem")
        if answer.status != "granted" or not answer.token:
            raise GrantError(f"the server refused the token: {answer.message or answer.status}")
        return CacheEntry(base_url=base, token=answer.token)


class RetrieveGrant(ClaimGrant):
    """Get a claim token as a public app the server knows by identifier (no person needed)."""

    async def aclaim_token(self, ctx: GrantContext) -> CacheEntry:
        """Ask the server's ``retrieve/``."""
        base = await _discover(ctx)
        request = RetrieveRequest(manifest=ctx.manifest)
        response = await ctx.client.post(
            base + "retrieve/", json=request.model_dump(mode="json"), auth=NO_AUTH
        )
        answer = read_model(response, RedeemResponse, "retrieve")
        if answer.status != "granted" or not answer.token:
            raise GrantError(f"the server refused: {answer.message or answer.status}")
        return CacheEntry(base_url=base, token=answer.token)


class StaticConfigGrant(Grant):
    """A configuration given up front (``fakts:`` in YAML or the environment): no server.

    Args:
        config: the groups; default: ``settings.fakts``.

    """

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.config = config

    async def aconfig(self, ctx: GrantContext) -> dict[str, Any]:
        """Return the static configuration."""
        config = self.config if self.config is not None else ctx.settings.fakts
        if config is None:
            raise ConfigError("StaticConfigGrant needs a config (the `fakts:` setting)")
        return dict(config)


async def _claim_cached(ctx: GrantContext, entry: CacheEntry) -> dict[str, Any]:
    """Claim with a cached entry; if its server root is gone, discover where it is now, once.

    A server that moved (another port behind the same discovery URL) keeps its approvals, so
    the cached token is claimed at the new root, and the entry is updated.
    """
    try:
        return await aclaim(ctx, entry)
    except ServerUnreachableError as unreachable:
        try:
            base = await _discover(ctx)
        except DiscoveryError as error:
            raise DiscoveryError(
                f"the cached server root {entry.base_url} does not answer, and discovery found "
                f"no server either: {error}"
            ) from unreachable
        if base == entry.base_url:
            raise
        log.warning("the server moved from %s to %s; claiming there", entry.base_url, base)
    moved = CacheEntry(base_url=base, token=entry.token)
    config = await aclaim(ctx, moved)
    ctx.cache.store(moved)
    return config


class CachedGrant(Grant):
    """Reuse a cached claim token; run ``inner`` only when there is none or it stopped working.

    Args:
        inner: the grant that obtains a new claim token.

    """

    def __init__(self, inner: ClaimGrant) -> None:
        self.inner = inner

    async def aconfig(self, ctx: GrantContext) -> dict[str, Any]:
        """Claim with the cached token, else with a fresh one (which is then cached).

        Raises:
            ConfigError: the token cache cannot be used (its message names the path).
            DiscoveryError: the cached server does not answer, and discovery finds none.

        """
        entry = ctx.cache.load()
        if entry is not None:
            try:
                return await _claim_cached(ctx, entry)
            except GrantError as error:
                log.warning("the cached approval no longer works (%s); asking again", error)
                ctx.cache.delete()
        entry = await self.inner.aclaim_token(ctx)
        config = await aclaim(ctx, entry)
        ctx.cache.store(entry)
        return config

    def forget(self, ctx: GrantContext) -> None:
        """Delete the cached token."""
        ctx.cache.delete()
        self.inner.forget(ctx)


def default_grant(settings: Settings) -> Grant:
    """The grant the settings ask for: static config, static token, or a cached device code."""
    if settings.fakts is not None:
        return StaticConfigGrant()
    if settings.token is not None:
        return StaticTokenGrant()
    device = DeviceCodeGrant()
    return CachedGrant(device) if settings.cache else device
