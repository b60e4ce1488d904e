"""Background upkeep: run a cleanup every so often for as long as the server runs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["every"]


async def every(
    seconds: float,
    work: Callable[[], Awaitable[object]],
    *,
    what: str,
    log: logging.Logger,
    at_once: bool = False,
) -> None:
    """Await ``work()`` every ``seconds``, forever (until cancelled).

    A failed round is logged and does not stop the next: a cleanup must never stop the server.

    Args:
        seconds: the pause between rounds.
        work: one round.
        what: what a round does, for the log ("pruning expired tokens").
        log: where failures go.
        at_once: run the first round now instead of after one pause.
    """
    if not at_once:
        await anyio.sleep(seconds)
    while True:
        try:
            await work()
        except Exception:
            log.exception("%s failed", what)
        await anyio.sleep(seconds)
