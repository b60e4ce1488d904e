"""Bearer authentication: every route but discovery, the fakts flow, the token endpoint, the
approval page and the health check depends on :func:`require_principal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt_server._secrets import hash_secret
from arkitekt_server.db import Database, utcnow
from arkitekt_server.fakts.models import AccessToken

__all__ = ["CurrentPrincipal", "Principal", "authenticate_websocket", "require_principal"]


@dataclass(frozen=True)
class Principal:
    """Who a bearer token belongs to: an approved app (client)."""

    client_pk: int
    client_id: str
    identifier: str
    version: str
    scopes: tuple[str, ...]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


async def principal_of(session: AsyncSession, token: str) -> Principal | None:
    """The principal of a bearer token, or ``None`` if it is unknown, expired or revoked."""
    row = await session.scalar(
        select(AccessToken).where(AccessToken.token_hash == hash_secret(token))
    )
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    client = row.client
    if not client.usable(now):
        return None
    return Principal(
        client_pk=client.id,
        client_id=client.client_id,
        identifier=client.identifier,
        version=client.version,
        scopes=tuple(row.scopes),
    )


async def require_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller's principal, or 401."""
    token = _bearer(request.headers.get("authorization"))
    if token is None:
        raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    database: Database = request.app.state.database
    async with database.sessions() as session:
        principal = await principal_of(session, token)
    if principal is None:
        raise _unauthorized("the bearer token is invalid, expired or revoked")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]


async def authenticate_websocket(websocket: WebSocket) -> Principal | None:
    """The principal of a websocket's bearer token (``Authorization`` header), or ``None``.

    The caller closes the socket with code 4401 when this returns ``None``.
    """
    token = _bearer(websocket.headers.get("authorization"))
    if token is None:
        return None
    database: Database = websocket.app.state.database
    async with database.sessions() as session:
        return await principal_of(session, token)
