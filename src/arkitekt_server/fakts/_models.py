"""Tables of fakts and its OAuth2 side (lok): app clients, device codes, static and access tokens.

Secrets are stored only as SHA-256 hashes (``*_hash`` columns); see ``arkitekt_server._secrets``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from arkitekt_server._db import Base, utcnow

__all__ = ["AccessToken", "AppClient", "DeviceCode", "StaticToken"]


class AppClient(Base):
    """An approved app: what a claim token stands for, with its OAuth2 client credentials.

    Revoking it (``revoked_at``) invalidates its claim token, its client credentials and every
    access token issued to it.
    """

    __tablename__ = "fakts_app_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    identifier: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    logo: Mapped[str | None] = mapped_column(String(2000), default=None)
    kind: Mapped[str] = mapped_column(String(32), default="development")
    granted_via: Mapped[str] = mapped_column(String(32))  # device_code | redeem | retrieve
    claim_token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    client_secret_hash: Mapped[str] = mapped_column(String(64))
    static_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("fakts_static_tokens.id"), default=None
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    def usable(self, now: dt.datetime) -> bool:
        """Whether the approval still holds: not revoked and not expired."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class DeviceCode(Base):
    """A device code waiting for (or past) the user's decision.

    ``status`` is ``pending``, ``approved`` or ``denied``. A code grants once: the first challenge
    poll after approval creates the :class:`AppClient` and sets ``consumed_at``.
    """

    __tablename__ = "fakts_device_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    identifier: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    logo: Mapped[str | None] = mapped_column(String(2000), default=None)
    kind: Mapped[str] = mapped_column(String(32), default="development")
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    requested_from: Mapped[str | None] = mapped_column(String(100), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    nonce_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    seen_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    decided_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    consumed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    client_pk: Mapped[int | None] = mapped_column(ForeignKey("fakts_app_clients.id"), default=None)

    def manifest(self) -> dict[str, Any]:
        """The manifest the app sent, as shown on the approval page."""
        return {
            "identifier": self.identifier,
            "version": self.version,
            "scopes": self.scopes,
            "logo": self.logo,
        }


class StaticToken(Base):
    """A pre-approved token for the redeem path (``arkitekt token create``)."""

    __tablename__ = "fakts_static_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    identifier: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str | None] = mapped_column(String(100), default=None)  # None: any version
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class AccessToken(Base):
    """A short-lived bearer token issued at the token endpoint to an :class:`AppClient`."""

    __tablename__ = "lok_access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("fakts_app_clients.id"), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    client: Mapped[AppClient] = relationship(lazy="joined")
