"""What the rekuest service does besides routing: deleting finished assignments after the
retention time (the hub's time limits are :meth:`~arkitekt_server.rekuest._hub.Hub.expire`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arkitekt_server.rekuest._store import Store

__all__ = ["PRUNE_EVERY_SECONDS", "prune"]

log = logging.getLogger("arkitekt_server.rekuest")

PRUNE_EVERY_SECONDS = 600.0
"""How often finished assignments older than ``rekuest_retention_seconds`` are deleted."""


async def prune(store: Store, retention_seconds: float) -> None:
    """One round of pruning: delete assignments finished more than ``retention_seconds`` ago."""
    removed = await store.prune(retention_seconds)
    if removed:
        log.info("rekuest: pruned %d finished assignments", removed)
