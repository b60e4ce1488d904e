"""The fakts grants: start, challenge, claim, redeem, retrieve (the routes call them).

What the operator does with approvals (decide, revoke, static tokens) is in
:mod:`arkitekt_server.fakts._admin`.

Protocol failures (unknown code, revoked token) are returned as ``status: "error"`` responses, as
fakts v1 clients expect; the functions raise only :class:`FaktsError` for operator commands.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.fakts import (
    ChallengeResponse,
    ClaimResponse,
    Manifest,
    RedeemResponse,
    StartRequest,
)
from arkitekt.protocol.text import echo
from arkitekt_server._db import utcnow
from arkitekt_server._errors import ArkitektServerError
from arkitekt_server._secrets import (
    derive_secret,
    hash_secret,
    new_code,
    new_secret,
    normalize_code,
)
from arkitekt_server._service import ServerService
from arkitekt_server._settings import ServerSettings
from arkitekt_server.fakts._models import AppClient, DeviceCode, StaticToken

__all__ = [
    "FaktsError",
    "TooManyPendingError",
    "build_config",
    "challenge",
    "claim",
    "find_code",
    "redeem",
    "retrieve",
    "start",
]

log = logging.getLogger("arkitekt_server.fakts")

_CLIENT_SECRET = "client_secret"  # noqa: S105  (a derivation label, not a secret)


class FaktsError(ArkitektServerError):
    """An operator command failed (unknown code, code already decided, ...)."""


class TooManyPendingError(ArkitektServerError):
    """As many device codes as allowed wait for a decision already (answered 429)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


async def _check_pending(
    session: AsyncSession, address: str | None, now: dt.datetime, settings: ServerSettings
) -> None:
    # open: not expired, not denied and not used yet (an approved code waits for its poll)
    waiting = (
        select(func.count())
        .select_from(DeviceCode)
        .where(
            DeviceCode.status != "denied",
            DeviceCode.consumed_at.is_(None),
            DeviceCode.expires_at > now,
        )
    )
    caps = [
        (waiting, settings.max_pending_device_codes, "on this server"),
        (
            waiting.where(DeviceCode.requested_from == address),
            settings.max_pending_device_codes_per_address,
            "from your address",
        ),
    ]
    for query, cap, where in caps:
        if (await session.scalar(query) or 0) >= cap:
            ttl = settings.device_code_ttl_seconds
            raise TooManyPendingError(
                f"{cap} device codes {where} are open already (waiting for a decision or "
                "for their app); ask the operator to decide them, or start again once they "
                f"expired (within {ttl:g} s)",
                ttl,
            )


def _later(now: dt.datetime, seconds: float) -> dt.datetime:
    return now + dt.timedelta(seconds=seconds)


async def find_code(session: AsyncSession, code: str) -> DeviceCode | None:
    """The device code row of a code as the user typed it, or ``None``."""
    return await session.scalar(
        select(DeviceCode).where(DeviceCode.code_hash == hash_secret(normalize_code(code)))
    )


async def start(
    session: AsyncSession,
    body: StartRequest,
    *,
    auto_approve: bool,
    settings: ServerSettings,
    address: str | None = None,
) -> str:
    """Create a device code for ``body.manifest``; approve it at once when ``auto_approve``.

    Args:
        session: the database session.
        body: what the app sent.
        auto_approve: approve the code at once (a loopback client with ``--auto-approve``).
        settings: the server's settings (caps and lifetimes).
        address: the client's address, recorded with the code and counted against the cap
            of codes waiting per address.

    Raises:
        TooManyPendingError: ``max_pending_device_codes`` codes (or
            ``max_pending_device_codes_per_address`` of ``address``) are open already: not
            expired, denied or used (auto-approved codes count until their app polls).
    """
    now = utcnow()
    await _check_pending(session, address, now, settings)
    code = new_code()
    ttl = min(float(body.expiration_time_seconds), settings.device_code_ttl_seconds)
    row = DeviceCode(
        code_hash=hash_secret(code),
        identifier=body.manifest.identifier,
        version=body.manifest.version,
        scopes=list(body.manifest.scopes),
        logo=body.manifest.logo,
        kind=body.requested_client_kind,
        redirect_uris=list(body.redirect_uris),
        requested_from=address,
        expires_at=_later(now, ttl),
    )
    if auto_approve:
        row.status, row.decided_at = "approved", now
        log.warning(
            "auto-approved %s@%s from a loopback client (--auto-approve)",
            body.manifest.identifier,
            body.manifest.version,
        )
    session.add(row)
    await session.commit()
    return code


def _new_client(
    manifest: Manifest | DeviceCode,
    *,
    via: str,
    claim_token: str,
    settings: ServerSettings,
    kind: str = "development",
    static_token_id: int | None = None,
) -> AppClient:
    now = utcnow()
    ttl = settings.claim_token_ttl_seconds
    return AppClient(
        client_id=secrets.token_hex(12),
        identifier=manifest.identifier,
        version=manifest.version,
        scopes=list(manifest.scopes),
        logo=manifest.logo,
        kind=kind,
        granted_via=via,
        claim_token_hash=hash_secret(claim_token),
        client_secret_hash=hash_secret(derive_secret(claim_token, _CLIENT_SECRET)),
        static_token_id=static_token_id,
        created_at=now,
        expires_at=_later(now, ttl) if ttl > 0 else None,
    )


async def challenge(
    session: AsyncSession, code: str, settings: ServerSettings
) -> ChallengeResponse:
    """Answer one poll of the device-code flow."""
    row = await find_code(session, code)
    now = utcnow()
    if row is None:
        return ChallengeResponse(status="error", message="unknown device code; start again")
    if row.status == "denied":
        return ChallengeResponse(status="denied", message="the request was denied")
    if row.consumed_at is not None:
        return ChallengeResponse(status="error", message="this device code was already used")
    if row.expires_at <= now:
        return ChallengeResponse(status="error", message="the device code expired; start again")
    if row.status != "approved":
        return ChallengeResponse(status="pending" if row.seen_at else "waiting")
    # Consume the code atomically: of concurrent polls, exactly one wins and gets a token.
    consumed = await session.execute(
        update(DeviceCode)
        .where(DeviceCode.id == row.id, DeviceCode.consumed_at.is_(None))
        .values(consumed_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(consumed, "rowcount", 0) != 1:
        await session.rollback()
        return ChallengeResponse(status="error", message="this device code was already used")
    claim_token = new_secret()
    client = _new_client(row, via="device_code", claim_token=claim_token, settings=settings)
    client.kind = row.kind
    session.add(client)
    await session.flush()
    await session.execute(
        update(DeviceCode).where(DeviceCode.id == row.id).values(client_pk=client.id)
    )
    await session.commit()
    return ChallengeResponse(status="granted", token=claim_token)


async def _client_of(session: AsyncSession, claim_token: str) -> AppClient | None:
    return await session.scalar(
        select(AppClient).where(AppClient.claim_token_hash == hash_secret(claim_token))
    )


def build_config(
    client: AppClient,
    claim_token: str,
    base: str,
    settings: ServerSettings,
    services: Iterable[ServerService],
) -> dict[str, Any]:
    """The claimed config: ``self``, ``lok`` and every service's group, URLs under ``base``."""
    config: dict[str, Any] = {
        "self": {"deployment_name": settings.deployment_name, "base_url": base},
        "lok": {
            "base_url": base + "lok",
            "name": settings.deployment_name,
            "client_id": client.client_id,
            "client_secret": derive_secret(claim_token, _CLIENT_SECRET),
            "grant_type": "client-credentials",
            "scopes": list(client.scopes),
            "token_url": base + "lok/token/",
            "userinfo_url": base + "lok/userinfo/",
        },
    }
    for service in services:
        if service.config is not None:
            config[service.name] = service.config(base, settings)
    return config


async def claim(
    session: AsyncSession,
    token: str,
    base: str,
    settings: ServerSettings,
    services: Sequence[ServerService],
) -> ClaimResponse:
    """Trade a claim token for the config."""
    client = await _client_of(session, token)
    if client is None:
        return ClaimResponse(status="error", message="unknown claim token")
    if not client.usable(utcnow()):
        return ClaimResponse(status="error", message="this approval was revoked or expired")
    return ClaimResponse(
        status="granted", config=build_config(client, token, base, settings, services)
    )


async def redeem(
    session: AsyncSession, manifest: Manifest, token: str, settings: ServerSettings
) -> RedeemResponse:
    """Trade a static token (``arkitekt token create``) for a claim token.

    The claim token is derived from the static token, so every redeem of one token answers the
    same claim token and reuses one client.
    """
    static = await session.scalar(
        select(StaticToken).where(StaticToken.token_hash == hash_secret(token))
    )
    if static is None or static.revoked_at is not None:
        return RedeemResponse(status="error", message="unknown or revoked token")
    if static.identifier != manifest.identifier or (
        static.version is not None and static.version != manifest.version
    ):
        wanted = static.identifier + (f"@{static.version}" if static.version else "")
        theirs = echo(manifest.identifier)
        return RedeemResponse(
            status="error", message=f"this token is for app {echo(wanted)}, not {theirs}"
        )
    claim_token = derive_secret(token, f"claim:{manifest.identifier}:{manifest.version}")
    client = await _client_of(session, claim_token)
    if client is None:
        session.add(
            _new_client(
                manifest, via="redeem", claim_token=claim_token, settings=settings,
                static_token_id=static.id,
            )
        )  # fmt: skip
        try:
            await session.commit()
        except IntegrityError:  # a concurrent redeem of this token (any replica) made it first
            await session.rollback()
            client = await _client_of(session, claim_token)
    if client is not None and not client.usable(utcnow()):
        return RedeemResponse(status="error", message="the approval of this token was revoked")
    return RedeemResponse(status="granted", token=claim_token)


async def retrieve(
    session: AsyncSession, manifest: Manifest, settings: ServerSettings
) -> RedeemResponse:
    """Grant a claim token to a pre-registered public app (``public_apps`` setting)."""
    if manifest.identifier not in settings.public_apps:
        return RedeemResponse(
            status="error",
            message=f"{echo(manifest.identifier)} is not a public app of this server",
        )
    claim_token = new_secret()
    session.add(_new_client(manifest, via="retrieve", claim_token=claim_token, settings=settings))
    await session.commit()
    return RedeemResponse(status="granted", token=claim_token)
