"""Bearer authentication: every route but discovery, the fakts flow, the token endpoint, the
approval page and the health check depends on :func:`require_principal`.

The token is checked before a request's body is read: :class:`arkitekt_server._gate.RequestGate`
authenticates every request to a protected route first and hands the principal on in the
request's state, where :func:`require_principal` finds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, WebSocket, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import State

from arkitekt_server._clients import AccessToken
from arkitekt_server._db import Database, utcnow
from arkitekt_server._secrets import hash_secret

__all__ = [
    "PRINCIPAL_STATE",
    "CurrentPrincipal",
    "Principal",
    "PrincipalCache",
    "authenticate",
    "authenticate_websocket",
    "require_principal",
]


@dataclass(frozen=True)
class Principal:
    """Who a bearer token belongs to: an approved app (client)."""

    client_pk: int
    client_id: str
    identifier: str
    version: str
    permissions: tuple[str, ...]
    """The OAuth scopes granted to the token (the wire calls them ``scope``/``scopes``)."""


class PrincipalCache:
    """Principals of recently checked bearer tokens, for a few seconds (``auth_cache_seconds``).

    Spares a database round trip per request on busy paths (chunk uploads, calls). A revocation
    through the server's API clears it at once; one made by the CLI on the database directly
    takes effect within ``ttl`` seconds. Keys are token hashes, never tokens.
    """

    _MAX_ENTRIES = 10_000

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token_hash: str) -> Principal | None:
        """The cached principal, if it was checked less than ``ttl`` seconds ago."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            self._entries.pop(token_hash, None)
            return None
        return entry[0]

    def put(self, token_hash: str, principal: Principal, valid_seconds: float) -> None:
        """Remember ``principal`` for ``ttl`` seconds, never past the token's own expiry."""
        if self.ttl <= 0:
            return
        if len(self._entries) >= self._MAX_ENTRIES:
            self._entries.clear()
        deadline = time.monotonic() + min(self.ttl, valid_seconds)
        self._entries[token_hash] = (principal, deadline)

    def clear(self) -> None:
        """Forget everything (after a revocation)."""
        self._entries.clear()


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


async def principal_of(
    session: AsyncSession, token: str, cache: PrincipalCache | None = None
) -> Principal | None:
    """The principal of a bearer token, or ``None`` if it is unknown, expired or revoked."""
    token_hash = hash_secret(token)
    if cache is not None and (cached := cache.get(token_hash)) is not None:
        return cached
    row = await session.scalar(select(AccessToken).where(AccessToken.token_hash == token_hash))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    client = row.client
    if not client.usable(now):
        return None
    principal = Principal(
        client_pk=client.id,
        client_id=client.client_id,
        identifier=client.identifier,
        version=client.version,
        permissions=tuple(row.scopes),
    )
    if cache is not None:
        cache.put(token_hash, principal, (row.expires_at - now).total_seconds())
    return principal


async def _principal(state: State, token: str) -> Principal | None:
    database: Database = state.database
    async with database.sessions() as session:  # connects only on a cache miss
        return await principal_of(session, token, state.principal_cache)


PRINCIPAL_STATE = "arkitekt_principal"
"""The key of the authenticated principal in a request's state (``request.state``)."""


async def authenticate(state: State, authorization: str | None) -> Principal:
    """The principal of an ``Authorization`` header's bearer token.

    Raises:
        HTTPException: 401 (with ``WWW-Authenticate: Bearer``) for a missing, unknown, expired or
            revoked token.

    """
    token = _bearer(authorization)
    if token is None:
        raise _unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    principal = await _principal(state, token)
    if principal is None:
        raise _unauthorized("the bearer token is invalid, expired or revoked")
    return principal


async def require_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller's principal, or 401."""
    checked = getattr(request.state, PRINCIPAL_STATE, None)
    if isinstance(checked, Principal):  # the gate checked it before the body was read
        return checked
    return await authenticate(request.app.state, request.headers.get("authorization"))


CurrentPrincipal = Annotated[Principal, Depends(require_principal)]


async def authenticate_websocket(websocket: WebSocket) -> Principal | None:
    """The principal of a websocket's bearer token (``Authorization`` header), or ``None``.

    The caller closes the socket with code 4401 when this returns ``None``.
    """
    token = _bearer(websocket.headers.get("authorization"))
    if token is None:
        return None
    return await _principal(websocket.app.state, token)
