"""What the operator and the housekeeping do with approvals: decide a device code, revoke,
make static tokens, list approvals, prune what expired. Shared by the approval page and the CLI.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.text import echo
from arkitekt_server._db import utcnow
from arkitekt_server._secrets import hash_secret, new_secret, normalize_code
from arkitekt_server.fakts._logic import FaktsError, find_code
from arkitekt_server.fakts._models import AccessToken, AppClient, DeviceCode, StaticToken

__all__ = ["create_static_token", "decide", "list_clients", "prune", "revoke"]


async def decide(session: AsyncSession, code: str, *, approve: bool) -> DeviceCode:
    """Approve or deny a device code (from the approval page or ``arkitekt approve``).

    Raises:
        FaktsError: the code is unknown, expired or already decided.
    """
    row = await find_code(session, code)
    if row is None:
        raise FaktsError(f"unknown device code {echo(normalize_code(code))}")
    if row.expires_at <= utcnow():
        raise FaktsError("the device code expired; the app must start again")
    if row.status != "pending":
        raise FaktsError(f"the device code was already {row.status}")
    row.status, row.decided_at = ("approved" if approve else "denied"), utcnow()
    await session.commit()
    return row


async def revoke(
    session: AsyncSession, *, client_id: str | None = None, identifier: str | None = None
) -> int:
    """Revoke approvals (and their access tokens) by client id or app identifier; the count."""
    if (client_id is None) == (identifier is None):
        raise FaktsError("name exactly one of a client id or an app identifier")
    now = utcnow()
    query = select(AppClient).where(AppClient.revoked_at.is_(None))
    if client_id is not None:
        query = query.where(AppClient.client_id == client_id)
    else:
        query = query.where(AppClient.identifier == identifier)
    clients = list(await session.scalars(query))
    for client in clients:
        client.revoked_at = now
    if clients:
        await session.execute(
            update(AccessToken)
            .where(AccessToken.client_pk.in_([c.id for c in clients]))
            .values(revoked_at=now)
        )
    await session.commit()
    return len(clients)


async def create_static_token(
    session: AsyncSession, identifier: str, version: str | None = None
) -> str:
    """A new static token for app ``identifier`` (any version unless given)."""
    if not identifier.strip():
        raise FaktsError("the app identifier must not be empty")
    token = new_secret()
    session.add(StaticToken(token_hash=hash_secret(token), identifier=identifier, version=version))
    await session.commit()
    return token


async def list_clients(session: AsyncSession) -> list[AppClient]:
    """Every approval, newest first."""
    return list(await session.scalars(select(AppClient).order_by(AppClient.id.desc())))


async def prune(session: AsyncSession, *, keep_seconds: float = 3600.0) -> int:
    """Delete device codes and access tokens that expired ``keep_seconds`` ago; the count.

    Approvals (clients) stay, revoked or not, as the record of who was let in.
    """
    cutoff = utcnow() - dt.timedelta(seconds=keep_seconds)
    codes = await session.execute(delete(DeviceCode).where(DeviceCode.expires_at < cutoff))
    tokens = await session.execute(delete(AccessToken).where(AccessToken.expires_at < cutoff))
    await session.commit()
    return int(getattr(codes, "rowcount", 0) or 0) + int(getattr(tokens, "rowcount", 0) or 0)
