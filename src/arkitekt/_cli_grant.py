"""The grant ``arkitekt logout`` claims with: the approval cached here, never a new one.

Imported when ``logout`` runs (it imports the app's HTTP machinery), not when the CLI is built.
"""

from __future__ import annotations

from typing import Any

from arkitekt.errors import GrantError
from arkitekt.fakts import ClaimGrant, GrantContext

__all__ = ["CachedApproval"]


class CachedApproval(ClaimGrant):
    """The approval cached here and never a new one: logging out must not ask for an approval.

    Attributes:
        refused: the server refused the cached approval (revoked or expired there).

    """

    def __init__(self) -> None:
        self.refused = False

    async def aclaim_token(self, ctx: GrantContext) -> Any:  # the cache's CacheEntry
        """The cached server root and claim token (none cached: a :class:`GrantError`)."""
        entry = ctx.cache.load()
        if entry is None:
            raise GrantError(f"no approval is cached at {ctx.cache.path}")
        return entry

    async def aconfig(self, ctx: GrantContext) -> dict[str, Any]:
        """Claim with the cached token; a refusal is noted in :attr:`refused`."""
        try:
            return await super().aconfig(ctx)
        except GrantError:
            self.refused = True
            raise
