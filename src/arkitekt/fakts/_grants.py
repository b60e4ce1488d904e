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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import httpx

from arkitekt._http import IDEMPOTENT, NO_AUTH, read_model
from arkitekt._settings import Settings
from arkitekt.errors import ConfigError, DiscoveryError, GrantError, ServerUnreachableError
from arkitekt.fakts._cache import CacheEntry, TokenCache
from arkitekt.fakts._discovery import discover
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

_MAX_POLL_SECONDS = 60.0  # a device code expires after 300 s
_MAX_TOKEN_CHARS = 4096


def _seconds(value: Any, argument: str, high: float) -> float:
    """A duration in seconds: a finite number in (0, ``high``]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{argument} must be a number of seconds, not {value!r}")
    if not 0 < value <= high:
        raise ConfigError(f"{argument} must be more than 0 and at most {high:g} s, not {value!r}")
    return float(value)


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
        if open_browser is not None and not isinstance(open_browser, bool):
            raise ConfigError(f"open_browser must be True, False or None, not {open_browser!r}")
        self.open_browser = open_browser
        self.poll_interval = _seconds(poll_interval, "poll_interval", _MAX_POLL_SECONDS)

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
                    # Not idempotent: the poll that is answered "granted" uses the code up, so
                    # a resend after a lost answer could only hear "already used".
                    auth=NO_AUTH,
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
        if token is not None and (
            not isinstance(token, str)
            or not 0 < len(token) <= _MAX_TOKEN_CHARS
            or not token.isprintable()
            or token != token.strip()
        ):
            shown = f"a str of {len(token)} characters" if isinstance(token, str) else repr(token)
            raise ConfigError(
                f"token must be the static token `arkitekt token create` printed (printable, "
                f"no spaces around it, at most {_MAX_TOKEN_CHARS} characters), not {shown}"
            )
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
        if config is not None:
            if not isinstance(config, Mapping):
                raise ConfigError(
                    f"config must be a dict of groups (e.g. {{'lok': {{...}}}}), not "
                    f"{type(config).__name__}"
                )
            for group, values in config.items():
                if not isinstance(group, str) or not isinstance(values, Mapping):
                    raise ConfigError(
                        f"config[{group!r}] must be a dict (a group of settings) under a str "
                        f"name, not {type(values).__name__}"
                    )
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
        if not isinstance(inner, ClaimGrant):
            raise ConfigError(
                f"inner must be a grant that obtains a claim token (DeviceCodeGrant, "
                f"StaticTokenGrant, RetrieveGrant), not {type(inner).__name__}"
            )
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
