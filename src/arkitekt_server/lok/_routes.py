"""The OAuth2 side (lok): client-credentials token endpoint, userinfo, revocation."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from arkitekt.protocol.fakts import TokenResponse, UserInfo
from arkitekt_server._auth import CurrentPrincipal
from arkitekt_server._clients import AccessToken, AppClient
from arkitekt_server._db import get_session, utcnow
from arkitekt_server._secrets import hash_secret, new_secret
from arkitekt_server._settings import ServerSettings
from arkitekt_server.fakts import revoke

__all__ = ["router"]

router = APIRouter(prefix="/lok", tags=["lok"])
Session = Annotated[AsyncSession, Depends(get_session)]


def _oauth_error(error: str, description: str, code: int = 400) -> JSONResponse:
    headers = {"WWW-Authenticate": "Basic"} if code == status.HTTP_401_UNAUTHORIZED else None
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=code, headers=headers
    )


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


@router.post(
    "/token/",
    response_model=TokenResponse,
    responses={
        400: {"description": "An unsupported grant type (OAuth2 error)."},
        401: {"description": "Unknown, revoked or expired client, or no client credentials."},
    },
)
async def token(
    request: Request,
    session: Session,
    grant_type: Annotated[str, Form()],
    scope: Annotated[str, Form()] = "",
    client_id: Annotated[str | None, Form()] = None,
    client_secret: Annotated[str | None, Form()] = None,
) -> TokenResponse | JSONResponse:
    """OAuth2 client credentials: HTTP Basic or ``client_id``/``client_secret`` in the form."""
    if grant_type != "client_credentials":
        return _oauth_error("unsupported_grant_type", "only client_credentials is supported")
    credentials = _basic(request.headers.get("authorization"))
    if credentials is None and client_id and client_secret:
        credentials = (client_id, client_secret)
    if credentials is None:
        return _oauth_error("invalid_client", "client authentication is required", 401)
    client = await session.scalar(select(AppClient).where(AppClient.client_id == credentials[0]))
    now = utcnow()
    if (
        client is None
        or not hmac.compare_digest(client.client_secret_hash, hash_secret(credentials[1]))
        or not client.usable(now)
    ):
        return _oauth_error("invalid_client", "unknown, revoked or expired client", 401)
    settings: ServerSettings = request.app.state.settings
    ttl = settings.access_token_ttl_seconds
    if client.expires_at is not None:
        ttl = max(1, min(ttl, int((client.expires_at - now).total_seconds())))
    requested = scope.split()
    granted = [s for s in requested if s in client.scopes] if requested else list(client.scopes)
    access = new_secret()
    session.add(
        AccessToken(
            token_hash=hash_secret(access),
            client_pk=client.id,
            scopes=granted,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=ttl),
        )
    )
    await session.commit()
    return TokenResponse(access_token=access, expires_in=ttl, scope=" ".join(granted))


@router.get("/userinfo/", response_model=UserInfo)
async def userinfo(principal: CurrentPrincipal, request: Request) -> UserInfo:
    """Who the bearer token belongs to."""
    settings: ServerSettings = request.app.state.settings
    return UserInfo(
        sub=principal.client_id,
        client_id=principal.client_id,
        identifier=principal.identifier,
        version=principal.version,
        scopes=list(principal.permissions),
        deployment_name=settings.deployment_name,
    )


@router.post("/revoke/")
async def revoke_self(
    principal: CurrentPrincipal, session: Session, request: Request
) -> dict[str, int]:
    """Revoke the caller's own approval (logout): its claim token and every access token."""
    revoked = await revoke(session, client_id=principal.client_id)
    request.app.state.principal_cache.clear()
    return {"revoked": revoked}
