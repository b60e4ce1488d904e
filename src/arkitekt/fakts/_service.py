"""The fakts service object (``app.fakts``)."""

from __future__ import annotations

from typing import Any

import httpx

from arkitekt._scope import AppSlot
from arkitekt._service import Service
from arkitekt._settings import Settings
from arkitekt.errors import ConfigError
from arkitekt.fakts._cache import TokenCache, default_cache_dir
from arkitekt.fakts._grants import Grant, GrantContext, default_grant
from arkitekt.protocol.fakts import Manifest

__all__ = ["Fakts"]


class Fakts(Service):
    """Discovery and grants of an app. Configure before ``with app:``.

    Attributes:
        grant: how the configuration is obtained (default: from the settings, see
            :func:`~arkitekt.fakts.default_grant`). Assign another before entering.

    """

    def __init__(self, app_slot: AppSlot, manifest: Manifest, settings: Settings) -> None:
        super().__init__(app_slot)
        self.manifest = manifest
        self.settings = settings
        self.grant = default_grant(settings)

    @property
    def grant(self) -> Grant:
        """How the configuration is obtained."""
        return self._grant

    @grant.setter
    def grant(self, grant: Grant) -> None:
        if not isinstance(grant, Grant):
            raise ConfigError(
                f"grant must be a Grant (e.g. StaticConfigGrant({{...}}) or DeviceCodeGrant()), "
                f"not {type(grant).__name__}"
            )
        self._grant = grant

    @property
    def cache(self) -> TokenCache:
        """The claim-token cache of this app, version and URL."""
        directory = self.settings.cache_dir or default_cache_dir()
        return TokenCache(
            directory, self.manifest.identifier, self.manifest.version, self.settings.url
        )

    async def aload(self, client: httpx.AsyncClient, *, fresh: bool = False) -> dict[str, Any]:
        """Run the grant and return the configuration.

        Args:
            client: the HTTP client to talk to the server with.
            fresh: forget what the grant remembers first (the server refused it).

        """
        ctx = GrantContext(client, self.manifest, self.settings, self.cache)
        if fresh:
            self.grant.forget(ctx)
        return await self.grant.aconfig(ctx)

    def logout(self) -> None:
        """Forget the cached approval of this app (no network)."""
        self.cache.delete()
