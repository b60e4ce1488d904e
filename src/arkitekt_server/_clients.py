"""The apps the server knows and their credentials: app clients, static and access tokens.

Shared by fakts (which approves apps), lok (which issues access tokens) and bearer
authentication. Secrets are stored only as SHA-256 hashes (``*_hash`` columns); see
``arkitekt_server._secrets``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from arkitekt_server._db import Base, utcnow

__all__ = ["AccessToken", "AppClient", "StaticToken"]


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
