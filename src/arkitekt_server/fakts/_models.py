"""Tables of fakts: device codes (app clients and tokens are in ``arkitekt_server._clients``).

Secrets are stored only as SHA-256 hashes (``*_hash`` columns); see ``arkitekt_server._secrets``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from arkitekt_server._clients import AccessToken, AppClient, StaticToken
from arkitekt_server._db import Base, utcnow

__all__ = ["AccessToken", "AppClient", "DeviceCode", "StaticToken"]


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
